"""Frames damaged on their way (issue 25, item 1): a JPEG cut short on an HTTP MJPEG stream, zeroed bytes
inside the frames of an MJPEG video file. Each such frame is a FAULT with its reason; nominal frames never;
every sequence number is in the event log once."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading

import cv2
import pytest

from ddad_edge.inspect.jpeg_check import MAX_ZERO_RUN, jpeg_damage
from ddad_edge.inspect.loop import LoopConfig, run_loop
from ddad_edge.inspect.sinks import EventLog, EventLogSink
from ddad_edge.inspect.sources import SourceKind, SourceSpec, VideoFileSource, open_source
from tests.inspect.checks import assert_each_seq_once, is_red
from tests.inspect.media import MjpegServer, part_image, write_video

N = 15


def expected(i: int) -> str:
    return "NG" if is_red(i) else "OK"


@pytest.mark.parametrize("cut_every_third, content_length", [(True, True), (True, False), (False, True)])
def test_mjpeg_stream_with_jpegs_cut_in_half(tmp_path, runner, cut_every_third, content_length):
    cut = (lambda i: i % 3 == 2) if cut_every_third else (lambda i: False)
    # one frame more than inspected: a cut part is known as cut when the next part's boundary arrives
    server = MjpegServer([part_image(i, is_red(i)) for i in range(N + 1)], fps=30, hold_after=N + 1, cut=cut,
                         content_length=content_length)
    events = tmp_path / "events.jsonl"
    stop = threading.Event()
    timer = threading.Timer(30, stop.set)  # a bound: a source that loses frames must fail, not hang
    timer.start()
    try:
        # keep=N: a slow loop drops no frame, so sequence number i is the server's frame i
        source = open_source(SourceSpec(SourceKind.URL, server.url, stall_s=1.5, keep=N))
        summary = run_loop(runner, source, LoopConfig(threshold=0.1, max_frames=N), None,
                           [EventLogSink(EventLog(events))], stop)
    finally:
        timer.cancel()
        server.close()
    records = assert_each_seq_once(events, N)
    assert [r["kind"] for r in records] == ["frame"] * N
    for i, r in enumerate(sorted(records, key=lambda r: r["seq"])):
        if cut(i):
            assert r["verdict"] == "FAULT", r
            if content_length:  # what arrived: half of what the part announced
                got = re.fullmatch(r"damaged frame: JPEG cut short \((\d+) bytes arrived of the (\d+) its "
                                   r"Content-Length announced\)", r["reason"])
                assert got and int(got.group(1)) == int(got.group(2)) // 2, r["reason"]
            else:
                assert r["reason"] == "damaged frame: JPEG cut short (no end-of-image marker)", r["reason"]
        else:
            assert r["verdict"] == expected(i), r
    assert summary.fault == (5 if cut_every_third else 0)


def _standard_table_video(tmp_path, images):
    """An MJPEG .avi of libjpeg-encoded frames (standard Huffman tables, as IP cameras write them), muxed by
    ffmpeg without re-encoding; also the frames' JPEG bytes."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.fail("ffmpeg is needed (Debian: apt-get install ffmpeg; scripts/setup.sh does it)")
    jpegs = []
    for i, image in enumerate(images):
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        jpegs.append(jpeg.tobytes())
        (tmp_path / f"f{i:03d}.jpg").write_bytes(jpegs[-1])
    path = tmp_path / "line.avi"
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-framerate", "20", "-i",
                    str(tmp_path / "f%03d.jpg"), "-c:v", "copy", str(path)], check=True)
    return path, jpegs


def _zero_inside(data: bytearray, jpeg: bytes, start: int, count: int) -> None:
    at = data.find(jpeg)
    assert at >= 0 and data.find(jpeg, at + 1) < 0
    data[at + start: at + start + count] = bytes(count)


def test_video_with_zeroed_bytes_inside_frames(tmp_path, runner):
    images = [part_image(i, is_red(i)) for i in range(10)]
    path, jpegs = _standard_table_video(tmp_path, images)
    data = bytearray(path.read_bytes())
    for i in (3, 8):  # 24 zero bytes in the middle of the entropy-coded data (after the headers)
        scan = jpegs[i].rfind(b"\xff\xda")
        middle = (scan + len(jpegs[i])) // 2
        assert middle > scan + 20 and middle + 24 < len(jpegs[i]) - 2
        _zero_inside(data, jpegs[i], middle, 24)
    path.write_bytes(bytes(data))
    events = tmp_path / "events.jsonl"
    summary = run_loop(runner, VideoFileSource(path), LoopConfig(threshold=0.1), None,
                       [EventLogSink(EventLog(events))])
    records = assert_each_seq_once(events, 10)
    for i, r in enumerate(records):
        if i in (3, 8):
            assert r["verdict"] == "FAULT" and "zero bytes in a row inside the JPEG data" in r["reason"], r
        else:
            assert r["verdict"] == expected(i), r
    assert summary.fault == 2


def test_zeroed_end_of_a_frame_in_an_opencv_written_video(tmp_path, runner):
    """OpenCV's own MJPG writer uses its own Huffman tables (zero runs are nominal there), but zeros over
    a frame's end-of-image marker are still seen."""
    path = write_video(tmp_path / "line.avi", [part_image(i, is_red(i)) for i in range(6)])
    cap = cv2.VideoCapture(str(path))
    cap.set(cv2.CAP_PROP_FORMAT, -1)
    packets = [cap.read()[1].tobytes() for _ in range(6)]
    cap.release()
    data = bytearray(path.read_bytes())
    _zero_inside(data, packets[4], len(packets[4]) - 12, 12)
    path.write_bytes(bytes(data))
    events = tmp_path / "events.jsonl"
    run_loop(runner, VideoFileSource(path), LoopConfig(threshold=0.1), None, [EventLogSink(EventLog(events))])
    records = assert_each_seq_once(events, 6)
    assert [r["verdict"] for r in records] == [expected(i) if i != 4 else "FAULT" for i in range(6)]
    assert records[4]["reason"] == "damaged frame: JPEG cut short (no end-of-image marker)"


def test_nominal_jpegs_pass_the_byte_checks():
    """Flat, noisy and part frames with the standard tables: no zero run reaches the bound."""
    rng = __import__("numpy").random.default_rng(0)
    frames = [part_image(3, True, 240, 320), rng.integers(0, 256, (240, 320, 3), dtype="uint8"),
              (part_image(0, False, 240, 320) * 0)]
    for image in frames:
        for quality in (30, 95, 100):
            ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
            assert jpeg_damage(jpeg.tobytes()) == "", quality
    ok, jpeg = cv2.imencode(".jpg", frames[1])
    data = bytearray(jpeg.tobytes())
    data[len(data) // 2: len(data) // 2 + MAX_ZERO_RUN + 1] = bytes(MAX_ZERO_RUN + 1)
    assert "zero bytes in a row" in jpeg_damage(bytes(data))
