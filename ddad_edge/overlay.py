"""The one heatmap overlay of an anomaly map on an image: evaluation reports, saved NG frames and the
operator page all draw it here, so a defect looks the same wherever an operator or engineer sees it
(OpenCV, no torch)."""

from __future__ import annotations

import numpy as np

from ddad_edge.lazy_import import import_cv2


def heatmap_overlay(image: np.ndarray, anomaly_map: np.ndarray, vmax: float | None = None,
                    alpha: float = 0.45, vmin: float = 0.0) -> np.ndarray:
    """Blend a JET heatmap of `anomaly_map` over `image`.

    image: (H, W, 3) uint8 RGB; anomaly_map: (h, w) or (1, h, w) float, resized to H×W (NaN and inf count
    as 0). The colour scale runs from `vmin` to `vmax`: a fixed `vmax` (e.g. the image threshold ×2) makes
    overlays of different frames compare; default: the map's max. Returns (H, W, 3) uint8 RGB.
    """
    cv2 = import_cv2("heatmap overlays")
    m = np.nan_to_num(np.asarray(anomaly_map, dtype=np.float32).squeeze(), nan=0.0, posinf=0.0, neginf=0.0)
    h, w = image.shape[:2]
    if m.shape != (h, w):
        m = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
    top = float(m.max()) if vmax is None else float(vmax)
    # vmin 0 divides by top itself, so the evaluation's overlays keep their exact colours
    norm = np.clip((m - vmin) / (top - vmin), 0.0, 1.0) if top > vmin else np.zeros_like(m)
    heat = cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1]  # BGR → RGB
    return cv2.addWeighted(image, 1 - alpha, heat, alpha, 0.0)
