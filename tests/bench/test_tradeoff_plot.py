"""The speed-up vs fidelity plot: teacher, drops with paired intervals, frontier, labels that do not collide."""

from __future__ import annotations

import numpy as np

from ddad_edge.bench.tradeoff_plot import (
    Point,
    fastest_within_budget,
    fidelity_points,
    frontier,
    place_numbers,
    plot_speedup_vs_fidelity,
    teacher_row,
)
from ddad_edge.metrics import AUROC_BUDGET


def row(name, precision, steps, speedup, auroc, scores=None, labels=None, reference=False, gflops=1.0,
        scoring="fused", backend="onnxruntime"):
    r = {"variant": {"name": name, "precision": precision, "steps": steps, "scoring": scoring, "backend": backend},
         "speedup_vs_reference": speedup, "reference": reference, "gflops_per_frame": gflops,
         "fidelity": None if auroc is None else {"test_split.auroc": auroc}}
    if scores is not None:
        r["fidelity_test"] = {"labels": labels, "scores": scores}
    return r


def matrix() -> list[dict]:
    rng = np.random.default_rng(0)
    labels = [0] * 40 + [1] * 40
    teacher = rng.normal(0, 1, 80) + 1.6 * np.asarray(labels)
    worse = teacher + rng.normal(0, 0.8, 80)
    return [row("reference", "fp32", 10, 1.0, None, reference=True),
            row("fp32 k10", "fp32", 10, 1.6, 0.95, teacher.tolist(), labels, gflops=9),
            row("fp32 k10 small", "fp32", 10, 1.7, 0.95, gflops=2),
            row("int8 k10", "int8", 10, 2.5, 0.95, teacher.tolist(), labels),
            row("fp32 k1", "fp32", 1, 12.0, 0.9, worse.tolist(), labels),
            row("int8 k1", "int8", 1, 19.0, 0.88),
            row("speed only", "int8", 2, 9.0, None)]


def test_teacher_is_the_fp32_row_with_most_steps_and_most_flops():
    assert teacher_row(matrix())["variant"]["name"] == "fp32 k10"


def test_teacher_is_the_best_scoring_of_the_most_steps_as_onnx_runtime_runs_it():
    """Fused scoring at chance (an extractor that does not suit the parts) loses to pixel-only; an OpenVINO
    mode of the teacher's file (another arithmetic) is never the teacher, however it scores; fewer steps
    never are either."""
    rows = [row("fused k10", "fp32", 10, 1.6, 0.45, gflops=9), row("pixel k10", "fp32", 10, 2.0, 0.90,
                                                                    scoring="pixel", gflops=7),
            row("pixel k10 ov", "fp32", 10, 2.5, 0.92, scoring="pixel", backend="openvino-bf16"),
            row("pixel k1", "fp32", 1, 14.0, 0.95, scoring="pixel")]
    assert teacher_row(rows)["variant"]["name"] == "pixel k10"
    assert teacher_row(rows[2:3])["variant"]["name"] == "pixel k10 ov"  # no ONNX Runtime row: any backend


def test_fastest_within_budget_skips_drops_over_a_point_and_refused_modes():
    pts = [Point("teacher", "fp32", 10, 1.6, 0.9, 0.0, None, None),
           Point("k2", "int8", 2, 9.0, 0.895, 0.005, None, None),
           Point("k2 bf16", "int8", 2, 20.0, 0.9, AUROC_BUDGET, None, None, "openvino-bf16"),
           Point("k1 bf16 refused", "int8", 1, 40.0, 0.9, 0.0, None, None, "openvino-bf16", "map error 0.2"),
           Point("k1", "int8", 1, 30.0, 0.88, AUROC_BUDGET + 0.001, None, None)]
    assert fastest_within_budget(pts).name == "k2 bf16"
    assert fastest_within_budget(pts[3:]) is None


def test_drops_against_the_teacher_with_paired_intervals_where_scores_exist():
    rows = matrix()
    points = {p.name: p for p in fidelity_points(rows, teacher_row(rows))}
    assert set(points) == {"fp32 k10", "fp32 k10 small", "int8 k10", "fp32 k1", "int8 k1"}
    assert points["fp32 k10"].drop == 0.0 and (points["fp32 k10"].low, points["fp32 k10"].high) == (0.0, 0.0)
    k1 = points["fp32 k1"]
    assert k1.low < k1.drop < k1.high and k1.high - k1.low > 0.005
    assert points["int8 k1"].low is None and abs(points["int8 k1"].drop - 0.07) < 1e-9  # no scores: no interval


def test_frontier_keeps_only_variants_nothing_beats_on_both_axes():
    pts = [Point(n, "fp32", 1, s, 0.9, d, None, None) for n, s, d in
           [("a", 1.5, 0.0), ("b", 2.0, 0.0), ("c", 3.0, 0.05), ("d", 4.0, 0.02), ("e", 5.0, 0.03)]]
    assert [p.name for p in frontier(pts)] == ["b", "d", "e"]


def test_numbers_of_a_tight_cluster_do_not_overlap():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    xy = [(1.0 + 0.02 * i, 0.0) for i in range(8)] + [(1.05, 0.001 * i) for i in range(4)]
    ax.scatter(*zip(*xy))
    ax.set_xlim(0.8, 1.4)
    ax.set_ylim(-0.01, 0.01)
    boxes = place_numbers(ax, fig, xy, [str(i + 1) for i in range(len(xy))])
    plt.close(fig)
    assert len(boxes) == len(xy)
    overlapping = [(i, j) for i in range(len(boxes)) for j in range(i) if boxes[i].overlaps(boxes[j])]
    assert overlapping == []


def test_plot_is_written(tmp_path):
    path = plot_speedup_vs_fidelity(matrix(), tmp_path / "m.png", fidelity_note="tiny at 64 px on the hard set")
    assert path.read_bytes()[:4] == b"\x89PNG"
    # variants at chance beside variants within a point, on three backends, one mode refused
    far = matrix() + [row("fused k10 at chance", "fp32", 10, 1.5, 0.45),
                      row("ov bf16 k1", "int8", 1, 40.0, 0.94, backend="openvino-bf16"),
                      {**row("ov f32 k1", "int8", 1, 30.0, 0.94, backend="openvino-f32"),
                       "mode_status": {"status": "refused", "reason": "map error 0.2 of max > budget 0.05"}}]
    points = fidelity_points(far, teacher_row(far))
    assert [p.refused for p in points if p.name == "ov f32 k1"] == ["map error 0.2 of max > budget 0.05"]
    assert plot_speedup_vs_fidelity(far, tmp_path / "far.png").read_bytes()[:4] == b"\x89PNG"
