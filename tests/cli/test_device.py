"""`ddad-edge build`, `doctor` and `selftest` through the real command line on this machine."""

from __future__ import annotations

import pytest

from ddad_edge.bundle import write_manifest
from ddad_edge.cli import main
from tests.bundle_factory import make_toy_bundle


@pytest.fixture
def without_tensorrt(import_fails):
    """This machine as it is in CI: `import tensorrt` fails (also where TensorRT happens to be installed)."""
    import_fails("tensorrt")


def test_doctor_exits_zero_and_summarises(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "onnxruntime" in out and out.strip().splitlines()[-1].startswith("TensorRT:")


def test_doctor_with_a_bundle_says_what_the_parser_rules_found(tmp_path, capsys, without_tensorrt):
    bundle = make_toy_bundle(tmp_path / "bundle")
    write_manifest(bundle.path, {**bundle.manifest, "tensorrt_rules": {"10.3": {"ok": True}}})
    assert main(["doctor", "--bundle", str(bundle.path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any("bundle" in line and "export recorded 10.3 ok" in line for line in lines), lines


def test_selftest_onnxruntime_passes_and_fails_with_exit_codes(tmp_path, capsys):
    bundle = make_toy_bundle(tmp_path / "bundle", precision="fp16")
    assert main(["selftest", "--bundle", str(bundle.path), "--backend", "onnxruntime", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "overall: PASS" in out and "p50" in out and "p99" in out
    manifest = dict(bundle.manifest)
    manifest["tolerance"] = {"map_abs": 0.0, "score_rel": 0.0}
    write_manifest(bundle.path, manifest)
    assert main(["selftest", "--bundle", str(bundle.path), "--backend", "onnxruntime", "--repeats", "1"]) == 1
    assert "overall: FAIL" in capsys.readouterr().out


def test_build_and_tensorrt_selftest_say_in_one_line_what_is_missing(tmp_path, capsys, without_tensorrt):
    bundle = make_toy_bundle(tmp_path / "bundle")
    assert main(["build", "--bundle", str(bundle.path), "--profile", "orin-nano"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'tensorrt'" in err and "Jetson" in err
    assert main(["selftest", "--bundle", str(bundle.path), "--backend", "tensorrt"]) == 2
    assert "'tensorrt'" in capsys.readouterr().err
