"""A stream server no one here wrote: Debian's ffmpeg serves a video as HTTP MJPEG (`-f mpjpeg -listen 1`) into
`ddad-edge run --url`; it is killed mid-run and started again on the same port. Every sequence number is
accounted for, the loss is a FAULT with READY low, the source reconnects with backoff, and inspection
resumes with READY high again.

RTSP is not tried: ffmpeg can only *receive* RTSP as a listener (`-rtsp_flags listen`), it cannot serve
it, and a second, hand-made RTSP server here would be the weaker test this one replaces.
`scripts/setup.sh` installs ffmpeg where it is absent, so a missing ffmpeg fails here, not skips.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ddad_edge.inspect.sinks import read_events
from tests.inspect.browser import wait_for
from tests.inspect.checks import assert_each_seq_once, is_red
from tests.inspect.media import part_image, write_video

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port, read from /proc (a probe connection would be the one
    client `-listen 1` serves)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        if any(int(f[1].split(":")[1], 16) == port and f[3] == "0A" for f in (line.split() for line in lines)):
            return True
    return False


def serve(video: Path, port: int, wait: bool = True) -> subprocess.Popen:
    """ffmpeg serving `video` in a loop at its frame rate to one client. `wait`: until it listens (not on a
    restart: the loop's reconnect may be accepted at once, and `-listen 1` then stops listening)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.fail("ffmpeg is needed (Debian: apt-get install ffmpeg; scripts/setup.sh does it)")
    process = subprocess.Popen(
        [ffmpeg, "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(video),
         "-c:v", "copy", "-f", "mpjpeg", "-listen", "1", f"http://127.0.0.1:{port}/stream.mjpg"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if wait:
        wait_for(lambda: listening(port) or process.poll() is not None, 20, "ffmpeg to listen")
    assert process.poll() is None, process.stderr.read().decode()
    return process


def frames_logged(events: Path) -> list[dict]:
    return [r for r in read_events(events) if r["kind"] == "frame"] if events.exists() else []


def test_ffmpeg_stream_stopped_and_restarted_mid_run(tmp_path, red_bundle):
    video = write_video(tmp_path / "line.avi", [part_image(i, is_red(i)) for i in range(40)], fps=20)
    port, out = free_port(), tmp_path / "out"
    events = out / "events.jsonl"
    server = serve(video, port)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    run = subprocess.Popen(
        [sys.executable, "-m", "ddad_edge", "run", "--url", f"http://127.0.0.1:{port}/stream.mjpg", "--bundle",
         str(red_bundle.path), "--gpio", "sim", "--ready-gpio", "sim", "--stall-s", "1.5", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for(lambda: len(frames_logged(events)) >= 30, 60, "30 frames inspected from ffmpeg")
        server.kill()  # the stream server dies mid-stream
        server.wait(10)
        wait_for(lambda: any(r["verdict"] == "FAULT" for r in frames_logged(events)), 15, "a FAULT frame")
        time.sleep(1.0)  # gone for a while: reconnects are refused, with backoff
        server = serve(video, port, wait=False)
        seen = len(frames_logged(events))
        wait_for(lambda: len(frames_logged(events)) >= seen + 30, 60, "30 more frames after the restart")
        run.send_signal(signal.SIGTERM)
        stdout, stderr = run.communicate(timeout=30)
    finally:
        for process in (run, server):
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert run.returncode == 0, stderr
    records = assert_each_seq_once(events)  # 0 frames unaccounted for
    frames = [r for r in records if r["kind"] == "frame"]
    faults = [i for i, r in enumerate(frames) if r["verdict"] == "FAULT"]
    assert faults and all("camera lost" in frames[i]["reason"] or "stalled" in frames[i]["reason"] for i in faults)
    before, after = frames[:faults[0]], frames[faults[-1] + 1:]
    assert {r["verdict"] for r in before} == {"OK", "NG"} and {r["verdict"] for r in after} == {"OK", "NG"}
    assert len(after) >= 25, "inspection resumed"
    # READY: high while inspecting, low from the fault until the stream was back, high again, low at exit
    ready = [json.loads(line) for line in (out / "gpio-sim.jsonl").read_text().splitlines()]
    ready = [(r["t"], r["high"]) for r in ready if r["line"] == "ready"]
    levels = [(t, high) for k, (t, high) in enumerate(ready) if k == 0 or high != ready[k - 1][1]]
    assert [high for _, high in levels] == [False, True, False, True, False], levels
    (_, _), (_, _), (low_at, _), (high_again, _), (_, _) = levels
    assert frames[faults[0] - 1]["t_capture"] < low_at <= frames[faults[0]]["t_capture"] + 1.0, "low at the loss"
    assert high_again > frames[faults[-1]]["t_capture"], "low until the stream was back"
    assert "reconnect" in stderr or "restored" in stderr, stderr[-2000:]
