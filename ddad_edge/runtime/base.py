"""The one runner interface that every backend implements, and `open_runner` to pick one.

A runner takes uint8 frames already resized to the model's size and returns the anomaly maps and
image scores computed by the bundle's single graph. The decision (score ≥ threshold) is not part of a
runner: thresholds change at run time without rebuilding anything.

`RunnerBase.infer` is written once: it checks the frames, cuts them into batches the backend takes and
joins the results; a backend implements only `_infer_batch`. Which class serves which backend, and
`open_runner`, are in runtime/backends.py: this module imports no runner and no table, so the runners can
import it without a circle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ddad_edge.errors import DdadError

INPUT_NAME = "frames"
OUTPUT_NAMES = ("anomaly_map", "score")


@dataclass(frozen=True)
class Inspection:
    """What a runner returns for a batch of N frames."""

    maps: np.ndarray  # (N, 1, H, W) float32 anomaly map
    scores: np.ndarray  # (N,) float32 image score (max of the map)


@runtime_checkable
class Runner(Protocol):
    """An inference backend for one bundle. Use it as a context manager."""

    image_size: int
    backend: str  # the Backend value that opens it: reports name runners by it, not by class name

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
    """What every runner shares: the template `infer` and the context-manager plumbing.

    A backend sets `image_size`, `backend` and, where it takes a bounded batch, `max_batch`, and implements
    `_infer_batch`; `infer` validates the frames once, calls `_infer_batch` on chunks of at most `max_batch`
    frames and concatenates the results once.
    """

    image_size: int
    backend: str  # the Backend value that opens it: reports name runners by it, not by class name
    max_batch: int = 0  # the most frames one _infer_batch call takes (0: any number)

    def infer(self, frames: np.ndarray) -> Inspection:
        """Frames (N, H, W, 3) uint8 RGB at the model's size → maps (N, 1, H, W) float32, scores (N,) float32."""
        frames = check_frames(frames, self.image_size)
        step = self.max_batch or len(frames)
        parts = [self._infer_batch(frames[i:i + step]) for i in range(0, len(frames), step)]
        if len(parts) == 1:
            return parts[0]
        return Inspection(maps=np.concatenate([p.maps for p in parts]),
                          scores=np.concatenate([p.scores for p in parts]))

    def _infer_batch(self, frames: np.ndarray) -> Inspection:
        """At most `max_batch` checked, C-contiguous frames (n, S, S, 3) uint8 → maps (n, 1, S, S), scores (n,)."""
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - overridden where there is something to free
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
