"""The `rtms-gateway` command: serve | demo | simulate | meetings | export | keys | webhooks |
streams."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .logs import configure_logging, escape

if TYPE_CHECKING:  # imported where used: `--help` stays quick
    from .config import Settings
    from .sinks.cursors import Cursored
    from .sinks.records import MediaFile, TranscriptSegment
    from .sinks.store import Store

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Zoom Realtime Media Streams gateway, with a built-in Zoom RTMS simulator.",
)
console = Console()
T = TypeVar("T")


def run_loop(settings: Settings, main: Coroutine[Any, Any, T]) -> T:
    """Run the gateway's main coroutine on the event loop the settings choose."""
    if settings.event_loop == "uvloop":
        try:
            import uvloop
        except ImportError:  # not built for this platform (Windows): asyncio's own loop
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)


def _settings() -> Settings:
    from .config import load_settings

    with startup_errors():
        return load_settings()


@contextlib.contextmanager
def startup_errors(settings: object = None) -> Iterator[None]:
    """A gateway that cannot start as configured says why in one line on stderr and exits
    2; the traceback too at RTMS_LOG_LEVEL=DEBUG."""
    from .protocol.errors import StartupError

    try:
        yield
    except StartupError as exc:
        if getattr(settings, "log_level", None) == "DEBUG":
            traceback.print_exc()
        print(str(exc), file=sys.stderr, flush=True)
        raise typer.Exit(2) from None


def _using_store(settings: Settings, action: Callable[[Store], Awaitable[T]]) -> T:
    """`action(store)` against the configured store, which is closed after; a store that
    cannot be opened ends the command in one line."""
    from .gateway.service import open_store

    async def run() -> T:
        store = await open_store(settings)
        try:
            return await action(store)
        finally:
            await store.close()

    with startup_errors(settings):
        return asyncio.run(run())


@app.command()
def serve(
    host: str = typer.Option(None, help="Interface to listen on (default: HOST or 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default: PORT or 3000)."),
) -> None:
    """Run the webhook endpoint and the REST API."""
    from .gateway.service import run_server

    settings = _settings()
    configure_logging(settings.log_level)
    with startup_errors(settings):
        run_loop(settings, run_server(settings, host or settings.host, port if port is not None else settings.port))


@app.command()
def demo(
    duration: float = typer.Option(20.0, help="Length of the scripted meeting, in seconds."),
    port: int = typer.Option(0, help="Gateway port (0 picks a free one)."),
    keep_serving: bool = typer.Option(False, help="Keep the gateway and API running afterwards."),
) -> None:
    """Gateway and simulator in one process: a scripted meeting, its transcript live."""
    from .gateway.demo import run_demo

    settings = _settings()
    configure_logging("WARNING")  # the terminal shows the meeting; warnings only
    with startup_errors(settings):
        code = run_loop(settings, run_demo(settings, console, duration=duration, port=port, keep_serving=keep_serving))
    raise typer.Exit(code)


@app.command()
def meetings(limit: int = typer.Option(50, help="How many, newest first.")) -> None:
    """List stored meetings, newest first."""
    settings = _settings()
    rows = [m.to_dict() for m in _using_store(settings, lambda store: store.list_meetings(limit=limit, offset=0))]
    if console.is_terminal:
        console.print(_meetings_table(rows) if rows else "no meetings stored yet")
    else:  # piped: one plain line per meeting, for cut, awk and friends
        sys.stdout.write(_meetings_tsv(rows))


_TSV_COLUMNS = ("meeting_uuid", "product", "state", "started", "stopped", "segments", "chat", "events")


def _meetings_tsv(rows: list[dict[str, Any]]) -> str:
    lines = ["\t".join(_TSV_COLUMNS)]
    for d in rows:
        values = (d["meeting_uuid"], d["product"], d["state"], _when(d["started_at_ms"]),
                  _when(d["stopped_at_ms"]), d["segment_count"], d["chat_count"], d["event_count"])
        lines.append("\t".join(escape(str(v)) for v in values))  # a tab or newline in an id stays in its field
    return "\n".join(lines) + "\n"


