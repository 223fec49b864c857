"""The timing core of the benchmark: frames through the real inspection loop, warm-up excluded.

A measurement runs the loop (`inspect.profile.profile_loop`: read + decode, resize, infer, decide) twice
on the same runner: first `warmup` inference calls whose samples are thrown away as a whole (first
calls allocate memory, pick kernels, fill caches), then `iters` calls whose every per-frame sample is
kept. All percentiles are computed from those kept raw samples, and the samples themselves are saved
with the result, so anyone can recompute them.

Stages, per frame, in ms:
  decode   the source reading and decoding the frame (JPEG/PNG file, camera buffer)
  resize   crop to the ROI and resize to the model's size (a batch's time divided by its frames)
  infer    the runner's call (divided by the batch's frames)
  decide   threshold, debounce and reject planning (divided by the batch's frames)
  frame    the whole frame: decode + resize + infer + decide. Speed-ups compare this stage's p50.
  call     one inference call (one sample per call, not per frame)
  latency  capture → verdict of each frame (with batches, the first frame of a batch waits for the last)
  overhead frame − infer: the loop's own work around the runner
Sinks (progress bar) are not part of `frame`: a benchmark's own bookkeeping is not the line's work.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ddad_edge.errors import DdadError
from ddad_edge.progress import Progress
from ddad_edge.runtime.base import Runner

STAGES = ("decode", "resize", "infer", "decide", "frame", "call", "latency", "overhead")
QUANTILES = (50, 90, 99)
# The loop's stage names behind each benchmark stage (per frame, batch stages already divided).
LOOP_STAGES = {"decode": ("decode",), "resize": ("preprocess",), "infer": ("infer",), "decide": ("decide", "reject")}

SourceFactory = Callable[[int], Any]  # n_frames → a fresh FrameSource that yields at least n frames


def percentiles_of(samples_ms: np.ndarray) -> dict[str, float]:
    """p50, p90, p99, max, mean (ms) and the count n of a 1-D array of raw samples (linear interpolation)."""
    x = np.asarray(samples_ms, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"percentiles need a non-empty 1-D array of samples, got shape {x.shape}")
    out = {f"p{q}": float(np.percentile(x, q)) for q in QUANTILES}
    out.update(max=float(x.max()), mean=float(x.mean()), n=int(x.size))
    return out


@dataclass(frozen=True)
class Measurement:
    """One benchmark of one runner. `samples_ms[stage]`: raw samples after warm-up (see module docstring).

    `wall_s`, `cpu_s`: wall and process CPU time (all threads) of the measured part only; `cpu_s / wall_s`
    is how many cores the process kept busy, which shows whether other work on the machine took turns
    with it. `peak_rss_mb`: peak resident memory of the process during the measured part
    (`peak_rss_scope` says when the kernel could not reset the peak and it is the process lifetime's).
    """

    samples_ms: dict[str, np.ndarray]
    batch: int
    warmup_calls: int
    calls: int
    warmup_s: float
    wall_s: float
    cpu_s: float
    peak_rss_mb: float | None
    peak_rss_scope: str
    load_average: tuple[float, float]  # 1-minute load average at start and end of the measured part
    notes: list[str] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return int(self.samples_ms["frame"].size)

    @property
    def fps(self) -> float:
        """Frames per second over the measured part's wall time (everything the loop did)."""
        return self.frames / self.wall_s if self.wall_s > 0 else float("nan")

    def stats(self) -> dict[str, dict[str, float]]:
        """{stage: percentiles_of(samples)} for every stage that has samples."""
        return {s: percentiles_of(x) for s, x in self.samples_ms.items() if x.size}

    def as_dict(self, samples: bool = True) -> dict[str, Any]:
        """JSON-safe: settings, per-stage percentiles, resources and (with `samples`) the raw samples."""
        out = {
            "batch": self.batch, "warmup_calls": self.warmup_calls, "calls": self.calls, "frames": self.frames,
            "warmup_s": round(self.warmup_s, 3), "wall_s": round(self.wall_s, 3), "cpu_s": round(self.cpu_s, 3),
            "cores_busy": round(self.cpu_s / self.wall_s, 2) if self.wall_s > 0 else None,
            "fps": round(self.fps, 3), "peak_rss_mb": self.peak_rss_mb, "peak_rss_scope": self.peak_rss_scope,
            "load_average_1min": list(self.load_average), "stages_ms": self.stats(), "notes": list(self.notes),
        }
        if samples:
            out["samples_ms"] = {s: [float(v) for v in x] for s, x in self.samples_ms.items()}
        return out


# --- peak memory -------------------------------------------------------------------------------------


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux ≥ 4.0, /proc/self/clear_refs "5").

    Returns False where that is not possible; the peak then covers the process's whole life.
    """
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process in MiB (VmHWM, or ru_maxrss where /proc is absent)."""
    try:
        match = re.search(r"^VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
        if match:
            return round(int(match.group(1)) / 1024, 1)
    except OSError:
        pass
    try:
        import resource

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # kB on Linux
    except (ImportError, OSError):
        return None


# --- the measurement ------------------------------------------------------------------------------------


class _ProgressSink:
    """Moves a progress bar as frames are decided (the loop calls every method by name)."""

    name = "progress"
    records = False

    def __init__(self, bar: Progress) -> None:
        self.bar, self.done = bar, 0

    def on_result(self, result: Any) -> None:
        self.done += 1
        self.bar.update(self.done)

    def on_start(self, info: Any, note: Any) -> None: ...
    def on_dropped(self, dropped: Any) -> None: ...
    def on_note(self, message: str) -> None: ...
    def finish(self) -> None: ...
    def on_summary(self, summary: Any) -> None: ...
    def close(self) -> None: ...


def _loop_profile(runner: Runner, source_factory: SourceFactory, frames: int, batch: int, label: str,
                  show_progress: bool):
    from ddad_edge.inspect.profile import profile_loop

    with Progress(label, total=frames, enabled=show_progress) as bar:
        profile = profile_loop(runner, source_factory(frames), frames, batch=batch, sinks=(_ProgressSink(bar),))
    s = profile.summary
    if s.fault or s.dropped or s.inspected != frames:
        raise DdadError(f"{label}: {s.inspected} of {frames} frames inspected ({s.fault} FAULT, {s.dropped} "
                        "dropped): a benchmark must inspect every frame; run `ddad-edge run` on the same "
                        "bundle and frames to see why")
    return profile


def stage_samples(loop_stage_ms: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    """The benchmark's stages (module docstring) from the loop's per-frame stage samples."""
    out = {name: sum(np.asarray(loop_stage_ms[s], dtype=np.float64) for s in parts)
           for name, parts in LOOP_STAGES.items()}
    out["frame"] = out["decode"] + out["resize"] + out["infer"] + out["decide"]
    out["call"] = out["infer"][::batch] * batch  # the loop gave each of a call's frames call / batch
    out["latency"] = np.asarray(loop_stage_ms["latency"], dtype=np.float64)
    out["overhead"] = out["frame"] - out["infer"]
    # rounded to the nanosecond once, here: the saved samples are exactly the ones percentiles are taken of
    return {k: np.round(v, 6) for k, v in out.items()}


def iterations_for(budget_s: float, call_s: float, lo: int, hi: int) -> int:
    """How many measured calls fit in `budget_s` at `call_s` per call, clamped to [lo, hi]."""
    if call_s <= 0 or not np.isfinite(call_s):
        return hi
    return int(min(hi, max(lo, budget_s // call_s)))


def measure_runner(runner: Runner, source_factory: SourceFactory, batch: int = 1, warmup: int = 3,
                   iters: int = 30, budget_s: float | None = None, min_iters: int = 3, label: str = "bench",
                   show_progress: bool = True) -> Measurement:
    """Benchmark `runner` on frames from `source_factory`: `warmup` calls thrown away, then `iters` calls.

    `source_factory(n)` must return a fresh frame source with at least n frames (each run of the loop
    closes its source). With `budget_s`, the number of measured calls is cut to what fits in that many
    seconds at the speed of the last warm-up call (at least `min_iters`, at most `iters`).
    """
    if batch < 1 or warmup < 0 or iters < 1:
        raise DdadError(f"batch must be ≥ 1, warmup ≥ 0 and iters ≥ 1 (got {batch}, {warmup}, {iters})")
    notes = []
    warmup_s = 0.0
    if warmup:
        t0 = time.perf_counter()
        warm = _loop_profile(runner, source_factory, warmup * batch, batch, f"{label} warm-up", show_progress)
        warmup_s = time.perf_counter() - t0
        if budget_s is not None:
            last_call_s = float(warm.stage_ms["infer"][-1]) * batch / 1e3
            chosen = iterations_for(budget_s, last_call_s, min_iters, iters)
            if chosen < iters:
                notes.append(f"{chosen} measured calls (of {iters} asked) to fit a {budget_s:g} s budget")
            iters = chosen
    scoped = reset_peak_rss()
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    t0, c0 = time.perf_counter(), time.process_time()
    profile = _loop_profile(runner, source_factory, iters * batch, batch, label, show_progress)
    wall_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    samples = stage_samples(profile.stage_ms, batch)
    return Measurement(samples, batch, warmup, iters, warmup_s, wall_s, cpu_s, peak_rss_mb(),
                       "measured part" if scoped else "process lifetime", (load_start, load_end), notes)


def speedup(reference_frame_p50_ms: float | None, frame_p50_ms: float) -> float | None:
    """Reference whole-frame p50 over this whole-frame p50 (None without a reference)."""
    if not reference_frame_p50_ms or frame_p50_ms <= 0:
        return None
    return reference_frame_p50_ms / frame_p50_ms
