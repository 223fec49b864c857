"""A frame drawn for people: verdict, score and sequence number over the image, for preview and stream."""

from __future__ import annotations

import numpy as np

from ddad_edge.inspect.decide import Verdict
from ddad_edge.inspect.result import FrameResult
from ddad_edge.lazy_import import import_cv2

COLOURS = {Verdict.OK: (0, 200, 0), Verdict.NG: (0, 0, 255), Verdict.FAULT: (0, 200, 255)}  # BGR


def annotate(result: FrameResult, max_width: int = 640) -> np.ndarray:
    """(H', W', 3) uint8 BGR: the frame (at most `max_width` wide) with a verdict-coloured border and label.

    A fault marker has no image: it is drawn as a dark 320x240 panel with the reason.
    """
    cv2 = import_cv2()
    image = result.frame.image
    if image is None:
        bgr = np.full((240, 320, 3), 40, dtype=np.uint8)
    else:
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        if bgr.shape[1] > max_width:
            scale = max_width / bgr.shape[1]
            bgr = cv2.resize(bgr, (max_width, max(1, round(bgr.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    colour = COLOURS[result.verdict]
    cv2.rectangle(bgr, (0, 0), (bgr.shape[1] - 1, bgr.shape[0] - 1), colour, 3)
    score = "" if result.score is None else f" {result.score:.4f}"
    label = f"#{result.frame.seq} {result.verdict.value}{score}"
    cv2.putText(bgr, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, 2, cv2.LINE_AA)
    if result.reason:
        cv2.putText(bgr, result.reason[:60], (8, 44), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
    return bgr
