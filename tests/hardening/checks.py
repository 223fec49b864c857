"""Shared checks of the hardening suite: hypothesis settings sized for CI, the one-line error rule, and a
snapshot of a folder to prove that a failed operation changed nothing that was already written."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings

from ddad_edge.errors import DdadError

# DDAD_FUZZ_SCALE=20 runs twenty times the examples (a longer local fuzzing session); CI runs the default.
SCALE = max(1, int(os.environ.get("DDAD_FUZZ_SCALE", "1")))
MAX_MESSAGE = 600  # a line a terminal or journald shows whole, long tmp paths included


def fuzz(examples: int) -> settings:
    """Hypothesis settings: `examples` examples (times DDAD_FUZZ_SCALE), derandomized so CI is repeatable,
    no example database written into the tree, no per-example deadline on a loaded 2-core machine."""
    return settings(max_examples=examples * SCALE, deadline=None, database=None, derandomize=SCALE == 1,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large, HealthCheck.filter_too_much])


def assert_one_line(error: BaseException | str, *needles: str) -> str:
    """`error` is a DdadError (or its text) of one non-empty line, containing every needle; returns it."""
    if isinstance(error, BaseException):
        assert isinstance(error, DdadError), f"{type(error).__name__}: {error}"
    message = str(error)
    assert message.strip(), "an empty error message"
    assert "\n" not in message and "\r" not in message, f"not one line: {message!r}"
    assert len(message) <= MAX_MESSAGE, f"{len(message)} characters: {message[:200]}..."
    assert "Traceback" not in message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (relative path → bytes), hidden ones included."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
