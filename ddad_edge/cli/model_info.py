"""`ddad-edge model-info`: what a preset costs, in parameters and GFLOP, per network call and per frame."""

from __future__ import annotations

from typing import Optional

import typer

from ddad_edge.cli.app import app
from ddad_edge.cli.table import print_json_or_table
from ddad_edge.config_presets import MODEL_PRESETS


@app.command("model-info")
def model_info(
    preset: str = typer.Option("ddad-s", help=f"UNet preset: {', '.join(MODEL_PRESETS)}."),
    image_size: Optional[int] = typer.Option(None),
    backbone: str = typer.Option("wide_resnet101_2", help="Feature extractor to count as well."),
    steps: int = typer.Option(10, help="Network calls per frame, for the per-frame total."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Parameters and GFLOP of the UNet per call, of the feature extractor, and per frame."""
    from ddad_edge.model.flops import model_costs

    print_json_or_table(model_costs(preset, image_size, backbone, steps), as_json)
