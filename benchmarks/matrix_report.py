"""The Markdown results file of the matrix: how it was made, on which model each number was measured,
the table, the verdict on the 30x target with where the time goes, INT8 against FP32, the loop's overhead.

Every number in it is read from the rows and profiles the run produced; nothing is typed in by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ddad_edge.bench.machine import arithmetic_peak, peak_label
from ddad_edge.bench.report import image_auroc, machine_lines, markdown_table, reference_row, row_on_cpu
from ddad_edge.bench.tradeoff_plot import fastest_within_budget, fidelity_points, frontier, teacher_row
from ddad_edge.bundle import atomic_write_bytes
from ddad_edge.metrics import AUROC_BUDGET

TARGET_SPEEDUP = 30.0
OVERHEAD_TARGET_MS = 5.0


def _p50(row: dict, stage: str = "frame") -> float:
    return row["stages_ms"][stage]["p50"]


# Kernels that do a convolution or a matrix product (integer and float), and the layout changes that feed
# them: the NCHWc reorders of ONNX Runtime's blocked float convolutions, and the transposes it puts around
# integer convolutions run channels-last (almost none in an FP32 graph). The work faster convolutions could
# remove; counting the layout with it makes the bounds below more generous, not less.
INT8_PRODUCT_OPS = ("QLinearConv", "ConvInteger", "QGemm", "MatMulInteger", "MatMulIntegerToFloat", "QLinearMatMul",
                    "DynamicQuantizeMatMul")
# ONNX Runtime's operator names, then OpenVINO's layer types (its convolutions are one type whatever their precision)
FLOAT_PRODUCT_OPS = ("Conv", "FusedConv", "NhwcFusedConv", "Gemm", "MatMul", "FusedMatMul", "Einsum",
                     "Convolution", "GroupConvolution", "FullyConnected")
LAYOUT_OPS = ("ReorderInput", "ReorderOutput", "Transpose", "Reorder")
PRODUCT_OPS = INT8_PRODUCT_OPS + FLOAT_PRODUCT_OPS + LAYOUT_OPS
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "FakeQuantize")
REST = ("GroupNorm as InstanceNormalization, SiLU, residual adds, concatenation, softmax, the sampler's "
        "arithmetic")


def find_row(rows: list[dict], precision: str, steps: int, backbone: str | None, backend: str) -> dict | None:
    for r in rows:
        v = r["variant"]
        if (not r.get("reference") and v.get("backend") == backend and v.get("precision") == precision
                and v.get("steps") == steps and v.get("backbone") == backbone):
            return r
    return None


def edge_backend(rows: list[dict]) -> str:
    """Where the default edge variant runs in this run: TensorRT when the reference ran on a GPU (a Jetson, a
    workstation), ONNX Runtime on the CPU otherwise, so the speed-up compares like with like."""
    ref = reference_row(rows)
    return "onnxruntime" if ref is None or row_on_cpu(ref) else "tensorrt"


def edge_row(rows: list[dict], edge_key: Any) -> dict | None:
    """The default edge variant's row: with `--edge frontier` (edge_key None) the fastest row within the
    fidelity budget (`budget_view`); else `--edge` precision, steps, backbone on `edge_backend`."""
    if edge_key is None:
        return budget_view(rows)["best_row"]
    return find_row(rows, edge_key.precision.value, edge_key.steps, edge_key.backbone, edge_backend(rows))


def budget_view(rows: list[dict]) -> dict[str, Any]:
    """The teacher row, every variant's Point (its drop against the teacher), the frontier, and the fastest
    point within the budget with its row (tradeoff_plot: the same the plot draws)."""
    teacher = teacher_row(rows)
    points = fidelity_points(rows, teacher) if teacher else []
    best = fastest_within_budget(points)
    by_name = {r["variant"]["name"]: r for r in rows if not r.get("reference")}
    return {"teacher": teacher, "points": points, "frontier": frontier(points), "best": best,
            "best_row": by_name.get(best.name) if best else None}


def budget_section(rows: list[dict]) -> list[str]:
    """The speed/fidelity frontier as a table and the fastest variant within the fidelity budget, against the
    target."""
    view, ref = budget_view(rows), reference_row(rows)
    lines = ["## The fastest variant within the fidelity budget", ""]
    if view["teacher"] is None or ref is None:
        return lines + ["Not measured in this run: no reference row, or no FP32 row with a fidelity report to be "
                        "the teacher (give `--fidelity-bundles`).", "", ""]
    t = view["teacher"]
    lines += [f"Budget: image AUROC at most {100 * AUROC_BUDGET:g} point below the teacher's, on the same trained "
              f"model and test split, in an execution mode its bundle offers. Teacher: **{t['variant']['name']}** "
              f"(AUROC {image_auroc(t['fidelity']):.3f}; of the FP32 files with the most steps as ONNX Runtime runs "
              "them, the scoring that scores best). The drop's interval is a paired 95 % bootstrap over the test "
              "images (both scored on the same resamples).", "",
              "The frontier (no variant both faster and smaller in drop), fastest last:", "",
              "| variant | speed-up | image AUROC | drop [95 % interval] | within budget |", "|---|---|---|---|---|"]
    for p in view["frontier"]:
        ci = f" [{p.low:+.3f}, {p.high:+.3f}]" if p.low is not None else ""
        why = "yes" if p.within_budget else (f"no: mode refused ({p.refused})" if p.refused else "no")
        lines.append(f"| {p.name} | {p.speedup:.1f}x | {p.auroc:.3f} | {p.drop:+.3f}{ci} | {why} |")
    best, row = view["best"], view["best_row"]
    lines.append("")
    if best is None:
        return lines + ["**No variant is within the budget** in this run.", "", ""]
    reached = _p50(ref) / _p50(row)
    met = "target met" if reached >= TARGET_SPEEDUP else "target NOT met"
    lines.append(f"**Fastest within budget: {best.name}**: whole-frame p50 {_p50(row):,.1f} ms vs reference "
                 f"{_p50(ref):,.1f} ms → **{reached:.1f}x** ({met}: {TARGET_SPEEDUP:g}x), image AUROC "
                 f"{best.auroc:.3f}, drop {best.drop:+.3f}"
                 + (f" [{best.low:+.3f}, {best.high:+.3f}]" if best.low is not None else "") + ".")
    graph = row.get("fidelity_graph") or {}
    if graph.get("sampler"):
        lines.append(f"Its sampler on the trained model: {graph['sampler']}.")
    if "int8_quantized" in graph and graph["int8_quantized"] < graph["int8_candidates"]:
        lines.append(f"Its trained bundle runs {graph['int8_quantized']} of {graph['int8_candidates']} candidate "
                     "nodes in INT8 (the export's accuracy-guided fallback kept the rest in FP32); the timed file "
                     "quantizes all of them, so the bundle that has this fidelity runs somewhat slower than this row.")
    return lines + ["", ""]


def fastest_distilled(rows: list[dict], backend: str, precision: str | None = None) -> dict | None:
    """The fastest (whole-frame p50) distilled row (1 or 2 steps) of `backend`, of `precision` if given."""
    found = [r for r in rows if not r.get("reference") and r["variant"].get("backend") == backend
             and r["variant"].get("steps") in (1, 2) and precision in (None, r["variant"].get("precision"))]
    return min(found, key=_p50, default=None)


def kernel_shares(profile: dict) -> dict[str, float]:
    """Shares of kernel time: integer and float products, Q/DQ, and the rest."""
    share = {p["name"]: p["share"] for p in profile["by_op"]}
    out = {"int8_products": sum(share.get(k, 0.0) for k in INT8_PRODUCT_OPS),
           "float_products": sum(share.get(k, 0.0) for k in FLOAT_PRODUCT_OPS),
           "layout": sum(share.get(k, 0.0) for k in LAYOUT_OPS),
           "qdq": sum(share.get(k, 0.0) for k in QDQ_OPS)}
    out["products"] = out["int8_products"] + out["float_products"] + out["layout"]
    out["rest"] = max(0.0, 1.0 - out["products"] - out["qdq"])
    return out


def free_compute_bound(row: dict, profile: dict, peak: float | None = None) -> dict[str, float | None]:
    """How fast `row` could get if its convolutions and matrix products took no time (Amdahl's bound), and if
    they ran at the CPU's estimated `peak` (GFLOP/s or GOP/s of the row's precision) instead.

    The profile's kernel time, as a fraction of its run time, is taken from the row's own inference p50, and
    each op type's share of kernel time from that; the runtime's time outside kernels, decode, resize and
    decision stay as measured. `free_products_ms`: the frame with the products free; `free_products_qdq_ms`:
    with Quantize/DequantizeLinear free as well; `products_at_peak_ms`: with all the row's FLOPs (float ones
    too) at `peak`, but never slower than the products as measured, Q/DQ and the rest as profiled: an upper
    bound on speed (None without a peak or a FLOP count).
    """
    s = kernel_shares(profile)
    frame, infer = _p50(row), _p50(row, "infer")
    kernels = infer * min(1.0, profile["kernels_ms"] / profile["run_ms"]) if profile.get("run_ms") else infer
    kept = frame - kernels  # decode, resize, decision, ORT's time outside kernels
    at_peak = None
    if peak and row.get("gflops_per_frame"):
        products_ms = min(kernels * s["products"], 1e3 * row["gflops_per_frame"] / peak)
        at_peak = kept + kernels * (s["qdq"] + s["rest"]) + products_ms
    return {"products_share": s["products"], "qdq_share": s["qdq"], "frame_ms": frame,
            "free_products_ms": kept + kernels * (s["qdq"] + s["rest"]),
            "free_products_qdq_ms": kept + kernels * s["rest"], "products_at_peak_ms": at_peak}


def bound_section(rows: list[dict], ref: dict, profiles: list[dict], cpu: dict | None = None) -> list[str]:
    """The bounds of each profiled variant against the reference, as a table and a verdict drawn from it."""
    by_name = {r["variant"]["name"]: r for r in rows if not r.get("reference")}
    found = [(p, by_name[p["row"]]) for p in profiles if p.get("row") in by_name]
    if not found:
        return []
    ref_ms = _p50(ref)
    budget = ref_ms / TARGET_SPEEDUP

    def x(ms: float | None) -> str:
        return "—" if ms is None else f"{ref_ms / ms:.1f}x"

    lines = ["", "How far faster kernels could take each profiled variant. Amdahl's bound: the profile's shares of "
             "kernel (or OpenVINO layer) time applied to the row's own inference p50, with the runtime's time "
             "outside them, decode, resize and decision as measured; products include the layout changes that feed "
             "them. The last columns run all the row's FLOPs at this CPU's estimated peak instead (INT8 rows: the "
             "VNNI estimate, float products included; OpenVINO's bf16 mode: the AVX512_BF16 estimate; AMX units not "
             "counted; never slower than measured), with Q/DQ and the rest as profiled: an upper bound too, at those "
             "rates.", "",
             "| variant | frame p50 ms | products | Q/DQ | rest | products 0 ms: frame ms | speed-up | "
             "also Q/DQ 0 ms | speed-up | products at peak: frame ms | speed-up |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    bounds = []
    for profile, row in found:
        b = free_compute_bound(row, profile, arithmetic_peak(cpu, row["variant"].get("precision") or "",
                                                             row["variant"].get("backend") or ""))
        bounds.append((row["variant"]["name"], b))
        lines.append(f"| {row['variant']['name']} | {b['frame_ms']:,.1f} | {100 * b['products_share']:.0f}% | "
                     f"{100 * b['qdq_share']:.0f}% | {100 * (1 - b['products_share'] - b['qdq_share']):.0f}% | "
                     f"{b['free_products_ms']:,.1f} | {x(b['free_products_ms'])} | {b['free_products_qdq_ms']:,.1f} | "
                     f"{x(b['free_products_qdq_ms'])} | "
                     + ("—" if b["products_at_peak_ms"] is None else f"{b['products_at_peak_ms']:,.1f}")
                     + f" | {x(b['products_at_peak_ms'])} |")
    free = max(bounds, key=lambda nb: ref_ms / nb[1]["free_products_ms"])
    free_qdq = max(bounds, key=lambda nb: ref_ms / nb[1]["free_products_qdq_ms"])
    peaked = [nb for nb in bounds if nb[1]["products_at_peak_ms"] is not None]
    text = [f"{TARGET_SPEEDUP:g}x means ≤ {budget:,.1f} ms per frame."]
    if ref_ms / free[1]["free_products_ms"] < TARGET_SPEEDUP:
        text.append(f"With every convolution and matrix product free, none of the profiled variants gets there "
                    f"(best: {free[0]}, {x(free[1]['free_products_ms'])}): the Q/DQ and the rest ({REST}) take "
                    "longer than that on their own.")
        if ref_ms / free_qdq[1]["free_products_qdq_ms"] < TARGET_SPEEDUP:
            text.append(f"Not even with the INT8 conversions free too (best: {x(free_qdq[1]['free_products_qdq_ms'])})"
                        ": the rest alone is over the budget.")
        else:
            text.append(f"With the INT8 conversions free too, {free_qdq[0]} could get there "
                        f"({x(free_qdq[1]['free_products_qdq_ms'])}): its rest takes "
                        f"{free_qdq[1]['free_products_qdq_ms']:,.1f} ms of the {budget:,.1f}.")
    else:
        text.append(f"With every convolution and matrix product free, {free[0]} could get there "
                    f"({x(free[1]['free_products_ms'])}).")
    if peaked:
        best = max(peaked, key=lambda nb: ref_ms / nb[1]["products_at_peak_ms"])
        reach = ref_ms / best[1]["products_at_peak_ms"]
        covered = ("the profiled variants" if len(peaked) == len(bounds)
                   else ", ".join(name for name, _ in peaked) + " (no peak estimate for the others)")
        text.append(f"With the products at this CPU's estimated peak and the rest as profiled, the best is {best[0]} "
                    f"at {reach:.1f}x" + (f": faster convolution kernels alone cannot reach the target at these "
                                          f"estimated peak rates, for {covered}." if reach < TARGET_SPEEDUP else "."))
    return lines + ["", " ".join(text)]


def openvino_profile_lines(p: dict) -> list[str]:
    """OpenVINO's per-layer profile of a row (bench/openvino_profile.py) as tables: parts, layer types, kernels."""
    lines = ["", f"OpenVINO profile of {p['row']} (per-layer counters, {p['runs']} requests after a warm-up; "
             f"{p['run_ms']:,.1f} ms per request, {p['kernels_ms']:,.1f} ms in layers; compiled precision "
             f"{p['compiled_precision']}):", "", "| part of the graph | ms per request | share |", "|---|---|---|"]
    lines += [f"| {x['name']} | {x['ms_per_run']:,.1f} | {100 * x['share']:.1f}% |" for x in p["by_part"]]
    lines += ["", "| layer type | ms per request | share |", "|---|---|---|"]
    lines += [f"| {x['name']} | {x['ms_per_run']:,.1f} | {100 * x['share']:.1f}% |" for x in p["by_op"][:12]]
    lines += ["", "Kernels that did the work (OpenVINO's exec_type: instruction set and precision): "
              + "; ".join(f"`{x['name']}` {100 * x['share']:.0f}%" for x in p["by_kernel"][:8]) + "."]
    return lines


