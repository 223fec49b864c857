"""The hard synthetic set: a woven textured surface with subtle defects and exact masks.

The easy set (`data.synth`: dark pits, rust blobs and bites out of a disc on a belt) is separated perfectly by
a few minutes of training, so it cannot show what fewer steps, INT8 or a smaller backbone cost. This set is
made to be hard on purpose, like MVTec's texture categories: the whole image is a woven surface whose every
nominal image differs in ways the model cannot predict (the weave's phase and angle, a random fibre grain,
the lighting), and its defects are small against that variation:

- stain: a low-contrast tinted blob (a few grey levels);
- scratch: a thin light line, one pixel wide at 64 px;
- missing: a small hole in the weave where the flat backing shows;
- texture: a patch woven across the grain (the weave turned), same colour and same amplitude on average.

`strength` scales every defect's contrast (`HARD_STRENGTH` is the hard set's; see benchmarks/README.md for
how it is to be calibrated). Masks are exact: the mask is the painted region, and
every pixel in it differs from the clean render in its 8-bit value (a pixel the defect would change by less
than half a level is nudged by one level), so the mask is also exactly where image and clean differ.
Everything comes from one `numpy.random.Generator`, so a seed gives the same files, and `strength` changes
no draw: the nominal images of a seed are the same at every strength.
"""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path

import numpy as np

from ddad_edge.data.synth import PartImage, _cv2, _hard, _to_uint8, check_set_options, write_synthetic_set
from ddad_edge.errors import DdadError

# Calibrated so that the tiny preset's 10-step FP32 teacher, trained as benchmarks/fidelity_bundles.py trains
# it (800 steps), scores between 0.85 and 0.95 image AUROC: 0.901 [0.846, 0.945] at 1.15 with pixel scoring,
# 0.834 at 1.0, 0.930 at 1.25 (benchmarks/calibrate_hard_set.py; the table is in benchmarks/README.md).
HARD_STRENGTH = 1.15
_SUPERSAMPLE = 4  # defect geometry is drawn at 4x and thresholded down, as in data.synth
_PERIOD = 8.0 / 64  # weave period, as a fraction of the image side
_ROTATION_DEG = 4.0  # nominal angle jitter of the weave
_BASE = np.array([150.0, 128.0, 98.0], dtype=np.float32)  # a tan fabric, mid-range so defects never clip


class SurfaceDefect(str, Enum):
    """The defects of the hard set."""

    STAIN = "stain"
    SCRATCH = "scratch"
    MISSING = "missing"
    TEXTURE = "texture"


def _weave(u: np.ndarray, v: np.ndarray, period: float, phase: tuple[float, float]) -> np.ndarray:
    """Relative luminance of a plain weave (mean 0, about ±0.15) at coordinates u, v in pixels along and
    across the threads."""
    a = 2 * math.pi * u / period + phase[0]
    b = 2 * math.pi * v / period + phase[1]
    return 0.10 * np.sin(a) * np.sin(b) + 0.05 * np.sin(a + b)


