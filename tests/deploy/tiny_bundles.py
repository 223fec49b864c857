"""Bundles of the session's tiny run, made once per test session and shared by the export, precision and
parity tests (each export costs seconds, the CI has minutes).

`tiny_project` copies the tiny run into a project folder (./runs/widget) and gives it a 2-step sampler
in the student checkpoint format (students/steps_2.pt). That sampler is the teacher's own weights on a
2-step grid, not a distilled network: it stands in for `ddad-edge distill`'s output so that the export
defaults (fewest-step student) can be tested without distilling in the test suite.

    project = tiny_project(tiny_run, tmp_path_factory)
    bundle = tiny_bundle(project, "int8")        # fp32 | fp16 (made by the CLI) | int8
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import shutil
import warnings
from pathlib import Path

from ddad_edge.bundle import Bundle, Precision, read_bundle

STEPS = 2
# INT8 for tests: few calibration images.
INT8_TEST_RECIPE = """\
precision: int8
description: tests - 8 calibration images
tolerance: {map_rel: 0.05, score_rel: 0.05}
int8:
  method: minmax
  calibration_images: 8
  min_rank_correlation: 0.98
  fallback_rounds: 4
  fallback_fraction: 0.1
"""

_cache: dict = {}
_stack = contextlib.ExitStack()  # holds the prepared export's temporary folder open until the session ends
atexit.register(_stack.close)


def tiny_project(tiny_run: Path, tmp_path_factory) -> Path:
    """A project folder holding runs/widget (a copy of the tiny run) with a 2-step sampler checkpoint."""
    if "project" not in _cache:
        from ddad_edge.model.checkpoint import load_checkpoint, open_run, save_checkpoint

        project = tmp_path_factory.mktemp("project")
        run_dir = project / "runs" / "widget"
        shutil.copytree(tiny_run, run_dir)
        run = open_run(run_dir)
        teacher = load_checkpoint(run.last_checkpoint)
        key = "ema" if teacher.get("ema") is not None else "unet"
        t_prime = run.cfg.sampler.t_prime
        save_checkpoint(run.student_path(STEPS), {
            "kind": "student", "config": teacher["config"], "unet": teacher[key],
            "timesteps": [t_prime // STEPS * i for i in range(STEPS - 1, -1, -1)], "t_prime": t_prime,
            "w": float(run.cfg.sampler.w), "eta": 0.0, "round": 0})
        (project / "calibration").mkdir()
        (project / "calibration" / "int8-test.yaml").write_text(INT8_TEST_RECIPE)
        _cache["project"] = project
    return _cache["project"]


def prepared(project: Path):
    """The shared prepared export (FP32 graph, frames, torch references) of the project's run, K = 2."""
    if "prepared" not in _cache:
        from ddad_edge.deploy.bundle_export import ExportOptions, prepare_export

        options = ExportOptions(run=project / "runs" / "widget", precision=Precision.FP32, steps=STEPS,
                                latency_runs=3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the random backbone's warning
            _cache["prepared"] = _stack.enter_context(prepare_export(options, log=lambda _: None))
    return _cache["prepared"]


def tiny_bundle(project: Path, precision: str) -> Bundle:
    """The project's bundle at `precision`; fp16 is made by the exact command `ddad-edge export --precision fp16`."""
    if precision not in _cache:
        if precision == "fp16":
            _cache[precision] = _export_by_command(project)
        else:
            from ddad_edge.deploy.bundle_export import write_bundle

            prep = prepared(project)
            options = dataclasses.replace(
                prep.options, precision=Precision(precision), out=project / "bundles" / f"test-{precision}",
                recipe=str(project / "calibration" / "int8-test.yaml") if precision == "int8" else None)
            _cache[precision] = write_bundle(prep, options, log=lambda _: None)
    return read_bundle(_cache[precision].path)


def _export_by_command(project: Path) -> Bundle:
    from ddad_edge.cli import main

    cwd = os.getcwd()
    os.chdir(project)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            code = main(["export", "--precision", "fp16"])
    finally:
        os.chdir(cwd)
    assert code == 0, "ddad-edge export --precision fp16 failed"
    return read_bundle(project / "bundles" / f"widget-fp16-k{STEPS}")
