"""A progress bar for long loops: rich when on a terminal, a line every few seconds otherwise."""

from __future__ import annotations

import sys
import time


class Progress:
    """`with Progress("train", total=N) as bar: bar.update(step, loss=0.1)` shows step/total, it/s and fields."""

    def __init__(self, label: str, total: int, enabled: bool = True, initial: int = 0) -> None:
        self.label, self.total, self.enabled = label, total, enabled
        self._initial = initial
        self._rich = None
        self._task = None
        self._last_print = 0.0
        self._start = time.monotonic()

    def __enter__(self) -> "Progress":
        if self.enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[info]}"), TimeRemainingColumn(), transient=False)
            self._rich.start()
            self._task = self._rich.add_task(self.label, total=self.total, completed=self._initial, info="")
        return self

    def update(self, done: int, **fields: float) -> None:
        if not self.enabled:
            return
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = (done - self._initial) / elapsed
        info = " ".join(f"{k} {v:.4g}" for k, v in fields.items()) + f" {rate:.2f} it/s"
        if self._rich is not None:
            self._rich.update(self._task, completed=done, info=info)
        elif time.monotonic() - self._last_print > 10 or done == self.total:
            self._last_print = time.monotonic()
            print(f"{self.label}: {done}/{self.total} {info}", file=sys.stderr, flush=True)

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.stop()
