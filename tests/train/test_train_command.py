"""`ddad-edge train` as a user drives it: an interrupted training keeps its steps, a run folder is not trained
over, `--resume` refuses what it cannot apply, and a scoring backbone that cannot be built is refused up front."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from ddad_edge.config_presets import run_config_for
from ddad_edge.errors import DdadError
from ddad_edge.model.backbone import FeatureExtractor
from ddad_edge.model.checkpoint import load_checkpoint
from ddad_edge.train import diffusion
from tests.cli_helpers import assert_one_line, run_cli

REPO = Path(__file__).resolve().parents[2]


def tiny_cfg(synth_root, **train):
    cfg = run_config_for("tiny", 32, "widget", str(synth_root))
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=4, checkpoint_every=1000,
                                                              **train))


def stop_at_call(monkeypatch, k, action):
    """Run `action` inside the k-th call of the training loss (the forward pass of step k)."""
    calls = []
    real = diffusion.diffusion_loss

    def loss(*a, **kw):
        calls.append(1)
        if len(calls) == k:
            action()
        return real(*a, **kw)

    monkeypatch.setattr(diffusion, "diffusion_loss", loss)


def raise_keyboard_interrupt():
    raise KeyboardInterrupt


# ------------------------------------------------------------------ 1. an interrupted training keeps its steps


@pytest.mark.parametrize("action, saved_step", [
    # a real Ctrl-C is sent to a process of its own below (test_a_signal_during_train_...): in this process,
    # late in the suite, a SIGINT crashed the interpreter inside a library's worker thread
    (raise_keyboard_interrupt, 2),  # raised inside step 3's forward pass: steps 1-2 are kept
])
def test_an_interrupted_training_saves_the_step_reached_and_resumes_from_it(synth_root, tmp_path, monkeypatch,
                                                                             action, saved_step):
    out = tmp_path / "run"
    before = signal.getsignal(signal.SIGINT)  # what the test runner has (SIG_IGN when started in the background)
    stop_at_call(monkeypatch, 3, action)
    with pytest.raises(KeyboardInterrupt) as info:
        diffusion.train_diffusion(tiny_cfg(synth_root, max_steps=50), out, show_progress=False)
    last = out / "checkpoints" / "last.pt"
    assert last.is_file(), "nothing saved on interrupt"
    payload = load_checkpoint(last)
    assert payload["step"] == saved_step and not payload["finished"]
    assert isinstance(info.value, diffusion.TrainingInterrupted)
    assert info.value.step == saved_step and info.value.checkpoint == last and info.value.exit_code == 130
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back

    monkeypatch.undo()
    result = diffusion.train_diffusion(tiny_cfg(synth_root, max_steps=saved_step + 1), out, resume=True,
                                       show_progress=False)
    assert (result.first_step, result.steps) == (saved_step, saved_step + 1)
    assert load_checkpoint(last)["step"] == saved_step + 1


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_train_saves_last_pt_and_exits_with_its_status(synth_root, tmp_path, sig, status):
    """The command in its own process, sent SIGTERM (as systemd or a batch scheduler stops a job) or SIGINT
    (Ctrl-C) in step 2."""
    out = tmp_path / "run"
    script = (
        "import os, signal, sys\n"
        "from ddad_edge.cli import main\n"
        "from ddad_edge.train import diffusion\n"
        "real, calls = diffusion.diffusion_loss, []\n"
        "def loss(*a, **k):\n"
        "    calls.append(1)\n"
        "    if len(calls) == 2:\n"
        f"        os.kill(os.getpid(), {int(sig)})\n"
        "    return real(*a, **k)\n"
        "diffusion.diffusion_loss = loss\n"
        "sys.exit(main(sys.argv[1:]))\n")
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", script, "train", "--data", str(synth_root), "--category", "widget",
                           "--preset", "tiny", "--image-size", "32", "--max-steps", "50", "--batch-size", "4",
                           "--out", str(out)], capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == status, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1].startswith(
        f"interrupted at step 2: saved {out / 'checkpoints' / 'last.pt'}; continue with "), done.stderr[-2000:]
    assert "--resume" in done.stderr.strip().splitlines()[-1]
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 2


# ------------------------------------------------------------------ 2. a run folder is not trained over


@pytest.mark.parametrize("holds", ["a trained run", "config.yaml only"])
def test_train_into_a_run_folder_without_resume_is_refused(capsys, tmp_path, synth_root, tiny_run, holds):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "students").mkdir()  # what a later stage leaves there, which a new model would inherit
    if holds == "config.yaml only":  # stopped before its first checkpoint
        shutil.rmtree(run / "checkpoints")
    before = {p: p.read_bytes() for p in (run / "config.yaml", run / "split.yaml")}
    result = run_cli(capsys, "train", "--data", synth_root, "--category", "widget", "--preset", "tiny",
                     "--image-size", 32, "--max-steps", 1, "--batch-size", 4, "--out", run)
    assert_one_line(result, str(run), "--resume", "another --out")
    assert all(p.read_bytes() == b for p, b in before.items())
    if holds == "a trained run":
        assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 40


# ------------------------------------------------------------------ 3. --resume applies what it says


def test_resume_refuses_the_options_it_cannot_apply(capsys, tmp_path, synth_root, tiny_run):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    result = run_cli(capsys, "train", "--data", synth_root, "--category", "widget", "--resume", "--out", run,
                     "--max-steps", 41, "--batch-size", 4, "--w", 5, "--seed", 1, "--no-ema",
                     "--backbone", "resnet50", "--backbone-weights", "none")
    # --no-ema and --backbone-weights none are the run's own values: nothing would be ignored
    assert_one_line(result, "--batch-size 4 (the run's: 8)", "--w 5", "--seed 1", "--backbone resnet50",
                    "--max-steps")
    assert "--no-ema" not in result.err and "--backbone-weights" not in result.err
    other = tmp_path / "other-data"  # another dataset, not holding the run (that is refused on its own)
    other.mkdir()
    result = run_cli(capsys, "train", "--data", other, "--resume", "--out", run, "--max-steps", 41)
    assert_one_line(result, f"--data {other}", str(synth_root / "widget"))
    result = run_cli(capsys, "train", "--data", synth_root, "--category", "widget", "--resume", "--out", run,
                     "--config", run / "config.yaml", "--max-steps", 41)
    assert_one_line(result, "--config")
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 40  # nothing trained
    # the run's own values, and its dataset named as the category folder itself, are accepted
    code, out, err = run_cli(capsys, "train", "--data", synth_root / "widget", "--resume", "--out", run,
                             "--preset", "tiny", "--image-size", 32, "--batch-size", 8, "--max-steps", 42)
    assert code == 0, err
    assert out.startswith("resumed at step 40, now at step 42 (") and "2 steps in " in out, out
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 42


def test_resume_of_a_run_with_its_own_model_keys(capsys, tmp_path, synth_root):
    """A run made with a config file (base_channels 16) resumes with --preset/--image-size of its own values;
    a model that differs is refused naming the key that differs."""
    cfg_file = tmp_path / "c16.yaml"
    cfg_file.write_text("model:\n  preset: tiny\n  image_size: 32\n  base_channels: 16\n")
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--data", synth_root, "--category", "widget", "--config", cfg_file,
                           "--epochs", 0, "--out", run)
    assert code == 0, err
    code, out, err = run_cli(capsys, "train", "--data", synth_root, "--category", "widget", "--resume", "--out",
                             run, "--preset", "tiny", "--image-size", 32, "--epochs", 1, "--max-steps", 1,
                             "--batch-size", 16)
    assert code == 0, err
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 1
    saved = yaml.safe_load((run / "config.yaml").read_text())
    asked = run_config_for("tiny", 32, "widget", saved["data"]["root"])
    with pytest.raises(DdadError, match=r"model\.base_channels 16, this training asks for 32"):
        diffusion.train_diffusion(asked, run, resume=True, show_progress=False)


# ------------------------------------------------------------------ 4. the scoring backbone, before training


def test_backbone_weights_that_cannot_be_loaded_are_refused_before_training(capsys, tmp_path, synth_root,
                                                                           monkeypatch):
    r18 = tmp_path / "r18.pth"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(FeatureExtractor("resnet18").state_dict(), r18)
    base = ["train", "--data", synth_root, "--category", "widget", "--preset", "tiny", "--image-size", 32,
            "--epochs", 0]
    result = run_cli(capsys, *base, "--backbone-weights", tmp_path / "missing.pth", "--out", tmp_path / "a")
    assert_one_line(result, str(tmp_path / "missing.pth"))
    result = run_cli(capsys, *base, "--backbone", "wide_resnet50_2", "--backbone-weights", r18,
                     "--out", tmp_path / "b")
    assert_one_line(result, "do not fit wide_resnet50_2")
    monkeypatch.setitem(sys.modules, "torchvision", None)  # a machine without torchvision
    result = run_cli(capsys, *base, "--backbone-weights", "", "--out", tmp_path / "c")
    assert_one_line(result, "torchvision", "none")
    assert not any((tmp_path / n).exists() for n in "abc")  # refused before the run folder was made
    # the right file is accepted
    code, _, err = run_cli(capsys, *base, "--backbone-weights", r18, "--out", tmp_path / "d")
    assert code == 0, err
