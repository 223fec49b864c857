"""Shared fixtures: a small synthetic dataset and a tiny run trained on it, made once per test session.

The tiny run is self-trained (32 px, a few dozen steps) with a randomly initialised resnet18 as feature
extractor: enough for tests of shapes, files and arithmetic, not for accuracy claims.
"""

from __future__ import annotations

import dataclasses
import signal
from pathlib import Path

import pytest

from tests.hardening.full_disk import tiny_disk  # noqa: F401  (a fixture for tests/cli and tests/hardening)

# A shell that starts a job in the background (nohup, setsid, some CI runners) ignores SIGINT in it, and an
# ignored signal stays ignored across fork and exec: every `ddad-edge` process a test starts would then shrug
# off the Ctrl-C the test sends. The tests model an operator at a terminal, where Ctrl-C arrives.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """An MVTec-layout synthetic dataset at 32 px: root/widget/{train,test,ground_truth}."""
    from ddad_edge.data.synth import make_synthetic_dataset

    root = tmp_path_factory.mktemp("synth")
    make_synthetic_dataset(root, category="widget", size=32, n_train=40, n_test_good=8, n_test_defect=8, seed=0)
    return root


@pytest.fixture(scope="session")
def tiny_run(synth_root, tmp_path_factory) -> Path:
    """A tiny-preset run trained for 40 steps at 32 px on `synth_root`; returns the run folder."""
    import warnings

    from ddad_edge.config_presets import run_config_for
    from ddad_edge.train.diffusion import train_diffusion

    cfg = run_config_for("tiny", 32, "widget", str(synth_root))
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_steps=40, batch_size=8,
                                                             checkpoint_every=20, val_fraction=0.2))
    out = tmp_path_factory.mktemp("runs") / "widget"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train_diffusion(cfg, out, show_progress=False)
    return out


@pytest.fixture
def import_fails(monkeypatch):
    """Call with package names (and the exception, default ImportError "No module named ..."): from then on
    importing any of them or a module inside them raises, as an absent or broken package does, also on a
    machine where it happens to be installed (TensorRT, OpenVINO, a CUDA binding, OpenCV)."""
    import builtins

    real = builtins.__import__

    def failing(*packages: str, exc: BaseException | None = None) -> None:
        def fake(name, globals=None, locals=None, fromlist=(), level=0):
            top = name.split(".")[0]
            if level == 0 and top in packages:
                raise exc if exc is not None else ImportError(f"No module named '{top}'")
            return real(name, globals, locals, fromlist, level)

        monkeypatch.setattr(builtins, "__import__", fake)

    return failing
