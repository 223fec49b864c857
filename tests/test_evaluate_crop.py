"""The central crop of the anomaly map (`scoring.crop`, `evaluate --protocol ddad`): the image score and the
pixel metrics count only the central square, the map itself stays whole, and the line's default is the whole map.

The dataset is drawn here so the answer is known: uniform grey parts, defects as white squares either in a
corner (outside DDAD's central 224/256 window) or in the centre. The runner is the real ONNX Runtime runner
of the toy bundle (tests/bundle_factory.py), whose map is |grey - 0.5| * 2: 1.0 on white, ~0 on grey.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from ddad_edge.config import ModelConfig, RunConfig, ScoringConfig, ScoringMode
from ddad_edge.config_checks import check_run_config
from ddad_edge.errors import DdadError
from ddad_edge.evaluate import crop_for, crop_maps, evaluate_runner
from ddad_edge.metrics import central_window
from ddad_edge.model.scoring import AnomalyScorer
from ddad_edge.runtime.backends import open_runner
from tests.bundle_factory import make_toy_bundle

SIZE = 32


def _dataset(root):
    grey = np.full((SIZE, SIZE, 3), 128, np.uint8)
    folder = root / "part"
    for kind, spots in (("good", []), ("corner", [(0, 0)]), ("centre", [(14, 14)])):
        (folder / "test" / kind).mkdir(parents=True)
        if kind != "good":
            (folder / "ground_truth" / kind).mkdir(parents=True)
        for i in range(4 if kind == "good" else 2):
            image, mask = grey.copy(), np.zeros((SIZE, SIZE), np.uint8)
            for r, c in spots:
                image[r:r + 2, c + i:c + i + 2] = 255  # a 2x2 white defect, inside the outer 2 px for "corner"
                mask[r:r + 2, c + i:c + i + 2] = 255
            if kind == "good":
                image[0, 0, 0] = 128 + i  # distinct files, the same map up to a hair
            cv2.imwrite(str(folder / "test" / kind / f"{i:03d}.png"), image)
            if kind != "good":
                cv2.imwrite(str(folder / "ground_truth" / kind / f"{i:03d}_mask.png"), mask)
    return root


def test_central_window_is_centred_and_refuses_a_crop_larger_than_the_map():
    assert central_window(256, 224) == slice(16, 240)
    assert central_window(32, 0) == slice(0, 32) == central_window(32, 32)
    assert central_window(9, 4) == slice(2, 6)
    with pytest.raises(DdadError, match="33 px does not fit a 32-px map"):
        central_window(32, 33)


def test_ddad_protocol_is_the_central_224_of_256_and_the_line_keeps_its_own_crop():
    assert crop_for(256, "ddad") == 224
    assert crop_for(32, "ddad") == 28  # the same fraction at other sizes
    assert crop_for(256, "ddad-edge") == 0 and crop_for(256, "ddad-edge", own_crop=200) == 200
    with pytest.raises(DdadError, match="--protocol paper: choose ddad-edge"):
        crop_for(256, "paper")


def test_a_corner_defect_counts_on_the_whole_map_and_not_in_ddads_window(tmp_path):
    root = _dataset(tmp_path / "data")
    with open_runner(make_toy_bundle(tmp_path / "bundle", image_size=SIZE), "onnxruntime") as runner:
        _check_corner_and_centre(runner, root)


def _check_corner_and_centre(runner, root):
    whole, images, maps, _ = evaluate_runner(runner, root, "part", show_progress=False)
    ddad, _, maps_ddad, _ = evaluate_runner(runner, root, "part", show_progress=False, crop=crop_for(SIZE, "ddad"))
    labels = np.array(whole.labels)
    kinds = np.array(whole.kinds)
    assert whole.image_auroc == 1.0 and whole.crop == 0
    # In the central 28 px the corner defects look like the good parts (ties): 4x4 pairs of which 8 tie.
    assert ddad.image_auroc == pytest.approx((2 * 4 + 0.5 * 2 * 4) / 16) and ddad.crop == 28
    assert np.all(np.array(ddad.scores)[kinds == "corner"] < 0.1)
    assert np.all(np.array(ddad.scores)[kinds == "centre"] > 0.9)
    # each image's score is the maximum of the central square of its (whole) map
    np.testing.assert_allclose(ddad.scores, crop_maps(maps, 28).reshape(len(maps), -1).max(axis=1))
    np.testing.assert_array_equal(maps_ddad, maps)
    assert maps.shape == (len(labels), SIZE, SIZE)
    # pixel metrics: the corner masks fall outside the window, the centre ones are found exactly
    assert ddad.pixel_auroc == pytest.approx(1.0)
    with pytest.raises(DdadError, match="does not fit"):
        evaluate_runner(runner, root, "part", show_progress=False, crop=SIZE + 1)


def test_the_graphs_score_uses_the_configured_crop_and_the_map_stays_whole():
    cfg = ScoringConfig(mode=ScoringMode.PIXEL, blur_kernel=1, blur_sigma=1.0)
    x = torch.zeros(2, 3, 16, 16)
    x0 = x.clone()
    x0[0, :, 0, 0] = 1.0  # a corner difference
    x0[1, :, 8, 8] = 0.5  # a central one
    m, whole = AnomalyScorer(cfg, None)(x, x0)
    m_crop, cropped = AnomalyScorer(dataclasses.replace(cfg, crop=12), None)(x, x0)
    torch.testing.assert_close(m_crop, m)
    torch.testing.assert_close(whole, torch.tensor([1.0, 0.5]))
    torch.testing.assert_close(cropped, torch.tensor([0.0, 0.5]))


def test_a_crop_larger_than_the_image_is_one_config_line():
    cfg = RunConfig(model=ModelConfig(image_size=64), scoring=ScoringConfig(crop=65))
    with pytest.raises(DdadError, match="'scoring.crop' is 65: the central square cannot be larger than the 64-px"):
        check_run_config(cfg)
    assert RunConfig().scoring.crop == 0  # a line scores the whole map unless told otherwise


def test_evaluate_protocol_ddad_on_a_bundle_writes_the_crop_it_measured(tmp_path, capsys):
    import json

    from tests.cli_helpers import assert_one_line, run_cli

    root = _dataset(tmp_path / "data")
    bundle = make_toy_bundle(tmp_path / "bundle", image_size=SIZE).path
    line = run_cli(capsys, "evaluate", "--bundle", bundle, "--data", root, "--category", "part",
                   "--out", tmp_path / "line")
    paper = run_cli(capsys, "evaluate", "--bundle", bundle, "--data", root, "--category", "part",
                    "--out", tmp_path / "paper", "--protocol", "ddad")
    assert line.code == 0 and paper.code == 0, (line.err, paper.err)
    whole = json.loads((tmp_path / "line" / "metrics.json").read_text())
    ddad = json.loads((tmp_path / "paper" / "metrics.json").read_text())
    assert (whole["crop"], whole["protocol"], whole["image_auroc"]) == (0, "ddad-edge", 1.0)
    assert (ddad["crop"], ddad["protocol"]) == (28, "ddad") and ddad["image_auroc"] == pytest.approx(0.75)
    refused = run_cli(capsys, "evaluate", "--bundle", bundle, "--data", root, "--category", "part",
                      "--out", tmp_path / "never", "--protocol", "paper")
    assert_one_line(refused, "--protocol paper", "ddad-edge", "ddad")
    assert not (tmp_path / "never").exists()
