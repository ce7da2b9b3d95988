"""Runs Zoom's official RTMS SDK (PyPI `rtms`) against our simulator, in its own process.

Prints one JSON line: what the simulator sent and what the SDK delivered. The SDK keeps
native threads and global state, so each run gets a fresh interpreter.

usage: python -m tests.sdk.official_sdk_run DURATION_S OUT_DIR
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from pathlib import Path

from rtms_gateway.protocol.constants import AudioChannel, Codec, ContentType, DataOption, MediaType, SampleRate
from rtms_gateway.simulator import Simulator, SimulatorConfig
from rtms_gateway.simulator.media import silence_chunk, tone_chunk

CLIENT_ID, CLIENT_SECRET = "sdk-peer-client", "sdk-peer-secret"


async def main(duration: float, out_dir: Path) -> dict:
    config = SimulatorConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, keepalive_interval=2.0)
    async with Simulator(config) as sim:
        ca = sim.write_ca(out_dir / "ca.pem")
        os.environ["ZM_RTMS_CA"] = str(ca)  # the SDK reads its CA bundle from here
        os.environ.setdefault("ZM_RTMS_LOG_LEVEL", "error")
        import rtms  # imported late: the SDK reads its environment on import

        handle = sim.start_meeting(duration=duration, media=MediaType.AUDIO | MediaType.TRANSCRIPT)
        lock = threading.Lock()
        got: dict = {"transcripts": [], "audio": [], "join_confirm": None, "leave": None}

        client = rtms.Client()
        client.set_audio_params(rtms.AudioParams(
            content_type=int(ContentType.RAW_AUDIO), codec=int(Codec.L16), sample_rate=int(SampleRate.SR_16K),
            channel=int(AudioChannel.MONO), data_opt=int(DataOption.AUDIO_MIXED_STREAM), duration=20,
            frame_size=320,
        ))

        @client.on_join_confirm
        def _joined(reason):  # noqa: ANN001
            got["join_confirm"] = reason

        @client.on_leave
        def _left(reason):  # noqa: ANN001
            got["leave"] = reason

        @client.on_transcript_data
        def _transcript(data, size, timestamp, metadata):  # noqa: ANN001
            with lock:
                got["transcripts"].append({"text": bytes(data[:size]).decode("utf-8"),
                                           "user": metadata.userName, "ts": timestamp})

        @client.on_audio_data
        def _audio(data, size, timestamp, metadata):  # noqa: ANN001
            with lock:
                got["audio"].append((timestamp, bytes(data[:size])))

        payload = dict(handle.started_payload)
        client.join(meeting_uuid=payload["meeting_uuid"], rtms_stream_id=payload["rtms_stream_id"],
                    server_urls=payload["server_urls"], client=CLIENT_ID, secret=CLIENT_SECRET)
        record = await handle.wait(duration + 60)
        await asyncio.sleep(1.0)  # callbacks fire on the SDK's poll thread
        client.leave()
        # Regenerate what the simulator sent for each delivered frame from its timestamp.
        script, mismatched = handle.script, 0
        for timestamp, pcm in got["audio"]:
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
            "sent_audio_frames": record.sent.audio_frames,

            "got_transcripts": [t["text"] for t in got["transcripts"]],
            "got_transcript_users": [t["user"] for t in got["transcripts"]],
            "got_audio_frames": len(got["audio"]),
            "got_audio_distinct_timestamps": len({ts for ts, _ in got["audio"]}),
            "audio_mismatched": mismatched,
            "join_confirm": got["join_confirm"],
        }


if __name__ == "__main__":
    result = asyncio.run(main(float(sys.argv[1]), Path(sys.argv[2])))
    print(json.dumps(result))
    sys.stdout.flush()
    os._exit(0)  # the SDK's native threads may not exit on their own
