"""Printing a flat dict of results: as JSON, or as an aligned two-column table for a person."""

from __future__ import annotations

import json

import typer


def print_json_or_table(data: dict, as_json: bool) -> None:
    """Print `data` as indented JSON, or one aligned `key  value` line per key (floats to 4 decimals)."""
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    width = max(len(k) for k in data)
    for k, v in data.items():
        typer.echo(f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}")
