"""Every graph the benchmark matrix deploys against the parser rules of the TensorRT versions the build
profiles name (8.6, 10.3, 10.16 and 11.4; deploy/trt_rules.py).

The variants are the matrix's own list (benchmarks/run_matrix.py `matrix_variants` with its default steps,
backbones and scorings, at FP32, FP16 and INT8), and each file is made by the matrix's own function,
benchmarks/speed_bundles.py `speed_bundle`: `export_onnx`, `convert_fp16` with the fp16-safe groups,
`quantize_first_try` with the default INT8 recipe and one calibration frame, as the matrix does. To stay
cheap they use the tiny UNet preset at 32 px (the smallest size the blur's reflection padding takes) with
random weights: the rules read op types, tensor types and Q/DQ form, which depend neither on trained
values nor on calibration quality. One FP32 export per (steps, scoring) serves its FP16 and INT8 files.
The 10-step graphs are marked slow (about 35 s of CPU each for INT8, nearly all in ONNX Runtime's quantizer,
whose graph edits grow with the square of the node count; its calibration did too, and is replaced by
`minmax_ranges`, which halved it): CI runs them, a quick local run can leave them out
with -m "not slow". The files of the selected tests are made before the first test by two processes (the
quantizer is single-threaded Python: two cores make them in about half the time), each (steps, backbone) in
one process, FP32 first, since its FP16 and INT8 files are made from it; the tests then find them made.
"""

from __future__ import annotations

import multiprocessing
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from ddad_edge.deploy.tensorrt_profile import profile_tensorrt_versions
from ddad_edge.deploy.trt_rules import check_file

SIZE = 32
PRESET = "tiny"
SLOW_STEPS = 10  # a 10-step graph: ten UNet copies to export and quantize
_cache: dict = {}


def matrix_params() -> list:
    """(precision, steps, backbone) of every variant the benchmark matrix deploys, the 10-step ones slow."""
    from benchmarks.run_matrix import matrix_variants, parse_args

    params = []
    for v in matrix_variants(parse_args(["--precisions", "fp32,fp16,int8"])):
        name = f"{v.precision.value}-k{v.steps}-{v.backbone or 'pixel'}"
        slow = [pytest.mark.slow] if v.steps >= SLOW_STEPS else []
        params.append(pytest.param(v.precision.value, v.steps, v.backbone, id=name, marks=slow))
    return params


def made_file(work: Path, precision: str, steps: int, backbone: str | None) -> Path:
    """The model file of the matrix's bundle of this variant under `work`, made as the matrix makes it
    (tiny, 32 px) unless it is there already."""
    from benchmarks.speed_bundles import SpeedVariant, speed_bundle
    from ddad_edge.bundle import Precision

    variant = SpeedVariant(steps, backbone, Precision(precision), SIZE, PRESET)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return speed_bundle(variant, work, calib_count=1, log=lambda _: None).model_path


def _make_group(work: str, steps: int, backbone: str | None, precisions: tuple[str, ...]) -> None:
    """In a worker process: one (steps, backbone)'s files, FP32 first."""
    import torch

    torch.set_num_threads(1)  # two workers on two cores
    for precision in ("fp32", *(p for p in precisions if p != "fp32")):
        made_file(Path(work), precision, steps, backbone)


@pytest.fixture(scope="module", autouse=True)
def made_up_front(request, tmp_path_factory):
    """The files of this module's selected tests, made in two processes before the first test."""
    work = _cache["work"] = tmp_path_factory.mktemp("trt-variants")
    groups: dict[tuple, set] = {(1, None): set(), (1, "resnet18"): set()}  # the FP16 and FP32 tests' graphs
    for item in request.session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if item.module is request.module and "steps" in params:
            groups.setdefault((params["steps"], params["backbone"]), set()).add(params["precision"])
    order = sorted(groups, key=lambda g: (-g[0], g[1] or ""))  # the longest first
    spawn = multiprocessing.get_context("spawn")  # a fork of a process that has run torch can hang
    with ProcessPoolExecutor(max_workers=2, mp_context=spawn) as pool:
        for done in [pool.submit(_make_group, str(work), *g, tuple(sorted(groups[g]))) for g in order]:
            done.result()
    yield


