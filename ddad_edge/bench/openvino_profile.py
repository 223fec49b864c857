"""Where a graph's time goes in OpenVINO: per layer type, per part of the frame, per kernel, slowest layers.

OpenVINO's CPU plugin, compiled with PERF_COUNT, records for every layer of a request its type, the kernel
it ran (`exec_type`, e.g. `brgconv_avx512_amx_I8` for an INT8 convolution on AMX tiles, `jit_avx512_FP32`)
and its time. Layers keep the names the exporter wrote, so the parts of the frame are told as in ONNX
Runtime's profile (ort_profile.part_of). The first request is a warm-up and left out. The summary has the
same fields as ort_profile's, plus `by_kernel`, which says which instructions did the work.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ddad_edge.bench.ort_profile import part_of, per_run_table


def summarise_layers(requests: list[list[tuple[str, str, str, float]]], top: int = 15) -> dict[str, Any]:
    """Aggregate per-request layer records (node name, layer type, kernel, ms), each request one list:
    per-request ms by layer type, by part, by kernel, and the `top` slowest layers."""
    if not requests:
        raise ValueError("no profiled request to summarise")
    n = len(requests)
    by_op: dict[str, float] = defaultdict(float)
    by_part: dict[str, float] = defaultdict(float)
    by_kernel: dict[str, float] = defaultdict(float)
    by_node: dict[tuple[str, str], float] = defaultdict(float)
    for layers in requests:
        for node, op, kernel, ms in layers:
            by_op[op] += ms
            by_part[part_of(node)] += ms
            by_kernel[kernel] += ms
            by_node[(node, op)] += ms
    kernels_ms = sum(by_op.values()) / n

    def table(d: dict) -> list[dict[str, Any]]:
        return per_run_table(d, n, kernels_ms)

    nodes = sorted(by_node.items(), key=lambda kv: -kv[1])[:top]
    return {"runs": n, "kernels_ms": round(kernels_ms, 3), "by_part": table(by_part), "by_op": table(by_op),
            "by_kernel": table(by_kernel),
            "top_nodes": [{"node": k[0], "op": k[1], "ms_per_run": round(v / n, 3)} for k, v in nodes]}


def layer_records(info: list) -> list[tuple[str, str, str, float]]:
    """(node name, layer type, kernel, ms) of each layer OpenVINO executed in one request."""
    out = []
    for layer in info:
        if str(layer.status).split(".")[-1] != "EXECUTED":
            continue
        out.append((layer.node_name, layer.node_type, layer.exec_type, layer.real_time.total_seconds() * 1e3))
    return out


def profile_openvino(model_path: Path, frames: np.ndarray, precision: str = "f32", runs: int = 3,
                     threads: int = 0) -> dict[str, Any]:
    """Run `model_path` in OpenVINO on the CPU at inference precision `precision` (f32 or bf16) on `frames`
    (N, S, S, 3) uint8 `runs` times after one warm-up request, with per-layer counters on; returns
    summarise_layers' summary with `run_ms` (the mean wall time of the counted requests) and the precision
    OpenVINO compiled."""
    import time

    from ddad_edge.runtime.openvino_runner import CompiledGraph

    graph = CompiledGraph(model_path, int(frames.shape[1]), "CPU", precision, threads, cache_dir="",
                          perf_counters=True)
    try:
        graph.infer(frames)  # warm-up
        requests, walls = [], []
        for _ in range(runs):
            t0 = time.perf_counter()
            graph.infer(frames)
            walls.append((time.perf_counter() - t0) * 1e3)
            requests.append(layer_records(graph.profiling_info()))
        summary = summarise_layers(requests)
        summary.update(run_ms=round(float(np.mean(walls)), 3), compiled_precision=graph.compiled_precision,
                       backend=f"openvino-{precision}")
        return summary
    finally:
        graph.close()
