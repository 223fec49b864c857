"""The shared typer application that the command modules register on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="ddad-edge",
    help="DDAD-S anomaly detection: train, distill, export, and inspect on the line.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """DDAD-S anomaly detection: train, distill, export, and inspect on the line."""
