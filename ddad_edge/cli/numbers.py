"""Every numeric option of every command: finite and in its range, checked before the command does any work.

A typo in a number must not cost a model or the machine: `distill --max-minutes nan` trained nothing and
replaced a good student, `bench --batch 100000` grew to 21 GB, `bench --iters 10000000000` ran on
silently. The parser checks only the type (and NaN passes every `min`/`max` comparison), so each option
gets its range here, in one table, and `guard_numeric_options` checks them all before any command's body
runs. Commands keep their own checks of the relations between options (T' a multiple of the teacher steps,
an image size that halves at every UNet level), which need more than one number.

An option whose range is a config key (`model.image_size`) takes that key's range, so a value given on the
command line and one in a config file are held to the same limits. A numeric option missing from the
table stops every command at once (and fails tests/cli/test_numeric_options.py), so none skips the check.
"""

from __future__ import annotations

import math
import sys
import typing
from typing import Any, Callable

from ddad_edge.config_checks import check_option_range, option_range
from ddad_edge.errors import DdadError

MAX_BATCH = 256  # frames per inference call (run, bench, evaluate): more is no line camera's rate, only memory
MAX_FLOAT = sys.float_info.max  # "any finite number"

Range = tuple[float, float]

# option → (lowest, highest), inclusive, or the config key whose range it shares; see _COMMAND_RANGES for
# the options whose range depends on the command
_RANGES: dict[str, Range | str] = {
    # training and its stop limits (train, train-all, model-info)
    "--image-size": "model.image_size", "--max-steps": "train.max_steps", "--max-minutes": "train.max_minutes",
    "--epochs": "train.epochs", "--batch-size": "train.batch_size", "--seed": "train.seed", "--w": "sampler.w",
    "--eta": "sampler.eta", "--t-prime": "sampler.t_prime", "--start-level": "sampler.t_prime",
    # sampler steps (evaluate, export, model-info)
    "--steps": (1, 100_000),
    # thresholds at export and on the line
    "--quantile": (1e-12, 1.0), "--margin": (0.0, 1e6), "--threshold": (-MAX_FLOAT, MAX_FLOAT),
    # synthetic data, the demo, the selftest
    "--size": (32, 8192), "--n-train": (1, 1_000_000), "--n-test-good": (0, 1_000_000),
    "--n-test-defect": (0, 1_000_000), "--minutes": (0.01, 1e7), "--repeats": (1, 1_000_000),
    # inference batches and timing (run, bench, evaluate)
    "--batch": (1, MAX_BATCH), "--warmup": (0, 100_000), "--iters": (1, 1_000_000),
    "--reference-warmup": (0, 1_000), "--reference-iters": (1, 100_000), "--reference-threads": (0, 4096),
    "--threads": (0, 4096),
    # the inspection loop (run): a NaN or negative delay would misdrive the ejector
    "--pulse-ms": (0.1, 60_000.0), "--delay-ms": (0.0, 3_600_000.0), "--max-late-ms": (0.0, 60_000.0),
    "--deadline-ms": (0.0, 3_600_000.0), "--stall-s": (0.01, 86_400.0), "--events-max-mb": (0.0, 1e6),
    "--ng-max-mb": (0.0, 1e9), "--ng-max-images": (0, 10**9), "--fps": (0.0, 10_000.0),
    "--width": (0, 65_535), "--height": (0, 65_535), "--max-frames": (0, 10**15),
    "--http-port": (0, 65_535), "--metrics-port": (0, 65_535),
}
_COMMAND_RANGES: dict[tuple[str, str], Range | str] = {
    ("adapt", "--epochs"): "adapt.epochs", ("adapt", "--max-steps"): "adapt.max_steps",
    # model-info counts any size its preset can take and names the preset when one does not fit
    ("model-info", "--image-size"): (1, 2048),
}
# Commands whose numbers a settings class of their own checks as the body's first statement, before any
# work, with the meaning of each (distill: train/distill.py's DistillConfig, "--random-noise 1.5 is a
# fraction"); here only finiteness, so the ranges are not written twice.
_OWN_RANGES = {"distill"}


def _entry(command: str, option: str) -> Range | str | None:
    if command in _OWN_RANGES:
        return None
    return _COMMAND_RANGES.get((command, option), _RANGES.get(option))


def range_of(command: str, option: str) -> Range | None:
    """The inclusive range of `option` of `command`, or None where the table has none (or the command
    checks its own: `_OWN_RANGES`)."""
    found = _entry(command, option)
    return option_range(found) if isinstance(found, str) else found


def numeric_kind(param: Any) -> type | None:
    """int or float for a parameter that takes numbers (alone or repeated), else None."""
    descriptor = getattr(param, "type_descriptor", None)
    annotation = getattr(descriptor, "annotation", None)
    for kind in (annotation, *typing.get_args(annotation)):
        if kind in (int, float):
            return kind
    return None


def check_number(command: str, option: str, value: float) -> None:
    """One DdadError line when `value` of `option` is not finite or outside its range (an option that sets
    a config key: that key's range, said as `check_option_range` says it)."""
    if isinstance(value, float) and not math.isfinite(value) and command in _OWN_RANGES:
        raise DdadError(f"{option} {value:g}: give a finite number")
    found = _entry(command, option)
    if isinstance(found, str):
        check_option_range(option, found, value)
        return
    if found is None:
        return
    lo, hi = found
    span = "a finite number" if (lo, hi) == (-MAX_FLOAT, MAX_FLOAT) else f"a number from {lo:g} to {hi:g}"
    if isinstance(value, float) and not math.isfinite(value):
        raise DdadError(f"{option} {value:g} is not a finite number: give {span}")
    if not lo <= value <= hi:
        raise DdadError(f"{option} {value:g} is out of range: give {span}")


def _guarded(name: str, params: list, callback: Callable[..., Any]) -> Callable[..., Any]:
    numeric = [(p.name, p.opts[0]) for p in params if numeric_kind(p) is not None]

    def checked(*args: Any, **kwargs: Any) -> Any:
        for key, option in numeric:
            value = kwargs.get(key)
            for v in value if isinstance(value, (list, tuple)) else [value]:
                if v is not None:
                    check_number(name, option, v)
        return callback(*args, **kwargs)

    return checked


def guard_numeric_options(group: Any, prefix: str = "") -> Any:
    """Make every command under the click `group` check its numeric options (`check_number`) before its
    body runs; returns `group`. A numeric option without a range is a programming error, said at once."""
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            guard_numeric_options(command, f"{prefix}{name} ")
            continue
        for p in command.params:
            if numeric_kind(p) is not None and name not in _OWN_RANGES and range_of(name, p.opts[0]) is None:
                raise RuntimeError(f"ddad-edge {prefix}{name} {p.opts[0]}: add its range to cli/numbers.py")
        if command.callback is not None:
            command.callback = _guarded(name, command.params, command.callback)
    return group