def _coords(size: int, angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (size, size) rotated by `angle_deg` about the image centre."""
    c = np.arange(size, dtype=np.float32) + 0.5 - size / 2
    x, y = c[None, :], c[:, None]
    ca, sa = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    return x * ca + y * sa, -x * sa + y * ca


def _grain(size: int, rng: np.random.Generator) -> np.ndarray:
    """Random fibre grain (size, size), std about 1: new for every image, so no model can predict it."""
    cv2 = _cv2()
    g = rng.normal(0.0, 1.0, (max(size // 2, 2), max(size // 2, 2))).astype(np.float32)
    g = cv2.resize(g, (size, size), interpolation=cv2.INTER_CUBIC)
    return g / max(float(g.std()), 1e-6)


def _region(kind: SurfaceDefect, size: int, rng: np.random.Generator) -> np.ndarray:
    """A hard (size, size) bool region of a defect, away from the image border."""
    cv2 = _cv2()
    s = _SUPERSAMPLE
    canvas = np.zeros((size * s, size * s), dtype=np.uint8)
    cx, cy = rng.uniform(0.25, 0.75, 2) * size
    if kind is SurfaceDefect.STAIN:
        for _ in range(int(rng.integers(1, 4))):
            ex, ey = cx + rng.normal(0, 0.03) * size, cy + rng.normal(0, 0.03) * size
            axes = (int(round(rng.uniform(0.05, 0.09) * size * s)), int(round(rng.uniform(0.035, 0.06) * size * s)))
            cv2.ellipse(canvas, (int(round(ex * s)), int(round(ey * s))), axes, float(rng.uniform(0, 180)),
                        0, 360, 1, thickness=-1)
    elif kind is SurfaceDefect.SCRATCH:
        length = rng.uniform(0.25, 0.4) * size
        a = rng.uniform(0, math.pi)
        dx, dy = 0.5 * length * math.cos(a), 0.5 * length * math.sin(a)
        bend = rng.uniform(-0.04, 0.04) * size
        px, py = -math.sin(a) * bend, math.cos(a) * bend
        pts = np.array([[cx - dx, cy - dy], [cx + px, cy + py], [cx + dx, cy + dy]]) * s
        thickness = max(1, round(size / 64)) * s  # one pixel at 64 px
        cv2.polylines(canvas, [np.rint(pts).astype(np.int32)], False, 1, thickness=thickness, lineType=cv2.LINE_8)
    elif kind is SurfaceDefect.MISSING:
        radius = rng.uniform(0.03, 0.045) * size
        cv2.circle(canvas, (int(round(cx * s)), int(round(cy * s))), int(round(radius * s)), 1, thickness=-1)
    elif kind is SurfaceDefect.TEXTURE:
        axes = (int(round(rng.uniform(0.08, 0.12) * size * s)), int(round(rng.uniform(0.06, 0.09) * size * s)))
        cv2.ellipse(canvas, (int(round(cx * s)), int(round(cy * s))), axes, float(rng.uniform(0, 180)),
                    0, 360, 1, thickness=-1)
    return _hard(canvas.astype(bool), size)


def render_surface(size: int, rng: np.random.Generator, kind: SurfaceDefect | None = None,
                   strength: float = HARD_STRENGTH) -> PartImage:
    """One image of the woven surface, nominal (`kind=None`) or with one defect of contrast `strength`.

    Returns a `data.synth.PartImage` (image, clean, mask as there; alpha is all ones: the surface fills the
    image). Nominal variation: weave phase (any shift), angle ±4°, brightness ±4 %, a lighting slope of up
    to 6 % across the image, fibre grain of about 2.5 % and sensor noise of 1.5 grey levels.
    """
    angle = float(rng.uniform(-_ROTATION_DEG, _ROTATION_DEG))
    phase = (float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(0, 2 * math.pi)))
    gain = float(rng.uniform(0.96, 1.04))
    slope_dir = float(rng.uniform(0, 2 * math.pi))
    period = _PERIOD * size
    u, v = _coords(size, angle)
    weave = _weave(u, v, period, phase)
    x, y = _coords(size, math.degrees(slope_dir))
    light = 1.0 + 0.06 * x / size
    grain = 0.025 * _grain(size, rng)
    noise = rng.normal(0.0, 1.5, (size, size, 3)).astype(np.float32)
    lum = gain * light * (1.0 + weave + grain)
    clean_f = lum[:, :, None] * _BASE[None, None, :] + noise
    clean = _to_uint8(clean_f)
    alpha = np.ones((size, size), dtype=np.float32)
    if kind is None:
        return PartImage(clean, clean, np.zeros((size, size), dtype=bool), alpha, None)

    min_pixels = max(4, int(0.002 * size * size))  # a defect nobody could see at all is not a defect
    for _ in range(50):
        region = _region(kind, size, rng)
        if region.sum() >= min_pixels:
            break
    else:  # pragma: no cover - every kind's smallest draw covers more than min_pixels at sizes >= 32
        raise RuntimeError(f"could not place a {kind.value} defect")
    painted = clean_f.copy()
    if kind is SurfaceDefect.STAIN:
        # A faint brownish tint: a few levels darker, a little more so in blue.
        tint = np.array([0.05, 0.06, 0.09], dtype=np.float32) * strength
        painted[region] = clean_f[region] * (1.0 - tint)
    elif kind is SurfaceDefect.SCRATCH:
        painted[region] = clean_f[region] + 24.0 * strength  # scuffed fibres catch the light
    elif kind is SurfaceDefect.MISSING:
        # The backing shows through: flat (no weave, no grain), a little darker than the surface around.
        backing = gain * light[region] * (1.0 - 0.15 * strength)
        painted[region] = backing[:, None] * _BASE[None, :] + noise[region]
    elif kind is SurfaceDefect.TEXTURE:
        # The same weave turned by 45-90 degrees: the same colour and amplitude, a different pattern.
        turn = float(rng.uniform(45.0, 90.0)) * float(rng.choice([-1.0, 1.0]))
        u2, v2 = _coords(size, angle + turn)
        other = _weave(u2, v2, period, phase)
        delta = (strength * (other - weave))[region]
        painted[region] = clean_f[region] + (gain * light[region] * delta)[:, None] * _BASE[None, :]
    image = _to_uint8(painted)
    # Exact masks: a pixel of the region that rounding left unchanged is moved by one level, away from 255.
    same = region & ~np.any(image != clean, axis=2)
    image[same] = np.where(clean[same] < 255, clean[same] + 1, clean[same] - 1)
    mask = np.any(image != clean, axis=2)
    return PartImage(image, clean, mask, alpha, kind)


def surface_kinds_for(n: int) -> list[SurfaceDefect]:
    """`n` defect kinds, spread evenly over the kinds in a fixed order."""
    kinds = list(SurfaceDefect)
    return [kinds[i % len(kinds)] for i in range(n)]


def make_surface_dataset(out: Path | str, category: str = "widget", size: int = 64, n_train: int = 200,
                         n_test_good: int = 30, n_test_defect: int = 40, seed: int = 0,
                         strength: float = HARD_STRENGTH) -> Path:
    """Write the hard set in the MVTec layout under `out/category` and return that folder.

    The same files and checks as `data.synth.make_synthetic_dataset` (test kinds: stain, scratch, missing,
    texture); synth.yaml records `difficulty: hard` and the strength. Deterministic for a seed.
    """
    if not strength > 0:
        raise DdadError(f"defect strength must be above 0, got {strength}")
    root = check_set_options(out, category, size, n_train, n_test_good, n_test_defect)
    rng = np.random.default_rng(seed)
    description = {
        "generator": "ddad-edge synth --difficulty hard",
        "difficulty": "hard",
        "part": "woven textured surface filling the image (no part outline)",
        "category": category,
        "image_size": size,
        "seed": seed,
        "defect_strength": strength,
        "nominal_variation": {"weave_phase": "any", "rotation_deg": _ROTATION_DEG, "brightness": 0.04,
                              "lighting_slope": 0.06, "grain": 0.025, "noise_std": 1.5},
    }
    write_synthetic_set(root, lambda kind: render_surface(size, rng, kind, strength), surface_kinds_for(n_test_defect),
                        n_train, n_test_good, description)
    return root
