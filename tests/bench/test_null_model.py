"""The near-zero-cost graph the loop overhead is timed around: the runner contract, in ONNX Runtime."""

from __future__ import annotations

import numpy as np

from ddad_edge.bench.null_model import write_null_bundle
from ddad_edge.runtime.backends import open_runner


def test_null_bundle_follows_the_runner_contract(tmp_path):
    bundle = write_null_bundle(tmp_path / "null", 48)
    frames = np.random.default_rng(0).integers(0, 256, (3, 48, 48, 3), dtype=np.uint8)
    with open_runner(bundle.path, "onnxruntime", threads=1) as runner:
        out = runner.infer(frames)
    grey = frames.astype(np.float32).mean(axis=3) / 255
    assert out.maps.shape == (3, 1, 48, 48) and out.scores.shape == (3,)
    np.testing.assert_allclose(out.maps[:, 0], grey, atol=1e-5)
    np.testing.assert_allclose(out.scores, grey.reshape(3, -1).max(axis=1), atol=1e-5)
