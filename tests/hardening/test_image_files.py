"""Image files as they arrive from disks and cameras: truncated, empty, 16-bit, not images at all, or
claiming absurd sizes in their header.

Every one is read correctly or refused with one DdadError line naming the file, by the dataset reader
(`ddad_edge.data.folders`) and, as a FAULT frame, by the inspection loop's image-folder source. A header
claiming more than MAX_IMAGE_PIXELS (2^26, 67 MP) is refused before anything is decoded.
"""

from __future__ import annotations

import resource
import struct
import time
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ddad_edge.data.folders import load_image, load_mask
from ddad_edge.data.image_header import MAX_IMAGE_PIXELS, check_image_bytes, read_image_header
from ddad_edge.errors import DdadError
from ddad_edge.inspect.loop import LoopConfig, run_loop
from ddad_edge.inspect.sinks import EventLog, EventLogSink
from ddad_edge.inspect.sources import ImageFolderSource
from tests.cli_helpers import assert_one_line
from tests.hardening.checks import fuzz
from tests.inspect.checks import assert_each_seq_once

FORMATS = {"png": ".png", "jpeg": ".jpg", "bmp": ".bmp", "tiff": ".tif", "webp": ".webp"}


def encode(image: np.ndarray, fmt: str) -> bytes:
    ok, data = cv2.imencode(FORMATS[fmt], image)
    assert ok
    return data.tobytes()


def noise(h: int, w: int, channels: int = 3, dtype=np.uint8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 1 else (h, w, channels)
    return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)


# --- headers that lie about the size ----------------------------------------------------------------


