"""Reject pulses on the simulated line: timing, merging, lateness, READY and the safe state; the GPIO
drivers against fakes of Jetson.GPIO and libgpiod (v1 and v2), which are absent here."""

from __future__ import annotations

import json
import sys
import threading
import time
import types

import pytest

from ddad_edge.errors import DdadError
from ddad_edge.inspect.frame import Frame
from ddad_edge.inspect.gpio_lines import GpiodLine, GpioKind, GpioSpec, JetsonLine, SimLine
from ddad_edge.inspect.pulses import PulseScheduler
from ddad_edge.inspect.reject import GpioReject, NoReject, RejectTiming, open_reject_output
from tests.inspect.fake_gpio import FakeJetsonGPIO, make_fake_gpiod_v1, make_fake_gpiod_v2

TOLERANCE_S = 0.020  # stated tolerance of pulse timing on a loaded 2-core machine


def frame_at(t: float, seq: int = 0) -> Frame:
    return Frame(seq, t, time.time(), None)


def test_pulses_start_at_capture_plus_delay_and_last_their_width():
    output = open_reject_output(GpioSpec.parse("sim"), RejectTiming(pulse_s=0.03, delay_s=0.1))
    t0 = time.monotonic()
    captures = [t0 + 0.0, t0 + 0.08, t0 + 0.16]
    tickets = []
    for i, t in enumerate(captures):
        while time.monotonic() < t:
            time.sleep(0.001)
        tickets.append(output.reject(frame_at(t, i)))
    output.close()
    pulses = output.reject_line.intervals(high=True)
    assert len(pulses) == 3
    for (start, end), capture, ticket in zip(pulses, captures, tickets):
        assert ticket.start == pytest.approx(capture + 0.1)
        assert abs(start - (capture + 0.1)) < TOLERANCE_S
        assert abs((end - start) - 0.03) < TOLERANCE_S
    assert output.reject_line.level is False and output.ready_line.level is False


def test_overlapping_pulses_merge_and_none_is_lost():
    line = SimLine("reject")
    scheduler = PulseScheduler(line)
    t0 = time.monotonic() + 0.05
    planned = [(t0, t0 + 0.04), (t0 + 0.02, t0 + 0.06), (t0 + 0.2, t0 + 0.22), (t0 + 0.05, t0 + 0.09),
               (t0 + 0.15, t0 + 0.17)]
    for start, end in planned:
        scheduler.schedule(start, end)
    scheduler.close()
    pulses = line.intervals(high=True)
    # the union of the plan: [t0, t0+0.09], [t0+0.15, t0+0.17], [t0+0.2, t0+0.22]
    assert len(pulses) == 3 and scheduler.fired == 3 and scheduler.requested == 5
    for start, end in planned:
        assert any(s - TOLERANCE_S <= start and end <= e + TOLERANCE_S for s, e in pulses), "no pulse vanished"
    assert all(a[1] < b[0] for a, b in zip(pulses, pulses[1:])), "pulses never overlap"
    assert abs(pulses[0][1] - (t0 + 0.09)) < TOLERANCE_S


def test_a_pulse_merges_into_the_one_being_driven():
    line = SimLine("reject")
    scheduler = PulseScheduler(line)
    t0 = time.monotonic()
    scheduler.schedule(t0, t0 + 0.05)
    time.sleep(0.02)
    scheduler.schedule(t0 + 0.03, t0 + 0.1)  # starts while the first is high
    scheduler.close()
    (pulse,) = line.intervals(high=True)
    assert abs(pulse[1] - (t0 + 0.1)) < TOLERANCE_S


def rising_edges(line: SimLine, active_high: bool = True) -> list[float]:
    """Times at which the simulated line went active (from inactive or from its first write)."""
    edges, level = [], not active_high
    for t, high in line.changes:
        if high == active_high and level != active_high:
            edges.append(t)
        level = high
    return edges


