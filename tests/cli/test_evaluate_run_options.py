"""`evaluate --run` options that cannot mean what they say are one line up front (exit 2), not a wrong
result or a traceback after the whole evaluation."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest
import torch

from ddad_edge.config import ScoringMode
from ddad_edge.model.build import build_pipeline, teacher_grid
from ddad_edge.model.checkpoint import load_checkpoint, open_run
from ddad_edge.model.schedule import alphas_cumprod, level_grid
from tests.cli_helpers import assert_one_line, run_cli


@pytest.mark.parametrize("args, words", [
    (["--naive"], ["--naive needs --steps K"]),
    (["--w", "nan"], ["--w nan", "sampler.w"]),
    (["--w", "-3"], ["--w -3", "[0, 1000]"]),
    (["--eta", "2"], ["--eta 2", "sampler.eta"]),
    (["--eta", "nan"], ["--eta nan", "[0, 1]"]),
    (["--batch", "0"], ["--batch 0"]),
    (["--steps", "0"], ["--steps 0"]),
    (["--start-level", "20"], ["--start-level 20 needs --naive"]),
    (["--steps", "2", "--naive", "--start-level", "5"], ["--start-level 5", "multiple of --steps 2"]),
    (["--steps", "1", "--naive", "--start-level", "0"], ["--start-level 0"]),
    # the tiny preset trains the levels t < 300 (train.t_max)
    (["--steps", "1", "--naive", "--start-level", "300"], ["--start-level 300", "noise levels 0 to 299"]),
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


def test_one_step_from_a_start_level_is_a_whole_denoising_step(tiny_run):
    """--naive --start-level L runs DDIM's grid from L: one step calls the network at L itself, and its x̂0 is the
    denoised x_L; the conditioning only scales the residual x̂0 − x by 1 − w·(1 − ᾱ_L), so w cannot reorder
    one-step scores. DDAD's grid from the run's T' would call the network at t = 0 instead."""
    run = open_run(tiny_run)
    pipe = build_pipeline(run, steps=1, naive=True, start_level=20, mode=ScoringMode.PIXEL)
    assert (pipe.timesteps, pipe.t_prime) == ([20], 20)
    assert build_pipeline(run, steps=1, naive=True, mode=ScoringMode.PIXEL).timesteps == [0]
    assert level_grid(100, 2) == [100, 50] and level_grid(90, 3) == [90, 60, 30]
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    abar = float(alphas_cumprod(run.cfg.diffusion)[20])
    with torch.no_grad():
        x_t = abar ** 0.5 * x + (1 - abar) ** 0.5 * pipe.z
        denoised = (x_t - (1 - abar) ** 0.5 * pipe.unet(x_t, torch.full((2,), 20.0))) / abar ** 0.5
        residual = pipe.reconstruct(x) - x
    assert pipe.w == run.cfg.sampler.w > 0
    torch.testing.assert_close(residual, (denoised - x) * (1 - pipe.w * (1 - abar)), atol=1e-5, rtol=1e-4)


def test_evaluate_from_a_start_level_says_which_grid_it_ran(capsys, tmp_path, tiny_run):
    result = run_cli(capsys, "evaluate", "--run", tiny_run, "--steps", "2", "--naive", "--start-level", "40",
                     "--scoring", "pixel", "--json", tmp_path / "m.json", "--out", tmp_path / "ev")
    assert result.code == 0, result.err
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert (metrics["timesteps"], metrics["t_prime"], metrics["naive"]) == ([40, 20], 40, True)
    assert 0.0 <= metrics["image_auroc"] <= 1.0
