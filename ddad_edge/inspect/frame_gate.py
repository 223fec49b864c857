"""The frame-quality gate: a frame nothing like the nominal ones is a FAULT with its reason, never a verdict.

A dead lamp, a lens cap, an exposure fault, a lost focus or a frame damaged on its way (a JPEG cut short
by a flaky link decodes without an error, its missing part grey) still gets a score, and that score can
be under the threshold: the station would pass parts it cannot see. Export measures on the nominal images
what such frames change (`frame_statistics`) and records bands around them in the manifest (`frame_gate`,
made by deploy/frame_gate_calibration.py); the loop checks every model input against them before inference,
and the anomaly map's median after it. All numpy, on the S x S model input: microseconds a frame.

  brightness     mean grey level (0-255): a dark or a white frame
  contrast       grey standard deviation: below 1 grey level the frame shows nothing at all
  clipped        share of pixels at 0-3 or 252-255: over- or under-exposure
  sharpness      mean |Laplacian| / contrast: blur lowers it whatever the lighting
  flat_rows      share of rows with no variation (range <= 2 levels): a decoder's fill of missing data
  map_median     median of the anomaly map: high everywhere means nothing in view looks like a nominal part
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ddad_edge.errors import DdadError

MIN_CONTRAST = 1.0  # grey levels; not calibrated: a frame below it shows nothing, whatever the nominal ones
PIXEL_STATS = ("brightness", "contrast", "clipped", "sharpness", "flat_rows")


def frame_statistics(image: np.ndarray) -> dict[str, float]:
    """The gate's pixel statistics of one (S, S, 3) uint8 RGB model input."""
    grey = image.astype(np.float32).mean(axis=2)  # (S, S)
    contrast = float(grey.std())
    laplacian = np.abs(4 * grey[1:-1, 1:-1] - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:])
    row_range = image.max(axis=(1, 2)).astype(np.int16) - image.min(axis=(1, 2)).astype(np.int16)
    return {"brightness": float(grey.mean()), "contrast": contrast,
            "clipped": float(((grey <= 3) | (grey >= 252)).mean()),
            "sharpness": float(laplacian.mean()) / max(contrast, MIN_CONTRAST),
            "flat_rows": float((row_range <= 2).mean())}


@dataclass(frozen=True)
class FrameGate:
    """Bands for each statistic (None: no bound on that side), from a bundle's manifest `frame_gate`."""

    bands: dict[str, tuple[float | None, float | None]]

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> "FrameGate | None":
        """The bundle's gate, or None for a bundle exported before the gate existed (the loop says so)."""
        entry = manifest.get("frame_gate")
        if entry is None:
            return None
        bands = {}
        try:
            for name, band in dict(entry["bands"]).items():
                lo, hi = (None if v is None else float(v) for v in band)
                if any(v is not None and not math.isfinite(v) for v in (lo, hi)):
                    raise ValueError(name)
                bands[str(name)] = (lo, hi)
        except (KeyError, TypeError, ValueError):
            raise DdadError("the bundle's frame_gate in manifest.yaml is not a mapping of bands [low, high]; "
                            "export the bundle again") from None
        return cls(bands)

    def _judge(self, stats: dict[str, float]) -> str:
        for name, value in stats.items():
            lo, hi = self.bands.get(name, (None, None))
            if lo is not None and value < lo:
                return f"frame quality: {name} {value:.3g} below the nominal band's {lo:.3g}{_HINT[name][0]}"
            if hi is not None and value > hi:
                return f"frame quality: {name} {value:.3g} above the nominal band's {hi:.3g}{_HINT[name][1]}"
        return ""

    def check_pixels(self, image: np.ndarray) -> str:
        """'' for a model input (S, S, 3) uint8 within every band, else the FAULT reason."""
        stats = frame_statistics(image)
        if stats["contrast"] < MIN_CONTRAST:
            return (f"frame quality: contrast {stats['contrast']:.3g} grey levels, the frame shows nothing "
                    f"(brightness {stats['brightness']:.0f}: {_flat_cause(stats['brightness'])})")
        return self._judge(stats)

    def check_map(self, anomaly_map: np.ndarray) -> str:
        """'' for an anomaly map (1, S, S) whose median is within its band, else the FAULT reason."""
        return self._judge({"map_median": float(np.median(anomaly_map))})


def _flat_cause(brightness: float) -> str:
    if brightness < 40:
        return "a dead lamp, a lens cap or no signal"
    if brightness > 215:
        return "over-exposed or a white frame"
    return "a uniform frame: no image from the camera"


# What a value outside each band usually means on a line: (below, above).
_HINT = {
    "brightness": (": too dark (lamp, lens cap, exposure)", ": too bright (exposure, stray light)"),
    "contrast": (": washed out or fogged", ": not a scene like the nominal ones"),
    "clipped": ("", ": over- or under-exposed"),
    "sharpness": (": blurred (focus, vibration, a dirty lens)", ": noise or a damaged frame"),
    "flat_rows": ("", ": part of the frame is missing (a damaged or cut-short frame)"),
    "map_median": ("", ": nothing in view looks like a nominal part"),
}
