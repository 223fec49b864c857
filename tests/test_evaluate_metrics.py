"""evaluate.metrics_of: the image AUROC an evaluation reports comes with its bootstrap interval."""

from __future__ import annotations

import numpy as np

from ddad_edge.evaluate import Evaluation, metrics_of


def test_metrics_of_brackets_image_auroc_with_its_interval():
    rng = np.random.default_rng(2)
    labels = np.r_[np.zeros(30, int), np.ones(30, int)]
    scores = rng.normal(0, 1, 60) + 1.2 * labels
    masks = np.zeros((60, 8, 8), bool)
    masks[30:, 2:4, 2:4] = True
    maps = rng.random((60, 8, 8)) + masks
    m = metrics_of(labels, scores, masks, np.ones(60, bool), maps)
    assert m["image_auroc_low"] < m["image_auroc"] < m["image_auroc_high"]
    assert 0.05 < m["image_auroc_high"] - m["image_auroc_low"] < 0.4  # 60 images: several points either side
    ev = Evaluation(image_auroc=m["image_auroc"], image_auroc_low=m["image_auroc_low"],
                    image_auroc_high=m["image_auroc_high"], pixel_auroc=m["pixel_auroc"], aupro=m["aupro"],
                    f1_max=m["f1_max"], f1_threshold=m["f1_threshold"], n_images=60, n_defective=30)
    assert list(ev.summary())[:3] == ["image_auroc", "image_auroc_low", "image_auroc_high"]
