"""Bad inputs of the workstation commands end with one line naming the problem (exit 2, no traceback); input
that only limits what can be measured (defects without masks) is one line too, and the command goes on."""

import json
import shutil

import cv2
import numpy as np
import pytest
import torch

from ddad_edge.cli import main
from tests.cli_helpers import assert_one_line, run_cli


def test_missing_folder(capsys, tmp_path):
    result = run_cli(capsys, "train", "--data", tmp_path / "nope", "--preset", "tiny", "--out", tmp_path / "r")
    assert_one_line(result, str(tmp_path / "nope"))


def test_empty_train_good(capsys, tmp_path):
    (tmp_path / "d" / "widget" / "train" / "good").mkdir(parents=True)
    result = run_cli(capsys, "train", "--data", tmp_path / "d", "--category", "widget", "--preset", "tiny",
                     "--out", tmp_path / "r")
    assert_one_line(result, "train/good")


def test_corrupt_image(capsys, tmp_path, synth_root):
    data = tmp_path / "d"
    shutil.copytree(synth_root, data)
    bad = sorted((data / "widget" / "train" / "good").iterdir())[0]
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    result = run_cli(capsys, "train", "--data", data, "--category", "widget", "--preset", "tiny",
                     "--image-size", 32, "--max-steps", 1, "--out", tmp_path / "r")
    assert_one_line(result, bad.name)


def test_mask_of_another_size(capsys, tmp_path, synth_root, tiny_run):
    data = tmp_path / "d"
    shutil.copytree(synth_root, data)
    mask = sorted((data / "widget" / "ground_truth").glob("*/*.png"))[0]
    cv2.imwrite(str(mask), np.zeros((17, 23), np.uint8))
    result = run_cli(capsys, "evaluate", "--run", tiny_run, "--data", data, "--category", "widget",
                     "--out", tmp_path / "ev")
    assert_one_line(result, mask.name)


def test_unknown_config_key(capsys, tmp_path, synth_root):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("sampler:\n  ww: 3\n")
    result = run_cli(capsys, "train", "--data", synth_root, "--category", "widget", "--config", cfg,
                     "--out", tmp_path / "r")
    assert_one_line(result, "sampler.ww")


def test_resume_with_another_preset(capsys, tmp_path, tiny_run):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    result = run_cli(capsys, "train", "--data", "unused", "--resume", "--preset", "ddad-s", "--out", run)
    assert_one_line(result, "tiny", "ddad-s")


def test_checkpoint_of_another_preset(capsys, tmp_path, tiny_run):
    """A run whose checkpoint holds another model than its config says is refused in one line."""
    from ddad_edge.config_presets import model_preset, run_config_for
    from ddad_edge.model.unet import UNet
    from ddad_edge.yaml_strict import to_dict

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    other = run_config_for("tiny", 64)
    torch.save({"kind": "diffusion", "config": to_dict(other), "unet": UNet(model_preset("tiny", 64)).state_dict(),
                "ema": None}, run / "checkpoints" / "last.pt")
    result = run_cli(capsys, "evaluate", "--run", run, "--out", tmp_path / "ev")
    assert_one_line(result, "64 px", "32 px")


def test_damaged_checkpoint(capsys, tmp_path, tiny_run):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "checkpoints" / "last.pt").write_bytes(b"garbage")
    result = run_cli(capsys, "evaluate", "--run", run, "--out", tmp_path / "ev")
    assert_one_line(result, "last.pt")


@pytest.mark.parametrize("args", [["evaluate", "--run", "/no/such/run"], ["adapt", "--run", "/no/such/run"]])
def test_missing_run(capsys, args):
    result = run_cli(capsys, *args)
    assert_one_line(result, "/no/such/run")


def _red_dataset(root, masks_for=("000", "001"), marked=True):
    """widget/: 2 good green parts, 3 parts with a red patch (the red bundle's defect); masks for `masks_for`
    (all zero unless `marked`)."""
    cat = root / "widget"
    green = np.zeros((32, 32, 3), np.uint8)
    green[:] = (0, 160, 0)  # BGR
    red = green.copy()
    red[8:24, 8:24] = (0, 0, 255)
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 255 if marked else 0
    for name, image in (("good/000.png", green), ("good/001.png", green), ("patch/000.png", red),
                        ("patch/001.png", red), ("patch/002.png", red)):
        (cat / "test" / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(cat / "test" / name), image)
    if masks_for is not None:
        (cat / "ground_truth" / "patch").mkdir(parents=True)
        for stem in masks_for:
            cv2.imwrite(str(cat / "ground_truth" / "patch" / f"{stem}_mask.png"), mask)
    return root


