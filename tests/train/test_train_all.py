"""train-all over two categories of a tiny synthetic set: presets per category, the summary table,
a second call that skips the finished categories, a resumed interrupted one, and the one-line errors."""

from __future__ import annotations

import dataclasses
import json
import warnings

import pytest

from ddad_edge.cli import main
from ddad_edge.config_presets import run_config_for
from ddad_edge.errors import DdadError
from ddad_edge.model.checkpoint import load_checkpoint, open_run
from ddad_edge.train.diffusion import train_diffusion
from ddad_edge.train.train_all import CategoryState, choose_categories, plan_categories

ARGS = ["--preset", "tiny", "--image-size", "32", "--max-steps", "2", "--batch-size", "4", "--device", "cpu"]


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine, torch's thread pool contending with other
    processes makes these tiny steps ten times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def two_categories(tmp_path_factory):
    """pcb1 (a VisA name: DDAD's w 9, v 7, λ 0.01) and widget (no preset), 10 training images each at 32 px."""
    from ddad_edge.data.synth import make_synthetic_dataset

    root = tmp_path_factory.mktemp("cats")
    for seed, name in enumerate(("pcb1", "widget")):
        make_synthetic_dataset(root, category=name, size=32, n_train=10, n_test_good=3, n_test_defect=3, seed=seed)
    (root / "notes").mkdir()  # not a category: no train/good
    return root