def verdict(rows: list[dict], edge_key: Any, profile: dict | None, extra_profiles: list[dict] = (),
            cpu: dict | None = None, ov_profile: dict | None = None) -> list[str]:
    ref = reference_row(rows)
    edge = edge_row(rows, edge_key)
    backend = edge["variant"]["backend"] if edge_key is None and edge else edge_backend(rows)
    lines = [f"## Target: the default edge variant at least {TARGET_SPEEDUP:g}x faster per frame than the "
             "reference", ""]
    if not ref or not edge:
        what = ("the fastest variant within the fidelity budget" if edge_key is None else
                f"the edge variant {edge_key.precision.value} k{edge_key.steps} {edge_key.backbone or 'pixel-only'}"
                f" on {backend}")
        return lines + [f"Not measured in this run (no reference row, or no row of {what}).", ""]
    where = "the CPU" if row_on_cpu(ref) else "the GPU"
    reached = _p50(ref) / _p50(edge)  # from the p50s, not the rounded speedup_vs_reference
    chosen = ("`--edge frontier`: the fastest variant within the fidelity budget, above" if edge_key is None else
              f"`--edge`, on {backend} as the reference ran on {where}")
    lines += [
        f"- Default edge variant ({chosen}): "
        f"**{edge['variant']['name']}**: whole-frame p50 {_p50(edge):,.1f} ms vs reference {_p50(ref):,.1f} ms → "
        f"**{reached:.1f}x** ({'target met' if reached >= TARGET_SPEEDUP else 'target NOT met'}).",
    ]
    best = fastest_distilled(rows, backend, "int8")
    if best is not None:
        fastest = _p50(ref) / _p50(best)
        lines.append(f"- Fastest 1- or 2-step INT8 {backend} variant: **{best['variant']['name']}**: "
                     f"{_p50(best):,.1f} ms → **{fastest:.1f}x** "
                     f"({'met' if fastest >= TARGET_SPEEDUP else 'NOT met'}).")
    if ref.get("gflops_per_frame") and edge.get("gflops_per_frame"):
        ratio = ref["gflops_per_frame"] / edge["gflops_per_frame"]
        need_ms = _p50(ref) / TARGET_SPEEDUP
        infer_budget = need_ms - (_p50(edge) - _p50(edge, "infer"))
        need_rate = edge["gflops_per_frame"] / (infer_budget / 1e3) if infer_budget > 0 else float("inf")
        # an FP16 edge has no rate of its own; results made before each row had its own rate used FP32's for all
        label = peak_label(cpu, edge["variant"].get("precision") or "", backend) or "FP32"
        peak = (f" (estimated {label} peak of this CPU: {edge['achieved_gflops'] / edge['peak_fraction']:,.0f} "
                f"{'GOP' if label.startswith('INT8') else 'GFLOP'}/s)" if edge.get("peak_fraction") else "")
        lines += [
            "", "Where the time goes:", "",
            f"- Compute: the reference does {ref['gflops_per_frame']:,.0f} GFLOP per frame, the edge variant "
            f"{edge['gflops_per_frame']:,.1f}: fewer FLOPs alone allow **{ratio:.1f}x**. The rest must come from "
            f"running them faster: the reference reaches {ref['achieved_gflops']} GFLOP/s in torch eager, the edge "
            f"variant {edge['achieved_gflops']} GFLOP/s in {backend}{peak}.",
            f"- {TARGET_SPEEDUP:g}x means ≤ {need_ms:,.1f} ms per frame; with this run's decode, resize and decision "
            f"({_p50(edge) - _p50(edge, 'infer'):,.1f} ms) the graph would have to run at "
            f"{need_rate:,.0f} GFLOP/s.",
            f"- Per stage (p50 ms): decode {_p50(edge, 'decode'):.2f}, resize {_p50(edge, 'resize'):.2f}, inference "
            f"{_p50(edge, 'infer'):,.1f}, decision {_p50(edge, 'decide'):.3f}.",
        ]
    if ov_profile and ov_profile.get("row") == edge["variant"]["name"]:
        lines += openvino_profile_lines(ov_profile)
    if profile and profile["variant"] != edge["variant"]["name"]:
        lines += ["", f"For comparison, the same graph in ONNX Runtime ({profile['variant']}), whose bounds "
                  "follow:"]
    if profile:
        lines += ["", f"ONNX Runtime profile of {profile['variant']} ({profile['runs']} runs after a warm-up; "
                  f"{profile['run_ms']:,.1f} ms per run, {profile['kernels_ms']:,.1f} ms in kernels):", "",
                  "| part of the graph | ms per run | share |", "|---|---|---|"]
        lines += [f"| {p['name']} | {p['ms_per_run']:,.1f} | {100 * p['share']:.1f}% |" for p in profile["by_part"]]
        lines += ["", "| operator | ms per run | share |", "|---|---|---|"]
        lines += [f"| {p['name']} | {p['ms_per_run']:,.1f} | {100 * p['share']:.1f}% |" for p in profile["by_op"][:12]]
        s = kernel_shares(profile)
        lines += ["", f"In kernel time: integer convolutions/products {100 * s['int8_products']:.0f}%, float "
                  f"convolutions/products {100 * s['float_products']:.0f}%, layout changes around them (reorders, "
                  f"transposes) {100 * s['layout']:.0f}%, converting to and from INT8 (Quantize/DequantizeLinear) "
                  f"{100 * s['qdq']:.0f}%, everything else (normalisation, activations, element-wise arithmetic, "
                  f"concatenation) {100 * s['rest']:.0f}%."]
        lines += ["", "Slowest nodes: " + "; ".join(f"`{n['node']}` ({n['op']}) {n['ms_per_run']:.1f} ms"
                                                    for n in profile["top_nodes"][:6]) + "."]
    if row_on_cpu(ref):
        lines += bound_section(rows, ref, [p for p in (ov_profile, profile, *extra_profiles) if p], cpu)
    elif profile:
        lines += ["", "The ONNX Runtime profile above is of the CPU row; the reference ran on the GPU, so no CPU "
                  "bound is set against it."]
    return lines + ["", ""]


