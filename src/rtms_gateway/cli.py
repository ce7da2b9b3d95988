"""The `rtms-gateway` command: serve | demo | simulate | meetings | export."""

from __future__ import annotations

import typer

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Zoom Realtime Media Streams gateway, with a built-in Zoom RTMS simulator.",
)


def _register() -> None:
    from .simulator.cli import simulate

    app.command("simulate")(simulate)


def main() -> None:
    _register()
    app()
