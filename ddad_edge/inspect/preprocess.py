"""From camera frames to the model's input: region of interest, resize, batch.

Everything else a frame goes through (normalisation, noise, sampling, scoring) is inside the exported
graph; the loop only crops the part out of the frame and resizes it to the model's square input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ddad_edge.errors import DdadError
from ddad_edge.lazy_import import import_cv2


@dataclass(frozen=True)
class Roi:
    """A rectangle of the camera frame in pixels: left `x`, top `y`, width `w`, height `h`."""

    x: int
    y: int
    w: int
    h: int

    @classmethod
    def parse(cls, text: str) -> "Roi":
        """`x,y,w,h` in pixels, as given to `--roi`."""
        try:
            x, y, w, h = (int(v) for v in text.split(","))
        except ValueError:
            raise DdadError(f"--roi must be x,y,w,h in pixels (for example 100,40,512,512), got {text!r}") from None
        if x < 0 or y < 0 or w <= 0 or h <= 0:
            raise DdadError(f"--roi {text}: x and y must be >= 0, width and height > 0")
        return cls(x, y, w, h)

    def fits(self, height: int, width: int) -> bool:
        return self.x + self.w <= width and self.y + self.h <= height


class Preprocessor:
    """Crops the ROI (if any) and resizes to `image_size` x `image_size` with area interpolation."""

    def __init__(self, image_size: int, roi: Roi | None = None) -> None:
        self._cv2 = import_cv2()
        self.image_size = image_size
        self.roi = roi

    def check(self, image: np.ndarray) -> str | None:
        """Why `image` cannot be prepared (a fault reason), or None when it can."""
        if not isinstance(image, np.ndarray):
            return f"frame is a {type(image).__name__}, expected a (H, W, 3) uint8 array"
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or image.size == 0:
            return f"frame has shape {image.shape} {image.dtype}, expected (H, W, 3) uint8 with H, W > 0"
        if self.roi and not self.roi.fits(image.shape[0], image.shape[1]):
            r = self.roi
            return (f"ROI {r.x},{r.y},{r.w},{r.h} does not fit in the {image.shape[1]}x{image.shape[0]} frame")
        return None

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB frame → (S, S, 3) uint8 RGB model input (S = image_size)."""
        if self.roi:
            r = self.roi
            image = image[r.y:r.y + r.h, r.x:r.x + r.w]
        s = self.image_size
        if image.shape[0] == s and image.shape[1] == s:
            return np.ascontiguousarray(image)
        # INTER_AREA when shrinking: no aliasing, which the model would read as texture.
        shrinking = image.shape[0] > s or image.shape[1] > s
        interp = self._cv2.INTER_AREA if shrinking else self._cv2.INTER_LINEAR
        return self._cv2.resize(image, (s, s), interpolation=interp)

    def prepare_batch(self, images: list[np.ndarray]) -> np.ndarray:
        """A list of frames → (N, S, S, 3) uint8 batch for a runner."""
        s = self.image_size
        batch = np.empty((len(images), s, s, 3), dtype=np.uint8)
        for i, image in enumerate(images):
            batch[i] = self.prepare(image)
        return batch
