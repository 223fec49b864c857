"""What the inspection loop needs of its OpenCV beyond importing it (ddad_edge.lazy_import): GStreamer.

CSI cameras and GStreamer pipelines need an OpenCV built with GStreamer (JetPack's, on a Jetson);
pip's opencv-python-headless has none, which is enough for V4L2 cameras, streams, files and folders.
"""

from __future__ import annotations

import re

from ddad_edge.errors import DdadError
from ddad_edge.lazy_import import import_cv2


def has_gstreamer() -> bool:
    """Whether this OpenCV build has the GStreamer video backend (cv2.getBuildInformation())."""
    cv2 = import_cv2()
    match = re.search(r"^\s*GStreamer:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    return match is not None and match.group(1).upper() != "NO"


def require_gstreamer(what: str) -> None:
    """Raise one line when `what` (for example '--csi 0') needs GStreamer and OpenCV lacks it."""
    if not has_gstreamer():
        raise DdadError(f"{what} needs OpenCV built with GStreamer, and this OpenCV has none "
                        "(cv2.getBuildInformation() says GStreamer: NO); on a Jetson use the JetPack OpenCV "
                        "(python3-opencv), not opencv-python from pip")
