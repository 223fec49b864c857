"""`minmax_ranges`, the min-max activation ranges the INT8 files are quantized with: the same numbers, in the
same calibration-cache format, as ONNX Runtime's own MinMax calibrator, so the INT8 file a bundle ships is the
file that calibrator would have made. Real graphs: a 1-step tiny DDAD-S graph at 32 px with random weights
(as the benchmark matrix makes it), and a hand-built one whose tensor names collide with ours."""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from ddad_edge.bundle import Precision
from ddad_edge.deploy import int8
from ddad_edge.deploy.int8 import calibration_reader, minmax_ranges, quantization_inputs, quantize_file, quiet_quantizer
from ddad_edge.deploy.recipes import load_recipe

TYPES = ["Conv", "Gemm", "MatMul"]


@pytest.fixture(scope="module")
def ddad_graph(tmp_path_factory) -> Path:
    """The FP32 file of the matrix's 1-step pixel-only variant (tiny preset, 32 px, random weights)."""
    from benchmarks.speed_bundles import SpeedVariant, speed_bundle

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bundle = speed_bundle(SpeedVariant(1, None, Precision.FP32, 32, "tiny"), tmp_path_factory.mktemp("fp32"),
                              calib_count=1, log=lambda _: None)
    return bundle.model_path


def frames(n: int = 3, size: int = 32) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def ort_ranges(src: Path, calibration: np.ndarray, work: Path):
    """ONNX Runtime's MinMax calibrator on the same graph and frames (what quantize_static runs without a cache)."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator

    with quiet_quantizer():
        calibrator = create_calibrator(src, TYPES, augmented_model_path=str(work / "augmented.onnx"),
                                       calibrate_method=CalibrationMethod.MinMax)
        calibrator.collect_data(calibration_reader(calibration))
        return calibrator.compute_data()


def assert_same_ranges(ours, theirs) -> None:
    assert set(ours.data) == set(theirs.data) and ours.calibration_method == theirs.calibration_method
    for name in theirs.data:
        for a, b in ((ours[name].lowest, theirs[name].lowest), (ours[name].highest, theirs[name].highest)):
            assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), name


def test_the_ranges_are_onnx_runtimes_own_numbers(ddad_graph, tmp_path):
    from onnxruntime.quantization.calibrate import load_tensors_data

    src, cache = quantization_inputs(ddad_graph, tmp_path)
    assert minmax_ranges(src, frames(), TYPES, cache) == cache
    theirs = ort_ranges(src, frames(), tmp_path)
    assert len(theirs.data) > 100  # every convolution's input and output of the unrolled graph
    assert_same_ranges(load_tensors_data(cache), theirs)


def test_the_int8_file_is_the_one_onnx_runtimes_calibration_makes(ddad_graph, tmp_path, monkeypatch):
    """quantize_file with these ranges (ONNX Runtime's calibrator is not called), against quantize_static
    calibrating by itself: the same file."""
    ort_quantize = importlib.import_module("onnxruntime.quantization.quantize")  # the module, not the function

    recipe = load_recipe("int8").int8
    assert recipe is not None
    src, cache = quantization_inputs(ddad_graph, tmp_path)
    with monkeypatch.context() as m:
        m.setattr(ort_quantize, "create_calibrator", lambda *a, **k: pytest.fail("ONNX Runtime calibrated"))
        ours = quantize_file(src, tmp_path / "ours.onnx", frames(), recipe, cache, [])
    calibrated = []  # the same call with our ranges left out: quantize_static calibrates by itself
    with monkeypatch.context() as m:
        m.setattr(int8, "minmax_ranges", lambda *a, **k: None)
        real = ort_quantize.create_calibrator
        m.setattr(ort_quantize, "create_calibrator", lambda *a, **k: calibrated.append(1) or real(*a, **k))
        theirs = quantize_file(src, tmp_path / "theirs.onnx", frames(), recipe, tmp_path / "their-ranges.json", [])
    assert calibrated == [1]
    a, b = onnx.load(str(ours)), onnx.load(str(theirs))
    assert a.graph.SerializeToString() == b.graph.SerializeToString()


def test_names_of_the_graphs_own_are_left_alone(tmp_path):
    """A graph whose tensors are already called what the reductions would be called keeps them; the ranges
    are still its calibrator's."""
    from onnxruntime.quantization.calibrate import load_tensors_data

    w = numpy_helper.from_array(np.random.default_rng(1).standard_normal((4, 3, 1, 1)).astype(np.float32), "w")
    nodes = [helper.make_node("Cast", ["frames"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Transpose", ["f"], ["ddad_range_0_min"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["ddad_range_0_min", "w"], ["ddad_range_0_max"], name="conv"),
             helper.make_node("Relu", ["ddad_range_0_max"], ["out"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("frames", TensorProto.UINT8, ["N", 8, 8, 3])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "g.onnx"))
    minmax_ranges(tmp_path / "g.onnx", frames(2, 8), TYPES, tmp_path / "ranges.json")
    ours = load_tensors_data(tmp_path / "ranges.json")
    assert set(ours.data) == {"ddad_range_0_min", "ddad_range_0_max"}
    assert_same_ranges(ours, ort_ranges(tmp_path / "g.onnx", frames(2, 8), tmp_path))
