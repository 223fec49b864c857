"""Ctrl-C during `ddad-edge bench`: one line and exit status 130, never silence or a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.inspect.test_stop_signals import signalled

REPO = Path(__file__).resolve().parents[2]


def test_ctrl_c_while_timing_is_one_line(toy_bundle, tmp_path):
    """A long measurement (--iters 1000000) stopped with Ctrl-C: `interrupted`, exit 130, no files written
    (before: the parser's Abort became `aborted` and exit 1)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen([sys.executable, "-m", "ddad_edge", "bench", "--bundle", str(toy_bundle.path),
                                "--iters", "1000000", "--warmup", "0", "--frame-size", "64x48", "--no-progress",
                                "--json", str(tmp_path / "b.json")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    def ready() -> None:
        time.sleep(8)  # well into the timing: start-up takes a few seconds on a loaded machine
        assert process.poll() is None, process.communicate()

    _, stderr = signalled(process, ready, signal.SIGINT)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "interrupted" and "Traceback" not in stderr
    assert not (tmp_path / "b.json").exists()
