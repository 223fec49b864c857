"""FakeCuda: a CUDA device in host memory, standing in for pycuda / cuda-python where no GPU exists.

It keeps the behaviour that the runner's correctness depends on: device memory is separate from host
memory (only copies move data), work queued on the stream runs only at `synchronize()` (so reading
results before synchronising returns stale data, as on a GPU), and graph capture records the queued
work instead of running it, to be replayed by `launch_graph`.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ddad_edge.runtime.trt_compat import GpuInfo


class FakeCuda:
    """Implements ddad_edge.runtime.cuda_api.CudaApi over numpy buffers."""

    def __init__(self, gpu: GpuInfo = GpuInfo("Orin", "8.7"), supports_graphs: bool = True) -> None:
        self.gpu = gpu
        self.supports_graphs = supports_graphs
        self.stream_handle = 0x5EED
        self._memory: dict[int, np.ndarray] = {}
        self._next = 0x10000
        self._queue: list[Callable[[], None]] = []
        self._capture: list[Callable[[], None]] | None = None
        self.closed = False
        self.syncs = 0
        self.graph_launches = 0
        self.captures = 0
        self.pinned_allocations = 0

    # memory
    def pinned_empty(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        self.pinned_allocations += 1
        return np.zeros(shape, dtype=dtype)

    def device_alloc(self, nbytes: int) -> int:
        ptr = self._next
        self._memory[ptr] = np.zeros(max(int(nbytes), 1), dtype=np.uint8)
        self._next += (int(nbytes) + 0xFFF) // 0x1000 * 0x1000 + 0x1000
        return ptr

    def read(self, ptr: int, nbytes: int) -> np.ndarray:
        """Bytes at a device address (what a kernel would read)."""
        return self._memory[ptr][:nbytes].copy()

    def write(self, ptr: int, data: np.ndarray) -> None:
        """Bytes to a device address (what a kernel would write)."""
        raw = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
        buffer = self._memory[ptr]
        if raw.size > buffer.size:
            raise AssertionError(f"write of {raw.size} bytes overflows a {buffer.size}-byte device buffer")
        buffer[:raw.size] = raw

    # stream
    def enqueue(self, stream_handle: int, work: Callable[[], None]) -> None:
        """Queue work on the stream (or record it while capturing)."""
        if stream_handle != self.stream_handle:
            raise AssertionError(f"work queued on stream {stream_handle:#x}, the runner's stream is "
                                 f"{self.stream_handle:#x}")
        (self._capture if self._capture is not None else self._queue).append(work)

    def copy_to_device(self, device_ptr: int, host: np.ndarray) -> None:
        snapshot_src = host  # read at execution time, like an async copy from pinned memory
        self.enqueue(self.stream_handle, lambda: self.write(device_ptr, snapshot_src))

    def copy_to_host(self, host: np.ndarray, device_ptr: int) -> None:
        def work() -> None:
            host.reshape(-1).view(np.uint8)[...] = self.read(device_ptr, host.nbytes)
        self.enqueue(self.stream_handle, work)

    def synchronize(self) -> None:
        self.syncs += 1
        queue, self._queue = self._queue, []
        for work in queue:
            work()

    # graphs
    def begin_capture(self) -> None:
        if not self.supports_graphs:
            raise AssertionError("begin_capture on a FakeCuda without graphs")
        self._capture = []

    def end_capture(self) -> list[Callable[[], None]]:
        graph, self._capture = self._capture, None
        self.captures += 1
        return graph

    def launch_graph(self, graph: list[Callable[[], None]]) -> None:
        self.graph_launches += 1
        self._queue.extend(graph)

    def close(self) -> None:
        self.closed = True
        self._memory.clear()