def test_hundreds_of_disjoint_pulses_each_drive_one_rising_edge():
    """Every request is a part to eject: 300 pulses planned apart, each a rising edge on the line, none
    before its time, and none counted without one."""
    line = SimLine("reject")
    scheduler = PulseScheduler(line)
    t0 = time.monotonic() + 0.05
    planned = [(t0 + 0.003 * i, t0 + 0.003 * i + 0.001) for i in range(300)]
    for start, end in planned:
        scheduler.schedule(start, end, tag=start)
    scheduler.close(drain_s=30.0)
    edges = rising_edges(line)
    assert len(edges) == 300
    assert all(edge >= start for edge, (start, _) in zip(edges, planned)), "no pulse starts early"
    assert (scheduler.requested, scheduler.fired, scheduler.merged, scheduler.cancelled) == (300, 300, 0, 0)
    assert line.level is False


def test_hundreds_of_rejects_through_the_output_each_pulse_the_line_active_low():
    output = open_reject_output(GpioSpec.parse("sim"), RejectTiming(pulse_s=0.001, delay_s=0.05),
                                active_high=False)
    now = time.monotonic()
    tickets = [output.reject(frame_at(now + 0.003 * i, seq=i)) for i in range(250)]
    output.close()
    assert all(t.start is not None and not t.late for t in tickets)
    assert len(rising_edges(output.reject_line, active_high=False)) == 250
    assert (output.pulses_requested, output.pulses_fired, output.pulses_merged) == (250, 250, 0)
    assert output.cancelled_seqs == [] and output.reject_line.level is True


def test_hundreds_of_overlapping_requests_make_one_pulse_per_cluster():
    line = SimLine("reject")
    scheduler = PulseScheduler(line)
    t0 = time.monotonic() + 0.05
    clusters = [t0 + 0.006 * k for k in range(60)]
    for k, start in enumerate(clusters):  # four requests overlapping within each cluster, in scrambled order
        for j in (2, 0, 3, 1) if k % 2 else (0, 1, 2, 3):
            scheduler.schedule(start + 0.0005 * j, start + 0.0005 * j + 0.001)
    scheduler.close(drain_s=30.0)
    assert len(rising_edges(line)) == 60
    pulses = line.intervals(high=True)
    assert all(s >= c and e >= c + 0.0025 for (s, e), c in zip(pulses, clusters)), "each covers its cluster"
    assert (scheduler.requested, scheduler.fired, scheduler.merged, scheduler.cancelled) == (240, 60, 180, 0)


def test_merge_gap_joins_pulses_closer_than_it_and_no_others():
    line = SimLine("reject")
    scheduler = PulseScheduler(line, merge_gap_s=0.01)
    t0 = time.monotonic() + 0.05
    scheduler.schedule(t0 + 0.015, t0 + 0.02)  # 5 ms after the next one ends: within the gap, one pulse
    scheduler.schedule(t0, t0 + 0.01)
    scheduler.schedule(t0 + 0.05, t0 + 0.06)  # 30 ms after: a pulse of its own
    scheduler.schedule(t0 + 0.07, t0 + 0.08)  # exactly the gap after it: joins it
    scheduler.close(drain_s=5.0)
    assert len(rising_edges(line)) == 2 and (scheduler.fired, scheduler.merged) == (2, 2)
    first, second = line.intervals(high=True)
    assert first[1] >= t0 + 0.02 and second[0] >= t0 + 0.05 and second[1] >= t0 + 0.08


def test_pulses_that_touch_to_a_rounding_step_merge_and_a_real_gap_does_not():
    """Planned times are sums of monotonic seconds: `t + 0.07` and `t + 0.06 + 0.01` may differ by a double's
    step. Within a microsecond (TOUCH_S) counts as touching: one pulse, never a gap of nothing."""
    line = SimLine("reject")
    scheduler = PulseScheduler(line, merge_gap_s=0.01)
    t0 = time.monotonic() + 0.05
    scheduler.schedule(t0, t0 + 0.01)
    scheduler.schedule(t0 + 0.02 + 1e-9, t0 + 0.03)  # the gap plus a rounding step: joins
    scheduler.schedule(t0 + 0.04 + 1e-3, t0 + 0.05)  # the gap plus a millisecond: a pulse of its own
    scheduler.close(drain_s=5.0)
    assert len(rising_edges(line)) == 2 and (scheduler.fired, scheduler.merged) == (2, 1)


