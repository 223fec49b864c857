"""A TensorRT logger that prints what trt.Logger would print and keeps every message it was given.

TensorRT reports why something failed only in its log: a deserialisation that needs a plugin nobody
registered returns None and logs "getPluginCreator could not find plugin ...". Keeping the messages lets
the runner name the plugin instead of calling the engine damaged, and lets the builder read which
layers it placed on a DLA core ("[DlaLayer] ..." / "[GpuLayer] ..." at INFO level).
"""

from __future__ import annotations

import re
import sys
from typing import Any, TextIO

# Severity values as TensorRT numbers them: INTERNAL_ERROR 0, ERROR 1, WARNING 2, INFO 3, VERBOSE 4.
PRINT_UP_TO = 2  # what trt.Logger(trt.Logger.WARNING) prints
_MISSING_PLUGIN = re.compile(r"could not find plugin:?\s*([A-Za-z0-9_.]+)", re.IGNORECASE)


def make_recording_logger(trt: Any, stream: TextIO | None = None) -> Any:
    """An instance of a `trt.ILogger` subclass: messages up to WARNING go to `stream` (stderr), and every
    message is kept in `.messages` as (severity number, text)."""

    class RecordingLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.messages: list[tuple[int, str]] = []

        def log(self, severity: Any, msg: str) -> None:
            level = int(severity)
            self.messages.append((level, str(msg)))
            if level <= PRINT_UP_TO:
                print(f"[TensorRT] {msg}", file=stream or sys.stderr)

    return RecordingLogger()


def missing_plugins(messages: list[tuple[int, str]]) -> list[str]:
    """Names of the plugins TensorRT said it could not find, in order, each once."""
    found = [m.group(1) for _, text in messages for m in [_MISSING_PLUGIN.search(text)] if m]
    return list(dict.fromkeys(found))


def count_layer_placement(messages: list[tuple[int, str]]) -> tuple[int, int] | None:
    """(layers on DLA, layers on GPU) from the builder's placement report, None when it logged none (then
    where the layers run is not known)."""
    dla = sum("[DlaLayer]" in text for _, text in messages)
    gpu = sum("[GpuLayer]" in text for _, text in messages)
    return (dla, gpu) if dla or gpu else None
