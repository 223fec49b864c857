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


def test_matrix_at_toy_scale(run_matrix, tmp_path, capsys):
    pytest.importorskip("onnx")
    out = tmp_path / "results"
    args = ["--work", str(tmp_path / "work"), "--out", str(out), "--machine", "toy", "--preset", "tiny",
            "--image-size", "32", "--steps", "1", "--precisions", "fp32,int8", "--scorings", "pixel",
            "--frame-size", "64x48", "--warmup", "1", "--iters", "3", "--overhead-frames", "4", "--null-frames", "20",
            "--profile-runs", "1",
            "--edge", "fp32,1,pixel", "--reference-spec", "tiny,32,resnet18", "--reference-threads", "1",
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
    assert "torch (the reference) ran on the CPU" in md and ref["variant"]["device"] == "cpu"
    assert (out / "toy.png").read_bytes()[:4] == b"\x89PNG"
    details = json.loads((out / "toy.details.json").read_text())
    assert details["ort_profile"]["runs"] == 1
    # the edge variant (here FP32, by --edge) is profiled, and so is the fastest distilled INT8 row, another one
    assert details["ort_profile"]["row"] == fp32["variant"]["name"]
    assert details["ort_profile_fastest_int8"]["row"] == int8["variant"]["name"]
    assert "Amdahl's bound" in md
    for r in (fp32, int8):
        assert f"| {r['variant']['name']} | {r['stages_ms']['frame']['p50']:,.1f} |" in md
    cases = list(details["loop_overhead"].values())
    fastest = min((fp32, int8), key=lambda r: r["stages_ms"]["frame"]["p50"])
    assert [c["runner"] for c in cases] == ["null graph"] * 3 + [fastest["variant"]["name"]]
    assert [c["event_log"] for c in cases] == [False, True, True, True]
    assert [c["frames"] for c in cases] == [20, 20, 20, 4]
    # --report-only writes the same Markdown again from the saved files, under the options of the run
    (out / "toy.md").unlink()
    assert run_matrix.main(["--report-only", "--out", str(out), "--machine", "toy"]) == 0
    assert (out / "toy.md").read_text() == md
    capsys.readouterr()
    assert run_matrix.main(["--report-only", "--out", str(tmp_path / "nothing"), "--machine", "toy"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "toy.json" in err and "run the matrix first" in err
    # a second run reuses the bundles it made
    made = sorted(p.name for p in (tmp_path / "work").iterdir() if p.is_dir() and p.name.startswith("tiny"))
    assert made == ["tiny-32-k1-pixel-fp32", "tiny-32-k1-pixel-int8"]
    assert "speed-only" in (tmp_path / "work" / made[1] / "manifest.yaml").read_text()


def test_free_compute_bound_applies_kernel_shares_to_the_rows_inference(run_matrix):
    import matrix_report

    row = {"variant": {"name": "v"}, "stages_ms": {"frame": {"p50": 100.0}, "infer": {"p50": 90.0}}}
    profile = {"by_op": [{"name": "QLinearConv", "share": 0.3}, {"name": "Conv", "share": 0.1},
                         {"name": "Einsum", "share": 0.05}, {"name": "ReorderInput", "share": 0.05},
                         {"name": "DequantizeLinear", "share": 0.15}, {"name": "QuantizeLinear", "share": 0.05},
                         {"name": "InstanceNormalization", "share": 0.3}]}
    b = matrix_report.free_compute_bound(row, profile)
    assert b["products_share"] == pytest.approx(0.5) and b["qdq_share"] == pytest.approx(0.2)
    assert b["free_products_ms"] == pytest.approx(10.0 + 90.0 * 0.5)  # decode etc. stay, half the kernels go
    assert b["free_products_qdq_ms"] == pytest.approx(10.0 + 90.0 * 0.3)  # only the normalisation is left
    ref = {"reference": True, "variant": {"name": "ref"}, "stages_ms": {"frame": {"p50": 1110.0}}}
    text = "\n".join(matrix_report.bound_section([ref, row], ref, [dict(profile, row="v")]))
    assert "| v | 100.0 | 50% | 20% | 55.0 | 20.2x | 37.0 | 30.0x |" in text
    # with free products 20.2x: not enough; with free Q/DQ too, 30.0x: the rest fits the 37-ms budget
    assert "none of these variants reaches 30x" in text and "Only with the INT8 conversions free as well" in text
    ref["stages_ms"]["frame"]["p50"] = 1000.0
    text = "\n".join(matrix_report.bound_section([ref, row], ref, [dict(profile, row="v")]))
    assert "Not even with the INT8 conversions free as well (at most 27.0x)" in text
    ref["stages_ms"]["frame"]["p50"] = 1700.0  # 30.9x with free products: no claim that faster kernels cannot
    text = "\n".join(matrix_report.bound_section([ref, row], ref, [dict(profile, row="v")]))
    assert "| v |" in text and "none of these variants" not in text