def test_touching_pulses_merge_without_a_gap_and_one_within_the_gap_joins_the_active_pulse():
    line = SimLine("reject")
    scheduler = PulseScheduler(line)
    t0 = time.monotonic() + 0.05
    scheduler.schedule(t0 + 0.01, t0 + 0.02)
    scheduler.schedule(t0, t0 + 0.01)  # ends where the other begins: one pulse
    scheduler.close(drain_s=5.0)
    assert len(rising_edges(line)) == 1 and (scheduler.fired, scheduler.merged) == (1, 1)
    line = SimLine("reject")
    scheduler = PulseScheduler(line, merge_gap_s=0.02)
    t0 = time.monotonic()
    scheduler.schedule(t0, t0 + 0.05)
    time.sleep(0.02)  # the first pulse is being driven (or about to be)
    scheduler.schedule(t0 + 0.06, t0 + 0.08)  # 10 ms after its end: within the gap
    scheduler.close(drain_s=5.0)
    (pulse,) = line.intervals(high=True)
    assert pulse[1] >= t0 + 0.08 and (scheduler.fired, scheduler.merged) == (1, 1)


def drive_until_active(scheduler: PulseScheduler, line: SimLine, start: float, end: float) -> None:
    """Schedule a pulse and return once the scheduler's thread drives it."""
    scheduler.schedule(start, end)
    deadline = time.monotonic() + 2.0
    while line.level is not True:
        assert time.monotonic() < deadline, "the pulse never started"
        time.sleep(0.001)


def test_a_request_that_bridges_the_driven_pulse_and_a_queued_one_makes_one_pulse():
    """A queued pulse that the driven one reaches (touching, or within the gap) once a request has made the
    driven one longer joins it: one rising edge, no gap on the line. schedule() cannot merge them (the
    queued pulse was not within reach when it was queued): the scheduler's thread must."""
    cases = []
    for gap, after in ((0.0, 0.0), (0.02, 0.01)):
        line = SimLine("reject")
        scheduler = PulseScheduler(line, merge_gap_s=gap)
        t0 = time.monotonic()
        drive_until_active(scheduler, line, t0, t0 + 0.5)
        bridge_end = t0 + 0.6
        scheduler.schedule(bridge_end + after, t0 + 0.7)  # beyond the driven pulse's reach: queued
        scheduler.schedule(t0 + 0.3, bridge_end)  # joins the driven pulse and reaches the queued one
        cases.append((line, scheduler, t0 + 0.7))
    for line, scheduler, last_end in cases:
        scheduler.close(drain_s=1.0)
        assert len(rising_edges(line)) == 1 and (scheduler.fired, scheduler.merged) == (1, 2)
        (pulse,) = line.intervals(high=True)
        assert last_end <= pulse[1] < last_end + 1.0
        assert all(type(level) is bool for _, level in line.changes), "the line is written booleans only"


def test_a_request_within_the_gap_of_the_driven_pulse_joins_it_at_once():
    for gap, after in ((0.0, 0.0), (0.02, 0.01)):  # touching exactly, and 10 ms after within a 20 ms gap
        line = SimLine("reject")
        scheduler = PulseScheduler(line, merge_gap_s=gap)
        t0 = time.monotonic()
        end = t0 + 0.3
        drive_until_active(scheduler, line, t0, end)
        with scheduler._cond:  # the scheduler's thread waits meanwhile: the merge is schedule()'s own
            scheduler.schedule(end + after, end + 0.05)
            assert scheduler.merged == 1
        scheduler.close(drain_s=1.0)
        assert len(rising_edges(line)) == 1 and (scheduler.fired, scheduler.merged) == (1, 1)


