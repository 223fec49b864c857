"""What the operator page shows, kept up to date by the loop and read by the HTTP threads.

The loop's side (`add_result`, `add_dropped`, ...) does O(1) work per frame under one short lock: counters,
a per-second score bucket for the trend, a bounded window of stage times, a bounded list of the last NG
frames (a reference to the result, never a copy or an encoded image). Everything costly (percentiles,
JSON, thumbnails) happens on the reader's thread, on copies taken under the same lock.

The JSON it makes is what `/status.json`, `/recent.json` and `/trend.json` serve (see the README).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ddad_edge.inspect.decide import Verdict
from ddad_edge.inspect.result import STAGES, FrameResult

WINDOW_S = 60.0  # latency percentiles and frames per second are of the last minute
TREND_S = 600  # one bucket per second, ten minutes of them
RECENT = 20  # the last verdicts listed in /recent.json
RECENT_NG = 12  # the last NG frames kept for thumbnails
MAX_SAMPLES = 20_000  # bound on the latency window, whatever the frame rate
OWN_STAGES = ("decode", "sinks")  # each frame's own time; the other stages are shared by its batch


@dataclass
class NgEntry:
    """One of the last NG frames: enough to draw its thumbnail on demand and to find its saved image."""

    seq: int
    wall_time: float
    score: float | None
    reason: str
    result: FrameResult
    image_name: str | None  # relative to the run's output folder, as NgImageSink wrote it
    image_note: str
    thumbnail: bytes | None = None  # JPEG, made once by the first viewer that asks


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


class LineBoard:
    """The live state of one run. `stale_s`: no frame for this long reads as STALE.

    `pulses`: a callable returning the reject output's live counts (fired, merged), or None where the
    loop runs without one; the summary's totals replace it at the end of the run.
    """

    def __init__(self, stale_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.stale_s = stale_s
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._info: dict[str, Any] = {}
        self.counts = {"frames": 0, "OK": 0, "NG": 0, "FAULT": 0, "dropped": 0, "reject_pulses": 0,
                       "missed_rejects": 0}
        self._last: FrameResult | None = None
        self._last_t: float | None = None  # monotonic time of the last result (or drop)
        self._fault_reason = ""
        self._healthy: bool | None = None
        self._notes: deque[tuple[float, str]] = deque(maxlen=10)
        self._recent: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self._ng: deque[NgEntry] = deque(maxlen=RECENT_NG)
        self._window: deque[tuple[float, float, dict[str, float]]] = deque(maxlen=MAX_SAMPLES)
        self._buckets: deque[list[float]] = deque(maxlen=TREND_S)  # [second, n, sum, max, NG count]
        self._summary: dict[str, Any] | None = None
        self.pulses: Callable[[], dict[str, int]] | None = None

    # --- the loop's side -------------------------------------------------------------------------------

    def start(self, info: dict[str, Any]) -> None:
        with self._lock:
            self._info = dict(info)
            self._started = self._clock()

    def add_result(self, result: FrameResult) -> None:
        now = self._clock()
        verdict = result.verdict.value
        score = _finite(result.score)
        batch = max(result.batch_size, 1)
        stages = {s: (ms if s in OWN_STAGES else ms / batch) for s, ms in result.stages_ms.items() if s in STAGES}
        latency = (result.decided_at - result.frame.t_capture) * 1e3 if result.decided_at else None
        with self._lock:
            c = self.counts
            c["frames"] += 1
            c[verdict] += 1
            c["reject_pulses"] += result.reject.start is not None
            c["missed_rejects"] += bool(result.reject.missed)
            self._last, self._last_t = result, now
            self._healthy = result.verdict is not Verdict.FAULT
            if not self._healthy:
                self._fault_reason = result.reason
            self._recent.append({"seq": result.frame.seq, "wall_time": result.frame.wall_time,
                                 "verdict": verdict, "score": score, "reason": result.reason})
            if result.verdict is Verdict.NG:
                self._ng.append(NgEntry(result.frame.seq, result.frame.wall_time, score, result.reason, result,
                                        result.ng_image, result.ng_image_note))
            if latency is not None:
                self._window.append((now, latency, stages))
            if score is not None:
                second = math.floor(result.frame.wall_time)
                if self._buckets and self._buckets[-1][0] == second:
                    b = self._buckets[-1]
                    b[1] += 1
                    b[2] += score
                    b[3] = max(b[3], score)
                    b[4] += verdict == "NG"
                else:
                    self._buckets.append([second, 1, score, score, float(verdict == "NG")])

    def add_dropped(self) -> None:
        with self._lock:
            self.counts["frames"] += 1
            self.counts["dropped"] += 1

    def add_note(self, message: str) -> None:
        with self._lock:
            self._notes.append((time.time(), message))

    def end(self, summary: dict[str, Any]) -> None:
        with self._lock:
            self._summary = dict(summary)

    # --- the readers' side -----------------------------------------------------------------------------

    def state(self) -> tuple[str, str]:
        """(STARTING | READY | FAULT | STALE | STOPPED, why)."""
        with self._lock:
            return self._state_locked(self._clock())

    def _state_locked(self, now: float) -> tuple[str, str]:
        if self._summary is not None:
            return "STOPPED", f"the loop has stopped: {self._summary.get('stop_reason', '')}"
        if self._last_t is None:
            waited = now - self._started
            if waited > self.stale_s:
                return "STALE", f"no frame since the start {waited:.0f} s ago"
            return "STARTING", "waiting for the first frame"
        age = now - self._last_t
        silent = f"no frame for {age:.0f} s" if age > self.stale_s else ""
        if not self._healthy:  # a fault outranks silence: READY is low, and the reason says why
            return "FAULT", "; ".join(filter(None, (self._fault_reason, silent)))
        if silent:
            return "STALE", silent
        return "READY", ""

    def status(self) -> dict[str, Any]:
        """What /status.json serves."""
        now = self._clock()
        with self._lock:
            state, why = self._state_locked(now)
            counts = dict(self.counts)
            info = dict(self._info)
            last = self._last
            age = None if self._last_t is None else now - self._last_t
            window = [w for w in self._window if now - w[0] <= WINDOW_S]
            summary = self._summary
            notes = [{"wall_time": t, "message": m} for t, m in self._notes]
        inspected = counts["OK"] + counts["NG"] + counts["FAULT"]
        pulses = {"requested": counts.pop("reject_pulses"), "fired": None, "merged": None, "cancelled": None}
        if summary is not None:
            pulses.update(fired=summary.get("pulses_fired"), merged=summary.get("pulses_merged"),
                          cancelled=summary.get("pulses_cancelled"))
        elif self.pulses is not None:
            pulses.update(self.pulses(), cancelled=0)
        bundle = info.get("bundle", "")
        status: dict[str, Any] = {
            "state": state, "reason": why, "ready": state == "READY",
            "uptime_s": round(now - self._started, 1),
            "last_frame_age_s": None if age is None else round(age, 2),
            "source": info.get("source", ""),
            "bundle": {"name": Path(bundle).name if bundle else "", "precision": info.get("precision"),
                       "steps": info.get("steps"), "backend": info.get("backend"),
                       "threshold": info.get("threshold")},
            **counts,
            "yield_pct": None if not inspected else round(100.0 * counts["OK"] / inspected, 2),
            "pulses": pulses,
            "fps": _fps(window),
            "latency_ms": _percentiles(window),
            "notes": notes,
        }
        if last is not None:
            status.update(seq=last.frame.seq, verdict=last.verdict.value, score=_finite(last.score))
        return status

    def recent(self) -> dict[str, Any]:
        """What /recent.json serves: the last verdicts, and the last NG frames (newest first)."""
        with self._lock:
            recent = list(self._recent)[::-1]
            ng = list(self._ng)[::-1]
        return {"results": recent,
                "ng": [{"seq": e.seq, "wall_time": e.wall_time, "score": e.score, "reason": e.reason,
                        "thumbnail": f"/ng/{e.seq}.jpg", "image": f"/ng/{e.seq}.png" if e.image_name else None,
                        "image_note": e.image_note} for e in ng]}

    def trend(self, minutes: float = 5.0) -> dict[str, Any]:
        """What /trend.json serves: per second, the mean and max score and the NG count."""
        with self._lock:
            buckets = [list(b) for b in self._buckets]
            threshold = self._info.get("threshold")
        cut = time.time() - minutes * 60
        points = [{"t": b[0], "mean": round(b[2] / b[1], 6), "max": round(b[3], 6), "ng": int(b[4])}
                  for b in buckets if b[0] >= cut]
        return {"threshold": threshold, "seconds": minutes * 60, "points": points}

    def threshold(self) -> float:
        """The run's threshold (0 before the run starts or where it is not a number)."""
        with self._lock:
            value = self._info.get("threshold")
        return float(value) if isinstance(value, (int, float)) else 0.0

    def ng_entry(self, seq: int) -> NgEntry | None:
        """One of the last NG frames by its sequence number, or None when it is not (or no longer) kept."""
        with self._lock:
            return next((e for e in self._ng if e.seq == seq), None)


def _fps(window: list[tuple[float, float, dict[str, float]]]) -> float | None:
    if len(window) < 2:
        return None
    span = window[-1][0] - window[0][0]
    return round((len(window) - 1) / span, 2) if span > 0 else None


def _percentiles(window: list[tuple[float, float, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """p50/p99 (ms) of capture→verdict and of each stage, over the window."""
    if not window:
        return {}
    columns: dict[str, list[float]] = {"latency": [w[1] for w in window]}
    for _, _, stages in window:
        for stage, ms in stages.items():
            columns.setdefault(stage, []).append(ms)
    out = {}
    for name, values in columns.items():
        p50, p99 = np.percentile(np.asarray(values), [50, 99])
        out[name] = {"p50": round(float(p50), 3), "p99": round(float(p99), 3)}
    return out
