"""A real ONNX bundle whose verdicts are predictable: the score is the mean of the red channel.

The graph follows the bundle contract (input `frames` uint8 (N, H, W, 3) with a dynamic batch; outputs
`anomaly_map` float32 (N, 1, H, W) = red / 255 and `score` float32 (N,) = its mean), so a frame with a red
patch covering a quarter of it scores about 0.25 and a green frame about 0: with the threshold 0.1 the
first is NG, the second OK. It runs in the real ONNX Runtime runner.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ddad_edge.bundle import MODEL_NAME, Bundle, write_manifest

OPSET = 17


def make_red_model() -> bytes:
    """The serialized ONNX model: map = red / 255 in NCHW, score = mean of the map."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Cast", ["frames"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("Slice", ["x", "start", "end", "axis"], ["red"]),  # (N, H, W, 1)
        helper.make_node("Transpose", ["red"], ["red_nchw"], perm=[0, 3, 1, 2]),  # (N, 1, H, W)
        helper.make_node("Mul", ["red_nchw", "inv255"], ["anomaly_map"]),
        helper.make_node("ReduceMean", ["anomaly_map"], ["score"], axes=[1, 2, 3], keepdims=0),
    ]
    inits = [
        numpy_helper.from_array(np.array([0], dtype=np.int64), "start"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "end"),
        numpy_helper.from_array(np.array([3], dtype=np.int64), "axis"),
        numpy_helper.from_array(np.array(1 / 255, dtype=np.float32), "inv255"),
    ]
    graph = helper.make_graph(
        nodes, "ddad_edge_red_toy",
        [helper.make_tensor_value_info("frames", TensorProto.UINT8, ["N", None, None, 3])],
        [helper.make_tensor_value_info("anomaly_map", TensorProto.FLOAT, ["N", 1, None, None]),
         helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="ddad-edge-tests")
    model.ir_version = 8
    return model.SerializeToString()


def make_red_bundle(root: Path, image_size: int = 32, threshold: float = 0.1) -> Bundle:
    """Write the red-score bundle into `root` (created) and return it."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / MODEL_NAME).write_bytes(make_red_model())
    manifest = {
        "model_file": MODEL_NAME,
        "precision": "fp32",
        "graph": {"image_size": image_size, "opset": OPSET, "inputs": ["frames"], "outputs": ["anomaly_map", "score"]},
        "thresholds": {"image": threshold},
    }
    return write_manifest(root, manifest)
