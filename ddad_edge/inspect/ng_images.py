"""NG images: each rejected frame saved as a PNG with its anomaly heatmap, within a disk quota.

Encoding and writing happen on a writer thread, so a burst of NG frames or a slow SD card never delays
inspection. Each file is written through a temporary file and a rename (a crash leaves whole files
only). When the quota (images or bytes) is reached, saving stops and inspection goes on; the event log
says which frames have an image and why the others have none. A full disk pauses saving for `retry_s`
seconds (one note each time), then it is tried again: inspection never waits for the disk.
"""

from __future__ import annotations

import errno
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ddad_edge.bundle import atomic_write_bytes
from ddad_edge.errors import DdadError
from ddad_edge.inspect.decide import Verdict
from ddad_edge.inspect.result import FrameResult
from ddad_edge.inspect.sinks import Note, Sink
from ddad_edge.lazy_import import import_cv2
from ddad_edge.overlay import heatmap_overlay


@dataclass(frozen=True)
class NgQuota:
    """At most `max_images` NG images and `max_bytes` bytes of them in the folder, counting images that
    earlier runs left there (0 images: save none)."""

    max_images: int = 10_000
    max_bytes: int = 1 << 30


def overlay_heatmap(image: np.ndarray, anomaly_map: np.ndarray, threshold: float) -> np.ndarray:
    """(S, S, 3) uint8 RGB and (S, S) float32 map → (S, 2S, 3) uint8 BGR: the image beside a JET overlay.

    The colour scale runs from the map's minimum to max(threshold, map maximum), so a map that stays
    below the threshold never looks red.
    """
    cv2 = import_cv2()
    amap = np.nan_to_num(np.asarray(anomaly_map, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(amap.min()), max(float(threshold), float(amap.max()))
    blended = heatmap_overlay(image, amap, vmax=hi, alpha=0.5, vmin=lo)
    return np.concatenate([cv2.cvtColor(image, cv2.COLOR_RGB2BGR), cv2.cvtColor(blended, cv2.COLOR_RGB2BGR)], axis=1)


def _is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` (or the OSError behind it) says the disk or the user's quota is full."""
    cause = exc if isinstance(exc, OSError) else exc.__cause__
    return isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT)


class NgImageSink(Sink):
    """Saves NG frames under `folder` as `<run>_<seq>_<score>.png`, within `quota`.

    `run`: a stamp of this run (default: its start time), so a restarted service that writes into the
    same folder never replaces the images of an earlier run.
    """

    name = "ng-images"

    def __init__(self, folder: Path, quota: NgQuota, threshold: float, queue_size: int = 16,
                 run: str | None = None, retry_s: float = 60.0) -> None:
        self._cv2 = import_cv2()
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for stale in self.folder.glob(".*.tmp"):  # left by a crash mid-write
                stale.unlink(missing_ok=True)
        except OSError as exc:
            raise DdadError(f"cannot use {self.folder} for NG images: {exc.strerror or exc}") from None
        earlier = list(self.folder.glob("*.png"))
        self.retry_s = retry_s
        self._paused_until = 0.0  # time.monotonic() until which a full disk is left alone
        self.quota = quota
        self.threshold = threshold
        self.run = run or time.strftime("%Y%m%d-%H%M%S")
        self.saved = 0
        self.skipped = 0
        self.failed = 0
        self.bytes_written = sum(p.stat().st_size for p in earlier)  # the quota is the folder's
        self._accepted = len(earlier)
        self._earlier = len(earlier)
        self._quota_noted = False
        self._lock = threading.Lock()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._note: Note = lambda message: None
        self._thread = threading.Thread(target=self._write_loop, name="ng-images", daemon=True)
        self._thread.start()

    def on_start(self, info: dict[str, Any], note: Note) -> None:
        self._note = note

    def on_result(self, result: FrameResult) -> None:
        if result.verdict is not Verdict.NG or result.model_input is None or result.anomaly_map is None:
            return
        with self._lock:
            in_flight = self._accepted - self._earlier - self.saved - self.failed
            mean_size = self.bytes_written / (self.saved + self._earlier) if self.saved + self._earlier else 0
            if self._disk_full():
                why = "disk full: NG images paused"
            elif self._accepted >= self.quota.max_images:
                why = f"quota reached ({self.quota.max_images} images)"
            elif self.bytes_written + in_flight * mean_size >= self.quota.max_bytes:
                why = f"quota reached ({self.quota.max_bytes / 1e6:g} MB)"
            else:
                why = ""
        if not why:
            name = f"{self.run}_{result.frame.seq:08d}_{result.score:.4f}.png"
            try:
                self._queue.put_nowait((name, result.model_input, result.anomaly_map))
            except queue.Full:
                why = "image writer busy"
            else:
                with self._lock:
                    self._accepted += 1
                result.ng_image = f"{self.folder.name}/{name}"
                return
        self.skipped += 1
        result.ng_image_note = why
        if why.startswith("quota") and not self._quota_noted:
            self._quota_noted = True
            self._note(f"NG image {why}: no more NG images are saved this run; inspection goes on")

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            name, image, amap = item
            if self._disk_full():  # the disk filled a moment ago: frames queued since are not tried
                with self._lock:
                    self.failed += 1
                self._note(f"NG image {name} not written: disk full, NG images paused")
                continue
            try:
                ok, png = self._cv2.imencode(".png", overlay_heatmap(image, amap, self.threshold),
                                             [self._cv2.IMWRITE_PNG_COMPRESSION, 3])
                data = png.tobytes()
                with self._lock:
                    over = self.bytes_written + len(data) > self.quota.max_bytes
                    if over:
                        self.failed += 1
                if over:
                    self._note(f"NG image {name} not written: the {self.quota.max_bytes / 1e6:g} MB quota "
                               "would be exceeded")
                    continue
                atomic_write_bytes(self.folder / name, data)
                with self._lock:
                    self.bytes_written += len(data)
                    self.saved += 1
            except Exception as exc:  # a full disk must not kill the writer or the loop
                with self._lock:
                    self.failed += 1
                if _is_disk_full(exc):
                    self._paused_until = time.monotonic() + self.retry_s
                    self._note(f"NG image {name} not written: disk full; NG images paused for {self.retry_s:g} s, "
                               "inspection goes on")
                else:
                    self._note(f"NG image {name} not written: {type(exc).__name__}: {exc}")

    def _disk_full(self) -> bool:
        return time.monotonic() < self._paused_until

    def finish(self) -> None:
        """Write what is queued, then stop the writer (its last notes still reach the event log)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=30)

    def close(self) -> None:
        self.finish()
