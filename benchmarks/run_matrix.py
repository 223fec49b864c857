"""The benchmark matrix: backends × precision × steps × backbone × scoring, against the DDAD-S reference.

    python benchmarks/run_matrix.py --prepare-only      # make the speed-only bundles (cached in --work)
    python benchmarks/run_matrix.py                     # time them all, the reference first, same process

Writes benchmarks/results/<machine>.json (a list of rows: variant, percentiles, raw samples,
speedup_vs_reference, fidelity where a real report exists), <machine>.md (the table, what was measured on
which model, where the time goes) and <machine>.png (speed-up vs image AUROC drop against the teacher). See README.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import shlex
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repository's ddad_edge, when run as a script
sys.path.insert(0, str(HERE))

from fidelity_bundles import csv, read_refused  # noqa: E402
from fidelity_pairs import data_set_of, fidelity_note, scores_of_test_split  # noqa: E402
from matrix_report import edge_row, fastest_distilled, find_row, write_markdown  # noqa: E402
from speed_bundles import SPEED_MODEL, SpeedVariant, speed_bundle, student_grid  # noqa: E402

from ddad_edge.bench.frames import file_source_factory, parse_frame_size, write_synthetic_frames  # noqa: E402
from ddad_edge.bench.machine import describe_machine, machine_slug  # noqa: E402
from ddad_edge.bench.report import add_speedups, is_cpu, write_json  # noqa: E402
from ddad_edge.bench.run import (  # noqa: E402
    bench_bundle,
    bench_reference,
    bench_runner,
    describe_variant,
    loop_overhead,
    read_fidelity,
    sampler_kind,
    variant_name,
)
from ddad_edge.bench.tradeoff_plot import plot_speedup_vs_fidelity  # noqa: E402
from ddad_edge.bundle import Precision, read_bundle  # noqa: E402
from ddad_edge.runtime.backends import open_runner  # noqa: E402


def _p50(row: dict) -> float:
    return row["stages_ms"]["frame"]["p50"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=HERE / "work", help="speed-only bundles and frames (cached)")
    p.add_argument("--out", type=Path, default=HERE / "results", help="results folder")
    p.add_argument("--machine", default="", help="results file name (default: from the CPU / Jetson model)")
    p.add_argument("--backends", default="onnxruntime,openvino,openvino-bf16",
                   help="onnxruntime,openvino,openvino-bf16,torch,tensorrt (openvino: its f32 mode; openvino-bf16: "
                        "its bf16 mode, on CPUs with AVX512_BF16 or AMX; an INT8 file runs as INT8 in both)")
    p.add_argument("--precisions", default="fp32,int8", help="fp32,fp16,int8")
    p.add_argument("--steps", default="10,2,1")
    p.add_argument("--backbones", default="wide_resnet50_2,resnet18", help="backbones of the fused rows")
    p.add_argument("--scorings", default="fused,pixel", help="fused,pixel (pixel-only has no backbone)")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--preset", default="ddad-s", help="UNet preset of the speed rows (tiny: for smoke tests)")
    p.add_argument("--frame-size", default="640x480", help="synthetic camera frames, WxH (JPEG)")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its default)")
    p.add_argument("--warmup", type=int, default=1, help="warm-up calls per row (not counted)")
    p.add_argument("--iters", type=int, default=20, help="most measured calls per row")
    p.add_argument("--min-iters", type=int, default=3, help="fewest measured calls per row")
    p.add_argument("--row-budget-s", type=float, default=25.0, help="measured seconds per row, at most ~")
    p.add_argument("--reference-warmup", type=int, default=1)
    p.add_argument("--reference-iters", type=int, default=3)
    p.add_argument("--reference-threads", default="0,1",
                   help="torch thread counts to time the reference with (0: torch's default); the fastest is used")
    p.add_argument("--no-reference", action="store_true")
    p.add_argument("--no-reference-again", dest="reference_again", action="store_false",
                   help="do not time the reference once more after the rows")
    p.add_argument("--torch-device", default="auto",
                   help="where torch runs the reference and the torch rows: auto (the GPU where torch sees one, "
                        "as DDAD runs), cpu, cuda, cuda:N")
    p.add_argument("--reference-spec", default="ddad-s,256,wide_resnet101_2",
                   help="preset,size,backbone of the reference (DDAD-S as published; smaller only for smoke tests)")
    p.add_argument("--edge", default="frontier",
                   help="default edge variant: frontier (the fastest within the fidelity budget: image AUROC at "
                        "most 1 point below the teacher's) or precision,steps,backbone (backbone pixel: pixel-only)")
    p.add_argument("--profile-runs", type=int, default=2, help="ONNX Runtime profiler runs of the edge variant")
    p.add_argument("--overhead-frames", type=int, default=20,
                   help="frames of the loop-overhead measurement around the fastest real row (0: none)")
    p.add_argument("--null-frames", type=int, default=300,
                   help="frames of the loop-overhead measurement around a near-zero-cost graph")
    p.add_argument("--fidelity-bundles", type=Path, nargs="*", default=[],
                   help="real exported bundles (or folders of them) whose report.json gives a variant's fidelity")
    p.add_argument("--calibration-frames", type=int, default=1, help="synthetic frames for INT8 ranges")
    p.add_argument("--prepare-only", action="store_true", help="make the bundles and stop")
    p.add_argument("--report-only", action="store_true",
                   help="measure nothing: rewrite <machine>.md and .png from the saved <machine>.json and "
                        ".details.json (after a change to the report's wording), with the options of the run that "
                        "made them")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def matrix_variants(a: argparse.Namespace) -> list[SpeedVariant]:
    """Every (steps, precision, backbone|pixel) of the matrix; pixel-only once per steps and precision, since
    it has no backbone (its graph is the same whichever backbone the fused rows use)."""
    heads = [b for b in csv(a.backbones)] if "fused" in csv(a.scorings) else []
    if "pixel" in csv(a.scorings):
        heads.append(None)
    return [SpeedVariant(int(k), b, Precision(p), a.image_size, a.preset)
            for k in csv(a.steps) for p in csv(a.precisions) for b in heads]


def shown(path: str | Path | None) -> str | None:
    """A path as the results show it: relative to the current folder where it lies under it (this
    machine's absolute folders mean nothing to a reader of the committed files)."""
    if path is None:
        return None
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def fidelity_index(paths: list[Path]) -> dict[tuple, tuple[dict, str, dict]]:
    """(backend, precision, steps, scoring, backbone) → (fidelity numbers, report path, the model they were
    measured on: its run, preset and image size, and for an execution mode its `mode_status`). Backend
    onnxruntime: the file's own numbers; openvino-f32 / openvino-bf16: those the export measured for that
    execution mode of the same file (offered or refused; unavailable modes have none)."""
    found = {}
    for root in paths:
        for manifest in sorted([root / "manifest.yaml"] + list(Path(root).glob("*/manifest.yaml"))):
            if not manifest.is_file():
                continue
            bundle = read_bundle(manifest.parent)
            d = describe_variant(bundle)
            run = (bundle.manifest.get("source") or {}).get("run")
            modes = bundle.manifest.get("execution_modes") or {}
            for backend in ("onnxruntime", *modes):
                numbers, source = read_fidelity(bundle, None if backend == "onnxruntime" else backend)
                if not numbers:
                    continue
                key = (backend, bundle.precision.value, d["steps"], d["scoring"], d["backbone"])
                model = {"run": shown(run), "preset": d["preset"], "image_size": d["image_size"]}
                model.update(int8_share(Path(source)), data_set=data_set_of(bundle.manifest),
                             sampler=sampler_words(bundle.manifest))
                if backend != "onnxruntime":
                    model["mode"] = backend
                    model["mode_status"] = {k: modes[backend].get(k) for k in ("status", "reason")}
                found[key] = (numbers, shown(source), model)
    return found


def sampler_words(manifest: dict) -> str:
    """What reconstructs in a bundle, in words: the teacher, a distilled student, or the teacher itself on a
    naive grid (DDAD's from the run's T', or DDIM's from a start level), with its grid."""
    graph = manifest.get("graph") or {}
    steps, grid, t_prime = graph.get("steps"), graph.get("timesteps") or [], graph.get("t_prime")
    where = f"{t_prime} → {', '.join(map(str, grid))}"
    kind = sampler_kind(manifest)
    if kind.startswith("naive from "):
        level = graph["start_level"]
        return (f"the teacher itself, {steps} step{'' if steps == 1 else 's'} from noise level {level} ({where}; "
                f"`export --steps {steps} --naive --start-level {level}`)")
    if kind == "naive":
        return f"the teacher itself on DDAD's {steps}-step grid ({where}; `export --steps {steps} --naive`)"
    if kind == "teacher":
        return f"the teacher, {steps} steps ({where})"
    return f"the {steps}-step distilled student ({where})"


def int8_share(report: Path) -> dict[str, int]:
    """{"int8_quantized", "int8_candidates"}: how many of an INT8 bundle's candidate nodes its file runs in INT8
    after the export's fallback (report.json's precision_details); {} for other bundles."""
    try:
        details = json.loads(report.read_text()).get("precision_details") or {}
    except (OSError, json.JSONDecodeError):
        return {}
    if details.get("kind") != "int8" or "quantized_nodes" not in details or "candidate_nodes" not in details:
        return {}
    return {"int8_quantized": int(details["quantized_nodes"]), "int8_candidates": int(details["candidate_nodes"])}


def refused_index(paths: list[Path]) -> dict[tuple, dict]:
    """(precision, steps, scoring, backbone) → an export that was refused for that variant (its reason, the
    run and model it was tried on), from the refused.json that `fidelity_bundles.py` leaves beside its
    bundles."""
    found = {}
    for root in paths:
        for entry in read_refused(Path(root)).values():
            key = (entry["precision"], entry["steps"], entry["scoring"], entry["backbone"])
            found[key] = {**entry, "run": shown(entry.get("run"))}
    return found


def torch_row(v: SpeedVariant, source, a, peak, device: str):
    """A torch eager row of a speed-only FP32 variant (the same pipeline the ONNX file was exported from),
    on `device`; the CPU's peak is compared with it only on the CPU."""
    from ddad_edge.bench.reference import random_unet, speed_pipeline, variant_gflops
    from ddad_edge.model.torch_runner import TorchRunner

    pipeline = speed_pipeline(random_unet(v.preset, v.image_size), student_grid(v.steps), 250, 0.0, v.backbone)
    variant = {"name": variant_name("torch", "fp32", v.steps, v.backbone, v.scoring), "backend": "torch",
               "precision": "fp32", **v.graph(), "model": SPEED_MODEL.format(backbone=v.backbone or "pixel-only"),
               "bundle": None, "device": device}
    return bench_runner(TorchRunner(pipeline, device=device, batch_size=1), variant, source, 1, a.warmup, a.iters,
                        a.row_budget_s, variant_gflops(v.preset, v.image_size, v.steps, v.backbone),
                        peak if is_cpu(device) else None, show_progress=not a.no_progress)


LOCAL_OPTIONS = ("work", "out", "fidelity_bundles")  # this machine's folders: not needed to write the report again


def saved_options(a: argparse.Namespace) -> dict:
    """The run's options as JSON values, for `--report-only`, without this machine's folders."""
    import json

    return json.loads(json.dumps({k: v for k, v in vars(a).items() if k not in LOCAL_OPTIONS}, default=str))


def bf16_unavailable() -> str | None:
    """Why OpenVINO's bf16 mode cannot run on this CPU (no AVX512_BF16 or AMX, or no OpenVINO), or None."""
    from ddad_edge.errors import DdadError
    from ddad_edge.runtime.openvino_runner import InferencePrecision, check_precision, openvino

    try:
        check_precision(openvino("the matrix's OpenVINO rows").Core(), "CPU", InferencePrecision.BF16)
    except DdadError as exc:
        return str(exc)
    return None


def edge_variant(a: argparse.Namespace) -> SpeedVariant | None:
    """The default edge variant of `--edge` (precision,steps,backbone; backbone pixel or none: pixel-only);
    None for `frontier`: the fastest row within the fidelity budget, known once the rows are measured."""
    if a.edge == "frontier":
        return None
    prec, k, bb = csv(a.edge)
    return SpeedVariant(int(k), None if bb in ("pixel", "none") else bb, Precision(prec), a.image_size, a.preset)


def plot(rows: list[dict], out: Path, name: str, image_size: int) -> Path:
    return plot_speedup_vs_fidelity(rows, out / f"{name}.png", title=f"{name}: speed-up ({image_size} px graphs) "
                                    "vs image AUROC drop against the teacher", fidelity_note=fidelity_note(rows))


def rewrite_report(a: argparse.Namespace) -> int:
    """`--report-only`: the Markdown file and the plot again from the saved results, under the options they
    were made with."""
    name = a.machine or machine_slug(describe_machine())
    results, details = a.out / f"{name}.json", a.out / f"{name}.details.json"
    if not results.is_file() or not details.is_file():
        print(f"run_matrix: no saved results {results} and {details.name}: run the matrix first, or give "
              "--out/--machine of an earlier run", file=sys.stderr)
        return 2
    rows, saved = json.loads(results.read_text()), json.loads(details.read_text())
    meta = saved["meta"]
    # the run's own options, not this call's: as saved, else (older results) parsed from its command line
    made = (argparse.Namespace(**{**vars(parse_args([])), **meta["options"]}) if meta.get("options")
            else parse_args(shlex.split(meta["command"])[2:]))
    edge = edge_variant(made)
    extra = saved.get("ort_profiles_more") or [p for p in (saved.get("ort_profile_fastest_int8"),) if p]
    path = write_markdown(a.out / f"{name}.md", name, rows, meta, saved.get("ort_profile"),
                          saved.get("loop_overhead") or {}, edge, made, extra_profiles=extra,
                          ov_profile=saved.get("openvino_profile"))
    plot(rows, a.out, name, made.image_size)
    print(f"rewrote {path} from {results.name} and {details.name} (made by: {meta['command']})", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.report_only:
        return rewrite_report(a)
    warnings.simplefilter("ignore")  # tracer and quantizer chatter; the results say what matters
    command = "python benchmarks/run_matrix.py " + " ".join(shlex.quote(x) for x in (argv or sys.argv[1:]))
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    variants = matrix_variants(a)
    backends = csv(a.backends)
    torch_device = None  # where torch runs the reference and the torch rows; checked before any work
    if not a.prepare_only and (not a.no_reference or "torch" in backends):
        from ddad_edge.bench.run import torch_device_of

        torch_device = torch_device_of(a.torch_device)
    t0 = time.perf_counter()
    bundles = {}
    for v in variants:
        if {"onnxruntime", "tensorrt", "openvino", "openvino-bf16"} & set(backends):
            bundles[v.key] = speed_bundle(v, a.work, calib_count=a.calibration_frames)
    print(f"{len(bundles)} bundles ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if a.prepare_only:
        return 0

    machine = describe_machine()
    peak = machine["cpu"].get("fp32_peak_gflops")
    width, height = parse_frame_size(a.frame_size)
    source = file_source_factory(write_synthetic_frames(a.work / f"frames-{width}x{height}", width, height))
    fidelity, refused = fidelity_index(a.fidelity_bundles), refused_index(a.fidelity_bundles)
    rows, notes = [], []
    if "tensorrt" in backends:
        from ddad_edge.deploy.tensorrt_build import build_if_possible, tensorrt_available

        reason = tensorrt_available()
        if reason is not None:
            notes.append(f"tensorrt rows skipped: {reason}")
            backends.remove("tensorrt")
        else:
            for v in variants:
                build_if_possible(bundles[v.key].path, "tensorrt")
                bundles[v.key] = read_bundle(bundles[v.key].path)
    if "openvino-bf16" in backends:
        reason = bf16_unavailable()
        if reason is not None:
            notes.append(f"openvino-bf16 rows skipped: {reason}")
            backends.remove("openvino-bf16")
    t_run = time.perf_counter()
    from ddad_edge.bench.reference import ReferenceSpec

    preset, size, backbone = csv(a.reference_spec)
    reference_spec = ReferenceSpec(preset=preset, image_size=int(size), backbone=backbone)
    if torch_device is not None:
        from ddad_edge.bench.reference import device_label

        users = [w for w, used in (("the reference", not a.no_reference), ("the torch rows", "torch" in backends))
                 if used]
        notes.append(f"torch ({' and '.join(users)}) ran on "
                     f"{'the CPU' if torch_device.type == 'cpu' else device_label(torch_device)}")
        if torch_device.type != "cpu" and "onnxruntime" in backends:
            notes.append("onnxruntime rows ran on the CPU (its CPU execution provider), torch on the GPU: "
                         + ("the 30x verdict takes the tensorrt rows, which ran on the GPU too"
                            if "tensorrt" in backends else "no tensorrt rows ran, so no row here compares GPU "
                            "with GPU"))
    torch_device = str(torch_device or "cpu")
    if "torch" in backends and any(v.precision is not Precision.FP32 for v in variants):
        notes.append("torch rows are FP32 eager only: FP16 and INT8 are precisions of the exported graph, "
                     "measured on onnxruntime and tensorrt")
    if not a.no_reference:
        # thread counts matter on the CPU (the fastest becomes the reference, add_speedups); a GPU: once
        for n in (csv(a.reference_threads) if torch_device == "cpu" else ["0"]):
            rows.append(bench_reference(source, a.reference_warmup, a.reference_iters, peak, not a.no_progress,
                                        threads=int(n) or None, spec=reference_spec, device=torch_device))
            gc.collect()
    for v in variants:
        for backend in backends:
            if backend == "torch":
                if v.precision is Precision.FP32:
                    rows.append(torch_row(v, source, a, peak, torch_device))
                continue
            # a speed-only bundle's export measured no execution mode (its outputs mean nothing): OpenVINO is
            # told in so many words; its row's fidelity is the mode's on the trained bundle of the variant
            row = bench_bundle(bundles[v.key], source, backend, 1, a.warmup, a.iters, a.threads, a.row_budget_s,
                               machine["cpu"], SPEED_MODEL.format(backbone=v.backbone or "pixel-only scoring"),
                               show_progress=not a.no_progress, unmeasured_mode=backend.startswith("openvino"))
            # OpenVINO's modes have fidelity of their own; other backends (TensorRT) are given the file's, as
            # ONNX Runtime runs it: the only measure of that file this machine has
            ran = row["variant"]["backend"]  # onnxruntime, openvino-f32, openvino-bf16 or tensorrt
            measured = ran if ran.startswith("openvino-") else "onnxruntime"
            key = (v.precision.value, v.steps, v.scoring, v.backbone)
            if (measured, *key) in fidelity:
                numbers, src, model = fidelity[(measured, *key)]
                row.update(fidelity=numbers, fidelity_source=src, fidelity_graph=model,
                           fidelity_model=f"exported from run {model['run']} ({model['preset']} at "
                                          f"{model['image_size']} px)",
                           fidelity_set=model["data_set"],
                           fidelity_test=scores_of_test_split(Path(src), model.get("mode")))
                if model.get("mode_status"):
                    row["mode_status"] = model["mode_status"]
            elif key in refused:
                row.update(fidelity_refused=refused[key])
            rows.append(row)
            gc.collect()
    refs = [r for r in rows if r.get("reference")]
    if refs and a.reference_again:
        # Load from other work changes over a long run: time the baseline once more at the end, with its
        # faster thread count, so it gets its best showing (add_speedups takes the fastest reference row).
        best = min(refs, key=_p50)
        again = bench_reference(source, a.reference_warmup, a.reference_iters, peak, not a.no_progress,
                                threads=best["variant"]["threads"], spec=reference_spec, device=torch_device)
        again["variant"]["name"] += ", again at the end"
        rows.append(again)
    add_speedups(rows)

    # Where the time goes: ONNX Runtime's per-operator profile of the default edge variant's ONNX Runtime row,
    # and of the fastest distilled INT8 row and the fastest distilled row of any precision where those are other
    # rows (the variants nearest the target: their bounds are the best cases).
    edge = edge_variant(a)
    chosen = edge_row(rows, edge)
    profile, more_profiles = None, []
    frame = None
    if a.profile_runs:
        from ddad_edge.inspect.preprocess import Preprocessor

        frame = Preprocessor(a.image_size).prepare_batch([source(1).grab(1).frames[0].image])
    if frame is not None and "onnxruntime" in backends:
        from ddad_edge.bench.ort_profile import profile_onnx

        by_path = {str(b.path): b for b in bundles.values()}
        # the edge variant's graph as ONNX Runtime runs it (the one backend profiled per operator here)
        wanted = [None if chosen is None else
                  find_row(rows, chosen["variant"]["precision"], chosen["variant"]["steps"],
                           chosen["variant"].get("backbone"), "onnxruntime"),
                  fastest_distilled(rows, "onnxruntime", "int8"), fastest_distilled(rows, "onnxruntime")]
        seen = set()
        for i, row in enumerate(wanted):
            if row is None or row["variant"]["name"] in seen:
                continue
            seen.add(row["variant"]["name"])
            bundle = by_path[row["variant"]["bundle"]]
            p = profile_onnx(bundle.model_path, frame, runs=a.profile_runs, threads=a.threads,
                             int8=bundle.precision is Precision.INT8)
            p.update(variant=row["variant"]["name"], row=row["variant"]["name"], bundle=bundle.path.name)
            if i == 0:
                profile = p
            else:
                more_profiles.append(p)
    # the edge variant's own profile where it runs in OpenVINO: which layers and which kernels (AMX, VNNI) took it
    ov_profile = None
    if frame is not None and chosen is not None and chosen["variant"]["backend"].startswith("openvino-"):
        from ddad_edge.bench.openvino_profile import profile_openvino

        bundle = read_bundle(Path(chosen["variant"]["bundle"]))
        ov_profile = profile_openvino(bundle.model_path, frame, chosen["variant"]["backend"].split("-")[1],
                                      runs=a.profile_runs, threads=a.threads)
        ov_profile.update(row=chosen["variant"]["name"], bundle=bundle.path.name)

    # The loop's own overhead at the model's size, around a near-zero-cost graph (line rate) and around the
    # fastest real row (about a frame a second here, where the event log syncs to disk on every frame).
    overhead = {}
    if a.overhead_frames:
        from ddad_edge.bench.null_model import write_null_bundle

        null = write_null_bundle(a.work / f"null-{a.image_size}", a.image_size)
        small = file_source_factory(write_synthetic_frames(a.work / f"frames-{a.image_size}", a.image_size,
                                                           a.image_size, quality=95))
        fastest = min((r for r in rows if r["variant"].get("bundle")), key=_p50, default=None)
        cases = [(f"{a.image_size}x{a.image_size} JPEG", small, null.path, "null graph", False, a.null_frames),
                 (f"{a.image_size}x{a.image_size} JPEG", small, null.path, "null graph", True, a.null_frames),
                 (f"{width}x{height} JPEG", source, null.path, "null graph", True, a.null_frames)]
        if fastest:
            cases.append((f"{a.image_size}x{a.image_size} JPEG", small, fastest["variant"]["bundle"],
                          fastest["variant"]["name"], True, a.overhead_frames))
        for i, (frames_name, src, bundle_path, runner_name, with_log, n) in enumerate(cases):
            events = a.work / "events.jsonl"
            events.unlink(missing_ok=True)
            with open_runner(bundle_path, "onnxruntime", threads=a.threads) as runner:
                o = loop_overhead(runner, src, n, event_log=events if with_log else None)
            o.update(frames_read=frames_name, runner=runner_name)
            overhead[f"case {i + 1}"] = o
    run_s = time.perf_counter() - t_run

    meta = {"command": command, "started": started, "run_s": round(run_s, 1), "machine": machine,
            "frame_size": f"{width}x{height}", "notes": notes,
            "options": saved_options(a)}
    for r in rows:
        r["run"] = {k: meta[k] for k in ("command", "started", "machine", "frame_size")}
    name = a.machine or machine_slug(machine)
    a.out.mkdir(parents=True, exist_ok=True)
    write_json(a.out / f"{name}.json", rows)
    plot(rows, a.out, name, a.image_size)
    write_json(a.out / f"{name}.details.json", {"meta": meta, "ort_profile": profile,
                                                "ort_profiles_more": more_profiles, "openvino_profile": ov_profile,
                                                "loop_overhead": overhead})
    write_markdown(a.out / f"{name}.md", name, rows, meta, profile, overhead, edge, a, extra_profiles=more_profiles,
                   ov_profile=ov_profile)
    print(f"wrote {a.out / name}.{{md,json,png}} in {run_s:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from ddad_edge.errors import DdadError

    try:
        sys.exit(main())
    except DdadError as exc:  # bad input: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
