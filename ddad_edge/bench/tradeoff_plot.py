"""The benchmark matrix at a glance: speed-up against the reference, and what each variant costs in fidelity.

One point per variant with a fidelity report: x is its whole-frame speed-up over the DDAD-S reference
(log scale), y its image AUROC drop against the teacher (the FP32 row with the most steps, fused scoring,
biggest backbone: the variant nearest DDAD as published), with a paired 95 % bootstrap interval where both
bundles kept their per-image test scores. The frontier joins the variants that no other variant beats on
both axes. Points carry numbers, placed where they overlap no other number, and a key beside the plot
names each number, so a dozen variants never smudge into one label. The reference sits at 1x and drop 0:
its fidelity is the teacher's by construction. Rows without a fidelity report are listed in the key as
speed only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ddad_edge.bench.report import image_auroc, save_figure
from ddad_edge.metrics import auroc_drop_interval

_COLOURS = {"fp32": "tab:blue", "fp16": "tab:green", "int8": "tab:orange"}
_MARKERS = {10: "o", 8: "o", 4: "D", 2: "s", 1: "^"}


@dataclass(frozen=True)
class Point:
    """One variant on the plot: its row's name, speed-up, AUROC, drop against the teacher and its interval."""

    name: str
    precision: str
    steps: int
    speedup: float
    auroc: float
    drop: float
    low: float | None  # paired bootstrap interval of the drop, None where a report lacks per-image scores
    high: float | None


def teacher_row(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The FP32 row with fidelity that has the most steps, fused scoring first, then the most FLOPs."""
    fp32 = [r for r in rows if r["variant"].get("precision") == "fp32" and image_auroc(r.get("fidelity")) is not None
            and not r.get("reference")]
    if not fp32:
        return None
    return max(fp32, key=lambda r: (r["variant"].get("steps", 0), r["variant"].get("scoring") == "fused",
                                    r.get("gflops_per_frame") or 0.0))


def fidelity_points(rows: list[dict[str, Any]], teacher: dict[str, Any]) -> list[Point]:
    """A Point for every non-reference row with an image AUROC, in row order."""
    t_auc = image_auroc(teacher.get("fidelity"))
    t_test = teacher.get("fidelity_test") or {}
    points = []
    for r in rows:
        auc = image_auroc(r.get("fidelity"))
        if auc is None or r.get("reference"):
            continue
        test = r.get("fidelity_test") or {}
        low = high = None
        drop = t_auc - auc
        if test.get("scores") and t_test.get("scores") and test.get("labels") == t_test.get("labels"):
            labels = np.asarray(test["labels"])
            drop, low, high = auroc_drop_interval(labels, np.asarray(t_test["scores"]), np.asarray(test["scores"]))
        v = r["variant"]
        points.append(Point(v["name"], v.get("precision", "?"), int(v.get("steps", 0)),
                            float(r["speedup_vs_reference"]), auc, drop, low, high))
    return points


def frontier(points: list[Point]) -> list[Point]:
    """The points no other point beats on both axes (faster and smaller drop), fastest last."""
    best: list[Point] = []
    for p in sorted(points, key=lambda p: (-p.speedup, p.drop)):
        if not best or p.drop < best[-1].drop:
            best.append(p)
    return best[::-1]


def place_numbers(ax, fig, xy: list[tuple[float, float]], texts: list[str]) -> list[Any]:
    """Number each point where its label overlaps no label placed before it (nor any marker); returns the
    labels' boxes in display pixels."""
    renderer = fig.canvas.get_renderer()
    markers = [ax.transData.transform(p) for p in xy]
    taken: list[Any] = []
    offsets = [(5, 4), (5, -11), (-12, 4), (-12, -11), (0, 10), (0, -16), (11, -3), (-18, -3),
               (12, 12), (-20, 12), (12, -18), (-20, -18), (0, 20), (0, -26), (22, 4), (-28, 4)]
    for (x, y), text in zip(xy, texts):
        for dx, dy in offsets:
            ann = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=7,
                              color="black")
            box = ann.get_window_extent(renderer).expanded(1.08, 1.15)
            hits_marker = any(box.contains(mx, my) for mx, my in markers)
            if not hits_marker and not any(box.overlaps(t) for t in taken):
                taken.append(box)
                break
            ann.remove()
        else:  # every place taken: the last offset, drawn anyway (the key still names the point)
            taken.append(ax.annotate(text, (x, y), xytext=offsets[-1], textcoords="offset points",
                                     fontsize=7).get_window_extent(renderer))
    return taken