def matrix_file(precision: str, steps: int, backbone: str | None) -> Path:
    """The model file of the matrix's bundle of this variant (made up front, or now if it was not)."""
    return made_file(_cache["work"], precision, steps, backbone)


def fp32_graph(steps: int, backbone: str | None) -> Path:
    return matrix_file("fp32", steps, backbone)


def fp16_everywhere(steps: int, backbone: str | None) -> Path:
    """The FP16 file with nothing kept in FP32 by a recipe: the file where FP16 reaches furthest."""
    from ddad_edge.deploy.precision import convert_fp16

    fp32 = fp32_graph(steps, backbone)
    dst = fp32.with_name("model.fp16-everywhere.onnx")
    return dst if dst.is_file() else convert_fp16(fp32, dst)


def test_the_matrix_list_is_what_the_benchmark_deploys():
    params = {tuple(p.values) for p in matrix_params()}
    assert len(params) == 27  # FP32/FP16/INT8 × 1/2/10 steps × pixel/resnet18/wide_resnet50_2
    assert {(precision, steps) for precision, steps, _ in params} >= {("int8", 10), ("fp16", 1)}
    assert {backbone for *_, backbone in params} == {None, "resnet18", "wide_resnet50_2"}


@pytest.mark.parametrize("precision, steps, backbone", matrix_params())
def test_every_matrix_variant_meets_every_versions_rules(precision, steps, backbone):
    path = matrix_file(precision, steps, backbone)
    versions = profile_tensorrt_versions()
    assert set(versions) >= {"8.6", "10.3", "10.16", "11.4"}  # the JetPack releases and pip's 10 and 11
    verdicts = check_file(path, versions)
    assert [v.tensorrt for v in verdicts] == list(versions)
    for verdict in verdicts:
        assert verdict.ok, verdict.first_line(f"{precision}-k{steps}-{backbone or 'pixel'}")
    assert verdicts[0].plugins == ("InstanceNormalization_TRT",)  # 8.6 without NATIVE_INSTANCENORM


@pytest.mark.parametrize("backbone", [None, "resnet18"], ids=["pixel", "fused-resnet18"])
def test_fp16_everywhere_meets_every_versions_rules(backbone):
    path = fp16_everywhere(1, backbone)
    for verdict in check_file(path, profile_tensorrt_versions()):
        assert verdict.ok, verdict.first_line(path.name)


def test_frames_feed_a_cast_only():
    model = onnx.load(str(fp32_graph(1, None)))
    readers = [n.op_type for n in model.graph.node if "frames" in n.input]
    assert readers == ["Cast"]


def test_fp16_file_keeps_normalisation_parameters_float32():
    """TensorRT 8.6's InstanceNormalization plugin reads scale and bias as float32 whatever their type."""
    model = onnx.load(str(fp16_everywhere(1, None)))
    initializers = {t.name: t for t in model.graph.initializer}
    norms = [n for n in model.graph.node if n.op_type == "InstanceNormalization"]
    assert norms
    for node in norms:
        for name in node.input[1:]:
            assert name in initializers, f"{node.name}: {name} is computed, not an initializer"
            assert initializers[name].data_type == TensorProto.FLOAT, f"{node.name}: {name} is not float32"
    assert any(t.data_type == TensorProto.FLOAT16 for t in model.graph.initializer)  # the rest is FP16


def test_fp16_file_still_matches_fp32_on_onnxruntime():
    from ddad_edge.deploy.fidelity import run_onnx

    frames = np.random.default_rng(0).integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8)
    maps32, scores32 = run_onnx(fp32_graph(1, None), frames)
    maps16, scores16 = run_onnx(fp16_everywhere(1, None), frames)
    assert np.abs(maps16 - maps32).max() <= 0.05 * np.abs(maps32).max()
