"""`rtms-gateway demo`: the gateway and the simulator in one process.

A scripted meeting plays through the real path (signed webhook, TLS sockets, handshakes,
store), and its transcript prints in the terminal as it arrives. Credentials are made up
for the run and shared by both sides, so no Zoom account or configuration is needed.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shlex
import sys
from urllib.parse import quote

import msgspec
from pydantic import SecretStr
from rich.console import Console
from rich.markup import escape
from sqlalchemy.engine import make_url

from ..config import Settings
from ..simulator import Simulator, SimulatorConfig
from ..sinks.feed import FeedItem, FeedKind
from ..sinks.keys import KEY_FILE, read_key_file
from ..sinks.live import OVERFLOWED, LiveFilter, Subscription
from .heap import settle_after_start
from .lock import DataDirLock
from .service import Gateway, bind_socket, serve_http, stop_http

_COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "red")


class TranscriptPrinter:
    """Prints live records readably: time into the meeting, speaker, text."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.t0: int | None = None
        self.colours: dict[object, str] = {}
        self.names: dict[object, str] = {}  # leave events carry ids only

    def _clock(self, ms: int) -> str:
        if self.t0 is None:
            self.t0 = ms
        s = max(0, ms - self.t0) // 1000
        return f"{s // 60:02d}:{s % 60:02d}"

    def _colour(self, who: object) -> str:
        return self.colours.setdefault(who, _COLOURS[len(self.colours) % len(_COLOURS)])

    def show(self, item: FeedItem) -> None:
        """One committed feed item: a segment, a chat message, a join or a leave."""
        out = self.console.print
        data = msgspec.json.decode(item.data)
        if item.type == "transcript.segment":
            name = data["user_name"] or f"user {data['user_id']}"
            out(f"[dim]{self._clock(data['start_time'] or data['timestamp'])}[/dim] "
                f"[bold {self._colour(data['user_id'])}]{escape(name)}[/]: {escape(data['text'])}",
                highlight=False)
        elif item.type == "chat.message":
            sender = escape(data["sender_name"] or "?")
            said = "[dim](deleted)[/dim]" if data.get("deleted") else escape(data["text"])
            edit = " [dim](edited)[/dim]" if data.get("operation") == "update" else ""
            out(f"[dim]{self._clock(data['timestamp'])} chat[/dim] [bold]{sender}[/bold]: "
                f"{said}{edit}", highlight=False)
        elif item.type in ("participant.joined", "participant.left"):
            verb = "joined" if item.type == "participant.joined" else "left"
            if data["user_name"]:
                self.names[data["user_id"]] = data["user_name"]
            name = self.names.get(data["user_id"], f"user {data['user_id']}")
            out(f"[dim]{self._clock(data['timestamp'])} {escape(name)} {verb}[/dim]", highlight=False)


