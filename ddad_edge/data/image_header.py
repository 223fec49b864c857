"""Image headers: the size an image file claims, read before anything is decoded.

A decoder allocates what the header asks for. A file of a few kilobytes can claim 40000 x 40000 pixels
(about 4.8 GB as 8-bit RGB), so sizes are checked from the header first, and an absurd one is one line
instead of an exhausted Jetson. The limit, `MAX_IMAGE_PIXELS` = 2^26 (67 megapixels, 8192 x 8192), sits
above every industrial camera sensor we know of (the largest common ones are 65 MP) and below the
memory a 8 GB Jetson can spare: a decoded 2^26-pixel RGB image is 192 MiB (384 MiB at 16 bits).

PNG, JPEG, BMP, TIFF (and BigTIFF) and WebP are read: the formats the folder readers accept. A JPEG
whose last scan has no end-of-image marker is reported as truncated: some OpenCV builds decode the
missing part as grey without an error, which would train or inspect a half-grey part.

`decode_image` puts it together: header check, then OpenCV's decoder with its log lines silenced (a
damaged file would otherwise print several lines of decoder errors before the one line that matters).
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from ddad_edge.errors import DdadError

MAX_IMAGE_PIXELS = 1 << 26
MAX_IMAGE_FILE_BYTES = 1 << 30  # 1 GiB: a 2^26-pixel 16-bit RGBA TIFF without compression is 512 MiB

_LOG_LOCK = threading.Lock()  # the log level is global: one decode at a time switches it
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


@dataclass(frozen=True)
class ImageHeader:
    """What a header says: the format and the size in pixels."""

    format: str  # png | jpeg | bmp | tiff | webp
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _png(data: bytes) -> ImageHeader | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return ImageHeader("png", width, height)


def _jpeg(data: bytes) -> ImageHeader | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return ImageHeader("jpeg", width, height)
        i += 2 + length
    return None


def _bmp(data: bytes) -> ImageHeader | None:
    if len(data) < 26:
        return None
    (dib,) = struct.unpack("<I", data[14:18])
    if dib == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        width, height = struct.unpack("<HH", data[18:22])
    else:
        width, height = struct.unpack("<ii", data[18:26])
    return ImageHeader("bmp", abs(width), abs(height))  # a negative height means top-down rows


def _tiff(data: bytes) -> ImageHeader | None:
    order = "<" if data[:2] == b"II" else ">"
    (magic,) = struct.unpack(order + "H", data[2:4])
    big = magic == 43
    try:
        if big:
            (offset,) = struct.unpack(order + "Q", data[8:16])
            (count,) = struct.unpack(order + "Q", data[offset:offset + 8])
            entries, entry_size, start = count, 20, offset + 8
        else:
            (offset,) = struct.unpack(order + "I", data[4:8])
            (count,) = struct.unpack(order + "H", data[offset:offset + 2])
            entries, entry_size, start = count, 12, offset + 2
        found: dict[int, int] = {}
        for k in range(min(entries, 4096)):
            entry = data[start + k * entry_size:start + (k + 1) * entry_size]
            tag, kind = struct.unpack(order + "HH", entry[:4])
            if tag in (256, 257):  # ImageWidth, ImageLength: SHORT (3), LONG (4) or LONG8 (16)
                value = entry[12:] if big else entry[8:]
                fmt = {3: "H", 4: "I", 16: "Q"}.get(kind)
                if fmt is None:
                    return None
                (found[tag],) = struct.unpack(order + fmt, value[:struct.calcsize(fmt)])
    except struct.error:
        return None
    if 256 not in found or 257 not in found:
        return None
    return ImageHeader("tiff", found[256], found[257])


def _webp(data: bytes) -> ImageHeader | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return ImageHeader("webp", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return ImageHeader("webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X" and len(data) >= 30:
        return ImageHeader("webp", int.from_bytes(data[24:27], "little") + 1,
                           int.from_bytes(data[27:30], "little") + 1)
    return None


def read_image_header(data: bytes) -> ImageHeader | None:
    """The format and size that the first bytes of an image file claim, or None when they are not the
    start of a PNG, JPEG, BMP, TIFF or WebP file (or too damaged to say)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return _png(data)
    if data[:2] == b"\xff\xd8":
        return _jpeg(data)
    if data[:2] == b"BM":
        return _bmp(data)
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return _tiff(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    return None


def _jpeg_truncated(data: bytes) -> bool:
    """No end-of-image marker after the last start-of-scan. Entropy-coded data stuffs every 0xFF with a
    zero, so neither marker can appear inside it; an EXIF thumbnail ends before the main image's scans."""
    last_scan = data.rfind(b"\xff\xda")
    return last_scan < 0 or data.find(b"\xff\xd9", last_scan) < 0


def check_image_bytes(data: bytes, name: str, max_pixels: int = MAX_IMAGE_PIXELS) -> ImageHeader:
    """The header of an image file's bytes, or one DdadError line: empty, not an image we read, truncated
    (JPEG), zero-sized, or more than `max_pixels` pixels. Nothing is decoded."""
    if not data:
        raise DdadError(f"image file is empty (0 bytes): {name}")
    header = read_image_header(data)
    if header is None:
        raise DdadError(f"cannot decode image file (corrupt, or not a PNG, JPEG, BMP, TIFF or WebP image): {name}")
    if header.width == 0 or header.height == 0:
        raise DdadError(f"image file claims {header.width}x{header.height} pixels (corrupt): {name}")
    if header.pixels > max_pixels:
        raise DdadError(f"image file claims {header.width}x{header.height} pixels, more than the "
                        f"{max_pixels / 1e6:.0f}-megapixel limit (corrupt, or far larger than any camera "
                        f"frame): {name}")
    if header.format == "jpeg" and _jpeg_truncated(data):
        raise DdadError(f"image file is truncated (the JPEG has no end-of-image marker): {name}")
    return header


def decode_image(cv2: ModuleType, data: bytes, name: str, flags: int) -> np.ndarray:
    """The image in `data` decoded by OpenCV (`flags`: cv2.IMREAD_*), after `check_image_bytes`.

    Any failure is one DdadError line naming `name`; OpenCV's own log lines are kept off stderr meanwhile.
    """
    check_image_bytes(data, name)
    logging = getattr(getattr(cv2, "utils", None), "logging", None)  # older builds lack it: then not silenced
    with _LOG_LOCK:
        level = logging.getLogLevel() if logging else None
        if logging:
            logging.setLogLevel(logging.LOG_LEVEL_SILENT)
        try:
            image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
        except cv2.error as exc:  # what OpenCV refuses beyond the header (its own limits, odd depths)
            raise DdadError(f"cannot decode image file ({str(exc).strip().splitlines()[-1][:120]}): {name}") from None
        finally:
            if logging:
                logging.setLogLevel(level)
    if image is None or image.size == 0:
        raise DdadError(f"cannot decode image file (corrupt or not an image): {name}")
    return image
