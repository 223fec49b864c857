"""The ONNX Runtime runner: CPU by default, CUDA or TensorRT execution providers when asked and present."""

from __future__ import annotations

import numpy as np

from ddad_edge.bundle import Bundle, Precision
from ddad_edge.errors import DdadError
from ddad_edge.runtime.base import INPUT_NAME, Inspection, RunnerBase
from ddad_edge.runtime.ort_session import onnxruntime, open_session

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


class OnnxRunner(RunnerBase):
    """Runs a bundle's model.onnx in ONNX Runtime.

    `providers`: names from PROVIDERS in order of preference; unavailable ones are an error, not a
    silent fallback, so a benchmark never measures another provider than it says.
    `threads`: intra-op threads (0: ONNX Runtime's default). `optimization`: disable|basic|extended|all.
    An INT8 bundle runs without ONNX Runtime's NHWC layout pass on the CPU (`runtime.ort_session`).
    """

    backend = "onnxruntime"

    def __init__(self, bundle: Bundle, providers: tuple[str, ...] = ("cpu",), threads: int = 0,
                 optimization: str = "all") -> None:
        ort = onnxruntime("the ONNX Runtime backend")
        available = set(ort.get_available_providers())
        chosen = []
        for name in providers:
            provider = PROVIDERS.get(name, name)
            if provider not in available:
                raise DdadError(f"ONNX Runtime provider {provider} is not available here "
                                f"(available: {', '.join(sorted(available))})")
            chosen.append(provider)
        self.bundle = bundle
        self.image_size = bundle.image_size
        self.providers = tuple(chosen)
        self._session = open_session(bundle.model_path, chosen, optimization, threads,
                                     int8=bundle.precision is Precision.INT8)
        self._outputs = [o.name for o in self._session.get_outputs()]
        if self._outputs[:2] != ["anomaly_map", "score"]:
            raise DdadError(f"{bundle.model_path} has outputs {self._outputs}, expected anomaly_map, score: "
                            "it is not a ddad-edge graph")
        self._check_input(self._session.get_inputs())

    def _check_input(self, inputs: list) -> None:
        """One input `frames` uint8 (N, S, S, 3), S the manifest's image size: a model file swapped in from
        another bundle or another tool is refused here, not at the first frame."""
        size = self.image_size
        shapes = [(i.name, i.type, list(i.shape)) for i in inputs]
        ok = len(inputs) == 1 and inputs[0].name == INPUT_NAME and inputs[0].type == "tensor(uint8)"
        if ok:
            shape = list(inputs[0].shape)
            # a dimension may be symbolic (a str or None); a number must be the one the manifest says
            ok = len(shape) == 4 and all(not isinstance(d, int) or d == want
                                         for d, want in zip(shape, (shape[0], size, size, 3)))
        if not ok:
            raise DdadError(f"{self.bundle.model_path} takes {shapes}, but the bundle's manifest says "
                            f"{INPUT_NAME} uint8 (N, {size}, {size}, 3): the model file belongs to another "
                            "bundle or model; export the bundle again")

    def _infer_batch(self, frames: np.ndarray) -> Inspection:
        maps, scores = self._session.run(self._outputs[:2], {INPUT_NAME: frames})
        return Inspection(maps=np.asarray(maps, dtype=np.float32), scores=np.asarray(scores, dtype=np.float32))

    def close(self) -> None:
        self._session = None
