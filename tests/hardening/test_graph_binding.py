"""A model file is bound to its manifest by its graph signature (issue 25, item 11).

Before, a pixel-scoring model.onnx put into another bundle with its sha256 fixed ran, and an INT8 file in
an FP32 bundle ran silently. Each swap here is re-hashed (a consistent bundle but for the graph) and must be
refused in one line when the bundle is read, for every backend; a bundle made before signatures were
recorded still gets the precision check.
"""

from __future__ import annotations

import pytest
import yaml

from ddad_edge.bundle import MANIFEST_NAME, MODEL_NAME, read_bundle, write_manifest
from ddad_edge.errors import DdadError
from ddad_edge.graph_signature import graph_signature
from ddad_edge.runtime.backends import open_runner
from tests.bundle_factory import make_toy_bundle, make_toy_model
from tests.cli_helpers import assert_one_line
from tests.hardening.checks import snapshot


def rescored(precision: str = "fp32") -> bytes:
    """The toy graph with the same inputs, outputs and weights but another scoring (mean of the map for its
    maximum), as a pixel-scoring file differs from a fused one only inside."""
    import onnx

    model = onnx.load_from_string(make_toy_model(precision))
    model.graph.node[-1].op_type = "ReduceMean"
    return model.SerializeToString()


def swap(bundle, data: bytes, drop_signature: bool = False) -> None:
    """Put `data` in as model.onnx and re-hash the manifest, as a careful tamperer (or a copy script) would."""
    (bundle.path / MODEL_NAME).write_bytes(data)
    manifest = yaml.safe_load((bundle.path / MANIFEST_NAME).read_text())
    if drop_signature:
        manifest.pop("signature")
    write_manifest(bundle.path, manifest)


def test_the_signature_is_recorded_and_a_true_bundle_loads_and_runs(tmp_path):
    for precision in ("fp32", "fp16", "int8"):
        bundle = make_toy_bundle(tmp_path / precision, precision=precision)
        assert bundle.manifest["signature"] == graph_signature(bundle.path / MODEL_NAME)
        loaded = read_bundle(bundle.path)
        with open_runner(loaded, "onnxruntime") as runner:
            assert runner.infer(blank_frames()).scores.shape == (1,)


def blank_frames():
    import numpy as np

    return np.zeros((1, 32, 32, 3), np.uint8)


@pytest.mark.parametrize("data, drop, needles", [
    (lambda: rescored(), False, ["op counts differ", "ReduceMax 1 -> 0", "ReduceMean 1 -> 2"]),
    (lambda: make_toy_model("int8"), False, ["DequantizeLinear 0 -> 1"]),
    (lambda: make_toy_model("int8"), True, ["precision fp32", "QuantizeLinear/DequantizeLinear"]),
    (lambda: make_toy_model("fp16"), True, ["precision fp32", "float16 initializers"]),
    (lambda: make_toy_model("fp32", image_size=16), False, ["inputs"]),
])
def test_another_graph_re_hashed_is_refused_when_the_bundle_is_read(tmp_path, data, drop, needles):
    bundle = make_toy_bundle(tmp_path / "b", precision="fp32")
    swap(bundle, data(), drop_signature=drop)
    before = snapshot(bundle.path)
    with pytest.raises(DdadError) as info:
        read_bundle(bundle.path)
    assert_one_line(info.value, "belongs to another bundle", "export the bundle again", *needles)
    assert snapshot(bundle.path) == before


def test_an_fp32_file_in_an_int8_or_fp16_bundle_is_refused_without_a_signature(tmp_path):
    for precision, words in (("int8", "not an INT8 graph"), ("fp16", "not an FP16 graph")):
        bundle = make_toy_bundle(tmp_path / precision, precision=precision)
        swap(bundle, make_toy_model("fp32"), drop_signature=True)
        with pytest.raises(DdadError) as info:
            read_bundle(bundle.path)
        assert_one_line(info.value, f"precision {precision}", words)
