"""The decision: score against the image threshold, k-of-n debounce, and the verdict of a frame.

The threshold stays outside the graph so it can change without rebuilding an engine. The debounce makes
a part NG only when at least k of the last n inspected frames scored at or above the threshold, which
rides out a single noisy frame when several frames see the same part. FAULT frames (no score) do not
enter the window.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping

from ddad_edge.errors import DdadError
from ddad_edge.inspect.threshold_check import threshold_notes


class Verdict(str, Enum):
    """What the loop concluded about a frame."""

    OK = "OK"
    NG = "NG"  # no good: reject the part
    FAULT = "FAULT"  # the loop could not inspect it (inference error, too slow, camera lost)


class FaultPolicy(str, Enum):
    """What a FAULT frame does to the line (`--on-fault`)."""

    REJECT = "reject"  # treat the uninspected part as bad: fire a reject pulse
    STOP = "stop"  # stop the loop (READY stays low): the line must stop
    IGNORE = "ignore"  # log it and go on


@dataclass(frozen=True)
class Debounce:
    """NG when at least `k` of the last `n` scored frames are at or above the threshold."""

    k: int = 1
    n: int = 1

    @classmethod
    def parse(cls, text: str) -> "Debounce":
        """`k/n` as given to `--debounce` (for example 2/3)."""
        try:
            k, n = (int(v) for v in text.split("/"))
        except ValueError:
            raise DdadError(f"--debounce must be k/n (for example 2/3), got {text!r}") from None
        if not 1 <= k <= n:
            raise DdadError(f"--debounce {text}: need 1 <= k <= n")
        return cls(k, n)


def threshold_from_bundle(manifest: Mapping[str, Any], override: float | None = None) -> float:
    """The image threshold: `override` (from `--threshold`) or manifest['thresholds']['image'].

    One that decides nothing for this bundle (every part NG, or every part OK: `threshold_notes`) is refused.
    """
    if override is not None:
        if not math.isfinite(override):
            # NaN compares False with every score: the line would pass every part
            raise DdadError(f"--threshold {override} is not a finite number")
        threshold_notes(float(override), manifest, "--threshold")
        return float(override)
    thresholds = manifest.get("thresholds") or {}
    if not isinstance(thresholds, dict):
        raise DdadError("the bundle's thresholds (manifest.yaml) are not a mapping; "
                        "export the bundle again with `ddad-edge export`, or pass --threshold")
    value = thresholds.get("image")
    if value is None:
        raise DdadError("the bundle has no image threshold (thresholds.image in manifest.yaml): "
                        "export the bundle again with `ddad-edge export`, or pass --threshold")
    try:
        value = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError, OverflowError):
        raise DdadError(f"the bundle's image threshold {value!r} is not a number; "
                        "export the bundle again with `ddad-edge export`, or pass --threshold") from None
    if not math.isfinite(value):
        raise DdadError(f"the bundle's image threshold is {value}; "
                        "export the bundle again with `ddad-edge export`, or pass --threshold")
    threshold_notes(value, manifest, "thresholds.image in manifest.yaml")
    return value


class Decider:
    """Turns image scores into verdicts, remembering the last n above/below results."""

    def __init__(self, threshold: float, debounce: Debounce = Debounce()) -> None:
        self.threshold = threshold
        self.debounce = debounce
        self._window: deque[bool] = deque(maxlen=debounce.n)

    def decide(self, score: float) -> tuple[Verdict, bool]:
        """The verdict for one score, and whether this score alone was at or above the threshold.

        A score that is not finite (NaN, inf) is a FAULT: the graph misbehaved, and NaN compares False.
        """
        if not math.isfinite(score):
            return Verdict.FAULT, False
        above = score >= self.threshold
        self._window.append(above)
        return (Verdict.NG if sum(self._window) >= self.debounce.k else Verdict.OK), above
