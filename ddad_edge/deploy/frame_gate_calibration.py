"""Calibrate the frame-quality gate (inspect/frame_gate.py) at export, from nominal images and their maps.

Each band is set around what the nominal images measure, wide enough that no nominal frame, and no frame
of a nominal conveyor with an empty belt in the window, falls outside it (measured on the synthetic parts:
brightness 95-100 on parts and 50 on the empty belt, sharpness 0.41-0.43 on parts and 0.55 on the belt,
0.10 after a Gaussian blur of sigma 1.5), yet narrow enough for a dark, white, blurred, over-exposed or
half-missing frame to leave it. The factors are the rule; the bands written into the manifest its result.
"""

from __future__ import annotations

import numpy as np

from ddad_edge.errors import DdadError
from ddad_edge.inspect.frame_gate import PIXEL_STATS, frame_statistics

GATE_VERSION = 1


def calibrate_frame_gate(frames: np.ndarray, maps: np.ndarray) -> dict:
    """The manifest's `frame_gate` from nominal model inputs (N, S, S, 3) uint8 and their maps (N, 1, S, S)."""
    if len(frames) == 0 or len(frames) != len(maps):
        raise DdadError("the frame-quality gate needs nominal frames with their anomaly maps to calibrate on")
    stats = [frame_statistics(f) for f in frames]
    lo = {name: min(s[name] for s in stats) for name in PIXEL_STATS}
    hi = {name: max(s[name] for s in stats) for name in PIXEL_STATS}
    medians = [float(np.median(m)) for m in maps]
    lo["map_median"], hi["map_median"] = min(medians), max(medians)
    bands = {
        "brightness": [0.25 * lo["brightness"], hi["brightness"] + 0.6 * (255.0 - hi["brightness"])],
        "contrast": [None, 3.0 * hi["contrast"]],
        "clipped": [None, hi["clipped"] + 0.05],
        "sharpness": [0.5 * lo["sharpness"], 4.0 * hi["sharpness"]],
        "flat_rows": [None, hi["flat_rows"] + 0.1],
        "map_median": [None, 4.0 * hi["map_median"] if hi["map_median"] > 0 else None],
    }
    return {"version": GATE_VERSION, "frames": int(len(frames)),
            "nominal": {name: [float(lo[name]), float(hi[name])] for name in lo},
            "bands": {name: [None if v is None else float(v) for v in band] for name, band in bands.items()}}
