"""Checks on a JPEG's compressed bytes, before decoding: a frame damaged on its way is a FAULT, not a verdict.

A JPEG cut short by a flaky link, or with bytes zeroed inside it, still decodes: libjpeg and FFmpeg fill the
missing part (grey, or the previous frame's pixels) and say so only on stderr. OpenCV's VideoCapture hands
the loop those pixels, and the frame-quality gate cannot tell them from a part. So the sources that can see
the compressed frame (HTTP MJPEG streams, MJPEG video files) check it here and decode it themselves:

  start          the data begins with SOI (FF D8)
  end            it ends with EOI (FF D9): a frame cut short has none
  length         as many bytes arrived as the part's Content-Length said (HTTP)
  zero run       no run of zero bytes in the entropy-coded data longer than nominal frames ever have; only
                 for frames coded with the standard Huffman tables (see `MAX_ZERO_RUN`)
  decode, size   cv2.imdecode gives an image, of the size of the stream's first good frame
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ddad_edge.lazy_import import import_cv2

# Zeroed bytes inside the entropy-coded data. With the standard Huffman tables (JPEG Annex K: libjpeg's
# defaults, FFmpeg's `-huffman default`, RTP/JPEG cameras) no short code is all zeros next to another, so a
# zero byte needs an unlikely run of coefficients. Measured (2026-12, OpenCV 5.1 / libjpeg-turbo, FFmpeg
# mjpeg): the longest zero run over 360 nominal encodings (64x48 to 1920x1080; flat black, grey, white,
# green; gradients; synthetic parts; Gaussian noise sigma 2; uniform noise; quality 30-100) was 3 bytes.
# 16 leaves a margin of 5x. With other tables (optimized, or those OpenCV's own MJPG VideoWriter writes)
# a flat area codes as long zero runs (433 bytes on a 640x480 part, 12,240 on a flat 1080p frame): not
# checked there, since nominal frames reach any bound one could choose.
MAX_ZERO_RUN = 16
_ZERO_RUN = re.compile(rb"\x00{%d,}" % (MAX_ZERO_RUN + 1))


class DamagedFrame(Exception):
    """A frame arrived but its compressed data is damaged; the message is the FAULT reason."""


def _segments(data: bytes) -> tuple[dict[tuple[int, int], bytes], int]:
    """The Huffman tables declared before the first scan, {(class, id): counts + symbols}, and the offset
    where the scan's entropy-coded data begins (0 when the headers end early)."""
    tables: dict[tuple[int, int], bytes] = {}
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker, length = data[i + 1], int.from_bytes(data[i + 2:i + 4], "big")
        if marker == 0xC4:
            body, k = data[i + 4:i + 2 + length], 0
            while k + 17 <= len(body):
                n = sum(body[k + 1:k + 17])
                tables[(body[k] >> 4, body[k] & 15)] = bytes(body[k + 1:k + 17 + n])
                k += 17 + n
        if marker == 0xDA:
            return tables, i + 2 + length
        i += 2 + length
    return tables, 0


_STANDARD: dict[tuple[int, int], bytes] = {}


def _standard_tables() -> dict[tuple[int, int], bytes]:
    """libjpeg's default (Annex K) tables, read from a JPEG it encodes here, once."""
    if not _STANDARD:
        cv2 = import_cv2()
        ok, jpeg = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8), [cv2.IMWRITE_JPEG_OPTIMIZE, 0])
        _STANDARD.update(_segments(jpeg.tobytes())[0])
    return _STANDARD


def jpeg_damage(data: bytes, declared: int | None = None) -> str:
    """'' for JPEG bytes that pass the byte checks, else the FAULT reason. `declared`: the Content-Length."""
    if declared is not None and declared != len(data):
        return (f"damaged frame: JPEG cut short ({len(data)} bytes arrived of the {declared} its "
                f"Content-Length announced)")
    if len(data) < 4 or data[:2] != b"\xff\xd8":
        return "damaged frame: not a JPEG (no start-of-image marker)"
    if data[-2:] != b"\xff\xd9":
        return "damaged frame: JPEG cut short (no end-of-image marker)"
    tables, scan = _segments(data)
    standard = _standard_tables()
    if scan and all(standard.get(key) == table for key, table in tables.items()):
        zeros = _ZERO_RUN.search(data, scan, len(data) - 2)
        if zeros:
            return (f"damaged frame: {zeros.end() - zeros.start()} zero bytes in a row inside the JPEG data "
                    f"(nominal frames: at most {MAX_ZERO_RUN})")
    return ""


def decode_checked(data: bytes, shape: list[tuple[int, int]], declared: int | None = None) -> Any:
    """The BGR image of JPEG `data` after the byte checks; raises DamagedFrame with the reason.

    `shape`: [(height, width)] of the stream's first good frame, or [] (then filled with this one's).
    """
    reason = jpeg_damage(data, declared)
    if reason:
        raise DamagedFrame(reason)
    cv2 = import_cv2()
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DamagedFrame("damaged frame: the JPEG does not decode")
    if shape and bgr.shape[:2] != shape[0]:
        (h, w), (h0, w0) = bgr.shape[:2], shape[0]
        raise DamagedFrame(f"damaged frame: decodes to {w}x{h}, the stream's frames are {w0}x{h0}")
    if not shape:
        shape.append(bgr.shape[:2])
    return bgr


class MjpegPacketCapture:
    """A cv2.VideoCapture of an MJPEG video file that hands over each frame's JPEG bytes
    (CAP_PROP_FORMAT -1 on the FFmpeg backend), checked and decoded here. `retrieve` and `read` raise
    DamagedFrame for a damaged frame; the next frame reads as usual."""

    def __init__(self, cap: Any) -> None:
        self._cap = cap
        self._shape: list[tuple[int, int]] = []

    def isOpened(self) -> bool:  # noqa: N802 - the cv2.VideoCapture interface
        return self._cap.isOpened()

    def get(self, prop: int) -> float:
        return self._cap.get(prop)

    def grab(self) -> bool:
        return self._cap.grab()

    def retrieve(self) -> tuple[bool, Any]:
        ok, packet = self._cap.retrieve()
        if not ok or packet is None:
            return False, None
        return True, decode_checked(packet.tobytes(), self._shape)

    def read(self) -> tuple[bool, Any]:
        return self.retrieve() if self.grab() else (False, None)

    def release(self) -> None:
        self._cap.release()


def open_video_capture(path: str) -> Any:
    """cv2.VideoCapture of a video file; for an MJPEG file one whose frames are checked (MjpegPacketCapture)."""
    cv2 = import_cv2()
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        return cap
    fourcc = (int(cap.get(cv2.CAP_PROP_FOURCC) or 0) & 0xFFFFFFFF).to_bytes(4, "little").upper()
    if fourcc in (b"MJPG", b"AVRN", b"LJPG", b"JPEG") and cap.getBackendName() == "FFMPEG" \
            and cap.set(cv2.CAP_PROP_FORMAT, -1):
        return MjpegPacketCapture(cap)
    return cap
