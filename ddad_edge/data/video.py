"""A synthetic conveyor video: parts from the synthetic generator sliding across a belt, with ground truth.

Parts enter on the left, move right at a constant speed and leave on the right; at most a few are in view
at once. The video is written with OpenCV (MJPG in .avi, the codec every pip OpenCV build can write and read)
and the ground truth of every frame (which parts are in view, where, and whether they are defective) is
returned and saved as JSON next to it, so the inspection loop can be scored frame by frame.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from ddad_edge.data.synth import DefectKind, defect_kinds_for, render_belt, render_part
from ddad_edge.errors import DdadError
from ddad_edge.lazy_import import import_cv2


def _cv2() -> ModuleType:
    return import_cv2("the conveyor video")


@dataclass(frozen=True)
class PartTruth:
    """One part on the belt: its index in order of arrival, whether it is defective, and which defect."""

    index: int
    defective: bool
    kind: str  # "good" or a DefectKind value


@dataclass(frozen=True)
class PartInView:
    """A part visible in one frame: its index and bounding box in pixels (x, y, w, h, clipped to the frame).

    `complete` is True when the whole part tile lies inside the frame.
    """

    index: int
    box: tuple[int, int, int, int]
    complete: bool


@dataclass(frozen=True)
class ConveyorTruth:
    """The ground truth of a conveyor video: its parts and, for each frame, the parts in view."""

    video: str
    size: tuple[int, int]  # (width, height) in pixels
    fps: float
    part_size: int
    speed_px_per_frame: float
    parts: list[PartTruth]
    frames: list[list[PartInView]]

    def to_json(self) -> str:
        """The ground truth as JSON text (boxes as [x, y, w, h])."""
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> ConveyorTruth:
        """Read back what `to_json` wrote."""
        d = json.loads(text)
        return cls(
            video=d["video"], size=tuple(d["size"]), fps=d["fps"], part_size=d["part_size"],
            speed_px_per_frame=d["speed_px_per_frame"],
            parts=[PartTruth(**p) for p in d["parts"]],
            frames=[[PartInView(v["index"], tuple(v["box"]), v["complete"]) for v in f] for f in d["frames"]],
        )


def _belt_strip(width: int, height: int, seed: int) -> np.ndarray:
    """The belt as (height, width, 3) float32 RGB: the synthetic belt texture tiled, with side rails."""
    tile = render_belt(height, seed=seed)
    reps = -(-width // height)
    belt = np.concatenate([tile] * reps, axis=1)[:, :width].copy()
    rail = max(2, height // 24)
    belt[:rail] = (90.0, 92.0, 96.0)
    belt[-rail:] = (90.0, 92.0, 96.0)
    return belt


def _plan_parts(n_parts: int, defect_rate: float, rng: np.random.Generator) -> list[PartTruth]:
    n_bad = int(round(n_parts * defect_rate))
    bad = set(rng.choice(n_parts, size=n_bad, replace=False).tolist()) if n_bad else set()
    kinds = iter(defect_kinds_for(n_bad))
    return [PartTruth(i, i in bad, next(kinds).value if i in bad else "good") for i in range(n_parts)]


def make_conveyor_video(out_path: Path | str, n_parts: int = 8, defect_rate: float = 0.25,
                        size: tuple[int, int] = (320, 240), fps: float = 15.0, part_size: int = 64,
                        pitch: int | None = None, speed: float = 8.0, seed: int = 0) -> ConveyorTruth:
    """Write an MJPG .avi of `n_parts` parts crossing a belt and return (and save) its ground truth.

    size: (width, height) in pixels; parts are `part_size` px tiles moving `speed` px per frame, `pitch` px
    apart (default: half the width), centred vertically. About `defect_rate` of the parts are defective,
    with kinds spread evenly. The ground truth goes to `out_path` with the suffix `.json`.
    """
    cv2 = _cv2()
    out_path = Path(out_path)
    width, height = size
    if out_path.suffix.lower() != ".avi":
        raise DdadError(f"conveyor video must be an .avi file (MJPG), got {out_path}")
    if n_parts < 1 or not 0.0 <= defect_rate <= 1.0 or speed <= 0:
        raise DdadError("conveyor video needs n_parts >= 1, 0 <= defect_rate <= 1 and speed > 0")
    if part_size > height or part_size > width:
        raise DdadError(f"part size {part_size} px does not fit a {width}x{height} frame")
    pitch = pitch or width // 2
    if pitch < part_size:
        raise DdadError(f"pitch {pitch} px is smaller than the part size {part_size} px: parts would overlap")
    rng = np.random.default_rng(seed)
    parts = _plan_parts(n_parts, defect_rate, rng)
    belt = _belt_strip(width, height, seed + 1234)
    tile_belt = render_belt(part_size, seed=seed + 1234)
    rendered = [render_part(part_size, rng, DefectKind(p.kind) if p.defective else None, tile_belt)
                for p in parts]

    # Part i's left edge at frame f is f*speed - part_size - i*pitch: it starts just out of view.
    n_frames = int(np.ceil((width + part_size + (n_parts - 1) * pitch) / speed)) + 1
    y0 = (height - part_size) // 2
    out_path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(out_path), cv2.VideoWriter_fourcc(*"MJPG"), float(fps), (width, height))
    if not writer.isOpened():
        raise DdadError(f"OpenCV cannot write an MJPG video to {out_path}")
    frames: list[list[PartInView]] = []
    try:
        for f in range(n_frames):
            frame = belt.copy()
            in_view: list[PartInView] = []
            for p, part in zip(parts, rendered):
                x0 = int(round(f * speed)) - part_size - p.index * pitch
                lo, hi = max(x0, 0), min(x0 + part_size, width)
                if hi <= lo:
                    continue
                a = part.alpha[:, lo - x0:hi - x0, None]
                region = frame[y0:y0 + part_size, lo:hi]
                frame[y0:y0 + part_size, lo:hi] = a * part.image[:, lo - x0:hi - x0] + (1.0 - a) * region
                in_view.append(PartInView(p.index, (lo, y0, hi - lo, part_size), lo == x0 and hi == x0 + part_size))
            frames.append(in_view)
            bgr = cv2.cvtColor(np.clip(np.rint(frame), 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
            writer.write(bgr)
    finally:
        writer.release()
    truth = ConveyorTruth(str(out_path.name), (width, height), float(fps), part_size, float(speed), parts, frames)
    out_path.with_suffix(".json").write_text(truth.to_json())
    return truth


def write_frames_folder(video: Path | str, out_dir: Path | str) -> list[Path]:
    """Decode a video into numbered PNG frames (`000000.png`, ...) in `out_dir`; returns their paths."""
    cv2 = _cv2()
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise DdadError(f"cannot open video {video}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            path = out_dir / f"{len(paths):06d}.png"
            if not cv2.imwrite(str(path), frame):
                raise DdadError(f"cannot write frame {path}")
            paths.append(path)
    finally:
        cap.release()
    return paths
