"""The on-device self-test on a real toy bundle with ONNX Runtime, and its checks on given outputs."""

from __future__ import annotations

import numpy as np
import pytest

from ddad_edge.bundle import write_manifest
from ddad_edge.errors import DdadError
from ddad_edge.inspect.selftest import check_frame, format_report, run_selftest
from tests.bundle_factory import make_toy_bundle


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_selftest_passes_each_precision_within_its_tolerance(tmp_path, precision):
    bundle = make_toy_bundle(tmp_path / "bundle", precision=precision)
    report = run_selftest(bundle.path, "onnxruntime", repeats=2)
    assert report.passed and len(report.frames) == 4 and report.backend == "onnxruntime"
    assert 0 < report.latency_p50_ms <= report.latency_p99_ms
    lines = format_report(report)
    assert lines[-1].startswith("overall: PASS (4/4")


def test_selftest_fails_when_outputs_leave_the_tolerance(tmp_path):
    bundle = make_toy_bundle(tmp_path / "bundle", precision="int8")
    manifest = dict(bundle.manifest)
    manifest["tolerance"] = {"map_abs": 1e-6, "score_rel": 1e-6}  # int8 cannot meet an fp32 tolerance
    write_manifest(bundle.path, manifest)
    report = run_selftest(bundle.path, "onnxruntime", repeats=1)
    assert not report.passed
    assert any(line.startswith("  frame 0: FAIL") for line in format_report(report))


def test_check_frame_limits():
    ref = np.zeros((1, 4, 4), np.float32)
    assert check_frame(0, ref + 0.01, 1.0, ref, 1.0, map_abs=0.02, score_rel=0.01).passed
    assert not check_frame(0, ref + 0.03, 1.0, ref, 1.0, map_abs=0.02, score_rel=0.01).passed
    assert not check_frame(0, ref, 1.02, ref, 1.0, map_abs=0.02, score_rel=0.01).passed
    assert not check_frame(0, ref + np.nan, 1.0, ref, 1.0, map_abs=0.02, score_rel=0.01).passed
    assert not check_frame(0, np.zeros((1, 2, 2), np.float32), 1.0, ref, 1.0, map_abs=1, score_rel=1).passed


def test_bundle_without_probe_is_one_line(tmp_path):
    bundle = make_toy_bundle(tmp_path / "bundle")
    manifest = {k: v for k, v in bundle.manifest.items() if k != "probe"}
    write_manifest(bundle.path, manifest)
    with pytest.raises(DdadError, match="no probe frames"):
        run_selftest(bundle.path, "onnxruntime")