def fidelity_provenance(with_fid: list[dict], a: Any) -> list[str]:
    """Which model each row's fidelity numbers were measured on, one line per model; a warning where that
    model is not the one the rows time (their preset and image size)."""
    by_model: dict[str, list[dict]] = {}
    for r in with_fid:
        by_model.setdefault(r.get("fidelity_model", ""), []).append(r)
    lines = []
    for model, rs in by_model.items():
        lines.append(f"  - {model}: {', '.join(r['variant']['name'] for r in rs)} (each row's report.json: "
                     "`fidelity_source` in the JSON file)")
    samplers = {(r["variant"].get("steps"), g["sampler"]) for r in with_fid
                if (g := r.get("fidelity_graph")) and g.get("sampler")}
    if samplers:
        lines.append("  - What reconstructs in the bundles the fidelity comes from, by steps: "
                     + "; ".join(f"k{k}: {words}" for k, words in sorted(samplers, key=lambda s: -(s[0] or 0)))
                     + ". The timed rows of the same K run the same UNet K times.")
    mixed = [(r["variant"]["name"], g["int8_quantized"], g["int8_candidates"]) for r in with_fid
             if (g := r.get("fidelity_graph")) and "int8_quantized" in g]
    if mixed:
        parts = ", ".join(f"{name} {q} of {c}" for name, q, c in mixed)
        lines.append(f"  - INT8 nodes quantized in the bundle each INT8 row's fidelity comes from, after the export's "
                     f"accuracy-guided fallback (the rest run in FP32): {parts}. The timed INT8 files quantize all "
                     "of theirs (the first try), so where a bundle kept nodes in FP32 its file runs slower than its "
                     "row, between the INT8 and the FP32 row of its variant.")
    other = sorted({f"{g['preset']} at {g['image_size']} px" for r in with_fid
                    if (g := r.get("fidelity_graph")) and (g["preset"], g["image_size"]) != (a.preset, a.image_size)})
    if other:
        lines.append(f"  - **Read these as the cost of each choice, not as the accuracy of the timed model**: they "
                     f"were measured on {' and '.join(other)}, trained on synthetic parts, while the rows time "
                     f"{a.preset} at {a.image_size} px. What carries over is the difference a choice makes (INT8 "
                     "against FP32, fewer steps, pixel-only against fused, one backbone against another) on a "
                     "trained model; a model of your own parts gets its own numbers from `ddad-edge export`.")
    return lines


