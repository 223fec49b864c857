"""Shared checks of the hardening suite: hypothesis settings sized for CI, and a snapshot of a folder to prove
that a failed operation changed nothing that was already written. (The one-line error rule is
tests/cli_helpers.assert_one_line.)"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings

# DDAD_FUZZ_SCALE=20 runs twenty times the examples (a longer local fuzzing session); CI runs the default.
SCALE = max(1, int(os.environ.get("DDAD_FUZZ_SCALE", "1")))


def fuzz(examples: int) -> settings:
    """Hypothesis settings: `examples` examples (times DDAD_FUZZ_SCALE), derandomized so CI is repeatable,
    no example database written into the tree, no per-example deadline on a loaded 2-core machine."""
    return settings(max_examples=examples * SCALE, deadline=None, database=None, derandomize=SCALE == 1,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large, HealthCheck.filter_too_much])


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (relative path → bytes), hidden ones included."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
