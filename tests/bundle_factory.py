"""The toy bundles of the tests, real and tiny: an ONNX graph with the ddad-edge signature and a manifest,
written by one module (`_bundle_folder`, then the manifest through ddad_edge.bundle.write_manifest), so
every test builds the bundle contract the same way.

Two graphs, each cheap and predictable:
- the grey bundle (`make_toy_bundle`): precisions, probe frames and calibration frames, for runners,
  the benchmark and bundle checks;
- the red bundle (`make_red_bundle`): verdicts a test can plan, for the inspection loop.

The grey graph takes `frames` uint8 (N, H, W, 3) with a dynamic batch and returns `anomaly_map` float32
(N, 1, H, W) and `score` float32 (N,), like the exported DDAD-S graph, but computes something cheap:
the map is |grey - 0.5| * 2 and the score its maximum. FP16 and INT8 variants carry their precision in
the file (float16 casts; a Q/DQ pair), as the export stage's files do. The probe outputs are those of
the FP32 graph in ONNX Runtime, as export writes them.

    bundle = make_toy_bundle(tmp_path / "bundle", image_size=32, precision="fp16")

The red graph's score is the mean of the red channel: `anomaly_map` float32 (N, 1, H, W) = red / 255 (any
H and W) and `score` its mean, so a frame with a red patch covering a quarter of it scores about 0.25 and a
green frame about 0: with the threshold 0.1 the first is NG, the second OK.

    bundle = make_red_bundle(tmp_path / "bundle", image_size=32, threshold=0.1)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ddad_edge.bundle import MODEL_NAME, Bundle, Precision, write_manifest

PROBE_NAME = "probe.npz"
CALIBRATION_FRAMES_NAME = "calibration.npz"
OPSET = 17
# The precision's stated tolerance against the FP32 outputs (absolute on the map, relative on the score).
TOLERANCES = {
    Precision.FP32: {"map_abs": 1e-5, "score_rel": 1e-5},
    Precision.FP16: {"map_abs": 5e-3, "score_rel": 5e-3},
    Precision.INT8: {"map_abs": 2e-2, "score_rel": 2e-2},
}


def make_toy_model(precision: Precision | str = Precision.FP32, image_size: int = 32) -> bytes:
    """The serialized toy ONNX model at a precision, for frames of image_size x image_size (batch dynamic)."""
    from onnx import TensorProto, helper, numpy_helper

    precision = Precision(precision)
    inner = TensorProto.FLOAT16 if precision is Precision.FP16 else TensorProto.FLOAT
    np_inner = np.float16 if precision is Precision.FP16 else np.float32
    nodes = [
        helper.make_node("Cast", ["frames"], ["x"], to=inner),
        helper.make_node("Mul", ["x", "inv255"], ["unit"]),
        helper.make_node("ReduceMean", ["unit"], ["grey"], axes=[3], keepdims=1),  # (N, H, W, 1)
        helper.make_node("Transpose", ["grey"], ["grey_nchw"], perm=[0, 3, 1, 2]),  # (N, 1, H, W)
        helper.make_node("Sub", ["grey_nchw", "half"], ["centred"]),
        helper.make_node("Abs", ["centred"], ["dist"]),
        helper.make_node("Mul", ["dist", "two"], ["map_inner"]),
    ]
    last = "map_inner"
    if precision is Precision.INT8:
        nodes += [
            helper.make_node("QuantizeLinear", [last, "q_scale", "q_zero"], ["map_q"]),
            helper.make_node("DequantizeLinear", ["map_q", "q_scale", "q_zero"], ["map_dq"]),
        ]
        last = "map_dq"
    nodes += [
        helper.make_node("Cast", [last], ["anomaly_map"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMax", ["anomaly_map"], ["score"], axes=[1, 2, 3], keepdims=0),
    ]
    inits = [
        numpy_helper.from_array(np.array(1 / 255, dtype=np_inner), "inv255"),
        numpy_helper.from_array(np.array(0.5, dtype=np_inner), "half"),
        numpy_helper.from_array(np.array(2.0, dtype=np_inner), "two"),
    ]
    if precision is Precision.INT8:
        # symmetric, zero point 0, as the export's Q/DQ files
        inits += [numpy_helper.from_array(np.array(1 / 127, dtype=np.float32), "q_scale"),
                  numpy_helper.from_array(np.array(0, dtype=np.int8), "q_zero")]
    return _serialized(nodes, inits, "ddad_edge_toy", image_size)


def _serialized(nodes: list, inits: list, name: str, size: int | None) -> bytes:
    """A graph with the ddad-edge signature (frames uint8 (N, S, S, 3) → anomaly_map (N, 1, S, S), score (N,);
    S fixed, or any where `size` is None), serialized at this file's opset."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("frames", TensorProto.UINT8, ["N", size, size, 3])],
        [helper.make_tensor_value_info("anomaly_map", TensorProto.FLOAT, ["N", 1, size, size]),
         helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="ddad-edge-tests")
    model.ir_version = 8
    return model.SerializeToString()