def plot_speedup_vs_fidelity(rows: list[dict[str, Any]], path: Path, title: str = "",
                             fidelity_note: str = "") -> Path:
    """Write the plot (format from the suffix, PNG without one) and return `path`; see the module doc.
    `fidelity_note` says which model and data set the fidelity numbers come from (printed under the plot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    teacher = teacher_row(rows)
    points = fidelity_points(rows, teacher) if teacher else []
    fig = plt.figure(figsize=(12, 5.6), dpi=110)
    ax = fig.add_axes((0.07, 0.16, 0.5, 0.76))
    key_ax = fig.add_axes((0.59, 0.16, 0.4, 0.76))
    key_ax.axis("off")
    ax.axhline(0.0, color="grey", lw=0.8)
    for p in points:
        yerr = None if p.low is None else [[max(p.drop - p.low, 0.0)], [max(p.high - p.drop, 0.0)]]
        ax.errorbar([p.speedup], [p.drop], yerr=yerr, fmt=_MARKERS.get(p.steps, "o"), ms=7, capsize=3,
                    color=_COLOURS.get(p.precision, "grey"), zorder=3)
    front = frontier(points)
    if len(front) > 1:
        ax.plot([p.speedup for p in front], [p.drop for p in front], color="black", lw=1, ls="--", zorder=2,
                label="frontier: no variant is both faster and better")
    ax.scatter([1.0], [0.0], marker="*", s=260, color="crimson", zorder=4,
               label="DDAD-S reference (1x; its fidelity is the teacher's)")
    for prec, colour in _COLOURS.items():
        if any(p.precision == prec for p in points):
            ax.plot([], [], "s", color=colour, label=prec.upper())
    for steps in sorted({p.steps for p in points}, reverse=True):
        ax.plot([], [], _MARKERS.get(steps, "o"), color="dimgrey", ls="none", label=f"{steps} step{'s' * (steps > 1)}")
    ax.set_xscale("log")
    speedups = [p.speedup for p in points] + [1.0]
    ax.set_xlim(min(speedups) / 1.4, max(speedups) * 1.5)
    ticks = [t for t in (0.5, 1, 2, 5, 10, 20, 50, 100, 200) if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    drops = [p.drop for p in points] + [p.high for p in points if p.high is not None] + [0.0]
    lows = [p.low for p in points if p.low is not None] + [p.drop for p in points] + [0.0]
    span = max(max(drops) - min(lows), 0.02)
    ax.set_ylim(min(lows) - 0.08 * span, max(drops) + 0.15 * span)
    ax.set_xlabel("whole-frame speed-up over the DDAD-S reference (log scale; right is faster)")
    ax.set_ylabel("image AUROC drop against the teacher (down is better)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", framealpha=0.9)
    ax.set_title(title or "speed-up vs fidelity, one point per variant", fontsize=9)
    order = sorted(points, key=lambda p: p.speedup)
    place_numbers(ax, fig, [(p.speedup, p.drop) for p in order], [str(i + 1) for i in range(len(order))])

    lines = [f"{'#':>2}  {'variant':<36} {'speed-up':>8} {'AUROC':>6}  drop [95% interval]"]
    for i, p in enumerate(order):
        ci = f" [{p.low:+.3f}, {p.high:+.3f}]" if p.low is not None else " (no interval)"
        lines.append(f"{i + 1:>2}  {p.name[:36]:<36} {p.speedup:>7.2f}x {p.auroc:>6.3f}  {p.drop:+.3f}{ci}")
    lines.append("")
    if any(p.low is None for p in points):
        lines.append("no interval: that bundle or the teacher's kept no per-image test scores")
    if teacher:
        lines.append(f"teacher (drop 0): {teacher['variant']['name']}, AUROC {image_auroc(teacher['fidelity']):.3f}")
    speed_only = [r["variant"]["name"] for r in rows
                  if image_auroc(r.get("fidelity")) is None and not r.get("reference")]
    if speed_only:
        lines.append(f"speed only (no fidelity report), not plotted: {len(speed_only)}")
        lines += [f"    {n[:60]}" for n in speed_only]
    key_ax.text(0.0, 1.0, "\n".join(lines), family="monospace", fontsize=6.8, va="top", ha="left",
                transform=key_ax.transAxes)
    if fidelity_note:
        fig.text(0.07, 0.03, fidelity_note, fontsize=7.5, wrap=True, va="bottom")
    return save_figure(fig, path)
