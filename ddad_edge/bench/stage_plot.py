"""Where a frame's time goes, per stage: the chart the demo draws of the run it made.

A single point (one bundle's whole-frame p50 against its AUROC) says nothing a number would not; a bar per
stage shows which stage to work on. Two panels: the inspection loop as it ran on the video (p50 per stage
from the run's summary in events.jsonl), and the bench of the same bundle (p50 bars, whiskers to p99).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ddad_edge.bench.report import save_figure

_BENCH_STAGES = ("decode", "resize", "infer", "decide")  # a bench row's stages, in the frame's order


def plot_stage_latency(run_p50: dict[str, float | None], bench_row: dict[str, Any] | None, path: Path,
                       title: str = "") -> Path:
    """Write the chart (format from the suffix, PNG without one) and return `path`.

    run_p50: stage → p50 ms of the inspection run (RunSummary.stage_ms_p50; None for a stage that did not
    run); bench_row: one row of `ddad-edge bench --json` (its `stages_ms`), or None.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = [(s, v) for s, v in run_p50.items() if v is not None]
    bench = [(s, bench_row["stages_ms"][s]) for s in _BENCH_STAGES
             if bench_row and s in bench_row.get("stages_ms", {})]
    panels = [p for p in (run, bench) if p]
    height = 1.2 + 0.45 * sum(len(p) for p in panels) + 0.8 * len(panels)
    fig, axes = plt.subplots(len(panels) or 1, 1, figsize=(8, height), dpi=110, squeeze=False)
    i = 0
    if run:
        ax = axes[i][0]
        names, values = zip(*run)
        ax.barh(names, values, color="tab:blue")
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:.2f} ms", va="center", fontsize=8)
        ax.set_title("the inspection run on the video: p50 per frame and stage (events.jsonl summary)", fontsize=9)
        i += 1
    if bench:
        ax = axes[i][0]
        names = [s for s, _ in bench]
        p50 = [d["p50"] for _, d in bench]
        p99 = [d.get("p99", d["p50"]) for _, d in bench]
        ax.barh(names, p50, xerr=[[0] * len(p50), [max(b - a, 0.0) for a, b in zip(p50, p99)]], capsize=3,
                color="tab:orange")
        for y, (a, b) in enumerate(zip(p50, p99)):
            ax.text(b, y, f" {a:.2f} / {b:.2f} ms", va="center", fontsize=8)
        ax.set_title(f"bench of the bundle: p50 bar, whisker to p99 ({bench_row['variant']['name']})", fontsize=9)
    for row in axes:
        ax = row[0]
        ax.invert_yaxis()  # the frame's order, top to bottom
        ax.set_xlabel("ms (linear)")
        ax.margins(x=0.25)
        ax.grid(True, axis="x", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
