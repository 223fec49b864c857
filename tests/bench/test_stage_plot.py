"""The demo's per-stage latency chart: drawn from a run summary and a bench row, stages in frame order."""

from __future__ import annotations

from ddad_edge.bench.stage_plot import plot_stage_latency


def test_chart_from_a_run_and_a_bench_row(tmp_path):
    run = {"decode": 0.7, "preprocess": 0.1, "infer": 40.0, "decide": 0.03, "reject": 0.01, "sinks": None}
    row = {"variant": {"name": "onnxruntime int8 k2"},
           "stages_ms": {s: {"p50": v, "p99": 2 * v} for s, v in
                         (("decode", 0.8), ("resize", 0.1), ("infer", 41.0), ("decide", 0.04), ("frame", 42.0))}}
    path = plot_stage_latency(run, row, tmp_path / "stages.png", title="demo")
    small = plot_stage_latency(run, None, tmp_path / "run-only.png")
    assert path.read_bytes()[:4] == b"\x89PNG" and small.read_bytes()[:4] == b"\x89PNG"
    assert path.stat().st_size > small.stat().st_size  # the bench panel is there too
