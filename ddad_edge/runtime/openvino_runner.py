"""The OpenVINO runner: a bundle's model.onnx compiled by OpenVINO for an x86 line PC's CPU (or its Intel iGPU /
NPU, or AUTO), with the inference precision set explicitly.

Why the precision is always set: on a CPU with BF16 support (AVX512_BF16, AMX), OpenVINO's CPU plugin compiles
with INFERENCE_PRECISION_HINT = bf16 unless told otherwise, so an "FP32" bundle would silently run with 8-bit
mantissas. Here `precision="f32"` is the default and is asked for in so many words; `"bf16"` is an execution
mode of its own, offered only where the device reports BF16 among its OPTIMIZATION_CAPABILITIES, and one line
otherwise. An INT8 (Q/DQ) file runs as INT8 under either: OpenVINO folds the Q/DQ pairs into integer kernels
and `precision` applies to the layers left in float.

Compiled models are cached (OpenVINO's CACHE_DIR, keyed by the model and the compile options), so a restart of
the inspection loop does not compile again: the default folder is $XDG_CACHE_HOME/ddad-edge/openvino (or
~/.cache/...), never the bundle folder, whose files are hashed.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path

import numpy as np

from ddad_edge.bundle import Bundle
from ddad_edge.errors import DdadError, choose, missing_package, raise_if_interrupted
from ddad_edge.runtime.base import INPUT_NAME, OUTPUT_NAMES, Inspection, RunnerBase

OPENVINO_INSTALL = "pip install openvino (or ddad-edge[openvino])"
DEVICES = ("CPU", "GPU", "NPU", "AUTO")


class InferencePrecision(str, Enum):
    """The precision OpenVINO runs the float layers in (its INFERENCE_PRECISION_HINT)."""

    F32 = "f32"
    BF16 = "bf16"


def openvino(purpose: str = "the OpenVINO backend"):
    """The openvino module, or the one-line error that says how to install it."""
    try:
        import openvino as ov
    except ImportError as exc:
        raise_if_interrupted(exc)
        raise missing_package("openvino", purpose, OPENVINO_INSTALL) from None
    return ov


def default_cache_dir() -> Path:
    """Where compiled models are cached between starts: $XDG_CACHE_HOME/ddad-edge/openvino or ~/.cache/..."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ddad-edge" / "openvino"


