"""The Prometheus endpoint (`--metrics-port`): scraped over HTTP on 127.0.0.1 while a real loop runs
(live video replay, the ONNX Runtime runner, simulated GPIO), its counters and histogram counts match
events.jsonl record for record; the run command serves it and refuses a busy port in one line."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ddad_edge.cli import main
from ddad_edge.errors import DdadError
from ddad_edge.inspect.frame import Grab
from ddad_edge.inspect.gpio_lines import GpioSpec
from ddad_edge.inspect.loop import LoopConfig, run_loop
from ddad_edge.inspect.metrics_http import MetricsServer, import_prometheus_client
from ddad_edge.inspect.reject import RejectTiming, open_reject_output
from ddad_edge.inspect.sinks import EventLog, EventLogSink, read_events
from ddad_edge.inspect.sources import SourceKind, SourceSpec, open_source
from tests.inspect.checks import assert_each_seq_once, is_red
from tests.inspect.media import part_image, write_video
from tests.inspect.wrappers import FaultyRunner, SlowRunner

REPO = Path(__file__).resolve().parents[2]


class PausingSource:
    """Passes a real source through until `after` sequence numbers were handed out, then hands out nothing
    (the line is idle) until `go` is set; `idle` tells the test that the loop has delivered all it got."""

    def __init__(self, inner, after: int) -> None:
        self.inner, self.after = inner, after
        self.name, self.live = inner.name, inner.live
        self.handed = 0
        self.idle, self.go = threading.Event(), threading.Event()

    def grab(self, max_frames: int, timeout_s: float) -> Grab:
        if self.handed >= self.after and not self.go.is_set():
            self.idle.set()
            self.go.wait(timeout_s)
            return Grab()
        grab = self.inner.grab(max_frames, timeout_s)
        self.handed += len(grab.frames) + len(grab.dropped)
        return grab

    def close(self):
        return self.inner.close()


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a scrape of http://127.0.0.1:port/metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/metrics")
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("Content-Type").startswith("text/plain")
    text = response.read().decode()
    conn.close()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_scrape_of_a_running_loop_matches_the_event_log(tmp_path, runner):
    # runs of 8 defective parts: some survive the drops of the live source
    video = write_video(tmp_path / "line.avi", [part_image(i, i // 8 % 2 == 1) for i in range(150)], fps=60)
    source = PausingSource(open_source(SourceSpec(SourceKind.VIDEO, str(video), realtime=True)), after=40)
    # ~40 ms per inference at 60 frames/s: the live source drops frames; call 3 fails: a FAULT, rejected
    slow = SlowRunner(FaultyRunner(runner, fail_on={3}), delay_s=0.04)
    reject = open_reject_output(GpioSpec.parse("sim"), RejectTiming(pulse_s=0.002))
    metrics = MetricsServer(port=0)
    assert metrics.host == "127.0.0.1"
    events = tmp_path / "events.jsonl"
    sinks = [metrics, EventLogSink(EventLog(events))]
    done = {}
    loop = threading.Thread(target=lambda: done.update(summary=run_loop(
        slow, source, LoopConfig(threshold=0.1), reject, sinks)))
    loop.start()
    try:
        assert source.idle.wait(30), "the loop never reached the pause"
        got = scrape(metrics.port)
        records = assert_each_seq_once(events)
    finally:
        source.go.set()
        loop.join(30)
    frames = [r for r in records if r["kind"] == "frame"]
    dropped = [r for r in records if r["kind"] == "dropped"]
    verdicts = {v: sum(r["verdict"] == v for r in frames) for v in ("OK", "NG", "FAULT")}
    assert verdicts["NG"] and verdicts["FAULT"] and verdicts["OK"] and dropped, (verdicts, len(dropped))

    assert got[("ddad_frames_total", ())] == len(records) >= 40
    for verdict, count in verdicts.items():
        assert got[("ddad_verdicts_total", (("verdict", verdict),))] == count
    assert got[("ddad_dropped_frames_total", ())] == len(dropped)
    assert got[("ddad_reject_pulses_total", ())] == sum(r["reject_at"] is not None for r in frames)
    assert got[("ddad_reject_pulses_total", ())] == verdicts["NG"] + verdicts["FAULT"]
    assert got[("ddad_missed_rejects_total", ())] == sum(r["reject_note"].startswith("late") for r in frames)
    for stage in ("decode", "preprocess", "infer", "decide", "reject", "sinks", "loop"):
        assert got[("ddad_stage_seconds_count", (("stage", stage),))] == len(frames), stage
    infer_s = sum(r["stages_ms"]["infer"] / r["batch"] for r in frames) / 1e3
    assert got[("ddad_stage_seconds_sum", (("stage", "infer"),))] == pytest.approx(infer_s, abs=1e-3)
    assert infer_s > 0.04 * (len(frames) - verdicts["FAULT"])  # the slow runner's sleeps are in there
    assert got[("ddad_latency_seconds_count", ())] == len(frames)
    latency_s = sum(r["latency_ms"] for r in frames) / 1e3
    assert got[("ddad_latency_seconds_sum", ())] == pytest.approx(latency_s, abs=1e-3)
    inf_bucket = got[("ddad_latency_seconds_bucket", (("le", "+Inf"),))]
    assert inf_bucket == len(frames)
    last_scored = [r for r in frames if r["score"] is not None][-1]
    assert got[("ddad_last_score", ())] == pytest.approx(last_scored["score"], rel=1e-6)

    # the loop ran on to the end of the video and closed the endpoint; the totals still agree
    assert not loop.is_alive()
    summary = done["summary"]
    final = assert_each_seq_once(events)
    assert summary.frames == len(final) > len(records)
    assert summary.reject_pulses == reject.pulses_requested
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", metrics.port), timeout=1).close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_run_command_serves_metrics_until_it_stops(tmp_path, red_bundle):
    video = write_video(tmp_path / "v.avi", [part_image(i, is_red(i)) for i in range(900)], fps=60)
    out, port = tmp_path / "out", free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen(
        [sys.executable, "-m", "ddad_edge", "run", "--video", str(video), "--realtime", "--bundle",
         str(red_bundle.path), "--metrics-port", str(port), "--out", str(out), "--no-ng-images"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    got = {}
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and got.get(("ddad_frames_total", ()), 0) < 10:
            time.sleep(0.2)
            try:
                got = scrape(port)
            except OSError:
                continue  # not listening yet
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert got[("ddad_frames_total", ())] >= 10
    assert f"metrics: http://127.0.0.1:{port}/metrics" in stderr
    records = assert_each_seq_once(out / "events.jsonl")
    assert len(records) >= got[("ddad_frames_total", ())]
    ng = sum(r.get("verdict") == "NG" for r in records)
    assert ng >= got[("ddad_verdicts_total", (("verdict", "NG"),))]
    summary = [r for r in read_events(out / "events.jsonl") if r["kind"] == "summary"][0]
    assert re.search(rf"frames {summary['frames']}: OK {summary['ok']}, NG {summary['ng']}", stdout)


def test_busy_port_and_missing_package_are_one_line(tmp_path, red_bundle, capsys, monkeypatch):
    video = write_video(tmp_path / "v.avi", [part_image(i, False) for i in range(3)])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["run", "--video", str(video), "--bundle", str(red_bundle.path), "--metrics-port", str(port),
                     "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"error: cannot serve metrics on 127.0.0.1:{port}: Address already in use"]
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as if it were not installed
    with pytest.raises(DdadError, match=r"needs the Python package 'prometheus_client'.*pip install prometheus-client"):
        import_prometheus_client()
