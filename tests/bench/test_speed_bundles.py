"""The speed-only bundles of benchmarks/ time the files the export writes, not look-alikes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from ddad_edge.bundle import Precision

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _graph(path: Path) -> tuple[list, dict]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    nodes = [(n.op_type, list(n.input), list(n.output)) for n in model.graph.node]
    return nodes, {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def test_int8_speed_bundle_is_the_exports_first_try(tmp_path, monkeypatch):
    """Speed bundles once quantized the FP32 file as exported (folded weights still Constant nodes) while the
    export quantizes its initializer copy: two different INT8 graphs, the timed one 1.5x faster on this CPU.
    Random weights here (a speed-only bundle); the export's quantize_int8 is told to accept its first try."""
    pytest.importorskip("onnxruntime")
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from speed_bundles import SpeedVariant, calibration_frames, speed_bundle

    from ddad_edge.deploy.fidelity import FidelitySet, run_onnx
    from ddad_edge.deploy.int8_fallback import quantize_int8
    from ddad_edge.deploy.recipes import Tolerance, load_recipe

    variant = SpeedVariant(1, None, Precision.INT8, 32, "tiny")
    bundle = speed_bundle(variant, tmp_path / "work", calib_count=2, log=lambda _: None)
    fp32 = tmp_path / "work" / dataclasses.replace(variant, precision=Precision.FP32).key / "model.onnx"
    frames = calibration_frames(32, 2)
    fid = FidelitySet(frames, np.array([0, 1]))
    recipe = dataclasses.replace(load_recipe("int8").int8, min_rank_correlation=-1.0)
    export = tmp_path / "export"
    export.mkdir()
    result = quantize_int8(fp32, export / "int8.onnx", frames, fid, *run_onnx(fp32, frames), recipe,
                           Tolerance(1e9, 1e9), export, log=lambda _: None)
    assert len(result.attempts) == 1 and not result.fallback_nodes
    timed_nodes, timed_weights = _graph(bundle.model_path)
    export_nodes, export_weights = _graph(export / "int8.onnx")
    assert timed_nodes == export_nodes
    assert timed_weights.keys() == export_weights.keys()
    for name, value in export_weights.items():
        np.testing.assert_array_equal(timed_weights[name], value, err_msg=name)
    assert any(op == "QuantizeLinear" for op, _, _ in timed_nodes)
    # the UNet's head is quantized (INT8 weights and input) but its prediction reaches the map in float
    writers = {o: op for op, _, outs in timed_nodes for o in outs}
    heads = [(ins, outs) for op, ins, outs in timed_nodes if op == "Conv" and "head" in outs[0]]
    assert heads
    for ins, outs in heads:
        assert writers[ins[1]] == "DequantizeLinear"
        assert [op for op, i, _ in timed_nodes if outs[0] in i and op == "QuantizeLinear"] == []