def _meetings_table(rows: list[dict[str, Any]]) -> Table:
    """Fits 80 columns: the UUID whole (to copy), then state, start, length and counts."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("meeting_uuid", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("started", no_wrap=True)
    table.add_column("length", justify="right", no_wrap=True)
    table.add_column("segments", justify="right")
    table.add_column("chat", justify="right")
    for d in rows:
        started, stopped = d["started_at_ms"], d["stopped_at_ms"]
        table.add_row(Text(escape(d["meeting_uuid"])), d["state"], _when(started, "%m-%d %H:%M"),
                      _length(started, stopped), str(d["segment_count"]), str(d["chat_count"]))
    return table


@app.command()
def export(
    meeting_uuid: str = typer.Argument(..., help="The meeting's UUID, as Zoom gives it."),
    format: str = typer.Option("txt", "--format", "-f", help="txt | vtt | srt | json | wav | mp4"),
    output: Path | None = typer.Option(
        None, "-o", "--output",
        help="File to write (stdout if absent; required for wav/mp4, a folder when several files match)."),
    participant: str | None = typer.Option(
        None, "--participant", "-p", help="wav/mp4: this participant's file (user id or name)."),
    kind: str | None = typer.Option(None, "--kind", help="mp4: video (default) or share."),
) -> None:
    """Export a stored meeting's transcript, audio (wav) or video (mp4)."""
    from .sinks.exports import TRANSCRIPT_FORMATS, render_transcript
    from .sinks.media_export import EXPORT_FORMATS, pick_files

    if format not in TRANSCRIPT_FORMATS and format not in EXPORT_FORMATS:
        known = ", ".join([*TRANSCRIPT_FORMATS, *EXPORT_FORMATS])
        console.print(f"[red]unknown format {format!r}[/red]; use one of {known}")
        raise typer.Exit(2)
    if format in EXPORT_FORMATS:
        if output is None:
            console.print(f"[red]--output is required for {format}[/red]")
            raise typer.Exit(2)
        settings = _settings()
        files = _using_store(settings, lambda store: _meeting_files(store, meeting_uuid))
        if files is None:
            _no_meeting(meeting_uuid)
        chosen = pick_files(files, format, kind=kind, participant=participant)
        _export_media(chosen, settings.data_dir, output, format)
        return
    rows = _using_store(_settings(), lambda store: _meeting_transcript(store, meeting_uuid))
    if rows is None:
        _no_meeting(meeting_uuid)
    text = render_transcript(rows, format, meeting_uuid=meeting_uuid)
    if output:
        output.write_text(text, encoding="utf-8")
        console.print(f"wrote {len(rows)} segments to {output}", highlight=False)
    else:
        sys.stdout.write(text)


async def _meeting_files(store: Store, meeting_uuid: str) -> list[MediaFile] | None:
    """The meeting's media files; None if there is no such meeting."""
    if await store.get_meeting(meeting_uuid) is None:
        return None
    return await store.media_files(meeting_uuid)


async def _meeting_transcript(store: Store,
                              meeting_uuid: str) -> list[Cursored[TranscriptSegment]] | None:
    """The meeting's whole transcript; None if there is no such meeting."""
    if await store.get_meeting(meeting_uuid) is None:
        return None
    return await store.transcript_page(meeting_uuid)


def _no_meeting(meeting_uuid: str) -> NoReturn:
    console.print(f"[red]no meeting {meeting_uuid!r} in the store[/red]")
    raise typer.Exit(1)


def _export_media(files: list[MediaFile], data_dir: Path, output: Path, fmt: str) -> None:
    import shutil

    from .sinks.paths import MediaPathError, media_path

    if not files:
        console.print(f"[red]no {fmt} file for that meeting[/red] (still being written, or not taken in)")
        raise typer.Exit(1)
    try:
        sources = [media_path(data_dir, f.path) for f in files]
    except MediaPathError as exc:
        console.print(f"[red]not exported:[/red] {exc}")
        raise typer.Exit(1) from None
    if len(files) == 1 and not output.is_dir():
        targets = [output]
    else:
        output.mkdir(parents=True, exist_ok=True)
        targets = [output / source.name for source in sources]
    for f, source, target in zip(files, sources, targets):
        shutil.copyfile(source, target)
        console.print(f"wrote {f.kind} of {f.user_name or f.user_id} to {target}", highlight=False, markup=False)


