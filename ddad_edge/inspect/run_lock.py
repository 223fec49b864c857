"""One inspection run per event log: a second `ddad-edge run` into the same log is refused while the first runs.

Two runs appending to one events.jsonl interleave their records, with nothing to tell them apart; their
NG images share one folder and one quota. A lock file beside the log (`events.jsonl.lock`), held with
flock for the whole run, refuses the second in one line naming the first one's process id. The kernel
drops the lock when the process ends however it ends (SIGKILL, a power cut), so a stale lock file never
blocks a restart: only a live holder does.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ddad_edge.errors import DdadError


class RunLock:
    """An exclusive, non-blocking lock on `<events>.lock`, held until `close()`."""

    def __init__(self, events: Path) -> None:
        self.path = Path(f"{events}.lock")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DdadError(f"cannot create the lock file {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            raise DdadError(f"another ddad-edge run (process {holder}) is writing the event log {events}: "
                            f"stop it first, or give this run another --out (or --events)") from None
        try:  # the holder's process id, for the second run's message; a full disk must not stop the run
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass

    @property
    def name(self) -> str:
        return "run lock"

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # releases the lock; the file stays (removing it would race a new run)
            self._fd = -1
