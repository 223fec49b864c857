"""OpenCV, imported where it is used: one-line errors when it is missing or lacks GStreamer.

A Jetson keeps the system OpenCV of JetPack (built with GStreamer, needed for CSI cameras); elsewhere
`opencv-python-headless` is enough for V4L2 cameras, RTSP/HTTP streams, video files and folders.
"""

from __future__ import annotations

import re
from types import ModuleType

from ddad_edge.errors import DdadError, missing_package


def import_cv2() -> ModuleType:
    """The cv2 module, or a one-line DdadError naming the package to install."""
    try:
        import cv2
    except ImportError:
        raise missing_package("cv2", "the inspection loop (frame sources, images)",
                              "pip install opencv-python-headless, or on a Jetson the JetPack OpenCV") from None
    return cv2


def has_gstreamer() -> bool:
    """Whether this OpenCV build has the GStreamer video backend (cv2.getBuildInformation())."""
    cv2 = import_cv2()
    match = re.search(r"^\s*GStreamer:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    return bool(match) and match.group(1).upper() != "NO"


def require_gstreamer(what: str) -> None:
    """Raise one line when `what` (for example '--csi 0') needs GStreamer and OpenCV lacks it."""
    if not has_gstreamer():
        raise DdadError(f"{what} needs OpenCV built with GStreamer, and this OpenCV has none "
                        "(cv2.getBuildInformation() says GStreamer: NO); on a Jetson use the JetPack OpenCV "
                        "(python3-opencv), not opencv-python from pip")
