"""Soak: 2,000 frames through the real loop with faults injected at random, in well under a minute.

The source is a folder of small PNGs, some of them damaged; the real ONNX Runtime runner is wrapped so
that some calls raise, some return NaN scores and a few overrun the deadline; NG images run into their
quota; the event log rotates by size every few hundred frames. Checked: every frame is in the event log
exactly once with a verdict that matches its image or a reason, nothing of the log is lost in rotation,
Python memory does not grow from frame 400 on (tracemalloc), and no file handle or thread is left behind.

Memory: the loop keeps the latest 20,000 latency samples per stage by design; here that bound is set to
100 so that the samples are flat after frame 400 too. Growth is measured over frames 400-1,200 and
1,200-2,000; a leak of 20 bytes a frame shows in both, while a one-off (a global table of the
interpreter doubling) can show in one only, so the smaller of the two must stay under 16 KiB.
"""

from __future__ import annotations

import gc
import logging
import os
import random
import threading
import tracemalloc
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from ddad_edge.inspect import loop as loop_module
from ddad_edge.inspect.loop import LoopConfig, run_loop
from ddad_edge.inspect.ng_images import NgImageSink, NgQuota
from ddad_edge.inspect.sinks import EventLog, EventLogSink, Sink, read_events
from ddad_edge.inspect.sources import ImageFolderSource
from ddad_edge.inspect.summary import LatencyStats
from tests.inspect.checks import assert_each_seq_once
from tests.inspect.wrappers import FaultyRunner, SlowRunner

FRAMES = 2000
WARM, MID = 400, 1200  # memory and handles are compared from WARM (caches, pools and the quota settled)
NG_QUOTA = 20
LOG_BYTES = 64_000


class NanRunner:
    """Returns NaN scores on the calls in `nan_on` (a graph gone wrong); otherwise the inner runner's answer."""

    def __init__(self, inner, nan_on: set[int]) -> None:
        self.inner, self.nan_on, self.calls = inner, nan_on, 0
        self.image_size = inner.image_size

    def infer(self, frames):
        out = self.inner.infer(frames)
        call, self.calls = self.calls, self.calls + 1
        return replace(out, scores=np.full_like(out.scores, np.nan)) if call in self.nan_on else out

    def close(self) -> None:
        self.inner.close()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Probe(Sink):
    """Samples Python memory, RSS and open file handles at frame WARM and at the last frame."""

    name = "probe"

    def __init__(self) -> None:
        self.samples: dict[str, tuple] = {}

    def on_result(self, result) -> None:
        names = {WARM: "warm", MID: "mid", FRAMES - 1: "end"}
        if result.frame.seq in names:
            self.samples[names[result.frame.seq]] = (tracemalloc.take_snapshot(), rss_bytes(), open_fds())


