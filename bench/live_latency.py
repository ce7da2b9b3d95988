"""Live-out latency: from the simulator sending a transcript segment to (a) SSE
subscribers, (b) WebSocket subscribers, (c) a local webhook receiver; webhook drain rate;
loss and duplicates after a resume.

The simulator runs in this process; the gateway runs in its own (`rtms-gateway serve`,
SQLite). The subscribers run in `--procs` other processes (raw asyncio SSE clients,
`websockets` clients), the webhook receiver in one more, so the measuring side is not the
bottleneck. Per N meetings (transcripts only):

- latency = arrival time at the subscriber minus the segment's `end_time` (the utterance's
  end, when the simulator sends it, as Zoom does), p50/p99 over every segment sent once
  every meeting streams plus `--warmup` seconds (the start-up's p99 apart), with the part
  until the store wrote it (the item's `stored_at_ms`); S SSE subscribers
  (`/api/meetings/{uuid}/live?kinds=transcript`) spread over the N meetings, W WebSocket
  subscribers (`/api/live/ws?meeting=&kinds=transcript`) likewise, one webhook
  subscription for `transcript.segment`;
- webhook drain rate: a second subscription whose receiver answers 503 while the meetings
  run (deliveries wait, retried every 1-2 s), then 200: every stored segment delivered
  to it in a burst, deliveries per second from the first to the last;
- resume: an SSE and a WebSocket subscriber to every meeting's transcripts (`after=`, from
  the first item) disconnect mid-run and resume with their last cursor; at the end their
  cursors are compared with the REST API's pages of each meeting's transcript: lost,
  duplicated, out of order, computed.

The gateway gets `RTMS_LIVE_MAX_SUBSCRIBERS` and `RTMS_HTTP_MAX_CONNECTIONS` raised for S + W
subscribers. Webhooks are measured when the gateway has `/api/webhooks` (else "n/a").

    .venv/bin/python bench/live_latency.py [--meetings 100,300] [--subscribers 1000] [--ws 100]
        [--duration 30] [--warmup 5] [--procs 2] [--no-webhooks] [--dump FILE] [--py-spy FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psutil  # type: ignore[import-untyped]
from _common import (
    API_KEY,
    AUTH,
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

from rtms_gateway.protocol.constants import MediaType
from rtms_gateway.simulator import build_meeting

SEED = 6
CONNECT_AT_ONCE = 50  # subscribers connecting at a time, per process
SEGMENT = "transcript.segment"


# ---- SSE over raw asyncio streams (cheaper than an HTTP client per connection) -----------


class SseClient:
    """One SSE subscription: GET `path`, de-chunk the body, hand each event's (id, event,
    data) to `on_event`. `last_id` is the cursor to resume from."""

    def __init__(self, port: int, path: str, on_event: Any, last_id: str | None = None) -> None:
        self.port, self.path, self.on_event, self.last_id = port, path, on_event, last_id
        self.writer: asyncio.StreamWriter | None = None
        self.closing = False

    async def connect(self) -> asyncio.StreamReader:
        reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        resume = f"Last-Event-ID: {self.last_id}\r\n" if self.last_id is not None else ""
        self.writer.write((f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                           f"Authorization: Bearer {API_KEY}\r\nAccept: text/event-stream\r\n"
                           f"{resume}\r\n").encode())
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"{self.path}: {status.decode().strip()}")
        chunked = False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            chunked |= line.lower().startswith(b"transfer-encoding: chunked")
        if not chunked:
            raise RuntimeError(f"{self.path}: the body is not chunked")
        return reader

    async def run(self, reader: asyncio.StreamReader) -> str | None:
        """Until the stream ends; why, if the server ended it."""
        buffer = b""
        try:
            while True:
                size = int((await reader.readline()).strip() or b"0", 16)
                if size == 0:
                    return "the server ended the stream"
                buffer += (await reader.readexactly(size + 2))[:-2]
                while b"\n\n" in buffer:
                    block, buffer = buffer.split(b"\n\n", 1)
                    fields = dict(line.split(b": ", 1) for line in block.split(b"\n")
                                  if line and not line.startswith(b":"))
                    if b"id" in fields:
                        self.last_id = fields[b"id"].decode()
                    if b"data" in fields:
                        self.on_event(fields.get(b"event", b"").decode(), fields[b"data"])
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            return repr(exc) if not self.closing else None

    def close(self) -> None:
        self.closing = True
        if self.writer is not None:
            self.writer.close()


def ws_url(port: int, query: str) -> str:
    return f"ws://127.0.0.1:{port}/api/live/ws?{query}"


async def ws_follow(ws: Any, on_item: Any) -> str | None:
    """Hand each message to `on_item` until the socket closes; why it closed, if not by us."""
    import websockets

    try:
        async for message in ws:
            on_item(json.loads(message))
    except websockets.ConnectionClosed as exc:
        return repr(exc)
    return None


# ---- the subscriber processes -----------------------------------------------------------


def subscribers_main(plan_file: str) -> None:
    """Open the plan's SSE and WebSocket subscriptions, print `ready`, note each segment's
    latency until a line on stdin, then print the figures as JSON."""
    plan = json.loads(Path(plan_file).read_text())
    port = plan["port"]
    sse_ms: list[tuple[float, float, float]] = []
    ws_ms: list[tuple[float, float, float]] = []
    errors: list[str] = []

    def note(into: list[tuple[float, float, float]], item: dict[str, Any]) -> None:
        if item.get("type") == SEGMENT:  # (sent at, latency, of which until committed)
            now, sent_at = time.time() * 1000, item["data"]["end_time"]
            into.append((sent_at, now - sent_at, item["stored_at_ms"] - sent_at))

    async def main() -> None:
        import websockets

        gate = asyncio.Semaphore(CONNECT_AT_ONCE)
        tasks: list[asyncio.Task[str | None]] = []

        async def open_sse(path: str) -> None:
            client = SseClient(port, path, lambda _event, data: note(sse_ms, json.loads(data)))
            async with gate:
                reader = await client.connect()
            tasks.append(asyncio.ensure_future(client.run(reader)))

        async def open_ws(query: str) -> None:
            async with gate:
                ws = await websockets.connect(ws_url(port, query), additional_headers=AUTH,
                                              subprotocols=["rtms.live"], max_queue=None)  # type: ignore[list-item]
            tasks.append(asyncio.ensure_future(ws_follow(ws, lambda item: note(ws_ms, item))))

        def ended_early() -> list[str]:
            return [f"{t.result()}" for t in tasks if t.done() and t.result() is not None]

        opened = await asyncio.gather(*(open_sse(p) for p in plan["sse"]),
                                      *(open_ws(q) for q in plan["ws"]), return_exceptions=True)
        errors.extend(repr(e) for e in opened if isinstance(e, BaseException))
        print(f"ready {len(opened) - len(errors)} {len(errors)}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        errors.extend(ended_early())
        print(json.dumps({"sse_ms": sse_ms, "ws_ms": ws_ms, "errors": errors[:5]}), flush=True)
        # stay connected until killed: the gateway is stopped first, and ends the feeds
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    asyncio.run(main())
    os._exit(0)  # hundreds of open connections: no need to close them one by one


def receiver_main(port: int, secrets_file: str) -> None:
    """The local webhook receiver. `/live`: answers 200 and notes each segment's latency.
    `/burst`: answers 503 until a line `open` on stdin, then 200, noting arrival times.
    Every delivery's signature is checked; each `webhook-id` is counted once (dedup).
    A line `report` prints the figures as JSON."""
    secrets = {name: base64.b64decode(s.removeprefix("whsec_"))
               for name, s in json.loads(Path(secrets_file).read_text()).items()}
    live_ms: list[tuple[float, float]] = []  # (sent at, latency)
    burst_at: list[float] = []
    seen: dict[str, set[str]] = defaultdict(set)
    counts = {"duplicates": 0, "bad_signatures": 0, "refused": 0}
    state = {"open": False}

    def signed(name: str, headers: dict[bytes, bytes], body: bytes) -> bool:
        msg_id, stamp = headers.get(b"webhook-id", b""), headers.get(b"webhook-timestamp", b"")
        mac = hmac.new(secrets[name], msg_id + b"." + stamp + b"." + body, hashlib.sha256).digest()
        expected = b"v1," + base64.b64encode(mac)
        return any(hmac.compare_digest(expected, s) for s in headers.get(b"webhook-signature", b"").split())

    def take(path: str, headers: dict[bytes, bytes], body: bytes) -> int:
        name = path.strip("/")
        if name not in secrets:
            return 404
        if name == "burst" and not state["open"]:
            counts["refused"] += 1
            return 503
        if not signed(name, headers, body):
            counts["bad_signatures"] += 1
            return 400
        msg_id = headers[b"webhook-id"].decode()
        if msg_id in seen[name]:
            counts["duplicates"] += 1
            return 200
        seen[name].add(msg_id)
        now = time.time() * 1000
        if name == "live":
            payload = json.loads(body)
            if payload["type"] == SEGMENT:
                live_ms.append((payload["data"]["end_time"], now - payload["data"]["end_time"]))
        else:
            burst_at.append(now)
        return 200

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while request := await reader.readline():
                path = request.split(b" ")[1].decode()
                headers: dict[bytes, bytes] = {}
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
                status = take(path, headers, body)
                writer.write(b"HTTP/1.1 %d X\r\ncontent-length: 0\r\n\r\n" % status)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        async with server:
            while command := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
                if command == "open":
                    state["open"] = True
                elif command == "report":
                    print(json.dumps({"live_ms": live_ms, "burst_at": burst_at,
                                      "live_ids": len(seen["live"]), **counts}), flush=True)

    asyncio.run(main())


class Child:
    """A helper process of this script, spoken to by lines on stdin/stdout."""

    def __init__(self, *args: str) -> None:
        self.role = " ".join(args[:2])
        self.proc = subprocess.Popen([sys.executable, __file__, *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    async def line(self, send: str | None = None, timeout: float = 300) -> str:
        """The next line it prints (after sending `send`, if given)."""
        if send is not None:
            self.send(send)
        out = self.proc.stdout
        assert out is not None
        got = await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, out.readline), timeout)
        if not got:
            raise RuntimeError(f"helper process {self.role} ended")
        return got

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


# ---- the resuming subscribers (in this process) ------------------------------------------


class Resumer:
    """Every meeting's transcripts from the first item, over SSE or a WebSocket; `drop()`
    disconnects, `resume()` reconnects after the last cursor got."""

    def __init__(self, port: int, transport: str) -> None:
        self.port, self.transport = port, transport
        self.got: list[tuple[str, str]] = []  # (cursor, meeting_uuid) in arrival order
        self.task: asyncio.Task[str | None] | None = None
        self.sse: SseClient | None = None
        self.ws: Any = None

    def _item(self, item: dict[str, Any]) -> None:
        if item.get("type") == SEGMENT:
            self.got.append((item["cursor"], item["meeting_uuid"]))

    async def connect(self, after: str) -> None:
        import websockets

        if self.transport == "sse":
            self.sse = SseClient(self.port, f"/api/live?kinds=transcript&after={quote(after, safe='')}",
                                 lambda _event, data: self._item(json.loads(data)))
            self.task = asyncio.ensure_future(self.sse.run(await self.sse.connect()))
        else:
            self.ws = await websockets.connect(ws_url(self.port, f"kinds=transcript&after={quote(after, safe='')}"),
                                               additional_headers=AUTH, max_queue=None)
            self.task = asyncio.ensure_future(ws_follow(self.ws, self._item))

    async def drop(self) -> None:
        if self.sse is not None:
            self.sse.close()
        if self.ws is not None:
            await self.ws.close()
        if self.task is not None:
            await self.task

    async def resume(self) -> None:
        await self.connect(self.got[-1][0] if self.got else "")


async def stored_transcripts(port: int, uuids: list[str]) -> dict[str, list[str]]:
    """Each meeting's transcript cursors, page by page from the REST API, in feed order."""
    out: dict[str, list[str]] = {}
    async with httpx.AsyncClient(headers=AUTH, base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        for uuid in uuids:
            cursors: list[str] = []
            after: str | None = ""
            while after is not None:
                answer = await http.get(f"/api/meetings/{quote(uuid, safe='')}/transcript",
                                        params={"after": after, "limit": 1000})
                if answer.status_code == 404:  # a meeting that never started: nothing stored
                    break
                page = answer.raise_for_status().json()
                cursors += [row["cursor"] for row in page["segments"]]
                after = page["next"]
            out[uuid] = cursors
    return out


def compare(stored: dict[str, list[str]], got: list[tuple[str, str]]) -> dict[str, int]:
    """Lost, duplicated and out-of-order against the stored sequence of each meeting."""
    by_meeting: dict[str, list[str]] = defaultdict(list)
    for cursor, uuid in got:
        by_meeting[uuid].append(cursor)
    expected = {c for cursors in stored.values() for c in cursors}
    received = [c for c, _ in got]
    lost = len(expected - set(received))
    duplicated = len(received) - len(set(received))
    extra = len(set(received) - expected)
    disordered = sum(by_meeting.get(uuid, []) != cursors for uuid, cursors in stored.items())
    return {"expected": len(expected), "received": len(received), "lost": lost,
            "duplicated": duplicated, "unknown": extra, "meetings_mismatched": disordered}


# ---- one run -----------------------------------------------------------------------------


def gateway_env(data: Path, ca: Path, port: int, subscribers: int) -> dict[str, str]:
    return {**os.environ, "ZOOM_CLIENT_ID": CLIENT_ID, "ZOOM_CLIENT_SECRET": CLIENT_SECRET,
            "ZOOM_SECRET_TOKEN": TOKEN, "RTMS_DATA_DIR": str(data), "RTMS_CA_FILE": str(ca),
            "RTMS_LOG_LEVEL": "WARNING", "RTMS_DATABASE_URL": "", "RTMS_MEDIA": "transcript",
            "RTMS_API_KEYS": API_KEY, "PORT": str(port),
            "RTMS_LIVE_MAX_SUBSCRIBERS": str(subscribers + 10),
            "RTMS_HTTP_MAX_CONNECTIONS": str(subscribers + 200),
            # the burst receiver refuses while the meetings run: retried every 1-2 s (not
            # more often: each attempt is a write competing with ingest)
            "RTMS_WEBHOOK_ALLOW_PRIVATE": "true", "RTMS_WEBHOOK_RETRY_INITIAL_S": "1",
            "RTMS_WEBHOOK_RETRY_MAX_S": "2"}


async def add_webhooks(port: int, receiver_port: int) -> dict[str, str] | None:
    """Subscriptions `live` and `burst` to the receiver (their secrets), None if the gateway
    has no outbound webhooks."""
    secrets = {}
    async with httpx.AsyncClient(headers=AUTH, base_url=f"http://127.0.0.1:{port}") as http:
        for name in ("live", "burst"):
            r = await http.post("/api/webhooks", json={"url": f"http://127.0.0.1:{receiver_port}/{name}",
                                                       "events": [SEGMENT]})
            if r.status_code in (404, 405):
                return None
            secrets[name] = r.raise_for_status().json()["secret"]
    return secrets


async def run_once(n: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    port = free_port()
    sim, data, ca = await simulator_for(workdir, f"n{n}", port)
    scripts = [build_meeting(SEED, i, duration_s=args.duration, offered=MediaType.TRANSCRIPT) for i in range(n)]
    uuids = [s.owner_id for s in scripts]
    gateway = subprocess.Popen([sys.executable, "-m", "rtms_gateway", "serve", "--port", str(port)],
                               env=gateway_env(data, ca, port, args.subscribers + args.ws), cwd=data)
    children: list[Child] = []
    receiver: Child | None = None
    try:
        await wait_http(f"http://127.0.0.1:{port}/healthz")
        proc = psutil.Process(gateway.pid)
        receiver_port = free_port()
        secrets = None if args.no_webhooks else await add_webhooks(port, receiver_port)
        if secrets is not None:
            (data / "secrets.json").write_text(json.dumps(secrets))
            receiver = Child("--role", "receiver", "--receiver-port", str(receiver_port),
                             "--plan", str(data / "secrets.json"))
            await receiver.line()
        # S SSE and W WebSocket subscribers, meeting i % N each, dealt over the processes
        sse_paths = [f"/api/meetings/{quote(uuids[i % n], safe='')}/live?kinds=transcript"
                     for i in range(args.subscribers)]
        ws_queries = [f"meeting={quote(uuids[i % n], safe='')}&kinds=transcript" for i in range(args.ws)]
        for k in range(args.procs):
            plan = data / f"plan{k}.json"
            plan.write_text(json.dumps({"port": port, "sse": sse_paths[k::args.procs],
                                        "ws": ws_queries[k::args.procs]}))
            children.append(Child("--role", "subscribers", "--plan", str(plan)))
        ready = [(await c.line()).split() for c in children]
        failed = sum(int(r[2]) for r in ready)
        resumers = [Resumer(port, "sse"), Resumer(port, "ws")]
        for r in resumers:
            await r.connect("")

        handles = [sim.start_meeting(s) for s in scripts]
        streaming = sum(await asyncio.gather(*(h.wait_streaming(120) for h in handles)))
        # steady state: segments sent from `--warmup` s after every meeting streams (the
        # start-up, N meetings connecting at once, and the backlog it leaves, is reported apart)
        await asyncio.sleep(args.warmup)
        steady_from = time.time() * 1000
        sim.pacer.reset_stats()
        before = await metrics(port)
        cpu0, wall0 = sum(proc.cpu_times()[:2]), time.perf_counter()
        spying = None
        if args.py_spy:
            spy = str(Path(sys.executable).parent / "py-spy")
            spying = subprocess.Popen([spy, "record", "-p", str(gateway.pid), "-d", str(int(args.duration * 0.6)),
                                       "-f", "raw", "-o", f"{args.py_spy}.{n}", "-r", "100"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await asyncio.sleep(args.duration / 2)  # mid-run: the resumers drop, and come back
        for r in resumers:
            await r.drop()
        await asyncio.sleep(1.0)  # segments are stored meanwhile
        for r in resumers:
            await r.resume()
        records = [await h.wait(args.duration + 120) for h in handles]
        cpu1, wall1 = sum(proc.cpu_times()[:2]), time.perf_counter()
        lag_p99_ms = 1000 * histogram_quantile(before, await metrics(port), "rtms_event_loop_lag_seconds", 0.99)
        stats = sim.pacer_stats()
        if spying is not None:
            spying.wait(60)
        sent = sum(r.sent.transcripts for r in records)
        sent_by_meeting = {r.rtms_stream_id: r.sent.transcripts for r in records}
        per_uuid = {s.owner_id: sent_by_meeting[s.rtms_stream_id] for s in scripts}

        # everything stored, and the resumers caught up (or a time limit)
        stored = await stored_transcripts(port, uuids)
        end = time.monotonic() + 30
        while time.monotonic() < end and (sum(map(len, stored.values())) < sent
                                          or any(len(r.got) < sent for r in resumers)):
            await asyncio.sleep(0.2)
            stored = await stored_transcripts(port, uuids)
        checks = {r.transport: compare(stored, r.got) for r in resumers}
        for r in resumers:
            await r.drop()

        results = [json.loads(await c.line("stop")) for c in children]
        sse: list[tuple[float, float, float]] = [tuple(x) for res in results for x in res["sse_ms"]]
        ws: list[tuple[float, float, float]] = [tuple(x) for res in results for x in res["ws_ms"]]
        if args.dump:
            Path(f"{args.dump}.{n}.json").write_text(json.dumps({"steady_from": steady_from, "sse": sse, "ws": ws}))
        sse_ms = sorted(lat for at, lat, _ in sse if at >= steady_from)
        ws_ms = sorted(lat for at, lat, _ in ws if at >= steady_from)
        # the part of it until the store wrote the segment (the item's stored_at_ms)
        committed_ms = sorted(c for at, _, c in sse + ws if at >= steady_from)
        out: dict[str, Any] = {
            "n": n, "streaming": streaming, "subscribers": args.subscribers, "ws": args.ws, "failed": failed,
            "sent": sent, "stored": sum(map(len, stored.values())),
            "sse_expected": sum(per_uuid[uuids[i % n]] for i in range(args.subscribers)),
            "ws_expected": sum(per_uuid[uuids[i % n]] for i in range(args.ws)),
            "sse_got": len(sse), "ws_got": len(ws), "steady": len(sse_ms) + len(ws_ms),
            "sse_p50": percentile(sse_ms, 0.5), "sse_p99": percentile(sse_ms, 0.99),
            "ws_p50": percentile(ws_ms, 0.5), "ws_p99": percentile(ws_ms, 0.99),
            "startup_p99": percentile(sorted(lat for at, lat, _ in sse + ws if at < steady_from), 0.99),
            "committed_p50": percentile(committed_ms, 0.5), "committed_p99": percentile(committed_ms, 0.99),
            "gateway_cpu_pct": 100 * (cpu1 - cpu0) / (wall1 - wall0), "lag_p99_ms": lag_p99_ms,
            "sim_late_p99": stats.lateness_p99_ms, "resume": checks,
            "errors": [e for res in results for e in res["errors"]][:3],
        }
        if receiver is not None:
            out.update(await webhook_figures(receiver, sent, steady_from))
        return out
    finally:
        gateway.send_signal(signal.SIGINT)  # first: it ends the feeds of clients still there
        try:
            gateway.wait(60)
        except subprocess.TimeoutExpired:
            gateway.kill()
        for c in children:
            c.stop()
        if receiver is not None:
            receiver.stop()
        await sim.stop()


async def webhook_figures(receiver: Child, sent: int, steady_from: float) -> dict[str, Any]:
    """The live subscription's latencies (once it has every segment), then the burst:
    the receiver opens, and the drain rate is taken once it has every segment."""
    end = time.monotonic() + 60
    report = json.loads(await receiver.line("report"))
    while report["live_ids"] < sent and time.monotonic() < end:
        await asyncio.sleep(0.5)
        report = json.loads(await receiver.line("report"))
    receiver.send("open")
    end = time.monotonic() + 300
    burst = json.loads(await receiver.line("report"))
    while len(burst["burst_at"]) < sent and time.monotonic() < end:
        await asyncio.sleep(0.5)
        burst = json.loads(await receiver.line("report"))
    at = burst["burst_at"]
    live_ms = sorted(lat for at, lat in report["live_ms"] if at >= steady_from)
    return {"hook_got": report["live_ids"], "hook_p50": percentile(live_ms, 0.5),
            "hook_p99": percentile(live_ms, 0.99), "burst": len(at),
            "burst_per_s": (len(at) - 1) / max((at[-1] - at[0]) / 1000, 1e-9) if len(at) > 1 else 0.0,
            "hook_duplicates": burst["duplicates"], "hook_bad_signatures": burst["bad_signatures"]}


def print_row(r: dict[str, Any]) -> None:
    hook = (f"{r['hook_got']:>6} {r['hook_p50']:>7.0f} {r['hook_p99']:>7.0f} {r['burst']:>6} {r['burst_per_s']:>8.0f}"
            if "hook_got" in r else f"{'n/a':>6} {'':>7} {'':>7} {'':>6} {'':>8}")
    print(f"{r['n']:>5} {r['subscribers']:>5} {r['ws']:>4} {r['sent']:>6} {r['stored']:>6} "
          f"{r['sse_got']:>6}/{r['sse_expected']:<6} {r['sse_p50']:>7.0f} {r['sse_p99']:>7.0f} "
          f"{r['ws_got']:>5}/{r['ws_expected']:<5} {r['ws_p50']:>7.0f} {r['ws_p99']:>7.0f} {hook} "
          f"{r['gateway_cpu_pct']:>7.1f} {r['sim_late_p99']:>8.1f} {r['startup_p99']:>10.0f}", flush=True)
    print(f"      of which until stored (the item's stored_at_ms, taken in the transaction): "
          f"p50 {r['committed_p50']:.0f} ms, p99 {r['committed_p99']:.0f} ms; the gateway's event-loop "
          f"lag p99 {r['lag_p99_ms']:.1f} ms", flush=True)
    for transport, c in r["resume"].items():
        print(f"      resume over {transport}: {c['received']} received of {c['expected']} stored: "
              f"lost {c['lost']}, duplicated {c['duplicated']}, unknown {c['unknown']}, "
              f"meetings whose sequence differs {c['meetings_mismatched']}", flush=True)
    if "hook_got" in r:
        print(f"      webhooks: duplicates (dropped by webhook-id) {r['hook_duplicates']}, "
              f"bad signatures {r['hook_bad_signatures']}", flush=True)
    if not r["steady"]:
        print("      no segment was sent once every meeting streamed (the start-up outlasted the "
              "meetings): the p50/p99 columns are empty; use a longer --duration", flush=True)
    if r["streaming"] < r["n"]:
        print(f"      only {r['streaming']} of {r['n']} meetings streamed", flush=True)
    if r["failed"] or r["errors"]:
        print(f"      subscribers refused: {r['failed']} {r['errors']}", flush=True)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'N':>5} {'S':>5} {'W':>4} {'sent':>6} {'stored':>6} {'SSE got/expected':>13} {'p50 ms':>7} "
              f"{'p99 ms':>7} {'WS got/exp':>11} {'p50 ms':>7} {'p99 ms':>7} {'hook':>6} {'p50 ms':>7} "
              f"{'p99 ms':>7} {'burst':>6} {'burst/s':>8} {'gw CPU%':>7} {'sim late':>8} {'start p99':>10}", flush=True)
        for n in (int(x) for x in args.meetings.split(",")):
            print_row(await run_once(n, args, Path(tmp)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--meetings", default="100,300")
    parser.add_argument("--subscribers", type=int, default=1000, help="SSE subscribers, spread over the meetings")
    parser.add_argument("--ws", type=int, default=100, help="WebSocket subscribers, spread over the meetings")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--procs", type=int, default=2, help="processes the subscribers are dealt over")
    parser.add_argument("--warmup", type=float, default=5.0,
                        help="seconds after every meeting streams before the steady state is measured")
    parser.add_argument("--no-webhooks", action="store_true", help="SSE and WebSocket only")
    parser.add_argument("--dump", help="write every (sent at, latency) to FILE.N.json")
    parser.add_argument("--py-spy", help="sample the gateway into FILE.N (py-spy raw)")
    parser.add_argument("--role", default="bench", choices=["bench", "subscribers", "receiver"])
    parser.add_argument("--plan")
    parser.add_argument("--receiver-port", type=int)
    args = parser.parse_args()
    if args.role == "subscribers":
        subscribers_main(args.plan)
    elif args.role == "receiver":
        receiver_main(args.receiver_port, args.plan)
    else:
        asyncio.run(main(args))
