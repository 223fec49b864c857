"""One benchmark row for a bundle on a backend, and the reference row: what `ddad-edge bench` and the
matrix runner in benchmarks/ both call.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ddad_edge.bench.machine import arithmetic_peak, gpu_memory_used_mb
from ddad_edge.bench.report import fidelity_of, is_cpu, make_row
from ddad_edge.bench.tegrastats import TegrastatsSampler
from ddad_edge.bench.timing import SourceFactory, measure_runner
from ddad_edge.bundle import REPORT_NAME, Bundle, read_bundle
from ddad_edge.errors import DdadError
from ddad_edge.runtime.backends import Backend, open_runner
from ddad_edge.yaml_strict import load_yaml


def sampler_kind(manifest: Any) -> str:
    """What reconstructs in a bundle, from its manifest (a mapping): 'teacher' (the run's own grid), 'student'
    (a distilled one), 'naive' (the teacher on DDAD's K-step grid from the run's T') or 'naive from L' (the
    teacher on DDIM's grid from start level L)."""
    graph = manifest.get("graph") or {}
    if graph.get("naive"):
        level = graph.get("start_level")
        return "naive" if level is None else f"naive from {level}"
    sampler = (manifest.get("config") or {}).get("sampler") or {}
    teacher = sampler["t_prime"] // sampler["skip"] if sampler.get("t_prime") and sampler.get("skip") else None
    return "teacher" if graph.get("steps") == teacher else "student"


def describe_variant(bundle: Bundle) -> dict[str, Any]:
    """preset, image_size, steps, backbone (None: pixel-only), scoring of a bundle, from its manifest
    (`graph`, an embedded run `config`) or, failing that, its source run's config.yaml; None where unknown."""
    m = bundle.manifest
    graph = m.get("graph", {}) or {}
    cfg = m.get("config") if isinstance(m.get("config"), dict) else None
    run = (m.get("source") or {}).get("run")
    if cfg is None and run and (Path(run) / "config.yaml").is_file():
        try:
            cfg = load_yaml((Path(run) / "config.yaml").read_text())
        except (OSError, yaml.YAMLError):
            cfg = None
    cfg = cfg or {}
    scoring = graph.get("scoring") or (cfg.get("scoring") or {}).get("mode")
    backbone = graph.get("backbone", (cfg.get("scoring") or {}).get("backbone"))
    if scoring == "pixel":
        backbone = None
    return {"preset": graph.get("preset", (cfg.get("model") or {}).get("preset")),
            "image_size": bundle.image_size, "steps": graph.get("steps"), "backbone": backbone, "scoring": scoring}


def variant_name(backend: str, precision: str, steps: Any, backbone: str | None, scoring: str | None) -> str:
    """A short name such as `onnxruntime int8 k2 resnet18` or `onnxruntime fp32 k1 pixel-only`."""
    what = "pixel-only" if scoring == "pixel" else (backbone or scoring or "?")
    return f"{backend} {precision} k{steps if steps is not None else '?'} {what}"


def bundle_gflops(variant: dict[str, Any]) -> float | None:
    """GFLOP per frame of a described variant (needs torch to count); None where torch or a detail is missing."""
    if not variant.get("preset") or variant.get("steps") is None:
        return None
    try:
        from ddad_edge.bench.reference import variant_gflops
    except ImportError:
        return None
    return variant_gflops(variant["preset"], variant["image_size"], int(variant["steps"]), variant["backbone"])


def read_fidelity(bundle: Bundle, mode: str | None = None) -> tuple[dict[str, float] | None, str | None]:
    """The fidelity numbers of the bundle's report.json and the file they came from (None, None without):
    the file's own (as ONNX Runtime runs it), or with `mode` those the export measured for that execution
    mode (e.g. openvino-bf16), which are a different precision of the same file: on the fidelity frames, and
    on the test split where the export ran the mode on it."""
    path = bundle.path / REPORT_NAME
    if not path.is_file():
        return None, None
    try:
        report = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None, None
    modes = report.pop("execution_modes", None) if isinstance(report, dict) else None
    if mode is not None:
        entry = (modes or {}).get(mode) or {}
        report = {k: entry[k] for k in ("fidelity", "test_split") if entry.get(k)} if entry.get("fidelity") else {}
    numbers = fidelity_of(report)
    return (numbers or None), str(path)


def bench_runner(runner, variant: dict[str, Any], source_factory: SourceFactory, batch: int = 1, warmup: int = 3,
                 iters: int = 30, budget_s: float | None = None, gflops: float | None = None,
                 peak_gflops: float | None = None, fidelity: dict[str, float] | None = None,
                 fidelity_source: str | None = None, reference: bool = False, show_progress: bool = True,
                 samples: bool = True) -> dict[str, Any]:
    """Benchmark an open runner (closed afterwards) described by `variant`; returns its row (report.py).
    Power and clocks are sampled where tegrastats exists; GPU memory is read where nvidia-smi can."""
    with runner, TegrastatsSampler() as power:
        measurement = measure_runner(runner, source_factory, batch, warmup, iters, budget_s=budget_s,
                                     label=variant["name"], show_progress=show_progress)
        device_mb = gpu_memory_used_mb()
    return make_row(variant, measurement, gflops, peak_gflops, fidelity, fidelity_source, reference=reference,
                    samples=samples, extra={"device_memory_mb": device_mb, "power": power.summary()})


def bench_bundle(bundle: Path | Bundle, source_factory: SourceFactory, backend: Backend | str = Backend.AUTO,
                 batch: int = 1, warmup: int = 3, iters: int = 30, threads: int = 0, budget_s: float | None = None,
                 cpu: dict[str, Any] | None = None, model: str = "", show_progress: bool = True,
                 samples: bool = True, count_flops: bool = True, torch_device: str = "cpu",
                 unmeasured_mode: bool = False) -> dict[str, Any]:
    """Benchmark a bundle on a backend through the inspection loop; returns its row (see report.py).

    `model` says what weights the bundle holds, for the row (e.g. "speed-only: random weights").
    `torch_device`: where the torch backend runs (auto: the GPU where torch sees one). `unmeasured_mode`: time an
    OpenVINO execution mode the export did not measure (its row then has no fidelity). `cpu` (machine.cpu_peak's
    description): the row's GFLOP/s is set against its estimated peak in the arithmetic the row runs in
    (machine.arithmetic_peak), only where the row runs on the CPU.
    """
    if not isinstance(bundle, Bundle):
        bundle = read_bundle(Path(bundle))
    try:
        chosen = Backend(backend)
    except ValueError:
        chosen = None  # open_runner says so in one line
    # ONNX Runtime's and OpenVINO's thread counts are their own options; AUTO may pick TensorRT, which has none
    options: dict[str, Any] = {"threads": threads} if chosen in (
        Backend.ONNXRUNTIME, Backend.OPENVINO, Backend.OPENVINO_BF16) and threads else {}
    if unmeasured_mode:
        options["unmeasured_mode"] = True
    if chosen is Backend.TORCH:
        options["device"] = str(torch_device_of(torch_device))
    runner = open_runner(bundle, backend, **options)
    backend_name = getattr(runner, "mode", runner.backend)  # OpenVINO: its execution mode, openvino-f32|bf16
    desc = describe_variant(bundle)
    variant = {"name": variant_name(backend_name, bundle.precision.value, desc["steps"], desc["backbone"],
                                    desc["scoring"]),
               "backend": backend_name, "precision": bundle.precision.value, **desc,
               "model": model or f"bundle {bundle.path}", "bundle": str(bundle.path)}
    fidelity, source = read_fidelity(bundle, getattr(runner, "mode", None))
    on_cpu = runs_on_cpu(runner)
    peak_gflops = arithmetic_peak(cpu, bundle.precision.value, backend_name) if on_cpu else None
    variant["device"] = "cpu" if on_cpu else str(getattr(runner, "device", None) or "gpu")
    return bench_runner(runner, variant, source_factory, batch, warmup, iters, budget_s,
                        bundle_gflops(desc) if count_flops else None, peak_gflops,
                        fidelity, source, show_progress=show_progress, samples=samples)


def torch_device_of(name: str):
    """The torch device a benchmark times torch on: the CPU or a CUDA GPU (auto: the GPU where torch sees one,
    as DDAD's own code runs); anything else is one line."""
    from ddad_edge.model.device import pick_device

    device = pick_device(name)
    if device.type not in ("cpu", "cuda"):
        raise DdadError(f"--torch-device {name}: the benchmark times torch on cpu or cuda[:N] (or auto) only")
    return device


def runs_on_cpu(runner) -> bool:
    """Whether a runner computes on the CPU only: ONNX Runtime with the CPU provider alone, or torch on the
    CPU. TensorRT (and any runner that says nothing) is not: a CPU peak means nothing beside it."""
    providers = getattr(runner, "providers", None)
    if providers is not None:
        return tuple(providers) == ("CPUExecutionProvider",)
    device = getattr(runner, "device", None)
    return device is not None and is_cpu(device)


def bench_reference(source_factory: SourceFactory, warmup: int = 1, iters: int = 3, peak_gflops: float | None = None,
                    show_progress: bool = True, samples: bool = True, spec=None,
                    threads: int | None = None, device: str = "cpu") -> dict[str, Any]:
    """The DDAD-S reference row (reference.py; `spec` a ReferenceSpec, default DDAD's), measured through
    the same loop as every bundle, on `device` (auto: the GPU where torch sees one), with `threads` torch
    threads (None: torch's default). The GPU's FLOP rate is not compared with the CPU's peak."""
    import torch

    from ddad_edge.bench.reference import ReferenceSpec, device_label, reference_runner, variant_gflops

    spec = spec or ReferenceSpec()
    dev = torch_device_of(device)
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        where = (f"{torch.get_num_threads()} threads" if dev.type == "cpu"
                 else torch.cuda.get_device_name(dev))
        variant = {"name": f"DDAD-S reference (torch eager, {where})", "backend": "torch",
                   "precision": "fp32", "preset": spec.preset, "image_size": spec.image_size, "steps": spec.steps,
                   "backbone": spec.backbone, "scoring": "fused", "eta": spec.eta, "model": spec.describe(dev),
                   "bundle": None, "threads": torch.get_num_threads(), "device": str(dev),
                   "device_label": device_label(dev)}
        gflops = variant_gflops(spec.preset, spec.image_size, spec.steps, spec.backbone)
        return bench_runner(reference_runner(spec, str(dev)), variant, source_factory, 1, warmup, iters,
                            gflops=gflops, peak_gflops=peak_gflops if dev.type == "cpu" else None, reference=True,
                            show_progress=show_progress, samples=samples)
    finally:
        torch.set_num_threads(before)


def loop_overhead(runner, source_factory: SourceFactory, frames: int, event_log: Path | None = None,
                  warmup: int = 2) -> dict[str, Any]:
    """The inspection loop's own work per frame (everything but the runner's call), measured with
    `profile_loop` on `frames` frames after `warmup` frames thrown away; with `event_log`, the loop also
    writes events.jsonl there as `ddad-edge run` does. Returns per-stage percentiles and the raw
    overhead samples (ms)."""
    from ddad_edge.bench.timing import percentiles_of
    from ddad_edge.inspect.profile import profile_loop

    if warmup:
        profile_loop(runner, source_factory(warmup), warmup)
    sinks = []
    if event_log is not None:
        from ddad_edge.inspect.sinks import EventLog, EventLogSink

        sinks.append(EventLogSink(EventLog(event_log)))
    profile = profile_loop(runner, source_factory(frames), frames, sinks=sinks)
    stages = {s: percentiles_of(x) for s, x in profile.stage_ms.items() if x.size}
    overhead = profile.overhead_ms
    return {"frames": int(overhead.size), "event_log": event_log is not None, "stages_ms": stages,
            "overhead_ms": percentiles_of(overhead), "overhead_samples_ms": [round(float(v), 6) for v in overhead]}
