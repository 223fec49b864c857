"""The pixel/feature ratio of RatioMode.FIXED, measured on a run's held-out nominal images.

DDAD fuses D_p and D_f per image with max D_f / max D_p; the fixed mode measures that ratio once, on images
the model never trained on, so every frame is scored on the same scale. The caller builds the (fused)
pipeline and loads the images, so this module needs neither the command line nor the training code.
"""

from __future__ import annotations

import numpy as np
import torch

from ddad_edge.model.pipeline import frames_to_tensor
from ddad_edge.model.scoring import measure_fixed_ratio

BATCH = 8  # frames per reconstruction: the nominal set is small, memory is what matters


def pipeline_fixed_ratio(pipe, images: np.ndarray) -> float:
    """max D_f / max D_p of `pipe` (a fused-scoring pipeline) over `images`, (N, S, S, 3) uint8 nominal frames."""
    x = frames_to_tensor(images)  # (N, 3, S, S) in [-1, 1]
    with torch.no_grad():
        pairs = [(x[i:i + BATCH], pipe.reconstruct(x[i:i + BATCH])) for i in range(0, len(x), BATCH)]
    return measure_fixed_ratio(pipe.scorer, pairs)
