"""The INT8 fallback's retry loop and its weight groups, on small hand-built ONNX graphs.

The retry loop (`quantize_int8`): how many nodes each round keeps in FP32 (the number doubles), what each
try logs, the one line it gives up with, which fidelity frames the sensitivity ranking is measured on, and
what the result reports. The weight groups (`weight_groups`, `distinct_groups`, `_with_weight_siblings`):
the targets that read one weight initializer share one precision, and nothing else joins them. The graphs
are chains of 1x1 convolutions on 8 px frames, quantized by ONNX Runtime and judged in it, so every test
here runs in about a second.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from ddad_edge.deploy.fidelity import FidelitySet, run_onnx
from ddad_edge.deploy.int8_fallback import Attempt, _with_weight_siblings, missed, quantize_first_try, quantize_int8
from ddad_edge.deploy.int8_sensitivity import distinct_groups, rank_by_output_error, rank_sensitive_nodes, weight_groups
from ddad_edge.deploy.recipes import Int8Recipe, Sensitivity, Tolerance
from ddad_edge.errors import DdadError
from tests.cli_helpers import assert_one_line

SIZE = 8  # frame side in pixels
GIVE_UP_ADVICE = "raise int8.fallback_rounds, try another recipe (int8-entropy, int8-percentile), or export fp16"


def _conv_chain(path: Path, widths: list[int], names: list[str] | None = None, seed: int = 0) -> list[str]:
    """A graph `frames` (N, 8, 8, 3) uint8 → a chain of 1x1 convolutions with biases (3 → widths... → 1
    channels, each with its own random weight) → |map| (N, 1, 8, 8) and its maximum per frame as the score,
    saved at `path`, opset 17. Returns the convolutions' names (`names`, default conv0, conv1, ...)."""
    rng = np.random.default_rng(seed)
    channels = [3, *widths, 1]
    names = names or [f"conv{i}" for i in range(len(channels) - 1)]
    nodes = [helper.make_node("Cast", ["frames"], ["f"], name="cast", to=TensorProto.FLOAT),
             helper.make_node("Transpose", ["f"], ["nchw"], name="nchw", perm=[0, 3, 1, 2]),
             helper.make_node("Mul", ["nchw", "scale"], ["x0"], name="scale_frames")]
    inits = [numpy_helper.from_array(np.array(2.0 / 255.0, np.float32), "scale")]
    for i, (name, cin, cout) in enumerate(zip(names, channels[:-1], channels[1:])):
        inits += [numpy_helper.from_array((rng.standard_normal((cout, cin, 1, 1)) * 0.7).astype(np.float32), f"w{i}"),
                  numpy_helper.from_array((rng.standard_normal(cout) * 0.1).astype(np.float32), f"b{i}")]
        nodes.append(helper.make_node("Conv", [f"x{i}", f"w{i}", f"b{i}"], [f"x{i + 1}"], name=name))
    nodes += [helper.make_node("Abs", [f"x{len(names)}"], ["anomaly_map"], name="abs"),
              helper.make_node("ReduceMax", ["anomaly_map"], ["score"], name="score", axes=[1, 2, 3], keepdims=0)]
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("frames", TensorProto.UINT8, ["N", SIZE, SIZE, 3])],
        [helper.make_tensor_value_info("anomaly_map", TensorProto.FLOAT, ["N", 1, SIZE, SIZE]),
         helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return names


def _frames(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


def _fidelity(frames: np.ndarray) -> FidelitySet:
    return FidelitySet(frames, (np.arange(len(frames)) >= len(frames) // 2).astype(int))


def _quantize(path: Path, frames: np.ndarray, recipe: Int8Recipe, tolerance: Tolerance, work: Path, log):
    return quantize_int8(path, work / "q.onnx", frames, _fidelity(frames), *run_onnx(path, frames), recipe,
                         tolerance, work, log=log)


TRY_LINE = re.compile(r"int8 try (\d+): (\d+) of (\d+) nodes quantized, score rank correlation (-?[\d.]+|nan), "
                      r"map error (\S+) of max, score error (\S+?)( \(budget missed\))?")


def test_each_round_keeps_twice_as_many_nodes_in_fp32_and_the_last_gives_up_in_one_line(tmp_path):
    """Eight convolutions, a budget no file can meet (a rank correlation above 1), 1/8 kept per retry: the
    tries quantize 8, 7, 6 and 4 of the 8 (1, 2 and 4 kept, doubling each round), each logs one line that
    says it missed, and the third fallback round gives up with one line naming what it missed."""
    path = tmp_path / "chain.onnx"
    _conv_chain(path, [4] * 7)
    lines: list[str] = []
    recipe = Int8Recipe(calibration_images=4, keep_fp32=(), min_rank_correlation=1.5, fallback_rounds=3,
                        fallback_fraction=0.125, sensitivity=Sensitivity.LOCAL)
    with pytest.raises(DdadError) as exc:
        _quantize(path, _frames(4), recipe, Tolerance(1e9, 1e9), tmp_path, lines.append)
    tries = [TRY_LINE.fullmatch(line) for line in lines if line.startswith("int8 try")]
    assert all(tries), lines
    assert [(int(t[1]), int(t[2]), int(t[3])) for t in tries] == [(1, 8, 8), (2, 7, 8), (3, 6, 8), (4, 4, 8)]
    assert all(t[7] == " (budget missed)" for t in tries)
    message = assert_one_line(exc.value)
    assert re.fullmatch(r"INT8 missed the recipe's budget after 3 fallback rounds "
                        rf"\(score rank correlation \S+ < 1\.5\): {re.escape(GIVE_UP_ADVICE)}", message), message


def test_a_first_try_within_budget_is_the_result_and_names_what_it_quantized(tmp_path):
    """A budget the first try meets: one try, logged with the judged numbers and no 'budget missed', no
    node kept by the fallback and no ranking made; the result names the file, the quantized nodes, the
    convolution the recipe's blur group keeps in FP32, and the FP32 graph as quantized."""
    path = tmp_path / "chain.onnx"
    blur = "/pipeline/scorer/Conv"  # the exporter's name for the blur convolution (precision.NodeGroup.BLUR)
    names = _conv_chain(path, [4, 4], names=["conv0", blur, "conv2"])
    lines: list[str] = []
    recipe = Int8Recipe(calibration_images=4, keep_fp32=("blur",), min_rank_correlation=-1.0)
    result = _quantize(path, _frames(4), recipe, Tolerance(1e9, 1e9), tmp_path, lines.append)
    assert result.path == tmp_path / "q.onnx" and result.path.is_file()
    assert result.quantized_nodes == [names[0], names[2]]
    assert result.kept_by_recipe == [blur]
    assert result.source == tmp_path / "int8-source.onnx" and result.source.is_file()
    assert result.fallback_nodes == [] and result.sensitivity == []
    [attempt] = result.attempts
    assert attempt.met and attempt.excluded == []
    assert lines == [f"int8 try 1: 2 of 2 nodes quantized, score rank correlation {attempt.rank_correlation:.4f}, "
                     f"map error {attempt.map_rel:.3g} of max, score error {attempt.score_rel:.3g}"]


@pytest.mark.parametrize(("sensitivity", "n_frames", "probe"), [
    ("local", 3, [0, 1, 2]),  # as many first as last frames as there are pairs: one first, two last
    ("local", 5, [0, 1, 3, 4]),
    ("local", 8, [0, 1, 6, 7]),
    ("output", 8, [0, 1, 6, 7]),
])
def test_the_ranking_is_measured_on_the_first_two_and_last_two_fidelity_frames(tmp_path, sensitivity, n_frames,
                                                                                probe):
    """The fidelity set is nominal frames then painted ones: the ranking reads two of each (fewer when the
    set is small). A budget only FP32 meets and every node kept by the first retry: the result's ranking
    is the recipe's measure of the first try's file on exactly those frames, and the nodes kept are all
    of them, most sensitive first. The output measure logs through the caller's log."""
    path = tmp_path / "chain.onnx"
    _conv_chain(path, [4, 4], seed=1)
    frames = _frames(n_frames, seed=n_frames)
    recipe = Int8Recipe(calibration_images=n_frames, keep_fp32=(), fallback_rounds=1, fallback_fraction=1.0,
                        sensitivity=Sensitivity(sensitivity))
    tolerance = Tolerance(1e-5, 1e-5)
    lines: list[str] = []
    (tmp_path / "run").mkdir()
    result = _quantize(path, frames, recipe, tolerance, tmp_path / "run", lines.append)
    assert [a.met for a in result.attempts] == [False, True]
    first = quantize_first_try(path, tmp_path / "first.onnx", frames, recipe, tmp_path)
    targets = ["conv0", "conv1", "conv2"]
    if sensitivity == "local":
        expected = rank_sensitive_nodes(path, first, frames[probe], targets)
    else:
        siblings = {t: [t] for t in targets}
        expected = rank_by_output_error(path, first, result.source, targets, siblings, frames[probe], tolerance,
                                        log=lambda _: None)
        assert f"int8 fallback: measuring each of 3 weight groups quantized alone on {len(probe)} frames" in lines
    assert [name for name, _ in result.sensitivity] == [name for name, _ in expected]
    assert [m for _, m in result.sensitivity] == pytest.approx([m for _, m in expected], rel=1e-9, abs=1e-12)
    assert result.fallback_nodes == [name for name, _ in result.sensitivity]
    assert result.attempts[1].excluded == result.fallback_nodes


def test_an_attempt_exactly_at_the_budget_meets_it():
    """`missed` names a part only when it is past the budget, as `judge` counts it: a rank correlation equal
    to the minimum and errors equal to the tolerance are met."""
    tol = Tolerance(0.05, 0.02)
    assert missed(Attempt([], 0.98, 0.05, 0.02, True), 0.98, tol) == "met"
    assert missed(Attempt([], 0.97, 0.05, 0.03, False), 0.98, tol) == \
        "score rank correlation 0.970 < 0.98, score error 0.03 > 0.02"


def _shared_weights_model() -> tuple[onnx.ModelProto, list[str]]:
    """Nodes as the quantizer's targets meet them (the graph is only read, never run), and the targets:
    a, b: convolutions on one weight W (different biases); e: a third reader of W that is no target;
    c: its own weight W2 but b's bias; m1, m2: matrix products (no bias input) on one weight M;
    p: a matrix product of two activations (no weight initializer); r: a one-input target."""
    w = numpy_helper.from_array(np.ones((2, 2, 1, 1), np.float32), "W")
    inits = [w, numpy_helper.from_array(np.ones((2, 2, 1, 1), np.float32), "W2"),
             numpy_helper.from_array(np.ones((2, 2), np.float32), "M")]
    inits += [numpy_helper.from_array(np.zeros(2, np.float32), f"bias_{k}") for k in ("a", "b", "e")]
    nodes = [helper.make_node("Conv", ["x", "W", "bias_a"], ["ya"], name="a"),
             helper.make_node("Conv", ["ya", "W", "bias_b"], ["yb"], name="b"),
             helper.make_node("Conv", ["yb", "W", "bias_e"], ["ye"], name="e"),
             helper.make_node("Conv", ["ye", "W2", "bias_b"], ["yc"], name="c"),
             helper.make_node("Relu", ["yc"], ["yr"], name="r"),
             helper.make_node("Reshape", ["yr", "flat"], ["v"], name="flatten"),
             helper.make_node("MatMul", ["v", "M"], ["v1"], name="m1"),
             helper.make_node("MatMul", ["v1", "M"], ["v2"], name="m2"),
             helper.make_node("MatMul", ["v2", "v1t"], ["out"], name="p"),
             helper.make_node("Transpose", ["v1"], ["v1t"], name="t")]
    inits.append(numpy_helper.from_array(np.array([-1, 2], np.int64), "flat"))
    graph = helper.make_graph(nodes, "shared", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 1, 1])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph), ["a", "b", "c", "r", "m1", "m2", "p"]


def test_weight_groups_join_exactly_the_targets_that_read_one_weight():
    """a and b read W: one group, without e (it reads W too but is no target); m1 and m2 read M as their
    only other input; c shares a bias, not a weight, with b; p reads no initializer and r has no second
    input: each is its own group."""
    model, targets = _shared_weights_model()
    assert weight_groups(model, targets) == {"a": ["a", "b"], "b": ["a", "b"], "c": ["c"], "r": ["r"],
                                             "m1": ["m1", "m2"], "m2": ["m1", "m2"], "p": ["p"]}


def test_distinct_groups_lists_each_group_once_in_the_order_of_its_first_target():
    """Every group of `weight_groups` once, ordered by its first target; a target the groups do not name is
    a group of its own."""
    model, targets = _shared_weights_model()
    siblings = weight_groups(model, targets)
    assert distinct_groups(targets, siblings) == [("a", "b"), ("c",), ("r",), ("m1", "m2"), ("p",)]
    assert distinct_groups(["b", "z", "a"], {"a": ["a", "b"], "b": ["a", "b"]}) == [("a", "b"), ("z",)]


def test_a_node_kept_in_fp32_brings_its_weight_siblings_once_each():
    """The nodes a retry keeps: each named node with every node that shares its weight, in order, each
    once; a node no group names is kept alone."""
    siblings = {"a": ["a", "b"], "b": ["a", "b"], "c": ["c"]}
    assert _with_weight_siblings(["b", "c", "a"], siblings) == ["a", "b", "c"]
    assert _with_weight_siblings(["z", "a"], siblings) == ["z", "a", "b"]
    assert _with_weight_siblings([], siblings) == []
