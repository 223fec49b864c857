"""What a run adds up to: counts, latency percentiles per stage, and why it stopped."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from ddad_edge.inspect.result import STAGES


class StopReason(str, Enum):
    END = "end of source"
    SIGNAL = "signal"
    FAULT = "fault with --on-fault stop"
    MAX_FRAMES = "max frames reached"
    SOURCE_ERROR = "source error"
    OUTPUT_ERROR = "reject output failed"


class LatencyStats:
    """The most recent `keep` samples (ms) of each stage, or every sample with `keep=0`.

    Per inspected frame: the STAGES, `loop` (all of them: the work the loop did for this frame) and
    `latency` (capture to verdict). Batch stages are divided by the batch size.
    """

    def __init__(self, keep: int = 20_000) -> None:
        self._keep = keep or None
        self._samples: dict[str, deque[float]] = {}

    def add(self, stage: str, ms: float) -> None:
        self._samples.setdefault(stage, deque(maxlen=self._keep)).append(ms)

    def samples(self, stage: str) -> np.ndarray:
        return np.asarray(self._samples.get(stage, ()), dtype=np.float64)

    def percentile(self, stage: str, q: float) -> float | None:
        values = self.samples(stage)
        return float(np.percentile(values, q)) if values.size else None

    def stages(self) -> list[str]:
        return list(self._samples)


@dataclass
class RunSummary:
    """Totals of one run. `frames` counts sequence numbers accounted for (inspected + dropped)."""

    frames: int = 0
    inspected: int = 0
    ok: int = 0
    ng: int = 0
    fault: int = 0
    dropped: int = 0
    reject_pulses: int = 0  # reject pulses requested (one per NG part, and per FAULT under --on-fault reject)
    pulses_fired: int = 0  # pulses driven on the line
    pulses_merged: int = 0  # requests that overlapped another and lengthened it instead of firing alone
    pulses_cancelled: int = 0  # requests still too far ahead at shutdown: those parts passed unrejected
    missed_rejects: int = 0  # NG verdicts too late for the ejector, or after the reject output failed
    output_failure: str | None = None  # a reject or READY line whose driver failed (the loop stopped on it)
    sink_errors: int = 0
    stop_reason: StopReason = StopReason.END
    duration_s: float = 0.0
    latency_ms: dict[str, float | None] = field(default_factory=dict)  # capture → verdict: p50, p99
    loop_ms: dict[str, float | None] = field(default_factory=dict)  # the loop's work per frame: p50, p99
    stage_ms_p50: dict[str, float | None] = field(default_factory=dict)
    stage_samples: dict[str, np.ndarray] | None = None  # every sample per stage, when asked for

    def fill_percentiles(self, stats: LatencyStats, keep_samples: bool) -> None:
        self.latency_ms = {"p50": stats.percentile("latency", 50), "p99": stats.percentile("latency", 99)}
        self.loop_ms = {"p50": stats.percentile("loop", 50), "p99": stats.percentile("loop", 99)}
        self.stage_ms_p50 = {s: stats.percentile(s, 50) for s in STAGES}
        if keep_samples:
            self.stage_samples = {s: stats.samples(s) for s in stats.stages()}

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe totals (no samples), as the event log's summary record."""
        data = asdict(self)
        data.pop("stage_samples")
        data["stop_reason"] = self.stop_reason.value
        return data

    def text(self) -> str:
        """The summary printed at the end of `ddad-edge run`."""

        def ms(d: dict[str, float | None]) -> str:
            return " / ".join("-" if d.get(k) is None else f"{d[k]:.1f}" for k in ("p50", "p99"))

        when = "after the output failed or at shutdown" if self.output_failure else "at shutdown"
        cancelled = f"{self.pulses_cancelled} cancelled {when}"
        missed = "too late for the ejector or after the output failed" if self.output_failure else \
            "too late for the ejector"
        if self.pulses_cancelled:
            cancelled += ": those parts passed the ejector unrejected (frames listed in the event log)"
        return (f"frames {self.frames}: OK {self.ok}, NG {self.ng}, FAULT {self.fault}, dropped {self.dropped}; "
                f"reject pulses {self.reject_pulses}: {self.pulses_fired} fired, {self.pulses_merged} merged "
                f"into another, {cancelled}; {self.missed_rejects} NG {missed}\n"
                f"latency capture→verdict p50/p99 {ms(self.latency_ms)} ms; loop work per frame p50/p99 "
                f"{ms(self.loop_ms)} ms; {self.duration_s:.1f} s; stopped: {self.stop_reason.value}"
                + (f"\nreject output failed: {self.output_failure}" if self.output_failure else ""))
