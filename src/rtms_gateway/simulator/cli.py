"""`rtms-gateway simulate`: Zoom's side of RTMS against any client's webhook URL."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import typer

from ..logs import configure_logging
from ..protocol.constants import Product, parse_media
from .credentials import AppCredentials
from .faults import FaultKind, parse_fault
from .pacer import SLOTS as PACER_SLOTS
from .records import MeetingRecord
from .runner import SimulationConfig, Simulator, run_simulation

_PRODUCTS = ", ".join(p.value for p in Product)
_FAULT_KINDS = ", ".join(k.value for k in FaultKind)


def _parse_products(value: str) -> tuple[Product, ...]:
    out = []
    for name in (part.strip().lower() for part in value.split(",")):
        if not name:
            continue
        try:
            out.append(Product(name))
        except ValueError:
            raise typer.BadParameter(f"unknown product {name!r} (known: {_PRODUCTS})") from None
    if not out:
        raise typer.BadParameter("no product given")
    return tuple(out)


def simulate(
    webhook_url: str = typer.Option(..., "--webhook-url", help="Where to POST Zoom's webhooks."),
    meetings: int = typer.Option(1, min=1, help="Meetings to run at once."),
    duration: float = typer.Option(20.0, min=0.5, help="Seconds each meeting streams."),
    media: str = typer.Option("all", help="Media offered: any of audio, video, deskshare, transcript, chat, or all."),
    products: str = typer.Option("meeting", help=f"Products, taken in turn: {_PRODUCTS}."),
    ca_out: Path | None = typer.Option(None, "--ca-out",
                                       help="Write the throwaway CA (PEM) here for clients to trust."),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", help="Serve this certificate instead of a throwaway one."),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="Key of --tls-cert."),
    no_tls: bool = typer.Option(False, "--no-tls", help="Plain ws:// instead of wss://."),
    host: str = typer.Option("127.0.0.1", help="Interface the RTMS servers listen on."),
    port: int = typer.Option(0, help="Port of the RTMS servers (0 picks a free one)."),
    public_host: str = typer.Option("localhost", help="Host name put in the URLs handed to clients."),
    keepalive_interval: float = typer.Option(10.0, min=0.05, help="Seconds of idleness before a keep-alive."),
    connect_timeout: float = typer.Option(30.0, min=0.1, help="Seconds a client has to connect and get ready."),
    stagger: float = typer.Option(0.0, min=0.0, help="Seconds between meeting starts."),
    validate_endpoint: bool = typer.Option(False, "--validate-endpoint", help="Send endpoint.url_validation first."),
    seed: int | None = typer.Option(
        None, help="Seed of the scripted meetings (and of --random-faults); default: a new one each run, "
                   "printed, so every run has its own meeting ids and any run can be replayed."),
    fault: list[str] = typer.Option(
        [], "--fault", help="Zoom failure to play in every meeting: KIND, KIND@SECONDS or KIND@SECONDS=ARGUMENT; "
                            f"repeatable. Kinds: {_FAULT_KINDS}."),
    random_faults: int = typer.Option(0, "--random-faults", min=0,
                                      help="This many faults per meeting, drawn from --seed."),
    timestamp_jitter_ms: int = typer.Option(
        0, "--timestamp-jitter-ms", min=0, max=1000,
        help="Shift each media packet's timestamp by a seeded uniform amount within ±J ms "
             "(its content stays its slot's), as real senders' timestamps wander."),
    aligned: bool = typer.Option(
        False, "--aligned",
        help="Send every meeting's media packets at the same moment each 20 ms (a receiver's worst "
             "case) instead of each meeting on its own beat, as Zoom's independent meetings do."),
    dead_first_url: bool = typer.Option(
        False, "--dead-first-url",
        help="List a signaling URL that refuses connections first in server_urls: clients must fail over."),
    signaling_linger: float = typer.Option(
        0.0, "--signaling-linger", min=0.0,
        help="Seconds a lost signaling socket counts as still closing: a reconnection meanwhile gets status 8."),
    join_replay: bool = typer.Option(
        False, "--join-replay",
        help="Send a late join subscriber who is already here (Zoom does not: off is faithful)."),
    lid_warmup: float = typer.Option(
        30.0, "--lid-warmup", min=0.0,
        help="Seconds of transcripts in the source language before language detection takes over."),
    ai_interpreter: bool = typer.Option(
        False, "--ai-interpreter", help="Send AI-interpreter audio metadata (msg 23) on audio sockets."),
    future_fields: bool = typer.Option(
        False, "--future-fields",
        help="Transcripts, chat and events carry fields no protocol version declares, as a later Zoom may send."),
) -> None:
    """Zoom's side of RTMS alone: signed webhooks, signaling and media servers, scripted meetings."""
    creds = AppCredentials().by_name()
    missing = [name for name, value in creds.items() if not value]
    if missing:
        typer.echo(f"missing credentials: set {', '.join(missing)} (environment or .env); the simulator "
                   "signs webhooks and checks handshakes with the same app credentials as the client", err=True)
        raise typer.Exit(2)
    if (tls_cert is None) != (tls_key is None):
        typer.echo("--tls-cert and --tls-key go together", err=True)
        raise typer.Exit(2)
    if ca_out is not None and (no_tls or tls_cert is not None):
        typer.echo("--ca-out writes the throwaway CA: not with --no-tls or --tls-cert", err=True)
        raise typer.Exit(2)
    try:
        offered = parse_media(media)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--media") from None

    try:
        faults = [parse_fault(text) for text in fault]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--fault") from None

    if seed is None:
        seed = secrets.randbelow(2**31)
    config = SimulationConfig(
        client_id=creds["ZOOM_CLIENT_ID"], client_secret=creds["ZOOM_CLIENT_SECRET"],
        secret_token=creds["ZOOM_SECRET_TOKEN"], webhook_url=webhook_url, host=host, port=port,
        public_host=public_host, tls=not no_tls, tls_cert=tls_cert, tls_key=tls_key, ca_out=ca_out,
        keepalive_interval=keepalive_interval, connect_timeout=connect_timeout, meetings=meetings,
        duration=duration, media=offered, products=_parse_products(products), stagger=stagger,
        validate_endpoint=validate_endpoint, seed=seed, faults=faults, random_faults=random_faults,
        timestamp_jitter_ms=timestamp_jitter_ms, dead_first_url=dead_first_url,
        signaling_linger_s=signaling_linger, replay_joins=join_replay, lid_warmup_s=lid_warmup,
        ai_interpreter=ai_interpreter, future_fields=future_fields, pacer_slots=1 if aligned else PACER_SLOTS,
    )
    configure_logging("WARNING")

    def ready(sim: Simulator) -> None:
        typer.echo(f"RTMS servers at {sim.base_url}, seed {seed}" + (f", CA written to {ca_out}" if ca_out else ""))

    def done(record: MeetingRecord) -> None:
        typer.echo(record.summary_line() + (f" faults: {' '.join(record.faults)}" if record.faults else ""))

    summary = asyncio.run(run_simulation(config, on_record=done, on_ready=ready))
    if summary.validation is not None:
        v = summary.validation
        typer.echo(f"endpoint validation: {'pass' if v.ok else 'FAIL'} ({v.detail})")
    for stray in summary.stray_handshakes:
        typer.echo(f"handshake for an unknown stream on {stray.socket}: {stray.status_code} {stray.reason}")
    complete = sum(r.handshakes_complete for r in summary.records)
    p = summary.pacer
    typer.echo(f"{complete}/{len(summary.records)} clients completed their handshakes; "
               f"pacing lateness p50 {p.lateness_p50_ms:.1f} ms, p99 {p.lateness_p99_ms:.1f} ms")
    raise typer.Exit(0 if summary.ok else 1)
