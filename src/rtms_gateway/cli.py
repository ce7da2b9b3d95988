"""The `rtms-gateway` command: serve | demo | simulate | meetings | export."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Zoom Realtime Media Streams gateway, with a built-in Zoom RTMS simulator.",
)
console = Console()


def _settings():  # type: ignore[no-untyped-def]
    from .config import Settings

    try:
        return Settings()
    except Exception as exc:  # pydantic's message names the bad variable
        console.print(f"[red]invalid settings:[/red] {exc}")
        raise typer.Exit(2) from None


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if level.upper() != "DEBUG":  # picows logs every connection at INFO
        logging.getLogger("picows").setLevel(logging.WARNING)


@app.command()
def serve(
    host: str = typer.Option(None, help="Interface to listen on (default: HOST or 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default: PORT or 3000)."),
) -> None:
    """Run the webhook endpoint and the REST API."""
    from .gateway.service import run_server

    settings = _settings()
    _logging(settings.log_level)
    asyncio.run(run_server(settings, host or settings.host, port if port is not None else settings.port))


@app.command()
def demo(
    duration: float = typer.Option(20.0, help="Length of the scripted meeting, in seconds."),
    port: int = typer.Option(0, help="Gateway port (0 picks a free one)."),
    keep_serving: bool = typer.Option(False, help="Keep the gateway and API running afterwards."),
) -> None:
    """Gateway and simulator in one process: a scripted meeting, its transcript live."""
    from .gateway.demo import run_demo

    settings = _settings()
    _logging("WARNING")
    code = asyncio.run(run_demo(settings, console, duration=duration, port=port, keep_serving=keep_serving))
    raise typer.Exit(code)


@app.command()
def meetings(limit: int = typer.Option(50, help="How many, newest first.")) -> None:
    """List stored meetings, newest first."""
    from .sinks.store import Store

    settings = _settings()

    async def fetch():  # type: ignore[no-untyped-def]
        store = await Store.open(settings.resolved_database_url)
        try:
            return await store.list_meetings(limit=limit, offset=0)
        finally:
            await store.close()

    rows = asyncio.run(fetch())
    table = Table()
    table.add_column("meeting_uuid", no_wrap=True, overflow="fold")
    for name in ("product", "state", "started", "stopped", "segments", "chat", "events"):
        table.add_column(name)
    for m in rows:
        d = m.to_dict()
        table.add_row(str(d.get("meeting_uuid")), str(d.get("product")), str(d.get("state")),
                      _when(d.get("started_at_ms")), _when(d.get("stopped_at_ms")),
                      str(d.get("segment_count", "")), str(d.get("chat_count", "")),
                      str(d.get("event_count", "")))
    console.print(table if rows else "no meetings stored yet")


@app.command()
def export(
    meeting_uuid: str = typer.Argument(..., help="The meeting's UUID, as Zoom gives it."),
    format: str = typer.Option("txt", "--format", "-f", help="txt | vtt | srt | json | wav | mp4"),
    output: Optional[Path] = typer.Option(
        None, "-o", "--output",
        help="File to write (stdout if absent; required for wav/mp4, a folder when several files match)."),
    participant: Optional[str] = typer.Option(
        None, "--participant", "-p", help="wav/mp4: this participant's file (user id or name)."),
    kind: Optional[str] = typer.Option(None, "--kind", help="mp4: video (default) or share."),
) -> None:
    """Export a stored meeting's transcript, audio (wav) or video (mp4)."""
    from .sinks.exports import TRANSCRIPT_FORMATS, render_transcript
    from .sinks.media_export import EXPORT_FORMATS, pick_files
    from .sinks.store import Store

    if format not in TRANSCRIPT_FORMATS and format not in EXPORT_FORMATS:
        known = ", ".join([*TRANSCRIPT_FORMATS, *EXPORT_FORMATS])
        console.print(f"[red]unknown format {format!r}[/red]; use one of {known}")
        raise typer.Exit(2)
    if format in EXPORT_FORMATS and output is None:
        console.print(f"[red]--output is required for {format}[/red]")
        raise typer.Exit(2)
    settings = _settings()

    async def fetch():  # type: ignore[no-untyped-def]
        store = await Store.open(settings.resolved_database_url)
        try:
            meeting = await store.get_meeting(meeting_uuid)
            if format in EXPORT_FORMATS:
                return meeting, await store.media_files(meeting_uuid)
            return meeting, await store.transcript(meeting_uuid)
        finally:
            await store.close()

    meeting, rows = asyncio.run(fetch())
    if meeting is None:
        console.print(f"[red]no meeting {meeting_uuid!r} in the store[/red]")
        raise typer.Exit(1)
    if format in EXPORT_FORMATS:
        _export_media(pick_files(rows, format, kind=kind, participant=participant), settings.data_dir,
                      output, format)  # type: ignore[arg-type]
        return
    text = render_transcript(rows, format)
    if output:
        output.write_text(text, encoding="utf-8")
        console.print(f"wrote {len(rows)} segments to {output}", highlight=False)
    else:
        sys.stdout.write(text)


def _export_media(files: list, data_dir: Path, output: Path, fmt: str) -> None:  # type: ignore[type-arg]
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


def _when(ms: object) -> str:
    if not isinstance(ms, int):
        return ""
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def _register() -> None:
    from .simulator.cli import simulate

    app.command("simulate")(simulate)


def main() -> None:
    _register()
    app()
