"""TensorRT's legacy implicit INT8 calibration, for TensorRT 8.6-10.x only.

The usual INT8 path puts Q/DQ nodes in the ONNX file at export. This legacy path instead lets
TensorRT pick INT8 scales for an FP32 bundle by running nominal frames through the network
(IInt8EntropyCalibrator2); the resulting calibration cache is written into the bundle so a rebuild does
not calibrate again. TensorRT 11 removed the calibrators, so there it is refused with one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ddad_edge.bundle import Bundle, atomic_write_bytes, load_arrays
from ddad_edge.errors import DdadError
from ddad_edge.runtime.cuda_api import CudaApi
from ddad_edge.runtime.trt_compat import ApiFamily, TrtVersion, api_path

CALIBRATION_CACHE_NAME = "calibration.cache"
CALIBRATION_FRAMES_NAME = "calibration.npz"


def refuse_on_trt11(version: TrtVersion) -> None:
    """One line for TensorRT 11+, which has no implicit INT8 calibration."""
    if not version.has_legacy_calibration:
        raise DdadError(f"TensorRT {version} removed implicit INT8 calibration (IInt8EntropyCalibrator2): "
                        "export an INT8 bundle with Q/DQ nodes (ddad-edge export --precision int8) "
                        "and build it with precision: bundle")


def load_calibration_frames(bundle: Bundle) -> np.ndarray:
    """Nominal frames (N, H, W, 3) uint8 for the legacy calibrator, from the bundle.

    The file is named by `calibration_frames: {file: ...}` in the manifest (default calibration.npz) and
    holds an array `frames`.
    """
    entry = bundle.manifest.get("calibration_frames") or {}
    name = entry.get("file", CALIBRATION_FRAMES_NAME) if isinstance(entry, dict) else CALIBRATION_FRAMES_NAME
    path = bundle.file(name)
    if not path.is_file():
        raise DdadError(f"bundle {bundle.path} has no {name} with calibration frames for TensorRT's "
                        "legacy INT8 calibration: export an INT8 (Q/DQ) bundle instead, or export with "
                        "calibration frames")
    frames = load_arrays(path, ("frames",))["frames"]  # no pickle: a pickled member is one line
    size = bundle.image_size
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (size, size, 3):
        raise DdadError(f"{path}: 'frames' must be (N, {size}, {size}, 3) uint8, got {frames.shape} "
                        f"{frames.dtype}")
    return frames


@api_path(ApiFamily.TRT8, ApiFamily.TRT10)
def make_entropy_calibrator(trt: Any, cuda: CudaApi, frames: np.ndarray, batch_size: int,
                            cache_path: Path) -> Any:
    """An IInt8EntropyCalibrator2 that feeds `frames` (N, H, W, 3) uint8 in batches of `batch_size`.

    Batches go through one pinned host buffer and one device buffer; a last partial batch is dropped
    (TensorRT wants full batches). The cache is read from and written to `cache_path`.
    """
    if len(frames) < batch_size:
        raise DdadError(f"legacy INT8 calibration needs at least {batch_size} frames "
                        f"(calibration_batch), the bundle has {len(frames)}")
    calibrator_base = trt.IInt8EntropyCalibrator2
    host = cuda.pinned_empty((batch_size, *frames.shape[1:]), np.uint8)
    device = cuda.device_alloc(host.nbytes)

    class EntropyCalibrator(calibrator_base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            calibrator_base.__init__(self)  # pybind11 needs the base initialised explicitly
            self.batches_served = 0

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            start = self.batches_served * batch_size
            if start + batch_size > len(frames):
                return None
            host[...] = frames[start:start + batch_size]
            cuda.copy_to_device(device, host)
            cuda.synchronize()
            self.batches_served += 1
            return [device]

        def read_calibration_cache(self) -> bytes | None:
            return cache_path.read_bytes() if cache_path.is_file() else None

        def write_calibration_cache(self, cache: Any) -> None:
            atomic_write_bytes(cache_path, bytes(cache))

    return EntropyCalibrator()


@api_path(ApiFamily.TRT8, ApiFamily.TRT10)
def attach_calibrator(trt: Any, builder: Any, config: Any, calibrator: Any, input_name: str,
                      shape: tuple[int, ...]) -> None:
    """Turn on INT8 with the legacy calibrator; calibration runs at the fixed input `shape`."""
    config.set_flag(trt.BuilderFlag.INT8)
    config.int8_calibrator = calibrator
    # Explicit-batch networks calibrate at the calibration profile's shape, so it is fixed to one batch.
    profile = builder.create_optimization_profile()
    profile.set_shape(input_name, shape, shape, shape)
    config.set_calibration_profile(profile)
