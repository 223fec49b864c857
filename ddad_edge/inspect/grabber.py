"""The latest-frame grabber behind every live source (cameras, CSI, GStreamer, streams, realtime video).

A thread reads the capture device as fast as it delivers, numbers every frame it grabs, and keeps only the
newest `keep` frames for the loop: a camera never waits for inference, and the loop always inspects the
part that is in front of the camera now. Frames overwritten before the loop took them are handed over as
`Dropped`, so the event log still accounts for every sequence number.

When the device stops delivering (read failure, or nothing for `stall_s` seconds) the grabber inserts one
fault marker into the sequence, releases the device and reopens it with exponential backoff; the first
good frame after that ends the loss. A frame that arrived damaged (`jpeg_check.DamagedFrame`, from the
sources that check compressed frames) is a fault marker of its own, with its reason; the device stays open.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from ddad_edge.inspect.frame import Dropped, Frame, Grab
from ddad_edge.inspect.jpeg_check import DamagedFrame
from ddad_edge.lazy_import import import_cv2

BUSY = "inference busy"


@dataclass(frozen=True)
class Backoff:
    """Reconnect delays: `first_s`, then times `factor`, at most `max_s` (seconds)."""

    first_s: float = 0.5
    max_s: float = 10.0
    factor: float = 2.0

    def delays(self) -> Iterator[float]:
        delay = self.first_s
        while True:
            yield delay
            delay = min(self.max_s, delay * self.factor)


class LiveSource:
    """A capture device read on its own thread; the loop takes the newest frames with `grab`.

    `opener()` returns an opened cv2.VideoCapture-like object (grab/retrieve/release) or raises.
    `pace_fps`: replay pace for a video file standing in for a camera. `end_at_eof`: a failed read ends
    the source (a file) instead of counting as a lost camera. `first`: an already opened capture.
    """

    live = True

    def __init__(self, opener: Callable[[], Any], name: str, keep: int = 1, pace_fps: float | None = None,
                 end_at_eof: bool = False, first: Any = None, stall_s: float = 3.0,
                 backoff: Backoff = Backoff()) -> None:
        self._cv2 = import_cv2()
        self.name = name
        self._opener = opener
        self._keep = max(1, keep)
        self._pace = pace_fps
        self._end_at_eof = end_at_eof
        self._stall_s = stall_s
        self._backoff = backoff
        self._cond = threading.Condition()
        self._pending: deque[Frame] = deque()  # newest image frames and every fault marker, in seq order
        self._dropped: list[Dropped] = []
        self._notes: list[str] = []
        self._seq = 0
        self._lost = False
        self._ended = False
        self._last_frame_t = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(first,), name=f"grab {name}", daemon=True)
        self._thread.start()

    # --- the grabbing thread -------------------------------------------------------------------------

    def _run(self, cap: Any) -> None:
        delays = self._backoff.delays()
        attempts = 0
        next_t = time.monotonic()
        while not self._stop.is_set():
            if cap is None:
                if self._stop.wait(next(delays)):
                    break
                attempts += 1
                try:
                    cap = self._opener()
                except Exception as exc:  # any failure to open is one more attempt, never the end
                    self._add_note(f"{self.name}: reconnect attempt {attempts} failed ({exc})")
                    continue
                self._add_note(f"{self.name}: reopened after {attempts} attempt(s)")
                next_t = time.monotonic()
                continue
            if self._pace:
                next_t += 1.0 / self._pace
                if self._stop.wait(max(0.0, next_t - time.monotonic())):
                    break
            try:
                ok = cap.grab()
                t, wall = time.monotonic(), time.time()  # stamped before decoding: closest to exposure
                bgr = cap.retrieve()[1] if ok else None
                rgb = self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGB) if bgr is not None else None
            except DamagedFrame as exc:  # the frame's own FAULT; the stream goes on
                self._push_damaged(str(exc), t, wall)
                continue
            except Exception as exc:  # a driver error is a lost camera, not a dead loop
                rgb, reason = None, f"{self.name}: capture error ({type(exc).__name__}: {exc})"
            else:
                reason = f"{self.name}: no frame from the device (camera lost)"
            if rgb is None:
                if self._end_at_eof:
                    with self._cond:
                        self._ended = True
                        self._cond.notify_all()
                    break
                cap.release()
                cap = None
                self._mark_lost(reason)
                delays, attempts = self._backoff.delays(), 0
                continue
            self._push(rgb, t, wall, (time.monotonic() - t) * 1e3)
        if cap is not None:
            cap.release()

    def _add_note(self, note: str) -> None:
        with self._cond:
            self._notes.append(note)

    def _mark_lost(self, reason: str) -> None:
        with self._cond:
            self._mark_lost_locked(reason)

    def _mark_lost_locked(self, reason: str) -> None:
        if self._lost or self._stop.is_set():
            return
        self._lost = True
        self._pending.append(Frame(self._seq, time.monotonic(), time.time(), None, fault=reason))
        self._seq += 1
        self._notes.append(reason)
        self._cond.notify_all()

    def _push_damaged(self, reason: str, t: float, wall: float) -> None:
        with self._cond:
            if self._stop.is_set():
                return
            self._last_frame_t = t  # the device delivers: not a stall
            self._pending.append(Frame(self._seq, t, wall, None, fault=reason))
            self._seq += 1
            self._cond.notify_all()

    def _push(self, rgb: Any, t: float, wall: float, decode_ms: float) -> None:
        with self._cond:
            if self._stop.is_set():
                return  # after close: no sequence number is handed out that nobody will account for
            if self._lost:
                self._lost = False
                self._notes.append(f"{self.name}: frames again (camera restored)")
            self._last_frame_t = t
            self._pending.append(Frame(self._seq, t, wall, rgb, decode_ms=decode_ms))
            self._seq += 1
            images = [f for f in self._pending if f.image is not None]
            for old in images[:max(0, len(images) - self._keep)]:
                self._pending.remove(old)
                self._dropped.append(Dropped(old.seq, old.t_capture, old.wall_time, BUSY))
            self._cond.notify_all()

    # --- the loop's side -----------------------------------------------------------------------------

    def grab(self, max_frames: int, timeout_s: float) -> Grab:
        """The newest frames (at most `max_frames`) and every pending fault marker, oldest first."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not self._pending and not self._ended and not self._stop.is_set():
                now = time.monotonic()
                if not self._lost and now - self._last_frame_t > self._stall_s:
                    self._mark_lost_locked(f"{self.name}: no frame for {self._stall_s:g} s (camera stalled)")
                    break
                if now >= deadline:
                    break
                self._cond.wait(min(deadline - now, self._stall_s / 4))
            grab = Grab(dropped=self._dropped, notes=self._notes)
            self._dropped, self._notes = [], []
            images = 0
            while self._pending and images < max_frames:
                frame = self._pending.popleft()
                images += frame.image is not None
                grab.frames.append(frame)
            grab.ended = self._ended and not self._pending
            return grab

    def close(self) -> list[Dropped]:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=self._stall_s + 1.0)
        with self._cond:
            left = self._dropped + [Dropped(f.seq, f.t_capture, f.wall_time, f.fault or "run stopped")
                                    for f in self._pending]
            self._dropped, self._pending = [], deque()
            return left
