"""The matrix runner of benchmarks/ end to end, at toy scale: bundles made with the export stage's functions,
the reference in the same run, and the three results files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def run_matrix(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import run_matrix

    return run_matrix


def test_matrix_at_toy_scale(run_matrix, tmp_path):
    pytest.importorskip("onnx")
    out = tmp_path / "results"
    args = ["--work", str(tmp_path / "work"), "--out", str(out), "--machine", "toy", "--preset", "tiny",
            "--image-size", "32", "--steps", "1", "--precisions", "fp32,int8", "--scorings", "pixel",
            "--frame-size", "64x48", "--warmup", "1", "--iters", "3", "--overhead-frames", "4", "--null-frames", "20",
            "--profile-runs", "1",
            "--edge", "int8,1,pixel", "--reference-spec", "tiny,32,resnet18", "--reference-threads", "1",
            "--reference-iters", "2", "--no-progress"]
    assert run_matrix.main(args) == 0
    rows = json.loads((out / "toy.json").read_text())
    # the reference, the rows, the reference once more at the end; the faster reference is THE reference
    assert [r["variant"]["precision"] for r in rows] == ["fp32", "fp32", "int8", "fp32"]
    first, fp32, int8, last = rows
    assert "again at the end" in last["variant"]["name"] and [first["reference"], last["reference"]].count(True) == 1
    ref = first if first["reference"] else last
    assert ref["variant"]["steps"] == 10 and ref["speedup_vs_reference"] == 1.0
    assert ref["stages_ms"]["frame"]["p50"] <= (last if ref is first else first)["stages_ms"]["frame"]["p50"]
    for r in (fp32, int8):
        assert r["variant"]["backend"] == "onnxruntime" and r["variant"]["scoring"] == "pixel"
        assert r["speedup_vs_reference"] == pytest.approx(
            ref["stages_ms"]["frame"]["p50"] / r["stages_ms"]["frame"]["p50"], rel=0.01)
        assert "random weights" in r["variant"]["model"] and r["fidelity"] is None
        assert len(r["samples_ms"]["frame"]) == 3 and r["run"]["command"].startswith("python benchmarks/run_matrix.py")
    md = (out / "toy.md").read_text()
    for words in ("What was measured on which model", "Target:", "ONNX Runtime profile", "INT8 against FP32",
                  "overhead", "| variant |"):
        assert words in md, words
    assert (out / "toy.png").read_bytes()[:4] == b"\x89PNG"
    details = json.loads((out / "toy.details.json").read_text())
    assert details["ort_profile"]["runs"] == 1
    cases = list(details["loop_overhead"].values())
    fastest = min((fp32, int8), key=lambda r: r["stages_ms"]["frame"]["p50"])
    assert [c["runner"] for c in cases] == ["null graph"] * 3 + [fastest["variant"]["name"]]
    assert [c["event_log"] for c in cases] == [False, True, True, True]
    assert [c["frames"] for c in cases] == [20, 20, 20, 4]
    # a second run reuses the bundles it made
    made = sorted(p.name for p in (tmp_path / "work").iterdir() if p.is_dir() and p.name.startswith("tiny"))
    assert made == ["tiny-32-k1-pixel-fp32", "tiny-32-k1-pixel-int8"]
    assert "speed-only" in (tmp_path / "work" / made[1] / "manifest.yaml").read_text()