keys_app = typer.Typer(no_args_is_help=True, help="API keys: every route but the webhook and /healthz needs one.")
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    name: str = typer.Option(..., "--name", help="A name to know the key by (who or what uses it)."),
    read_only: bool = typer.Option(False, "--read-only", help="Reads only (default: admin)."),
) -> None:
    """Make a key. It is printed once, on stdout; only its hash is kept."""
    import re

    from .sinks.keys import KeyNameTaken, Scope

    if not re.fullmatch(r"[A-Za-z0-9._@-]{1,64}", name):
        console.print("[red]--name[/red]: 1 to 64 letters, digits or . _ @ -")
        raise typer.Exit(2)
    scope = Scope.READ if read_only else Scope.ADMIN
    try:
        key = _using_store(_settings(), lambda store: store.keys.create(name, scope))
    except KeyNameTaken as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    sys.stdout.write(key + "\n")
    Console(stderr=True).print(f"key {name!r} ({scope.value}) made; it is not shown again", highlight=False)


@keys_app.command("list")
def keys_list() -> None:
    """The keys kept in the store (names, scopes, first characters; never the keys)."""
    from .sinks.keys import SHOWN_CHARS, read_key_file

    settings = _settings()
    found = _using_store(settings, lambda store: store.keys.list())
    in_file = read_key_file(settings.data_dir)
    file_shown = in_file[:SHOWN_CHARS] if in_file else None
    table = Table()
    for column in ("name", "scope", "key", "created", "last used"):
        table.add_column(column)
    for k in found:
        mark = " (api-key file)" if file_shown == k.shown else ""
        table.add_row(k.name, k.scope.value, k.shown + "…" + mark, _when(k.created_at_ms), _when(k.last_used_at_ms))
    console.print(table if found else "no keys in the store", highlight=False)
    if settings.configured_api_keys:
        console.print(f"and {len(settings.configured_api_keys)} admin key(s) from RTMS_API_KEYS")


@keys_app.command("revoke")
def keys_revoke(name: str = typer.Argument(..., help="The key's name.")) -> None:
    """Revoke a key: refused from the next request on."""
    if not _using_store(_settings(), lambda store: store.keys.revoke(name)):
        console.print(f"[red]no live key named {name!r}[/red]")
        raise typer.Exit(1)
    console.print(f"revoked {name!r}", highlight=False)


webhooks_app = typer.Typer(no_args_is_help=True,
                           help="Outbound webhooks: signed POSTs of what the gateway stores.")
app.add_typer(webhooks_app, name="webhooks")