def test_close_keeps_whole_a_pulse_that_begins_within_the_drain_window():
    """A pulse that begins within the drain window fires whole: also its part beyond the window, and a
    request that touches it or lies within the merge gap. A plain close() drains 2 s."""
    now = time.monotonic()
    plans = [(0.0, [(now + 0.3, now + 0.6), (now + 0.6, now + 0.65)]),  # touching
             (0.01, [(now + 0.3, now + 0.6), (now + 0.605, now + 0.65)]),  # 5 ms apart, gap 10 ms
             (0.0, [(now + 0.3, now + 0.65)])]  # one pulse that ends beyond the window
    runs = []
    for gap, plan in plans:
        line = SimLine("reject")
        scheduler = PulseScheduler(line, merge_gap_s=gap)
        for start, end in plan:
            scheduler.schedule(start, end)
        runs.append((line, scheduler, 0.35))  # the window ends between now + 0.35 and the second request
    far = SimLine("reject")
    runs.append((far, PulseScheduler(far), None))
    runs[-1][1].schedule(now + 2.5, now + 2.6)  # beyond the default 2 s
    closers = [threading.Thread(target=s.close, kwargs={} if d is None else {"drain_s": d}) for _, s, d in runs]
    for closer in closers:
        closer.start()
    for closer in closers:
        closer.join()
    for line, scheduler, _ in runs[:-1]:
        assert scheduler.cancelled == 0 and scheduler.fired == 1
        (pulse,) = line.intervals(high=True)
        assert pulse[1] >= now + 0.65
    assert runs[-1][1].cancelled == 1 and far.intervals(high=True) == []


def test_a_request_that_spans_a_queued_pulse_starts_it_earlier_whatever_the_tags():
    line = SimLine("reject")
    scheduler = PulseScheduler(line)
    t0 = time.monotonic() + 0.05
    scheduler.schedule(t0 + 0.2, t0 + 0.25, tag=1)
    scheduler.schedule(t0, t0 + 0.3)  # begins before the queued pulse and ends after it
    scheduler.schedule(t0, t0 + 0.3, tag=3)  # the same interval, tagged where the other was not
    scheduler.close(drain_s=5.0)
    (pulse,) = line.intervals(high=True)
    assert pulse[0] < t0 + 0.15 and pulse[1] >= t0 + 0.3
    assert (scheduler.requested, scheduler.fired, scheduler.merged) == (3, 1, 2)


def test_the_scheduler_thread_is_a_daemon_named_after_its_line():
    """A program that ends without closing the scheduler still exits; a debugger shows which line it drives."""
    scheduler = PulseScheduler(SimLine("reject-a7"))
    (thread,) = [t for t in threading.enumerate() if "reject-a7" in t.name]
    assert thread.daemon
    scheduler.close()
    assert not thread.is_alive()


def test_active_low_idles_high_and_pulses_low():
    output = open_reject_output(GpioSpec.parse("sim"), RejectTiming(pulse_s=0.02), active_high=False)
    assert output.reject_line.level is True and output.ready_line.level is True  # both inactive
    output.set_ready(True)
    assert output.ready_line.level is False
    output.reject(frame_at(time.monotonic()))
    output.close()
    assert len(output.reject_line.intervals(high=False)) == 1
    assert output.reject_line.level is True and output.ready_line.level is True


def test_a_verdict_too_late_for_the_ejector_fires_nothing():
    output = open_reject_output(GpioSpec.parse("sim"), RejectTiming(pulse_s=0.02, delay_s=0.05, max_late_s=0.01))
    ticket = output.reject(frame_at(time.monotonic() - 0.2))
    output.close()
    assert ticket.start is None and ticket.late and "late by" in ticket.note
    assert output.reject_line.intervals(high=True) == [] and output.pulses_requested == 0


def test_close_fires_pulses_already_due_and_cancels_far_ones():
    line = SimLine("reject")
    output = GpioReject(line, None, RejectTiming(pulse_s=0.02, delay_s=0.1), drain_s=0.5)
    now = time.monotonic()
    output.reject(frame_at(now))  # due in 0.1 s: a part on its way
    output.reject(frame_at(now + 5.0))  # 5 s away: beyond the drain window
    output.close()
    assert len(line.intervals(high=True)) == 1 and output._scheduler.cancelled == 1
    assert line.level is False


