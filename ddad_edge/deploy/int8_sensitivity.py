"""How the INT8 fallback ranks quantized nodes: the worst are kept in FP32 first (recipe `sensitivity`).

  output  each weight group quantized alone, on a few frames: its error in the map and the score, as a
          fraction of the tolerance. It measures what is judged, so a node whose small rounding reaches
          the map unattenuated (the UNet's last convolutions) is found. One file serves every group: the
          first try's, with each rounding behind a switch (`switchable`), run once per group.
  local   the relative error each node adds to its own output (after its own output rounding, minus that
          of its input, FP32 vs Q/DQ), from one run of the file: fast, but blind to how much of a node's
          error reaches the map (on a 1-step student it ranked the UNet's output convolution 53rd of 62,
          though that node alone used 2.7 times the map budget).

Nodes that read one weight form a group (`weight_groups`): the same UNet convolution in each unrolled
step shares one precision, since the quantizer puts Q/DQ on a weight for all its readers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ddad_edge.deploy.fidelity import output_error, run_onnx
from ddad_edge.deploy.recipes import Tolerance
from ddad_edge.progress import Progress
from ddad_edge.runtime.ort_session import open_session


def rank_sensitive_nodes(fp32: Path, qdq: Path, frames: np.ndarray, targets: list[str]) -> list[tuple[str, float]]:
    """Quantized nodes ranked by the relative error each adds (output error minus input error), worst first.

    A node's output is read after its own output Q/DQ where only float ops read that pair, so the rounding
    of a convolution's output is charged to that convolution; a pair that a quantized op reads is charged to
    that reader, whose fallback removes it. Runs both graphs on `frames` (a few
    suffice), one frame at a time, with every target's data input and output exposed; only running sums
    are kept, so memory stays at one frame's activations per graph.
    """
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(fp32))
    by_name = {n.name: n for n in model.graph.node}
    pairs = [(name, by_name[name].input[0], by_name[name].output[0]) for name in targets if name in by_name]
    wanted = {t for _, i, o in pairs for t in (i, o)}
    written = {o for _, _, o in pairs}
    sessions, aliases = [], []
    for path in (fp32, qdq):
        m = onnx.load(str(path))
        alias = {t: t for t in wanted}
        if path == qdq:
            readers = {}
            for n in m.graph.node:
                for t in n.input:
                    readers.setdefault(t, []).append(n)
            quantized = set(targets)
            for q in m.graph.node:
                dqs = [n for n in readers.get(q.output[0], []) if n.op_type == "DequantizeLinear"]
                if q.op_type != "QuantizeLinear" or q.input[0] not in written or not dqs:
                    continue
                # a pair that a quantized op reads is that op's input rounding (keeping the reader in FP32
                # removes it); a pair only float ops read is the writer's output rounding
                if not any(r.name in quantized for dq in dqs for r in readers.get(dq.output[0], [])):
                    alias[q.input[0]] = dqs[0].output[0]
        present = {o for n in m.graph.node for o in n.output}
        known = {o.name for o in m.graph.output}
        for t in sorted(set(alias.values()) & present - known):
            m.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
        sessions.append(open_session(m.SerializeToString(), purpose="ranking INT8 nodes by sensitivity"))
        aliases.append(alias)
    exposed = [{o.name for o in sess.get_outputs()} for sess in sessions]
    names = sorted(t for t in wanted if aliases[0][t] in exposed[0] and aliases[1][t] in exposed[1])
    diff2 = dict.fromkeys(names, 0.0)
    ref2 = dict.fromkeys(names, 0.0)
    for i in range(len(frames)):
        feed = {"frames": np.ascontiguousarray(frames[i:i + 1])}
        ref = sessions[0].run([aliases[0][t] for t in names], feed)
        quant = sessions[1].run([aliases[1][t] for t in names], feed)
        for name, r, q in zip(names, ref, quant):
            r = np.asarray(r, np.float64)
            diff2[name] += float(np.square(np.asarray(q, np.float64) - r).sum())
            ref2[name] += float(np.square(r).sum())

    def rel(t: str) -> float:
        return float(np.sqrt(diff2[t] / max(ref2[t], 1e-24))) if t in diff2 else 0.0

    ranked = [(name, rel(o) - rel(i)) for name, i, o in pairs]
    ranked.sort(key=lambda item: -item[1])
    return ranked


SWITCH_INPUT = "int8_groups"  # the switchable file's extra input: one 0/1 entry per weight group


def switchable(qdq: Path, source: Path, groups: list[tuple[str, ...]]):
    """The INT8 file `qdq` with every rounding behind a switch, as an onnx ModelProto.

    What a node reads from a Dequantize output d of a rounded tensor x becomes d where an entry of graph
    input SWITCH_INPUT (G,) float (one per group of `groups`) is above 0.5, else x: for a quantized node,
    its own group's entry (its input and weight rounding: kept in FP32, it reads x); for a float node, the
    entry of the convolution whose output rounding it reads. With one entry 1 and the others 0 the file
    computes that group alone in INT8 as the fallback makes it with every other target kept in FP32, with
    one difference: the roundings are emulated, every convolution runs in float on dequantized values
    (ONNX Runtime fuses none), where the judged file runs integer kernels. `source` (the FP32 graph with
    initializers, `quantization_inputs`) gives the float weights. Returns (model, the number of Dequantize
    outputs some reader still reads unswitched: on in every run; 0 unless the quantizer's names change).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model, src = onnx.load(str(qdq)), onnx.load(str(source))
    float_weights = {t.name: t for t in src.graph.initializer}
    inits = {t.name for t in model.graph.initializer}
    group_of = {name: i for i, group in enumerate(groups) for name in group}
    graph_nodes = list(model.graph.node)
    producer = {o: n for n in graph_nodes for o in n.output}
    readers: dict[str, list[int]] = {}  # tensor → indices of the nodes that read it
    for i, n in enumerate(graph_nodes):
        for t in n.input:
            readers.setdefault(t, []).append(i)
    half = "int8_switch_half"
    nodes, added = [], [numpy_helper.from_array(np.array(0.5, np.float32), half)]

    def switch(d: str, x: str, entry: int, tag: str) -> str:
        """d where SWITCH_INPUT[entry] > 0.5 else x, appended to the graph; returns its output's name."""
        added.append(numpy_helper.from_array(np.array(entry, np.int64), f"{tag}_index"))
        nodes.extend([
            helper.make_node("Gather", [SWITCH_INPUT, f"{tag}_index"], [f"{tag}_entry"], name=f"{tag}_gather"),
            helper.make_node("Greater", [f"{tag}_entry", half], [f"{tag}_on"], name=f"{tag}_on"),
            helper.make_node("Where", [f"{tag}_on", d, x], [f"{tag}_out"], name=f"{tag}_where")])
        return f"{tag}_out"

    rewire: dict[tuple[int, str], str] = {}  # (index of a reader, tensor it reads) → the switched tensor instead
    for node in graph_nodes:
        nodes.append(node)
        if node.op_type != "DequantizeLinear":
            continue
        d, tag = node.output[0], f"{node.name or node.output[0]}_int8_switch"
        by_entry: dict[int, list[int]] = {}  # group → the readers whose view of d it switches
        if node.input[0] in inits:  # a weight: its float values come from the source graph
            weight = float_weights.get(node.input[0].removesuffix("_quantized"))
            if weight is None:
                continue
            x = f"{weight.name}_int8_switch_float"
            added.append(numpy_helper.from_array(numpy_helper.to_array(weight), x))
            for r in readers.get(d, []):
                if graph_nodes[r].name in group_of:
                    by_entry.setdefault(group_of[graph_nodes[r].name], []).append(r)
        else:
            q = producer.get(node.input[0])
            if q is None or q.op_type != "QuantizeLinear":
                continue
            x = q.input[0]
            writer = producer.get(x)
            wrote = group_of.get(writer.name) if writer is not None else None
            for r in readers.get(d, []):
                entry = group_of.get(graph_nodes[r].name, wrote)
                if entry is not None:
                    by_entry.setdefault(entry, []).append(r)
        for k, (entry, rs) in enumerate(by_entry.items()):
            out = switch(d, x, entry, f"{tag}{k}")
            for r in rs:
                rewire[(r, d)] = out
    for (r, d), out in rewire.items():
        reader = graph_nodes[r]
        for i, t in enumerate(reader.input):
            if t == d:
                reader.input[i] = out
    dequantized = {n.output[0] for n in graph_nodes if n.op_type == "DequantizeLinear"}
    unswitched = len({t for n in graph_nodes for t in n.input if t in dequantized})
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    model.graph.initializer.extend(added)
    model.graph.input.append(helper.make_tensor_value_info(SWITCH_INPUT, TensorProto.FLOAT, [len(groups)]))
    return model, unswitched


def rank_by_output_error(fp32: Path, qdq: Path, source: Path, targets: list[str], siblings: dict[str, list[str]],
                         frames: np.ndarray, tolerance: Tolerance,
                         log: Callable[[str], None] = print) -> list[tuple[str, float]]:
    """Quantized nodes ranked by the error each weight group makes in the graph's outputs on its own, worst first.

    Each group of targets sharing a weight (`weight_groups`) is switched on alone in the `switchable` version
    of the INT8 file `qdq` and run on `frames` (one at a time: the file holds float and INT8 weights and runs
    unfused); its measure is max(map error / tolerance.map_rel, score error / tolerance.score_rel) against the
    FP32 file on the same frames: 1.0 uses the whole budget alone. Every node of a group gets its group's
    measure. One session serves every group.
    """
    groups = distinct_groups(targets, siblings)
    log(f"int8 fallback: measuring each of {len(groups)} weight groups quantized alone on {len(frames)} frames")
    ref_maps, ref_scores = run_onnx(fp32, frames)
    model, unswitched = switchable(qdq, source, groups)
    if unswitched:
        log(f"int8 fallback: {unswitched} roundings could not be switched and stay on in every measurement")
    session = open_session(model.SerializeToString(), purpose="ranking INT8 nodes by their error in the outputs")
    del model
    ranked: list[tuple[str, float]] = []
    with Progress("int8 fallback: groups measured", total=len(groups)) as bar:
        for i, group in enumerate(groups):
            mask = (np.arange(len(groups)) == i).astype(np.float32)
            outs = [session.run(["anomaly_map", "score"], {"frames": np.ascontiguousarray(frames[j:j + 1]),
                                                           SWITCH_INPUT: mask}) for j in range(len(frames))]
            maps = np.concatenate([np.asarray(m, np.float32) for m, _ in outs])
            scores = np.concatenate([np.asarray(s, np.float32) for _, s in outs])
            err = output_error(maps, scores, ref_maps, ref_scores)
            measure = max(err.map_rel / tolerance.map_rel, err.score_rel / tolerance.score_rel)
            ranked.extend((name, measure) for name in group)
            bar.update(i + 1)
    ranked.sort(key=lambda item: -item[1])
    worst = ", ".join(f"{name} {m:.2g}" for name, m in ranked[:3])
    log(f"int8 fallback: worst alone (fraction of the budget): {worst}")
    return ranked


def weight_groups(model, targets: list[str]) -> dict[str, list[str]]:
    """For each target, the targets that read the same weight initializer (itself included).

    The K unrolled steps call the same UNet, so each of its convolutions appears K times over one
    weight tensor; the quantizer puts Q/DQ on a weight for all its readers, so they share one precision.
    """
    inits = {t.name for t in model.graph.initializer}
    wanted = set(targets)
    by_weight: dict[str, list[str]] = {}
    weight_of = {}
    for node in model.graph.node:
        if node.name in wanted and len(node.input) > 1 and node.input[1] in inits:
            by_weight.setdefault(node.input[1], []).append(node.name)
            weight_of[node.name] = node.input[1]
    return {name: by_weight.get(weight_of.get(name, ""), [name]) for name in targets}


def distinct_groups(targets: list[str], siblings: dict[str, list[str]]) -> list[tuple[str, ...]]:
    """The weight groups of `targets` (`weight_groups`), each once, in the order of their first target."""
    return list(dict.fromkeys(tuple(siblings.get(t, [t])) for t in targets))
