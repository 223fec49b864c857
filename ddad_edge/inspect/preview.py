"""The optional preview window (`--preview`): the annotated frame in an OpenCV window, off by default."""

from __future__ import annotations

import numpy as np

from ddad_edge.errors import DdadError
from ddad_edge.inspect.annotate import annotate
from ddad_edge.inspect.result import FrameResult
from ddad_edge.inspect.sinks import Sink
from ddad_edge.lazy_import import import_cv2


class PreviewSink(Sink):
    """Shows each result in a window; needs an OpenCV built with a GUI (not the headless wheel)."""

    name = "preview"

    def __init__(self, title: str = "ddad-edge") -> None:
        self._cv2 = import_cv2()
        self.title = title
        try:
            self._cv2.namedWindow(title, self._cv2.WINDOW_NORMAL)
            self._cv2.imshow(title, np.zeros((8, 8, 3), dtype=np.uint8))
            self._cv2.waitKey(1)
        except self._cv2.error:
            raise DdadError("--preview needs an OpenCV with a GUI (GTK/Qt), and this one has none "
                            "(opencv-python-headless?); use --http-port for a stream instead") from None

    def on_result(self, result: FrameResult) -> None:
        self._cv2.imshow(self.title, annotate(result))
        self._cv2.waitKey(1)  # lets the window repaint; keys are not used

    def close(self) -> None:
        try:
            self._cv2.destroyWindow(self.title)
        except self._cv2.error:  # already closed by the user
            pass
