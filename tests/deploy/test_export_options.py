"""`ddad-edge export` options a user can get wrong: each is one line, before the FP32 graph is made, and
loses nothing; `--overwrite` replaces a bundle folder and nothing else.

Most tests here stop before any work: `prepare_export` is replaced by one that fails the test if reached.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from ddad_edge.bundle import Precision, read_bundle, write_manifest
from ddad_edge.cli import main
from ddad_edge.config import ScoringMode
from ddad_edge.deploy import bundle_export
from ddad_edge.deploy.bundle_export import ExportOptions, write_bundle
from ddad_edge.deploy.thresholds import compute_thresholds
from ddad_edge.errors import DdadError
from ddad_edge.inspect.decide import threshold_from_bundle
from ddad_edge.model.checkpoint import open_run
from tests.bundle_factory import make_toy_bundle
from tests.deploy.tiny_bundles import STEPS, tiny_project


@pytest.fixture(scope="module")
def project(tiny_run, tmp_path_factory):
    return tiny_project(tiny_run, tmp_path_factory)


@pytest.fixture
def no_work(monkeypatch):
    """The export must refuse before it prepares anything."""
    def refuse(*_args, **_kwargs):
        raise AssertionError("the export started its work before refusing")

    monkeypatch.setattr(bundle_export, "prepare_export", refuse)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line(capsys, code: int) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1, err
    return err


def export(run: Path, *args: str) -> int:
    return main(["export", "--run", str(run), "--precision", "fp32", "--target", "onnx", *args])


def test_overwrite_removes_no_run_folder_and_no_plain_folder(project, tmp_path, capsys, no_work):
    victim = tmp_path / "victim"
    shutil.copytree(project / "runs" / "widget", victim)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("years of notes")
    inside = victim / "old-bundle"  # a real bundle, but inside the run folder
    make_toy_bundle(inside)
    before = snapshot(tmp_path)
    for out, words in ((victim, "not one"), (precious, "not one"), (inside, "inside the run folder")):
        err = one_line(capsys, export(victim, "--out", str(out), "--overwrite"))
        assert "--overwrite" in err and words in err and "nothing was removed" in err
    assert snapshot(tmp_path) == before


def test_overwrite_removes_no_dataset_root(project, tmp_path, capsys, no_work):
    run = open_run(project / "runs" / "widget")
    data = tmp_path / "data"  # a copy of the run whose dataset root is a bundle-looking folder
    make_toy_bundle(data)
    victim = tmp_path / "victim"
    shutil.copytree(run.path, victim)
    cfg = yaml.safe_load((victim / "config.yaml").read_text())
    cfg["data"]["root"] = str(data)
    (victim / "config.yaml").write_text(yaml.safe_dump(cfg))
    before = snapshot(tmp_path)
    err = one_line(capsys, export(victim, "--out", str(data), "--overwrite"))
    assert "dataset root" in err
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("case", ["dot", "under-a-file", "dangling-link", "a-file"])
def test_a_bad_out_is_one_line_before_any_work(project, tmp_path, capsys, monkeypatch, no_work, case):
    run = project / "runs" / "widget"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.onnx").write_bytes(b"onnx")
    os.symlink(tmp_path / "gone", tmp_path / "current")
    out, words = {"dot": (".", "current folder"), "under-a-file": ("file.onnx/sub", "is a file"),
                  "dangling-link": ("current", "does not exist"), "a-file": ("file.onnx", "is a file")}[case]
    before = snapshot(tmp_path)
    err = one_line(capsys, export(run, "--out", out, "--overwrite"))
    assert words in err and out in err
    assert snapshot(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == ["current", "file.onnx"]


def _fake_prep(project: Path, options: ExportOptions) -> SimpleNamespace:
    """What write_bundle reads of a prepared export, without preparing one."""
    return SimpleNamespace(run=open_run(project / "runs" / "widget"), options=options, steps=STEPS,
                           scoring=ScoringMode.FUSED)


def _write_toy_bundle(staging, *_args):
    make_toy_bundle(staging, precision="fp16")
    return "a toy bundle"


def test_overwrite_through_a_link_replaces_the_bundle_it_points_to_and_keeps_the_link(project, tmp_path,
                                                                                     monkeypatch):
    make_toy_bundle(tmp_path / "v1", precision="fp32")
    os.symlink("v1", tmp_path / "current")  # the device layout current -> v1
    monkeypatch.setattr(bundle_export, "_write_into", _write_toy_bundle)
    options = ExportOptions(run=project / "runs" / "widget", precision=Precision.FP16, out=tmp_path / "current",
                            steps=STEPS, overwrite=True)
    bundle = write_bundle(_fake_prep(project, options), options, log=lambda _: None)
    assert bundle.path == tmp_path / "current" and os.readlink(tmp_path / "current") == "v1"
    assert read_bundle(tmp_path / "v1").precision is Precision.FP16  # the new bundle, where the link points
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current", "v1"]  # no staging or old folder left


def test_overwrite_replaces_a_bundle_that_holds_its_own_evaluation(project, tmp_path, monkeypatch):
    old = tmp_path / "bundle"
    make_toy_bundle(old, precision="fp32")
    (old / "eval").mkdir()  # where `evaluate --bundle` writes by default
    (old / "eval" / "metrics.json").write_text("{}")
    monkeypatch.setattr(bundle_export, "_write_into", _write_toy_bundle)
    options = ExportOptions(run=project / "runs" / "widget", precision=Precision.FP16, out=old, steps=STEPS,
                            overwrite=True)
    write_bundle(_fake_prep(project, options), options, log=lambda _: None)
    assert read_bundle(old).precision is Precision.FP16 and not (old / "eval").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_a_failed_move_into_place_is_one_line_and_keeps_the_old_bundle(project, tmp_path, monkeypatch, capsys):
    old = tmp_path / "bundle"
    make_toy_bundle(old, precision="fp32")
    before = snapshot(old)
    real_rename = Path.rename

    def rename(self, target):
        if self.name.endswith(".partial"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_rename(self, target)

    monkeypatch.setattr(bundle_export, "_write_into", _write_toy_bundle)
    monkeypatch.setattr(Path, "rename", rename)
    options = ExportOptions(run=project / "runs" / "widget", precision=Precision.FP16, out=old, steps=STEPS,
                            overwrite=True)
    with pytest.raises(DdadError, match="No space left on device"):
        write_bundle(_fake_prep(project, options), options, log=lambda _: None)
    assert snapshot(old) == before and read_bundle(old).precision is Precision.FP32
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no .bundle.partial, no .bundle.old


@pytest.mark.parametrize("args, words", [
    (["--margin", "nan"], "--margin"),
    (["--margin", "inf"], "--margin"),
    (["--margin", "-0.5"], "--margin"),
    (["--naive"], "--naive needs --steps"),
    (["--steps", "0"], "--steps 0 is out of range"),
    (["--steps", "3"], "distill makes 4, 2 or 1 steps only"),
    (["--steps", "4"], "--to-steps 4"),
    (["--profile", "nosuch"], "--target onnx builds no engine"),
])
def test_a_bad_export_option_is_one_line_before_any_work(project, tmp_path, capsys, no_work, args, words):
    err = one_line(capsys, export(project / "runs" / "widget", "--out", str(tmp_path / "b"), *args))
    assert words in err and "--to-steps 0" not in err and "--to-steps 3" not in err
    assert not (tmp_path / "b").exists()


def test_an_unknown_profile_is_refused_before_any_work(project, tmp_path, capsys, no_work):
    code = main(["export", "--run", str(project / "runs" / "widget"), "--precision", "fp32", "--target", "auto",
                 "--profile", "nosuch", "--out", str(tmp_path / "b")])
    assert "no build profile named 'nosuch'" in one_line(capsys, code)


def test_thresholds_that_come_out_not_finite_are_refused():
    maps = [[[[0.1]]]]
    with pytest.raises(DdadError, match="not finite"):
        compute_thresholds([0.1, float("nan")], maps)


@pytest.mark.parametrize("thresholds", [{"image": float("nan")}, {"image": float("inf")}, {}, {"image": "high"},
                                        [0.5]])
def test_a_bundle_without_a_usable_threshold_names_real_fixes(thresholds):
    with pytest.raises(DdadError) as caught:
        threshold_from_bundle({"thresholds": thresholds})
    message = str(caught.value)
    assert "calibrate" not in message and "`ddad-edge export`" in message and "--threshold" in message


def test_run_on_a_bundle_whose_image_threshold_was_removed_says_export_again(tmp_path, capsys):
    from PIL import Image

    bundle = make_toy_bundle(tmp_path / "bundle")
    write_manifest(bundle.path, {**bundle.manifest, "thresholds": {"pixel": 0.5}})  # image removed, re-hashed
    (tmp_path / "frames").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "frames" / "a.png")
    code = main(["run", "--bundle", str(bundle.path), "--images", str(tmp_path / "frames"),
                 "--backend", "onnxruntime", "--out", str(tmp_path / "inspect")])
    err = one_line(capsys, code)
    assert "thresholds.image" in err and "`ddad-edge export`" in err and "--threshold" in err



@pytest.mark.parametrize("own", [False, True], ids=["shipped", "with-own-profile"])
def test_export_checks_the_tensorrt_versions_the_build_profiles_name(project, tmp_path, capsys, monkeypatch, own):
    from ddad_edge.deploy.tensorrt_profile import load_build_profile, profile_tensorrt_versions

    profile = tmp_path / "line-pc.yaml"
    profile.write_text('description: the line PC\ntensorrt: ["10.8"]\n')
    asked = []

    def stop(options, log=print):  # what the export was asked to check, then no work
        asked.append(options.tensorrt)
        raise DdadError("stopped before the work")

    monkeypatch.setattr(bundle_export, "prepare_export", stop)
    extra = ["--target", "tensorrt", "--profile", str(profile)] if own else []
    code = main(["export", "--run", str(project / "runs" / "widget"), "--precision", "fp32",
                 "--out", str(tmp_path / "b"), *extra])
    assert "stopped before the work" in one_line(capsys, code)
    shipped = profile_tensorrt_versions()
    assert set(shipped) >= {v for name in ("orin-nano", "x86-gpu") for v in load_build_profile(name).tensorrt}
    assert asked == [profile_tensorrt_versions(load_build_profile(profile)) if own else shipped]
    assert ("10.8" in asked[0]) is own
