"""The example systemd unit (device-files/ddad-edge.service) against the program it starts: its command line
parses, it retries the exit status of a source that is not there yet and not that of a configuration error,
it writes into one fixed folder, and the files it and docs/gpio.md point to exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from ddad_edge.cli import _register_commands
from ddad_edge.errors import DdadError, SourceUnavailable

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "device-files" / "ddad-edge.service"


def unit_settings(text: str) -> dict[str, list[str]]:
    """Key -> values of the unit's settings, continuation lines joined, comments dropped."""
    settings: dict[str, list[str]] = {}
    for line in re.sub(r"\\\n\s*", " ", text).splitlines():
        if line.strip() and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_the_units_command_line_parses_as_ddad_edge_run():
    import typer.main

    from ddad_edge.cli.app import app

    _register_commands()
    (exec_start,) = unit_settings(UNIT.read_text())["ExecStart"]
    words = shlex.split(exec_start)
    assert words[0].endswith("/bin/ddad-edge") and words[1] == "run"
    group = typer.main.get_command(app)
    ctx = group.make_context("ddad-edge", words[1:])
    name, cmd, rest = group.resolve_command(ctx, ctx._protected_args + ctx.args)
    cmd.make_context(name, rest, parent=ctx)  # a usage error on an unknown or malformed option


def test_the_unit_retries_a_source_not_there_yet_and_not_a_configuration_error():
    settings = unit_settings(UNIT.read_text())
    prevented = {int(code) for value in settings["RestartPreventExitStatus"] for code in value.split()}
    assert settings["Restart"] == ["on-failure"]
    assert SourceUnavailable.exit_code not in prevented and DdadError.exit_code in prevented
    assert str(SourceUnavailable.exit_code) in settings["RestartForceExitStatus"][0].split()
    assert settings["StartLimitIntervalSec"] == ["0"], "systemd must not give up on a camera missing for long"


def test_the_unit_writes_into_one_fixed_folder_under_its_state_directory():
    """A new folder per start would reset the NG quota and the log rotation at every restart."""
    settings = unit_settings(UNIT.read_text())
    words = shlex.split(settings["ExecStart"][0])
    out = Path(words[words.index("--out") + 1])
    assert out.is_absolute() and out.parent == Path("/var/lib") / settings["StateDirectory"][0]


def test_the_device_files_that_the_unit_and_docs_gpio_name_exist():
    docs = set(re.findall(r"device-files/[\w.-]+", (ROOT / "docs" / "gpio.md").read_text()))
    assert any(path.endswith(".rules") for path in docs), "docs/gpio.md names the udev rule it relies on"
    for path in docs | set(re.findall(r"device-files/[\w.-]+", UNIT.read_text())):
        assert (ROOT / path).is_file(), path
