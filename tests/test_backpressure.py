"""Backpressure is per stream: a stream that outruns the store is paused alone, resumed
once its records are committed, and nothing is dropped."""

from __future__ import annotations

from rtms_gateway.metrics import value_of
from rtms_gateway.gateway.pipeline import Pipeline
from rtms_gateway.protocol.messages import TranscriptContent, TranscriptData
from rtms_gateway.sinks.store import Store


class Stream:
    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        self.meeting_uuid = "meeting-" + stream_id
        self.paused = 0
        self.resumed = 0

    def pause_reading(self) -> None:
        self.paused += 1

    def resume_reading(self) -> None:
        self.resumed += 1


def _segment(i: int) -> TranscriptData:
    return TranscriptData(content=TranscriptContent(user_id=1, user_name="a", data=f"words {i}",
                                                    timestamp=1_700_000_000_000 + i))


async def test_a_flooding_stream_is_paused_alone_and_loses_nothing(tmp_path):
    store = await Store.open(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    paused_all = []
    pipeline = Pipeline(store, data_dir=tmp_path, stream_high_watermark=1000, high_watermark=50_000)
    pipeline.set_pause(lambda: paused_all.append(True), lambda: None)
    flood, calm = Stream("flood"), Stream("calm")
    try:
        for i in range(2500):  # the writer has not run: everything is pending
            pipeline.on_message(flood, _segment(i))
            if i % 100 == 0:
                pipeline.on_message(calm, _segment(i))
        assert (flood.paused, calm.paused, paused_all) == (1, 0, [])
        assert value_of(pipeline.metrics.paused) == 1
        await pipeline.flush()
        assert flood.resumed == 1 and calm.resumed == 0
        assert len(await store.transcript("meeting-flood")) == 2500
        assert len(await store.transcript("meeting-calm")) == 25
    finally:
        await pipeline.close()
        await store.close()
