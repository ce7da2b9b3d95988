"""Runs Zoom's official RTMS SDK (PyPI `rtms`) against our simulator, in its own process.

Prints one JSON line: what the simulator sent and what the SDK delivered. The SDK keeps
native threads and global state, so each run gets a fresh interpreter.

usage: python -m tests.sdk.official_sdk_run DURATION_S OUT_DIR AUDIO
  AUDIO: `default` (the SDK's own choice: OPUS, one stream per participant) or `l16`
  (L16 16 kHz mono, the mixed stream, checked frame by frame against what was sent).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

from rtms_gateway.protocol.constants import (
    AudioChannel,
    Codec,
    ContentType,
    DataOption,
    MediaType,
    SampleRate,
)
from rtms_gateway.simulator import Simulator, SimulatorConfig
from rtms_gateway.simulator.media import silence_chunk, tone_chunk
from tests.serve_process import eventually

CLIENT_ID, CLIENT_SECRET = "sdk-peer-client", "sdk-peer-secret"
AUDIO_CHOICES = ("default", "l16")


async def main(duration: float, out_dir: Path, audio: str) -> dict[str, Any]:
    config = SimulatorConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, keepalive_interval=1.0)
    async with Simulator(config) as sim:
        ca = sim.write_ca(out_dir / "ca.pem")
        os.environ["ZM_RTMS_CA"] = str(ca)  # the SDK reads its CA bundle from here
        os.environ.setdefault("ZM_RTMS_LOG_LEVEL", "error")
        import rtms  # imported late: the SDK reads its environment on import

        handle = sim.start_meeting(duration=duration, media=MediaType.AUDIO | MediaType.TRANSCRIPT)
        lock = threading.Lock()  # the SDK calls back on its own thread
        got: dict[str, Any] = {"transcripts": [], "audio": [], "sessions": [], "join_confirm": None, "leave": None}

        client = rtms.Client()
        if audio == "l16":
            client.set_audio_params(rtms.AudioParams(
                content_type=int(ContentType.RAW_AUDIO), codec=int(Codec.L16), sample_rate=int(SampleRate.SR_16K),
                channel=int(AudioChannel.MONO), data_opt=int(DataOption.AUDIO_MIXED_STREAM), duration=20,
                frame_size=320,
            ))

        @client.on_join_confirm
        def _joined(reason):
            got["join_confirm"] = reason

        @client.on_leave
        def _left(reason):
            got["leave"] = reason

        @client.on_session_update
        def _session(op, session):
            with lock:
                got["sessions"].append(op)

        @client.on_transcript_data
        def _transcript(data, size, timestamp, metadata):
            with lock:
                got["transcripts"].append({"text": bytes(data[:size]).decode("utf-8"),
                                           "user": metadata.userName, "ts": timestamp})

        @client.on_audio_data
        def _audio(data, size, timestamp, metadata):
            with lock:
                got["audio"].append((timestamp, bytes(data[:size])))

        payload = dict(handle.started_payload)
        client.join(meeting_uuid=payload["meeting_uuid"], rtms_stream_id=payload["rtms_stream_id"],
                    server_urls=payload["server_urls"], client=CLIENT_ID, secret=CLIENT_SECRET)
        record = await handle.wait(duration + 60)
        # The SDK reports leaving (the meeting's stop) after every frame that came before it.
        left = await eventually(lambda: got["leave"] is not None, 30)
        if not left:
            client.leave()
        with lock:
            audio_frames, transcripts = list(got["audio"]), list(got["transcripts"])
        # Regenerate what the simulator sent for each delivered frame from its timestamp.
        script, mismatched = handle.script, 0
        if audio == "l16":
            for timestamp, pcm in audio_frames:
                speaker = script.speaker_at(timestamp - record.t0_ms)
                expected = tone_chunk(speaker.tone_hz, 16000, 1) if speaker else silence_chunk(16000, 1)
                mismatched += pcm != expected
        return {
            "outcome": record.outcome,
            "handshakes": [[h.socket, h.status_code] for h in record.handshakes],
            "ready_acks": record.ready_acks,
            "keepalives_sent": sum(record.keepalives_sent.values()),
            "keepalives_answered": sum(record.keepalives_answered.values()),
            "sent_transcripts": [t.data for t in record.transcripts],
            # sent with no speaker (user 0, no name), as Zoom at times does
            "sent_anonymous": [t.data for t in record.transcripts if not t.user_id and not t.user_name],
            "sent_speakers": [u.speaker.user_name for u in script.utterances if not u.anonymous],
            "sent_audio_frames": record.sent.audio_frames,

            "join_confirm": got["join_confirm"],
            "leave": got["leave"],
            "sessions": got["sessions"],
            "got_transcripts": [t["text"] for t in transcripts],
            "got_transcript_users": [t["user"] for t in transcripts],
            "got_audio_frames": len(audio_frames),
            "got_audio_distinct_timestamps": len({ts for ts, _ in audio_frames}),
            "audio_mismatched": mismatched,
        }


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[3] not in AUDIO_CHOICES:
        sys.exit(__doc__)
    result = asyncio.run(main(float(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]))
    print(json.dumps(result))
    sys.stdout.flush()
    os._exit(0)  # the SDK's native threads may not exit on their own
