"""Per-stage timing of the loop for the benchmark: how much of a frame's time is the loop's own.

`profile_loop` runs N frames of a source through the real loop (with whatever sinks and reject output
the caller gives) and returns every per-frame stage sample, so `bench` can report the loop's overhead
(everything but inference) next to the runner's latency.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ddad_edge.inspect.decide import Debounce
from ddad_edge.inspect.frame import FrameSource
from ddad_edge.inspect.loop import LoopConfig, run_loop
from ddad_edge.inspect.preprocess import Roi
from ddad_edge.inspect.reject import RejectOutput
from ddad_edge.inspect.sinks import Sink
from ddad_edge.inspect.summary import RunSummary
from ddad_edge.runtime.base import Runner


@dataclass(frozen=True)
class LoopProfile:
    """Per inspected frame, in ms: `stage_ms[stage]` for decode, preprocess, infer, decide, reject, sinks,
    `loop` (their sum) and `latency` (capture → verdict). Batch stages are divided by the batch size."""

    stage_ms: dict[str, np.ndarray]
    summary: RunSummary

    @property
    def overhead_ms(self) -> np.ndarray:
        """The loop's own work per frame: everything but inference (ms)."""
        return self.stage_ms["loop"] - self.stage_ms["infer"]

    def percentiles(self, q: Sequence[float] = (50, 99)) -> dict[str, dict[str, float]]:
        """{stage: {"p50": ms, ...}} including "overhead"."""
        stages = dict(self.stage_ms, overhead=self.overhead_ms)
        return {s: {f"p{v:g}": float(np.percentile(x, v)) for v in q} for s, x in stages.items() if x.size}


def profile_loop(runner: Runner, source: FrameSource, n_frames: int, threshold: float = float("inf"),
                 batch: int = 1, roi: Roi | None = None, reject: RejectOutput | None = None,
                 sinks: Sequence[Sink] = ()) -> LoopProfile:
    """Run `n_frames` frames (sequence numbers) of `source` through the loop with `runner`; every stage
    sample is kept. The default threshold (inf) makes every frame OK, so no NG image is written unless
    the caller wants that cost measured."""
    config = LoopConfig(threshold=threshold, debounce=Debounce(), batch=batch, roi=roi, max_frames=n_frames,
                        record_stages=True)
    summary = run_loop(runner, source, config, reject, sinks)
    return LoopProfile(dict(summary.stage_samples or {}), summary)
