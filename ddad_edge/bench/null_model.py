"""A bundle whose graph costs almost nothing, for timing the inspection loop around the runner.

The loop's own work per frame (decode, resize, decision, reject planning, event log) is what issue 5
bounds; measured around a real model it is dwarfed by the model, and its cadence changes (the event log
syncs to disk at most once a second, so at one frame a second it syncs on every frame). Around this graph
the loop runs at line rate. It is a real ONNX graph with the runner contract (frames uint8 (N, S, S, 3) →
anomaly_map (N, 1, S, S) = grey level / 255, score (N,) = its maximum), run by the real ONNX Runtime
runner, so the copies of a full-size map are in the measurement.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ddad_edge.bundle import MODEL_NAME, Bundle, write_manifest
from ddad_edge.errors import missing_package
from ddad_edge.runtime.base import INPUT_NAME, OUTPUT_NAMES

OPSET = 17


def null_model(image_size: int) -> bytes:
    """The serialized graph for S = `image_size`, dynamic batch."""
    try:
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise missing_package("onnx", "the loop-overhead measurement", "pip install onnx") from None
    s = image_size
    nodes = [
        helper.make_node("Cast", [INPUT_NAME], ["x"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["x"], ["grey"], axes=[3], keepdims=1),  # (N, S, S, 1)
        helper.make_node("Transpose", ["grey"], ["grey_nchw"], perm=[0, 3, 1, 2]),  # (N, 1, S, S)
        helper.make_node("Mul", ["grey_nchw", "inv255"], [OUTPUT_NAMES[0]]),
        helper.make_node("ReduceMax", [OUTPUT_NAMES[0]], [OUTPUT_NAMES[1]], axes=[1, 2, 3], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "ddad_edge_null",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["N", s, s, 3])],
        [helper.make_tensor_value_info(OUTPUT_NAMES[0], TensorProto.FLOAT, ["N", 1, s, s]),
         helper.make_tensor_value_info(OUTPUT_NAMES[1], TensorProto.FLOAT, ["N"])],
        [numpy_helper.from_array(np.array(1 / 255, dtype=np.float32), "inv255")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="ddad-edge-bench")
    model.ir_version = 8
    return model.SerializeToString()


def write_null_bundle(root: Path, image_size: int) -> Bundle:
    """Write the near-zero-cost bundle for `image_size` into `root` (created); returns it."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / MODEL_NAME).write_bytes(null_model(image_size))
    return write_manifest(root, {
        "model_file": MODEL_NAME, "precision": "fp32",
        "graph": {"image_size": image_size, "opset": OPSET, "steps": 0, "scoring": "none",
                  "inputs": [INPUT_NAME], "outputs": list(OUTPUT_NAMES)},
        "notes": "near-zero-cost graph for timing the inspection loop around the runner; not a detector",
    })
