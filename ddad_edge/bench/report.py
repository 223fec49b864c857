"""Benchmark rows: built from a measurement, written as JSON, a Markdown table and a latency-vs-AUROC plot.

A row is a plain dict (the JSON file is a list of them):
  variant            name, backend, precision, steps, backbone (None: pixel-only), scoring, image_size,
                     model (what weights were timed), bundle (path or None)
  reference          True for the DDAD-S reference row (reference_alternative: the same in a slower setting)
  stages_ms, samples_ms, fps, …   the measurement (timing.Measurement.as_dict)
  gflops_per_frame, achieved_gflops, peak_fraction   compute per frame and how close to the CPU's peak
  fidelity, fidelity_source      numbers from the variant's bundle report (None where no report exists)
  speedup_vs_reference           reference whole-frame p50 / this row's whole-frame p50
"""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path
from typing import Any

from ddad_edge.bench.timing import Measurement, speedup
from ddad_edge.bundle import atomic_write_bytes
from ddad_edge.errors import DdadError

_FIDELITY_KEY = re.compile(r"auroc|aupro|rank|spearman|kendall|f1|map.*(err|abs|rel)|score.*(err|abs|rel)", re.I)


def fidelity_of(report: Any, prefix: str = "") -> dict[str, float]:
    """The fidelity numbers of a bundle's report.json: every numeric leaf whose dotted key names an
    AUROC, AUPRO, F1, a rank correlation or a map/score error (nested keys joined with '.')."""
    out: dict[str, float] = {}
    if isinstance(report, dict):
        for k, v in report.items():
            out.update(fidelity_of(v, f"{prefix}{k}."))
    elif isinstance(report, (int, float)) and not isinstance(report, bool):
        key = prefix.rstrip(".")
        if _FIDELITY_KEY.search(key):
            out[key] = float(report)
    return out


def pick(fidelity: dict[str, float] | None, *words: str, exclude: tuple[str, ...] = (),
         prefer: str = "") -> float | None:
    """The fidelity number whose key contains all `words` and none of `exclude`: keys containing `prefer`
    first, then the shortest key; None where there is none."""
    if not fidelity:
        return None
    keys = [k for k in fidelity if all(w in k.lower() for w in words) and not any(x in k.lower() for x in exclude)]
    keys.sort(key=lambda k: (prefer not in k.lower() if prefer else False, len(k)))
    return fidelity[keys[0]] if keys else None


def image_auroc(fidelity: dict[str, float] | None) -> float | None:
    """The variant's own image AUROC: on the real test split where the report has one, else on its
    painted-defect set (never the FP32 reference's AUROC, nor the drop)."""
    return pick(fidelity, "auroc", exclude=("pixel", "reference", "drop", "fp32", "ref"), prefer="test")