@webhooks_app.command("add")
def webhooks_add(
    url: str = typer.Argument(..., help="Where to POST (http or https; not a private address "
                                        "unless RTMS_WEBHOOK_ALLOW_PRIVATE=true)."),
    events: list[str] = typer.Option(..., "--events", help="Event types, comma-separated or "
                                     "repeated: transcript.segment, chat.message, participant.joined, "
                                     "participant.left, meeting.started, meeting.ended, media.ready."),
) -> None:
    """Subscribe URL. Its secret (whsec_...) is printed once, on stdout."""
    from .sinks.outbox import TooManySubscriptions, UnknownEventType, subscribe
    from .sinks.outbox_store import OutboxStore
    from .sinks.webhook_targets import TargetRefused

    settings = _settings()
    try:
        added = _using_store(settings, lambda store: subscribe(
            OutboxStore(store), url, events, allow_private=settings.webhook_allow_private))
    except (TargetRefused, UnknownEventType, TooManySubscriptions) as exc:
        Console(stderr=True).print(f"[red]refused:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    sys.stdout.write(added.secret + "\n")
    Console(stderr=True).print(f"webhook {added.id} added for {', '.join(added.events)}; the secret "
                               "above signs its deliveries and is not shown again", highlight=False)


@webhooks_app.command("list")
def webhooks_list() -> None:
    """The subscriptions (never their secrets)."""
    from .sinks.outbox_store import OutboxStore

    found = _using_store(_settings(), lambda store: OutboxStore(store).live())
    if not found:
        console.print("no webhook subscriptions")
        return
    table = Table()
    for column in ("id", "url", "events", "created"):
        table.add_column(column)
    for sub in found:
        table.add_row(str(sub.id), Text(sub.url), ", ".join(sub.events), _when(sub.created_at_ms))
    console.print(table, highlight=False)


@webhooks_app.command("remove")
def webhooks_remove(subscription_id: int = typer.Argument(..., help="The subscription's id.")) -> None:
    """Stop sending to a subscription (a running gateway stops within seconds)."""
    from .sinks.outbox_store import OutboxStore

    if not _using_store(_settings(), lambda store: OutboxStore(store).remove(subscription_id)):
        console.print(f"[red]no webhook subscription {subscription_id}[/red]")
        raise typer.Exit(1)
    console.print(f"removed webhook {subscription_id}", highlight=False)


streams_app = typer.Typer(no_args_is_help=True,
                          help="The streams a running gateway holds (through its HTTP API).")
app.add_typer(streams_app, name="streams")


@streams_app.command("close")
def streams_close(
    rtms_stream_id: str = typer.Argument(..., help="The stream's rtms_stream_id."),
    url: str | None = typer.Option(None, help="The gateway's address (default: http://HOST:PORT "
                                              "of the settings)."),
    key: str | None = typer.Option(None, envvar="RTMS_API_KEY", help="An admin API key (default: "
                                   "the first of RTMS_API_KEYS, else the key file the gateway made)."),
) -> None:
    """Ask Zoom to end a stream the running gateway holds; prints Zoom's answer."""
    import httpx

    from .sinks.keys import KEY_FILE

    settings = _settings()
    if url is None:
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
        url = f"http://[{host}]:{settings.port}" if ":" in host else f"http://{host}:{settings.port}"
    if key is None:
        configured = settings.configured_api_keys
        key_file = settings.data_dir / KEY_FILE
        key = configured[0] if configured else (
            key_file.read_text().strip() if key_file.is_file() else None)
    if not key:
        Console(stderr=True).print("no API key: give --key or RTMS_API_KEY", highlight=False)
        raise typer.Exit(2)
    from urllib.parse import quote

    try:
        answer = httpx.post(f"{url}/api/streams/{quote(rtms_stream_id, safe='')}/close",
                            headers={"Authorization": f"Bearer {key}"}, timeout=30)
    except httpx.HTTPError as exc:
        Console(stderr=True).print(f"[red]cannot reach the gateway at {escape(url)}:[/red] "
                                   f"{type(exc).__name__}", highlight=False)
        raise typer.Exit(2) from None
    if answer.status_code != 200:
        detail = answer.json().get("detail", answer.text) if answer.headers.get(
            "content-type", "").startswith("application/json") else answer.text
        Console(stderr=True).print(f"[red]{answer.status_code}:[/red] {escape(str(detail))}",
                                   highlight=False)
        raise typer.Exit(1)
    body = answer.json()
    console.print(f"stream {escape(rtms_stream_id)}: Zoom answered {body['status_code']} "
                  f"{escape(str(body['status']))}", highlight=False)


def _when(ms: object, form: str = "%Y-%m-%d %H:%M:%S") -> str:
    if not isinstance(ms, int):
        return ""
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000).strftime(form)


def _length(started: object, stopped: object) -> str:
    if not isinstance(started, int) or not isinstance(stopped, int) or stopped < started:
        return ""
    s = (stopped - started) // 1000
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _register() -> None:
    from .simulator.cli import simulate

    app.command("simulate")(simulate)


def main() -> None:
    _register()
    app()
