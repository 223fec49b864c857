"""Evaluation of any runner on a dataset's test split: image AUROC (with a 95 % bootstrap interval over the
test images), pixel AUROC, AUPRO, F1-max.

The same code measures a training run (through the torch runner) and a bundle (through the runner that
will be deployed), so a user measures exactly what goes to the line. Never imports torch itself.

Pixel metrics need masks: when some defective images have none, or there is no ground_truth folder, or
no mask marks a defect pixel, `evaluate_runner` says so in one line on stderr (pixel AUROC and AUPRO then use the
images that have a mask, or are NaN), and metrics.json counts `defective_without_mask`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ddad_edge.data.folders import GROUND_TRUTH, TestSample, category_dir, list_test, load_test_arrays
from ddad_edge.errors import DdadError
from ddad_edge.lazy_import import import_cv2
from ddad_edge.metrics import (
    DDAD_CROP_FRACTION,
    aupro,
    central_window,
    f1_max,
    image_auroc,
    image_auroc_interval,
    pixel_auroc,
)
from ddad_edge.overlay import heatmap_overlay
from ddad_edge.progress import Progress
from ddad_edge.runtime.base import Runner


@dataclass
class Evaluation:
    """Metrics of one evaluation (NaN where the test split cannot give them, e.g. no masks)."""

    image_auroc: float
    pixel_auroc: float
    aupro: float
    f1_max: float
    f1_threshold: float
    n_images: int
    n_defective: int
    defective_without_mask: int = 0  # left out of pixel AUROC and AUPRO
    crop: int = 0  # side of the central square of the map that was scored and measured; 0: the whole map
    # 95 % bootstrap interval of image_auroc over the test images (metrics.image_auroc_interval)
    image_auroc_low: float = math.nan
    image_auroc_high: float = math.nan
    paths: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        keys = ("image_auroc", "image_auroc_low", "image_auroc_high", "pixel_auroc", "aupro", "f1_max", "f1_threshold",
                "n_images", "n_defective", "defective_without_mask", "crop")
        return {k: getattr(self, k) for k in keys}


def check_batch(batch: int) -> None:
    """One line for a batch size that cannot split the images (before any work)."""
    if batch < 1:
        raise DdadError(f"--batch {batch}: give the number of images per batch, at least 1")


def infer_all(runner: Runner, images: np.ndarray, batch: int = 8, label: str = "inference",
              show_progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Run uint8 images (N, S, S, 3) through a runner in batches → maps (N, S, S) float32, scores (N,)."""
    maps, scores = [], []
    with Progress(label, total=len(images), enabled=show_progress) as bar:
        for i in range(0, len(images), batch):
            out = runner.infer(images[i:i + batch])
            maps.append(out.maps[:, 0])
            scores.append(out.scores)
            bar.update(min(i + batch, len(images)))
    return np.concatenate(maps), np.concatenate(scores)


def metrics_of(labels: np.ndarray, scores: np.ndarray, masks: np.ndarray, has_mask: np.ndarray,
               maps: np.ndarray) -> dict[str, float]:
    """Image- and pixel-level metrics; pixel metrics use only images whose mask is known."""
    out = {"image_auroc": image_auroc(labels, scores)}
    out["image_auroc_low"], out["image_auroc_high"] = image_auroc_interval(labels, scores)
    f1, thr = f1_max(labels, scores)
    out.update(f1_max=f1, f1_threshold=thr)
    sel = has_mask.astype(bool)
    if masks[sel].any():
        out["pixel_auroc"] = pixel_auroc(masks[sel], maps[sel])
        out["aupro"] = aupro(masks[sel], maps[sel], max_fpr=0.3)
    else:
        out["pixel_auroc"] = out["aupro"] = math.nan
    return out


def missing_masks_note(samples: list[TestSample], ground_truth: Path, shown: int = 3) -> str | None:
    """One line on the defective images without a mask, and what that does to the pixel metrics; None when
    every defective image has one."""
    defective = [s for s in samples if s.label == 1]
    missing = [s for s in defective if s.mask_path is None]
    if not missing:
        return None
    if not ground_truth.is_dir():
        return (f"pixel AUROC and AUPRO not measured: no {GROUND_TRUTH} folder in {ground_truth.parent} "
                f"(defect masks go in {GROUND_TRUTH}/<kind>/<stem>_mask.png)")
    names = ", ".join(f"{s.kind}/{s.path.name}" for s in missing[:shown]) + (", ..." if len(missing) > shown else "")
    if len(missing) == len(defective):
        return (f"none of the {len(defective)} defective images has a mask in {ground_truth} (e.g. {names}; "
                "expected <kind>/<stem>_mask.png): pixel AUROC and AUPRO not measured")
    return (f"{len(missing)} of {len(defective)} defective images have no mask in {ground_truth} ({names}): "
            f"pixel AUROC and AUPRO use the other {len(defective) - len(missing)}")


def _say_on_stderr(line: str) -> None:
    print(line, file=sys.stderr)


PROTOCOLS = ("ddad-edge", "ddad")  # how `evaluate` scores: as the line does, or as DDAD's paper did


def check_protocol(protocol: str) -> None:
    """One line for an evaluation protocol that does not exist (before any work)."""
    if protocol not in PROTOCOLS:
        raise DdadError(f"--protocol {protocol}: choose ddad-edge (the line's scoring) or ddad (DDAD's evaluation: "
                        "the central 224 of 256 px)")


def crop_for(image_size: int, protocol: str, own_crop: int = 0) -> int:
    """The central square `evaluate` measures: `own_crop` (the run's or bundle's scoring.crop, 0: the whole map)
    for the protocol "ddad-edge"; DDAD's central 224 of 256 px (the same fraction at other sizes) for "ddad"."""
    check_protocol(protocol)
    return round(image_size * DDAD_CROP_FRACTION) if protocol == "ddad" else own_crop