def test_cancelled_pulses_are_counted_and_named_by_frame_even_when_merged():
    line = SimLine("reject")
    output = GpioReject(line, None, RejectTiming(pulse_s=0.05, delay_s=0.1), drain_s=0.5)
    now = time.monotonic()
    output.reject(frame_at(now, seq=1))  # due in 0.1 s: fires
    output.reject(frame_at(now + 5.0, seq=2))  # 5 s away, and the next overlaps it: one planned pulse
    output.reject(frame_at(now + 5.02, seq=3))
    output.reject(frame_at(now + 9.0, seq=4))
    output.close()
    assert len(line.intervals(high=True)) == 1 and line.level is False
    assert output.cancelled_seqs == [2, 3, 4], "every request in a cancelled pulse is a part gone unrejected"
    assert (output.pulses_requested, output.pulses_fired, output.pulses_merged) == (4, 1, 0)


def test_merged_counts_only_requests_that_joined_another_pulse():
    line = SimLine("reject")
    scheduler = PulseScheduler(line)
    t0 = time.monotonic() + 0.03
    for start in (t0, t0 + 0.01, t0 + 0.02, t0 + 0.2):  # three overlap; the last stands alone
        scheduler.schedule(start, start + 0.03)
    scheduler.close()
    assert len(line.intervals(high=True)) == 2
    assert (scheduler.requested, scheduler.fired, scheduler.merged, scheduler.cancelled) == (4, 2, 2, 0)


def test_ready_line_without_a_reject_line(tmp_path):
    """--gpio none --ready-gpio sim: READY is driven (and logged) although no reject line exists."""
    log = tmp_path / "gpio-sim.jsonl"
    output = open_reject_output(GpioSpec.parse("none"), RejectTiming(), ready=GpioSpec.parse("sim"), sim_log=log)
    assert output.has_ready_line and output.reject_line is None
    output.set_ready(True)
    ticket = output.reject(frame_at(time.monotonic()))
    output.close()
    assert ticket.start is None and "--gpio none" in ticket.note and output.pulses_requested == 0
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert {r["line"] for r in records} == {"ready"}
    levels = [r["high"] for r in records]
    assert levels[0] is False and levels.count(True) == 1 and levels[-1] is False
    assert not open_reject_output(GpioSpec.parse("none"), RejectTiming()).has_ready_line


def test_ready_only_opens_the_real_pin(monkeypatch):
    """A READY pin given without a reject pin is opened (so a wrong pin is noticed) and driven."""
    fake = FakeJetsonGPIO()
    monkeypatch.setitem(sys.modules, "Jetson", types.SimpleNamespace(GPIO=fake))
    monkeypatch.setitem(sys.modules, "Jetson.GPIO", fake)
    output = open_reject_output(GpioSpec.parse("none"), RejectTiming(), ready=GpioSpec.parse("jetson:BOARD:16"))
    output.set_ready(True)
    output.close()
    assert fake.calls[0] == ("setup", 16, "out", 0) and fake.calls[-1] == ("cleanup", 16)
    assert [c[2] for c in fake.calls if c[0] == "output"] == [0, 1, 0]


def test_a_sim_log_that_is_a_folder_is_one_line(tmp_path):
    from ddad_edge.inspect.gpio_lines import check_sim_log

    (tmp_path / "gpio-sim.jsonl").mkdir()
    with pytest.raises(DdadError, match="simulated GPIO log .*gpio-sim.jsonl"):
        check_sim_log(tmp_path / "gpio-sim.jsonl")
    with pytest.raises(DdadError, match="cannot write the simulated GPIO log"):
        SimLine("reject", tmp_path / "gpio-sim.jsonl")
    check_sim_log(tmp_path / "absent.jsonl")  # a path that does not exist yet is fine


def test_ready_follows_set_ready_and_none_output_does_nothing():
    output = open_reject_output(GpioSpec.parse("sim"), RejectTiming())
    output.set_ready(True)
    output.set_ready(True)
    output.set_ready(False)
    output.close()
    levels = [level for _, level in output.ready_line.changes]
    assert levels[0] is False and levels[-1] is False and levels.count(True) == 1  # repeated True: one write
    assert [(a, b) for a, b in zip(levels, levels[1:]) if a != b] == [(False, True), (True, False)]
    none = open_reject_output(GpioSpec.parse("none"), RejectTiming())
    assert isinstance(none, NoReject) and none.reject(frame_at(0.0)).start is None


