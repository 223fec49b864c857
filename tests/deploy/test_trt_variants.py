"""Exported graphs against TensorRT 8.6, 10.3, 10.16 and 11.4's parser rules (deploy/trt_rules.py).

The graphs are made by the export stage's own functions, as benchmarks/speed_bundles.py makes the
matrix's bundles: `export_onnx` of a DDAD-S pipeline, `convert_fp16`, and `quantize_first_try` with the
default INT8 recipe. To stay fast they use the tiny preset at 32 px with randomly initialised weights (the
rules read op types, tensor types and Q/DQ parameters, which do not depend on trained values), one FP32
export per (steps, scoring) shared by its FP16 and INT8 files. Covered here: FP32/FP16/INT8 × 1 and 2
steps × pixel and fused (resnet18) scoring; a 2-step graph already holds the step between two UNet calls
that 10 steps repeat. wide_resnet50_2 and 10 steps are left to the benchmark matrix (minutes each on CI).
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from ddad_edge.deploy.trt_rules import JETPACK_TENSORRT, check_file

SIZE = 32
_cache: dict = {}


def fp32_graph(tmp_path_factory, steps: int, backbone: str | None):
    key = (steps, backbone)
    if key not in _cache:
        from benchmarks.speed_bundles import student_grid
        from ddad_edge.bench.reference import random_unet, speed_pipeline
        from ddad_edge.deploy.onnx_export import export_onnx

        pipeline = speed_pipeline(random_unet("tiny", SIZE), student_grid(steps), 250, 0.0, backbone)
        path = tmp_path_factory.mktemp("trt-variants") / f"k{steps}-{backbone or 'pixel'}-fp32.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _cache[key] = export_onnx(pipeline, path)
    return _cache[key]


def variant(tmp_path_factory, precision: str, steps: int, backbone: str | None):
    fp32 = fp32_graph(tmp_path_factory, steps, backbone)
    if precision == "fp32":
        return fp32
    dst = fp32.with_name(fp32.name.replace("fp32", precision))
    if not dst.is_file():
        if precision == "fp16":  # nothing kept by the recipe: the file where FP16 reaches furthest
            from ddad_edge.deploy.precision import convert_fp16

            convert_fp16(fp32, dst)
        else:
            from benchmarks.speed_bundles import calibration_frames
            from ddad_edge.deploy.int8 import quantize_first_try
            from ddad_edge.deploy.recipes import load_recipe

            quantize_first_try(fp32, dst, calibration_frames(SIZE, 2), load_recipe("int8").int8,
                               tmp_path_factory.mktemp("int8-work"))
    return dst


@pytest.mark.parametrize("backbone", [None, "resnet18"], ids=["pixel", "fused-resnet18"])
@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_exported_variant_meets_every_versions_rules(tmp_path_factory, precision, steps, backbone):
    path = variant(tmp_path_factory, precision, steps, backbone)
    verdicts = check_file(path, JETPACK_TENSORRT)
    assert [v.tensorrt for v in verdicts] == list(JETPACK_TENSORRT)
    for verdict in verdicts:
        assert verdict.ok, verdict.first_line(path.name)
    assert verdicts[0].plugins == ("InstanceNormalization_TRT",)  # 8.6 without NATIVE_INSTANCENORM


def test_frames_feed_a_cast_only(tmp_path_factory):
    model = onnx.load(str(fp32_graph(tmp_path_factory, 1, None)))
    readers = [n.op_type for n in model.graph.node if "frames" in n.input]
    assert readers == ["Cast"]


def test_fp16_file_keeps_normalisation_parameters_float32(tmp_path_factory):
    """TensorRT 8.6's InstanceNormalization plugin reads scale and bias as float32 whatever their type."""
    model = onnx.load(str(variant(tmp_path_factory, "fp16", 1, None)))
    initializers = {t.name: t for t in model.graph.initializer}
    norms = [n for n in model.graph.node if n.op_type == "InstanceNormalization"]
    assert norms
    for node in norms:
        for name in node.input[1:]:
            assert name in initializers, f"{node.name}: {name} is computed, not an initializer"
            assert initializers[name].data_type == TensorProto.FLOAT, f"{node.name}: {name} is not float32"
    assert any(t.data_type == TensorProto.FLOAT16 for t in model.graph.initializer)  # the rest is FP16


def test_fp16_file_still_matches_fp32_on_onnxruntime(tmp_path_factory):
    from ddad_edge.deploy.fidelity import run_onnx

    frames = np.random.default_rng(0).integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8)
    maps32, scores32 = run_onnx(fp32_graph(tmp_path_factory, 1, None), frames)
    maps16, scores16 = run_onnx(variant(tmp_path_factory, "fp16", 1, None), frames)
    assert np.abs(maps16 - maps32).max() <= 0.05 * np.abs(maps32).max()
