"""The pulse scheduler: drives a reject line at planned monotonic times, on its own thread.

The loop plans a pulse as soon as it has a verdict, for the moment the part reaches the ejector (capture
time + travel delay); the scheduler drives the line then, however long inference took. Pulses that
overlap or touch (within `merge_gap_s`) merge into one longer pulse, so none is lost: the line is active
over the union of every planned pulse.
"""

from __future__ import annotations

import threading
import time

from ddad_edge.inspect.gpio_lines import GpioLine


class PulseScheduler:
    """Drives `line` active (high, or low with `active_high=False`) over every scheduled interval."""

    def __init__(self, line: GpioLine, active_high: bool = True, merge_gap_s: float = 0.0) -> None:
        self._line = line
        self._on = active_high
        self._gap = merge_gap_s
        self._queue: list[list[float]] = []  # [start, end] not yet begun; sorted, disjoint
        self._active_end: float | None = None  # end of the pulse being driven now
        self._cond = threading.Condition()
        self._closing = False
        self.requested = 0  # pulses asked for
        self.fired = 0  # pulses driven on the line (after merging)
        self.cancelled = 0  # pulses dropped at close because they lay beyond the drain window
        self._thread = threading.Thread(target=self._run, name=f"pulses {line.name}", daemon=True)
        self._thread.start()

    def schedule(self, start: float, end: float) -> None:
        """Plan the line active from `start` to `end` (time.monotonic() seconds)."""
        with self._cond:
            self.requested += 1
            if self._active_end is not None and start <= self._active_end + self._gap:
                self._active_end = max(self._active_end, end)
            else:
                self._queue.append([start, end])
                self._queue.sort()
                merged: list[list[float]] = []
                for s, e in self._queue:
                    if merged and s <= merged[-1][1] + self._gap:
                        merged[-1][1] = max(merged[-1][1], e)
                    else:
                        merged.append([s, e])
                self._queue = merged
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while True:
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
                    start, end = self._queue[0]
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

    def close(self, drain_s: float = 2.0) -> None:
        """Finish pulses that begin within `drain_s` seconds (parts already on their way to the ejector),
        cancel later ones, and leave the line inactive."""
        with self._cond:
            self._closing = True
            limit = time.monotonic() + drain_s
            keep = [p for p in self._queue if p[0] <= limit]
            self.cancelled += len(self._queue) - len(keep)
            self._queue = keep
            self._cond.notify()
        self._thread.join(timeout=drain_s + 5.0)
        with self._cond:
            self._line.write(not self._on)
