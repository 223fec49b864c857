"""Where a graph's time goes: ONNX Runtime's profiler on a real model, and the parts by node name."""

from __future__ import annotations

import numpy as np

from ddad_edge.bench.ort_profile import part_of, profile_onnx, summarise_events


def test_parts_by_node_name():
    assert part_of("/pipeline/unet/down.0/block/conv1/Conv") == "unet"
    assert part_of("/pipeline/unet_3/Sin") == "unet"
    assert part_of("/pipeline/scorer/extractor/layer2/layer2.0/conv1/Conv") == "backbone"
    assert part_of("/pipeline/scorer/Conv_1") == "scoring"
    assert part_of("/pipeline/Add_2") == "sampler"


def test_profile_of_a_real_model(toy_bundle):
    frames = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    prof = profile_onnx(toy_bundle.model_path, frames, runs=3, threads=1)
    assert prof["runs"] == 3 and prof["run_ms"] > 0
    ops = {r["name"] for r in prof["by_op"]}
    assert {"ReduceMean", "ReduceMax"} <= ops  # the toy graph's operators
    assert abs(sum(r["share"] for r in prof["by_op"]) - 1.0) < 0.01
    assert prof["top_nodes"] and all(n["ms_per_run"] >= 0 for n in prof["top_nodes"])


def test_warmup_run_not_counted():
    events = [{"cat": "Session", "name": "model_run", "ts": 0, "dur": 5000},
              {"cat": "Node", "name": "/pipeline/unet/Conv_kernel_time", "ts": 10, "dur": 4000,
               "args": {"op_name": "Conv"}},
              {"cat": "Session", "name": "model_run", "ts": 10_000, "dur": 1000},
              {"cat": "Node", "name": "/pipeline/unet/Conv_kernel_time", "ts": 10_010, "dur": 600,
               "args": {"op_name": "Conv"}},
              {"cat": "Node", "name": "/pipeline/Add_kernel_time", "ts": 10_700, "dur": 200,
               "args": {"op_name": "Add"}},
              {"cat": "Node", "name": "/pipeline/Add_fence_before", "ts": 10_690, "dur": 50,
               "args": {"op_name": "Add"}}]
    s = summarise_events(events, skip_runs=1)
    assert s["runs"] == 1 and s["run_ms"] == 1.0 and s["kernels_ms"] == 0.8
    assert s["by_part"][0] == {"name": "unet", "ms_per_run": 0.6, "share": 0.75}
