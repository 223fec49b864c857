"""The backend table: each `Backend` value → the runner class that serves it, named by its dotted path and
imported only when that backend is opened by `open_runner`.

Why names and not classes: a runner's module is imported only when its backend is asked for, so `import
ddad_edge.runtime` loads no runner, and a runner that lives above runtime/ joins the table from there with
`register_backend`: the torch reference runner registers itself from model/ (its __init__.py),
so no file in runtime/ imports the torch half and no arrow runs back up the floors.

Adding a backend is its runner file (a RunnerBase subclass that implements `_infer_batch`) plus one line in
RUNNERS (and its value in `Backend`).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from ddad_edge.bundle import Bundle, read_bundle
from ddad_edge.errors import DdadError, choose, raise_if_interrupted
from ddad_edge.runtime.base import Runner


class Backend(str, Enum):
    """Inference backends. AUTO picks TensorRT where an engine for this GPU exists, else ONNX Runtime."""

    AUTO = "auto"
    TENSORRT = "tensorrt"
    ONNXRUNTIME = "onnxruntime"
    OPENVINO = "openvino"  # OpenVINO's f32 execution mode (runtime/openvino_runner.py)
    OPENVINO_BF16 = "openvino-bf16"  # the same file with every float layer in bf16 (CPUs with AVX512_BF16/AMX)
    TORCH = "torch"  # the FP32 torch reference; registered by model/, where it lives


@dataclass(frozen=True)
class RunnerEntry:
    """How one backend value is opened."""

    target: str  # "package.module:Class", imported when the backend is opened
    options: Mapping[str, Any] = field(default_factory=dict)  # keyword options this value fixes (bf16, …)
    # The runner runs execution modes the bundle's export must have measured; it alone takes `unmeasured_mode`.
    measured_modes: bool = False
    # The one-line error where the runner's module cannot be imported ({exc}: the ImportError); empty: raise it.
    missing: str = ""


RUNNERS: dict[Backend, RunnerEntry] = {
    Backend.ONNXRUNTIME: RunnerEntry("ddad_edge.runtime.onnx_runner:OnnxRunner"),
    Backend.TENSORRT: RunnerEntry("ddad_edge.runtime.trt_runner:TensorRTRunner"),
    Backend.OPENVINO: RunnerEntry("ddad_edge.runtime.openvino_runner:OpenVinoRunner", {"precision": "f32"}, True),
    Backend.OPENVINO_BF16: RunnerEntry("ddad_edge.runtime.openvino_runner:OpenVinoRunner", {"precision": "bf16"},
                                       True),
}


def register_backend(backend: Backend | str, target: str, *, missing: str = "") -> None:
    """Serve `backend` with the runner class at `target` ("package.module:Class"), for runners that live above
    runtime/. `missing`: the one-line error where that module cannot be imported ({exc}: the ImportError)."""
    module, _, name = target.partition(":")
    if not module or not name:
        raise ValueError(f"a runner target is 'package.module:Class', got {target!r}")
    RUNNERS[Backend(backend)] = RunnerEntry(target, missing=missing)


def parse_backend(backend: Backend | str) -> Backend:
    """The Backend of a name, or one line naming the choices."""
    return choose(Backend, backend, "backend")


def runner_entry(backend: Backend) -> RunnerEntry:
    """The table's entry of a backend (not AUTO, which open_runner resolves first), or one line."""
    entry = RUNNERS.get(backend)
    if entry is None:
        # Only a backend served from above runtime/ can be absent: its package was not imported in this process.
        raise DdadError(f"no runner is registered for the {backend.value} backend in this process: it is "
                        "served by the training half (install ddad-edge[train]) and joins when that is imported")
    return entry


def runner_class(entry: RunnerEntry) -> Any:
    """Import the runner class an entry names; an ImportError becomes the entry's one line where it has one."""
    module_name, _, class_name = entry.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise_if_interrupted(exc)
        if not entry.missing:
            raise
        raise DdadError(entry.missing.format(exc=exc)) from None
    return getattr(module, class_name)


def open_runner(bundle: Path | Bundle, backend: Backend | str = Backend.AUTO, **options: Any) -> Runner:
    """Open a runner for a bundle on the given backend.

    AUTO takes TensorRT when the bundle holds an engine and TensorRT imports, else ONNX Runtime. The runner's
    class comes from RUNNERS, imported only now. `unmeasured_mode=True` lets OpenVINO run an execution mode the
    bundle's export did not measure (or refused); other backends have no modes.
    """
    unmeasured_mode = bool(options.pop("unmeasured_mode", False))
    if not isinstance(bundle, Bundle):
        bundle = read_bundle(Path(bundle))
    chosen = parse_backend(backend)
    if chosen is Backend.AUTO:
        chosen = Backend.ONNXRUNTIME
        if bundle.engines:
            try:
                import tensorrt  # noqa: F401
                chosen = Backend.TENSORRT
            except ImportError:
                pass
    entry = runner_entry(chosen)
    if entry.measured_modes:
        options["unmeasured_mode"] = unmeasured_mode
    runner: Runner = runner_class(entry)(bundle, **entry.options, **options)
    return runner
