"""The hard synthetic set: exact masks, subtle defects of every kind, determinism, the CLI option."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from ddad_edge.cli import main
from ddad_edge.data.folders import list_test, load_test_arrays
from ddad_edge.data.surface import SurfaceDefect, make_surface_dataset, render_surface
from ddad_edge.data.synth import render_belt, render_part
from ddad_edge.data.synth_sets import Difficulty, make_synthetic_set
from ddad_edge.errors import DdadError


@pytest.mark.parametrize("kind", list(SurfaceDefect))
@pytest.mark.parametrize("seed", [0, 1])
def test_mask_is_exactly_where_the_image_differs_from_the_defect_free_render(kind, seed):
    nominal = render_surface(64, np.random.default_rng(seed))
    part = render_surface(64, np.random.default_rng(seed), kind)
    assert np.array_equal(part.clean, nominal.image)  # the defect's draws come after the nominal ones
    assert np.array_equal(part.mask, np.any(part.image != nominal.image, axis=2))
    assert 8 <= part.mask.sum() <= 0.06 * 64 * 64  # small: at most 6 % of the image


def _change_in_mask(kind, n: int = 8) -> tuple[list[float], list[float]]:
    """Mean largest-channel change inside the mask, and mean change of the mask's average colour."""
    rng = np.random.default_rng(20)
    changes, colour_shifts = [], []
    for _ in range(n):
        part = render_surface(64, rng, kind)
        diff = part.image.astype(np.float64) - part.clean
        changes.append(np.abs(diff).max(axis=2)[part.mask].mean())
        colour_shifts.append(np.abs(diff[part.mask].mean(axis=0)).max())
    return changes, colour_shifts


@pytest.mark.parametrize("kind", list(SurfaceDefect))
def test_defects_are_subtle_where_the_easy_sets_are_not(kind):
    changes, colour_shifts = _change_in_mask(kind)
    # The easy set's defects change their pixels by more than 50 grey levels on average
    # (tests/data/test_synth.py); every hard one stays under 40, most far under.
    assert max(changes) < 40.0
    if kind is SurfaceDefect.STAIN:
        assert max(changes) < 15.0
    if kind is SurfaceDefect.TEXTURE:
        assert max(colour_shifts) < 3.0  # the colour stays: only the pattern changes
        assert min(changes) > 5.0  # but the pattern does change
    easy = render_part(64, np.random.default_rng(0), None, render_belt(64))
    assert easy.image.shape == render_surface(64, np.random.default_rng(0)).image.shape


def test_nominal_images_vary_in_ways_no_model_can_predict():
    images = np.stack([render_surface(64, np.random.default_rng(i)).image for i in range(8)]).astype(np.float64)
    # Different weave phases, grain and lighting: neighbouring nominal images differ by several levels.
    diffs = [np.abs(a - b).mean() for a, b in zip(images, images[1:])]
    assert min(diffs) > 5.0
    # And nothing clips, so a defect's change is never lost to saturation.
    assert images.min() > 20 and images.max() < 235


def test_strength_changes_defects_only(tmp_path: Path):
    a = make_surface_dataset(tmp_path / "a", n_train=2, n_test_good=1, n_test_defect=4, seed=3, strength=1.0)
    b = make_surface_dataset(tmp_path / "b", n_train=2, n_test_good=1, n_test_defect=4, seed=3, strength=0.5)
    assert (a / "train/good/001.png").read_bytes() == (b / "train/good/001.png").read_bytes()
    assert (a / "test/good/000.png").read_bytes() == (b / "test/good/000.png").read_bytes()
    assert (a / "test/stain/000.png").read_bytes() != (b / "test/stain/000.png").read_bytes()


def test_hard_set_from_the_cli_is_deterministic_and_has_every_kind(tmp_path: Path, capsys):
    args = ["synth", "--difficulty", "hard", "--n-train", "2", "--n-test-good", "2", "--n-test-defect", "4"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert "(hard set)" in capsys.readouterr().out
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    root = tmp_path / "a" / "widget"
    files = sorted(p.relative_to(root) for p in root.rglob("*.png"))
    assert files == sorted(p.relative_to(tmp_path / "b" / "widget") for p in (tmp_path / "b" / "widget").rglob("*.png"))
    assert all((root / f).read_bytes() == (tmp_path / "b" / "widget" / f).read_bytes() for f in files)
    samples = list_test(tmp_path / "a", "widget")
    assert sorted({s.kind for s in samples if s.label}) == sorted(k.value for k in SurfaceDefect)
    _, labels, masks, has_mask = load_test_arrays(samples, 64)
    assert has_mask.all() and all(masks[i].any() == bool(labels[i]) for i in range(len(samples)))
    info = yaml.safe_load((root / "synth.yaml").read_text())
    assert info["difficulty"] == "hard" and info["test_defect"] == {k.value: 1 for k in SurfaceDefect}


def test_easy_stays_the_default(tmp_path: Path):
    easy = make_synthetic_set(tmp_path / "e", n_train=1, n_test_good=0, n_test_defect=1)
    assert yaml.safe_load((easy / "synth.yaml").read_text())["difficulty"] == "easy"
    hard = make_synthetic_set(tmp_path / "h", Difficulty.HARD, n_train=1, n_test_good=0, n_test_defect=1)
    assert yaml.safe_load((hard / "synth.yaml").read_text())["difficulty"] == "hard"


def test_bad_strength_is_a_one_line_error(tmp_path: Path):
    with pytest.raises(DdadError) as info:
        make_surface_dataset(tmp_path, n_train=1, n_test_good=0, n_test_defect=1, strength=0.0)
    assert "strength" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "widget").exists()
