"""Frames and the frame-source interface that every camera, stream, file and folder implements.

A source hands the loop `Grab`s: the frames to inspect, oldest first, and the frames it had to drop
because the loop was still busy with earlier ones. Every frame a source produces carries a sequence
number, so the event log can account for every one of them: inspected, dropped, or faulted.

A frame with `image is None` is a fault marker: the place in the sequence where a frame should have
been and was not (the camera was lost, a file would not decode). The loop gives it the verdict FAULT.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass
class Frame:
    """One captured frame.

    `image`: (H, W, 3) uint8 RGB, or None for a fault marker (then `fault` says why).
    `t_capture`: time.monotonic() seconds when the frame was grabbed; reject pulses are timed from it.
    `wall_time`: time.time() seconds at the same moment, for the event log.
    `decode_ms`: time the source spent reading and decoding this frame (ms).
    """

    seq: int
    t_capture: float
    wall_time: float
    image: np.ndarray | None
    name: str = ""
    fault: str | None = None
    decode_ms: float = 0.0


@dataclass(frozen=True)
class Dropped:
    """A frame that was grabbed but never inspected (the loop was busy, or the run stopped first)."""

    seq: int
    t_capture: float
    wall_time: float
    reason: str


@dataclass
class Grab:
    """What one `FrameSource.grab` call returns.

    `frames`: frames and fault markers to inspect, in sequence order (may be empty after a timeout).
    `dropped`: frames overwritten since the previous grab. `notes`: status changes worth a log line
    (camera lost, reconnect attempt, camera restored). `ended`: the source will produce no more frames.
    """

    frames: list[Frame] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ended: bool = False


@runtime_checkable
class FrameSource(Protocol):
    """A camera, stream, video file or image folder.

    `live` sources capture on their own thread and keep only the newest frames; file and folder sources
    are read on demand and never drop a frame.
    """

    name: str
    live: bool

    def grab(self, max_frames: int, timeout_s: float) -> Grab:
        """Up to `max_frames` frames to inspect, waiting at most `timeout_s` seconds for the first."""
        ...

    def close(self) -> list[Dropped]:
        """Stop capturing and release the device; returns frames grabbed but never handed out."""
        ...
