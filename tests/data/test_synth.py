"""The synthetic dataset: exact masks, visible defects, small nominal variation, determinism, MVTec layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from ddad_edge.data.folders import list_test, list_train, load_mask, load_test_arrays
from ddad_edge.data.synth import DefectKind, make_synthetic_dataset, render_belt, render_part
from ddad_edge.errors import DdadError


@pytest.mark.parametrize("kind", list(DefectKind))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mask_is_exactly_where_the_image_differs_from_the_defect_free_render(kind, seed):
    belt = render_belt(64)
    # The same seed draws the same pose and noise before the defect, so a nominal render is the clean part.
    nominal = render_part(64, np.random.default_rng(seed), None, belt)
    part = render_part(64, np.random.default_rng(seed), kind, belt)
    assert np.array_equal(part.clean, nominal.image)
    differs = np.any(part.image != nominal.image, axis=2)
    assert np.array_equal(part.mask, differs)
    assert part.mask.sum() >= 16  # at least 0.4 % of the image
    if kind is not DefectKind.MISSING:
        assert (nominal.alpha[part.mask] >= 0.5).all()  # painted defects lie on solid metal
    else:
        assert (part.alpha[part.mask] == 0).all() and (nominal.alpha[part.mask] > 0).all()


@pytest.mark.parametrize("kind", list(DefectKind))
def test_defects_stand_out_against_nominal_variation(kind):
    rng = np.random.default_rng(10)
    belt = render_belt(64)
    nominal = np.stack([render_part(64, rng, None, belt).image for _ in range(30)]).astype(np.float64)
    mean = nominal.mean(axis=0)
    # Nominal variation is small: a typical nominal pixel stays within a few grey levels of the mean part.
    assert np.median(np.abs(nominal - mean)) < 6.0
    contrasts = []
    for _ in range(6):
        part = render_part(64, rng, kind, belt)
        change = np.abs(part.image.astype(np.float64) - part.clean).max(axis=2)  # largest channel change
        contrasts.append(change[part.mask].mean())
    assert min(contrasts) > 50.0  # mean change inside the mask, in grey levels


def test_nominal_parts_vary_a_little():
    belt = render_belt(64)
    parts = [render_part(64, np.random.default_rng(i), None, belt).image.astype(int) for i in range(11)]
    diffs = [np.abs(a - b).mean() for a, b in zip(parts, parts[1:])]
    assert min(diffs) > 1.0  # no two parts alike (sensor noise alone gives about 1.4)
    assert np.mean(diffs) < 10.0  # brightness ±4 % and sub-pixel pose moves, no more


def test_dataset_layout_is_readable_and_masks_round_trip(tmp_path: Path):
    root = make_synthetic_dataset(tmp_path, size=64, n_train=6, n_test_good=3, n_test_defect=8, seed=0)
    assert root == tmp_path / "widget"
    assert len(list_train(tmp_path, "widget")) == 6
    samples = list_test(tmp_path, "widget")
    assert sum(s.label == 0 for s in samples) == 3
    kinds = sorted({s.kind for s in samples if s.label == 1})
    assert kinds == sorted(k.value for k in DefectKind)
    assert all(s.mask_path is not None and s.mask_path.name.endswith("_mask.png") for s in samples if s.label)
    images, labels, masks, has_mask = load_test_arrays(samples, 64)
    assert images.shape == (11, 64, 64, 3) and has_mask.all()
    assert labels.sum() == 8 and all(masks[i].any() == bool(labels[i]) for i in range(11))
    info = yaml.safe_load((root / "synth.yaml").read_text())
    assert info["image_size"] == 64 and info["train_good"] == 6 and sum(info["test_defect"].values()) == 8
    # Masks are stored as 0/255 and read back exactly.
    s = next(s for s in samples if s.label)
    assert load_mask(s.mask_path, None).sum() == masks[samples.index(s)].sum()


def test_same_seed_same_files_other_seed_other_files(tmp_path: Path):
    def files(out: Path, seed: int) -> dict[str, bytes]:
        root = make_synthetic_dataset(out, n_train=3, n_test_good=2, n_test_defect=4, seed=seed)
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    a, b, c = files(tmp_path / "a", 5), files(tmp_path / "b", 5), files(tmp_path / "c", 6)
    assert a == b
    assert a.keys() == c.keys() and a["train/good/000.png"] != c["train/good/000.png"]


@pytest.mark.parametrize("size", [128, 256])
def test_larger_sizes(tmp_path: Path, size: int):
    make_synthetic_dataset(tmp_path, size=size, n_train=1, n_test_good=0, n_test_defect=1, seed=0)
    images, _, masks, _ = load_test_arrays(list_test(tmp_path, "widget"), size)
    assert images.shape == (1, size, size, 3)
    assert masks[0].sum() >= 0.004 * size * size


def test_bad_arguments_are_one_line_errors(tmp_path: Path):
    make_synthetic_dataset(tmp_path, n_train=1, n_test_good=0, n_test_defect=0)
    for call in (
        lambda: make_synthetic_dataset(tmp_path, n_train=1),  # not empty
        lambda: make_synthetic_dataset(tmp_path / "x", size=16),
        lambda: make_synthetic_dataset(tmp_path / "y", n_train=0),
        lambda: make_synthetic_dataset(tmp_path / "z", category="a/b"),
    ):
        with pytest.raises(DdadError) as info:
            call()
        assert "\n" not in str(info.value)