def run_model(model: bytes, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(maps, scores) of a serialized model in ONNX Runtime on the CPU."""
    import onnxruntime as ort

    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    maps, scores = session.run(["anomaly_map", "score"], {"frames": frames})
    return maps.astype(np.float32), scores.astype(np.float32)


def make_toy_bundle(root: Path, image_size: int = 32, precision: Precision | str = Precision.FP32,
                    probe_frames: int = 4, calibration_frames: int = 0, seed: int = 0) -> Bundle:
    """Write a complete toy bundle into `root` (created) and return it, verified as written.

    `calibration_frames` > 0 also writes calibration.npz (frames for TensorRT's legacy INT8 calibrator).
    """
    precision = Precision(precision)
    root = _bundle_folder(root, make_toy_model(precision, image_size))
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, size=(probe_frames, image_size, image_size, 3), dtype=np.uint8)
    maps, scores = run_model(make_toy_model(Precision.FP32, image_size), frames)
    np.savez(root / PROBE_NAME, frames=frames, maps=maps, scores=scores)
    manifest = {
        "model_file": MODEL_NAME,
        "precision": precision.value,
        "graph": {"image_size": image_size, "opset": OPSET, "steps": 1, "inputs": ["frames"],
                  "outputs": ["anomaly_map", "score"]},
        "probe": {"file": PROBE_NAME},
        "tolerance": dict(TOLERANCES[precision]),
        "thresholds": {"score": 0.9},
    }
    if calibration_frames:
        calib = rng.integers(0, 256, size=(calibration_frames, image_size, image_size, 3), dtype=np.uint8)
        np.savez(root / CALIBRATION_FRAMES_NAME, frames=calib)
        manifest["calibration_frames"] = {"file": CALIBRATION_FRAMES_NAME}
    return write_manifest(root, manifest)


def make_red_model() -> bytes:
    """The serialized red ONNX model: map = red / 255 in NCHW, score = mean of the map."""
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
    return _serialized(nodes, inits, "ddad_edge_red_toy", None)


def make_red_bundle(root: Path, image_size: int = 32, threshold: float = 0.1) -> Bundle:
    """Write the red-score bundle into `root` (created) and return it."""
    root = _bundle_folder(root, make_red_model())
    manifest = {
        "model_file": MODEL_NAME,
        "precision": "fp32",
        "graph": {"image_size": image_size, "opset": OPSET, "inputs": ["frames"], "outputs": ["anomaly_map", "score"]},
        "thresholds": {"image": threshold},
    }
    return write_manifest(root, manifest)


def _bundle_folder(root: Path, model: bytes) -> Path:
    """`root` created, holding the serialized `model` under the bundle's model name."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / MODEL_NAME).write_bytes(model)
    return root
