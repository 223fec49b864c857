"""The TensorRT runner: a bundle's engine behind the Runner interface, with no torch anywhere.

The engine for this GPU and TensorRT version is picked from the bundle's manifest; an engine built
elsewhere, missing or damaged (its sha256 is checked when it is opened) is one line that says to rebuild
it with `ddad-edge build`. Inference uses the named-tensor API (8.6 through 11; older versions are
refused): tensor addresses are set once on fixed device buffers of the engine's largest batch, frames go
through pinned host buffers on one CUDA stream, and `execute_async_v3` runs the graph. A DLA engine
runs one fixed batch: shorter chunks are padded to it.
With `cuda_graph=True` (cuda-python) the copy-in, execution and copy-out of each batch size are captured
once and replayed, which removes most of the per-frame launch overhead on a Jetson.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ddad_edge.bundle import Bundle
from ddad_edge.errors import DdadError
from ddad_edge.runtime.base import INPUT_NAME, OUTPUT_NAMES, Inspection, RunnerBase
from ddad_edge.runtime.cuda_api import CudaApi, CudaKind, open_cuda
from ddad_edge.runtime.trt_compat import GpuInfo, TrtVersion, import_tensorrt, slug, tensorrt_version
from ddad_edge.runtime.trt_logger import make_recording_logger, missing_plugins


@dataclass
class _Tensor:
    """One I/O tensor: its pinned host buffer and device buffer, both sized for the largest batch."""

    name: str
    is_input: bool
    host: np.ndarray  # (max_batch, ...) as the engine reports it for the largest batch
    device: int

    def rows(self, n: int) -> np.ndarray:
        return self.host[:n]


def built_for(entry: dict[str, Any]) -> GpuInfo:
    """The device a manifest engine entry was built on (older entries lack SM count, memory and module)."""
    return GpuInfo(str(entry.get("gpu", "")), str(entry.get("compute_capability")), int(entry.get("sm_count", 0)),
                   int(entry.get("memory_mib", 0)), str(entry.get("module", "")))


def same_device(built: GpuInfo, gpu: GpuInfo) -> bool:
    """Whether an engine built on `built` is for `gpu`: GPU name, compute capability, module, SM count and
    memory (to the GiB) agree; a count not known on either side is not compared."""
    def known(a, b) -> bool:
        return a == b or not a or not b

    return (built.compute_capability == gpu.compute_capability and slug(built.name) == slug(gpu.name)
            and slug(built.module) == slug(gpu.module) and known(built.sm_count, gpu.sm_count)
            and known(built.memory_gib, gpu.memory_gib))


def select_engine(bundle: Bundle, gpu: GpuInfo, version: TrtVersion, requested: str | None = None) -> str:
    """The bundle's engine file for this device and TensorRT version, or one line that says to rebuild."""
    engines = bundle.engines
    rebuild = f"rebuild it here with `ddad-edge build --bundle {bundle.path}`"
    if not engines:
        raise DdadError(f"bundle {bundle.path} has no TensorRT engine: build one here with "
                        f"`ddad-edge build --bundle {bundle.path}`")
    if requested is not None:
        if requested not in engines:
            raise DdadError(f"bundle {bundle.path} has no engine {requested} (it has: {', '.join(sorted(engines))})")
        candidates = {requested: engines[requested]}
    else:
        candidates = engines
    unidentified = []
    for name, entry in sorted(candidates.items()):
        if TrtVersion.parse(str(entry.get("tensorrt"))) != version:
            continue
        if gpu.module and "module" not in entry:
            # Written before the module was recorded: on a Jetson 'Orin' sm 8.7 fits every Orin module.
            unidentified.append(name)
        elif same_device(built_for(entry), gpu):
            return name
    if unidentified:
        raise DdadError(f"engine {unidentified[0]} does not record which Jetson module built it (every Orin "
                        f"reports 'Orin', sm {gpu.compute_capability}), so it may be tuned for another module "
                        f"than this {gpu.describe()}: {rebuild}")
    name, entry = sorted(candidates.items())[0]
    raise DdadError(f"engine {name} was built for {built_for(entry).describe()} with TensorRT {entry.get('tensorrt')}, "
                    f"this is {gpu.describe()} with TensorRT {version}: {rebuild}")


