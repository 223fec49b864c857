"""`evaluate --run` options that cannot mean what they say are one line up front (exit 2), not a wrong
result or a traceback after the whole evaluation."""

from __future__ import annotations

import shutil
import warnings

import pytest
import torch

from ddad_edge.model.build import build_pipeline, teacher_grid
from ddad_edge.model.checkpoint import load_checkpoint, open_run
from tests.cli_helpers import assert_one_line, run_cli


@pytest.mark.parametrize("args, words", [
    (["--naive"], ["--naive needs --steps K"]),
    (["--w", "nan"], ["--w nan", "sampler.w"]),
    (["--w", "-3"], ["--w -3", "[0, 1000]"]),
    (["--eta", "2"], ["--eta 2", "sampler.eta"]),
    (["--eta", "nan"], ["--eta nan", "[0, 1]"]),
    (["--batch", "0"], ["--batch 0"]),
    (["--steps", "0"], ["--steps 0"]),
])
def test_bad_run_options_are_one_line(capsys, tmp_path, tiny_run, args, words):
    result = run_cli(capsys, "evaluate", "--run", tiny_run, "--out", tmp_path / "ev", *args)
    assert_one_line(result, *words)
    assert not (tmp_path / "ev").exists() and not (tiny_run / "eval" / "steps10-naive").exists()


@pytest.mark.parametrize("steps, fix", [
    (3, "distill makes 4, 2, 1 steps only"),
    (5, "pass --naive for the teacher itself on a 5-step grid"),  # T' = 250 divides into 5 steps
])
def test_a_missing_sampler_names_a_fix_that_exists(capsys, tmp_path, tiny_run, steps, fix):
    result = run_cli(capsys, "evaluate", "--run", tiny_run, "--steps", steps, "--out", tmp_path / "ev")
    assert_one_line(result, f"no sampler with {steps} steps", fix)
    assert f"--to-steps {steps}" not in result.err  # distill would refuse it


def test_w_of_a_student_warns_with_a_fix_that_exists(tmp_path, tiny_run):
    """distill has no --w (it distills for the run's sampler.w): the warning must not send the user there."""
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    run = open_run(run_dir)
    payload = load_checkpoint(run.last_checkpoint)
    grid = teacher_grid(run)
    payload.update(timesteps=grid[::5], t_prime=grid[0], w=3.0, eta=0.0)  # a stand-in 2-step student
    (run_dir / "students").mkdir()
    torch.save(payload, run.student_path(2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe = build_pipeline(run, steps=2, w=5.0, mode=None)
    texts = [str(c.message) for c in caught if "distilled for w=3.0" in str(c.message)]
    assert len(texts) == 1 and pipe.w == 5.0
    assert "distill again" not in texts[0] and "leave out --w" in texts[0], texts[0]