def make_row(variant: dict[str, Any], measurement: Measurement, gflops_per_frame: float | None = None,
             peak_gflops: float | None = None, fidelity: dict[str, float] | None = None,
             fidelity_source: str | None = None, reference: bool = False, samples: bool = True,
             extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """One benchmark row (module docstring); `speedup_vs_reference` is filled by `add_speedups`."""
    row: dict[str, Any] = {"variant": dict(variant), "reference": reference}
    row.update(measurement.as_dict(samples=samples))
    infer_p50_s = row["stages_ms"]["infer"]["p50"] / 1e3
    row["gflops_per_frame"] = round(gflops_per_frame, 2) if gflops_per_frame else None
    row["achieved_gflops"] = round(gflops_per_frame / infer_p50_s, 1) if gflops_per_frame and infer_p50_s > 0 else None
    row["peak_fraction"] = (round(row["achieved_gflops"] / peak_gflops, 3)
                            if row["achieved_gflops"] and peak_gflops else None)
    row["fidelity"] = dict(fidelity) if fidelity else None
    row["fidelity_source"] = fidelity_source
    row["speedup_vs_reference"] = None
    if extra:
        row.update(extra)
    return row


def is_cpu(device: Any) -> bool:
    """Whether a device ("cpu", "cuda:0", "gpu", a torch.device) is the CPU; None counts as the CPU (rows
    recorded before devices were noted all ran there)."""
    return str(device or "cpu").split(":")[0].lower() == "cpu"  # OpenVINO names it "CPU"


def reference_row(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first row marked as the reference (after `add_speedups`, the fastest one), or None."""
    return next((r for r in rows if r.get("reference")), None)


def row_on_cpu(row: dict[str, Any]) -> bool:
    """Whether a row computed on the CPU."""
    return is_cpu(row["variant"].get("device"))


def add_speedups(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill every row's `speedup_vs_reference` against the reference row among them (None without one).

    Where the reference was measured in several settings (torch thread counts), the fastest is THE
    reference (the baseline gets its best showing); the others stay as rows with `reference` False and
    `reference_alternative` True.
    """
    refs = [r for r in rows if r.get("reference") or r.get("reference_alternative")]
    best = min(refs, key=lambda r: r["stages_ms"]["frame"]["p50"]) if refs else None
    for r in refs:
        r["reference"], r["reference_alternative"] = r is best, r is not best
    ref_p50 = best["stages_ms"]["frame"]["p50"] if best else None
    for r in rows:
        s = speedup(ref_p50, r["stages_ms"]["frame"]["p50"])
        r["speedup_vs_reference"] = round(s, 2) if s is not None else None
    return rows


def write_json(path: Path, payload: Any) -> Path:
    """Write `payload` as indented JSON (NaN and infinity as null); returns `path`."""
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    path = Path(path)
    make_parent(path)
    atomic_write_bytes(path, (json.dumps(clean(payload), indent=1) + "\n").encode())
    return path


def make_parent(path: Path) -> None:
    """Create the folder `path` goes in, or one DdadError line (a file stands where a folder must go)."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DdadError(f"cannot create the folder of {path}: {exc.strerror or exc}") from None


def _f(v: Any, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:,.{digits}f}" if isinstance(v, float) else str(v)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table: latency percentiles, stages, compute, memory, speed-up and fidelity."""
    head = ("| variant | backend | prec | steps | backbone | scoring | frame p50 | p90 | p99 | max | infer p50 | "
            "decode+resize p50 | decide p50 | fps | GFLOP/frame | GFLOP/s (of peak) | peak RSS MB | cores busy | "
            "speed-up | image AUROC | rank corr | map err (rel) | n |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        v, s = r["variant"], r["stages_ms"]
        fid = r.get("fidelity")
        peak = f" ({100 * r['peak_fraction']:.0f}%)" if r.get("peak_fraction") else ""
        decode_resize = s["decode"]["p50"] + s["resize"]["p50"]
        name = f"**{v['name']}**" if r.get("reference") else v["name"]
        lines.append("| " + " | ".join([
            name, v.get("backend") or "—", v.get("precision") or "—", _f(v.get("steps")), v.get("backbone") or "—",
            v.get("scoring") or "—", _f(s["frame"]["p50"]), _f(s["frame"]["p90"]), _f(s["frame"]["p99"]),
            _f(s["frame"]["max"]), _f(s["infer"]["p50"]), _f(decode_resize, 2), _f(s["decide"]["p50"], 3),
            _f(r.get("fps"), 2), _f(r.get("gflops_per_frame")), _f(r.get("achieved_gflops")) + peak,
            _f(r.get("peak_rss_mb"), 0), _f(r.get("cores_busy"), 2),
            "1 (reference)" if r.get("reference") else (_f(r.get("speedup_vs_reference"), 2) + "x"
                                                         if r.get("speedup_vs_reference") else "—"),
            _f(image_auroc(fid), 3), _f(pick(fid, "rank", exclude=("fp32",)), 3),
            _f(pick(fid, "map", "rel", exclude=("fp32",)), 4),
            str(s["frame"]["n"]),
        ]) + " |")
    return "\n".join(lines) + "\n"


def auroc_axis(known: list[float]) -> tuple[float, float, float, float]:
    """The plot's AUROC axis for the rows' known AUROCs: (bottom, the band of rows without one, the line
    above that band, top). The axis spans the known values (at least 0.5 to 1 when none is known), so close
    AUROCs stay apart; the band lies below the lowest; the top leaves room for the labels above 1.0."""
    lowest = min(known) if known else 0.5
    span = max(1.0 - lowest, 0.05)
    low = lowest - 0.6 * span
    return low, low + 0.2 * span, low + 0.4 * span, 1.0 + 0.25 * span


def plot_latency_vs_auroc(rows: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Whole-frame p50 (ms, log scale) against image AUROC, one point per row; rows whose bundle has no
    AUROC sit in a band below the axis, hollow, so no variant is hidden. Written to `path` itself, in the
    format its suffix names (PNG without a suffix; outputs.plot_path checks the suffix first). Returns `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    aurocs = [image_auroc(r.get("fidelity")) for r in rows]
    low, band, line, top = auroc_axis([a for a in aurocs if a is not None])
    order = sorted(range(len(rows)), key=lambda i: rows[i]["stages_ms"]["frame"]["p50"])
    lift = {i: 4 + 9 * (k % 4) for k, i in enumerate(order)}  # neighbours' labels on different heights
    for i, (r, auroc) in enumerate(zip(rows, aurocs)):
        x = r["stages_ms"]["frame"]["p50"]
        v = r["variant"]
        label = v["name"]
        if r.get("reference"):
            ax.scatter([x], [auroc if auroc is not None else band], marker="*", s=220, color="crimson", zorder=3)
        elif auroc is None:
            ax.scatter([x], [band], s=40, facecolors="none", edgecolors="grey", zorder=2)
        else:
            ax.scatter([x], [auroc], s=40, color="tab:blue", zorder=2)
        ax.annotate(label, (x, auroc if auroc is not None else band), fontsize=6, rotation=35,
                    xytext=(3, lift[i]), textcoords="offset points")
    ax.axhline(line, color="lightgrey", lw=0.8)
    ax.text(0.01, band - (band - low) / 2, "below the line: no AUROC for the variant (speed only)",
            transform=ax.get_yaxis_transform(), fontsize=7, color="grey", va="center")
    ax.set_xscale("log")
    ax.set_ylim(low, top)
    ax.set_xlabel("whole-frame latency p50 (ms, log scale)")
    ax.set_ylabel("image AUROC (from the bundle's report)")
    ax.set_title(title or "latency vs image AUROC, one point per variant", fontsize=9, pad=60)  # over the labels
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig: Any, path: Path) -> Path:
    """Write a matplotlib figure to `path` and close it; returns `path`. Rendered in memory, then written
    whole: the format follows the suffix (PNG without one)."""
    import matplotlib.pyplot as plt

    path = Path(path)
    image = io.BytesIO()
    try:
        fig.savefig(image, format=path.suffix[1:].lower() or "png")
    finally:
        plt.close(fig)
    make_parent(path)
    atomic_write_bytes(path, image.getvalue())
    return path


def machine_lines(machine: dict[str, Any]) -> list[str]:
    """Markdown bullet lines describing the machine (from machine.describe_machine)."""
    cpu = machine["cpu"]
    peak = (f"estimated FP32 peak {cpu['fp32_peak_gflops']:g} GFLOP/s ({cpu['cores']} cores x {cpu['mhz']:g} MHz x "
            f"{cpu['fp32_flops_per_cycle']} FLOP/cycle: {cpu['vector_units']}; an estimate, not a measurement)"
            if cpu.get("fp32_peak_gflops") else "peak unknown")
    lines = [f"- CPU: {cpu['model']} ({cpu['machine']}), {cpu['cores']} cores usable"
             f"{', virtualised' if machine.get('virtualised') else ''}; {peak}",
             f"- CPU features: {', '.join(cpu['features']) or 'none of note'}"
             + (f"; INT8 VNNI peak estimate {cpu['int8_peak_gops']:g} GOP/s" if cpu.get("int8_peak_gops") else "")
             + (f"; BF16 peak estimate {cpu['bf16_peak_gflops']:g} GFLOP/s (AVX512_BF16, AMX not counted)"
                if cpu.get("bf16_peak_gflops") else ""),
             f"- memory: {machine.get('memory_mb')} MiB; OS {machine.get('os')}",
             "- versions: " + ", ".join(f"{k} {v}" for k, v in machine.get("versions", {}).items())]
    if machine.get("jetson"):
        j = machine["jetson"]
        lines.append(f"- Jetson: {j['model']}, power mode {j.get('power_mode') or 'unknown (nvpmodel absent)'}")
    if machine.get("gpus"):
        lines.append(f"- GPUs: {', '.join(machine['gpus'])}")
    return lines
