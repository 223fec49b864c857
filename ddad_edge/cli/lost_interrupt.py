"""A Ctrl-C that Python could not deliver, kept for the command to act on.

Python's default SIGINT handler raises KeyboardInterrupt in whatever the main thread is running. When that
is a weakref callback or a finalizer (importlib's module-lock callback, while a command is still importing
what it needs), Python cannot raise it there: it prints "Exception ignored in ..." with a traceback and goes
on, and the Ctrl-C is lost: a `run` interrupted in its first second went on inspecting. `watch` installs an
unraisable hook that keeps such an interrupt, silently, and `take` tells a command that one came, where the
command can still stop cleanly (`run`: before its first frame, as after any first Ctrl-C).
"""

from __future__ import annotations

import sys
from typing import Any

_lost: list[BaseException] = []


def watch() -> None:
    """Keep KeyboardInterrupts that Python cannot raise (and say nothing of them); other unraisable
    exceptions go to the hook that was there. Calling it again (the demo runs commands) adds nothing."""
    previous = sys.unraisablehook
    if getattr(previous, "keeps_lost_interrupts", False):
        return

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            _lost.append(unraisable.exc_value)
            return
        previous(unraisable)

    hook.keeps_lost_interrupts = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


def take() -> bool:
    """Whether a Ctrl-C was lost since the last call."""
    lost = bool(_lost)
    _lost.clear()
    return lost
