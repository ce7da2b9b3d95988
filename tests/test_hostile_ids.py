"""Meetings whose ids are hostile or broken, through the real gateway from the real
simulator: nothing is written outside the data directory, and their audio is stored,
listed and downloadable like any other."""

from __future__ import annotations

import contextlib
import os
import wave
from urllib.parse import quote

import pytest

from rtms_gateway.protocol.constants import MediaType
from rtms_gateway.simulator.media import silence_chunk, tone_chunk

from . import postgres
from .gateway_harness import GatewayWithSimulator
from .store_cases import stored

IDS = [  # (meeting UUID, stream id)
    ("..", "../../victim/pwned"),
    ("../../victim", ".."),
    ("/abs/path", "/abs/stream"),
    ("nul\x00uuid", "\x00"),
    ("cr\rtab\tesc\x1b[2J\x07", "\x01\x02\x1f\x7f"),
    ("line\nfeed", "cr\r\nlf"),
    ("u" * 10_240, "s" * 10_240),
    ("/" * 300, "." * 300),
]


def url_part(value: str) -> str:
    """A path segment for any id: dots too are escaped, or `..` would be resolved away."""
    return quote(value, safe="").replace(".", "%2E")


def files_outside(tmp_path, data_dir) -> set[str]:
    """Everything under tmp_path that is not the data directory or inside it."""
    found = set()
    for folder, dirs, names in os.walk(tmp_path):
        for name in dirs + names:
            path = os.path.join(folder, name)
            if os.path.commonpath([path, str(data_dir)]) != str(data_dir):
                found.add(os.path.relpath(path, tmp_path))
    return found


def expected_mixed_audio(handle, record) -> bytes:
    def chunk(i):
        s = handle.script.speaker_at(20 * i)
        return tone_chunk(s.tone_hz, 16000, 1) if s else silence_chunk(16000, 1)

    return b"".join(chunk(i) for i in range(record.sent.audio_frames))


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=postgres.needs_postgres)])
async def test_hostile_ids_write_nothing_outside_and_their_audio_is_served(tmp_path, database):
    data_dir = tmp_path / "data"
    async with contextlib.AsyncExitStack() as stack:
        env = {}
        if database == "postgres":  # ids with NUL come back with U+FFFD there (`stored`)
            env = {"RTMS_DATABASE_URL": postgres.URL,
                   "RTMS_DATABASE_SCHEMA": await stack.enter_async_context(postgres.own_schema())}
        run = await stack.enter_async_context(GatewayWithSimulator(data_dir, RTMS_MEDIA="audio,transcript", **env))
        handles = [run.simulator.start_meeting(duration=1.5, media=MediaType.AUDIO | MediaType.TRANSCRIPT, seed=i,
                                               meeting_uuid=uuid, stream_id=stream_id)
                   for i, (uuid, stream_id) in enumerate(IDS)]
        records = [await h.wait(60) for h in handles]
        await run.settle(60)
        downloads = []
        async with run.http() as http:
            for handle in handles:
                uuid = url_part(handle.script.owner_id)
                meeting = await http.get(f"/api/meetings/{uuid}")
                assert meeting.status_code == 200
                assert meeting.json()["meeting_uuid"] == stored(run.gateway.store, handle.script.owner_id)
                listed = (await http.get(f"/api/meetings/{uuid}/media")).json()["files"]
                (audio,) = [f for f in listed if f["kind"] == "audio"]
                got = await http.get(audio["url"])
                assert got.status_code == 200 and got.headers["content-type"] == "audio/wav"
                downloads.append((audio, got.content))
    assert files_outside(tmp_path, data_dir) == set()
    paths = set()
    for handle, record, (audio, body) in zip(handles, records, downloads):
        assert record.outcome == "completed", record.summary_line()
        assert audio["complete"] and audio["rtms_stream_id"] == stored(run.gateway.store, handle.script.rtms_stream_id)
        assert len(audio["path"]) < 200 and audio["path"] not in paths
        paths.add(audio["path"])
        on_disk = data_dir / audio["path"]
        assert on_disk.resolve().is_relative_to(data_dir.resolve()) and on_disk.read_bytes() == body
        with wave.open(str(on_disk)) as w:
            pcm = w.readframes(w.getnframes())
        assert pcm == expected_mixed_audio(handle, record), "every packet sent, in place"
