"""What the loop concluded about one frame, and the event-log record it becomes.

Record kinds in events.jsonl (one JSON object per line):
- `frame`: an inspected frame or fault marker: seq, capture time, per-stage latency (ms), score,
  verdict, and the reject (`reject_at`, monotonic seconds) or why there was none (`reject_note`).
- `dropped`: a frame the source grabbed but the loop never inspected, and why.
- `start`, `status`, `summary`: the run's settings, status changes (camera lost, quota reached) and totals.
- `rejects_cancelled`: at shutdown, `seqs` of the frames whose reject pulse was cancelled because it was
  due too far ahead to wait for: those parts passed the ejector unrejected and must be pulled by hand.
Every sequence number a source hands out appears in exactly one `frame` or `dropped` record.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ddad_edge.inspect.decide import Verdict
from ddad_edge.inspect.frame import Dropped, Frame
from ddad_edge.inspect.reject import RejectTicket

STAGES = ("decode", "preprocess", "infer", "decide", "reject", "sinks")


@dataclass
class FrameResult:
    """One frame's verdict and everything the sinks need to show or store it.

    `model_input`: (S, S, 3) uint8 RGB as the runner saw it; `anomaly_map`: (S, S) float32; both None for
    fault markers and failed inferences. `stages_ms`: time per stage of the batch this frame was in
    (ms; decode is this frame's own). `decided_at`: time.monotonic() when the verdict was known.
    Sinks that run before the event log may fill `ng_image` / `ng_image_note`.
    """

    frame: Frame
    verdict: Verdict
    score: float | None = None
    above: bool = False
    reason: str = ""
    model_input: np.ndarray | None = None
    anomaly_map: np.ndarray | None = None
    reject: RejectTicket = RejectTicket(None, "")
    stages_ms: dict[str, float] = field(default_factory=dict)
    batch_size: int = 1
    decided_at: float = 0.0
    ng_image: str | None = None
    ng_image_note: str = ""


def _ms(value: float) -> float:
    return round(value, 3)


def frame_record(result: FrameResult) -> dict[str, Any]:
    """The `frame` record of events.jsonl for a result."""
    f = result.frame
    reject_at = result.reject.start
    return {
        "kind": "frame",
        "seq": f.seq,
        "t_capture": f.t_capture,
        "wall_time": f.wall_time,
        "name": f.name,
        "verdict": result.verdict.value,
        "score": None if result.score is None or not np.isfinite(result.score) else float(result.score),
        "above_threshold": result.above,
        "reason": result.reason,
        "reject_at": reject_at,
        "reject_delay_ms": None if reject_at is None else _ms((reject_at - f.t_capture) * 1e3),
        "reject_note": result.reject.note,
        "latency_ms": _ms((result.decided_at - f.t_capture) * 1e3),
        "stages_ms": {k: _ms(v) for k, v in result.stages_ms.items()},
        "batch": result.batch_size,
        "ng_image": result.ng_image,
        "ng_image_note": result.ng_image_note,
    }


def dropped_record(dropped: Dropped) -> dict[str, Any]:
    """The `dropped` record of a frame that was grabbed but not inspected."""
    return {"kind": "dropped", "seq": dropped.seq, "t_capture": dropped.t_capture,
            "wall_time": dropped.wall_time, "reason": dropped.reason}


def _json_safe(value: Any) -> Any:
    """Settings as JSON can hold them: infinite or NaN floats (a threshold of inf) become strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def status_record(message: str, kind: str = "status", **fields: Any) -> dict[str, Any]:
    """A `status` (or `start` / `summary`) record stamped now."""
    return {"kind": kind, "t": time.monotonic(), "wall_time": time.time(), "message": message,
            **_json_safe(fields)}