async def run_demo(settings: Settings, console: Console, *, duration: float, port: int,
                   keep_serving: bool) -> int:
    client_id, client_secret, secret_token = (secrets.token_urlsafe(16) for _ in range(3))
    lock = DataDirLock.acquire(settings.data_dir)  # before any file in it is touched
    try:
        sock = bind_socket(settings.host, port)
    except BaseException:
        lock.release()
        raise
    base = f"http://{settings.host}:{sock.getsockname()[1]}"
    sim = Simulator(SimulatorConfig(
        client_id=client_id, client_secret=client_secret, secret_token=secret_token,
        webhook_url=base + settings.webhook_path,
    ))
    await sim.start()
    ca_file = sim.write_ca(settings.data_dir / "simulator-ca.pem")
    settings = settings.model_copy(update={
        "zoom_client_id": client_id,
        "zoom_client_secret": SecretStr(client_secret),
        "zoom_secret_token": SecretStr(secret_token),
        "ca_file": ca_file,
    })
    try:
        gateway = await Gateway.open(settings, lock)
    except BaseException:
        sock.close()
        await sim.stop()
        raise
    settle_after_start()  # the gateway's heap, as `serve` leaves it
    server = await serve_http(gateway, sock)
    printer = TranscriptPrinter(console)
    feed = gateway.live.subscribe(LiveFilter(kinds=(FeedKind.TRANSCRIPT, FeedKind.CHAT,
                                                    FeedKind.PARTICIPANT)))
    printing = asyncio.get_running_loop().create_task(_print_feed(feed, printer))
    try:
        console.print(f"[bold]rtms-gateway demo[/bold]: gateway on {base}, simulator on {sim.base_url}")
        if keep_serving:  # the dashboard outlives the meeting: worth opening now, to watch it live
            key = _login_key(settings)
            console.print(f"dashboard: [bold]{base}/[/bold]; log in with the key "
                          f"{escape(key) if key else '(one from `rtms-gateway keys create`)'}",
                          highlight=False, soft_wrap=True)
        handle = sim.start_meeting(duration=duration, seed=secrets.randbelow(2**31))
        uuid = handle.script.owner_id
        console.print(f"meeting [bold]{uuid}[/bold] started; transcript follows\n", highlight=False)
        record = await handle.wait()
        await gateway.manager.wait_idle()
        await gateway.pipeline.flush()
        await asyncio.sleep(0.1)
        meeting = await gateway.store.get_meeting(uuid)
        segments = await gateway.store.transcript(uuid)
        shown = make_url(settings.resolved_database_url).render_as_string(hide_password=True)
        console.print(f"\nmeeting ended ({record.outcome}); {len(segments)} transcript segments stored "
                      f"in {escape(shown)}; to look at it:", highlight=False, soft_wrap=True)
        command = this_command()
        for line in (f"{command} meetings", f"{command} export {shlex.quote(uuid)} --format vtt"):
            console.print(f"  {escape(line)}", highlight=False, soft_wrap=True)  # whole, to copy
        ok = meeting is not None and len(segments) == len(handle.script.utterances)
        if keep_serving:  # an address only while something answers there
            console.print(f"serving on {base} (dashboard at {base}/); Ctrl-C to stop", highlight=False)
            url = f"{base}/api/meetings/{quote(uuid, safe='')}/transcript?format=txt"
            console.print(f'  curl -H "Authorization: Bearer {_key_argument(settings)}" {shlex.quote(url)}',
                          highlight=False, soft_wrap=True)
            await server.wait_stopped()
        return 0 if ok else 1
    finally:
        printing.cancel()
        feed.close()
        if not server.should_exit:
            await stop_http(server)
        await gateway.close()
        await sim.stop()


def _login_key(settings: Settings) -> str | None:
    """A key to log in to the dashboard with: the configured one, or the one the gateway
    wrote to its data dir on its first start."""
    configured = settings.configured_api_keys
    return configured[0] if configured else read_key_file(settings.data_dir)


def _key_argument(settings: Settings) -> str:
    """How a shell command gets an API key: from the file the gateway wrote, or the
    environment's."""
    key_file = settings.data_dir / KEY_FILE
    if not settings.configured_api_keys and key_file.exists():
        return f"$(cat {shlex.quote(str(key_file))})"
    return "$RTMS_API_KEY"  # one of those in RTMS_API_KEYS


def this_command() -> str:
    """How to run this program again from the same directory: the executable as it was
    started (`.venv/bin/rtms-gateway`, or a bare name PATH found), or `python -m
    rtms_gateway` when started that way."""
    started_as = sys.argv[0]
    if os.path.basename(started_as) == "__main__.py":
        return f"{shlex.quote(sys.executable)} -m rtms_gateway"
    return shlex.quote(started_as)


async def _print_feed(feed: Subscription, printer: TranscriptPrinter) -> None:
    while True:
        try:
            item = await feed.get()
        except StopAsyncIteration:
            return
        if isinstance(item, FeedItem):
            printer.show(item)
        elif item is OVERFLOWED:  # the terminal cannot keep up: the store has it all
            printer.console.print("[dim](the live view fell behind; the store has everything)[/dim]")
            return
