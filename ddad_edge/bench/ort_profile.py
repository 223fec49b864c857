"""Where a graph's time goes in ONNX Runtime: per operator type, per part of the frame, slowest nodes.

ONNX Runtime's profiler (`SessionOptions.enable_profiling`) writes one event per node execution with
its kernel time. The first run is a warm-up and left out. Node names carry the module path the
exporter wrote (`/pipeline/unet/...`, `/pipeline/scorer/extractor/...`), which gives the parts:
  unet      the denoising UNet, all K calls together
  backbone  the feature extractor on [x, x̂0]
  scoring   distances, fusion, blur and score
  sampler   everything else: input normalisation, x_T', the DDIM step arithmetic
"""

from __future__ import annotations

import json
import re
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ddad_edge.runtime.base import INPUT_NAME
from ddad_edge.runtime.ort_session import open_session

PARTS = (("backbone", re.compile(r"/pipeline/scorer/extractor/")), ("scoring", re.compile(r"/pipeline/scorer/")),
         ("unet", re.compile(r"/pipeline/unet(_\d+)?/")))
_KERNEL = "_kernel_time"


def part_of(node_name: str) -> str:
    """The part of the frame (module docstring) a node belongs to, by its name."""
    for part, pattern in PARTS:
        if pattern.search(node_name):
            return part
    return "sampler"


def per_run_table(totals: dict[Any, float], runs: int, kernels_ms: float) -> list[dict[str, Any]]:
    """Rows {name, ms_per_run, share of kernel time} of summed times over `runs` runs, slowest first (this
    profile's and OpenVINO's, bench/openvino_profile.py)."""
    return [{"name": k, "ms_per_run": round(v / runs, 3),
             "share": round(v / runs / kernels_ms, 4) if kernels_ms else 0}
            for k, v in sorted(totals.items(), key=lambda kv: -kv[1])]


def summarise_events(events: list[dict[str, Any]], skip_runs: int = 1, top: int = 15) -> dict[str, Any]:
    """Aggregate ORT profiler events: per-run ms by operator type, by part, and the `top` slowest nodes.

    Node events before the start of run number `skip_runs` (0-based) are warm-up and not counted.
    """
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                  key=lambda e: e["ts"])
    if len(runs) <= skip_runs:
        raise ValueError(f"the profile has {len(runs)} runs, {skip_runs} of them warm-up: nothing to count")
    start = runs[skip_runs]["ts"]
    counted = runs[skip_runs:]
    n = len(counted)
    by_op: dict[str, float] = defaultdict(float)
    by_part: dict[str, float] = defaultdict(float)
    by_node: dict[tuple[str, str], float] = defaultdict(float)
    for e in events:
        name = e.get("name", "")
        if e.get("cat") != "Node" or not name.endswith(_KERNEL) or e.get("ts", 0) < start:
            continue
        node = name[: -len(_KERNEL)]
        op = e.get("args", {}).get("op_name", "?")
        ms = e.get("dur", 0) / 1e3
        by_op[op] += ms
        by_part[part_of(node)] += ms
        by_node[(node, op)] += ms
    run_ms = float(np.mean([r["dur"] for r in counted])) / 1e3
    kernels_ms = sum(by_op.values()) / n

    def table(d: dict) -> list[dict[str, Any]]:
        return per_run_table(d, n, kernels_ms)

    nodes = sorted(by_node.items(), key=lambda kv: -kv[1])[:top]
    return {"runs": n, "run_ms": round(run_ms, 3), "kernels_ms": round(kernels_ms, 3),
            "by_part": table(by_part), "by_op": table(by_op),
            "top_nodes": [{"node": k[0], "op": k[1], "ms_per_run": round(v / n, 3)} for k, v in nodes]}


def profile_onnx(model_path: Path, frames: np.ndarray, runs: int = 3, threads: int = 0,
                 optimization: str = "all", int8: bool = False) -> dict[str, Any]:
    """Run `model_path` in ONNX Runtime (CPU) on `frames` (N, S, S, 3) uint8 `runs` times after one warm-up
    run, with the profiler on, in a session opened as the runner opens it (`int8`: an INT8 file); returns
    `summarise_events` of the profile."""
    with tempfile.TemporaryDirectory(prefix="ddad-ort-profile-") as tmp:
        session = open_session(model_path, ("CPUExecutionProvider",), optimization, threads, int8=int8,
                               profile_prefix=str(Path(tmp) / "ort"), purpose="the per-operator profile")
        for _ in range(runs + 1):
            session.run(None, {INPUT_NAME: frames})
        path = session.end_profiling()
        events = json.loads(Path(path).read_text())
    return summarise_events(events, skip_runs=1)
