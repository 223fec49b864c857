"""Sinks: where the loop's results go. The interface, and the event log (events.jsonl).

The event log is appended one JSON line per record and flushed after every record, so a crash of the
process loses at most the frame in flight; it is fsynced at most every `fsync_s` seconds (and on close)
so a power cut loses at most that long. With `max_bytes`, the log rotates by size (events.jsonl.1, .2, ...,
at most `backups` old files) between records, never splitting one.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

from ddad_edge.errors import DdadError
from ddad_edge.inspect.frame import Dropped
from ddad_edge.inspect.result import FrameResult, dropped_record, frame_record, status_record

Note = Callable[[str], None]


class Sink:
    """Receives what the loop produces; subclasses override what they use. Called on the loop's thread,
    in order; a sink that raises is reported and skipped, never stops inspection."""

    name = "sink"
    records = False  # True: called after the others, once the frame's stage times are final

    def on_start(self, info: dict[str, Any], note: Note) -> None:
        """The run's settings; `note(message)` logs a status line from any thread."""

    def on_result(self, result: FrameResult) -> None: ...

    def on_dropped(self, dropped: Dropped) -> None: ...

    def on_note(self, message: str) -> None: ...

    def finish(self) -> None:
        """Complete background work (it may still emit notes); called before the summary."""

    def on_summary(self, summary: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class EventLog:
    """An append-only JSON-lines file, flushed per record, thread-safe, optionally rotated by size."""

    def __init__(self, path: Path, max_bytes: int = 0, backups: int = 5, fsync_s: float = 1.0) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.fsync_s = fsync_s
        self.records = 0
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")
        except OSError as exc:
            raise DdadError(f"cannot write the event log {self.path}: {exc.strerror or exc}") from None
        self._size = self.path.stat().st_size
        self._last_sync = time.monotonic()

    def write(self, record: dict[str, Any]) -> None:
        """Append one record as a line and flush it to the operating system."""
        # ASCII only (json's default escaping), so len(line) is its size in bytes
        line = json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n"
        with self._lock:
            if self.max_bytes and self._size and self._size + len(line) > self.max_bytes:
                self._rotate()
            self._fh.write(line)
            self._fh.flush()
            self._size += len(line)
            self.records += 1
            now = time.monotonic()
            if now - self._last_sync >= self.fsync_s:
                os.fsync(self._fh.fileno())
                self._last_sync = now

    def _rotate(self) -> None:
        self._fh.close()
        for i in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self.backups > 0:
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink()
        self._fh = open(self.path, "a", encoding="utf-8")
        self._size = 0

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self._fh.close()


class EventLogSink(Sink):
    """Writes every result, drop, status line and the summary to an EventLog."""

    name = "events"
    records = True  # called after the other sinks, so its records carry their time too

    def __init__(self, log: EventLog) -> None:
        self.log = log

    def on_start(self, info: dict[str, Any], note: Note) -> None:
        self.log.write(status_record("run started", kind="start", **info))

    def on_result(self, result: FrameResult) -> None:
        self.log.write(frame_record(result))

    def on_dropped(self, dropped: Dropped) -> None:
        self.log.write(dropped_record(dropped))

    def on_note(self, message: str) -> None:
        self.log.write(status_record(message))

    def on_summary(self, summary: dict[str, Any]) -> None:
        self.log.write(status_record("run ended", kind="summary", **summary))

    def close(self) -> None:
        self.log.close()


def read_events(path: Path) -> list[dict[str, Any]]:
    """The records of an events.jsonl (and its rotated files, oldest first), skipping a torn last line."""
    path = Path(path)
    rotated = [p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit()]
    files = sorted(rotated, key=lambda p: -int(p.suffix[1:])) + [path]
    records = []
    for file in files:
        if not file.exists():
            continue
        for line in file.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line torn by a crash mid-write
    return records
