"""The benchmark matrix at a glance: speed-up against the reference, and what each variant costs in fidelity.

One point per variant with a fidelity report: x is its whole-frame speed-up over the DDAD-S reference
(log scale), y its image AUROC drop against the teacher (`teacher_row`: the FP32 file with the most steps, as
ONNX Runtime runs it, in the scoring that scores best on the model), with a paired 95 % bootstrap interval
where both bundles kept their per-image test scores. Colour is the file's precision, the marker its steps,
the fill the backend (ONNX Runtime filled, OpenVINO f32 hollow, OpenVINO bf16 half). The frontier joins the
variants that no other variant beats on both axes; the budget line is a drop of one AUROC point, and the
fastest variant within it (`fastest_within_budget`) is ringed. Points carry numbers, placed where they overlap
no other number, and a key beside the plot names each number, so dozens of variants never smudge into one
label. The reference sits at 1x and drop 0: its fidelity is the teacher's by construction. Rows without a
fidelity report are listed in the key as speed only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ddad_edge.bench.report import image_auroc, save_figure
from ddad_edge.metrics import AUROC_BUDGET, auroc_drop_interval, within_auroc_budget

_COLOURS = {"fp32": "tab:blue", "fp16": "tab:green", "int8": "tab:orange"}
_MARKERS = {10: "o", 8: "o", 4: "D", 2: "s", 1: "^"}
_FILL = {"onnxruntime": "full", "openvino-f32": "none", "openvino-bf16": "left"}


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
    backend: str = "onnxruntime"
    refused: str = ""  # why the export refused this execution mode ("" where it offers it)

    @property
    def within_budget(self) -> bool:
        """Image AUROC at most AUROC_BUDGET below the teacher's, in an execution mode the bundle offers."""
        return within_auroc_budget(self.drop) and not self.refused