def provenance(rows: list[dict], a: Any) -> list[str]:
    ref = reference_row(rows)
    with_fid = [r for r in rows if r.get("fidelity")]
    lines = ["## What was measured on which model", ""]
    if ref:
        lines.append(f"- **Reference** ({ref['calls']} measured calls after {ref['warmup_calls']} warm-up; few "
                     f"because each takes seconds here): {ref['variant']['model']}.")
    lines += [
        "- **Speed rows** (all rows but the reference): speed-only bundles made by `benchmarks/speed_bundles.py` "
        f"with the export stage's own functions: a {a.preset} UNet at {a.image_size} px with **random weights** "
        "(a K-step graph "
        "costs the same whatever its weights and grid; steps 1 and 2 stand for the 1- and 2-step samplers of the "
        "trained model, a distilled student or the teacher on a K-step grid, whose graphs are the same UNet "
        "called K times), a randomly initialised backbone, FP32 by `deploy.onnx_export.export_onnx`, "
        "INT8 by `deploy.int8_fallback.quantize_first_try`, the export's first try with the default recipe "
        "(calibration/int8.yaml: Q/DQ on Conv/Gemm/MatMul inputs and convolution outputs, symmetric S8S8, "
        "per-channel weights, the blur and the time embedding kept FP32), activation ranges from "
        f"{a.calibration_frames} synthetic nominal frame(s), without the accuracy-guided fallback (which can only "
        "keep more nodes in FP32). Their outputs are not meaningful; their cost is.",
        "- **Fidelity columns** (image AUROC, rank correlation, map error) come only from a real exported bundle's "
        "report.json of the same variant (precision, steps, scoring, backbone), named per row below. Image AUROC "
        "is the bundle's own, on its labelled test split (there fewer steps and the scoring show); rank "
        "correlation and map error compare the exported file with the FP32 torch pipeline of the same sampler and "
        "scoring, so they show what the precision costs. "
        + ("Rows without one show —: no real report of that variant existed for this run."
           if len(with_fid) < len(rows) else ""),
    ]
    lines += fidelity_provenance(with_fid, a)
    for r in rows:
        if (no := r.get("fidelity_refused")) and not r.get("fidelity"):
            lines.append(f"  - {r['variant']['name']}: no bundle, so —: `ddad-edge export` refused this variant "
                         f"on run {no['run']} ({no['preset']} at {no['image_size']} px): {no['why']}")
    if not with_fid:
        lines.append("  - none of the rows had a real report: every row here is speed only.")
    lines += [
        f"- **Frames**: synthetic parts as {rows[0]['run'].get('frame_size', '') if rows else ''} JPEG files, "
        "decoded and resized on every frame by the real inspection loop (`inspect.profile.profile_loop`), "
        "so whole-frame = decode + resize + inference + decision.",
        f"- **Iterations**: {a.warmup} warm-up call(s) per row, not counted; then up to {a.iters} calls, cut to fit "
        f"~{a.row_budget_s:g} s per row (at least {a.min_iters}); the row's `n` column says how many frames. "
        "Percentiles are of the raw samples saved in the JSON file.",
        "", "",
    ]
    return lines


