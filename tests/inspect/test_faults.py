"""Fault injection: a runner that raises, a runner slower than the deadline, a verdict too late for the
ejector, a source that dies mid-stream. Each ends with 0 frames unaccounted, the right verdicts, READY
low during the fault and high again after recovery."""

from __future__ import annotations

import threading

from ddad_edge.inspect.decide import FaultPolicy
from ddad_edge.inspect.gpio_lines import GpioSpec
from ddad_edge.inspect.grabber import Backoff
from ddad_edge.inspect.loop import LoopConfig, run_loop
from ddad_edge.inspect.reject import RejectTiming, open_reject_output
from ddad_edge.inspect.sinks import EventLog, EventLogSink, Sink, read_events
from ddad_edge.inspect.sources import SourceKind, SourceSpec, VideoFileSource, open_source
from ddad_edge.inspect.summary import StopReason
from tests.inspect.checks import assert_each_seq_once, frame_records
from tests.inspect.media import MjpegServer, part_image, write_video
from tests.inspect.wrappers import FaultyRunner, SlowRunner


def ready_edges(output):
    """The READY level changes, consecutive repeats collapsed: [False, True, False, ...]."""
    levels = [level for _, level in output.ready_line.changes]
    return [lv for i, lv in enumerate(levels) if i == 0 or levels[i - 1] != lv]


def sim_output(**timing):
    return open_reject_output(GpioSpec.parse("sim"), RejectTiming(**{"pulse_s": 0.005, **timing}))


def video_of(tmp_path, n, red=lambda i: False):
    return VideoFileSource(write_video(tmp_path / "line.avi", [part_image(i, red(i)) for i in range(n)]))


def test_runner_raising_is_fault_then_recovery(tmp_path, runner):
    reject = sim_output()
    events = tmp_path / "events.jsonl"
    summary = run_loop(FaultyRunner(runner, fail_on={3, 7}), video_of(tmp_path, 12), LoopConfig(threshold=0.1),
                       reject, [EventLogSink(EventLog(events))])
    records = assert_each_seq_once(events, 12)
    faults = [r for r in records if r["verdict"] == "FAULT"]
    assert [r["seq"] for r in faults] == [3, 7]
    assert all("inference error: RuntimeError: injected failure" in r["reason"] for r in faults)
    assert all(r["reject_at"] is not None for r in faults), "--on-fault reject rejects the uninspected part"
    assert summary.fault == 2 and summary.ok == 10 and summary.reject_pulses == 2
    # READY: low at start, high after frame 0, low at 3, high at 4, low at 7, high at 8, low at the end
    assert ready_edges(reject) == [False, True, False, True, False, True, False]


def test_runner_over_the_deadline_with_stop_policy(tmp_path, runner):
    reject = sim_output()
    events = tmp_path / "events.jsonl"
    slow = SlowRunner(runner, delay_s=0.3, slow_on={5})
    config = LoopConfig(threshold=0.1, deadline_ms=150, on_fault=FaultPolicy.STOP)
    summary = run_loop(slow, video_of(tmp_path, 20), config, reject, [EventLogSink(EventLog(events))])
    records = assert_each_seq_once(events, 6)  # the loop stopped at the slow frame; nothing else was read
    assert [r["verdict"] for r in records] == ["OK"] * 5 + ["FAULT"]
    assert "over the 150 ms deadline" in records[5]["reason"] and records[5]["reject_at"] is None
    assert records[5]["reject_note"] == "fault: --on-fault stop"
    assert summary.stop_reason is StopReason.FAULT and reject.ready_line.level is False


def test_runner_over_the_deadline_with_ignore_policy(tmp_path, runner):
    reject = sim_output()
    events = tmp_path / "events.jsonl"
    slow = SlowRunner(runner, delay_s=0.3, slow_on={2})
    config = LoopConfig(threshold=0.1, deadline_ms=150, on_fault=FaultPolicy.IGNORE)
    summary = run_loop(slow, video_of(tmp_path, 6, red=lambda i: i == 2), config, reject,
                       [EventLogSink(EventLog(events))])
    records = assert_each_seq_once(events, 6)
    assert [r["verdict"] for r in records] == ["OK", "OK", "FAULT", "OK", "OK", "OK"]
    assert summary.reject_pulses == 0 and reject.reject_line.intervals(high=True) == []
    assert ready_edges(reject) == [False, True, False, True, False]


