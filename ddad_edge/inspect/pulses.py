"""The pulse scheduler: drives a reject line at planned monotonic times, on its own thread.

The loop plans a pulse as soon as it has a verdict, for the moment the part reaches the ejector (capture
time + travel delay); the scheduler drives the line then, however long inference took. Pulses that
overlap or touch (within `merge_gap_s`) merge into one longer pulse, so none is lost: the line is active
over the union of every planned pulse.

Each pulse may carry a tag (the loop uses the frame's sequence number). At close, pulses beyond the
drain window are cancelled and their tags kept in `cancelled_tags`, so the parts that passed the ejector
unrejected can be named. Once closed, `requested == fired + merged + cancelled`.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ddad_edge.inspect.gpio_lines import GpioLine

_Planned = tuple[float, float, list[object]]  # (start, end, tags of the requests it holds)


class PulseScheduler:
    """Drives `line` active (high, or low with `active_high=False`) over every scheduled interval."""

    def __init__(self, line: GpioLine, active_high: bool = True, merge_gap_s: float = 0.0) -> None:
        self._line = line
        self._on = active_high
        self._gap = merge_gap_s
        self._queue: list[_Planned] = []  # pulses not yet begun; sorted, disjoint
        self._active_end: float | None = None  # end of the pulse being driven now
        self._cond = threading.Condition()
        self._closing = False
        self._abort = False  # close(hurry=...) under way: no more pulses; the one being driven ends now
        self.requested = 0  # pulses asked for
        self.fired = 0  # pulses driven on the line (each may hold several merged requests)
        self.cancelled = 0  # requested pulses dropped at close because they lay beyond the drain window
        self.cancelled_tags: list[Any] = []  # their tags (None for untagged ones), in start order
        self._thread = threading.Thread(target=self._run, name=f"pulses {line.name}", daemon=True)
        self._thread.start()

    def schedule(self, start: float, end: float, tag: object = None) -> None:
        """Plan the line active from `start` to `end` (time.monotonic() seconds); `tag` names the request."""
        with self._cond:
            self.requested += 1
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

    def _run(self) -> None:
        with self._cond:
            while True:
                if self._abort:
                    self._line.write(not self._on)
                    self._active_end = None
                    return
                now = time.monotonic()
                if self._active_end is not None:
                    while self._queue and self._queue[0][0] <= self._active_end + self._gap:
                        self._active_end = max(self._active_end, self._queue.pop(0)[1])
                    if now >= self._active_end:
                        self._line.write(not self._on)
                        self._active_end = None
                    else:
                        self._cond.wait(self._active_end - now)
                    continue
                if self._queue:
                    start, end, _ = self._queue[0]
                    if now >= start:
                        self._queue.pop(0)
                        self._line.write(self._on)
                        self._active_end = end
                        self.fired += 1
                    else:
                        self._cond.wait(start - now)
                    continue
                if self._closing:
                    return
                self._cond.wait()

    def close(self, drain_s: float = 2.0, hurry: threading.Event | None = None) -> None:
        """Finish pulses that begin within `drain_s` seconds (parts already on their way to the ejector),
        cancel later ones (counted in `cancelled`, named in `cancelled_tags`), and leave the line inactive.

        `hurry` set, before or during the wait: every pulse not yet fired is cancelled too, and a pulse
        being driven is cut short, so the line is inactive at once. The line ends inactive however the wait
        ends (an exception, a KeyboardInterrupt included)."""
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
                self._thread.join(timeout=0.02 if hurry is not None else max(0.0, deadline - time.monotonic()))
        finally:
            with self._cond:
                self._abort = True  # a thread still alive (a hung driver) stops at its next turn
                self._cancel(self._queue)  # only if the thread is stuck: they will not fire now
                self._cond.notify()
                self._line.write(not self._on)

    def _cancel(self, pulses: list[_Planned]) -> None:
        for pulse in list(pulses):
            self._queue.remove(pulse)
            self.cancelled += len(pulse[2])
            self.cancelled_tags.extend(pulse[2])