@pytest.mark.parametrize("text,expected", [
    ("sim", GpioSpec(GpioKind.SIM)),
    ("jetson:BOARD:18", GpioSpec(GpioKind.JETSON, "BOARD", 18)),
    ("jetson:bcm:24", GpioSpec(GpioKind.JETSON, "BCM", 24)),
    ("gpiod:/dev/gpiochip0:17", GpioSpec(GpioKind.GPIOD, "/dev/gpiochip0", 17)),
])
def test_gpio_specs_parse(text, expected):
    assert GpioSpec.parse(text) == expected


@pytest.mark.parametrize("text", ["jetson:18", "gpio:/dev/x:1", "jetson:PHYS:18", "gpiod:/dev/gpiochip0:x"])
def test_bad_gpio_specs_are_one_line(text):
    with pytest.raises(DdadError, match="--gpio"):
        GpioSpec.parse(text)


# --- the hardware drivers, against fakes of the absent libraries --------------------------------------


def test_jetson_line_drives_the_pin_through_jetson_gpio(monkeypatch):
    fake = FakeJetsonGPIO()
    package = types.ModuleType("Jetson")
    package.GPIO = fake
    monkeypatch.setitem(sys.modules, "Jetson", package)
    monkeypatch.setitem(sys.modules, "Jetson.GPIO", fake)
    output = open_reject_output(GpioSpec.parse("jetson:BOARD:18"), RejectTiming(pulse_s=0.01),
                                ready=GpioSpec.parse("jetson:BOARD:16"))
    output.set_ready(True)
    output.reject(frame_at(time.monotonic()))
    output.close()
    assert fake.mode == "BOARD"
    assert ("setup", 18, "out", 0) in fake.calls and ("setup", 16, "out", 0) in fake.calls
    pin18 = [c[2] for c in fake.calls if c[0] == "output" and c[1] == 18]
    assert pin18[:2] == [1, 0] and pin18[-1] == 0  # one pulse, then the safe level
    assert [c[2] for c in fake.calls if c[0] == "output" and c[1] == 16] == [0, 1, 0]
    assert ("cleanup", 18) in fake.calls and ("cleanup", 16) in fake.calls


def test_jetson_line_refuses_mixed_numbering(monkeypatch):
    fake = FakeJetsonGPIO()
    fake.mode = "BCM"
    monkeypatch.setitem(sys.modules, "Jetson.GPIO", fake)
    with pytest.raises(DdadError, match="numbering mode"):
        JetsonLine("reject", "BOARD", 18, initial_high=False)


def test_gpiod_v2_line(monkeypatch):
    gpiod, line = make_fake_gpiod_v2()
    monkeypatch.setitem(sys.modules, "gpiod", gpiod)
    monkeypatch.setitem(sys.modules, "gpiod.line", line)
    out = GpiodLine("reject", "/dev/gpiochip0", 17, initial_high=False)
    out.write(True)
    out.write(False)
    out.close()
    (request,) = gpiod.requests
    assert request.chip == "/dev/gpiochip0" and request.consumer == "ddad-edge"
    assert request.config[17] == {"direction": "output", "output_value": "inactive"}
    assert request.values == [(17, "active"), (17, "inactive")] and request.released


def test_gpiod_v1_line(monkeypatch):
    gpiod = make_fake_gpiod_v1()
    monkeypatch.setitem(sys.modules, "gpiod", gpiod)
    out = GpiodLine("reject", "/dev/gpiochip0", 17, initial_high=True)
    out.write(False)
    out.close()
    (fake_line,) = gpiod.lines
    assert fake_line.offset == 17 and fake_line.request_args == ("ddad-edge", 3, [1])
    assert fake_line.values == [0] and fake_line.released


def test_missing_gpio_libraries_are_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "gpiod", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "Jetson", None)
    monkeypatch.setitem(sys.modules, "Jetson.GPIO", None)
    with pytest.raises(DdadError, match="'gpiod'"):
        open_reject_output(GpioSpec.parse("gpiod:/dev/gpiochip0:17"), RejectTiming())
    with pytest.raises(DdadError, match="'Jetson.GPIO'"):
        open_reject_output(GpioSpec.parse("jetson:BOARD:18"), RejectTiming())
