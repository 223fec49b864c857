"""The backend table (runtime/backends.py) and the template `RunnerBase.infer` (runtime/base.py).

Real runners on the toy bundle of tests/bundle_factory.py (ONNX Runtime, OpenVINO's f32 mode); the table's
torch entry comes from model/ when `ddad_edge.model` is imported, as the command line does.
"""

from __future__ import annotations

import numpy as np
import pytest

from ddad_edge.errors import DdadError
from ddad_edge.runtime.backends import RUNNERS, Backend, open_runner, runner_entry
from ddad_edge.runtime.base import Inspection, RunnerBase
from tests.bundle_factory import make_toy_bundle, make_toy_model, run_model
from tests.cli_helpers import assert_one_line


class GreyRunner(RunnerBase):
    """A runner written the way every backend is: `_infer_batch` only. It records the batches it was given."""

    backend = "grey"
    max_batch = 2

    def __init__(self) -> None:
        self.image_size, self.batches = 8, []

    def _infer_batch(self, frames: np.ndarray) -> Inspection:
        self.batches.append(len(frames))
        grey = frames.mean(axis=3, dtype=np.float32)[:, None]
        return Inspection(maps=grey, scores=grey.reshape(len(frames), -1).max(axis=1))


def test_infer_checks_once_chunks_by_max_batch_and_joins_in_order():
    frames = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    runner = GreyRunner()
    out = runner.infer(frames)
    assert runner.batches == [2, 2, 1]
    np.testing.assert_array_equal(out.maps[:, 0], frames.mean(axis=3, dtype=np.float32))
    assert out.scores.shape == (5,)
    one = runner.infer(frames[0])  # a single (H, W, 3) frame is a batch of one
    assert one.maps.shape == (1, 1, 8, 8) and runner.batches[-1] == 1
    with pytest.raises(DdadError, match="the model takes 8x8"):
        runner.infer(np.zeros((1, 9, 9, 3), np.uint8))


def test_every_backend_but_auto_has_a_runner_and_the_runner_says_which_backend_it_is(tmp_path):
    import ddad_edge.model  # noqa: F401  (registers the torch reference runner, as the command line does)

    assert set(RUNNERS) == set(Backend) - {Backend.AUTO}
    assert runner_entry(Backend.TORCH).target == "ddad_edge.model.torch_runner:TorchRunner"
    bundle = make_toy_bundle(tmp_path / "bundle", image_size=16)
    frames = np.random.default_rng(1).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    maps, scores = run_model(make_toy_model(image_size=16), frames)
    for name in ("onnxruntime", "openvino", "auto"):
        with open_runner(bundle, name, unmeasured_mode=True) as runner:
            assert runner.backend == ("onnxruntime" if name == "auto" else name)  # no engine: auto is ORT
            out = runner.infer(frames)
            np.testing.assert_allclose(out.scores, scores, atol=1e-5)
            np.testing.assert_allclose(out.maps, maps, atol=1e-5)


def test_an_unknown_backend_is_one_line_naming_the_choices(tmp_path):
    bundle = make_toy_bundle(tmp_path / "bundle", image_size=16)
    message = assert_one_line(pytest.raises(DdadError, open_runner, bundle, "cuda").value, "unknown backend 'cuda'")
    for backend in Backend:
        assert backend.value in message


_INTERRUPTED_INIT = '''
try:
    raise KeyboardInterrupt  # a Ctrl-C while the extension initialises
except KeyboardInterrupt as exc:
    raise ImportError("initialization failed") from exc  # what pybind11 makes of it
'''


def test_a_ctrl_c_during_a_runners_import_is_an_interrupt_not_a_missing_package(tmp_path, monkeypatch):
    """A C extension's initialisation (pybind11's, as onnxruntime's) turns a Ctrl-C it meets into
    "ImportError: initialization failed": a real module written here does the same. The runner's import then
    raises KeyboardInterrupt, which `run` reports as interrupted; a module that is really missing is still the
    entry's one line."""
    from ddad_edge.errors import raise_if_interrupted
    from ddad_edge.runtime.backends import RunnerEntry, runner_class

    (tmp_path / "interrupted_ext.py").write_text(_INTERRUPTED_INIT)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        runner_class(RunnerEntry("interrupted_ext:Runner", missing="needs the package: {exc}"))
    with pytest.raises(DdadError) as exc:
        runner_class(RunnerEntry("no_such_runner_module:Runner", missing="needs the package: {exc}"))
    assert_one_line(str(exc.value))
    assert str(exc.value) == "needs the package: No module named 'no_such_runner_module'"
    try:  # the interrupt found as the cause's context too, and a plain ImportError left alone
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise ImportError("initialization failed")  # context, not cause
    except ImportError as err:
        with pytest.raises(KeyboardInterrupt):
            raise_if_interrupted(err)
    raise_if_interrupted(ImportError("No module named 'x'"))


def test_the_onnx_runtime_import_reports_an_interrupt_as_one(monkeypatch):
    import builtins

    from ddad_edge.runtime.ort_session import onnxruntime

    real_import = builtins.__import__

    def interrupted(name, *args, **kwargs):
        if name == "onnxruntime":
            exec(_INTERRUPTED_INIT, {})
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        onnxruntime("the ONNX Runtime backend")
