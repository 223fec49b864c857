"""The few CUDA calls the TensorRT runner and builder need, over pycuda or cuda-python.

One stream, pinned host buffers, device buffers, async copies, and (cuda-python only, as pycuda has no
graph API) CUDA-graph capture and replay. Both implementations use the device's primary context, the
one TensorRT itself uses. `open_cuda("auto")` takes pycuda where it imports, else cuda-python; a missing
package is one line that names it.
"""

from __future__ import annotations

import ctypes
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ddad_edge.errors import DdadError, missing_package
from ddad_edge.runtime.jetson_module import DEVICE_TREE_MODEL_FILES, read_jetson_model
from ddad_edge.runtime.trt_compat import GpuInfo

PYCUDA_HINT = "pip install pycuda (on a Jetson with JetPack's CUDA on PATH: export PATH=/usr/local/cuda/bin:$PATH)"
CUDA_PYTHON_HINT = "pip install cuda-python (the version matching the CUDA of your JetPack/driver)"


class CudaKind(str, Enum):
    """Which Python CUDA binding to use."""

    AUTO = "auto"
    PYCUDA = "pycuda"
    CUDA_PYTHON = "cuda-python"


class CudaApi(Protocol):
    """One CUDA device, one stream. Pointers are plain ints; copies are queued on the stream."""

    gpu: GpuInfo
    supports_graphs: bool
    stream_handle: int

    def pinned_empty(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray: ...

    def device_alloc(self, nbytes: int) -> int: ...

    def copy_to_device(self, device_ptr: int, host: np.ndarray) -> None: ...

    def copy_to_host(self, host: np.ndarray, device_ptr: int) -> None: ...

    def synchronize(self) -> None: ...

    def begin_capture(self) -> None: ...

    def end_capture(self) -> Any: ...

    def launch_graph(self, graph: Any) -> None: ...

    def close(self) -> None: ...


class PycudaApi:
    """CudaApi over pycuda (the usual choice on a Jetson). No CUDA graphs."""

    supports_graphs = False

    def __init__(self, device_index: int = 0, model_files: tuple[Path, ...] = DEVICE_TREE_MODEL_FILES) -> None:
        try:
            import pycuda.driver as cuda
        except ImportError:
            raise missing_package("pycuda", "TensorRT on the GPU", PYCUDA_HINT) from None
        self._cuda = cuda
        try:
            cuda.init()
            device = cuda.Device(device_index)
        except cuda.Error as exc:
            raise DdadError(f"no CUDA device {device_index} ({str(exc).splitlines()[0]}): "
                            "check the driver with `ddad-edge doctor`") from None
        self._cuda_context = device.retain_primary_context()
        self._cuda_context.push()
        major, minor = device.compute_capability()
        sm_count = device.get_attribute(cuda.device_attribute.MULTIPROCESSOR_COUNT)
        self.gpu = GpuInfo(device.name(), f"{major}.{minor}", int(sm_count), int(device.total_memory()) >> 20,
                           read_jetson_model(model_files))
        self._stream = cuda.Stream()
        self.stream_handle = int(self._stream.handle)
        self._allocations: list[Any] = []

    def pinned_empty(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return self._cuda.pagelocked_empty(shape, dtype)

    def device_alloc(self, nbytes: int) -> int:
        allocation = self._cuda.mem_alloc(max(int(nbytes), 1))
        self._allocations.append(allocation)
        return int(allocation)

    def copy_to_device(self, device_ptr: int, host: np.ndarray) -> None:
        self._cuda.memcpy_htod_async(device_ptr, host, self._stream)

    def copy_to_host(self, host: np.ndarray, device_ptr: int) -> None:
        self._cuda.memcpy_dtoh_async(host, device_ptr, self._stream)

    def synchronize(self) -> None:
        self._stream.synchronize()

    def begin_capture(self) -> None:
        raise DdadError(f"CUDA-graph replay needs cuda-python (pycuda has no graph API): {CUDA_PYTHON_HINT}")

    def end_capture(self) -> Any:  # pragma: no cover - begin_capture refuses first
        raise DdadError("CUDA-graph replay needs cuda-python")

    def launch_graph(self, graph: Any) -> None:  # pragma: no cover - begin_capture refuses first
        raise DdadError("CUDA-graph replay needs cuda-python")

    def close(self) -> None:
        for allocation in self._allocations:
            allocation.free()
        self._allocations.clear()
        if self._cuda_context is not None:
            self._cuda_context.pop()
            self._cuda_context = None


def _import_cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart  # cuda-python 12.6+
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError:
            raise missing_package("cuda", "TensorRT on the GPU (cuda-python)", CUDA_PYTHON_HINT) from None
    return cudart


class CudaPythonApi:
    """CudaApi over cuda-python's runtime API, with CUDA-graph capture and replay."""

    supports_graphs = True

    def __init__(self, device_index: int = 0, model_files: tuple[Path, ...] = DEVICE_TREE_MODEL_FILES) -> None:
        self._rt = _import_cudart()
        self._check(self._rt.cudaSetDevice(device_index), "cudaSetDevice")
        props = self._check(self._rt.cudaGetDeviceProperties(device_index), "cudaGetDeviceProperties")
        name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
        self.gpu = GpuInfo(name.rstrip("\x00").strip(), f"{props.major}.{props.minor}", int(props.multiProcessorCount),
                           int(props.totalGlobalMem) >> 20, read_jetson_model(model_files))
        self._stream = self._check(self._rt.cudaStreamCreate(), "cudaStreamCreate")
        self.stream_handle = int(self._stream)
        self._device: list[int] = []
        self._host: list[int] = []
        self._graphs: list[tuple[Any, Any]] = []

    def _check(self, result: Any, what: str) -> Any:
        err, *rest = result if isinstance(result, tuple) else (result,)
        if err != self._rt.cudaError_t.cudaSuccess:
            raise DdadError(f"CUDA call {what} failed: {err}")
        return rest[0] if len(rest) == 1 else (tuple(rest) or None)

    def pinned_empty(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        nbytes = max(int(np.prod(shape)) * dtype.itemsize, 1)
        ptr = int(self._check(self._rt.cudaMallocHost(nbytes), "cudaMallocHost"))
        self._host.append(ptr)
        raw = (ctypes.c_ubyte * nbytes).from_address(ptr)
        return np.frombuffer(memoryview(raw), dtype=dtype, count=int(np.prod(shape))).reshape(shape)

    def device_alloc(self, nbytes: int) -> int:
        ptr = int(self._check(self._rt.cudaMalloc(max(int(nbytes), 1)), "cudaMalloc"))
        self._device.append(ptr)
        return ptr

    def copy_to_device(self, device_ptr: int, host: np.ndarray) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self._rt.cudaMemcpyAsync(device_ptr, host.ctypes.data, host.nbytes, kind, self._stream),
                    "cudaMemcpyAsync")

    def copy_to_host(self, host: np.ndarray, device_ptr: int) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self._rt.cudaMemcpyAsync(host.ctypes.data, device_ptr, host.nbytes, kind, self._stream),
                    "cudaMemcpyAsync")

    def synchronize(self) -> None:
        self._check(self._rt.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")

    def begin_capture(self) -> None:
        mode = self._rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self._check(self._rt.cudaStreamBeginCapture(self._stream, mode), "cudaStreamBeginCapture")

    def end_capture(self) -> Any:
        graph = self._check(self._rt.cudaStreamEndCapture(self._stream), "cudaStreamEndCapture")
        executable = self._check(self._rt.cudaGraphInstantiateWithFlags(graph, 0), "cudaGraphInstantiate")
        self._graphs.append((graph, executable))
        return executable

    def launch_graph(self, graph: Any) -> None:
        self._check(self._rt.cudaGraphLaunch(graph, self._stream), "cudaGraphLaunch")

    def close(self) -> None:
        for graph, executable in self._graphs:
            self._rt.cudaGraphExecDestroy(executable)
            self._rt.cudaGraphDestroy(graph)
        for ptr in self._device:
            self._rt.cudaFree(ptr)
        for ptr in self._host:
            self._rt.cudaFreeHost(ptr)
        self._graphs, self._device, self._host = [], [], []
        if self._stream is not None:
            self._rt.cudaStreamDestroy(self._stream)
            self._stream = None


def open_cuda(kind: CudaKind | str = CudaKind.AUTO, need_graphs: bool = False) -> CudaApi:
    """Open device 0 with the chosen binding. AUTO: cuda-python when graphs are needed, else pycuda first."""
    try:
        kind = CudaKind(kind)
    except ValueError:
        raise DdadError(f"unknown CUDA binding {kind!r}: choose auto, pycuda or cuda-python") from None
    if kind is CudaKind.PYCUDA:
        return PycudaApi()
    if kind is CudaKind.CUDA_PYTHON or need_graphs:
        return CudaPythonApi()
    try:
        return PycudaApi()
    except DdadError as pycuda_error:
        try:
            return CudaPythonApi()
        except DdadError:
            raise pycuda_error from None


def query_gpu(kind: CudaKind | str = CudaKind.AUTO) -> GpuInfo:
    """Name and compute capability of CUDA device 0 (one-line DdadError when no binding or device)."""
    api = open_cuda(kind)
    try:
        return api.gpu
    finally:
        api.close()
