"""The loop end to end: real OpenCV sources, the real ONNX Runtime runner, the simulated GPIO output,
the event log and NG images. Every frame is accounted for, verdicts follow the red patches, pulses land
at capture time + travel delay."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from ddad_edge.inspect.decide import Debounce
from ddad_edge.inspect.gpio_lines import GpioSpec
from ddad_edge.inspect.loop import LoopConfig, run_loop
from ddad_edge.inspect.ng_images import NgImageSink, NgQuota
from ddad_edge.inspect.preprocess import Roi
from ddad_edge.inspect.profile import profile_loop
from ddad_edge.inspect.reject import RejectTiming, open_reject_output
from ddad_edge.inspect.sinks import EventLog, EventLogSink, Sink, read_events
from ddad_edge.inspect.sources import ImageFolderSource, SourceKind, SourceSpec, VideoFileSource, open_source
from tests.inspect.checks import TOLERANCE_S, assert_each_seq_once, assert_pulses_match, frame_records, is_red
from tests.inspect.media import MjpegServer, index_of, part_image, write_images, write_video
from tests.inspect.wrappers import SlowRunner


class CollectSink(Sink):
    """Keeps (seq, verdict, score, source index) of every result, to check verdicts against the frames."""

    name = "collect"

    def __init__(self):
        self.seen = []

    def on_result(self, result):
        image = result.frame.image
        self.seen.append((result.frame.seq, result.verdict.value, result.score,
                          None if image is None else index_of(image)))


def test_video_file_through_the_loop(tmp_path, runner):
    n = 40
    video = write_video(tmp_path / "line.avi", [part_image(i, is_red(i)) for i in range(n)])
    reject = open_reject_output(GpioSpec.parse("sim"), RejectTiming(pulse_s=0.01, delay_s=0.15))
    sinks = [NgImageSink(tmp_path / "ng", NgQuota(), 0.1), EventLogSink(EventLog(tmp_path / "events.jsonl"))]
    summary = run_loop(runner, VideoFileSource(video), LoopConfig(threshold=0.1), reject, sinks)
    records = assert_each_seq_once(tmp_path / "events.jsonl", n)
    assert [r["verdict"] for r in records] == ["NG" if is_red(i) else "OK" for i in range(n)]
    assert (summary.frames, summary.ok, summary.ng, summary.fault, summary.dropped) == (n, 32, 8, 0, 0)
    assert all(0.2 < r["score"] < 0.3 for r in records if r["verdict"] == "NG")
    assert all(r["score"] < 0.05 for r in records if r["verdict"] == "OK")
    assert all(r["reject_note"] == "verdict OK" for r in records if r["verdict"] == "OK")
    pulses, planned = assert_pulses_match(records, reject.reject_line, 0.15)
    assert len(planned) == 8 and summary.reject_pulses == 8 and 1 <= len(pulses) <= 8
    assert sorted(p.name for p in (tmp_path / "ng").iterdir()) == sorted(
        r["ng_image"].split("/")[1] for r in records if r["verdict"] == "NG")
    stages = records[0]["stages_ms"]
    assert set(stages) == {"decode", "preprocess", "infer", "decide", "reject", "sinks", "loop"}
    assert summary.latency_ms["p99"] is not None and summary.stop_reason.value == "end of source"
    assert reject.ready_line.level is False, "READY is low once the loop has stopped"
    kinds = [r["kind"] for r in read_events(tmp_path / "events.jsonl")]
    assert kinds[0] == "start" and kinds[-1] == "summary"


def test_pulses_land_at_capture_plus_delay_one_per_ng_frame(tmp_path, runner):
    n = 16
    video = write_video(tmp_path / "line.avi", [part_image(i, i % 4 == 1) for i in range(n)])
    reject = open_reject_output(GpioSpec.parse("sim"), RejectTiming(pulse_s=0.02, delay_s=0.1))
    slow = SlowRunner(runner, delay_s=0.015)  # NG frames ~60 ms apart: their pulses do not touch
    run_loop(slow, VideoFileSource(video), LoopConfig(threshold=0.1), reject,
             [EventLogSink(EventLog(tmp_path / "events.jsonl"))])
    records = frame_records(tmp_path / "events.jsonl")
    pulses, planned = assert_pulses_match(records, reject.reject_line, 0.1)
    assert len(planned) == 4 and len(pulses) == 4
    for (start, end), r in zip(pulses, planned):
        assert abs(start - (r["t_capture"] + 0.1)) < TOLERANCE_S
        assert abs((end - start) - 0.02) < TOLERANCE_S


def test_image_folder_in_batches_with_roi(tmp_path, runner):
    images = []
    for i in range(10):
        big = np.zeros((120, 160, 3), np.uint8)
        big[20:68, 40:104] = part_image(i, is_red(i))  # the part sits in a 64x48 region of the frame
        big[:, 120:] = (255, 0, 0)  # red clutter outside the ROI must not count
        images.append(big)
    write_images(tmp_path / "imgs", images)
    sinks = [EventLogSink(EventLog(tmp_path / "events.jsonl"))]
    config = LoopConfig(threshold=0.1, batch=4, roi=Roi(40, 20, 64, 48))
    summary = run_loop(runner, ImageFolderSource(tmp_path / "imgs"), config, None, sinks)
    records = assert_each_seq_once(tmp_path / "events.jsonl", 10)
    assert [r["verdict"] for r in records] == ["NG" if is_red(i) else "OK" for i in range(10)]
    assert [r["batch"] for r in records] == [4, 4, 4, 4, 4, 4, 4, 4, 2, 2]
    assert summary.ng == 2


def test_http_mjpeg_stream_through_the_loop(tmp_path, runner):
    server = MjpegServer([part_image(i, is_red(i)) for i in range(30)], fps=30)
    collect = CollectSink()
    try:
        source = open_source(SourceSpec(SourceKind.URL, server.url, stall_s=2.0))
        summary = run_loop(runner, source, LoopConfig(threshold=0.1, max_frames=25), None,
                           [collect, EventLogSink(EventLog(tmp_path / "events.jsonl"))])
    finally:
        server.close()
    assert_each_seq_once(tmp_path / "events.jsonl")
    inspected = [s for s in collect.seen if s[3] is not None]
    assert len(inspected) >= 15 and summary.frames >= 25
    for seq, verdict, score, index in inspected:
        assert verdict == ("NG" if is_red(index) else "OK"), (seq, index, score)


def test_ng_quota_stops_saving_never_inspecting(tmp_path, runner):
    n = 20
    video = write_video(tmp_path / "line.avi", [part_image(i, i % 2 == 0) for i in range(n)])
    reject = open_reject_output(GpioSpec.parse("sim"), RejectTiming(pulse_s=0.005))
    sinks = [NgImageSink(tmp_path / "ng", NgQuota(max_images=3), 0.1), EventLogSink(EventLog(tmp_path / "ev.jsonl"))]
    summary = run_loop(runner, VideoFileSource(video), LoopConfig(threshold=0.1), reject, sinks)
    records = assert_each_seq_once(tmp_path / "ev.jsonl", n)
    ng = [r for r in records if r["verdict"] == "NG"]
    assert len(ng) == 10 and summary.ng == 10 and summary.reject_pulses == 10
    assert len(list((tmp_path / "ng").glob("*.png"))) == 3
    assert sum(r["ng_image"] is not None for r in ng) == 3
    assert all("quota reached" in r["ng_image_note"] for r in ng if r["ng_image"] is None)
    notes = [r for r in read_events(tmp_path / "ev.jsonl") if r["kind"] == "status"]
    assert len([r for r in notes if "quota" in r["message"]]) == 1


def test_debounce_in_the_loop(tmp_path, runner):
    pattern = [0, 1, 0, 1, 1, 0, 0, 1, 1, 1]
    video = write_video(tmp_path / "line.avi", [part_image(i, bool(p)) for i, p in enumerate(pattern)])
    sinks = [EventLogSink(EventLog(tmp_path / "events.jsonl"))]
    run_loop(runner, VideoFileSource(video), LoopConfig(threshold=0.1, debounce=Debounce(2, 2)), None, sinks)
    records = frame_records(tmp_path / "events.jsonl")
    assert [r["verdict"] for r in records] == ["OK", "OK", "OK", "OK", "NG", "OK", "OK", "OK", "NG", "NG"]
    assert [r["above_threshold"] for r in records] == [bool(p) for p in pattern]


def test_status_page_and_stream_on_localhost(tmp_path, runner):
    import http.client
    import json

    from ddad_edge.inspect.status_server import StatusServer

    video = write_video(tmp_path / "line.avi", [part_image(i, is_red(i)) for i in range(300)], fps=60)
    server = StatusServer(port=0)
    assert server.host == "127.0.0.1"
    stop = threading.Event()
    source = open_source(SourceSpec(SourceKind.VIDEO, str(video), realtime=True))
    loop = threading.Thread(target=run_loop, args=(runner, source, LoopConfig(threshold=0.1), None, [server], stop))
    loop.start()
    try:
        time.sleep(0.3)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.request("GET", "/status.json")
        status = json.loads(conn.getresponse().read())
        assert status["frames"] > 0 and status["OK"] + status["NG"] + status["FAULT"] + status["dropped"] == \
            status["frames"]
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.request("GET", "/stream.mjpg")
        response = conn.getresponse()
        assert response.getheader("Content-Type").startswith("multipart/x-mixed-replace")
        jpegs = []
        buffer = b""
        while len(jpegs) < 2:
            buffer += response.read1(65536)
            while b"\xff\xd9" in buffer and b"\xff\xd8" in buffer:
                start = buffer.index(b"\xff\xd8")
                end = buffer.index(b"\xff\xd9", start) + 2
                jpegs.append(buffer[start:end])
                buffer = buffer[end:]
        conn.close()
    finally:
        stop.set()
        loop.join(10)
    import cv2

    decoded = [cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR) for j in jpegs]
    assert all(d is not None and d.shape == (48, 64, 3) for d in decoded)
    assert not loop.is_alive()


def test_profile_gives_per_stage_samples(tmp_path, runner):
    video = write_video(tmp_path / "line.avi", [part_image(i, False) for i in range(30)])
    profile = profile_loop(runner, VideoFileSource(video), n_frames=20)
    assert profile.summary.frames == 20
    for stage in ("decode", "preprocess", "infer", "decide", "reject", "sinks", "loop", "latency"):
        assert profile.stage_ms[stage].shape == (20,), stage
    assert np.all(profile.overhead_ms >= 0) and np.all(profile.stage_ms["infer"] > 0)
    p = profile.percentiles()
    assert p["overhead"]["p50"] <= p["loop"]["p50"]


def test_loop_time_is_the_sum_of_the_frames_own_stages(tmp_path, runner):
    video = write_video(tmp_path / "line.avi", [part_image(i, False) for i in range(12)])
    run_loop(runner, VideoFileSource(video), LoopConfig(threshold=0.1, batch=4), None,
             [EventLogSink(EventLog(tmp_path / "events.jsonl"))])
    for r in frame_records(tmp_path / "events.jsonl"):
        st = r["stages_ms"]
        shared = (st["preprocess"] + st["infer"] + st["decide"] + st["reject"]) / r["batch"]
        assert abs(st["loop"] - (shared + st["decode"] + st["sinks"])) < 0.01


def test_max_frames_is_never_exceeded_by_a_batch(tmp_path, runner):
    write_images(tmp_path / "imgs", [part_image(i, is_red(i)) for i in range(12)])
    for max_frames, batch, batches in ((1, 8, [1]), (5, 4, [4, 4, 4, 4, 1])):
        events = tmp_path / f"events-{max_frames}-{batch}.jsonl"
        summary = run_loop(runner, ImageFolderSource(tmp_path / "imgs"),
                           LoopConfig(threshold=0.1, batch=batch, max_frames=max_frames), None,
                           [EventLogSink(EventLog(events))])
        records = assert_each_seq_once(events, max_frames)
        assert [r["batch"] for r in records] == batches
        assert summary.frames == summary.inspected == max_frames and summary.stop_reason.value == "max frames reached"


def test_console_says_ready_only_where_a_ready_line_is_driven(tmp_path, runner, caplog):
    video = write_video(tmp_path / "line.avi", [part_image(i, False) for i in range(3)])
    with caplog.at_level(logging.INFO, logger="ddad_edge.inspect"):
        run_loop(runner, VideoFileSource(video), LoopConfig(threshold=0.1), None, [])
    messages = [r.getMessage() for r in caplog.records]
    assert "healthy (no READY line): frame 0 inspected without fault" in messages
    assert not any("READY high" in m for m in messages)
    caplog.clear()
    ready_only = open_reject_output(GpioSpec.parse("none"), RejectTiming(), ready=GpioSpec.parse("sim"))
    with caplog.at_level(logging.INFO, logger="ddad_edge.inspect"):
        run_loop(runner, VideoFileSource(video), LoopConfig(threshold=0.1), ready_only, [])
    assert "READY high: frame 0 inspected without fault" in [r.getMessage() for r in caplog.records]
    assert [lv for _, lv in ready_only.ready_line.changes].count(True) == 1
