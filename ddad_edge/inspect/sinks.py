"""Sinks: where the loop's results go. The interface, and the event log (events.jsonl).

The event log is appended one JSON line per record, each with one write call, so a crash of the
process loses at most the frame in flight; it is fsynced at most every `fsync_s` seconds (and on close)
so a power cut loses at most that long. With `max_bytes`, the log rotates by size (events.jsonl.1, .2, ...,
at most `backups` old files) between records, never splitting one.

A record that cannot be written (disk full) is cut back out of the file, so the log never holds half a
line; the write raises, the loop counts a sink error and goes on inspecting, and the first record that
fits again is preceded by a status record saying how many were lost. A log file deleted while the run
writes it is noticed at the next sync and started again, with a status record.
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

    def on_rejects_cancelled(self, seqs: list[int], message: str) -> None:
        """At shutdown: the frames whose reject pulse was cancelled (their parts went unrejected)."""
        self.on_note(message)

    def finish(self) -> None:
        """Complete background work (it may still emit notes); called before the summary."""

    def on_summary(self, summary: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class EventLog:
    """An append-only JSON-lines file, one write per record, thread-safe, optionally rotated by size.

    `lost`: records that could not be written (disk full, I/O error) since the log was opened.
    """

    def __init__(self, path: Path, max_bytes: int = 0, backups: int = 5, fsync_s: float = 1.0) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.fsync_s = fsync_s
        self.records = 0
        self.lost = 0
        self._lost_reported = 0
        self._lock = threading.Lock()
        self._fd = -1
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open()
        except OSError as exc:
            raise DdadError(f"cannot write the event log {self.path}: {exc.strerror or exc}") from None
        self._last_sync = time.monotonic()

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = os.fstat(self._fd).st_size
        if self._size and not self._ends_a_line():
            # a crash (power cut, SIGKILL) mid-write left half a line: end it, so the next record starts a line
            # of its own instead of being glued to the torn one (read_events would then drop both)
            os.write(self._fd, b"\n")
            self._size += 1

    def _ends_a_line(self) -> bool:
        with open(self.path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"

    def write(self, record: dict[str, Any]) -> None:
        """Append one record as a line, handed to the operating system before this returns.

        Raises OSError when the line cannot be written whole; the file is then as it was before.
        """
        # ASCII only (json's default escaping), so len(text) is its size in bytes
        text = json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n"
        with self._lock:
            missing = self.lost - self._lost_reported
            if missing:
                gap = {"kind": "status", "t": time.monotonic(), "wall_time": time.time(),
                       "message": f"event log: {missing} records could not be written (disk full or I/O "
                                  "error) and are missing before this one"}
                text = json.dumps(gap, separators=(",", ":")) + "\n" + text
            try:
                self._append(text)
            except OSError:
                self.lost += 1
                raise
            self._lost_reported = self.lost
            self.records += 1
            now = time.monotonic()
            if now - self._last_sync >= self.fsync_s:
                self._last_sync = now
                try:
                    os.fsync(self._fd)
                    if os.fstat(self._fd).st_nlink == 0:
                        self._recreate()
                except OSError:
                    pass  # the record is written; its durability is retried at the next sync

    def _recreate(self) -> None:
        """The file was deleted under the running log (a clean-up script, a careless rm): records would go
        to a file nobody can open. Start it again where it was, saying so."""
        os.close(self._fd)
        self._fd = -1
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._open()
        note = {"kind": "status", "t": time.monotonic(), "wall_time": time.time(),
                "message": "event log: the file was deleted while the run wrote it; records of up to "
                           f"{self.fsync_s:g} s before this one went with it"}
        self._append(json.dumps(note, separators=(",", ":")) + "\n")

    def _append(self, text: str) -> None:
        """Write whole lines or nothing: a torn tail is cut off again."""
        if self._fd < 0:
            self._open()  # a rotation or an earlier reopen failed
        if self.max_bytes and self._size and self._size + len(text) > self.max_bytes:
            self._rotate()
        data = memoryview(text.encode("ascii"))
        try:
            while data:
                data = data[os.write(self._fd, data):]
        except OSError:
            try:
                os.ftruncate(self._fd, self._size)  # frees space, so it works on a full disk too
            except OSError:
                pass
            raise
        self._size += len(text)

    def _rotated(self, i: int) -> str:
        return f"{self.path}.{i}"

    def _rotate(self) -> None:
        os.close(self._fd)
        self._fd = -1
        try:
            # the old files are .1 (newest) to .k, without gaps: shift the ones that exist, oldest first
            k = 0
            while k < self.backups and os.path.exists(self._rotated(k + 1)):
                k += 1
            for i in range(min(k, self.backups - 1), 0, -1):
                os.replace(self._rotated(i), self._rotated(i + 1))  # .backups, if there, is overwritten
            if self.backups > 0:
                os.replace(self.path, self._rotated(1))
            else:
                self.path.unlink()
        finally:
            self._open()  # even after a failed rename, the record goes somewhere

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                try:
                    os.fsync(self._fd)
                finally:
                    os.close(self._fd)
                    self._fd = -1


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

    def on_rejects_cancelled(self, seqs: list[int], message: str) -> None:
        self.log.write(status_record(message, kind="rejects_cancelled", seqs=seqs))

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
