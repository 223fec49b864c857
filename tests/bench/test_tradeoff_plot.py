"""The speed-up vs fidelity plot: teacher, drops with paired intervals, frontier, labels that do not collide."""

from __future__ import annotations

import numpy as np

from ddad_edge.bench.tradeoff_plot import (
    Point,
    fidelity_points,
    frontier,
    place_numbers,
    plot_speedup_vs_fidelity,
    teacher_row,
)


def row(name, precision, steps, speedup, auroc, scores=None, labels=None, reference=False, gflops=1.0):
    r = {"variant": {"name": name, "precision": precision, "steps": steps, "scoring": "fused"},
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
