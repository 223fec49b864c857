"""`ddad-edge export`: a run in, a bundle (ONNX graph at a precision, thresholds, report) out."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ddad_edge.cli.app import app
from ddad_edge.config import ScoringMode


@app.command("export")
def export_command(
    run: Optional[Path] = typer.Option(None, "--run", help="Run folder (default: the latest under ./runs)."),
    steps: Optional[int] = typer.Option(
        None, "--steps", help="Sampler steps K (default: the fewest-step distilled student whose image AUROC is "
                              "within 1 point of the teacher's, else the teacher)."),
    naive: bool = typer.Option(False, "--naive", help="With --steps: the teacher itself on a K-step grid."),
    start_level: Optional[int] = typer.Option(
        None, "--start-level", help="With --naive: start from this noise level L instead of the run's T', on "
                                    "DDIM's grid L, L-L/K, ..., L/K (one step: a whole denoising step at L)."),
    precision: Optional[str] = typer.Option(None, "--precision",
                                            help="fp32, fp16 or int8 (default: the recipe's, else fp32)."),
    recipe: Optional[str] = typer.Option(None, "--recipe",
                                         help="calibration/NAME.yaml or NAME (default: fp32, fp16 or int8)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Bundle folder (default: bundles/<run>-<precision>-k<K>)."),
    scoring: Optional[ScoringMode] = typer.Option(None, "--scoring",
                                                  help="fused or pixel (pixel: no feature extractor)."),
    target: str = typer.Option("auto", "--target",
                               help="auto (a TensorRT engine where TensorRT and a GPU exist), onnx or tensorrt."),
    profile: Optional[str] = typer.Option(
        None, "--profile", help="TensorRT build profile, export/NAME.yaml or a path (with --target tensorrt or auto)."),
    quantile: float = typer.Option(0.99, help="Image threshold: this quantile of held-out nominal scores..."),
    margin: float = typer.Option(0.05, help="...times (1 + margin)."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Replace an existing bundle folder (never any other folder)."),
    test_split: bool = typer.Option(True, "--test-split/--no-test-split",
                                    help="Also judge on the dataset's labelled test split (AUROC, F1 threshold)."),
) -> None:
    """Export the run's per-frame graph as a bundle: ONNX at a precision, thresholds, probe frames, report."""
    from ddad_edge.bundle import Precision
    from ddad_edge.deploy.bundle_export import ExportOptions, export_bundle
    from ddad_edge.deploy.recipes import load_recipe
    from ddad_edge.deploy.tensorrt_build import BuildTarget, build_if_possible
    from ddad_edge.deploy.tensorrt_profile import load_build_profile, profile_tensorrt_versions
    from ddad_edge.deploy.thresholds import ThresholdRule
    from ddad_edge.deploy.trt_rules import refuse_unparsable
    from ddad_edge.errors import DdadError
    from ddad_edge.model.checkpoint import latest_run

    try:
        chosen = Precision(precision) if precision else None
    except ValueError:
        raise DdadError(f"unknown precision {precision!r}: choose fp32, fp16 or int8") from None
    if chosen is None:
        chosen = load_recipe(recipe).precision if recipe else Precision.FP32
    try:
        chosen_target = BuildTarget(target)
    except ValueError:
        raise DdadError(f"unknown target {target!r}: choose auto, onnx or tensorrt") from None
    build_profile = None
    if profile is not None:  # read now: a wrong name fails here, not after the export
        if chosen_target is BuildTarget.ONNX:
            raise DdadError(f"--profile {profile} is a TensorRT build profile and --target onnx builds no engine: "
                            "drop --profile, or use --target tensorrt (or auto)")
        build_profile = load_build_profile(profile)
    if scoring is ScoringMode.FEATURE:
        raise DdadError("--scoring feature is for evaluation only; export fused or pixel")
    options = ExportOptions(run=run or latest_run(), precision=chosen, recipe=recipe, out=out, steps=steps,
                            naive=naive, start_level=start_level, scoring=scoring,
                            thresholds=ThresholdRule(quantile=quantile, margin=margin),
                            labelled=test_split, overwrite=overwrite,
                            tensorrt=profile_tensorrt_versions(build_profile))
    bundle = export_bundle(options, log=typer.echo)
    if chosen_target is BuildTarget.TENSORRT:  # an engine is wanted: a graph a parser refuses is an error here
        refuse_unparsable(bundle.manifest.get("tensorrt_rules") or {}, bundle.model_path.name)
    build_if_possible(bundle.path, chosen_target, build_profile, log=typer.echo)
    typer.echo(f"bundle: {bundle.path}")


@app.command("bundle-table")
def bundle_table_command(
    bundles: list[Path] = typer.Argument(..., help="Bundle folders to compare."),
) -> None:
    """Print a Markdown table of bundles: image AUROC, rank correlation, map error, ORT CPU latency."""
    from ddad_edge.deploy.report_table import bundle_table

    typer.echo(bundle_table(bundles))
