"""`ddad-edge demo`: the whole job end to end on this machine's CPU."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ddad_edge.cli.app import app


@app.command()
def demo(
    ctx: typer.Context,
    out: Path = typer.Option(Path("demo-out"), help="Output folder (must be empty or absent)."),
    minutes: float = typer.Option(6.0, help="Time budget; training gets half, distillation a fifth."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the summary to this JSON file."),
) -> None:
    """Synthetic conveyor → train → adapt → distill to 2 steps → INT8 bundle → inspection loop → latency."""
    from ddad_edge.demo import run_demo
    from ddad_edge.output_paths import check_output_file, check_output_folder

    # the demo takes minutes: where its results go is checked first
    check_output_folder(out, "--out")
    if json_path is not None:
        json_path = check_output_file(json_path, "--json", "demo.json")
    result = run_demo(out, minutes, json_path, log=lambda s: typer.echo(s, err=True), run_command=ctx.obj)
    typer.echo("")
    typer.echo(f"image AUROC of the 2-step INT8 bundle on the synthetic test split: {result['image_auroc']:.3f}")
    typer.echo(f"conveyor video: {result['frames']} frames, {result['ok']} OK, {result['ng']} NG, "
               f"{result['fault']} FAULT, {result['pulses']} reject pulses ({result['pulses_on_line']} on the "
               f"simulated GPIO line, where overlapping ones merge); "
               f"verdicts right on {result['frame_verdicts_right']} frames with a part in the window")
    if result["p50_ms"] is not None:
        typer.echo(f"latency per frame on this CPU: p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms")
    typer.echo(f"everything is in {out}: bundle {result['bundle']}, events {result['events']}, "
               f"NG images {result['ng_images']}, test-split overlays {result['overlays']}, distillation report "
               f"{result['distill_report']}, latency plot {result['latency_plot']}, "
               f"summary {out / 'demo-summary.json'}")
    typer.echo(json.dumps({k: result[k] for k in ("image_auroc", "frames", "ng", "pulses", "p50_ms", "p99_ms")}))
