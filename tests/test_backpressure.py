"""Backpressure is per stream: a stream that outruns the store is paused alone, resumed
once its records are committed, and nothing is dropped."""

from __future__ import annotations

import asyncio
import threading
import wave

from rtms_gateway.gateway.pipeline import Pipeline
from rtms_gateway.metrics import value_of
from rtms_gateway.protocol.messages import (
    AudioData,
    MediaContent,
    TranscriptContent,
    TranscriptData,
)
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


class MediaStream(Stream):
    def accepted_params(self, kind):
        return None  # the protocol's defaults: L16 16 kHz mono


def _audio(i: int) -> AudioData:
    pcm = bytes([i % 256]) * 640  # 20 ms of 16 kHz mono L16
    return AudioData(content=MediaContent(data=pcm, user_id=0,
                                          timestamp=1_700_000_000_000 + 20 * i))


async def test_media_waiting_on_a_stalled_disk_pauses_every_socket_until_it_is_written(tmp_path):
    store = await Store.open(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    calls: list[str] = []
    pipeline = Pipeline(store, data_dir=tmp_path, media_buffer_limit=6_400)  # ten frames
    pipeline.set_pause(lambda: calls.append("pause"), lambda: calls.append("resume"))
    stream = MediaStream("a")
    disk_free = threading.Event()
    try:
        stall = pipeline.media_disk.run(disk_free.wait)  # the media thread is stuck on the disk
        for i in range(10):
            pipeline.on_message(stream, _audio(i))
        assert calls == []
        pipeline.on_message(stream, _audio(10))
        assert calls == ["pause"] and value_of(pipeline.metrics.paused) == 1
        pipeline.on_message(stream, _audio(11))  # frames already on their way are kept
        flushed = asyncio.ensure_future(pipeline.flush())
        disk_free.set()
        await stall
        await flushed
        assert calls == ["pause", "resume"]
    finally:
        disk_free.set()
        await pipeline.close()
        await store.close()
    (wav,) = tmp_path.glob("*/*.wav")
    with wave.open(str(wav)) as w:
        assert w.getnframes() == 12 * 320  # nothing dropped
