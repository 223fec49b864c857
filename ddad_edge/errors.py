"""The one exception type a user can cause.

Every error that a user can provoke (a bad path, a wrong image size, a missing package, a stale engine)
is raised as `DdadError` with a one-line message that names the thing and the fix; the CLI prints it
without a traceback and exits with status 2.
"""

from __future__ import annotations


class DdadError(Exception):
    """A problem with the user's input or environment, described in one line."""


def missing_package(package: str, purpose: str, install: str | None = None) -> DdadError:
    """The error for an optional package that is not installed.

    `package` is the import name, `purpose` what it is needed for, `install` the pip/apt line to fix it.
    """
    fix = install or f"pip install {package}"
    return DdadError(f"{purpose} needs the Python package '{package}', which is not installed: {fix}")
