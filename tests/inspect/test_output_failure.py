"""A reject or READY line whose driver fails while running: an error raised by a write, or a write that
never returns. The failure is said in one line, no request vanishes (each one fired or is cancelled and
named), nothing waits forever on the driver, and the loop stops with its own reason and exit status.

The drivers are fakes of a GPIO chip (absent here) that fails; the scheduler, the outputs and the loop
around them are the real ones."""

from __future__ import annotations

import threading
import time

from ddad_edge.cli import main
from ddad_edge.inspect import reject as reject_module
from ddad_edge.inspect.frame import Frame
from ddad_edge.inspect.gpio_lines import SimLine
from ddad_edge.inspect.loop import LoopConfig, run_loop
from ddad_edge.inspect.pulses import PulseScheduler
from ddad_edge.inspect.reject import GpioReject, RejectTiming
from ddad_edge.inspect.sinks import EventLog, EventLogSink, read_events
from ddad_edge.inspect.sources import VideoFileSource
from ddad_edge.inspect.summary import StopReason
from tests.inspect.checks import is_red
from tests.inspect.fake_gpio import FakeBrokenLine, FakeHungLine
from tests.inspect.media import part_image, write_video
from tests.inspect.wrappers import SlowRunner


def wait_for(condition, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def in_thread(call) -> threading.Thread:
    """Run `call` on a daemon thread, so that a call that hangs fails the test instead of hanging it."""
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread


def test_a_driver_error_is_said_and_every_later_request_is_cancelled_by_name():
    line = FakeBrokenLine("reject", fail_from=3)  # the first pulse fires (writes 1, 2); then the chip fails
    scheduler = PulseScheduler(line)
    now = time.monotonic()
    scheduler.schedule(now, now + 0.01, tag=1)
    assert wait_for(lambda: line.writes == [True, False])
    assert scheduler.failure is None
    now = time.monotonic()
    scheduler.schedule(now, now + 0.01, tag=2)  # its first write raises
    assert wait_for(lambda: scheduler.failure is not None)
    assert scheduler.failure == "reject line: OSError: [Errno 5] Input/output error"
    scheduler.schedule(time.monotonic(), time.monotonic() + 0.01, tag=3)  # after the failure: cancelled at once
    scheduler.close(drain_s=0.5)
    assert (scheduler.requested, scheduler.fired, scheduler.merged, scheduler.cancelled) == (3, 1, 0, 2)
    assert scheduler.cancelled_tags == [2, 3]
    assert "could not be reset to its inactive level" in scheduler.failure
    assert "\n" not in scheduler.failure


def test_an_error_on_the_write_that_ends_a_pulse_is_said_too():
    line = FakeBrokenLine("reject", fail_from=2)  # the line went active; driving it back fails
    scheduler = PulseScheduler(line)
    now = time.monotonic()
    scheduler.schedule(now, now + 0.01, tag=1)
    assert wait_for(lambda: scheduler.failure is not None)
    scheduler.close(drain_s=0.2)
    assert line.writes == [True] and scheduler.fired == 1 and scheduler.cancelled == 0
    assert scheduler.failure.startswith("reject line: OSError: [Errno 5] Input/output error; could not be reset")


def test_a_hung_driver_blocks_neither_schedule_nor_failure_nor_close():
    line = FakeHungLine("reject", hang_from=1)
    scheduler = PulseScheduler(line, write_timeout_s=0.1)
    try:
        now = time.monotonic()
        scheduler.schedule(now, now + 0.01, tag=1)  # the thread enters the driver and stays there
        assert wait_for(lambda: line.attempts == 1)
        scheduled = in_thread(lambda: scheduler.schedule(time.monotonic() + 0.05, time.monotonic() + 0.06, tag=2))
        scheduled.join(timeout=5)
        assert not scheduled.is_alive(), "schedule waited on the hung driver"
        assert wait_for(lambda: scheduler.failure is not None)
        assert scheduler.failure.startswith("reject line: its driver has not returned from a write for ")
        assert scheduler.hung
        closed = in_thread(lambda: scheduler.close(drain_s=0.5))
        closed.join(timeout=10)
        assert not closed.is_alive(), "close waited on the hung driver"
        assert "could not be reset: its level is unknown" in scheduler.failure
        assert scheduler.cancelled_tags == [2] and scheduler.requested == 2
    finally:
        line.release.set()


def test_a_pulse_cut_off_by_close_is_cancelled_not_fired_and_the_last_level_is_inactive():
    """However a pulse's first write and close's reset interleave, the line ends inactive."""
    for _ in range(20):
        line = SimLine("reject")
        scheduler = PulseScheduler(line)
        hurry = threading.Event()
        hurry.set()
        now = time.monotonic()
        scheduler.schedule(now, now + 0.01, tag=7)
        scheduler.close(drain_s=0.5, hurry=hurry)
        assert line.level is False
        assert scheduler.fired + scheduler.cancelled == 1 and scheduler.cancelled_tags in ([], [7])
        assert scheduler.failure is None


def frame(seq: int) -> Frame:
    return Frame(seq, time.monotonic(), time.time(), None)


def test_the_output_names_a_failed_reject_line_and_a_request_after_it_is_lost():
    reject_line, ready_line = FakeBrokenLine("reject", fail_from=1), SimLine("ready")
    output = GpioReject(reject_line, ready_line, RejectTiming(pulse_s=0.01))
    first = output.reject(frame(4))
    assert first.start is not None  # the failure is not known yet when the pulse is planned
    assert wait_for(lambda: output.failure is not None)
    second = output.reject(frame(5))
    assert second.lost and second.missed and second.start is None
    assert second.note == "not fired: reject line: OSError: [Errno 5] Input/output error"
    output.close()
    assert output.cancelled_seqs == [4, 5] and output.pulses_fired == 0
    assert reject_line.closed and ready_line.level is False


def test_a_failed_ready_line_is_the_outputs_failure():
    ready_line = FakeBrokenLine("ready", fail_from=2)  # the initial low is written; raising READY fails
    output = GpioReject(SimLine("reject"), ready_line, RejectTiming())
    output.set_ready(True)
    assert output.failure == "ready line: OSError: [Errno 5] Input/output error"
    output.set_ready(False)  # no second attempt on a failed line, and no exception into the loop
    assert ready_line.attempts == 2
    output.close()


def test_a_hung_reject_line_is_not_closed_the_ready_line_is():
    reject_line, ready_line = FakeHungLine("reject", hang_from=1), SimLine("ready")
    output = GpioReject(reject_line, ready_line, RejectTiming(pulse_s=0.01))
    output._scheduler._write_timeout_s = 0.1
    try:
        output.reject(frame(1))
        assert wait_for(lambda: reject_line.attempts == 1)
        closed = in_thread(output.close)
        closed.join(timeout=10)
        assert not closed.is_alive(), "close hung on the reject line's driver"
        assert not reject_line.closed and ready_line.level is False
        assert "its level is unknown" in output.failure
    finally:
        reject_line.release.set()


def test_the_loop_stops_on_a_failed_reject_line_and_names_the_unrejected_parts(tmp_path, runner):
    """Frames 2, 7, 12, ... are red (NG). The reject line fails on its first write, the start of frame 2's
    pulse; the loop stops with its own reason, and frame 2 is named as a part that passed unrejected."""
    source = VideoFileSource(write_video(tmp_path / "line.avi", [part_image(i, is_red(i)) for i in range(30)]))
    reject_line, ready_line = FakeBrokenLine("reject", fail_from=1), SimLine("ready")
    output = GpioReject(reject_line, ready_line, RejectTiming(pulse_s=0.005))
    events = tmp_path / "events.jsonl"
    camera_rate = SlowRunner(runner, delay_s=1 / 30)  # frames 33 ms apart, as from a 30 fps camera
    summary = run_loop(camera_rate, source, LoopConfig(threshold=0.1), output, [EventLogSink(EventLog(events))])
    assert summary.stop_reason is StopReason.OUTPUT_ERROR
    assert summary.frames < 30 and summary.frames == summary.inspected, "the loop stopped before the end"
    eio = "OSError: [Errno 5] Input/output error"
    assert summary.output_failure == (f"reject line: {eio}; could not be reset to its inactive level ({eio}): "
                                      "its level is unknown")
    records = list(read_events(events))
    (cancelled,) = [r for r in records if r["kind"] == "rejects_cancelled"]
    assert cancelled["seqs"] == [r["seq"] for r in records if r["kind"] == "frame" and r["verdict"] != "OK"]
    assert cancelled["seqs"][0] == 2 and "after the reject output failed" in cancelled["message"]
    assert summary.pulses_fired == 0 and summary.pulses_cancelled == summary.reject_pulses
    said = [r["message"] for r in records if r["kind"] == "status" and r["message"].startswith("reject output")]
    assert said[0].startswith("reject output failed: reject line: OSError: [Errno 5] Input/output error; stopping")
    assert "its level is unknown" in said[-1], "the failed reset at close is said too"
    ng = [r for r in records if r["kind"] == "frame" and r["verdict"] != "OK"]
    # frames inspected before the loop saw the failure (the scheduler thread writes a moment later)
    assert ng[0]["seq"] == 2 and ng[0]["verdict"] == "NG"
    assert all(r["verdict"] == "FAULT" and "reject not fired: reject line: OSError" in r["reason"] for r in ng[1:])
    (total,) = [r for r in records if r["kind"] == "summary"]
    assert total["stop_reason"] == "reject output failed" and total["output_failure"] == summary.output_failure
    assert "\nreject output failed: reject line: OSError" in summary.text()
    assert ready_line.level is False


def test_run_exits_4_when_the_reject_line_fails(tmp_path, red_bundle, monkeypatch, capsys):
    """Exit status 4: the systemd unit restarts it (reopening the line, or stopping with 2 if it cannot)."""
    opened = []

    def open_line(spec, name, initial_high, sim_log=None):
        line = FakeBrokenLine(name, fail_from=2) if name == "reject" else SimLine(name)
        opened.append(line)
        return line

    monkeypatch.setattr(reject_module, "open_line", open_line)
    write_video(tmp_path / "v.avi", [part_image(i, is_red(i)) for i in range(30)])
    out = tmp_path / "out"
    code = main(["run", "--video", str(tmp_path / "v.avi"), "--realtime", "--bundle", str(red_bundle.path),
                 "--gpio", "sim", "--pulse-ms", "5", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 4
    assert "stopped: reject output failed\nreject output failed: reject line: OSError" in captured.out
    assert [line.name for line in opened] == ["reject", "ready"]
