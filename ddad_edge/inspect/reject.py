"""Reject outputs: one interface for Jetson.GPIO, libgpiod, the simulated output and none.

A reject is a pulse of `pulse_s` seconds that begins when the part reaches the ejector: the frame's
capture time plus the travel delay (`delay_s`; 0 means "as soon as the verdict is known"). A verdict that
arrives after that moment (more than `max_late_s` late) fires nothing: the part has passed, and a late
pulse would hit the next, good part; the ticket says so and the loop counts the frame as a FAULT.

READY is a second line that is active only while the loop is healthy; a PLC can stop the line when it
drops. It works without a reject line too (`--gpio none --ready-gpio ...`: an inspector that only
watches and tells the PLC it is healthy). Both lines return to their inactive (safe) level on close.

On close, pulses still more than the drain window ahead are cancelled: those parts pass the ejector
unrejected. `cancelled_seqs` names their frames, so the loop can report them.

A line whose driver fails (a write raises, or hangs past the scheduler's timeout) is `failure`, one line;
the loop stops on it, since no part can be rejected or READY be trusted any more. Requests after it fire
nothing: their tickets say why, and their frames are among `cancelled_seqs`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ddad_edge.inspect.frame import Frame
from ddad_edge.inspect.gpio_lines import GpioKind, GpioLine, GpioSpec, check_distinct_lines, open_line
from ddad_edge.inspect.pulses import PulseScheduler


@dataclass(frozen=True)
class RejectTiming:
    """Pulse width, travel delay from capture to the ejector, and how late a pulse may still start (s)."""

    pulse_s: float = 0.05
    delay_s: float = 0.0
    max_late_s: float = 0.01


@dataclass(frozen=True)
class RejectTicket:
    """What became of a reject request: `start` (time.monotonic() s) of the pulse, or None and why not."""

    start: float | None
    note: str = ""

    @property
    def late(self) -> bool:
        return self.start is None and self.note.startswith("late")

    @property
    def lost(self) -> bool:
        """The reject output has failed: this pulse will never fire."""
        return self.start is None and self.note.startswith(LOST)

    @property
    def missed(self) -> bool:
        """An NG part the ejector will not reject: too late, or lost to a failed output."""
        return self.late or self.lost


NO_REJECT = "no reject output (--gpio none)"
LOST = "not fired: "


class RejectOutput(Protocol):
    """Where reject pulses and the READY level go."""

    def reject(self, frame: Frame) -> RejectTicket:
        """Plan a reject pulse for the part seen in `frame` (at capture time + travel delay)."""
        ...

    def set_ready(self, ready: bool) -> None: ...

    def close(self, hurry: threading.Event | None = None) -> None:
        """Fire the pulses already due for parts on their way, then put every line in its safe state.
        `hurry` set (a second stop signal): cancel every pulse not yet fired, and end the one being driven."""
        ...

    @property
    def pulses_requested(self) -> int:
        """Pulses asked for (NG parts, and FAULT ones under --on-fault reject)."""
        ...

    @property
    def pulses_fired(self) -> int:
        """Pulses driven on the line; overlapping requests merge into one."""
        ...

    @property
    def pulses_merged(self) -> int:
        """Requests that joined another pulse on the line (final after close)."""
        ...

    @property
    def cancelled_seqs(self) -> list[int]:
        """Frames whose pulse was cancelled at close (too far ahead): their parts went unrejected."""
        ...

    @property
    def has_ready_line(self) -> bool:
        """Whether a READY line is driven at all."""
        ...

    @property
    def failure(self) -> str | None:
        """None while every line works; else one line naming the line that failed and how."""
        ...


class NoReject:
    """`--gpio none` without a READY line: verdicts are logged, nothing is driven."""

    pulses_requested = 0
    pulses_fired = 0
    pulses_merged = 0
    has_ready_line = False
    failure = None

    @property
    def cancelled_seqs(self) -> list[int]:
        return []

    def reject(self, frame: Frame) -> RejectTicket:
        return RejectTicket(None, NO_REJECT)

    def set_ready(self, ready: bool) -> None:
        pass

    def close(self, hurry: threading.Event | None = None) -> None:
        pass


class GpioReject:
    """A reject line driven by a PulseScheduler and an optional READY line, on any GpioLine driver.

    `reject_line` None: READY only (no reject output); every reject request then fires nothing.
    """

    def __init__(self, reject_line: GpioLine | None, ready_line: GpioLine | None, timing: RejectTiming,
                 active_high: bool = True, drain_s: float = 2.0) -> None:
        self.reject_line = reject_line
        self.ready_line = ready_line
        self.timing = timing
        self.active_high = active_high
        self._drain_s = drain_s
        self._scheduler = PulseScheduler(reject_line, active_high) if reject_line is not None else None
        self._ready: bool | None = None
        self._ready_lock = threading.Lock()
        self._ready_error: str | None = None
        self.set_ready(False)

    def reject(self, frame: Frame) -> RejectTicket:
        if self._scheduler is None:
            return RejectTicket(None, NO_REJECT)
        failure = self._scheduler.failure
        now = time.monotonic()
        start = frame.t_capture + self.timing.delay_s if self.timing.delay_s > 0 else now
        if start < now - self.timing.max_late_s:
            return RejectTicket(None, f"late by {(now - start) * 1e3:.1f} ms: the part has passed the ejector")
        start = max(start, now)
        self._scheduler.schedule(start, start + self.timing.pulse_s, tag=frame.seq)  # counted, named if lost
        if failure is not None:
            return RejectTicket(None, LOST + failure)
        return RejectTicket(start)

    def set_ready(self, ready: bool) -> None:
        with self._ready_lock:
            if self.ready_line is not None and ready != self._ready and self._ready_error is None:
                try:
                    self.ready_line.write(ready == self.active_high)
                except Exception as exc:  # noqa: BLE001 - said by `failure`; the loop stops on it
                    self._ready_error = f"{self.ready_line.name} line: {type(exc).__name__}: {exc}"
            self._ready = ready

    @property
    def has_ready_line(self) -> bool:
        return self.ready_line is not None

    @property
    def pulses_requested(self) -> int:
        return self._scheduler.requested if self._scheduler else 0

    @property
    def pulses_fired(self) -> int:
        return self._scheduler.fired if self._scheduler else 0

    @property
    def pulses_merged(self) -> int:
        return self._scheduler.merged if self._scheduler else 0

    @property
    def cancelled_seqs(self) -> list[int]:
        return list(self._scheduler.cancelled_tags) if self._scheduler else []

    @property
    def failure(self) -> str | None:
        reject = self._scheduler.failure if self._scheduler is not None else None
        return "; ".join(f for f in (reject, self._ready_error) if f) or None

    def close(self, hurry: threading.Event | None = None) -> None:
        try:
            self.set_ready(False)
            if self._scheduler is not None:
                self._scheduler.close(self._drain_s, hurry)
        finally:  # the lines are released at their safe level however the drain ends
            hung = self._scheduler is not None and self._scheduler.hung
            for line in (self.reject_line, self.ready_line):
                if line is not None and not (hung and line is self.reject_line):  # a hung driver would hang here
                    line.close()


def open_reject_output(spec: GpioSpec, timing: RejectTiming, ready: GpioSpec | None = None,
                       active_high: bool = True, sim_log: Path | None = None) -> NoReject | GpioReject:
    """The reject output for `--gpio` (and `--ready-gpio`); `sim` always has a simulated READY line.

    `--gpio none` with a READY line drives READY alone. Lines start at their inactive level; `sim_log`
    mirrors simulated level changes to a JSON-lines file. READY on the reject line itself is refused
    before either is opened.
    """
    if ready is None and spec.kind is GpioKind.SIM:
        ready = GpioSpec(GpioKind.SIM)
    if ready is not None and ready.kind is GpioKind.NONE:
        ready = None
    if ready is not None:
        check_distinct_lines(spec, ready)
    if spec.kind is GpioKind.NONE and ready is None:
        return NoReject()
    reject_line = None
    if spec.kind is not GpioKind.NONE:
        reject_line = open_line(spec, "reject", initial_high=not active_high, sim_log=sim_log)
    ready_line = None
    if ready is not None:
        try:
            ready_line = open_line(ready, "ready", initial_high=not active_high, sim_log=sim_log)
        except BaseException:
            if reject_line is not None:
                reject_line.close()
            raise
    return GpioReject(reject_line, ready_line, timing, active_high)
