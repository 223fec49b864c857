"""The command line as the tests drive it, and the one-line error rule every user-caused error obeys.

run_cli: `ddad-edge ARGS` in this process; run_cli_process: in a fresh Python process (for what only a
process shows: its exit status from a signal, its imports); assert_one_line: an error, its message, or a
CLI run is one plain line that names what it should.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

from ddad_edge.cli import main
from ddad_edge.errors import DdadError

REPO = Path(__file__).resolve().parents[1]
MAX_MESSAGE = 600  # a line a terminal or journald shows whole, long tmp paths included
USAGE_ERROR = 2  # the exit status of an error the user can fix


class CliRun(NamedTuple):
    """Exit status, standard output and standard error (both stripped) of one command."""

    code: int
    out: str
    err: str


def run_cli(capsys, *args) -> CliRun:
    """`ddad-edge ARGS` (each argument str()-ed) in this process, its output read from pytest's capsys."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return CliRun(code, captured.out.strip(), captured.err.strip())


def run_cli_process(*args, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    """`python -m ddad_edge ARGS` in a fresh process with this checkout on its path (text output)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "ddad_edge", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout, **kwargs)


def assert_one_line(error: BaseException | str | CliRun, *needles: str) -> str:
    """`error` is a DdadError, its text, or a command that exited 2 with 'error: ...' on stderr, and the
    message is one non-empty line containing every needle. Returns the message."""
    if isinstance(error, CliRun):
        assert error.code == USAGE_ERROR, f"exit status {error.code}: {error.err}"
        assert error.err.startswith("error: "), error.err
        message = error.err
    else:
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
