"""A synthetic dataset in the MVTec layout: machined discs on a belt, with defects and exact masks.

Nominal part: a machined metal disc (chamfered rim, a groove, a central bore, six bolt holes and a key
notch on the rim) lit from the top left, lying on a dark blue belt. Nominal images vary a little and
smoothly: a shift of up to ±1.2 % of the image, a rotation of up to ±2°, brightness ±4 %, and faint sensor
noise. Defects, always on the part:

- scratch: a thin dark line (2 px at 64 px, scaled with the size);
- hole: a dark pit where no bolt hole belongs;
- stain: a rust-coloured blob;
- missing: a bite out of the rim, where the belt shows through.

Masks are exact by construction: a defect is painted over a hard region of the clean render, and the mask
is the set of pixels whose 8-bit value differs from that clean render. Everything is drawn from one
`numpy.random.Generator` seeded by `seed`, so a seed always gives the same files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import ModuleType
from typing import Callable

import numpy as np
import yaml

from ddad_edge.errors import DdadError
from ddad_edge.lazy_import import import_cv2

_SUPERSAMPLE = 4  # geometry is drawn at 4x and area-averaged down, for smooth edges
# Nominal pose jitter: enough that no two parts are identical, small enough that a part's edges move by
# under a pixel at 64 px, so the variation stays smooth and a defect stands out against it.
_SHIFT = 0.012  # of the image side
_ROTATION_DEG = 2.0


class DefectKind(str, Enum):
    """The defects the generator paints."""

    SCRATCH = "scratch"
    HOLE = "hole"
    STAIN = "stain"
    MISSING = "missing"


@dataclass(frozen=True)
class Pose:
    """Where a part lies: centre offset in pixels, rotation in degrees, brightness gain."""

    dx: float
    dy: float
    angle_deg: float
    gain: float


@dataclass(frozen=True)
class PartImage:
    """One rendered part.

    image: (S, S, 3) uint8 RGB; clean: the same part without its defect, (S, S, 3) uint8; mask: (S, S) bool,
    True exactly where image and clean differ; alpha: (S, S) float32 in [0, 1], how much of each pixel the
    part covers after the defect (for compositing onto another background); kind: None for a nominal part.
    """

    image: np.ndarray
    clean: np.ndarray
    mask: np.ndarray
    alpha: np.ndarray
    kind: DefectKind | None


def _cv2() -> ModuleType:
    return import_cv2("the synthetic dataset")


def _downsample(x: np.ndarray, size: int) -> np.ndarray:
    return _cv2().resize(x, (size, size), interpolation=_cv2().INTER_AREA)


def render_belt(size: int, seed: int = 1234) -> np.ndarray:
    """The belt behind the parts, (size, size, 3) float32 RGB in 0..255; fixed for a seed (the same belt)."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None]
    base = np.array([38.0, 50.0, 66.0], dtype=np.float32)
    # A fine, fixed weave: low amplitude so it does not compete with the part.
    grain = rng.normal(0.0, 1.0, (max(size // 4, 2), max(size // 4, 2))).astype(np.float32)
    grain = _cv2().resize(grain, (size, size), interpolation=_cv2().INTER_CUBIC)
    shade = 1.0 + 0.10 * (0.5 - y) + 0.03 * grain
    return base[None, None, :] * shade[:, :, None]


def _part_layers(size: int, pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    """Metal colour (size, size, 3) float32 and coverage alpha (size, size) float32 of a nominal disc."""
    n = size * _SUPERSAMPLE
    c = (np.arange(n, dtype=np.float32) + 0.5) / _SUPERSAMPLE  # pixel-centre coordinates in final pixels
    x = c[None, :] - (size / 2 + pose.dx)
    y = c[:, None] - (size / 2 + pose.dy)
    r = np.sqrt(x * x + y * y) / size  # radius as a fraction of the image side
    theta = np.arctan2(y, x) - math.radians(pose.angle_deg)  # angle in the part's own frame

    rim = 0.38
    disc = r <= rim
    bore = r <= 0.075
    # Six bolt holes on a 0.27 circle, and a key notch at the rim: they rotate with the part.
    holes = np.zeros_like(disc)
    cos_a, sin_a = math.cos(math.radians(pose.angle_deg)), math.sin(math.radians(pose.angle_deg))
    xr = (x * cos_a + y * sin_a) / size  # coordinates in the part's own frame
    yr = (-x * sin_a + y * cos_a) / size
    for k in range(6):
        a = k * math.pi / 3 + math.pi / 6
        holes |= (xr - 0.27 * math.cos(a)) ** 2 + (yr - 0.27 * math.sin(a)) ** 2 <= 0.038**2
    notch = (r > rim - 0.06) & (np.abs(np.angle(np.exp(1j * (theta + math.pi / 2)))) < 0.12)
    solid = disc & ~bore & ~notch

    # Lighting from the top left, a brighter chamfer on the rim, a dark groove, concentric machining marks.
    light = 1.0 + 0.35 * (-(x + y) / (size * rim * 1.4142))
    chamfer = np.where(r > rim - 0.035, 1.18, 1.0)
    groove = np.where(np.abs(r - 0.18) < 0.012, 0.62, 1.0)
    marks = 1.0 + 0.025 * np.sin(r * size * 2.2)
    lum = light * chamfer * groove * marks
    # Bolt holes are blind: dark bottoms, not through-holes.
    lum = np.where(holes, 0.32, lum)
    metal = np.array([168.0, 166.0, 160.0], dtype=np.float32)
    rgb = lum[:, :, None].astype(np.float32) * metal[None, None, :]
    alpha = solid.astype(np.float32)
    rgb_small = _downsample(rgb * alpha[:, :, None], size)
    alpha_small = _downsample(alpha, size)
    colour = rgb_small / np.maximum(alpha_small, 1e-6)[:, :, None]
    return colour.astype(np.float32), alpha_small.astype(np.float32)


def _compose(colour: np.ndarray, alpha: np.ndarray, belt: np.ndarray, gain: float,
             noise: np.ndarray) -> np.ndarray:
    out = alpha[:, :, None] * colour * gain + (1.0 - alpha[:, :, None]) * belt
    return out + noise


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _hard(shape_ss: np.ndarray, size: int) -> np.ndarray:
    """A supersampled boolean shape as a hard final-resolution region (pixels at least half covered)."""
    return _downsample(shape_ss.astype(np.float32), size) >= 0.5


def _defect_region(kind: DefectKind, size: int, pose: Pose, rng: np.random.Generator) -> np.ndarray:
    """A supersampled boolean region of the defect, before clipping to the part."""
    cv2 = _cv2()
    n = size * _SUPERSAMPLE
    s = _SUPERSAMPLE
    cx = size / 2 + pose.dx
    cy = size / 2 + pose.dy
    canvas = np.zeros((n, n), dtype=np.uint8)
    if kind is DefectKind.SCRATCH:
        length = rng.uniform(0.28, 0.45) * size
        a = rng.uniform(0, math.pi)
        mr = rng.uniform(0.0, 0.15) * size
        ma = rng.uniform(0, 2 * math.pi)
        mx, my = cx + mr * math.cos(ma), cy + mr * math.sin(ma)
        dx, dy = 0.5 * length * math.cos(a), 0.5 * length * math.sin(a)
        # A slight bend, as a tool mark would have.
        bend = rng.uniform(-0.06, 0.06) * size
        px, py = -math.sin(a) * bend, math.cos(a) * bend
        pts = np.array([[mx - dx, my - dy], [mx + px, my + py], [mx + dx, my + dy]]) * s
        thickness = max(2, round(size / 32)) * s
        cv2.polylines(canvas, [np.rint(pts).astype(np.int32)], False, 1, thickness=thickness,
                      lineType=cv2.LINE_8)
    elif kind is DefectKind.HOLE:
        # Between the bore and the bolt circle, so a pit never merges with a bore or a bolt hole.
        radius = rng.uniform(0.045, 0.06) * size
        mr = rng.uniform(0.135, 0.17) * size
        ma = rng.uniform(0, 2 * math.pi)
        centre = np.rint(np.array([cx + mr * math.cos(ma), cy + mr * math.sin(ma)]) * s).astype(int)
        cv2.circle(canvas, tuple(int(v) for v in centre), int(round(radius * s)), 1, thickness=-1)
    elif kind is DefectKind.STAIN:
        mr = rng.uniform(0.13, 0.25) * size  # off the bore, so the blob lies on metal
        ma = rng.uniform(0, 2 * math.pi)
        bx, by = cx + mr * math.cos(ma), cy + mr * math.sin(ma)
        for _ in range(int(rng.integers(2, 5))):
            ex = bx + rng.normal(0, 0.04) * size
            ey = by + rng.normal(0, 0.04) * size
            axes = (int(round(rng.uniform(0.05, 0.10) * size * s)), int(round(rng.uniform(0.035, 0.07) * size * s)))
            cv2.ellipse(canvas, (int(round(ex * s)), int(round(ey * s))), axes, float(rng.uniform(0, 180)),
                        0, 360, 1, thickness=-1)
    elif kind is DefectKind.MISSING:
        radius = rng.uniform(0.10, 0.15) * size
        ma = rng.uniform(0, 2 * math.pi)
        rr = 0.38 * size + radius * 0.25
        centre = (int(round((cx + rr * math.cos(ma)) * s)), int(round((cy + rr * math.sin(ma)) * s)))
        cv2.circle(canvas, centre, int(round(radius * s)), 1, thickness=-1)
    return canvas.astype(bool)


def _paint(kind: DefectKind, clean: np.ndarray, belt: np.ndarray, region: np.ndarray,
           rng: np.random.Generator) -> np.ndarray:
    """The float image with the defect painted over `region` (a hard final-resolution bool region)."""
    out = clean.copy()
    if kind is DefectKind.SCRATCH:
        out[region] = clean[region] * 0.38 + 8.0
    elif kind is DefectKind.HOLE:
        # A pit: a dark fill with a little grain (shading inside the pit would be invisible at 64 px).
        out[region] = 18.0 + rng.normal(0.0, 2.0, (int(region.sum()), 1))
    elif kind is DefectKind.STAIN:
        rust = np.array([145.0, 72.0, 28.0], dtype=np.float32) * rng.uniform(0.8, 1.0)
        out[region] = 0.25 * clean[region] + 0.75 * rust
    elif kind is DefectKind.MISSING:
        out[region] = belt[region]  # the belt (with the same sensor noise) shows through
    return out


def render_part(size: int, rng: np.random.Generator, kind: DefectKind | None = None,
                belt: np.ndarray | None = None) -> PartImage:
    """One part on the belt, nominal (`kind=None`) or with one defect; see `PartImage` for the arrays."""
    if belt is None:
        belt = render_belt(size)
    pose = Pose(dx=float(rng.uniform(-_SHIFT, _SHIFT) * size), dy=float(rng.uniform(-_SHIFT, _SHIFT) * size),
                angle_deg=float(rng.uniform(-_ROTATION_DEG, _ROTATION_DEG)), gain=float(rng.uniform(0.96, 1.04)))
    colour, alpha = _part_layers(size, pose)
    noise = rng.normal(0.0, 1.2, (size, size, 3)).astype(np.float32)
    clean_f = _compose(colour, alpha, belt, pose.gain, noise)
    clean = _to_uint8(clean_f)
    if kind is None:
        return PartImage(clean, clean, np.zeros((size, size), dtype=bool), alpha, None)

    # Painted defects stay on solid metal; a missing piece also takes the half-covered rim pixels.
    allowed = alpha > 0.02 if kind is DefectKind.MISSING else alpha >= 0.5
    min_pixels = max(12, int(0.004 * size * size))
    for _ in range(50):
        region = _hard(_defect_region(kind, size, pose, rng), size) & allowed
        if region.sum() >= min_pixels:
            break
    else:  # pragma: no cover - the placements above always land on the disc
        raise RuntimeError(f"could not place a {kind.value} defect on the part")
    painted = _paint(kind, clean_f, belt + noise, region, rng)
    if kind is DefectKind.MISSING:
        alpha = np.where(region, 0.0, alpha).astype(np.float32)
    image = _to_uint8(painted)
    mask = np.any(image != clean, axis=2)
    return PartImage(image, clean, mask, alpha, kind)


def defect_kinds_for(n: int) -> list[DefectKind]:
    """`n` defect kinds, spread evenly over the kinds in a fixed order."""
    kinds = list(DefectKind)
    return [kinds[i % len(kinds)] for i in range(n)]


def _write_png(path: Path, rgb_or_gray: np.ndarray) -> None:
    cv2 = _cv2()
    img = rgb_or_gray if rgb_or_gray.ndim == 2 else cv2.cvtColor(rgb_or_gray, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", img)
    if not ok:  # pragma: no cover - encoding a uint8 array to PNG does not fail
        raise DdadError(f"cannot encode {path}")
    path.write_bytes(buf.tobytes())


def check_set_options(out: Path | str, category: str, size: int, n_train: int, n_test_good: int,
                      n_test_defect: int) -> Path:
    """The dataset folder `out/category`, or a one-line DdadError for options no synthetic set can meet."""
    if size < 32:
        raise DdadError(f"synthetic image size must be at least 32 pixels, got {size}")
    if min(n_train, n_test_good, n_test_defect) < 0 or n_train == 0:
        raise DdadError("synthetic dataset needs n_train >= 1 and non-negative test counts")
    if not category or "/" in category or category in (".", ".."):
        raise DdadError(f"category must be a plain folder name, got {category!r}")
    root = Path(out) / category
    if root.exists() and any(root.iterdir()):
        raise DdadError(f"{root} already exists and is not empty: choose another --out or delete it")
    return root


def write_synthetic_set(root: Path, render: Callable[[Enum | None], PartImage], kinds: list[Enum],
                        n_train: int, n_test_good: int, description: dict) -> dict[str, int]:
    """Write one synthetic set in the MVTec layout under `root`, drawing every image from `render`.

    `render(None)` is a nominal image, `render(kind)` one with that defect; images are drawn in file order
    (train, test/good, then the defects in `kinds` order), so a renderer driven by one seeded generator
    writes the same files for a seed. Returns the defective test images per kind; `description` (plus the
    counts) goes to synth.yaml.
    """
    (root / "train" / "good").mkdir(parents=True, exist_ok=True)
    (root / "test" / "good").mkdir(parents=True, exist_ok=True)
    for i in range(n_train):
        _write_png(root / "train" / "good" / f"{i:03d}.png", render(None).image)
    for i in range(n_test_good):
        _write_png(root / "test" / "good" / f"{i:03d}.png", render(None).image)
    counts: dict[str, int] = {}
    for kind in kinds:
        idx = counts.get(kind.value, 0)
        counts[kind.value] = idx + 1
        (root / "test" / kind.value).mkdir(parents=True, exist_ok=True)
        (root / "ground_truth" / kind.value).mkdir(parents=True, exist_ok=True)
        part = render(kind)
        _write_png(root / "test" / kind.value / f"{idx:03d}.png", part.image)
        _write_png(root / "ground_truth" / kind.value / f"{idx:03d}_mask.png", part.mask.astype(np.uint8) * 255)
    full = {**description, "train_good": n_train, "test_good": n_test_good, "test_defect": counts}
    (root / "synth.yaml").write_text(yaml.safe_dump(full, sort_keys=False))
    return counts


def make_synthetic_dataset(out: Path | str, category: str = "widget", size: int = 64, n_train: int = 200,
                           n_test_good: int = 30, n_test_defect: int = 40, seed: int = 0) -> Path:
    """Write a synthetic dataset in the MVTec layout under `out/category` and return that folder.

    Files: train/good/NNN.png, test/good/NNN.png, test/<kind>/NNN.png, ground_truth/<kind>/NNN_mask.png
    (0 / 255 masks) and synth.yaml (what was made). Images are `size`×`size` RGB PNGs (any size >= 32;
    64, 128 and 256 suit the model presets). Deterministic for a seed. This is the easy set (`ddad-edge
    synth --difficulty easy`); `data.surface` makes the hard one.
    """
    root = check_set_options(out, category, size, n_train, n_test_good, n_test_defect)
    rng = np.random.default_rng(seed)
    belt = render_belt(size, seed=seed + 1234)
    description = {
        "generator": "ddad-edge synth",
        "difficulty": "easy",
        "part": "machined disc with bore, groove, six blind bolt holes and a key notch, on a belt",
        "category": category,
        "image_size": size,
        "seed": seed,
        "nominal_variation": {"shift_fraction": _SHIFT, "rotation_deg": _ROTATION_DEG, "brightness": 0.04,
                              "noise_std": 1.2},
    }
    write_synthetic_set(root, lambda kind: render_part(size, rng, kind, belt), defect_kinds_for(n_test_defect),
                        n_train, n_test_good, description)
    return root
