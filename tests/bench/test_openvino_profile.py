"""OpenVINO's per-layer profile: the summary's arithmetic on hand-made records, and a real profile of a toy
bundle (randomly initialised) in OpenVINO's CPU plugin."""

from __future__ import annotations

import numpy as np
import pytest

from ddad_edge.bench.openvino_profile import profile_openvino, summarise_layers
from tests.bundle_factory import make_toy_bundle


def test_summary_averages_over_requests_and_sorts_by_time():
    first = [("/pipeline/unet/conv1/Conv", "Convolution", "brgconv_avx512_amx_I8", 6.0),
             ("/pipeline/scorer/extractor/layer1/Conv", "Convolution", "jit_avx2_FP32", 2.0),
             ("/pipeline/Add", "Eltwise", "jit_avx2_FP32", 2.0)]
    second = [(n, t, k, ms / 2) for n, t, k, ms in first]
    s = summarise_layers([first, second])
    assert s["runs"] == 2 and s["kernels_ms"] == pytest.approx(7.5)
    assert [(x["name"], x["ms_per_run"]) for x in s["by_part"]] == [("unet", 4.5), ("backbone", 1.5),
                                                                   ("sampler", 1.5)]
    assert [(x["name"], x["ms_per_run"]) for x in s["by_op"]] == [("Convolution", 6.0), ("Eltwise", 1.5)]
    assert s["by_kernel"][0] == {"name": "brgconv_avx512_amx_I8", "ms_per_run": 4.5, "share": 0.6}
    assert sum(x["share"] for x in s["by_kernel"]) == pytest.approx(1.0)
    assert s["top_nodes"][0] == {"node": "/pipeline/unet/conv1/Conv", "op": "Convolution", "ms_per_run": 4.5}
    with pytest.raises(ValueError, match="no profiled request"):
        summarise_layers([])


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_a_real_profile_of_a_toy_bundle(tmp_path, precision):
    bundle = make_toy_bundle(tmp_path / precision, precision=precision, image_size=32)
    frames = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    p = profile_openvino(bundle.model_path, frames, "f32", runs=2)
    assert p["runs"] == 2 and p["compiled_precision"] == "f32" and p["backend"] == "openvino-f32"
    assert p["run_ms"] > 0 and p["kernels_ms"] > 0 and p["by_op"] and p["by_kernel"]
    # each type's time is rounded to 1 µs: their sum is the total to within that per type
    assert sum(x["ms_per_run"] for x in p["by_op"]) == pytest.approx(p["kernels_ms"], abs=1e-3 * len(p["by_op"]))
    # every layer's kernel is named by OpenVINO (instruction set and precision), none left blank
    assert all(x["name"] for x in p["by_kernel"])
