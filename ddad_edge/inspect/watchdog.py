"""The inference watchdog: READY drops while an inference call runs past the deadline.

The loop can only judge an inference call once it returns; a hung GPU or driver would never return, and
READY would stay high over a line that is no longer inspected. The watchdog watches the call in flight
from its own thread and reports the overrun the moment the deadline passes.
"""

from __future__ import annotations

import threading
import time
from typing import Callable


class InferenceWatchdog:
    """Calls `on_overrun(elapsed_s)` once per call that is still running `deadline_s` after `begin()`."""

    def __init__(self, deadline_s: float, on_overrun: Callable[[float], None]) -> None:
        self.deadline_s = deadline_s
        self._on_overrun = on_overrun
        self._cond = threading.Condition()
        self._started: float | None = None
        self._fired = False
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="inference-watchdog", daemon=True)
        self._thread.start()

    def begin(self) -> None:
        """An inference call starts now."""
        with self._cond:
            self._started, self._fired = time.monotonic(), False
            self._cond.notify()

    def end(self) -> None:
        """The call returned (or raised)."""
        with self._cond:
            self._started = None
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._closing:
                if self._started is None or self._fired:
                    self._cond.wait()
                    continue
                elapsed = time.monotonic() - self._started
                if elapsed < self.deadline_s:
                    self._cond.wait(self.deadline_s - elapsed)
                    continue
                self._fired = True
                self._on_overrun(elapsed)

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout=2.0)
