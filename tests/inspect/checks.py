"""Checks shared by the loop tests: the event log accounts for every frame, pulses match the plan."""

from __future__ import annotations

from ddad_edge.inspect.sinks import read_events

TOLERANCE_S = 0.020  # pulse timing tolerance against capture time + delay, on a loaded 2-core machine


def is_red(i: int) -> bool:
    """The test videos' pattern: every fifth frame, from the third, shows a defect (a red patch)."""
    return i % 5 == 2


def frame_records(path):
    """The `frame` records of an event log, in file order."""
    return [r for r in read_events(path) if r["kind"] == "frame"]


def assert_each_seq_once(path, count=None):
    """The frame and dropped records; their sequence numbers are 0..n-1, each exactly once."""
    records = [r for r in read_events(path) if r["kind"] in ("frame", "dropped")]
    seqs = sorted(r["seq"] for r in records)
    assert seqs == list(range(len(seqs))), "every sequence number exactly once"
    if count is not None:
        assert len(seqs) == count
    return records


def assert_pulses_match(records, sim_line, delay_s):
    """Every planned reject lies inside a pulse on the line, at capture + delay; pulses are disjoint."""
    pulses = sim_line.intervals(high=True)
    assert all(a[1] < b[0] for a, b in zip(pulses, pulses[1:]))
    planned = [r for r in records if r.get("reject_at") is not None]
    for r in planned:
        assert abs(r["reject_at"] - (r["t_capture"] + delay_s)) < 1e-6
        assert any(s - TOLERANCE_S <= r["reject_at"] <= e for s, e in pulses), f"pulse of frame {r['seq']} vanished"
    return pulses, planned