@pytest.mark.parametrize("masks_for,marked,note,without", [
    (("000", "001"), True, "1 of 3 defective images have no mask in {gt} (patch/002.png): pixel AUROC and AUPRO "
                           "use the other 2", 1),
    (None, True, "pixel AUROC and AUPRO not measured: no ground_truth folder in {cat} (defect masks go in "
                 "ground_truth/<kind>/<stem>_mask.png)", 3),
    (("000", "001", "002"), False, "no mask in {gt} marks a defect pixel at 32 px: pixel AUROC and AUPRO not "
                                   "measured", 0),
])
def test_evaluate_says_what_the_pixel_metrics_lack(capsys, tmp_path, masks_for, marked, note, without):
    from tests.bundle_factory import make_red_bundle

    bundle = make_red_bundle(tmp_path / "bundle")
    data = _red_dataset(tmp_path / "data", masks_for, marked)
    code = main(["evaluate", "--bundle", str(bundle.path), "--data", str(data), "--category", "widget",
                 "--out", str(tmp_path / "ev")])
    err = capsys.readouterr().err.strip().splitlines()
    cat = data / "widget"
    assert code == 0 and err[0] == note.format(gt=cat / "ground_truth", cat=cat), err  # then the progress bar
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["defective_without_mask"] == without and metrics["n_defective"] == 3
    measured = without == 1
    assert (metrics["pixel_auroc"] == 1.0) if measured else (metrics["pixel_auroc"] is None)


@pytest.mark.parametrize("extra,words", [
    (["--steps", "2", "--scoring", "pixel", "--eta", "1", "--w", "9", "--ratio", "fixed"],
     ["--steps 2, --scoring pixel, --ratio fixed, --eta 1, --w 9 given with --bundle", "these apply to --run only",
      "export another bundle"]),
    (["--naive"], ["--naive given with --bundle", "it applies to --run only"]),
    (["--run", "some-run"], ["--run some-run and --bundle both given"]),
])
def test_evaluate_bundle_refuses_run_options(capsys, tmp_path, extra, words):
    """A bundle's graph fixes steps, scoring, eta, w and ratio: options that would be ignored are one line,
    and nothing is evaluated or written."""
    from tests.bundle_factory import make_red_bundle

    bundle = make_red_bundle(tmp_path / "bundle")
    data = _red_dataset(tmp_path / "data")
    result = run_cli(capsys, "evaluate", "--bundle", bundle.path, "--data", data, "--category", "widget",
                     "--out", tmp_path / "ev", *extra)
    assert_one_line(result, *words)
    assert not (tmp_path / "ev").exists()


@pytest.mark.parametrize("case", ["json-a-folder", "json-under-a-file", "out-a-file", "out-under-a-file"])
def test_evaluate_checks_where_its_results_go_before_it_evaluates(capsys, tmp_path, monkeypatch, case):
    """An evaluation can take minutes: a --json or --out that cannot be written is one line first."""
    import ddad_edge.evaluate
    from tests.bundle_factory import make_red_bundle

    def never(*_args, **_kwargs):
        raise AssertionError("evaluated before checking its output paths")

    monkeypatch.setattr(ddad_edge.evaluate, "evaluate_runner", never)
    bundle = make_red_bundle(tmp_path / "bundle")
    data = _red_dataset(tmp_path / "data")
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.txt").write_text("mine")
    args, words = {
        "json-a-folder": (["--json", tmp_path / "folder"], "is a folder"),
        "json-under-a-file": (["--json", tmp_path / "file.txt" / "m.json"], "is a file"),
        "out-a-file": (["--out", tmp_path / "file.txt"], "is a file, not a folder"),
        "out-under-a-file": (["--out", tmp_path / "file.txt" / "ev"], "is a file"),
    }[case]
    result = run_cli(capsys, "evaluate", "--bundle", bundle.path, "--data", data, "--category", "widget", *args)
    assert_one_line(result, words)
    assert (tmp_path / "file.txt").read_text() == "mine" and not any((tmp_path / "folder").iterdir())
