"""The one runner interface that every backend implements, and `open_runner` to pick one.

A runner takes uint8 frames already resized to the model's size and returns the anomaly maps and
image scores computed by the bundle's single graph. The decision (score ≥ threshold) is not part of a
runner: thresholds change at run time without rebuilding anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ddad_edge.bundle import Bundle, read_bundle
from ddad_edge.errors import DdadError

INPUT_NAME = "frames"
OUTPUT_NAMES = ("anomaly_map", "score")


class Backend(str, Enum):
    """Inference backends. AUTO picks TensorRT where an engine for this GPU exists, else ONNX Runtime."""

    AUTO = "auto"
    TENSORRT = "tensorrt"
    ONNXRUNTIME = "onnxruntime"
    OPENVINO = "openvino"  # OpenVINO's f32 execution mode (runtime/openvino_runner.py)
    OPENVINO_BF16 = "openvino-bf16"  # the same file with every float layer in bf16 (CPUs with AVX512_BF16/AMX)
    TORCH = "torch"


@dataclass(frozen=True)
class Inspection:
    """What a runner returns for a batch of N frames."""

    maps: np.ndarray  # (N, 1, H, W) float32 anomaly map
    scores: np.ndarray  # (N,) float32 image score (max of the map)


@runtime_checkable
class Runner(Protocol):
    """An inference backend for one bundle. Use it as a context manager."""

    image_size: int

    def infer(self, frames: np.ndarray) -> Inspection:
        """Frames (N, H, W, 3) uint8 RGB at the model's size → maps (N, 1, H, W) and scores (N,)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> "Runner": ...

    def __exit__(self, *exc: object) -> None: ...


def check_frames(frames: np.ndarray, image_size: int) -> np.ndarray:
    """Validate a batch of frames for a runner; returns it C-contiguous. One-line error on mismatch."""
    if not isinstance(frames, np.ndarray):
        raise DdadError(f"frames must be a numpy array, got {type(frames).__name__}")
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise DdadError(f"frames must have shape (N, H, W, 3), got {frames.shape}")
    if frames.dtype != np.uint8:
        raise DdadError(f"frames must be uint8, got {frames.dtype}")
    if frames.shape[0] == 0:
        raise DdadError("frames batch is empty")
    if frames.shape[1] != image_size or frames.shape[2] != image_size:
        raise DdadError(f"frames are {frames.shape[2]}x{frames.shape[1]}, the model takes "
                        f"{image_size}x{image_size}: resize (or set the ROI) before inference")
    return np.ascontiguousarray(frames)


class RunnerBase:
    """Context-manager plumbing shared by the runners."""

    image_size: int
    backend: str  # the Backend value that opens it: reports name runners by it, not by class name

    def close(self) -> None:  # pragma: no cover - overridden where there is something to free
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_runner(bundle: Path | Bundle, backend: Backend | str = Backend.AUTO, **options) -> Runner:
    """Open a runner for a bundle on the given backend.

    AUTO takes TensorRT when the bundle holds an engine and TensorRT imports, else ONNX Runtime.
    The torch reference runner is imported lazily, only when asked for. `unmeasured_mode=True` lets OpenVINO
    run an execution mode the bundle's export did not measure (or refused); other backends have no modes.
    """
    unmeasured_mode = bool(options.pop("unmeasured_mode", False))
    if not isinstance(bundle, Bundle):
        bundle = read_bundle(Path(bundle))
    try:
        backend = Backend(backend)
    except ValueError:
        raise DdadError(f"unknown backend {backend!r}: choose one of "
                        f"{', '.join(b.value for b in Backend)}") from None
    if backend is Backend.AUTO:
        backend = Backend.ONNXRUNTIME
        if bundle.engines:
            try:
                import tensorrt  # noqa: F401
                backend = Backend.TENSORRT
            except ImportError:
                pass
    if backend is Backend.ONNXRUNTIME:
        from ddad_edge.runtime.onnx_runner import OnnxRunner

        return OnnxRunner(bundle, **options)
    if backend is Backend.TENSORRT:
        from ddad_edge.runtime.trt_runner import TensorRTRunner

        return TensorRTRunner(bundle, **options)
    if backend in (Backend.OPENVINO, Backend.OPENVINO_BF16):
        from ddad_edge.runtime.openvino_runner import OpenVinoRunner

        precision = "bf16" if backend is Backend.OPENVINO_BF16 else "f32"
        return OpenVinoRunner(bundle, precision=precision, unmeasured_mode=unmeasured_mode, **options)
    import importlib

    try:
        module = importlib.import_module("ddad_edge.model.runner")
    except ImportError as exc:
        raise DdadError(f"the torch backend needs torch ({exc}); install ddad-edge[train]") from None
    return module.TorchRunner(bundle, **options)
