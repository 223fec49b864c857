"""Rows: fidelity numbers picked from a bundle report, speed-ups, the Markdown table and the plot."""

from __future__ import annotations

import numpy as np

from ddad_edge.bench.report import (
    add_speedups,
    auroc_axis,
    fidelity_of,
    image_auroc,
    make_row,
    markdown_table,
    pick,
    plot_latency_vs_auroc,
)
from ddad_edge.bench.timing import Measurement, stage_samples

# the shape of the export stage's report.json (deploy/bundle_export.py)
REPORT = {"precision": "int8", "recipe": "int8",
          "fidelity": {"frames": 16, "map_max_abs": 0.02, "map_max_rel": 0.012, "score_max_rel": 0.01,
                       "score_rank_correlation": 0.991, "auroc_reference": 0.93, "auroc": 0.92, "auroc_drop": 0.01},
          "test_split": {"frames": 20, "map_max_rel": 0.015, "score_rank_correlation": 0.99,
                         "auroc_reference": 0.98, "auroc": 0.97, "auroc_drop": 0.01},
          "fp32_onnxruntime_vs_torch": {"map_max_rel": 1e-6},
          "latency": {"this_file": {"p50_ms": 400.0}}, "ok": True}


def measurement(frame_ms: float, n: int = 5) -> Measurement:
    """A measurement whose whole frame takes `frame_ms` (infer is all of it)."""
    loop = {"decode": np.zeros(n), "preprocess": np.zeros(n), "infer": np.full(n, frame_ms),
            "decide": np.zeros(n), "reject": np.zeros(n), "latency": np.full(n, frame_ms)}
    return Measurement(stage_samples(loop, 1), 1, 1, n, 0.1, n * frame_ms / 1e3, 0.1, 100.0, "measured part",
                       (1.0, 1.0))


def test_fidelity_numbers_only():
    f = fidelity_of(REPORT)
    assert "latency.this_file.p50_ms" not in f and "fidelity.frames" not in f and "ok" not in f
    assert f["test_split.auroc"] == 0.97 and f["fidelity.score_rank_correlation"] == 0.991
    assert image_auroc(f) == 0.97  # the real test split's, not the painted set's, the FP32 reference's or the drop
    without_test = {k: v for k, v in f.items() if not k.startswith("test_split")}
    assert image_auroc(without_test) == 0.92
    assert pick(f, "rank", exclude=("fp32",)) == 0.991 and pick(f, "map", "rel", exclude=("fp32",)) == 0.012
    assert pick(f, "aupro") is None and pick(None, "rank") is None and image_auroc({}) is None


def test_speedups_and_flops():
    ref = make_row({"name": "ref"}, measurement(4000.0), gflops_per_frame=400.0, peak_gflops=200.0, reference=True)
    fast = make_row({"name": "fast"}, measurement(100.0), gflops_per_frame=20.0, peak_gflops=200.0,
                    fidelity=fidelity_of(REPORT), fidelity_source="b/report.json")
    add_speedups([ref, fast])
    assert fast["speedup_vs_reference"] == 40.0 and ref["speedup_vs_reference"] == 1.0
    assert fast["achieved_gflops"] == 200.0 and fast["peak_fraction"] == 1.0  # 20 GFLOP in 0.1 s
    alone = make_row({"name": "alone"}, measurement(100.0))
    assert add_speedups([alone])[0]["speedup_vs_reference"] is None


def test_fastest_reference_setting_is_the_reference():
    two = make_row({"name": "ref 2 threads"}, measurement(5000.0), reference=True)
    one = make_row({"name": "ref 1 thread"}, measurement(4000.0), reference=True)
    row = make_row({"name": "row"}, measurement(100.0))
    add_speedups([two, one, row])
    assert one["reference"] and not two["reference"] and two["reference_alternative"]
    assert row["speedup_vs_reference"] == 40.0 and two["speedup_vs_reference"] == 0.8


def test_table_and_plot(tmp_path):
    rows = add_speedups([
        make_row({"name": "ref", "backend": "torch", "precision": "fp32", "steps": 10, "scoring": "fused"},
                 measurement(4000.0), reference=True),
        make_row({"name": "int8 k2", "backend": "onnxruntime", "precision": "int8", "steps": 2, "scoring": "fused",
                  "backbone": "resnet18"}, measurement(100.0), fidelity=fidelity_of(REPORT)),
        make_row({"name": "fp32 k1 pixel", "backend": "onnxruntime", "precision": "fp32", "steps": 1,
                  "scoring": "pixel"}, measurement(50.0)),
    ])
    table = markdown_table(rows).splitlines()
    assert len(table) == 2 + 3 and all(line.count("|") == table[0].count("|") for line in table)
    assert "40.00x" in table[3] and "0.970" in table[3] and "1 (reference)" in table[2]
    png = plot_latency_vs_auroc(rows, tmp_path / "plot.png")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_auroc_axis_keeps_close_aurocs_apart_and_the_speed_only_band_below_them():
    low, band, line, top = auroc_axis([0.942, 0.979, 1.0])
    assert low < band < line < 0.942 and top > 1.0 and top - low < 0.12  # 0.94-1.0 fills the axis
    low, band, line, top = auroc_axis([])
    assert low < band < line < 0.5 and top > 1.0
    low, band, line, top = auroc_axis([1.0, 1.0])  # all equal: still a band below, the points not on the edge
    assert low < band < line < 1.0 < top