def crop_maps(maps: np.ndarray, crop: int) -> np.ndarray:
    """The central `crop` square of maps or masks (..., S, S); 0: unchanged."""
    if crop == 0:
        return maps
    return maps[..., central_window(maps.shape[-2], crop), central_window(maps.shape[-1], crop)]


def evaluate_runner(runner: Runner, data_root: str | Path, category: str = "", batch: int = 8,
                    show_progress: bool = True, say: Callable[[str], None] = _say_on_stderr, crop: int = 0,
                    ) -> tuple[Evaluation, np.ndarray, np.ndarray, list[TestSample]]:
    """Evaluate a runner on the test split of an MVTec-layout dataset.

    Returns the Evaluation, the test images (N, S, S, 3) uint8, their maps (N, S, S) and the samples.
    Why pixel metrics leave images out, or are NaN, goes to `say` as one line (default: stderr).
    `crop` > 0 measures the central crop×crop pixels only, as DDAD's evaluation does: each image's score is
    the maximum of that square of its map (blurred whole first, as in the graph), and the pixel metrics count
    only its pixels. The returned maps stay whole.
    """
    check_batch(batch)
    central_window(runner.image_size, crop)  # a crop larger than the map: one line before any work
    samples = list_test(data_root, category)
    labels = np.array([s.label for s in samples])
    if labels.min() == labels.max():
        raise DdadError(f"the test split of {data_root} has only {'defective' if labels[0] else 'good'} images: "
                        "AUROC needs both good and defective ones")
    ground_truth = category_dir(data_root, category) / GROUND_TRUTH
    note = missing_masks_note(samples, ground_truth)
    if note:
        say(note)
    images, labels, masks, has_mask = load_test_arrays(samples, runner.image_size)
    known = has_mask & (labels == 1)
    if known.any() and not masks[known].any():
        say(f"no mask in {ground_truth} marks a defect pixel at {runner.image_size} px: pixel AUROC and AUPRO "
            "not measured")
    maps, scores = infer_all(runner, images, batch, "evaluate", show_progress)
    if crop:
        measured = crop_maps(maps, crop)
        scores = measured.reshape(len(measured), -1).max(axis=1)
        m = metrics_of(labels, scores, crop_maps(masks, crop), has_mask, measured)
    else:
        m = metrics_of(labels, scores, masks, has_mask, maps)
    ev = Evaluation(
        image_auroc=m["image_auroc"], image_auroc_low=m["image_auroc_low"], image_auroc_high=m["image_auroc_high"],
        pixel_auroc=m["pixel_auroc"], aupro=m["aupro"], f1_max=m["f1_max"],
        f1_threshold=m["f1_threshold"], n_images=len(samples), n_defective=int(labels.sum()),
        defective_without_mask=int((~has_mask).sum()), crop=crop,
        paths=[str(s.path) for s in samples], kinds=[s.kind for s in samples], labels=[int(v) for v in labels],
        scores=[float(v) for v in scores],
    )
    return ev, images, maps, samples


def write_evaluation(ev: Evaluation, out_dir: Path, images: np.ndarray, maps: np.ndarray,
                     extra: dict | None = None, n_overlays: int = 6, json_path: Path | None = None) -> Path:
    """Write scores.csv, metrics.json and a few heatmap overlays (the highest-scoring defects and good images).

    Returns the metrics.json path (or `json_path` when given, which then also receives the metrics). Each
    file is written whole or not at all (a full disk is one DdadError line naming the file, never a
    truncated or empty file); `json_path` first, as the file asked for by name.
    """
    from ddad_edge.bundle import atomic_write_bytes

    cv2 = import_cv2("the evaluation's overlays")

    out_dir = Path(out_dir)
    payload = {**ev.summary(), **(extra or {})}
    payload = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in payload.items()}
    text = json.dumps(payload, indent=2).encode()
    if json_path is not None:
        _make_folder(Path(json_path).parent)
        atomic_write_bytes(Path(json_path), text)
    _make_folder(out_dir / "overlays")
    rows = io.StringIO(newline="")
    writer = csv.writer(rows)
    writer.writerow(["path", "kind", "label", "score"])
    for row in zip(ev.paths, ev.kinds, ev.labels, ev.scores):
        writer.writerow([row[0], row[1], row[2], f"{row[3]:.6g}"])
    atomic_write_bytes(out_dir / "scores.csv", rows.getvalue().encode())
    atomic_write_bytes(out_dir / "metrics.json", text)
    scores = np.asarray(ev.scores)
    labels = np.asarray(ev.labels)
    vmax = float(np.percentile(scores, 99)) if len(scores) else None
    picks = [i for i in np.argsort(-scores) if labels[i] == 1][: n_overlays // 2]
    picks += [i for i in np.argsort(-scores) if labels[i] == 0][: n_overlays - len(picks)]
    for i in picks:
        pair = np.concatenate([images[i], heatmap_overlay(images[i], maps[i], vmax=vmax)], axis=1)
        name = f"{ev.kinds[i]}_{Path(ev.paths[i]).stem}_score{scores[i]:.3f}.png"
        ok, png = cv2.imencode(".png", pair[:, :, ::-1])
        if ok:
            atomic_write_bytes(out_dir / "overlays" / name, png.tobytes())
    return Path(json_path) if json_path is not None else out_dir / "metrics.json"


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DdadError(f"cannot create the folder {folder}: {exc.strerror or exc}") from None


def evaluation_dict(ev: Evaluation) -> dict:
    """All fields of an Evaluation as a plain dict."""
    return asdict(ev)
