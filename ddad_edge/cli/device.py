"""Device-side commands: `build` (TensorRT engine), `doctor` (what this machine has), `selftest`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ddad_edge.cli.app import app


@app.command("build")
def build_command(
    bundle: Path = typer.Option(..., "--bundle", help="bundle folder (from ddad-edge export)"),
    profile: Optional[str] = typer.Option(None, "--profile",
                                          help="build profile: export/NAME.yaml or NAME (default: this machine's)"),
) -> None:
    """Build a TensorRT engine for this GPU and TensorRT version into the bundle."""
    from ddad_edge.deploy.tensorrt_build import build_engine
    from ddad_edge.deploy.tensorrt_profile import detect_profile_name, load_build_profile
    from ddad_edge.runtime.trt_compat import import_tensorrt

    import_tensorrt()  # the one-line "not installed, here is how" before any other work
    build_engine(bundle, load_build_profile(profile or detect_profile_name()))


@app.command("doctor")
def doctor_command(
    bundle: Optional[Path] = typer.Option(
        None, "--bundle", help="also check this bundle's graph against the installed TensorRT's parser rules"),
) -> None:
    """Report Python, OpenCV, ONNX Runtime, TensorRT (and its parser rules), CUDA, Jetson, GPIO and cameras."""
    from ddad_edge.deploy.doctor import format_findings, run_doctor

    for line in format_findings(run_doctor(bundle)):
        typer.echo(line)


@app.command("selftest")
def selftest_command(
    bundle: Path = typer.Option(..., "--bundle", help="bundle folder"),
    backend: str = typer.Option("auto", "--backend", help="onnxruntime | openvino | openvino-bf16 | tensorrt | auto"),
    repeats: int = typer.Option(5, "--repeats", help="timing passes over the probe frames"),
) -> None:
    """Run the bundle's probe frames through a backend and check them against the FP32 outputs."""
    from ddad_edge.inspect.selftest import format_report, run_selftest

    report = run_selftest(bundle, backend, repeats=repeats)
    for line in format_report(report):
        typer.echo(line)
    if not report.passed:
        # SystemExit, not typer.Exit: ddad_edge.cli.main runs the app with standalone_mode=False,
        # where click hands typer.Exit's code back as a return value that main does not pass on.
        raise SystemExit(1)
