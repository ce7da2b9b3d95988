"""Audio ingest: N meetings x L16 audio at 50 frames/s (+ transcripts) into the gateway.

The simulator runs in this process; the gateway runs in its own (`rtms-gateway serve`,
SQLite, WAV files). Printed per N, over the window where every stream is live:

- gateway CPU per audio frame (user+sys µs / frames received),
- frames sent by the simulator, received by the gateway, written to WAV, and lost,
- latency to written: the byte range of frame k becoming visible in its WAV (a sample of
  up to 20 files polled every 10 ms) minus, first, the time the frame was due (the end of
  its 20 ms: what Zoom's schedule says) and, second, the time the simulator's pacer
  actually sent it (the first pacer visit at or after it was due). The two differ by how late
  the simulator itself is (its pacing lateness, printed last): on a machine where the
  simulator and the gateway share two cores, the first also counts the simulator's queue.
- gateway RSS per stream ((RSS live - RSS idle) / N),
- the simulator's own pacing lateness (if it is late, the figures say little).

- the gateway's event-loop lag p99 (`rtms_event_loop_lag_seconds`, how late a 10 ms timer
  wakes), over the same window.

`--peers sdk,picows` also runs, each in its own process over the same load (the same
simulator, TLS, N meetings of L16 16 kHz mono mixed audio plus transcripts): Zoom's official
SDK (PyPI `rtms`, one `EventLoop`, callbacks that only count: delivery only), and a bare
picows receiver that does the handshakes, answers keep-alives and decodes each frame's JSON
and base64 (the floor a Python receiver pays), on the event loop the gateway runs on
(`RTMS_EVENT_LOOP`, uvloop by default). Each meeting sends on its own 20 ms beat, as
independent meetings do; `--aligned` sends every meeting's packets at the same moment (a
receiver's worst case). `--profile` runs the gateway under
pyinstrument; `--py-spy FILE` samples it and prints the top functions.

    .venv/bin/python bench/audio_ingest.py [--meetings 100,300] [--duration 40] [--peers sdk,picows]
                                           [--aligned] [--rounds K]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from _common import (
    API_KEY,
    CLIENT_ID,
    CLIENT_SECRET,
    TOKEN,
    free_port,
    histogram_quantile,
    metrics,
    percentile,
    simulator_for,
    wait_http,
)

from rtms_gateway.protocol.constants import (
    AudioChannel,
    Codec,
    ContentType,
    DataOption,
    MediaType,
    SampleRate,
)
from rtms_gateway.simulator.pacer import SLOTS as PACER_SLOTS

MEDIA = MediaType.AUDIO | MediaType.TRANSCRIPT
FRAME_BYTES = 640  # 20 ms of 16 kHz mono L16


class WavWatcher:
    """Sees when each frame's bytes become visible in a sample of the WAV files."""

    def __init__(self, db: Path, data: Path, sample: int = 20) -> None:
        self.db, self.data, self.sample = db, data, sample
        self.files: dict[Path, tuple[int, int]] = {}  # path -> (origin ms, frames seen)
        self.seen: list[tuple[float, float]] = []  # (frame due, frame visible), wall-clock ms

    def discover(self) -> None:
        if len(self.files) >= self.sample or not self.db.exists():
            return
        try:
            conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=1)
            rows = conn.execute("select path, origin_ms from media_files where kind='audio' limit ?",
                                (self.sample,)).fetchall()
            conn.close()
        except sqlite3.OperationalError:
            return
        for path, origin in rows:
            full = self.data / path
            if full not in self.files and full.exists():
                self.files[full] = (origin, (full.stat().st_size - 44) // FRAME_BYTES)

    def poll(self) -> None:
        now = time.time() * 1000
        for path, (origin, seen) in self.files.items():
            frames = (path.stat().st_size - 44) // FRAME_BYTES
            for k in range(seen, frames):
                # frame k starts at origin + 20k; Zoom sends it when its 20 ms are over
                self.seen.append((origin + 20 * k + 20, now))
            self.files[path] = (origin, frames)

    def from_due(self) -> list[float]:
        return sorted(visible - due for due, visible in self.seen)

    def from_send(self, ticks_s: list[float]) -> list[float]:
        """Latencies from each frame's send: the first pacer visit at or after it was due
        (1 ms of slack for the ms-rounded timestamps: an earlier tick, a longer latency).
        Frames due before the first tick recorded are left out."""
        ticks = [1000 * t for t in ticks_s]
        out = []
        for due, visible in self.seen:
            i = bisect.bisect_left(ticks, due - 1)
            if 0 < i < len(ticks):
                out.append(visible - ticks[i])
        return sorted(out)


def gateway_env(data: Path, ca: Path, port: int) -> dict[str, str]:
    return {**os.environ, "ZOOM_CLIENT_ID": CLIENT_ID, "ZOOM_CLIENT_SECRET": CLIENT_SECRET,
            "ZOOM_SECRET_TOKEN": TOKEN, "RTMS_DATA_DIR": str(data), "RTMS_CA_FILE": str(ca),
            "RTMS_LOG_LEVEL": "WARNING", "RTMS_DATABASE_URL": "", "RTMS_MEDIA": "audio,transcript",
            "RTMS_API_KEYS": API_KEY, "PORT": str(port)}


def top_leaves(collapsed: Path, count: int = 15) -> list[tuple[float, str]]:
    """Self time per function from py-spy's collapsed stacks (share of samples)."""
    leaves: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        leaf = re.sub(r":\d+\)$", ")", stack.rsplit(";", 1)[-1])  # per function, not per line
        leaves[leaf] = leaves.get(leaf, 0) + int(samples)
        total += int(samples)
    return sorted(((100 * v / max(total, 1), k) for k, v in leaves.items()), reverse=True)[:count]


async def run_gateway(n: int, duration: float, workdir: Path, profile: Path | None,
                      spy: Path | None = None, pacer_slots: int = PACER_SLOTS, run: int = 0) -> dict[str, Any]:
    port = free_port()
    sim, data, ca = await simulator_for(workdir, f"gw{n}-{run}", port, pacer_slots)
    cmd = [sys.executable, "-m", "rtms_gateway", "serve", "--port", str(port)]
    if profile is not None:
        cmd = [sys.executable, "-m", "pyinstrument", "-r", "text", "-p", "flat=true", "-p", "show_all=true",
               "-o", str(profile),
               "-m", "rtms_gateway", "serve", "--port", str(port)]
    gateway = subprocess.Popen(cmd, env=gateway_env(data, ca, port), cwd=data)
    watcher = WavWatcher(data / "rtms.sqlite3", data)
    try:
        await wait_http(f"http://127.0.0.1:{port}/healthz")
        proc = psutil.Process(gateway.pid)
        rss_idle = proc.memory_info().rss
        handles = [sim.start_meeting(duration=duration, media=MEDIA, seed=n) for _ in range(n)]
        started = await asyncio.gather(*(h.wait_streaming(120) for h in handles))
        loop = asyncio.get_running_loop()
        first_end = min(h.stream.end_at for h in handles if h.stream.t0 is not None)
        await asyncio.sleep(1.0)  # let the last connections settle
        if first_end - loop.time() < 5:
            print(f"warning: N={n}: every stream is live for under 5 s; use a longer --duration", flush=True)
        sim.pacer.reset_stats()
        before = await metrics(port)
        cpu0, wall0 = sum(proc.cpu_times()[:2]), time.perf_counter()
        spying = None
        if spy is not None:  # sample the gateway over the measured window (idle time excluded)
            py_spy = str(Path(sys.executable).with_name("py-spy"))  # beside the venv's Python
            spying = subprocess.Popen([py_spy, "record", "-p", str(gateway.pid), "-d",
                                       str(max(int(first_end - loop.time() - 1), 1)), "-f", "raw",
                                       "-o", str(spy), "-r", "200", "--gil"], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
        watcher.discover()
        watcher.poll()
        watcher.seen.clear()
        while loop.time() < first_end - 0.5:
            watcher.discover()
            watcher.poll()
            await asyncio.sleep(0.01)
        cpu1, wall1 = sum(proc.cpu_times()[:2]), time.perf_counter()
        if spying is not None:
            spying.wait(30)
        after = await metrics(port)
        rss_live = proc.memory_info().rss
        stats = sim.pacer_stats()
        ticks = list(sim.pacer.tick_started_at)
        records = [await h.wait(120) for h in handles]
        for _ in range(100):
            if (await metrics(port)).get("rtms_streams_live", 1) == 0:
                break
            await asyncio.sleep(0.1)
        final = await metrics(port)
    finally:
        gateway.send_signal(signal.SIGINT)
        gateway.wait(60)
        await sim.stop()
    sent = sum(r.sent.audio_frames for r in records)
    received = final.get("rtms_audio_frames_total", 0)
    written = 0
    conn = sqlite3.connect(data / "rtms.sqlite3")
    for path, origin, stream_id in conn.execute("select path, origin_ms, rtms_stream_id from media_files"):
        frames = ((data / path).stat().st_size - 44) // FRAME_BYTES
        t0 = next(r.t0_ms for r in records if r.rtms_stream_id == stream_id)
        written += frames - (t0 - origin) // 20  # frames before the meeting's t0 are lead silence
    conn.close()
    window_frames = after.get("rtms_audio_frames_total", 0) - before.get("rtms_audio_frames_total", 0)
    lat, sent_lat = watcher.from_due(), watcher.from_send(ticks)
    return {
        "n": n, "live": sum(started), "sent": sent, "received": int(received), "written": written,
        "lost": sent - min(int(received), written),
        "us_per_frame": 1e6 * (cpu1 - cpu0) / max(window_frames, 1),
        "cpu_pct": 100 * (cpu1 - cpu0) / (wall1 - wall0),
        "p50_ms": percentile(lat, 0.5), "p99_ms": percentile(lat, 0.99),
        "sent_p50_ms": percentile(sent_lat, 0.5), "sent_p99_ms": percentile(sent_lat, 0.99),
        "lag_p99_ms": 1000 * histogram_quantile(before, after, "rtms_event_loop_lag_seconds", 0.99),
        "rss_kib_per_stream": (rss_live - rss_idle) / 1024 / n,
        "sim_late_p99_ms": stats.lateness_p99_ms,
    }


# ---- the other receivers, each in its own process over the same load -------------------


def sdk_client(payload_file: str, ca_file: str) -> None:
    """Zoom's official SDK (PyPI `rtms`): one EventLoop thread owning every client, L16
    16 kHz mono mixed audio plus transcripts, callbacks that only count."""
    os.environ["ZM_RTMS_CA"] = ca_file
    os.environ.setdefault("ZM_RTMS_LOG_LEVEL", "error")
    import threading

    import rtms  # imported late: the SDK reads its environment on import

    counts = {"audio": 0, "transcript": 0}
    lock = threading.Lock()

    def on_audio(data: Any, size: int, timestamp: int, metadata: Any) -> None:
        with lock:
            counts["audio"] += 1

    def on_transcript(data: Any, size: int, timestamp: int, metadata: Any) -> None:
        with lock:
            counts["transcript"] += 1

    loop = rtms.EventLoop().start()
    for payload in json.loads(Path(payload_file).read_text()):
        client = rtms.Client()
        client.set_audio_params(rtms.AudioParams(
            content_type=int(ContentType.RAW_AUDIO), codec=int(Codec.L16), sample_rate=int(SampleRate.SR_16K),
            channel=int(AudioChannel.MONO), data_opt=int(DataOption.AUDIO_MIXED_STREAM), duration=20,
            frame_size=320))
        client.on_audio_data(on_audio)
        client.on_transcript_data(on_transcript)
        loop.add(client)
        client.join(meeting_uuid=payload["meeting_uuid"], rtms_stream_id=payload["rtms_stream_id"],
                    server_urls=payload["server_urls"], client=CLIENT_ID, secret=CLIENT_SECRET)
    sys.stdin.readline()
    with lock:
        print(json.dumps(counts), flush=True)
    loop.stop()
    os._exit(0)  # the SDK's native threads do not end on their own


def picows_client(payload_file: str, ca_file: str) -> None:
    """The floor a Python receiver pays: picows sockets doing the handshakes, answering
    keep-alives and decoding each frame's JSON and its base64 payload, nothing else."""
    import base64
    import ssl

    import msgspec
    import picows

    from rtms_gateway.protocol.signature import signature

    decode, b64decode = msgspec.json.decode, base64.b64decode
    context = ssl.create_default_context(cafile=ca_file)
    counts = {"audio": 0, "transcript": 0, "bytes": 0}

    class Socket(picows.WSListener):
        def __init__(self, hello: dict[str, Any], on_answer: Any) -> None:
            self.hello, self.on_answer = hello, on_answer
            self.transport: picows.WSTransport | None = None

        def on_ws_connected(self, transport: picows.WSTransport) -> None:
            self.transport = transport
            transport.send(picows.WSMsgType.TEXT, json.dumps(self.hello).encode())

        def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
            if frame.msg_type is not picows.WSMsgType.TEXT:
                return
            msg = decode(frame.get_payload_as_memoryview())
            kind = msg["msg_type"]
            if kind == 14:
                counts["audio"] += 1
                counts["bytes"] += len(b64decode(msg["content"]["data"]))
            elif kind == 17:
                counts["transcript"] += 1
            elif kind == 12:
                transport.send(picows.WSMsgType.TEXT, json.dumps(
                    {"msg_type": 13, "timestamp": msg["timestamp"]}).encode())
            elif kind in (2, 4) and self.on_answer is not None:
                self.on_answer(self, msg)

    async def open_socket(url: str, hello: dict[str, Any], on_answer: Any = None) -> None:
        await picows.ws_connect(lambda: Socket(hello, on_answer), url, ssl_context=context,
                                max_frame_size=16 * 1024 * 1024)

    def stream(p: dict[str, Any]) -> None:
        ids = {"meeting_uuid": p["meeting_uuid"], "rtms_stream_id": p["rtms_stream_id"],
               "signature": signature(CLIENT_ID, CLIENT_SECRET, p["meeting_uuid"], p["rtms_stream_id"])}
        ready: list[int] = []

        def signaling_answer(sig: Socket, msg: dict[str, Any]) -> None:
            urls = msg["media_server"]["server_urls"]

            def media_answer(_: Socket, answer: dict[str, Any]) -> None:
                ready.append(answer["status_code"])
                if len(ready) == 2 and sig.transport is not None:
                    sig.transport.send(picows.WSMsgType.TEXT, json.dumps(
                        {"msg_type": 7, "rtms_stream_id": p["rtms_stream_id"]}).encode())

            for key, bits in (("audio", 1), ("transcript", 8)):
                asyncio.get_running_loop().create_task(open_socket(
                    urls[key], {"msg_type": 3, "media_type": bits, "protocol_version": 1, **ids}, media_answer))

        asyncio.get_running_loop().create_task(open_socket(
            p["server_urls"], {"msg_type": 1, "protocol_version": 1, **ids}, signaling_answer))

    async def main() -> None:
        for p in json.loads(Path(payload_file).read_text()):
            stream(p)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        print(json.dumps(counts), flush=True)
        os._exit(0)

    if os.environ.get("RTMS_EVENT_LOOP", "uvloop") == "uvloop":  # the gateway's loop, for a fair floor
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


PEERS = {"sdk": "official SDK (delivery only)", "picows": "picows + JSON + base64"}


async def run_peer(peer: str, n: int, duration: float, workdir: Path,
                   pacer_slots: int = PACER_SLOTS, run: int = 0) -> dict[str, Any]:
    """One of PEERS in its own process against N simulated meetings; its CPU per frame over
    the window where every stream is live."""
    sim, data, ca = await simulator_for(workdir, f"{peer}{n}-{run}", None, pacer_slots)
    handles = [sim.start_meeting(duration=duration, media=MEDIA, seed=n) for _ in range(n)]
    (data / "payloads.json").write_text(json.dumps([h.started_payload for h in handles]))
    (data / "logs").mkdir()  # where the SDK writes its own log
    child = subprocess.Popen([sys.executable, os.path.abspath(__file__), f"--{peer}-client",
                              str(data / "payloads.json"), str(ca)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=data)
    try:
        live = sum(await asyncio.gather(*(h.wait_streaming(120) for h in handles)))
        proc = psutil.Process(child.pid)
        loop = asyncio.get_running_loop()
        first_end = min(h.stream.end_at for h in handles if h.stream.t0 is not None)
        await asyncio.sleep(1.0)  # let the last connections settle
        sim.pacer.reset_stats()
        f0 = sum(h.record.sent.audio_frames for h in handles)
        cpu0, wall0 = sum(proc.cpu_times()[:2]), time.perf_counter()
        await asyncio.sleep(max(first_end - loop.time() - 0.5, 1.0))
        cpu1, wall1 = sum(proc.cpu_times()[:2]), time.perf_counter()
        f1 = sum(h.record.sent.audio_frames for h in handles)
        stats = sim.pacer_stats()
        records = [await h.wait(120) for h in handles]
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write("report\n")
        child.stdin.flush()
        counts = json.loads(child.stdout.readline())
    finally:
        child.kill()
        await sim.stop()
    sent = sum(r.sent.audio_frames for r in records)
    return {"n": n, "live": live, "sent": sent, "received": counts["audio"], "lost": sent - counts["audio"],
            "us_per_frame": 1e6 * (cpu1 - cpu0) / max(f1 - f0, 1),
            "cpu_pct": 100 * (cpu1 - cpu0) / (wall1 - wall0), "sim_late_p99_ms": stats.lateness_p99_ms}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--meetings", default="10,100,500")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--peers", default="",
                        help="also run these receivers over the same load: sdk (Zoom's official SDK), "
                             "picows (a bare picows receiver), comma-separated")
    parser.add_argument("--profile", type=Path, help="profile the gateway (pyinstrument) into this file")
    parser.add_argument("--py-spy", type=Path, dest="spy",
                        help="sample the gateway with py-spy over the window; print the top functions")
    parser.add_argument("--aligned", action="store_true",
                        help="every meeting sends on the same beat (the simulator's pacer with one slot): "
                             "each 20 ms, all N packets at once")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run each N this many times (gateway, then peers, per round) and print the "
                             "medians: the machine's speed moves between runs more than most changes do")
    args = parser.parse_args()
    slots = 1 if args.aligned else PACER_SLOTS
    peers = [p for p in args.peers.split(",") if p]
    for peer in peers:
        if peer not in PEERS:
            parser.error(f"unknown peer {peer!r}: choose from {', '.join(PEERS)}")
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'N':>5} {'live':>5} {'sent':>8} {'recv':>8} {'written':>8} {'lost':>5} {'µs/frame':>9} "
              f"{'gw CPU%':>8} {'due→disk p50/p99':>17} {'sent→disk p50/p99':>18} {'lag p99':>7} "
              f"{'KiB/strm':>9} {'sim late p99':>12}")
        summary: list[tuple[int, list[dict[str, Any]], dict[str, list[dict[str, Any]]]]] = []
        for n in (int(x) for x in args.meetings.split(",")):
            runs: list[dict[str, Any]] = []
            peer_runs: dict[str, list[dict[str, Any]]] = {peer: [] for peer in peers}
            for run in range(args.rounds):  # each round: the gateway, then each peer, back to back
                r = await run_gateway(n, args.duration, Path(tmp), args.profile, args.spy, slots, run)
                runs.append(r)
                print(f"{r['n']:>5} {r['live']:>5} {r['sent']:>8} {r['received']:>8} {r['written']:>8} "
                      f"{r['lost']:>5} {r['us_per_frame']:>9.1f} {r['cpu_pct']:>8.1f} "
                      f"{r['p50_ms']:>8.1f}/{r['p99_ms']:<8.1f} {r['sent_p50_ms']:>9.1f}/{r['sent_p99_ms']:<8.1f} "
                      f"{r['lag_p99_ms']:>7.1f} {r['rss_kib_per_stream']:>9.1f} {r['sim_late_p99_ms']:>12.1f}",
                      flush=True)
                for peer in peers:
                    f = await run_peer(peer, n, args.duration, Path(tmp), slots, run)
                    peer_runs[peer].append(f)
                    print(f"{'':>5} {PEERS[peer]}: live {f['live']}, sent {f['sent']}, received {f['received']}, "
                          f"lost {f['lost']}, {f['us_per_frame']:.1f} µs/frame, CPU {f['cpu_pct']:.1f}%, "
                          f"sim late p99 {f['sim_late_p99_ms']:.1f} ms", flush=True)
            summary.append((n, runs, peer_runs))
        if args.rounds > 1:
            print(f"\nmedians over {args.rounds} rounds (a ratio is taken within each round, then its median):")
            for n, runs, peer_runs in summary:
                line = (f"  N={n}: gateway {statistics.median(r['us_per_frame'] for r in runs):.1f} µs/frame, "
                        f"sent→disk p99 {statistics.median(r['sent_p99_ms'] for r in runs):.1f} ms, "
                        f"lag p99 {statistics.median(r['lag_p99_ms'] for r in runs):.1f} ms")
                for peer, done in peer_runs.items():
                    ratio = statistics.median(r["us_per_frame"] / f["us_per_frame"] for r, f in zip(runs, done))
                    line += (f"; {peer} {statistics.median(f['us_per_frame'] for f in done):.1f} µs/frame, "
                             f"gateway ÷ {peer} {ratio:.2f}")
                print(line)
        if args.profile is not None:
            print(f"\nprofile of the last run: {args.profile}")
        if args.spy is not None and args.spy.exists():
            print("\ngateway self time, last run (py-spy --gil: samples holding the GIL):")
            for share, name in top_leaves(args.spy):
                print(f"  {share:5.1f}%  {name}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--sdk-client":
        sdk_client(sys.argv[2], sys.argv[3])
    elif len(sys.argv) > 1 and sys.argv[1] == "--picows-client":
        picows_client(sys.argv[2], sys.argv[3])
    else:
        asyncio.run(main())