def device_capabilities(core, device: str) -> tuple[str, ...]:
    """The device's OPTIMIZATION_CAPABILITIES (e.g. FP32, BF16, INT8), or () where it does not say."""
    try:
        return tuple(str(c) for c in core.get_property(device, "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # AUTO and some plugins do not report capabilities
        return ()


def check_precision(core, device: str, precision: InferencePrecision) -> None:
    """One line where `precision` cannot run on `device` (BF16 on a CPU without AVX512_BF16 or AMX)."""
    if precision is InferencePrecision.BF16 and device != "AUTO":
        caps = device_capabilities(core, device)
        if "BF16" not in caps:
            raise DdadError(f"OpenVINO's {device} device has no BF16 support here (its capabilities: "
                            f"{', '.join(caps) or 'none reported'}): use --ov-precision f32, or a CPU with "
                            "AVX512_BF16 or AMX")


def parse_precision(precision: InferencePrecision | str) -> InferencePrecision:
    """The InferencePrecision of a name, or one line naming the choices."""
    return choose(InferencePrecision, precision, "OpenVINO inference precision")


def mode_name(precision: InferencePrecision | str) -> str:
    """The execution mode's name in a bundle's manifest (execution_modes): openvino-f32, openvino-bf16."""
    return f"openvino-{parse_precision(precision).value}"


class CompiledGraph:
    """An ONNX file of the one graph compiled by OpenVINO: uint8 frames in, (maps, scores) out.

    Used by the runner on the device and by the export, which measures each execution mode's fidelity."""

    def __init__(self, model_path: Path, image_size: int, device: str = "CPU",
                 precision: InferencePrecision | str = "f32", threads: int = 0,
                 cache_dir: Path | str | None = None, perf_counters: bool = False) -> None:
        ov = openvino()
        precision = parse_precision(precision)
        device = device.upper()
        if device not in DEVICES:
            raise DdadError(f"unknown OpenVINO device {device!r}: choose one of {', '.join(DEVICES)}")
        core = ov.Core()
        available = list(core.available_devices)
        if device != "AUTO" and not any(d == device or d.startswith(device + ".") for d in available):
            raise DdadError(f"OpenVINO device {device} is not available here (available: "
                            f"{', '.join(available) or 'none'})")
        check_precision(core, device, precision)
        if threads < 0:
            raise DdadError(f"--threads must be 0 (OpenVINO's default) or more, got {threads}")
        self.model_path, self.image_size, self.device, self.precision = Path(model_path), image_size, device, precision
        if cache_dir is None:
            cache_dir = default_cache_dir()
        config: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY"}
        if device != "AUTO":
            config["INFERENCE_PRECISION_HINT"] = precision.value
        if threads and device == "CPU":
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if perf_counters:  # per-layer times of each request (bench/openvino_profile.py)
            config["PERF_COUNT"] = True
        if str(cache_dir):
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
            config["CACHE_DIR"] = str(cache_dir)
        try:
            model = core.read_model(str(self.model_path))
        except RuntimeError as exc:
            raise DdadError(f"OpenVINO cannot read {self.model_path} ({str(exc).splitlines()[0][:120]}): "
                            "export the bundle again") from None
        self._check_io(model)
        self._compiled = core.compile_model(model, device, config)
        self._request = self._compiled.create_infer_request()
        # what OpenVINO says it compiled, not what was asked: reports and `run` name this
        self.compiled_precision = (self._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
                                   if device == "CPU" else precision.value)

    def _check_io(self, model) -> None:
        """One input `frames` uint8 (N, S, S, 3) and the outputs anomaly_map, score: a model file from another
        bundle or another tool is refused here, not at the first frame."""
        size = self.image_size
        inputs = [(p.get_any_name(), p.get_element_type().get_type_name(), str(p.get_partial_shape()))
                  for p in model.inputs]
        outputs = [p.get_any_name() for p in model.outputs]
        ok = len(model.inputs) == 1 and inputs[0][0] == INPUT_NAME and inputs[0][1] == "u8"
        if ok:
            shape = model.inputs[0].get_partial_shape()
            ok = shape.rank.is_static and len(shape) == 4 and all(
                shape[i].is_dynamic or shape[i].get_length() == want for i, want in ((1, size), (2, size), (3, 3)))
        if not ok:
            raise DdadError(f"{self.model_path} takes {inputs}, but the bundle's manifest says "
                            f"{INPUT_NAME} uint8 (N, {size}, {size}, 3): the model file belongs to another "
                            "bundle or model; export the bundle again")
        if outputs[:2] != list(OUTPUT_NAMES):
            raise DdadError(f"{self.model_path} has outputs {outputs}, expected anomaly_map, score: "
                            "it is not a ddad-edge graph")

    def infer(self, frames: np.ndarray) -> Inspection:
        """Frames (N, S, S, 3) uint8, already checked → maps (N, 1, S, S) and scores (N,) float32."""
        results = self._request.infer({INPUT_NAME: frames})
        maps = results[self._compiled.output(OUTPUT_NAMES[0])]
        scores = results[self._compiled.output(OUTPUT_NAMES[1])]
        return Inspection(maps=np.array(maps, dtype=np.float32), scores=np.array(scores, dtype=np.float32))

    def profiling_info(self) -> list:
        """OpenVINO's per-layer record of the last request (node name and type, the kernel it ran, its
        time); compiled with `perf_counters` only."""
        return list(self._request.get_profiling_info())

    def close(self) -> None:
        self._request = None
        self._compiled = None


def check_mode_measured(bundle: Bundle, precision: InferencePrecision) -> None:
    """One line unless the bundle's export measured this execution mode and found it within its recipe's
    budget (manifest `execution_modes`): speed is never used without its fidelity."""
    mode = mode_name(precision)
    entry = (bundle.manifest.get("execution_modes") or {}).get(mode)
    if isinstance(entry, dict) and entry.get("status") == "offered":
        return
    if entry is None:
        why = "the export did not measure it (a bundle made without OpenVINO, or before execution modes)"
    else:
        why = f"the export found it {entry.get('status', '?')}: {entry.get('reason', '?')}"
    raise DdadError(f"bundle {bundle.path} does not offer {mode}: {why}; export the bundle again where OpenVINO "
                    f"runs{' on a CPU with BF16' if precision is InferencePrecision.BF16 else ''}, or pass "
                    "--unmeasured-mode to run it with fidelity unknown")


class OpenVinoRunner(RunnerBase):
    """Runs a bundle's model.onnx in OpenVINO (see CompiledGraph for the options).

    `device`: CPU, GPU, NPU or AUTO (one that OpenVINO does not see is an error, not a fallback, so a benchmark
    never measures another device than it says). `precision`: the float layers' precision, f32 unless
    asked. `threads`: inference threads (0: OpenVINO's default). `cache_dir`: compiled-model cache (None: the
    default folder; "" turns it off). The mode must be one the bundle's export measured and offers, unless
    `unmeasured_mode` says in so many words to run it anyway.
    """

    backend = "openvino"

    def __init__(self, bundle: Bundle, device: str = "CPU", precision: InferencePrecision | str = "f32",
                 threads: int = 0, cache_dir: Path | str | None = None, unmeasured_mode: bool = False) -> None:
        precision = parse_precision(precision)
        if not unmeasured_mode:
            check_mode_measured(bundle, precision)
        self.bundle = bundle
        self.image_size = bundle.image_size
        self._graph = CompiledGraph(bundle.model_path, bundle.image_size, device, precision, threads, cache_dir)
        self.device, self.precision = self._graph.device, self._graph.precision
        self.compiled_precision = self._graph.compiled_precision
        self.mode = mode_name(precision)
        # the Backend value that opens this mode (runtime/backends.py): openvino, or openvino-bf16
        self.backend = "openvino" if precision is InferencePrecision.F32 else f"openvino-{precision.value}"

    def _infer_batch(self, frames: np.ndarray) -> Inspection:
        return self._graph.infer(frames)

    def close(self) -> None:
        self._graph.close()
