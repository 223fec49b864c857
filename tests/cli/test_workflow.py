"""The README's workstation workflow through the CLI: synth → train → adapt → evaluate --json."""

import json
import math
from pathlib import Path

import yaml

from ddad_edge.cli import main


def test_synth_train_adapt_evaluate(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["synth", "--out", "data", "--size", "32", "--n-train", "24", "--n-test-good", "6",
                 "--n-test-defect", "6"]) == 0
    assert main(["train", "--data", "data", "--category", "widget", "--preset", "tiny", "--image-size", "32",
                 "--max-steps", "4", "--batch-size", "8"]) == 0
    assert (tmp_path / "runs" / "widget" / "checkpoints" / "last.pt").is_file()
    # adapt and evaluate find the latest run under ./runs by themselves, as in the README
    assert main(["adapt", "--max-steps", "2"]) == 0
    assert (tmp_path / "runs" / "widget" / "backbone.pt").is_file()
    assert main(["evaluate", "--json", "metrics.json", "--eta", "0"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("image_auroc", "pixel_auroc", "aupro", "f1_max"):
        assert 0.0 <= metrics[key] <= 1.0, (key, metrics[key])
    assert metrics["n_images"] == 12 and metrics["n_defective"] == 6
    assert metrics["steps"] == 10 and metrics["eta"] == 0.0
    eval_dir = tmp_path / "runs" / "widget" / "eval" / "steps10"
    rows = (eval_dir / "scores.csv").read_text().splitlines()
    assert len(rows) == 13 and rows[0] == "path,kind,label,score"
    assert len(list((eval_dir / "overlays").glob("*.png"))) == 6
    assert all(math.isfinite(float(r.split(",")[-1])) for r in rows[1:])

    # The run keeps absolute paths, so its later stages work from another directory than `train` ran in.
    run = tmp_path / "runs" / "widget"
    split = yaml.safe_load((run / "split.yaml").read_text())
    assert all(Path(p).is_absolute() for p in split["train"] + split["val"])
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["root"] == str(tmp_path / "data")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["adapt", "--run", str(run), "--max-steps", "1"]) == 0
    assert main(["evaluate", "--run", str(run), "--json", "again.json", "--eta", "0"]) == 0
    assert json.loads((elsewhere / "again.json").read_text())["n_images"] == 12


def test_model_info_json(capsys):
    assert main(["model-info", "--preset", "ddad-s", "--image-size", "256", "--backbone", "none", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert 8.0e6 <= info["unet_params"] <= 8.5e6
    assert 30 < info["gflops_per_call"] < 40
