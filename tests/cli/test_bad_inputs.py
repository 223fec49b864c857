"""Bad inputs of the workstation commands end with one line naming the problem (exit 2, no traceback)."""

import shutil

import cv2
import numpy as np
import pytest
import torch

from ddad_edge.cli import main


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    err = capsys.readouterr().err.strip()
    return code, err


def assert_one_line(code, err, *words):
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ")
    for w in words:
        assert w in err, err


def test_missing_folder(capsys, tmp_path):
    code, err = run_cli(capsys, "train", "--data", tmp_path / "nope", "--preset", "tiny", "--out", tmp_path / "r")
    assert_one_line(code, err, str(tmp_path / "nope"))


def test_empty_train_good(capsys, tmp_path):
    (tmp_path / "d" / "widget" / "train" / "good").mkdir(parents=True)
    code, err = run_cli(capsys, "train", "--data", tmp_path / "d", "--category", "widget", "--preset", "tiny",
                        "--out", tmp_path / "r")
    assert_one_line(code, err, "train/good")


def test_corrupt_image(capsys, tmp_path, synth_root):
    data = tmp_path / "d"
    shutil.copytree(synth_root, data)
    bad = sorted((data / "widget" / "train" / "good").iterdir())[0]
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    code, err = run_cli(capsys, "train", "--data", data, "--category", "widget", "--preset", "tiny",
                        "--image-size", 32, "--max-steps", 1, "--out", tmp_path / "r")
    assert_one_line(code, err, bad.name)


def test_mask_of_another_size(capsys, tmp_path, synth_root, tiny_run):
    data = tmp_path / "d"
    shutil.copytree(synth_root, data)
    mask = sorted((data / "widget" / "ground_truth").glob("*/*.png"))[0]
    cv2.imwrite(str(mask), np.zeros((17, 23), np.uint8))
    code, err = run_cli(capsys, "evaluate", "--run", tiny_run, "--data", data, "--category", "widget",
                        "--out", tmp_path / "ev")
    assert_one_line(code, err, mask.name)


def test_unknown_config_key(capsys, tmp_path, synth_root):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("sampler:\n  ww: 3\n")
    code, err = run_cli(capsys, "train", "--data", synth_root, "--category", "widget", "--config", cfg,
                        "--out", tmp_path / "r")
    assert_one_line(code, err, "sampler.ww")


def test_resume_with_another_preset(capsys, tmp_path, tiny_run):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    code, err = run_cli(capsys, "train", "--data", "unused", "--resume", "--preset", "ddad-s", "--out", run)
    assert_one_line(code, err, "tiny", "ddad-s")


def test_checkpoint_of_another_preset(capsys, tmp_path, tiny_run):
    """A run whose checkpoint holds another model than its config says is refused in one line."""
    from ddad_edge.config import model_preset, run_config_for, to_dict
    from ddad_edge.model.unet import UNet

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    other = run_config_for("tiny", 64)
    torch.save({"kind": "diffusion", "config": to_dict(other), "unet": UNet(model_preset("tiny", 64)).state_dict(),
                "ema": None}, run / "checkpoints" / "last.pt")
    code, err = run_cli(capsys, "evaluate", "--run", run, "--out", tmp_path / "ev")
    assert_one_line(code, err, "64 px", "32 px")


def test_damaged_checkpoint(capsys, tmp_path, tiny_run):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "checkpoints" / "last.pt").write_bytes(b"garbage")
    code, err = run_cli(capsys, "evaluate", "--run", run, "--out", tmp_path / "ev")
    assert_one_line(code, err, "last.pt")


@pytest.mark.parametrize("args", [["evaluate", "--run", "/no/such/run"], ["adapt", "--run", "/no/such/run"]])
def test_missing_run(capsys, args):
    code, err = run_cli(capsys, *args)
    assert_one_line(code, err, "/no/such/run")
