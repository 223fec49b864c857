"""The exception types a user can cause.

Every error that a user can provoke (a bad path, a wrong image size, a missing package, a stale engine)
is raised as `DdadError` with a one-line message that names the thing and the fix; the CLI prints it
without a traceback and exits with the error's `exit_code`: 2 for a configuration error (starting again
cannot fix it), 75 for `SourceUnavailable` (the camera or stream is not there yet; a later start may
find it, and the systemd unit retries).
"""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

Choice = TypeVar("Choice", bound=Enum)

EXIT_CONFIG = 2  # the input or the environment is wrong: a person must fix it
EXIT_TEMPFAIL = 75  # EX_TEMPFAIL (sysexits.h): not available now, try again later


class DdadError(Exception):
    """A problem with the user's input or environment, described in one line."""

    exit_code = EXIT_CONFIG


class SourceUnavailable(DdadError):
    """The camera or stream cannot be found or opened at start (a USB camera still enumerating after boot,
    an IP camera still booting, a stream not up yet): not necessarily a mistake, so the exit status is 75
    (EX_TEMPFAIL), which the systemd unit retries, instead of 2."""

    exit_code = EXIT_TEMPFAIL


def raise_if_interrupted(exc: BaseException) -> None:
    """Raise KeyboardInterrupt where `exc` (an ImportError) came from a Ctrl-C during the import, not from a
    missing package: a C extension's initialisation (pybind11's, as onnxruntime's) turns any exception it meets,
    a KeyboardInterrupt included, into "ImportError: initialization failed" with the interrupt as its cause.
    Reported as "not installed", a Ctrl-C in a command's first second read as a broken installation."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__


def missing_package(package: str, purpose: str, install: str | None = None) -> DdadError:
    """The error for an optional package that is not installed.

    `package` is the import name, `purpose` what it is needed for, `install` the pip/apt line to fix it.
    """
    fix = install or f"pip install {package}"
    return DdadError(f"{purpose} needs the Python package '{package}', which is not installed: {fix}")


def choose(kind: type[Choice], value: Choice | str, what: str) -> Choice:
    """The member of an enum of names (backends, precisions) that `value` names, or one line naming the
    choices: `what` says what the value was meant to be ("backend", "OpenVINO inference precision")."""
    try:
        return kind(value)
    except ValueError:
        raise DdadError(f"unknown {what} {value!r}: choose one of {', '.join(m.value for m in kind)}") from None