def claim_size(data: bytes, fmt: str, width: int, height: int) -> bytes:
    """A real encoded image with its header changed to claim width x height (checksums kept valid)."""
    b = bytearray(data)
    if fmt == "png":
        b[16:24] = struct.pack(">II", width, height)
        b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])) & 0xFFFFFFFF)
    elif fmt == "jpeg":
        sof = next(i for i in range(2, len(b) - 1) if b[i] == 0xFF and b[i + 1] in (0xC0, 0xC1, 0xC2))
        b[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    elif fmt == "bmp":
        b[18:26] = struct.pack("<ii", width, height)
    elif fmt == "tiff":
        assert b[:2] == b"II"
        (ifd,) = struct.unpack("<I", b[4:8])
        (count,) = struct.unpack("<H", b[ifd:ifd + 2])
        for k in range(count):
            at = ifd + 2 + 12 * k
            tag, kind = struct.unpack("<HH", b[at:at + 4])
            if tag in (256, 257):
                value = width if tag == 256 else height
                b[at + 8:at + 12] = struct.pack("<H", value) + b"\0\0" if kind == 3 else struct.pack("<I", value)
    elif fmt == "webp":
        assert b[12:16] == b"VP8L"
        bits = int.from_bytes(b[21:25], "little") & ~((1 << 28) - 1)
        b[21:25] = (bits | (width - 1) | ((height - 1) << 14)).to_bytes(4, "little")
    return bytes(b)


@pytest.mark.parametrize("fmt,width,height", [
    ("png", 40000, 40000),  # beyond OpenCV's own 2^30 limit: it used to raise cv2.error, a traceback
    ("png", 10000, 10000),  # within OpenCV's limit: it would allocate 300 MB for a file of a few KB
    ("jpeg", 65000, 65000), ("bmp", 20000, 20000), ("tiff", 65000, 65000), ("webp", 16384, 16384),
])
def test_absurd_sizes_are_refused_before_decoding(tmp_path, fmt, width, height):
    data = claim_size(encode(noise(16, 16), fmt), fmt, width, height)
    assert read_image_header(data).width == width and read_image_header(data).height == height
    path = tmp_path / f"huge{FORMATS[fmt]}"
    path.write_bytes(data)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    with pytest.raises(DdadError) as info:
        load_image(path, 32)
    assert_one_line(info.value, path.name, f"{width}x{height}", "megapixel limit")
    assert time.monotonic() - start < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 100_000  # KiB: nothing big was allocated


def png_bomb(width: int, height: int) -> bytes:
    """A valid grey PNG of zeros: a few dozen KB on disk, width x height bytes once decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    packer = zlib.compressobj(9)
    row = bytes(1 + width)  # filter byte 0, then the row's pixels
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_a_valid_image_bomb_is_refused(tmp_path):
    """Not a lying header but a real, valid image: 72 MP of zeros compress to under 100 KB."""
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bomb(9000, 8000))
    assert path.stat().st_size < 100_000 and read_image_header(path.read_bytes()).pixels == 72_000_000
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(DdadError) as info:
        load_image(path, 32)
    assert_one_line(info.value, "bomb.png", "9000x8000", "megapixel limit")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 50_000  # KiB; decoding needs 70 MB


def test_the_limit_itself_is_allowed():
    side = int(MAX_IMAGE_PIXELS ** 0.5)  # 8192 x 8192, exactly the limit
    header = claim_size(encode(noise(8, 8), "png"), "png", side, side)
    assert check_image_bytes(header, "x").pixels == MAX_IMAGE_PIXELS
    with pytest.raises(DdadError):
        check_image_bytes(claim_size(header, "png", side, side + 1), "x")


@fuzz(30)
@given(fmt=st.sampled_from(list(FORMATS)), width=st.integers(1, 70), height=st.integers(1, 70),
       channels=st.sampled_from([1, 3, 4]))
def test_headers_of_real_files_are_read_exactly(tmp_path, fmt, width, height, channels):
    if fmt == "jpeg" and channels == 4:
        channels = 3  # JPEG has no alpha
    image = noise(height, width, channels, seed=width * height)
    data = encode(image, fmt)
    header = read_image_header(data)
    assert (header.format, header.width, header.height) == (fmt, width, height)
    path = tmp_path / f"x{FORMATS[fmt]}"
    path.write_bytes(data)
    assert load_image(path, None).shape == (height, width, 3)


# --- damaged files ----------------------------------------------------------------------------------


@fuzz(40)
@given(fmt=st.sampled_from(list(FORMATS)), keep=st.floats(0.0, 0.995))
def test_truncated_files_are_one_line(tmp_path, fmt, keep):
    data = encode(noise(40, 50, seed=1), fmt)
    path = tmp_path / f"cut{FORMATS[fmt]}"
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(DdadError) as info:
        load_image(path, 32)
    assert_one_line(info.value, path.name)


@pytest.mark.parametrize("content,needle", [
    (b"", "0 bytes"),
    (b"hello, this is a text file\n", "not a PNG"),
    (b"\x89PNG\r\n\x1a\n", "not a PNG"),  # a signature and nothing else
    (b"\xff\xd8\xff\xe0" + bytes(40), "not a PNG"),
    (b"BM" + bytes(10), "not a PNG"),
    (bytes(range(256)) * 8, "not a PNG"),
])
def test_files_that_are_no_images(tmp_path, content, needle):
    path = tmp_path / "x.png"
    path.write_bytes(content)
    for read in (lambda: load_image(path, 32), lambda: load_mask(path, 32)):
        with pytest.raises(DdadError) as info:
            read()
        assert_one_line(info.value, "x.png", needle)


def test_no_decoder_chatter_on_stderr(tmp_path, capfd):
    """OpenCV's own error lines stay off stderr: the one DdadError line is all a user sees."""
    data = encode(noise(40, 50), "bmp")
    (tmp_path / "cut.bmp").write_bytes(data[:len(data) // 2])
    with pytest.raises(DdadError):
        load_image(tmp_path / "cut.bmp", 32)
    assert capfd.readouterr().err == ""


@fuzz(10)
@given(gray=st.booleans(), seed=st.integers(0, 1000), fmt=st.sampled_from(["png", "tiff"]))
def test_16_bit_images_scale_by_the_full_range(tmp_path, gray, seed, fmt):
    deep = noise(12, 10, 1 if gray else 3, np.uint16, seed)
    path = tmp_path / f"deep{FORMATS[fmt]}"
    path.write_bytes(encode(deep, fmt))
    expected = (deep.astype(np.uint32) * 255 // 65535).astype(np.uint8)
    expected = np.repeat(expected[..., None], 3, axis=2) if gray else expected[..., ::-1]
    assert np.array_equal(load_image(path, None), expected)


# --- the same files in the inspection loop ----------------------------------------------------------


def test_the_folder_source_turns_bad_files_into_fault_frames(tmp_path, runner):
    folder = tmp_path / "images"
    folder.mkdir()
    good = encode(noise(32, 32), "png")
    files = {
        "00_good.png": good,
        "01_truncated.jpg": encode(noise(32, 32), "jpeg")[:300],
        "02_empty.png": b"",
        "03_huge.png": claim_size(good, "png", 30000, 30000),
        "04_text.png": b"not an image",
        "05_deep.png": encode(noise(32, 32, 3, np.uint16), "png"),
        "06_gray.png": encode(noise(32, 32, 1), "png"),
        "07_huge.bmp": claim_size(encode(noise(8, 8), "bmp"), "bmp", 12000, 12000),
        "08_good.webp": encode(noise(32, 32), "webp"),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    events = tmp_path / "events.jsonl"
    summary = run_loop(runner, ImageFolderSource(folder), LoopConfig(threshold=2.0), None,
                       [EventLogSink(EventLog(events))])
    records = assert_each_seq_once(events, len(files))
    verdicts = {r["name"]: (r["verdict"], r["reason"]) for r in records}
    for name in ("00_good.png", "05_deep.png", "06_gray.png", "08_good.webp"):
        assert verdicts[name][0] == "OK", (name, verdicts[name])
    for name in ("01_truncated.jpg", "02_empty.png", "03_huge.png", "04_text.png", "07_huge.bmp"):
        verdict, reason = verdicts[name]
        assert verdict == "FAULT" and name in reason and "\n" not in reason, (name, reason)
    assert "megapixel" in verdicts["03_huge.png"][1] and "truncated" in verdicts["01_truncated.jpg"][1]
    assert summary.fault == 5 and summary.ok == 4
