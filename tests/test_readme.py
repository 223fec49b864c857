"""The README, tried as a new user would: every command in its code blocks parses as written, and the
blocks that are cheap enough run for real.

- Every `ddad-edge …` line of every bash block goes through the real command-line parser (the typer/click
  command tree `ddad-edge` runs), so an option that was renamed or removed fails here.
- Every `bash scripts/X.sh` line names a script that exists.
- The synthetic-set block runs in a temporary folder, exactly as written except for one change made for
  CI's time: a training budget `--max-minutes N` becomes `--max-steps 3`. Its JSON outputs must hold
  image AUROCs.
- `ddad-edge doctor` from the Jetson block runs here too (it reports what is missing; it must not crash).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from ddad_edge.cli import _register_commands, main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def bash_blocks(text: str) -> list[list[str]]:
    """The commands of each ```bash block: continuation lines joined, comments and blank lines dropped."""
    blocks = []
    for body in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = body.replace("\\\n", " ")
        commands = []
        for line in joined.splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(" ".join(shlex.quote(w) for w in words))
        blocks.append(commands)
    return blocks


def ddad_commands(text: str) -> list[list[str]]:
    """Every `ddad-edge …` invocation in the README's bash blocks, split into words (after `&&` too)."""
    found = []
    for block in bash_blocks(text):
        for command in block:
            for part in command.split(" && "):
                words = shlex.split(part)
                if words and words[0] == "ddad-edge":
                    found.append(words[1:])
    return found


def test_the_readme_has_its_two_commands_first():
    first = bash_blocks(README.read_text())[0]
    assert first == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci  # CI runs exactly the README's test command


def test_every_script_the_readme_names_exists():
    for block in bash_blocks(README.read_text()):
        for command in block:
            words = shlex.split(command)
            if words[:1] == ["bash"]:
                assert (ROOT / words[1]).is_file(), command


def test_every_ddad_edge_command_in_the_readme_parses():
    import typer.main

    from ddad_edge.cli.app import app

    _register_commands()
    group = typer.main.get_command(app)
    commands = ddad_commands(README.read_text())
    assert len(commands) >= 20  # the workflow, synthetic, loop and Jetson blocks
    for args in commands:
        ctx = group.make_context("ddad-edge", list(args))
        name, cmd, rest = group.resolve_command(ctx, ctx._protected_args + ctx.args)
        cmd.make_context(name, rest, parent=ctx)  # raises a usage error on an unknown or malformed option


def _synthetic_block(text: str) -> list[list[str]]:
    for block in bash_blocks(text):
        if any(c.startswith("ddad-edge synth") for c in block):
            return [shlex.split(c)[1:] for c in block]
    raise AssertionError("the README has no block starting from `ddad-edge synth`")


def test_the_synthetic_block_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    block = _synthetic_block(README.read_text())
    for args in block:
        if "--max-minutes" in args:  # CI's time: a few optimiser steps instead of minutes of training
            i = args.index("--max-minutes")
            args = args[:i] + ["--max-steps", "3"] + args[i + 2:]
        code = main(args)
        err = capsys.readouterr().err
        assert code == 0, f"ddad-edge {' '.join(args)}: {err}"
    outputs = [Path(a[a.index("--json") + 1]) for a in block if "--json" in a]
    assert outputs
    for path in outputs:
        metrics = json.loads(path.read_text())
        assert 0.0 <= metrics["image_auroc"] <= 1.0 and metrics["n_images"] == 70


@pytest.mark.timeout(120)
def test_doctor_from_the_jetson_block_runs_here(capsys):
    assert ["doctor"] in ddad_commands(README.read_text())
    code = main(["doctor"])
    out = capsys.readouterr().out
    assert code in (0, 1) and "tensorrt" in out.lower()