def test_ng_verdict_too_late_for_the_ejector_is_a_fault(tmp_path, runner):
    reject = sim_output(delay_s=0.1, max_late_s=0.005)
    events = tmp_path / "events.jsonl"
    slow = SlowRunner(runner, delay_s=0.2, slow_on={1})
    summary = run_loop(slow, video_of(tmp_path, 4, red=lambda i: i in (1, 3)), LoopConfig(threshold=0.1), reject,
                       [EventLogSink(EventLog(events))])
    records = assert_each_seq_once(events, 4)
    assert [r["verdict"] for r in records] == ["OK", "FAULT", "OK", "NG"]
    assert "reject late by" in records[1]["reason"] and records[1]["reject_at"] is None
    assert summary.missed_rejects == 1 and summary.reject_pulses == 1  # only frame 3's pulse fired
    assert len(reject.reject_line.intervals(high=True)) == 1


def test_truncated_video_ends_in_a_fault_frame(tmp_path, runner):
    path = write_video(tmp_path / "line.avi", [part_image(i, False) for i in range(40)])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    reject = sim_output()
    events = tmp_path / "events.jsonl"
    summary = run_loop(runner, VideoFileSource(path), LoopConfig(threshold=0.1), reject,
                       [EventLogSink(EventLog(events))])
    records = assert_each_seq_once(events)
    assert records[-1]["verdict"] == "FAULT" and "ended early" in records[-1]["reason"]
    assert records[-2]["verdict"] == "FAULT" and "JPEG cut short" in records[-2]["reason"]  # the frame cut through
    assert all(r["verdict"] == "OK" for r in records[:-2])
    assert summary.fault == 2 and summary.reject_pulses == 2 and summary.stop_reason is StopReason.END


def test_stream_dying_mid_run_drops_ready_until_it_is_back(tmp_path, runner):
    """The camera stream ends after 15 frames and refuses connections for 0.5 s: one FAULT, READY low,
    reconnect with backoff, READY high again on the first good frame."""
    server = MjpegServer([part_image(i, False) for i in range(15)], fps=40, refuse_s=0.5)
    reject = sim_output()
    events = tmp_path / "events.jsonl"
    try:
        source = open_source(SourceSpec(SourceKind.URL, server.url, stall_s=2.0,
                                        backoff=Backoff(first_s=0.1, max_s=0.3)))
        summary = run_loop(runner, source, LoopConfig(threshold=0.1, max_frames=30), reject,
                           [EventLogSink(EventLog(events))])
    finally:
        server.close()
    records = assert_each_seq_once(events)
    frames = [r for r in records if r["kind"] == "frame"]
    faults = [r for r in frames if r["verdict"] == "FAULT"]
    assert len(faults) == 1 and "camera lost" in faults[0]["reason"]
    assert any(r["seq"] > faults[0]["seq"] and r["verdict"] == "OK" for r in frames), "inspecting again"
    assert summary.fault == 1 and summary.frames >= 30
    assert ready_edges(reject) == [False, True, False, True, False]
    ready = reject.ready_line.intervals(high=True)
    fault_decided = faults[0]["t_capture"] + faults[0]["latency_ms"] / 1e3
    back = next(r for r in frames if r["seq"] > faults[0]["seq"] and r["verdict"] == "OK")
    assert abs(ready[0][1] - fault_decided) < 0.05, "READY drops when the fault is known"
    assert ready[1][0] >= back["t_capture"], "READY returns only with a good frame after reconnecting"
    notes = [r["message"] for r in read_events(events) if r["kind"] == "status"]
    assert any("reconnect attempt" in m for m in notes) and any("restored" in m for m in notes)


