"""DDAD's anomaly map: pixel and feature distances between an image and its reconstruction.

  D_p = mean over channels of |x̂0 − x|                                    (B, 1, H, W)
  D_f = Σ_{layer2, layer3} (1 − cos(P(φ(x̂0)), P(φ(x)))), upsampled to H×W   (B, 1, H, W)
        P: 3×3 mean pooling of feature patches (stride 1, zero padding), φ: the feature extractor
  map = D_f + v·r·D_p, r = max D_f / max D_p of the same image (or a fixed ratio measured on nominal images)
  map ← Gaussian blur (σ = 4, 33×33); score = max(map), or max of its central `scoring.crop` square

DDAD's code takes the two maxima over the whole batch, which makes a frame's score depend on the frames
beside it; here they are per image, so a frame scores the same alone or in any batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ddad_edge.config import RatioMode, ScoringConfig, ScoringMode
from ddad_edge.metrics import central_window
from ddad_edge.model.backbone import FeatureExtractor

LAYER_INDEX = {"layer1": 0, "layer2": 1, "layer3": 2}


def gaussian_kernel1d(sigma: float, size: int) -> torch.Tensor:
    """Normalised 1-D Gaussian of `size` taps (odd) and standard deviation `sigma` pixels."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    k = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return (k / k.sum()).float()


def pixel_distance(x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """D_p: channel-mean absolute difference. x, x0: (B, C, H, W) → (B, 1, H, W)."""
    return (x0 - x).abs().mean(dim=1, keepdim=True)


def patch_mean(f: torch.Tensor) -> torch.Tensor:
    """Mean of each 3×3 neighbourhood, zeros outside (DDAD's patchify). (B, C, h, w) → (B, C, h, w)."""
    return F.avg_pool2d(f, 3, stride=1, padding=1, count_include_pad=True)


def feature_distance(feats_x: list[torch.Tensor], feats_x0: list[torch.Tensor], layers: tuple[str, ...],
                     size: tuple[int, int]) -> torch.Tensor:
    """D_f: Σ over `layers` of (1 − cosine similarity of patch-pooled features), bilinear to `size` → (B, 1, H, W)."""
    total = None
    for name in layers:
        i = LAYER_INDEX[name]
        d = 1 - F.cosine_similarity(patch_mean(feats_x[i]), patch_mean(feats_x0[i]), dim=1, eps=1e-6)
        d = F.interpolate(d[:, None], size=size, mode="bilinear", align_corners=True)
        total = d if total is None else total + d
    return total


def per_image_max(m: torch.Tensor) -> torch.Tensor:
    """Maximum of each image's map: (B, 1, H, W) → (B, 1, 1, 1)."""
    return m.flatten(1).amax(dim=1).view(-1, 1, 1, 1)


class AnomalyScorer(nn.Module):
    """Anomaly map and score of images x against reconstructions x0 (both (B, 3, H, W) in [−1, 1]).

    forward → (anomaly_map (B, 1, H, W) float32, score (B,) float32). The extractor runs once on
    [x, x0] stacked in one batch.
    """

    def __init__(self, cfg: ScoringConfig, extractor: FeatureExtractor | None) -> None:
        super().__init__()
        if cfg.mode is not ScoringMode.PIXEL and extractor is None:
            raise ValueError(f"scoring mode {cfg.mode.value} needs a feature extractor")
        self.cfg = cfg
        self.extractor = extractor if cfg.mode is not ScoringMode.PIXEL else None
        k = gaussian_kernel1d(cfg.blur_sigma, cfg.blur_kernel)
        self.register_buffer("blur_h", k.view(1, 1, 1, -1), persistent=False)
        self.register_buffer("blur_v", k.view(1, 1, -1, 1), persistent=False)

    def blur(self, m: torch.Tensor) -> torch.Tensor:
        """Separable Gaussian blur with reflected borders. (B, 1, H, W) → (B, 1, H, W)."""
        p = self.cfg.blur_kernel // 2
        m = F.conv2d(F.pad(m, (p, p, 0, 0), mode="reflect"), self.blur_h)
        return F.conv2d(F.pad(m, (0, 0, p, p), mode="reflect"), self.blur_v)

    def distances(self, x: torch.Tensor, x0: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(D_p, D_f) before fusion, each (B, 1, H, W) or None when the mode does not use it."""
        d_p = pixel_distance(x, x0) if self.cfg.mode is not ScoringMode.FEATURE else None
        d_f = None
        if self.extractor is not None:
            feats = self.extractor(torch.cat([x, x0], dim=0))
            b = x.shape[0]
            d_f = feature_distance([f[:b] for f in feats], [f[b:] for f in feats], self.cfg.layers,
                                   (x.shape[-2], x.shape[-1]))
        return d_p, d_f

    def fuse(self, d_p: torch.Tensor | None, d_f: torch.Tensor | None) -> torch.Tensor:
        """The unblurred map of the configured mode."""
        if d_f is None:
            return d_p
        if d_p is None:
            return d_f
        if self.cfg.ratio is RatioMode.FIXED:
            ratio = self.cfg.fixed_ratio
        else:
            ratio = per_image_max(d_f) / (per_image_max(d_p) + 1e-8)
        return d_f + self.cfg.v * ratio * d_p

    def forward(self, x: torch.Tensor, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.blur(self.fuse(*self.distances(x, x0)))
        # The score is the map's maximum, over its central `crop` square where one is configured (the map
        # itself stays whole: blurred before the crop, as in DDAD's evaluation, and shown whole).
        rows, cols = central_window(m.shape[-2], self.cfg.crop), central_window(m.shape[-1], self.cfg.crop)
        window = m if self.cfg.crop == 0 else m[:, :, rows, cols]
        return m, window.flatten(1).amax(dim=1)


def measure_fixed_ratio(scorer: AnomalyScorer, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """max D_f / max D_p over nominal (x, x0) pairs: the ratio for RatioMode.FIXED."""
    max_p, max_f = 0.0, 0.0
    with torch.no_grad():
        for x, x0 in pairs:
            d_p = pixel_distance(x, x0)
            _, d_f = scorer.distances(x, x0) if scorer.extractor is not None else (None, None)
            max_p = max(max_p, float(d_p.max()))
            if d_f is not None:
                max_f = max(max_f, float(d_f.max()))
    if max_p <= 0 or not math.isfinite(max_f / max_p):
        return 1.0
    return max_f / max_p