def teacher_row(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The teacher every drop is measured against: of the FP32 rows with an image AUROC that run the file's
    own arithmetic (ONNX Runtime; any backend where no such row exists), those with the most steps; of them,
    the best image AUROC, ties to fused scoring, then the most FLOPs. The best scoring, not always fused: with
    an extractor that does not suit the parts (randomly initialised, as where nothing can be downloaded),
    fused scoring can be worse than pixel-only, and a teacher at chance would make every drop meaningless."""
    fp32 = [r for r in rows if r["variant"].get("precision") == "fp32" and image_auroc(r.get("fidelity")) is not None
            and not r.get("reference")]
    own = [r for r in fp32 if r["variant"].get("backend") == "onnxruntime"]
    fp32 = own or fp32
    if not fp32:
        return None
    most = max(r["variant"].get("steps", 0) for r in fp32)
    return max((r for r in fp32 if r["variant"].get("steps", 0) == most),
               key=lambda r: (round(image_auroc(r["fidelity"]), 6), r["variant"].get("scoring") == "fused",
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
        status = r.get("mode_status") or {}
        refused = (status.get("reason") or "refused") if status.get("status") == "refused" else ""
        points.append(Point(v["name"], v.get("precision", "?"), int(v.get("steps", 0)),
                            float(r["speedup_vs_reference"]), auc, drop, low, high,
                            v.get("backend", "onnxruntime"), refused))
    return points


def fastest_within_budget(points: list[Point]) -> Point | None:
    """The fastest point within the fidelity budget (Point.within_budget), or None."""
    return max((p for p in points if p.within_budget), key=lambda p: p.speedup, default=None)


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
    fig = plt.figure(figsize=(13, 7.2), dpi=110)
    ax = fig.add_axes((0.06, 0.25, 0.47, 0.7))
    key_ax = fig.add_axes((0.55, 0.06, 0.44, 0.89))
    key_ax.axis("off")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.axhline(AUROC_BUDGET, color="seagreen", lw=1, ls=":", zorder=1,
               label=f"budget: AUROC at most {100 * AUROC_BUDGET:g} point below the teacher")
    for p in points:
        yerr = None if p.low is None else [[max(p.drop - p.low, 0.0)], [max(p.high - p.drop, 0.0)]]
        colour = _COLOURS.get(p.precision, "grey")
        ax.errorbar([p.speedup], [p.drop], yerr=yerr, fmt=_MARKERS.get(p.steps, "o"), ms=7, capsize=3,
                    color=colour, mfc=colour if _FILL.get(p.backend, "full") != "none" else "white",
                    fillstyle=_FILL.get(p.backend, "full"), zorder=3, alpha=0.45 if p.refused else 1.0)
    front = frontier(points)
    if len(front) > 1:
        ax.plot([p.speedup for p in front], [p.drop for p in front], color="black", lw=1, ls="--", zorder=2,
                label="frontier: no variant is both faster and better")
    best = fastest_within_budget(points)
    if best is not None:
        ax.scatter([best.speedup], [best.drop], s=330, facecolors="none", edgecolors="seagreen", lw=2, zorder=4,
                   label="fastest within budget")
    ax.scatter([1.0], [0.0], marker="*", s=260, color="crimson", zorder=4,
               label="DDAD-S reference (1x; its fidelity is the teacher's)")
    for prec, colour in _COLOURS.items():
        if any(p.precision == prec for p in points):
            ax.plot([], [], "s", color=colour, label=prec.upper())
    for steps in sorted({p.steps for p in points}, reverse=True):
        ax.plot([], [], _MARKERS.get(steps, "o"), color="dimgrey", ls="none", label=f"{steps} step{'s' * (steps > 1)}")
    for backend, fill in _FILL.items():
        if any(p.backend == backend for p in points):
            ax.plot([], [], "o", color="dimgrey", mfc="white" if fill == "none" else "dimgrey", fillstyle=fill,
                    ls="none", label=backend)
    ax.set_xscale("log")
    speedups = [p.speedup for p in points] + [1.0]
    ax.set_xlim(min(speedups) / 1.4, max(speedups) * 1.5)
    ticks = [t for t in (0.5, 1, 2, 5, 10, 20, 50, 100, 200) if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    drops = [p.drop for p in points] + [p.high for p in points if p.high is not None] + [0.0]
    lows = [p.low for p in points if p.low is not None] + [p.drop for p in points] + [0.0]
    span = max(max(drops) - min(lows), 0.02)
    if max(drops) > 0.15:  # variants far off (e.g. at chance) beside ones within a point: a scale that shows both
        ax.set_yscale("symlog", linthresh=0.02, linscale=1.5)
        ax.set_ylim(min(min(lows) * 1.3, -0.01), max(drops) * 1.6)
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    else:
        ax.set_ylim(min(lows) - 0.08 * span, max(drops) + 0.15 * span)
    ax.set_xlabel("whole-frame speed-up over the DDAD-S reference (log scale; right is faster)")
    ax.set_ylabel("image AUROC drop against the teacher (down is better)")
    ax.grid(True, which="both", alpha=0.3)
    # under the axes, not over them: a legend inside would hide the points in its corner
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(-0.08, -0.09), ncol=3, frameon=False)
    ax.set_title(title or "speed-up vs fidelity, one point per variant", fontsize=9)
    order = sorted(points, key=lambda p: p.speedup)
    place_numbers(ax, fig, [(p.speedup, p.drop) for p in order], [str(i + 1) for i in range(len(order))])

    lines = [f"{'#':>2}  {'variant':<40} {'speed-up':>8} {'AUROC':>6}  drop [95% interval]"]
    for i, p in enumerate(order):
        ci = f" [{p.low:+.3f}, {p.high:+.3f}]" if p.low is not None else " (no interval)"
        mark = " *" if p is best else (" refused" if p.refused else "")
        lines.append(f"{i + 1:>2}  {p.name[:40]:<40} {p.speedup:>7.2f}x {p.auroc:>6.3f}  {p.drop:+.3f}{ci}{mark}")
    lines.append("")
    if any(p.low is None for p in points):
        lines.append("no interval: that bundle or the teacher's kept no per-image test scores")
    if teacher:
        lines.append(f"teacher (drop 0): {teacher['variant']['name']}, AUROC {image_auroc(teacher['fidelity']):.3f}")
    if best is not None:
        lines.append(f"* fastest within budget (drop <= {AUROC_BUDGET:g}): {best.name}, {best.speedup:.1f}x")
    if any(p.refused for p in points):
        lines.append("refused: an execution mode the export measured beyond its recipe's budget (pale)")
    speed_only = [r["variant"]["name"] for r in rows if image_auroc(r.get("fidelity")) is None
                  and not r.get("reference") and not r.get("reference_alternative")]
    if speed_only:
        lines.append(f"speed only (no fidelity report), not plotted: {len(speed_only)}")
        lines += [f"    {n[:60]}" for n in speed_only]
    key_ax.text(0.0, 1.0, "\n".join(lines), family="monospace", fontsize=6.3 if len(lines) > 44 else 6.8, va="top",
                ha="left",
                transform=key_ax.transAxes)
    if fidelity_note:
        fig.text(0.06, 0.02, fidelity_note, fontsize=7.5, wrap=True, va="bottom")
    return save_figure(fig, path)
