"""The pulse scheduler: drives a reject line at planned monotonic times, on its own thread.

The loop plans a pulse as soon as it has a verdict, for the moment the part reaches the ejector (capture
time + travel delay); the scheduler drives the line then, however long inference took. Pulses that
overlap or touch (within `merge_gap_s`) merge into one longer pulse, so none is lost: the line is active
over the union of every planned pulse.

Each pulse may carry a tag (the loop uses the frame's sequence number). At close, pulses beyond the
drain window are cancelled and their tags kept in `cancelled_tags`, so the parts that passed the ejector
unrejected can be named. Once closed, `requested == fired + merged + cancelled`.

A driver that fails is said, never hidden: a write that raises, or one that has not returned after
`write_timeout_s`, sets `failure` (one line naming the line and the error). From a raised write on, no
pulse fires: those queued and every later request are cancelled, tags kept, so the counts above still
add up and the loop can stop and name the parts. The driver is called outside the scheduler's lock, so
a hung one never blocks `schedule`, `failure` or `close`.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ddad_edge.inspect.gpio_lines import GpioLine

_Planned = tuple[float, float, list[object]]  # (start, end, tags of the requests it holds)
WRITE_TIMEOUT_S = 1.0  # a GPIO write takes microseconds; one not back after a second is hung
# Pulses this close count as touching. Planned times are sums of monotonic seconds (about 1e5 after a day
# up, where a double's step is 1.5e-11): `start + 0.07` and `start + 0.06 + 0.01` differ by a step about
# a third of the time, which split a pulse that should merge into two with a gap of nothing between.
TOUCH_S = 1e-6


class PulseScheduler:
    """Drives `line` active (high, or low with `active_high=False`) over every scheduled interval."""

    def __init__(self, line: GpioLine, active_high: bool = True, merge_gap_s: float = 0.0,
                 write_timeout_s: float = WRITE_TIMEOUT_S) -> None:
        self._line = line
        self._on = active_high
        self._gap = merge_gap_s + TOUCH_S
        self._write_timeout_s = write_timeout_s
        self._queue: list[_Planned] = []  # pulses not yet begun; sorted, disjoint
        self._active_end: float | None = None  # end of the pulse being driven now
        self._cond = threading.Condition()
        self._io = threading.Lock()  # one driver call at a time, never under _cond
        self._write_began: float | None = None  # when the driver call in progress began
        self._stuck = False  # close could not make its last write: the driver never let go
        self._starting: list[object] = []  # tags of the pulse the thread is about to begin
        self._error: str | None = None  # what the driver raised; no pulse fires after it
        self._closing = False
        self._abort = False  # close(hurry=...) under way: no more pulses; the one being driven ends now
        self.requested = 0  # pulses asked for
        self.fired = 0  # pulses driven on the line (each may hold several merged requests)
        self.cancelled = 0  # requested pulses dropped: beyond the drain window at close, or after a failure
        self.cancelled_tags: list[Any] = []  # their tags (None for untagged ones), in start order
        self._thread = threading.Thread(target=self._run, name=f"pulses {line.name}", daemon=True)
        self._thread.start()

    def schedule(self, start: float, end: float, tag: object = None) -> None:
        """Plan the line active from `start` to `end` (time.monotonic() seconds); `tag` names the request.
        After a failed write the request is cancelled at once (see `failure`)."""
        with self._cond:
            self.requested += 1
            if self._error is not None:
                self.cancelled += 1
                self.cancelled_tags.append(tag)
                return
            if self._active_end is not None and start <= self._active_end + self._gap:
                self._active_end = max(self._active_end, end)
            else:
                self._queue.append((start, end, [tag]))
                self._queue.sort(key=lambda p: (p[0], p[1]))
                merged: list[_Planned] = []
                for s, e, tags in self._queue:
                    if merged and s <= merged[-1][1] + self._gap:
                        ms, me, mtags = merged[-1]
                        merged[-1] = (ms, max(me, e), mtags + tags)
                    else:
                        merged.append((s, e, tags))
                self._queue = merged
            self._cond.notify()

    @property
    def merged(self) -> int:
        """Requests that joined another pulse instead of firing on their own (final once closed)."""
        with self._cond:
            return self.requested - self.fired - self.cancelled - sum(len(t) for _, _, t in self._queue)

    @property
    def failure(self) -> str | None:
        """None while the driver works; else one line: what it raised, or how long a write has hung."""
        with self._cond:
            if self._error is not None:
                return self._error
            hung_s = self._hung_s()
        if hung_s is not None:
            return f"{self._line.name} line: its driver has not returned from a write for {hung_s:.1f} s"
        return None

    @property
    def hung(self) -> bool:
        """Whether a driver call has been running past `write_timeout_s` (it may never return)."""
        with self._cond:
            return self._stuck or self._hung_s() is not None

    def _hung_s(self) -> float | None:
        """Under the lock: how long the driver call in progress has run, where past `write_timeout_s`."""
        if self._write_began is None:
            return None
        elapsed = time.monotonic() - self._write_began
        return elapsed if elapsed > self._write_timeout_s else None

    def _run(self) -> None:
        while True:
            with self._cond:
                level = self._next_level()
                if level is None:
                    continue  # waited; look again
                if level is _EXIT:
                    return
                self._write_began = time.monotonic()
            ok = self._write(level is _ACTIVE)
            with self._cond:
                self._write_began = None
                if not ok:
                    if level is _ACTIVE:  # the pulse never began: its requests are lost, not fired
                        self._unfire()
                    self._active_end = None
                    self._cancel(self._queue)
                    return
                if level is _LAST:
                    return

    def _next_level(self) -> object:
        """Under the lock: the level to write now (_ACTIVE, _INACTIVE, _LAST: inactive, then stop), _EXIT,
        or None after waiting for the next moment something is due."""
        if self._abort:
            self._active_end = None
            return _LAST
        now = time.monotonic()
        if self._active_end is not None:
            while self._queue and self._queue[0][0] <= self._active_end + self._gap:
                self._active_end = max(self._active_end, self._queue.pop(0)[1])
            if now >= self._active_end:
                self._active_end = None
                return _INACTIVE
            self._cond.wait(self._active_end - now)
            return None
        if self._queue:
            start, end, _ = self._queue[0]
            if now >= start:
                self._starting = self._queue.pop(0)[2]
                self._active_end = end
                self.fired += 1
                return _ACTIVE
            self._cond.wait(start - now)
            return None
        if self._closing:
            return _EXIT
        self._cond.wait()
        return None

    def _write(self, active: bool) -> bool:
        """Drive the line; False (and `failure` set) if the driver raised. A pulse is never begun once
        close has given up on the drain: its last write to the inactive level must stay the last."""
        with self._io:
            if active and self._abort:
                with self._cond:  # cut off by close: its requests are cancelled, not fired
                    self._unfire()
                return True
            try:
                self._line.write(self._on if active else not self._on)
            except Exception as exc:  # noqa: BLE001 - any driver error is this line's failure, said once
                with self._cond:
                    if self._error is None:
                        self._error = f"{self._line.name} line: {type(exc).__name__}: {exc}"
                return False
        return True

    def close(self, drain_s: float = 2.0, hurry: threading.Event | None = None) -> None:
        """Finish pulses that begin within `drain_s` seconds (parts already on their way to the ejector),
        cancel later ones (counted in `cancelled`, named in `cancelled_tags`), and leave the line inactive.

        `hurry` set, before or during the wait: every pulse not yet fired is cancelled too, and a pulse
        being driven is cut short, so the line is inactive at once. The line ends inactive however the wait
        ends (an exception, a KeyboardInterrupt included). A driver that fails or hangs on that last write
        is not waited for beyond `write_timeout_s`: `failure` says so, and close returns."""
        try:
            with self._cond:
                self._closing = True
                limit = time.monotonic() + drain_s
                self._cancel([p for p in self._queue if p[0] > limit])
                self._cond.notify()
            deadline = time.monotonic() + drain_s + 5.0
            while self._thread.is_alive() and time.monotonic() < deadline:
                if hurry is not None and hurry.is_set() and not self._abort:
                    with self._cond:
                        self._abort = True
                        self._cancel(self._queue)
                        self._cond.notify()
                if self.failure is not None:
                    break  # a hung driver: its pulses will not fire in the drain either
                self._thread.join(timeout=0.02 if hurry is not None else min(
                    0.1, max(0.0, deadline - time.monotonic())))
        finally:
            with self._cond:
                self._abort = True  # a thread still alive (a hung driver) stops at its next turn
                self._cancel(self._queue)  # only if the thread is stuck: they will not fire now
                self._cond.notify()
            self._last_write()

    def _last_write(self) -> None:
        """The inactive level, whatever the thread is doing; a hung or failing driver is said in `failure`."""
        if not self._io.acquire(timeout=self._write_timeout_s):  # the thread is stuck in the driver
            with self._cond:
                self._stuck = True
                if self._error is None:
                    self._error = (f"{self._line.name} line: its driver did not return from a write within "
                                   f"{self._write_timeout_s:g} s, so the line could not be reset: its level "
                                   "is unknown")
            return
        try:
            self._line.write(not self._on)
        except Exception as exc:  # noqa: BLE001
            reset = f"could not be reset to its inactive level ({type(exc).__name__}: {exc}): its level is unknown"
            with self._cond:
                self._error = f"{self._error}; {reset}" if self._error else f"{self._line.name} line: {reset}"
        finally:
            self._io.release()

    def _unfire(self) -> None:
        """Under the lock: the pulse counted as fired when it was taken off the queue did not begin."""
        self.fired -= 1
        self.cancelled += len(self._starting)
        self.cancelled_tags.extend(self._starting)

    def _cancel(self, pulses: list[_Planned]) -> None:
        for pulse in list(pulses):
            self._queue.remove(pulse)
            self.cancelled += len(pulse[2])
            self.cancelled_tags.extend(pulse[2])


_ACTIVE, _INACTIVE, _LAST, _EXIT = object(), object(), object(), object()
