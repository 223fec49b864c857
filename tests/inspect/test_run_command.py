"""`ddad-edge run` as a user runs it: one-line errors, a video, an HTTP stream, and SIGTERM mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ddad_edge.cli import main
from ddad_edge.inspect.opencv import has_gstreamer
from ddad_edge.inspect.sinks import read_events
from tests.cli_helpers import run_cli_process
from tests.inspect.checks import assert_each_seq_once, is_red
from tests.inspect.media import MjpegServer, part_image, refused_url, write_video

REPO = Path(__file__).resolve().parents[2]


def sim_levels(path: Path) -> dict[str, list[tuple[float, bool]]]:
    lines: dict[str, list[tuple[float, bool]]] = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        lines.setdefault(record["line"], []).append((record["t"], record["high"]))
    return lines


def test_missing_camera_is_one_line_and_exit_status_75():
    """75 (EX_TEMPFAIL), not 2: a USB camera can appear late after boot, and the systemd unit retries 75."""
    if os.path.exists("/dev/video0"):
        pytest.skip("this machine has /dev/video0")
    result = run_cli_process("run", "--camera", "/dev/video0")
    assert result.returncode == 75
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: camera /dev/video0 not found: no such device (video devices here: none); ")


def test_a_stream_that_is_not_up_exits_75(tmp_path, red_bundle):
    """A refused connection on 127.0.0.1: an IP camera still booting, or an RTSP server not started yet."""
    url = refused_url()
    result = run_cli_process("run", "--url", url, "--bundle", str(red_bundle.path), "--out", str(tmp_path / "out"))
    assert result.returncode == 75, result.stderr
    # OpenCV and FFmpeg print their own lines on stderr too; ours is the one error line
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: cannot open stream {url}: the camera is not up yet, or the URL is wrong "
                      "(check it with ffprobe URL)"]


def test_a_config_error_is_still_2_and_named_before_a_missing_camera(capsys):
    """A mistyped option must not be retried as if the camera were late: exit 2, whether or not the camera
    is there."""
    if os.path.exists("/dev/video0"):
        pytest.skip("this machine has /dev/video0")
    for args, expected in [(["--camera", "/dev/video0", "--on-fault", "panic"], "error: --on-fault 'panic'"),
                           (["--url", "ftp://camera"], "error: --url 'ftp://camera' is not a stream URL")]:
        assert main(["run", *args]) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(expected), (args, err)


def test_ready_on_the_reject_pin_is_one_line_before_anything_loads(tmp_path, capsys):
    """BOARD 18 and BCM 24 are header pin 18: READY high would hold the ejector on."""
    code = main(["run", "--images", str(tmp_path), "--bundle", str(tmp_path / "no bundle"),
                 "--gpio", "jetson:BOARD:18", "--ready-gpio", "jetson:BCM:24"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["error: --gpio jetson:BOARD:18 and --ready-gpio jetson:BCM:24 are the same line "
                                 "(header pin 18): READY would hold the ejector on while the loop is healthy; "
                                 "give READY a pin of its own"]


def test_one_line_errors_before_anything_loads(tmp_path, capsys):
    cases = [
        (["--video", "a.avi", "--images", "b"], "exactly one frame source"),
        (["--images", str(tmp_path), "--gpio", "jetson:18"], "--gpio"),
        (["--images", str(tmp_path), "--debounce", "3/2"], "--debounce"),
        (["--images", str(tmp_path), "--on-fault", "panic"], "--on-fault"),
        (["--images", str(tmp_path), "--bundle", str(tmp_path / "none")], "bundle folder not found"),
    ]
    if not has_gstreamer():
        cases.append((["--csi", "0"], "GStreamer"))
    for args, expected in cases:
        assert main(["run", *args]) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0], (args, err)


def test_a_refused_source_leaves_no_output_folder(tmp_path, red_bundle, capsys):
    """No events.jsonl, no ng/: a run that never inspected a frame must not look like one that did."""
    (tmp_path / "corrupt.avi").write_bytes(b"RIFF\x00\x00\x00\x00AVI not really a video")
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "no images").mkdir()
    (tmp_path / "no images" / "notes.txt").write_text("not an image")
    cases = [(["--video", str(tmp_path / "corrupt.avi")], "not a video OpenCV can decode"),
             (["--video", str(tmp_path / "empty.mp4")], "not a video OpenCV can decode"),
             (["--video", str(tmp_path / "missing.avi")], "video file not found"),
             (["--images", str(tmp_path / "no images")], "no images in")]
    for i, (source, expected) in enumerate(cases):
        out = tmp_path / f"out{i}"
        code = main(["run", *source, "--bundle", str(red_bundle.path), "--out", str(out)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and expected in err[0], (source, err)
        assert not out.exists(), (source, sorted(p.name for p in out.rglob("*")))


def test_preview_needs_a_gui_opencv(tmp_path, red_bundle, capsys):
    import cv2

    if "GTK" in cv2.getBuildInformation().split("GUI:")[1][:300] and os.environ.get("DISPLAY"):
        pytest.skip("this OpenCV has a GUI and a display")
    write_video(tmp_path / "v.avi", [part_image(i, False) for i in range(3)])
    code = main(["run", "--video", str(tmp_path / "v.avi"), "--bundle", str(red_bundle.path), "--preview",
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: --preview needs an OpenCV with a GUI")


def test_video_through_the_command(tmp_path, red_bundle, capsys):
    write_video(tmp_path / "v.avi", [part_image(i, is_red(i)) for i in range(20)])
    out = tmp_path / "out"
    code = main(["run", "--video", str(tmp_path / "v.avi"), "--bundle", str(red_bundle.path), "--gpio", "sim",
                 "--delay-ms", "200", "--pulse-ms", "5", "--out", str(out)])
    stdout = capsys.readouterr().out
    assert code == 0
    assert "frames 20: OK 16, NG 4, FAULT 0, dropped 0" in stdout
    records = assert_each_seq_once(out / "events.jsonl", 20)
    assert [r["verdict"] for r in records] == ["NG" if is_red(i) else "OK" for i in range(20)]
    assert len(list((out / "ng").glob("*.png"))) == 4
    levels = sim_levels(out / "gpio-sim.jsonl")
    assert levels["reject"][-1][1] is False and levels["ready"][-1][1] is False


def test_a_sim_log_path_that_is_a_folder_is_one_line_before_anything_opens(tmp_path, red_bundle, capsys):
    write_video(tmp_path / "v.avi", [part_image(i, False) for i in range(3)])
    out = tmp_path / "out"
    (out / "gpio-sim.jsonl").mkdir(parents=True)
    for gpio in (["--gpio", "sim"], ["--ready-gpio", "sim"]):
        code = main(["run", "--video", str(tmp_path / "v.avi"), "--bundle", str(red_bundle.path), *gpio,
                     "--out", str(out)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and err[0].startswith("error: the simulated GPIO log "), (gpio, err)
        assert sorted(p.name for p in out.iterdir()) == ["gpio-sim.jsonl"], "nothing else was created"


def test_ready_gpio_without_a_reject_line_is_driven(tmp_path, red_bundle, capsys):
    write_video(tmp_path / "v.avi", [part_image(i, is_red(i)) for i in range(5)])
    out = tmp_path / "out"
    code = main(["run", "--video", str(tmp_path / "v.avi"), "--bundle", str(red_bundle.path), "--gpio", "none",
                 "--ready-gpio", "sim", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0 and "READY high: frame 0 inspected without fault" in captured.err
    levels = sim_levels(out / "gpio-sim.jsonl")
    assert list(levels) == ["ready"] and [lv for _, lv in levels["ready"]].count(True) == 1
    assert levels["ready"][-1][1] is False
    assert [r["reject_note"] for r in assert_each_seq_once(out / "events.jsonl", 5)
            if r["verdict"] == "NG"] == ["no reject output (--gpio none)"]


def test_parts_whose_pulse_is_cancelled_at_exit_are_reported(tmp_path, red_bundle, capsys):
    """--max-frames 5 --delay-ms 5000: frame 2 is NG, its pulse is 5 s ahead at exit (beyond the 2 s drain)."""
    write_video(tmp_path / "v.avi", [part_image(i, is_red(i)) for i in range(10)])
    out = tmp_path / "out"
    code = main(["run", "--video", str(tmp_path / "v.avi"), "--bundle", str(red_bundle.path), "--gpio", "sim",
                 "--max-frames", "5", "--delay-ms", "5000", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0
    assert ("reject pulses 1: 0 fired, 0 merged into another, 1 cancelled at shutdown: those parts passed the "
            "ejector unrejected") in captured.out
    assert "pull the parts of frames (seq) 2" in captured.err
    (cancelled,) = [r for r in read_events(out / "events.jsonl") if r["kind"] == "rejects_cancelled"]
    assert cancelled["seqs"] == [2]
    assert [lv for _, lv in sim_levels(out / "gpio-sim.jsonl")["reject"]].count(True) == 0


def test_a_restart_into_the_same_out_appends_and_keeps_counting_the_ng_quota(tmp_path, red_bundle, capsys):
    """The systemd unit gives a fixed --out, so a restarted service writes into the folder of the run before
    it: the NG quota counts that run's images (disk use stays bounded across restarts), the event log grows."""
    write_video(tmp_path / "v.avi", [part_image(i, is_red(i)) for i in range(20)])  # 4 NG frames
    out = tmp_path / "out"
    args = ["run", "--video", str(tmp_path / "v.avi"), "--bundle", str(red_bundle.path), "--out", str(out),
            "--ng-max-images", "6"]
    assert main(args) == 0
    assert len(list((out / "ng").glob("*.png"))) == 4
    capsys.readouterr()
    assert main(args) == 0
    assert "NG images: 2 saved" in capsys.readouterr().out
    assert len(list((out / "ng").glob("*.png"))) == 6, "the quota counted the first run's 4 images"
    starts = [r for r in read_events(out / "events.jsonl") if r["kind"] == "start"]
    assert len(starts) == 2, "one event log, both runs in it"