def int8_vs_fp32(rows: list[dict]) -> list[str]:
    """INT8 against FP32 per backend, and each OpenVINO row against ONNX Runtime's row of the same file."""
    lines = ["## INT8 against FP32, and OpenVINO against ONNX Runtime, on this CPU (whole-frame p50)", "",
             "| backend | steps | backbone | FP32 ms | INT8 ms | INT8 / FP32 | FP32: ONNX Runtime ms / this | "
             "INT8: ONNX Runtime ms / this |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        v = r["variant"]
        if r.get("reference") or v.get("precision") != "fp32" or v.get("backend") in (None, "torch"):
            continue
        q = find_row(rows, "int8", v["steps"], v.get("backbone"), v["backend"])
        if not q:
            continue
        ort = [find_row(rows, p, v["steps"], v.get("backbone"), "onnxruntime") for p in ("fp32", "int8")]
        against = [f"{_p50(o) / _p50(x):.2f}" if o and v["backend"] != "onnxruntime" else "—"
                   for o, x in zip(ort, (r, q))]
        lines.append(f"| {v['backend']} | {v['steps']} | {v.get('backbone') or 'pixel-only'} | {_p50(r):,.1f} | "
                     f"{_p50(q):,.1f} | {_p50(q) / _p50(r):.2f} | {against[0]} | {against[1]} |")
    return lines + ["", ""]


def overhead_section(overhead: dict) -> list[str]:
    lines = [f"## The inspection loop's own overhead (issue 5: < {OVERHEAD_TARGET_MS:g} ms per frame at 256 px)", "",
             "Everything but the runner's call, per frame (decode + resize + decision + reject planning + sinks), "
             "measured with `profile_loop` on the real loop. The null graph is a real ONNX Runtime graph that "
             "costs almost nothing (`ddad_edge/bench/null_model.py`), so the loop runs at line rate; with the "
             "event log on, events.jsonl is written as `ddad-edge run` writes it (flushed per record, synced to "
             "disk at most once a second: around a runner taking about a second per frame, on every frame).", "",
             "| frames read | runner | event log | n | overhead p50 | p99 | max | decode p50 | resize p50 | "
             "decide+reject p50 | sinks p50 | target (p99) |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for o in overhead.values():
        s, ov = o["stages_ms"], o["overhead_ms"]
        ok = "met" if ov["p99"] < OVERHEAD_TARGET_MS else ("met at p50 only" if ov["p50"] < OVERHEAD_TARGET_MS
                                                          else "NOT met")
        sinks = s.get("sinks", {}).get("p50", 0.0)
        lines.append(f"| {o['frames_read']} | {o['runner']} | {'on' if o['event_log'] else 'off'} | {o['frames']} | "
                     f"{ov['p50']:.2f} | {ov['p99']:.2f} | {ov['max']:.2f} | {s['decode']['p50']:.2f} | "
                     f"{s['preprocess']['p50']:.2f} | {s['decide']['p50'] + s['reject']['p50']:.3f} | {sinks:.2f} | "
                     f"{ok} |")
    return lines + ["", ""]


def write_markdown(path: Path, name: str, rows: list[dict], meta: dict, profile: dict | None, overhead: dict,
                   edge_key: Any, a: Any, extra_profiles: list[dict] = (), ov_profile: dict | None = None) -> Path:
    """Write the results document of a matrix run; returns `path`."""
    loads = [x for r in rows for x in r.get("load_average_1min", []) if x is not None]
    busy = [r["cores_busy"] for r in rows if r.get("cores_busy")]
    text = [
        f"# Benchmark matrix: {name}", "",
        f"Made by `{meta['command']}` (bundles prepared first by `python benchmarks/run_matrix.py --prepare-only`; "
        f"cached in benchmarks/work/, not committed), started {meta['started']}, measured in "
        f"{meta['run_s'] / 60:.1f} min. Raw rows with every sample: `{name}.json`; ORT profile and loop overhead "
        f"samples: `{name}.details.json`; plot: `{name}.png`.", "",
        "## Machine", "", *machine_lines(meta["machine"]),
        f"- shared machine: 1-minute load average during the rows {min(loads):.1f}–{max(loads):.1f} on "
        f"{meta['machine']['cpu']['cores']} cores; the process kept {min(busy):.2f}–{max(busy):.2f} cores busy "
        "(column `cores busy`: CPU time / wall time). Rows measured while others ran are slower than on an idle "
        "machine; the reference ran in the same process, in the same conditions, first."
        if loads and busy else "", *[f"- {n}" for n in meta["notes"]], "",
        *provenance(rows, a),
        "## Results (ms per frame; speed-up = reference whole-frame p50 / row whole-frame p50)", "",
        markdown_table(rows), "",
        *budget_section(rows),
        *verdict(rows, edge_key, profile, extra_profiles, meta["machine"].get("cpu"), ov_profile),
        *int8_vs_fp32(rows),
        *overhead_section(overhead),
        "## Reading the numbers", "",
        "- `frame` is decode + resize + inference + decision for one frame; `fps` is frames over the measured wall "
        "time. GFLOP counts multiply-adds as 2 and leave element-wise work out (torch's FlopCounterMode on the same "
        "modules); GFLOP/s is GFLOP per frame over the inference p50, and its share is of the CPU's estimated peak in "
        "the arithmetic the row runs in (INT8 files: the VNNI rate; OpenVINO's bf16 mode: the BF16 rate; else FP32; "
        "results made before that distinction set every row against FP32); the CPU peak is an estimate.",
        "- Peak RSS is the process's peak during each row's measured part (the kernel's mark is reset per row).",
        "",
    ]
    path = Path(path)
    atomic_write_bytes(path, "\n".join(text).encode())
    return path