class TensorRTRunner(RunnerBase):
    """Runs a bundle's TensorRT engine. Options: `engine` (file name, default: the one for this device),
    `cuda` (auto | pycuda | cuda-python), `cuda_graph` (capture and replay per batch size).

    `trt` and `cuda_api` are seams for tests; by default the real `tensorrt` module and device 0.
    """

    backend = "tensorrt"

    def __init__(self, bundle: Bundle, engine: str | None = None, cuda: CudaKind | str = CudaKind.AUTO,
                 cuda_graph: bool = False, trt: Any = None, cuda_api: CudaApi | None = None) -> None:
        self.bundle = bundle
        self.image_size = bundle.image_size
        self._trt = trt if trt is not None else import_tensorrt()
        self.version = tensorrt_version(self._trt)
        self._cuda = cuda_api if cuda_api is not None else open_cuda(cuda, need_graphs=cuda_graph)
        self._cuda_open = True  # close() releases the CUDA buffers once
        self._tensors: dict[str, _Tensor] = {}
        self._graphs: dict[int, Any] = {}
        self._batch = 0
        self._engine: Any = None  # tensorrt.ICudaEngine and IExecutionContext, once deserialised
        self._context: Any = None
        try:
            if cuda_graph and not self._cuda.supports_graphs:
                raise DdadError("CUDA-graph replay needs cuda-python: pip install cuda-python, or run without it")
            self.cuda_graph = cuda_graph
            self.engine_name = select_engine(bundle, self._cuda.gpu, self.version, engine)
            self.max_batch = int(bundle.engines[self.engine_name].get("max_batch", 1))
            self.min_batch = int(bundle.engines[self.engine_name].get("min_batch", 1))  # = max_batch on DLA
            self._load(bundle.read_device_file(self.engine_name))  # checked here: read_bundle skips engines
        except BaseException:
            self.close()
            raise

    def _load(self, plan: bytes) -> None:
        trt = self._trt
        self._trt_log = make_recording_logger(trt)
        self._logger = self._trt_log
        # Engines may hold TensorRT's standard plugins (8.6 imported InstanceNormalization as one unless the
        # parser was told otherwise); the builder's parser registers them, a fresh process must do it itself.
        plugins_loaded = trt.init_libnvinfer_plugins(self._logger, "")
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(plan)
        missing = missing_plugins(self._trt_log.messages) if self._engine is None else []
        if missing:
            cause = (f"which is not among the plugins TensorRT {self.version} registered" if plugins_loaded
                     else "and TensorRT could not load its plugin library (libnvinfer_plugin): install JetPack's "
                          "libnvinfer-plugin package, or")
            raise DdadError(f"{self.engine_name} needs the TensorRT plugin {', '.join(missing)}, {cause} rebuild it "
                            f"without plugins with `ddad-edge build --bundle {self.bundle.path}`")
        if self._engine is None:
            raise DdadError(f"TensorRT {self.version} cannot load {self.engine_name} (damaged, or built by another "
                            f"TensorRT): rebuild it with `ddad-edge build --bundle {self.bundle.path}`")
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise DdadError(f"TensorRT cannot create an execution context for {self.engine_name} (GPU memory?)")
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if inputs != [INPUT_NAME]:
            raise DdadError(f"engine {self.engine_name} has inputs {inputs}, a ddad-edge graph has one "
                            f"({INPUT_NAME}): rebuild it from the bundle")
        # Buffers are sized for the largest batch; output shapes follow from the input shape.
        self._set_batch(self.max_batch)
        for name in names:
            dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(name)))
            shape = tuple(int(d) for d in self._context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise DdadError(f"engine {self.engine_name}: tensor {name} has unresolved dimensions {shape}; "
                                "export the graph with a fixed image size")
            is_input = name == INPUT_NAME
            host = self._cuda.pinned_empty(shape, dtype)
            tensor = _Tensor(name, is_input, host, self._cuda.device_alloc(host.nbytes))
            self._context.set_tensor_address(name, tensor.device)
            self._tensors[name] = tensor
        absent = set(OUTPUT_NAMES) - set(self._tensors)
        if absent:
            raise DdadError(f"engine {self.engine_name} lacks tensors {sorted(absent)}: it is not a ddad-edge "
                            "graph; rebuild it from the bundle")
        if self._tensors[INPUT_NAME].host.dtype != np.uint8:
            raise DdadError(f"engine {self.engine_name} takes {self._tensors[INPUT_NAME].host.dtype} frames, "
                            "expected uint8: rebuild it from this bundle")

    def _enqueue(self, n: int) -> None:
        """Copy n frames in, run, copy n results out: all queued on the one stream."""
        for tensor in self._tensors.values():
            if tensor.is_input:
                self._cuda.copy_to_device(tensor.device, tensor.rows(n))
        if not self._context.execute_async_v3(self._cuda.stream_handle):
            raise DdadError(f"TensorRT failed to run {self.engine_name} (its log above says why)")
        for tensor in self._tensors.values():
            if not tensor.is_input:
                self._cuda.copy_to_host(tensor.rows(n), tensor.device)

    def _set_batch(self, n: int) -> None:
        if n != self._batch:
            if not self._context.set_input_shape(INPUT_NAME, (n, self.image_size, self.image_size, 3)):
                raise DdadError(f"engine {self.engine_name} refuses batch {n} (built for "
                                f"{self.min_batch}..{self.max_batch})")
            self._batch = n

    def _infer_batch(self, frames: np.ndarray) -> Inspection:
        """At most max_batch frames (n, S, S, 3) uint8 → maps (n, 1, S, S), scores (n,) float32 (RunnerBase.infer
        cuts a longer batch into chunks of the engine's max_batch)."""
        wanted = len(frames)
        if wanted < self.min_batch:  # a fixed-batch engine: pad with copies of the last frame, keep `wanted`
            frames = np.concatenate([frames, np.repeat(frames[-1:], self.min_batch - wanted, axis=0)])
        n = len(frames)
        self._set_batch(n)
        self._tensors[INPUT_NAME].rows(n)[...] = frames
        if not self.cuda_graph:
            self._enqueue(n)
        elif n in self._graphs:
            self._cuda.launch_graph(self._graphs[n])
        else:
            self._enqueue(n)  # TensorRT finishes shape-dependent setup on a first run, outside capture
            self._cuda.synchronize()
            self._cuda.begin_capture()
            self._enqueue(n)
            self._graphs[n] = self._cuda.end_capture()
            self._cuda.launch_graph(self._graphs[n])
        self._cuda.synchronize()
        maps, scores = (self._tensors[name].rows(wanted) for name in OUTPUT_NAMES)
        return Inspection(maps=np.array(maps, dtype=np.float32),
                          scores=np.array(scores, dtype=np.float32).reshape(wanted))

    def close(self) -> None:
        self._graphs.clear()
        self._tensors.clear()
        self._context = None
        self._engine = None
        if self._cuda_open:
            self._cuda_open = False
            self._cuda.close()