def test_every_fault_frame_is_recorded_with_a_reason(tmp_path, runner):
    events = tmp_path / "events.jsonl"
    run_loop(FaultyRunner(runner, fail_on=set(range(0, 10, 2))), video_of(tmp_path, 10),
             LoopConfig(threshold=0.1, on_fault=FaultPolicy.IGNORE), None, [EventLogSink(EventLog(events))])
    records = frame_records(events)
    assert [r["verdict"] for r in records] == ["FAULT", "OK"] * 5
    assert all(r["reason"] for r in records if r["verdict"] == "FAULT")


def test_ready_drops_while_an_inference_call_hangs_past_the_deadline(tmp_path, runner):
    """READY must not wait for a hung call to return: the watchdog drops it at the deadline."""
    reject = sim_output()
    events = tmp_path / "events.jsonl"
    slow = SlowRunner(runner, delay_s=0.5, slow_on={2})
    summary = run_loop(slow, video_of(tmp_path, 5), LoopConfig(threshold=0.1, deadline_ms=100), reject,
                       [EventLogSink(EventLog(events))])
    records = assert_each_seq_once(events, 5)
    assert [r["verdict"] for r in records] == ["OK", "OK", "FAULT", "OK", "OK"]
    hung = records[2]
    returned_at = hung["t_capture"] + hung["latency_ms"] / 1e3
    first_ready = reject.ready_line.intervals(high=True)[0]
    assert returned_at - first_ready[1] > 0.3, "READY fell ~100 ms into the 500 ms call, not when it returned"
    assert ready_edges(reject) == [False, True, False, True, False] and summary.fault == 1


class StopAfter(Sink):
    """Sets `stop` once frame `seq` has a verdict, as SIGTERM would mid-run."""

    name = "stop-after"

    def __init__(self, stop, seq):
        self.stop, self.seq = stop, seq

    def on_result(self, result):
        if result.frame.seq >= self.seq:
            self.stop.set()


def test_a_stop_before_pulses_are_due_names_the_unrejected_parts(tmp_path, runner):
    """Pulses 5 s ahead are beyond the 2 s drain at exit: they are cancelled, and said to be, by frame."""
    reject = sim_output(delay_s=5.0, pulse_s=0.03)
    events = tmp_path / "events.jsonl"
    stop = threading.Event()
    summary = run_loop(runner, video_of(tmp_path, 20, red=lambda i: i in (1, 3, 9)), LoopConfig(threshold=0.1),
                       reject, [StopAfter(stop, 4), EventLogSink(EventLog(events))], stop)
    records = assert_each_seq_once(events, 5)
    assert [r["seq"] for r in records if r["reject_at"] is not None] == [1, 3]
    assert reject.reject_line.intervals(high=True) == [] and reject.reject_line.level is False
    counts = summary.reject_pulses, summary.pulses_fired, summary.pulses_merged, summary.pulses_cancelled
    assert counts == (2, 0, 0, 2)
    (cancelled,) = [r for r in read_events(events) if r["kind"] == "rejects_cancelled"]
    assert cancelled["seqs"] == [1, 3] and "passed the ejector unrejected" in cancelled["message"]
    (total,) = [r for r in read_events(events) if r["kind"] == "summary"]
    assert total["pulses_cancelled"] == 2 and total["stop_reason"] == "signal"
    text = summary.text()
    assert "reject pulses 2: 0 fired, 0 merged into another, 2 cancelled at shutdown: those parts passed the " \
           "ejector unrejected" in text and "after merging" not in text


def test_pulses_due_within_the_drain_still_fire_and_none_is_cancelled(tmp_path, runner):
    reject = sim_output(delay_s=0.1, pulse_s=0.005)
    events = tmp_path / "events.jsonl"
    summary = run_loop(runner, video_of(tmp_path, 6, red=lambda i: i == 2), LoopConfig(threshold=0.1), reject,
                       [EventLogSink(EventLog(events))])
    assert (summary.reject_pulses, summary.pulses_fired, summary.pulses_cancelled) == (1, 1, 0)
    assert len(reject.reject_line.intervals(high=True)) == 1
    assert not [r for r in read_events(events) if r["kind"] == "rejects_cancelled"]
    assert "1 fired, 0 merged into another, 0 cancelled at shutdown; 0 NG too late" in summary.text()