def test_train_all_then_skip_finished_and_evaluate(two_categories, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train-all", "--data", str(two_categories), "--categories", "all", "--out", str(runs), *ARGS]) == 0
    captured = capsys.readouterr()
    assert "note: no DDAD preset for widget" in captured.err
    table = captured.out.splitlines()
    assert table[0].split() == ["category", "outcome", "steps", "final", "loss", "minutes"]
    rows = {line.split()[0]: line for line in table[2:4]}
    assert set(rows) == {"pcb1", "widget"} and all(" trained " in row for row in rows.values())
    pcb1, widget = open_run(runs / "pcb1").cfg, open_run(runs / "widget").cfg
    assert (pcb1.sampler.w, pcb1.scoring.v, pcb1.adapt.lam, pcb1.data.layout) == (9, 7, 0.01, "visa")
    assert (widget.sampler.w, widget.scoring.v, widget.data.layout) == (3.0, 1.0, "mvtec")
    stamps = {}
    for name in ("pcb1", "widget"):
        payload = load_checkpoint(runs / name / "checkpoints" / "last.pt")
        assert payload["step"] == 2 and payload["finished"]
        assert rows[name].split()[2] == "2" and float(rows[name].split()[3]) == pytest.approx(payload["loss"], rel=1e-3)
        stamps[name] = (runs / name / "checkpoints" / "last.pt").stat().st_mtime_ns
    summary = json.loads((runs / "train-all.json").read_text())
    assert [c["outcome"] for c in summary["categories"]] == ["trained", "trained"]

    # the same request again: nothing to train; with --evaluate, the image AUROC
    assert main(["train-all", "--data", str(two_categories), "--categories", "widget,pcb1", "--out", str(runs),
                 *ARGS]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("skipped") == 2 and captured.out.count("skipped (done)") == 2
    assert all((runs / n / "checkpoints" / "last.pt").stat().st_mtime_ns == stamps[n] for n in stamps)
    assert main(["train-all", "--data", str(two_categories), "--categories", "widget", "--out", str(runs),
                 "--evaluate", *ARGS]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-2:] == ["image", "AUROC"] and len(lines) == 4  # head, rule, widget, summary path
    name, *_, auroc = lines[2].split()
    metrics = json.loads((runs / "widget" / "eval" / "steps10" / "metrics.json").read_text())
    assert name == "widget" and "skipped (done)" in lines[2] and auroc == f"{metrics['image_auroc']:.3f}"
    assert 0.0 <= metrics["image_auroc"] <= 1.0 and metrics["n_images"] == 6
    assert (runs / "widget" / "checkpoints" / "last.pt").stat().st_mtime_ns == stamps["widget"]


def test_an_interrupted_category_is_resumed(two_categories, tmp_path, capsys):
    runs = tmp_path / "runs"
    # widget's first session stopped by its time limit, unfinished, with a seed that train-all would not pick
    cfg = run_config_for("tiny", 32, "widget", str(two_categories))
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=7, batch_size=4, max_minutes=1e-4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = train_diffusion(cfg, runs / "widget", device="cpu", show_progress=False)
    assert not first.finished and first.steps <= 1
    plans, _ = plan_categories(two_categories, "widget", "tiny", 32, runs, {"max_steps": 2, "batch_size": 4})
    assert [(p.category, p.state) for p in plans] == [("widget", CategoryState.PARTIAL)]

    assert main(["train-all", "--data", str(two_categories), "--categories", "widget", "--out", str(runs), *ARGS]) == 0
    captured = capsys.readouterr()
    assert f"resuming from step {first.steps}" in captured.err
    payload = load_checkpoint(runs / "widget" / "checkpoints" / "last.pt")
    assert payload["step"] == 2 and payload["finished"]
    assert payload["config"]["train"]["seed"] == 7, "continued the interrupted run, not a new one"
    assert payload["config"]["train"]["max_minutes"] == 0.0
    assert "resumed" in captured.out.splitlines()[2]


def test_choosing_categories(two_categories):
    assert choose_categories(two_categories, "all") == (["pcb1", "widget"],
                                                        ["no DDAD preset for widget: default w, v, λ and epochs"])
    assert choose_categories(two_categories, "pcb1") == (["pcb1"], [])
    with pytest.raises(DdadError, match=r"for: bottle \(found: pcb1, widget\)"):
        choose_categories(two_categories, "pcb1,bottle")
    with pytest.raises(DdadError, match="no category folders"):
        choose_categories(two_categories / "notes", "all")


def test_a_category_whose_folder_cannot_be_used_fails_alone_and_the_others_train(tmp_path, capsys):
    """A damaged last.pt (alpha) and another preset's run (beta) are failed rows of the table; gamma still
    trains; exit 1 at the end, and neither folder is touched."""
    from ddad_edge.data.synth import make_synthetic_dataset
    from ddad_edge.model.checkpoint import save_checkpoint
    from ddad_edge.yaml_strict import to_dict

    root, runs = tmp_path / "data", tmp_path / "runs"
    for seed, name in enumerate(("alpha", "beta", "gamma")):
        make_synthetic_dataset(root, category=name, size=32, n_train=8, n_test_good=2, n_test_defect=2, seed=seed)
    for name in ("alpha", "beta"):
        (runs / name / "checkpoints").mkdir(parents=True)
        (runs / name / "split.yaml").write_text("train: []\nval: []\n")
    (runs / "alpha" / "checkpoints" / "last.pt").write_bytes(b"PK\x03\x04 truncated")
    other = run_config_for("tiny", 64, "beta", str(root))
    save_checkpoint(runs / "beta" / "checkpoints" / "last.pt", {"config": to_dict(other), "step": 5})
    before = {n: (runs / n / "checkpoints" / "last.pt").read_bytes() for n in ("alpha", "beta")}

    code = main(["train-all", "--data", str(root), "--out", str(runs), *ARGS])
    captured = capsys.readouterr()
    assert code == 1, captured.err
    rows = {line.split()[0]: line.split()[1] for line in captured.out.splitlines()[2:5]}
    assert rows == {"alpha": "failed", "beta": "failed", "gamma": "trained"}
    assert "alpha: failed: checkpoint" in captured.err and "cannot be read" in captured.err
    assert "beta: failed:" in captured.err and "preset tiny at 64 px" in captured.err
    assert load_checkpoint(runs / "gamma" / "checkpoints" / "last.pt")["step"] == 2
    assert all((runs / n / "checkpoints" / "last.pt").read_bytes() == before[n] for n in before)
    notes = {c["category"]: c["note"] for c in json.loads((runs / "train-all.json").read_text())["categories"]}
    assert "cannot be read" in notes["alpha"] and "64 px" in notes["beta"] and notes["gamma"] == ""


@pytest.mark.parametrize("option, words", [
    (("--batch-size", "0"), "train.batch_size"),
    (("--epochs", "-1"), "--epochs -1"),
    (("--epochs", "0"), "--epochs 0"),
    (("--max-minutes", "-1"), "train.max_minutes"),
    (("--max-minutes", "nan"), "train.max_minutes"),
    (("--max-steps", "-3"), "train.max_steps"),
    (("--image-size", "30"), "model.image_size"),
    (("--image-size", "0"), "--image-size 0"),
])
def test_bad_options_are_one_line_before_any_work(two_categories, tmp_path, capsys, option, words):
    runs = tmp_path / "runs"
    args = ["train-all", "--data", str(two_categories), "--out", str(runs), *ARGS, *option]
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1 and words in err, err
    assert not runs.exists()


def test_a_failed_evaluation_makes_the_exit_status_1(two_categories, tmp_path, capsys, monkeypatch):
    from ddad_edge.train import train_all

    def no_backbone(out, device="cpu"):
        raise DdadError("no weights for backbone resnet18: give scoring.backbone_weights")

    monkeypatch.setattr(train_all, "evaluate_category", no_backbone)
    runs = tmp_path / "runs"
    code = main(["train-all", "--data", str(two_categories), "--categories", "widget", "--out", str(runs),
                 "--evaluate", *ARGS])
    captured = capsys.readouterr()
    assert code == 1
    assert "widget: evaluation failed: no weights" in captured.err
    row = json.loads((runs / "train-all.json").read_text())["categories"][0]
    assert row["outcome"] == "trained" and row["evaluation_failed"] and row["image_auroc"] is None
