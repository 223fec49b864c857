"""OpenCV, imported where it is used, through one helper: a missing or broken cv2 is one line with its fix.

Every module that needs cv2 (reading images, the synthetic data, AUPRO's regions, overlays, the inspection
loop) calls `import_cv2(purpose)`, so importing ddad_edge never needs OpenCV, and the error says what
needed it, why cv2 did not import and how to fix that on this platform. A Jetson keeps the system OpenCV of
JetPack (apt package nvidia-opencv: built with GStreamer, needed for CSI cameras; compiled against NumPy
1.x, so the venv keeps numpy<2); elsewhere `opencv-python-headless` is enough for V4L2 cameras, RTSP/HTTP
streams, video files and folders.
"""

from __future__ import annotations

from types import ModuleType

from ddad_edge.device_tree import on_jetson
from ddad_edge.errors import DdadError

SYSTEM_OPENCV_FIX = ("use JetPack's OpenCV (apt package nvidia-opencv, built with GStreamer): make the venv with "
                     "--system-site-packages and pip uninstall opencv-python opencv-python-headless inside it")
PIP_OPENCV_FIX = "pip install opencv-python-headless"
# JetPack's cv2 is compiled against NumPy 1.x and fails to import under NumPy 2 ("numpy.core.multiarray
# failed to import"); pip's opencv-python is no way out on a Jetson (no GStreamer, so no CSI cameras).
JETSON_NUMPY_FIX = ("JetPack's OpenCV is built for NumPy 1.x: pip install 'numpy<2' in the venv "
                    "(device-files/jetson-constraints.txt) and keep the system OpenCV, not opencv-python")
PIP_NUMPY_FIX = ("this OpenCV is built for another NumPy: pip install -U opencv-python-headless, "
                 "or pip install 'numpy<2'")
LOOP_PURPOSE = "the inspection loop (frame sources, images)"


class OpenCvUnavailable(DdadError):
    """cv2 does not import: `detail` says why ("not installed", or the import's first error line), `fix`
    what to do on this platform."""

    def __init__(self, purpose: str, detail: str, fix: str) -> None:
        super().__init__(f"{purpose} needs OpenCV (cv2), which is {detail}; {fix}")
        self.detail = detail
        self.fix = fix


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


def import_cv2(purpose: str = LOOP_PURPOSE, jetson: bool | None = None) -> ModuleType:
    """The cv2 module, or OpenCvUnavailable: one line naming `purpose`, the reason and the fix.

    `jetson`: which platform's fix to give; by default this machine's (device_tree.on_jetson).
    """
    try:
        import cv2
    except Exception as exc:  # noqa: BLE001 - a broken native module raises more than ImportError
        detail, fix = cv2_import_problem(exc, on_jetson() if jetson is None else jetson)
        raise OpenCvUnavailable(purpose, detail, fix) from None
    return cv2