def test_http_stream_through_the_command(tmp_path, red_bundle, capsys):
    server = MjpegServer([part_image(i, is_red(i)) for i in range(30)], fps=30)
    out = tmp_path / "out"
    try:
        code = main(["run", "--url", server.url, "--bundle", str(red_bundle.path), "--max-frames", "20",
                     "--out", str(out), "--events", str(tmp_path / "log" / "ev.jsonl")])
    finally:
        server.close()
    assert code == 0
    records = assert_each_seq_once(tmp_path / "log" / "ev.jsonl")
    inspected = [r for r in records if r["kind"] == "frame"]
    assert len(records) >= 20 and len(inspected) >= 10
    assert {r["verdict"] for r in inspected} == {"OK", "NG"}
    summary = [r for r in read_events(tmp_path / "log" / "ev.jsonl") if r["kind"] == "summary"][0]
    assert summary["stop_reason"] == "max frames reached" and summary["frames"] == len(records)


def test_sigterm_mid_run_finishes_cleanly(tmp_path, red_bundle):
    video = write_video(tmp_path / "v.avi", [part_image(i, is_red(i)) for i in range(900)], fps=60)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen(
        [sys.executable, "-m", "ddad_edge", "run", "--video", str(video), "--realtime", "--bundle",
         str(red_bundle.path), "--gpio", "sim", "--delay-ms", "150", "--pulse-ms", "5", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            events = out / "events.jsonl"
            if events.exists() and sum(r["kind"] == "frame" for r in read_events(events)) >= 20:
                break
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "stopped: signal" in stdout and "SIGTERM" in stderr
    records = assert_each_seq_once(out / "events.jsonl")
    assert 20 <= len(records) < 900, "stopped mid-run, with every grabbed frame accounted for"
    summary = [r for r in read_events(out / "events.jsonl") if r["kind"] == "summary"][0]
    assert summary["stop_reason"] == "signal" and summary["frames"] == len(records)
    levels = sim_levels(out / "gpio-sim.jsonl")
    assert levels["reject"][-1][1] is False and levels["ready"][-1][1] is False, "outputs left in the safe state"
    pulses, start = [], None
    for t, high in levels["reject"]:
        if high and start is None:
            start = t
        elif not high and start is not None:
            pulses.append((start, t))
            start = None
    planned = [r["reject_at"] for r in records if r.get("reject_at") is not None]
    assert planned and start is None
    for at in planned:  # every NG frame's pulse fired, on time, even the ones due after SIGTERM
        assert any(s - 0.02 <= at <= e for s, e in pulses), at


def test_the_inspection_side_never_imports_torch():
    code = ("import pkgutil, importlib, sys, ddad_edge.inspect as pkg\n"
            "for m in pkgutil.iter_modules(pkg.__path__): importlib.import_module(f'ddad_edge.inspect.{m.name}')\n"
            "import ddad_edge.cli.run\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
