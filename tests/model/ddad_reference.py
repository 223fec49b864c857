"""A plain transcription of DDAD's anomaly map (arimousa/DDAD, anomaly_map.py: heat_map, pixel_distance,
feature_distance, patchify), in float64 numpy, written from the equations and not from ddad_edge's code,
so a test that compares the package with it is not comparing the package with itself.

Where ddad-edge deliberately differs from DDAD's code, this follows ddad-edge's documented choice:
  - the ratio max D_f / max D_p is taken per image (DDAD: over the whole batch; see model/scoring.py);
  - the whole map is scored (DDAD's evaluation crops it to the central 224 px first);
  - the layers are configurable (DDAD: every extractor output but the first, i.e. layer2 and layer3).
Features come straight from the extractor's layer modules (forward hooks, each image run on its own, as
DDAD runs target and reconstruction separately), not through the scorer's indexing.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def layer_features(extractor: torch.nn.Module, x: torch.Tensor, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Outputs of the modules `names` (e.g. "layer2") of `extractor` on x (B, 3, H, W), float64 numpy."""
    caught: dict[str, torch.Tensor] = {}
    hooks = [getattr(extractor, name).register_forward_hook(
        lambda _m, _i, out, name=name: caught.__setitem__(name, out.detach().clone())) for name in names]
    try:
        with torch.no_grad():
            extractor(x)
    finally:
        for h in hooks:
            h.remove()
    return {name: caught[name].double().numpy() for name in names}


def patchify(f: np.ndarray) -> np.ndarray:
    """Mean of each 3×3 patch, stride 1, zero padding of 1 (DDAD's patchify via Unfold). (B, C, h, w)."""
    b, c, h, w = f.shape
    padded = np.zeros((b, c, h + 2, w + 2))
    padded[:, :, 1:-1, 1:-1] = f
    out = np.zeros_like(f)
    for dy in range(3):
        for dx in range(3):
            out += padded[:, :, dy:dy + h, dx:dx + w]
    return out / 9.0


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 − cos(a, b) along the channels. (B, C, h, w) → (B, h, w)."""
    dot = (a * b).sum(axis=1)
    norms = np.sqrt((a * a).sum(axis=1)) * np.sqrt((b * b).sum(axis=1))
    return 1.0 - dot / np.maximum(norms, 1e-12)


def bilinear_align_corners(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resampling with the corner pixels' centres aligned. (B, h, w) → (B, H, W)."""
    _, h, w = m.shape
    H, W = size

    def axis(n_in: int, n_out: int):
        src = np.arange(n_out) * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
        i0 = np.floor(src).astype(int)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, src - i0

    y0, y1, fy = axis(h, H)
    x0, x1, fx = axis(w, W)
    top = m[:, y0][:, :, x0] * (1 - fx) + m[:, y0][:, :, x1] * fx
    bottom = m[:, y1][:, :, x0] * (1 - fx) + m[:, y1][:, :, x1] * fx
    return top * (1 - fy)[:, None] + bottom * fy[:, None]


def gaussian_blur(m: np.ndarray, sigma: float = 4.0) -> np.ndarray:
    """kornia's gaussian_blur2d as DDAD calls it: a (2·int(4σ+0.5)+1)² kernel, reflected borders, applied
    as one 2-D convolution. (B, H, W) → (B, H, W)."""
    size = 2 * int(4 * sigma + 0.5) + 1
    r = size // 2
    g = np.exp(-((np.arange(size) - r) ** 2) / (2 * sigma ** 2))
    kernel = np.outer(g, g)
    kernel /= kernel.sum()
    padded = np.pad(m, ((0, 0), (r, r), (r, r)), mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size), axis=(1, 2))
    return np.einsum("bhwij,ij->bhw", windows, kernel)


def anomaly_map(x: np.ndarray, x0: np.ndarray, feats_x: dict[str, np.ndarray] | None,
                feats_x0: dict[str, np.ndarray] | None, v: float, fixed_ratio: float | None = None,
                pixel: bool = True, sigma: float | None = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """DDAD's heat map of images x against reconstructions x0 ((B, 3, H, W) in [−1, 1], float64).

    feats_*: layer name → (B, C, h, w) features (None: no feature distance); pixel: use the pixel distance;
    fixed_ratio: a fixed max D_f / max D_p instead of each image's own; sigma None: no blur.
    Returns (map (B, 1, H, W), score (B,) = max of each map).
    """
    b, _, H, W = x.shape
    d_p = np.abs(x0 - x).mean(axis=1) if pixel else None  # (B, H, W)
    d_f = None
    if feats_x is not None:
        d_f = np.zeros((b, H, W))
        for name in feats_x:
            d_f += bilinear_align_corners(cosine_distance(patchify(feats_x[name]), patchify(feats_x0[name])), (H, W))
    if d_f is None:
        m = d_p
    elif d_p is None:
        m = d_f
    else:
        m = np.empty((b, H, W))
        for i in range(b):
            ratio = fixed_ratio if fixed_ratio is not None else d_f[i].max() / d_p[i].max()
            m[i] = d_f[i] + v * ratio * d_p[i]
    if sigma is not None:
        m = gaussian_blur(m, sigma)
    assert math.isfinite(float(m.sum()))
    return m[:, None], m.reshape(b, -1).max(axis=1)