def make_frames(folder: Path, rng: random.Random) -> tuple[set[int], set[int]]:
    """FRAMES PNGs of 24x32 px (the model resizes them to 32): a tenth with a red patch, one in a
    hundred damaged (truncated, empty or not an image). Returns (red, damaged) indices."""
    folder.mkdir()
    red = {i for i in range(FRAMES) if rng.random() < 0.1}
    damaged = set(rng.sample(range(FRAMES), FRAMES // 100))
    base = np.zeros((24, 32, 3), np.uint8)
    base[..., 1] = 150
    for i in range(FRAMES):
        image = base.copy()
        image[:8, :8, 2] = i % 251  # every file differs
        if i in red:
            image[6:18, 8:24] = (0, 0, 255)  # BGR: red
        path = folder / f"f{i:05d}.png"
        ok, png = cv2.imencode(".png", image)
        data = png.tobytes()
        if i in damaged:
            data = rng.choice([data[:len(data) // 2], b"", b"garbage, not a picture"])
        path.write_bytes(data)
    return red, damaged


def growth(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> tuple[int, list]:
    """Bytes of Python memory gained between two snapshots, with the biggest contributors."""
    keep = [tracemalloc.Filter(False, tracemalloc.__file__)]
    diff = after.filter_traces(keep).compare_to(before.filter_traces(keep), "lineno")
    return sum(d.size_diff for d in diff), [str(d) for d in diff[:5]]


def test_soak_two_thousand_frames_with_faults(tmp_path, runner, monkeypatch):
    monkeypatch.setattr(loop_module, "LatencyStats", lambda keep: LatencyStats(keep=100))
    # the loop's status lines go nowhere, as to journald on a line: pytest's log capture would keep them
    monkeypatch.setattr(logging.getLogger("ddad_edge.inspect"), "propagate", False)
    rng = random.Random(8)
    red, damaged = make_frames(tmp_path / "frames", rng)
    calls = FRAMES // 3 + 40  # upper bound of the inference calls at batch 3
    failing = set(rng.sample(range(calls), 12))
    nan = set(rng.sample(sorted(set(range(calls)) - failing), 12))
    slow = set(rng.sample(sorted(set(range(calls)) - failing - nan), 3))
    wrapped = NanRunner(FaultyRunner(SlowRunner(runner, delay_s=0.15, slow_on=slow), fail_on=failing), nan_on=nan)

    gc.collect()  # objects of earlier tests that still hold a file must not close it during the count
    threads, fds = threading.active_count(), open_fds()
    events = tmp_path / "out" / "events.jsonl"
    probe = Probe()
    ng = NgImageSink(tmp_path / "out" / "ng", NgQuota(max_images=NG_QUOTA), threshold=0.1)
    sinks = [ng, probe, EventLogSink(EventLog(events, max_bytes=LOG_BYTES, backups=1000))]
    tracemalloc.start(1)
    try:
        summary = run_loop(wrapped, ImageFolderSource(tmp_path / "frames"),
                           LoopConfig(threshold=0.1, batch=3, deadline_ms=100), None, sinks)
    finally:
        tracemalloc.stop()

    # every frame exactly once, across every rotated file, each with a verdict that fits its image
    records = assert_each_seq_once(events, FRAMES)
    assert summary.frames == FRAMES and summary.inspected == FRAMES and summary.sink_errors == 0
    reasons = {"damaged": 0, "error": 0, "nan": 0, "late": 0}
    for r in records:
        i = r["seq"]
        if i in damaged:
            assert r["verdict"] == "FAULT" and r["name"] in r["reason"], r
            reasons["damaged"] += 1
        elif r["verdict"] == "FAULT":
            key = ("error" if "injected failure" in r["reason"] else "nan" if "not finite" in r["reason"]
                   else "late" if "deadline" in r["reason"] else "")
            assert key, r
            reasons[key] += 1
        else:
            assert r["verdict"] == ("NG" if i in red else "OK"), r
    assert reasons["damaged"] == len(damaged) and reasons["error"] >= 12 and reasons["nan"] >= 12
    assert reasons["late"] >= 3 and summary.fault == sum(reasons.values())

    # rotation kept every record: several files, none over the limit, start and summary present
    files = sorted(events.parent.glob("events.jsonl*"))
    assert len(files) > 10 and all(f.stat().st_size <= LOG_BYTES for f in files)
    kinds = [r["kind"] for r in read_events(events)]
    assert kinds[0] == "start" and kinds[-1] == "summary" and kinds.count("frame") == FRAMES

    # the NG quota held under the soak: exactly NG_QUOTA images, one note, inspection unaffected
    ng_records = [r for r in records if r["verdict"] == "NG"]
    assert len(ng_records) > NG_QUOTA and sum(r["ng_image"] is not None for r in ng_records) == NG_QUOTA
    assert len(list((tmp_path / "out" / "ng").glob("*.png"))) == NG_QUOTA
    notes = [r["message"] for r in read_events(events) if r["kind"] == "status"]
    assert sum("quota reached" in m for m in notes) == 1

    # no growth from frame WARM on; nothing left open
    (warm, rss_warm, fds_warm), (mid, _, fds_mid), (end, rss_end, fds_end) = (
        probe.samples[k] for k in ("warm", "mid", "end"))
    (first, top_first), (second, top_second) = growth(warm, mid), growth(mid, end)
    print(f"soak: {FRAMES} frames in {summary.duration_s:.1f} s; Python memory {first / 1024:+.1f} KiB over frames "
          f"{WARM}-{MID}, {second / 1024:+.1f} KiB over {MID}-{FRAMES}; RSS {rss_warm / 2**20:.1f} -> "
          f"{rss_end / 2**20:.1f} MiB; open fds {fds_warm}, {fds_mid}, {fds_end}; event log in {len(files)} files")
    assert min(first, second) < 16 * 1024, (top_first, top_second)  # a leak of 20 B a frame would fail
    assert rss_end - rss_warm < 16 * 2**20
    gc.collect()
    assert fds_warm == fds_mid == fds_end and open_fds() == fds and threading.active_count() == threads
