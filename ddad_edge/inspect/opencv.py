"""OpenCV, imported where it is used: one-line errors when it is missing, broken or lacks GStreamer.

A Jetson keeps the system OpenCV of JetPack (built with GStreamer, needed for CSI cameras; compiled
against NumPy 1.x, so the venv keeps numpy<2); elsewhere `opencv-python-headless` is enough for V4L2
cameras, RTSP/HTTP streams, video files and folders.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

from ddad_edge.errors import DdadError

JETSON_MODEL_FILE = Path("/proc/device-tree/model")
SYSTEM_OPENCV_FIX = ("use JetPack's OpenCV (built with GStreamer): make the venv with --system-site-packages and "
                     "pip uninstall opencv-python opencv-python-headless inside it")
PIP_OPENCV_FIX = "pip install opencv-python-headless"
# JetPack's cv2 is compiled against NumPy 1.x and fails to import under NumPy 2 ("numpy.core.multiarray
# failed to import"); pip's opencv-python is no way out on a Jetson (no GStreamer, so no CSI cameras).
JETSON_NUMPY_FIX = ("JetPack's OpenCV is built for NumPy 1.x: pip install 'numpy<2' in the venv "
                    "(device-files/jetson-constraints.txt) and keep the system OpenCV, not opencv-python")
PIP_NUMPY_FIX = ("this OpenCV is built for another NumPy: pip install -U opencv-python-headless, "
                 "or pip install 'numpy<2'")


def on_jetson(model_file: Path = JETSON_MODEL_FILE) -> bool:
    """Whether this machine is an NVIDIA Jetson (its device-tree model names NVIDIA or Jetson)."""
    try:
        model = model_file.read_bytes().decode(errors="replace").lower()
    except OSError:
        return False
    return "jetson" in model or "nvidia" in model


def cv2_import_problem(exc: BaseException, jetson: bool) -> tuple[str, str]:
    """What a failed `import cv2` means, and its fix for this platform: (detail, fix).

    Not installed is told apart from installed-but-broken, whose first line is shown (a NumPy 2 venv
    under JetPack's OpenCV is the usual one).
    """
    if isinstance(exc, ModuleNotFoundError) and exc.name == "cv2":
        return "not installed", SYSTEM_OPENCV_FIX if jetson else PIP_OPENCV_FIX
    lines = str(exc).strip().splitlines()
    reason = lines[0] if lines else type(exc).__name__
    detail = f"installed but does not import: {reason}"
    if "numpy" in reason.lower():
        return detail, JETSON_NUMPY_FIX if jetson else PIP_NUMPY_FIX
    if jetson:
        return detail, ("repair JetPack's OpenCV (its apt package, e.g. sudo apt install --reinstall nvidia-opencv); "
                        + SYSTEM_OPENCV_FIX)
    return detail, "pip install --force-reinstall opencv-python-headless"


def import_cv2() -> ModuleType:
    """The cv2 module, or a one-line DdadError that says why it does not import and how to fix it."""
    try:
        import cv2
    except Exception as exc:  # noqa: BLE001 - a broken native module raises more than ImportError
        detail, fix = cv2_import_problem(exc, on_jetson())
        raise DdadError(f"the inspection loop (frame sources, images) needs OpenCV (cv2), which is {detail}; "
                        f"{fix}") from None
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
