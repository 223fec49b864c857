"""The `ddad-edge` command line: a thin typer app. Parse, call, print.

Each module in this package registers the commands of one part of the job on the shared `app`
(see `ddad_edge.cli.app`). Commands import torch and the other heavy libraries inside their bodies,
so the device-side commands start on a machine that has no torch.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

from ddad_edge.errors import DdadError

# The command modules in the order of the job, which is the order `--help` lists their commands in: the demo
# first, then data, the workstation's stages, the device's, and the tools.
COMMAND_MODULES = ("demo", "data", "train", "train_all", "adapt", "distill", "evaluate", "export", "device", "run",
                   "bench", "model_info")
HELPERS = ("app", "lost_interrupt", "numbers", "table")  # modules of this package that register no command


def _register_commands() -> None:
    found = {info.name for info in pkgutil.iter_modules(__path__)} - set(HELPERS)
    # a new command module missing from the list still registers, after the others
    for name in [*COMMAND_MODULES, *sorted(found - set(COMMAND_MODULES))]:
        importlib.import_module(f"{__name__}.{name}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ddad-edge` script; a DdadError becomes one line on stderr and its exit status
    (2 for a configuration error, 75 when the camera or stream is not available yet)."""
    try:
        # imports inside the try: a Ctrl-C while they load (the first fraction of a second) is one line too
        from ddad_edge.cli.lost_interrupt import watch

        watch()  # a Ctrl-C that lands where Python cannot raise it is kept, not printed as a traceback and lost
        import typer.main

        import ddad_edge.model  # noqa: F401  (registers the torch runner in runtime's backend table; no torch yet)
        from ddad_edge.cli.app import app
        from ddad_edge.cli.numbers import guard_numeric_options

        _register_commands()
        command = guard_numeric_options(typer.main.get_command(app))  # every number checked before any work
        # ctx.obj is this entry point: a command that runs other commands (the demo) calls it, so no
        # command module imports this package back (an import circle)
        code = command(args=argv, standalone_mode=False, obj=main)  # an Exit(code) comes back as its code
        if code == 130:  # typer turns a Ctrl-C inside a command into Exit(130), silently: say it
            print("interrupted", file=sys.stderr)
        return code if isinstance(code, int) else 0
    except DdadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:
        return int(exc.code or 0)
    except Exception as exc:
        # Usage errors of the command-line parser (click, which typer may carry inside itself) arrive
        # here with standalone_mode=False; they know how to print themselves in one line.
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            return exc.exit_code
        if type(exc).__name__ == "Abort":
            # the parser turns a Ctrl-C (KeyboardInterrupt) inside a command into Abort: still an interrupt
            if isinstance(exc.__context__, KeyboardInterrupt):
                print("interrupted", file=sys.stderr)
                return 130
            print("aborted", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
