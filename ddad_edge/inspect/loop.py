"""The inspection loop: frames in, verdicts, reject pulses and records out; fail-safe.

Per batch: grab → preprocess (ROI, resize) → infer → decide → plan reject pulses → sinks. Every sequence
number a source hands out ends up in exactly one `frame` or `dropped` record.

Fail-safe: an inference error, an inference slower than the deadline, a non-finite score, a lost camera,
or an NG verdict too late for the ejector make the frame's verdict FAULT. READY drops at once, the fault
policy applies (reject the part, stop the loop, or ignore), and READY returns after the next healthy
frame. A stop request (SIGINT/SIGTERM through `install_stop_signals`) lets the batch in flight finish;
then pulses already due are fired, the outputs go to their safe state and the sinks are flushed. Pulses
due too far ahead are cancelled, and their frames named in a `rejects_cancelled` record and the summary.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ddad_edge.inspect.decide import Debounce, Decider, FaultPolicy, Verdict
from ddad_edge.inspect.frame import Dropped, Frame, FrameSource
from ddad_edge.inspect.frame_gate import FrameGate
from ddad_edge.inspect.preprocess import Preprocessor, Roi
from ddad_edge.inspect.reject import NoReject, RejectOutput, RejectTicket
from ddad_edge.inspect.result import STAGES, FrameResult
from ddad_edge.inspect.sinks import Sink
from ddad_edge.inspect.summary import LatencyStats, RunSummary, StopReason
from ddad_edge.inspect.watchdog import InferenceWatchdog
from ddad_edge.runtime.base import Runner

log = logging.getLogger("ddad_edge.inspect")


@dataclass(frozen=True)
class LoopConfig:
    """How the loop decides and reacts.

    `threshold`: image score threshold. `batch`: frames per inference call. `deadline_ms`: an inference
    call slower than this is a FAULT (0: no deadline). `max_frames`: stop after this many sequence numbers
    (0: until the source ends or a stop request). `grab_timeout_s`: how long one wait for a live frame
    lasts before the loop checks for a stop request. `record_stages`: keep every stage sample in the
    summary (for benchmarks), not only the most recent 20,000 (percentiles of a long run are of those).
    `gate`: the bundle's frame-quality gate (None: frames are not checked, a bundle made before it).
    """

    threshold: float
    debounce: Debounce = Debounce()
    batch: int = 1
    deadline_ms: float = 0.0
    on_fault: FaultPolicy = FaultPolicy.REJECT
    roi: Roi | None = None
    max_frames: int = 0
    grab_timeout_s: float = 0.25
    record_stages: bool = False
    gate: FrameGate | None = None


def install_stop_signals(stop: threading.Event, hurry: threading.Event | None = None) -> Callable[[], None]:
    """Make SIGINT and SIGTERM stop the loop; returns a restore function. Call from the main thread.

    The first signal sets `stop`: the batch in flight finishes, pulses due within the drain window still
    fire. A second one sets `hurry` (where given): pulses not yet fired are cancelled at once and named, a
    pulse being driven is cut short, and the summary is written without waiting: a second Ctrl-C must
    shorten the shutdown, never skip the safe state. After it (or after the first, without `hurry`) the
    handlers in place before act as usual, so a loop stuck in a hung call can still be interrupted.
    """
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    received = []

    def handler(signum: int, _frame: Any) -> None:
        received.append(signum)
        name = signal.Signals(signum).name
        if len(received) == 1:
            stop.set()
            message = f"{name}: finishing the frame in flight, then stopping"
        elif hurry is not None:  # without `hurry` the handlers before are back after the first signal
            hurry.set()
            message = (f"{name} again: cancelling the reject pulses not yet fired, outputs to their safe state, "
                       "then stopping")
        if hurry is None or len(received) > 1:
            for sig, old in previous.items():
                signal.signal(sig, old)
        # os.write, not logging: a signal handler must not wait for a lock the interrupted code holds
        os.write(2, f"{message}\n".encode())

    for sig in previous:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


class _Loop:
    """The state of one run; `run_loop` is its public face."""

    def __init__(self, runner: Runner, source: FrameSource, config: LoopConfig, reject: RejectOutput,
                 sinks: Sequence[Sink], stop: threading.Event, hurry: threading.Event | None = None) -> None:
        self.runner, self.source, self.config, self.reject, self.stop = runner, source, config, reject, stop
        self.hurry = hurry or threading.Event()  # set: shut down without waiting for pulses due soon
        self.early = [s for s in sinks if not getattr(s, "records", False)]
        self.recorders = [s for s in sinks if getattr(s, "records", False)]  # want final stage times
        self.sinks = self.early + self.recorders
        self.pre = Preprocessor(runner.image_size, config.roi)
        self.decider = Decider(config.threshold, config.debounce)
        self.stats = LatencyStats(keep=0 if config.record_stages else 20_000)
        self.summary = RunSummary()
        self.ready = False
        self._ready_lock = threading.Lock()  # the watchdog thread may drop READY too
        self.watchdog = InferenceWatchdog(config.deadline_ms / 1e3, self.overrun) if config.deadline_ms else None
        self.fault_stop = False
        self._note_lock = threading.Lock()
        self._failed_sinks: set[str] = set()

    # --- sinks and notes -------------------------------------------------------------------------------

    def call_sinks(self, sinks: Sequence[Sink], method: str, *args: Any) -> None:
        for sink in sinks:
            try:
                getattr(sink, method)(*args)
            except Exception as exc:  # a sink never stops inspection (full disk, closed viewer)
                self.summary.sink_errors += 1
                if sink.name not in self._failed_sinks:
                    self._failed_sinks.add(sink.name)
                    log.warning("sink %s failed (%s: %s); inspection goes on", sink.name, type(exc).__name__, exc)

    def note(self, message: str) -> None:
        """A status line for the log and every sink; callable from any thread."""
        log.info("%s", message)
        with self._note_lock:
            self.call_sinks(self.sinks, "on_note", message)

    def account_dropped(self, dropped: list[Dropped]) -> None:
        for d in dropped:
            self.summary.frames += 1
            self.summary.dropped += 1
            self.call_sinks(self.sinks, "on_dropped", d)

    # --- one batch -----------------------------------------------------------------------------------

    def inspect(self, frames: list[Frame]) -> list[FrameResult]:
        t0 = time.monotonic()
        results = {f.seq: FrameResult(f, Verdict.FAULT, reason=f.fault or (
            "the source gave no image" if f.image is None else "")) for f in frames}
        good, inputs = [], []
        for f in frames:
            if f.image is None:
                continue
            why = self.pre.check(f.image)
            if not why:
                try:
                    prepared = self.pre.prepare(f.image)
                except Exception as exc:  # one odd frame is that frame's FAULT, never the loop's end
                    last = (str(exc).strip().splitlines() or [""])[-1][:160]
                    why = f"preprocessing failed: {type(exc).__name__}: {last}"
                else:
                    # a frame unlike any nominal one (dark, blurred, damaged) gets no verdict: FAULT
                    why = self.config.gate.check_pixels(prepared) if self.config.gate else ""
                    if not why:
                        inputs.append(prepared)
                        good.append(f)
                        continue
            results[f.seq].reason = why
        batch = np.stack(inputs) if good else None  # (N, S, S, 3) uint8
        t1 = time.monotonic()
        error, inspection = "", None
        if batch is not None:
            if self.watchdog:
                self.watchdog.begin()
            try:
                inspection = self.runner.infer(batch)
                if inspection.scores.shape[0] != len(good):
                    raise ValueError(f"{inspection.scores.shape[0]} scores for {len(good)} frames")
            except Exception as exc:
                error = f"inference error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            finally:
                if self.watchdog:
                    self.watchdog.end()
        t2 = time.monotonic()
        infer_ms = (t2 - t1) * 1e3
        if good and not error and self.config.deadline_ms and infer_ms > self.config.deadline_ms:
            error = f"inference took {infer_ms:.1f} ms, over the {self.config.deadline_ms:g} ms deadline"
        for i, f in enumerate(good):
            r = results[f.seq]
            if error or inspection is None or batch is None:
                r.reason = error
                continue
            r.score = float(inspection.scores[i])
            r.model_input, r.anomaly_map = batch[i], inspection.maps[i, 0]
            why = self.config.gate.check_map(r.anomaly_map) if self.config.gate else ""
            if why:  # before the decision, so that a FAULT frame stays out of the debounce window
                r.reason = why
                continue
            r.verdict, r.above = self.decider.decide(r.score)
            if r.verdict is Verdict.FAULT:
                r.reason = f"score is not finite ({r.score})"
        t3 = time.monotonic()
        ordered = [results[f.seq] for f in frames]
        for r in ordered:
            r.decided_at = t3
            r.reject = self.plan_reject(r)
            self.update_ready(r)
        t4 = time.monotonic()
        n = len(frames)
        for r in ordered:
            r.batch_size = n
            r.stages_ms = {"decode": r.frame.decode_ms, "preprocess": (t1 - t0) * 1e3, "infer": infer_ms,
                           "decide": (t3 - t2) * 1e3, "reject": (t4 - t3) * 1e3}
        return ordered

    def plan_reject(self, r: FrameResult) -> RejectTicket:
        if r.verdict is Verdict.OK:
            return RejectTicket(None, "verdict OK")
        if r.verdict is Verdict.NG:
            ticket = self.reject.reject(r.frame)
            if ticket.missed:
                # The part has passed the ejector or no pulse can reach it: the line must know.
                self.summary.missed_rejects += 1
                r.verdict, r.reason = Verdict.FAULT, f"NG (score {r.score:.4g}) but reject {ticket.note}"
            return ticket
        policy = self.config.on_fault
        if policy is FaultPolicy.REJECT:
            ticket = self.reject.reject(r.frame)
            return RejectTicket(ticket.start, ticket.note or "fault: --on-fault reject")
        if policy is FaultPolicy.STOP:
            self.fault_stop = True
        return RejectTicket(None, f"fault: --on-fault {policy.value}")

    def update_ready(self, r: FrameResult) -> None:
        healthy = r.verdict is not Verdict.FAULT
        with self._ready_lock:
            if healthy == self.ready:
                return
            self.ready = healthy
            self.reject.set_ready(healthy)
        if healthy:
            log.info("%s: frame %d inspected without fault", self.ready_words(True), r.frame.seq)
        else:
            log.warning("%s: frame %d FAULT: %s", self.ready_words(False), r.frame.seq, r.reason)

    def ready_words(self, healthy: bool) -> str:
        """How a change of health reads on the console: a READY level only where a READY line is driven."""
        if self.reject.has_ready_line:
            return "READY high" if healthy else "READY low"
        return "healthy (no READY line)" if healthy else "unhealthy (no READY line)"

    def overrun(self, elapsed_s: float) -> None:
        """From the watchdog: the inference call in flight is past the deadline; READY drops now."""
        with self._ready_lock:
            if not self.ready:
                return
            self.ready = False
            self.reject.set_ready(False)
        log.warning("%s: inference still running after %.0f ms (deadline %g ms)", self.ready_words(False),
                    elapsed_s * 1e3, self.config.deadline_ms)

    def deliver(self, results: list[FrameResult]) -> None:
        for r in results:
            t0 = time.monotonic()
            self.call_sinks(self.early, "on_result", r)
            r.stages_ms["sinks"] = (time.monotonic() - t0) * 1e3
            # batch stages shared by the batch's frames; decode and sinks are each frame's own
            shared = sum(r.stages_ms[s] for s in ("preprocess", "infer", "decide", "reject"))
            work = shared / r.batch_size + r.frame.decode_ms + r.stages_ms["sinks"]
            r.stages_ms["loop"] = work
            self.call_sinks(self.recorders, "on_result", r)
            sinks_ms = (time.monotonic() - t0) * 1e3  # with the recorders, for the benchmark
            for s in STAGES:
                value = r.stages_ms[s] if s in ("decode", "sinks") else r.stages_ms[s] / r.batch_size
                self.stats.add(s, sinks_ms if s == "sinks" else value)
            self.stats.add("loop", work - r.stages_ms["sinks"] + sinks_ms)
            self.stats.add("latency", (r.decided_at - r.frame.t_capture) * 1e3)
            self.summary.frames += 1
            self.summary.inspected += 1
            setattr(self.summary, r.verdict.value.lower(), getattr(self.summary, r.verdict.value.lower()) + 1)

    # --- the run -------------------------------------------------------------------------------------

    def run(self, info: dict[str, Any]) -> RunSummary:
        t_start = time.monotonic()
        with self._note_lock:
            self.call_sinks(self.sinks, "on_start", info, self.note)
        cfg = self.config
        try:
            while True:
                if self.stop.is_set():
                    self.summary.stop_reason = StopReason.SIGNAL
                    break
                if cfg.max_frames and self.summary.frames >= cfg.max_frames:
                    self.summary.stop_reason = StopReason.MAX_FRAMES
                    break
                want = cfg.batch
                if cfg.max_frames:  # never grab past the limit: a batch may be cut short
                    want = min(want, cfg.max_frames - self.summary.frames)
                try:
                    grab = self.source.grab(want, cfg.grab_timeout_s)
                except Exception as exc:  # sources report trouble as fault markers; this is a bug or worse
                    self.note(f"source {self.source.name} failed: {type(exc).__name__}: {exc}")
                    self.summary.stop_reason = StopReason.SOURCE_ERROR
                    break
                for message in grab.notes:
                    self.note(message)
                self.account_dropped(grab.dropped)
                if grab.frames:
                    self.deliver(self.inspect(grab.frames))
                if self.fault_stop:
                    self.summary.stop_reason = StopReason.FAULT
                    break
                if self.output_failed():
                    self.summary.stop_reason = StopReason.OUTPUT_ERROR
                    break
                if grab.ended:
                    self.summary.stop_reason = StopReason.END
                    break
        finally:
            self.finish(t_start)
        return self.summary

    def finish(self, t_start: float) -> None:
        try:
            self.account_dropped(self.source.close())
        finally:
            try:
                if self.watchdog:
                    self.watchdog.close()
                with self._ready_lock:
                    self.ready = False
                    self.reject.set_ready(False)
            finally:
                # pulses already due still fire (none under `hurry`); later ones are cancelled; then the safe
                # state. Whatever interrupts the shutdown, the summary below is still written.
                try:
                    self.reject.close(hurry=self.hurry)
                finally:
                    self.output_failed()  # said even when it first showed at the last reset
                    self.write_summary(t_start)

    def output_failed(self) -> bool:
        """Whether a reject or READY line has failed; said (log, sinks) when it first shows or grows."""
        failure = self.reject.failure
        if failure and failure != self.summary.output_failure:  # new, or grown (the last reset failed too)
            self.summary.output_failure = failure
            message = (f"reject output failed: {failure}; stopping: no part can be rejected and READY cannot be "
                       "trusted until the line is fixed (wiring, GPIO chip, driver)")
            log.error("%s", message)
            with self._note_lock:
                self.call_sinks(self.sinks, "on_note", message)
        return failure is not None

    def write_summary(self, t_start: float) -> None:
        """The run's counts and percentiles into the summary and every sink, then the sinks closed."""
        s = self.summary
        s.reject_pulses, s.pulses_fired = self.reject.pulses_requested, self.reject.pulses_fired
        s.pulses_merged = self.reject.pulses_merged
        cancelled = self.reject.cancelled_seqs
        s.pulses_cancelled = len(cancelled)
        if cancelled:
            self.report_cancelled(cancelled)
        s.duration_s = time.monotonic() - t_start
        s.fill_percentiles(self.stats, self.config.record_stages)
        self.call_sinks(self.sinks, "finish")
        self.call_sinks(self.sinks, "on_summary", s.as_dict())
        self.call_sinks(self.sinks, "close")

    def report_cancelled(self, seqs: list[int]) -> None:
        """Name the parts that went unrejected: the run stopped before their pulse was due, or the output
        failed before it."""
        shown = ", ".join(map(str, seqs[:20])) + (f", ... ({len(seqs) - 20} more)" if len(seqs) > 20 else "")
        pulses = "reject pulse" if len(seqs) == 1 else "reject pulses"
        why = ("after the reject output failed, or at shutdown" if self.summary.output_failure
               else "at shutdown (due too far ahead to wait for)")
        message = (f"{len(seqs)} {pulses} cancelled {why}: those parts passed the ejector unrejected; pull the "
                   f"parts of frames (seq) {shown}")
        log.warning("%s", message)
        with self._note_lock:
            for sink in self.sinks:  # a sink written before this record existed gets it as a note
                if hasattr(sink, "on_rejects_cancelled"):
                    self.call_sinks([sink], "on_rejects_cancelled", seqs, message)
                else:
                    self.call_sinks([sink], "on_note", message)


def run_loop(runner: Runner, source: FrameSource, config: LoopConfig, reject: RejectOutput | None = None,
             sinks: Sequence[Sink] = (), stop: threading.Event | None = None,
             info: dict[str, Any] | None = None, hurry: threading.Event | None = None) -> RunSummary:
    """Inspect every frame of `source` with `runner` until the source ends, `stop` is set, a fault stops
    the run, or `config.max_frames` sequence numbers are accounted for. `hurry` set (a second stop signal)
    cancels the pulses still pending at shutdown instead of waiting for those due soon.

    The source, the reject output and the sinks are closed on return. `info` goes into the `start` record.
    """
    loop = _Loop(runner, source, config, reject or NoReject(), sinks, stop or threading.Event(), hurry)
    details = {"source": source.name, "threshold": config.threshold, "batch": config.batch,
               "debounce": f"{config.debounce.k}/{config.debounce.n}", "deadline_ms": config.deadline_ms,
               "on_fault": config.on_fault.value, **(info or {})}
    return loop.run(details)
