"""How many meetings the simulator sustains at real rate.

For each N: the simulator (this process) runs N meetings, each streaming L16 audio (16 kHz
mono, 20 ms packets of 640 bytes: 50 packets/s) and transcripts over TLS, to a lean
counting client in a separate process (picows, one socket per signaling/audio/transcript,
webhook-driven). Printed per N: audio packets expected at real rate, sent and received;
the achieved send rate per stream against 50/s; the simulator's CPU (user+sys over wall
time) and its pacing lateness, all measured over the window where every stream is live.

    .venv/bin/python bench/simulator_capacity.py [--counts 50,100,200,400] [--duration 20] [--no-tls]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from rtms_gateway.protocol.constants import MediaType
from rtms_gateway.simulator import Simulator, SimulatorConfig

CLIENT_ID, CLIENT_SECRET, SECRET_TOKEN = "bench-id", "bench-secret", "bench-token"
AUDIO_PREFIX = b'{"msg_type":14,'


# ---- the counting client (child process) -------------------------------------------------


def client_main(ca_file: str | None) -> None:
    import hashlib
    import hmac

    from picows import WSCloseCode, WSListener, WSMsgType, ws_connect

    contexts: list[ssl.SSLContext] = []
    streams: dict[str, dict[str, int]] = {}

    def ctx() -> ssl.SSLContext | None:
        # the simulator writes its CA once it is up, after this process started
        if ca_file and not contexts:
            contexts.append(ssl.create_default_context(cafile=ca_file))
        return contexts[0] if contexts else None

    def send(t: Any, msg: dict[str, Any]) -> None:
        t.send(WSMsgType.TEXT, json.dumps(msg).encode())

    class Socket(WSListener):
        def __init__(self, stream: Stream, hello: dict[str, Any]) -> None:
            self.stream, self.hello, self.t = stream, hello, None

        def on_ws_connected(self, transport: Any) -> None:
            self.t = transport
            send(transport, self.hello)

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(WSCloseCode.OK)
                transport.disconnect()
                return
            data = frame.get_payload_as_bytes()
            if data.startswith(AUDIO_PREFIX):
                self.stream.counts["audio"] += 1
                return
            msg = json.loads(data)
            kind = msg["msg_type"]
            if kind == 12:
                send(transport, {"msg_type": 13, "timestamp": msg["timestamp"], "sequence": msg.get("sequence")})
            elif kind == 17:
                self.stream.counts["transcripts"] += 1
            elif kind == 2 and msg["status_code"] == 0:
                asyncio.get_running_loop().create_task(self.stream.open_media(msg["media_server"]["server_urls"]))
            elif kind == 4:
                self.stream.media_answered(msg["status_code"] == 0)

    class Stream:
        def __init__(self, payload: dict[str, Any]) -> None:
            self.sid, self.uuid = payload["rtms_stream_id"], payload["meeting_uuid"]
            sig = hmac.new(CLIENT_SECRET.encode(), f"{CLIENT_ID},{self.uuid},{self.sid}".encode(),
                           hashlib.sha256).hexdigest()
            self.ids = {"meeting_uuid": self.uuid, "rtms_stream_id": self.sid, "signature": sig}
            self.url = payload["server_urls"]
            self.counts = streams.setdefault(self.sid, {"audio": 0, "transcripts": 0, "media_ok": 0})
            self.signaling: Any = None
            self.pending = 2

        async def run(self) -> None:
            _, listener = await ws_connect(lambda: Socket(self, {"msg_type": 1, **self.ids}), self.url,
                                           ssl_context=ctx())
            self.signaling = listener.t

        async def open_media(self, urls: dict[str, str]) -> None:
            for key, bits in (("audio", 1), ("transcript", 8)):
                hello = {"msg_type": 3, "media_type": bits, **self.ids}
                await ws_connect(lambda h=hello: Socket(self, h), urls[key], ssl_context=ctx())

        def media_answered(self, ok: bool) -> None:
            self.counts["media_ok"] += ok
            self.pending -= 1
            if self.pending == 0 and self.signaling is not None:  # one ready after all, like Zoom's SDK
                send(self.signaling, {"msg_type": 7, "rtms_stream_id": self.sid})

    async def webhook(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length"))
                body = json.loads(await reader.readexactly(length))
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                if body["event"] == "meeting.rtms_started":
                    asyncio.get_running_loop().create_task(Stream(body["payload"]).run())
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(webhook, "127.0.0.1", 0)
        print(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/webhook", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.readline)  # "report"
        print(json.dumps(streams), flush=True)

    asyncio.run(main())


# ---- the simulator side (this process) ----------------------------------------------------


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run_once(n: int, duration: float, use_tls: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        ca = Path(tmp) / "ca.pem"
        cmd = [sys.executable, __file__, "--client"] + (["--ca", str(ca)] if use_tls else [])
        child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None and child.stdin is not None
            url = child.stdout.readline().strip()
            config = SimulatorConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, secret_token=SECRET_TOKEN,
                                     webhook_url=url, tls=use_tls, ca_out=ca if use_tls else None,
                                     connect_timeout=120, keepalive_interval=10)
            async with Simulator(config) as sim:
                handles = [sim.start_meeting(duration=duration, media=MediaType.AUDIO | MediaType.TRANSCRIPT, seed=n)
                           for _ in range(n)]
                started = await asyncio.gather(*(h.wait_streaming(120) for h in handles))
                live = sum(started)
                # the window where every stream is live: from the last start to the first end
                first_end = min(h.stream.end_at for h in handles if h.stream.t0 is not None)
                loop = asyncio.get_running_loop()
                window = first_end - loop.time() - 0.5
                sim.pacer.reset_stats()
                frames0 = sum(h.record.sent.audio_frames for h in handles)
                peer = psutil.Process(child.pid)
                cpu0, peer0, wall0 = _cpu(), sum(peer.cpu_times()[:2]), time.perf_counter()
                await asyncio.sleep(max(window, 1.0))
                cpu1, peer1, wall1 = _cpu(), sum(peer.cpu_times()[:2]), time.perf_counter()
                frames1 = sum(h.record.sent.audio_frames for h in handles)
                stats = sim.pacer_stats()
                records = [await h.wait(60) for h in handles]
            child.stdin.write("report\n")
            child.stdin.flush()
            counts = json.loads(child.stdout.readline())
        finally:
            child.kill()
            child.wait()
    elapsed = wall1 - wall0
    sent = sum(r.sent.audio_frames for r in records)
    received = sum(c["audio"] for c in counts.values())
    expected = sum(round(duration * 50) for r in records if r.t0_ms is not None)
    return {
        "n": n, "live": live, "expected": expected, "sent": sent, "received": received,
        "transcripts_sent": sum(r.sent.transcripts for r in records),
        "transcripts_received": sum(c["transcripts"] for c in counts.values()),
        "rate": (frames1 - frames0) / elapsed / max(live, 1), "cpu": 100 * (cpu1 - cpu0) / elapsed,
        "client_cpu": 100 * (peer1 - peer0) / elapsed,
        "window": elapsed, "p50": stats.lateness_p50_ms, "p99": stats.lateness_p99_ms,
        "busy99": stats.busy_p99_ms, "completed": sum(r.outcome == "completed" for r in records),
    }


async def bench(counts: list[int], duration: float, use_tls: bool) -> None:
    print(f"simulator capacity: {'wss' if use_tls else 'ws'}, L16 16 kHz mono 20 ms + transcripts, "
          f"{duration:.0f} s per meeting, {os.cpu_count()} CPUs, client in a separate process")
    print(f"{'N':>5} {'live':>5} {'expected':>9} {'sent':>9} {'received':>9} {'rate/stream':>12} "
          f"{'sim CPU':>8} {'client CPU':>10} {'late p50':>9} {'late p99':>9} {'tick p99':>9} {'transcripts':>12}")
    for n in counts:
        r = await run_once(n, duration, use_tls)
        print(f"{r['n']:>5} {r['live']:>5} {r['expected']:>9} {r['sent']:>9} {r['received']:>9} "
              f"{r['rate']:>8.2f}/50 {r['cpu']:>7.0f}% {r['client_cpu']:>9.0f}% {r['p50']:>7.2f}ms {r['p99']:>7.2f}ms "
              f"{r['busy99']:>7.2f}ms {r['transcripts_received']:>5}/{r['transcripts_sent']:<6}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="50,100,200,400")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--no-tls", action="store_true")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ca", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args.ca)
        return
    asyncio.run(bench([int(x) for x in args.counts.split(",")], args.duration, not args.no_tls))


if __name__ == "__main__":
    main()
