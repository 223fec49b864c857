"""Runner wrappers for fault injection: a real runner that fails, or is slow, on chosen calls.

They wrap the real ONNX Runtime runner; they are test instruments, not stand-ins for hardware.
"""

from __future__ import annotations

import time

import numpy as np

from ddad_edge.runtime.base import Inspection, Runner


class FaultyRunner:
    """Raises RuntimeError on the calls (0-based) listed in `fail_on`; otherwise the inner runner's answer."""

    def __init__(self, inner: Runner, fail_on: set[int]) -> None:
        self.inner, self.fail_on, self.calls = inner, set(fail_on), 0
        self.image_size = inner.image_size

    def infer(self, frames: np.ndarray) -> Inspection:
        call, self.calls = self.calls, self.calls + 1
        if call in self.fail_on:
            raise RuntimeError(f"injected failure on call {call}")
        return self.inner.infer(frames)

    def close(self) -> None:
        self.inner.close()


class SlowRunner:
    """Sleeps `delay_s` before the calls in `slow_on` (all calls when None), then runs the inner runner."""

    def __init__(self, inner: Runner, delay_s: float, slow_on: set[int] | None = None) -> None:
        self.inner, self.delay_s, self.slow_on, self.calls = inner, delay_s, slow_on, 0
        self.image_size = inner.image_size

    def infer(self, frames: np.ndarray) -> Inspection:
        call, self.calls = self.calls, self.calls + 1
        if self.slow_on is None or call in self.slow_on:
            time.sleep(self.delay_s)
        return self.inner.infer(frames)

    def close(self) -> None:
        self.inner.close()
