"""The one parity test every runner must pass against the torch reference, on the same bundles.

For each bundle (fp32, fp16, int8 of the session's tiny run) and each backend, the runner's maps and
scores on the bundle's probe frames and on real test images are compared with the FP32 torch pipeline
the bundle was exported from (`pipeline_of_bundle`): an FP32 bundle within 1e-4 relative, an FP16 or
INT8 bundle within the tolerance its manifest states. OpenVINO runs in its f32 mode (asked for explicitly,
since its CPU plugin would pick bf16 on a CPU that has it); its INT8 kernels are its own, so for an INT8 file
the test holds it to what the export measured: within the tolerance where the bundle offers the mode, refused
(and beyond the tolerance when forced) where it does not. TensorRT joins where it is installed with a GPU
and is skipped with the reason elsewhere.
"""

from __future__ import annotations

import numpy as np
import pytest

from ddad_edge.data.folders import list_test, load_test_arrays
from ddad_edge.errors import DdadError
from ddad_edge.model.torch_runner import TorchRunner
from ddad_edge.runtime.backends import open_runner
from tests.deploy.tiny_bundles import tiny_bundle, tiny_project

FP32_REL = 1e-4


@pytest.fixture(scope="module")
def project(tiny_run, tmp_path_factory):
    return tiny_project(tiny_run, tmp_path_factory)


def _tensorrt_reason() -> str | None:
    from ddad_edge.deploy.tensorrt_build import tensorrt_available

    return tensorrt_available()


def _frames(bundle) -> np.ndarray:
    with np.load(bundle.file("probe.npz")) as probe:
        frames = probe["frames"]
    src = bundle.manifest["source"]
    samples = list_test(src["data"], src["category"])
    picks = [s for s in samples if s.label == 1][:2] + [s for s in samples if s.label == 0][:1]
    test_frames, _, _, _ = load_test_arrays(picks, bundle.image_size)
    return np.concatenate([frames, test_frames])


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", "tensorrt"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_runner_matches_the_torch_reference(project, precision, backend):
    if backend == "tensorrt":
        reason = _tensorrt_reason()
        if reason is not None:
            pytest.skip(f"TensorRT runner not testable here: {reason}")
    bundle = tiny_bundle(project, precision)
    if backend == "tensorrt":
        from ddad_edge.deploy.tensorrt_build import build_if_possible

        build_if_possible(bundle.path, "tensorrt", log=lambda _: None)
    frames = _frames(bundle)
    with TorchRunner(bundle) as torch_runner:
        ref = torch_runner.infer(frames)
    if backend == "openvino":
        # FP32 and FP16 files run OpenVINO's f32 arithmetic: the export must offer the mode. OpenVINO runs an
        # INT8 Q/DQ file with its own integer kernels: where the export measured them beyond the recipe's
        # budget, the runner must refuse the mode, and run anyway (--unmeasured-mode) it still runs.
        mode = bundle.manifest["execution_modes"]["openvino-f32"]
        assert mode["status"] == "offered" or (precision == "int8" and mode["status"] == "refused"), mode
        if mode["status"] == "refused":
            with pytest.raises(DdadError, match="does not offer openvino-f32: the export found it refused"):
                open_runner(bundle.path, backend)
            with open_runner(bundle.path, backend, unmeasured_mode=True) as runner:
                out = runner.infer(frames)
            assert out.maps.shape == ref.maps.shape and np.isfinite(out.maps).all()
            return
    with open_runner(bundle.path, backend) as runner:
        out = runner.infer(frames)
    assert out.maps.shape == ref.maps.shape == (len(frames), 1, bundle.image_size, bundle.image_size)
    assert out.scores.shape == (len(frames),) and out.maps.dtype == np.float32
    map_err = np.abs(out.maps.astype(np.float64) - ref.maps)
    score_rel = np.abs(out.scores.astype(np.float64) - ref.scores) / np.abs(ref.scores)
    scale = float(np.abs(ref.maps).max())
    if precision == "fp32":
        assert map_err.max() <= FP32_REL * scale
        assert score_rel.max() <= FP32_REL
    else:
        tol = bundle.manifest["tolerance"]
        # the stated tolerance is against the FP32 graph; torch and that graph differ by < 1e-4 relative
        assert map_err.max() <= tol["map_abs"] + FP32_REL * scale
        assert score_rel.max() <= tol["score_rel"] + FP32_REL
        assert map_err.max() > 0  # a lower precision that equals FP32 bit for bit was not converted


def test_the_reference_itself_reproduces_the_probe_outputs(project):
    """The torch pipeline rebuilt from the bundle is the network that was exported (same random weights)."""
    bundle = tiny_bundle(project, "fp32")
    with np.load(bundle.file("probe.npz")) as probe:
        frames, maps, scores = probe["frames"], probe["maps"], probe["scores"]
    with TorchRunner(bundle) as runner:
        out = runner.infer(frames)
    assert np.abs(out.maps - maps).max() <= FP32_REL * np.abs(maps).max()
    np.testing.assert_allclose(out.scores, scores, rtol=FP32_REL)
