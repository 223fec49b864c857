"""Every numeric option of every command, fed NaN, infinity, a negative and a huge value: one line naming the
option, exit 2, and nothing written. The options come from the command line itself, so a new option is in
this table the day it is added (and one without a range stops every command: see cli/numbers.py)."""

from __future__ import annotations

import math

import pytest

from ddad_edge.cli import _register_commands, main
from ddad_edge.cli.numbers import guard_numeric_options, numeric_kind, range_of


def _numeric_options() -> list[tuple[str, str, type]]:
    import typer.main

    from ddad_edge.cli.app import app

    _register_commands()
    found = []
    for name, command in sorted(typer.main.get_command(app).commands.items()):
        for p in command.params:
            if numeric_kind(p) is not None:
                found.append((name, p.opts[0], numeric_kind(p)))
    return found


OPTIONS = _numeric_options()


def _bad_values(command: str, option: str, kind: type) -> list[str]:
    if range_of(command, option) is None:  # a command that checks its own ranges (distill): bad for all
        return ["-1", str(10**30), *(["nan", "inf"] if kind is float else [])]
    lo, hi = range_of(command, option)
    values = [str(-1) if lo >= 0 else "-1e309"]  # -1e309 reads as minus infinity
    if hi < 10**30:
        values.append(str(10**30))
    if kind is float:
        values += ["nan", "inf", "-inf"]
    if lo > 0:
        values.append("0")
    if math.isfinite(hi) and hi < 1e300:
        values.append(str(int(hi) + 1) if kind is int else repr(hi * 1.5))
    return values


def test_the_table_covers_the_commands_that_take_numbers():
    commands = {name for name, _, _ in OPTIONS}
    assert {"train", "adapt", "distill", "export", "evaluate", "run", "bench", "synth", "train-all",
            "model-info", "selftest", "demo"} <= commands
    assert len(OPTIONS) >= 60


@pytest.mark.parametrize("command,option,kind", OPTIONS, ids=[f"{c} {o}" for c, o, _ in OPTIONS])
def test_every_bad_number_is_one_line_before_any_work(capsys, tmp_path, monkeypatch, command, option, kind):
    monkeypatch.chdir(tmp_path)  # whatever a command would create by default lands here, where it is seen
    for value in _bad_values(command, option, kind):
        # required options given (values that would work), so only the number under test is wrong
        code = main([command, option, value, *_required(command, tmp_path)])
        err = capsys.readouterr().err.strip()
        assert code == 2, (command, option, value, err)
        assert len(err.splitlines()) == 1 and err.startswith(f"error: {option} "), err
    assert list(tmp_path.iterdir()) == [], "nothing written"


def _required(command: str, tmp_path) -> list[str]:
    return {"train": ["--data", str(tmp_path / "data")], "train-all": ["--data", str(tmp_path / "data")],
            "synth": ["--out", str(tmp_path / "synth")], "demo": ["--out", str(tmp_path / "demo")],
            "bench": ["--bundle", str(tmp_path / "bundle")],
            "selftest": ["--bundle", str(tmp_path / "bundle")]}.get(command, [])


def test_an_option_without_a_range_is_refused_at_once():
    """A numeric option added without a range would go unchecked: every command stops, naming it."""
    import typer

    from ddad_edge.cli import app as app_module  # noqa: F401

    extra = typer.Typer()

    @extra.command()
    def fresh(knob: float = typer.Option(1.0, "--knob")) -> None:  # pragma: no cover - never runs
        pass

    @extra.command()
    def other() -> None:  # pragma: no cover - a group of two, as the real app
        pass

    with pytest.raises(RuntimeError, match="fresh --knob: add its range"):
        guard_numeric_options(typer.main.get_command(extra))
