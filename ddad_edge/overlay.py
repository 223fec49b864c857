"""Heatmap overlays of anomaly maps on images, for evaluation reports and saved NG frames (OpenCV, no torch)."""

from __future__ import annotations

import numpy as np

from ddad_edge.errors import missing_package


def heatmap_overlay(image: np.ndarray, anomaly_map: np.ndarray, vmax: float | None = None,
                    alpha: float = 0.45) -> np.ndarray:
    """Blend a JET heatmap of `anomaly_map` over `image`.

    image: (H, W, 3) uint8 RGB; anomaly_map: (h, w) or (1, h, w) float, resized to H×W. `vmax` fixes the
    colour scale (e.g. the image threshold ×2) so overlays of different frames compare; default: the map's max.
    Returns (H, W, 3) uint8 RGB.
    """
    try:
        import cv2
    except ImportError:
        raise missing_package("cv2", "heatmap overlays", "pip install opencv-python-headless") from None
    m = np.asarray(anomaly_map, dtype=np.float32).squeeze()
    h, w = image.shape[:2]
    if m.shape != (h, w):
        m = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
    top = float(m.max()) if vmax is None else float(vmax)
    norm = np.clip(m / top, 0.0, 1.0) if top > 0 else np.zeros_like(m)
    heat = cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1]  # BGR → RGB
    return cv2.addWeighted(image, 1 - alpha, heat, alpha, 0.0)
