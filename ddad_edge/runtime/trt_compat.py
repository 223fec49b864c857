"""TensorRT versions: parsing, API families, and the tag that says which family a code path is for.

TensorRT's Python API changed at two major versions, and a Jetson's JetPack decides which one a user
has (JetPack 6.0: 8.6, 6.1/6.2: 10.3, 7.2: 10.16; 11.4 on JetPack 7.2.2+). The code that touches
TensorRT keeps one function per family where the families differ, tagged with `@api_path(...)`. A test
reads these tags with `ast` and checks every TensorRT attribute such a function touches against the
names extracted from that family's real bindings (tests/tensorrt_names/); an untagged function must
work on every family. The tag does nothing at run time beyond recording the families.

Variables that hold TensorRT objects use the names in `TRT_OBJECT_NAMES` (the module is always `trt`),
so the test knows which attribute accesses are TensorRT's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, TypeVar

from ddad_edge.errors import DdadError, missing_package

F = TypeVar("F", bound=Callable[..., Any])

# Names of variables (and `self._<name>` attributes) that hold TensorRT objects; the API check reads them.
TRT_OBJECT_NAMES = frozenset({
    "trt", "logger", "builder", "network", "config", "parser", "profile", "timing_cache", "runtime",
    "engine", "context", "serialized", "trt_input", "calibrator_base", "layer",
})

INSTALL_HINT = ("on a Jetson keep JetPack's TensorRT (sudo apt install python3-libnvinfer) and make the venv "
                "with --system-site-packages; on x86: pip install tensorrt")


class ApiFamily(str, Enum):
    """TensorRT Python API families that need different code."""

    TRT8 = "8"  # 8.6: EXPLICIT_BATCH at network creation, precision builder flags, INT8 calibrators
    TRT10 = "10"  # 10.x: always explicit batch, STRONGLY_TYPED available, precision flags and calibrators kept
    TRT11 = "11"  # 11.x: strongly typed always, precision flags and INT8 calibrators removed


def api_path(*families: ApiFamily) -> Callable[[F], F]:
    """Tag a function as the code path for these TensorRT API families (checked against their bindings)."""
    if not families or not all(isinstance(f, ApiFamily) for f in families):
        raise TypeError("api_path takes one or more ApiFamily members")

    def tag(fn: F) -> F:
        fn.__trt_families__ = frozenset(families)  # type: ignore[attr-defined]
        return fn

    return tag


@dataclass(frozen=True, order=True)
class TrtVersion:
    """A TensorRT version as major.minor.patch (a fourth build number is ignored: engines match on three)."""

    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> "TrtVersion":
        match = re.fullmatch(r"\s*(\d+)\.(\d+)(?:\.(\d+))?(?:\.\d+)*(?:[.+-]?\w+)?\s*", str(text))
        if not match:
            raise DdadError(f"cannot read the TensorRT version {text!r}")
        return cls(int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def family(self) -> ApiFamily:
        """The API family of this version; versions before 8.6 are refused."""
        if (self.major, self.minor) < (8, 6):
            raise DdadError(f"TensorRT {self} is too old: ddad-edge needs 8.6 or newer (JetPack 6.0+)")
        if self.major < 10:
            return ApiFamily.TRT8
        if self.major == 10:
            return ApiFamily.TRT10
        return ApiFamily.TRT11

    @property
    def strongly_typed_by_file(self) -> bool:
        """Whether an FP16/INT8 ONNX file is built strongly typed: wherever STRONGLY_TYPED exists (every 10.x;
        always on 11). In weak typing the builder picks each layer's precision and the file's FP32 layers
        would not hold."""
        return self.major >= 10

    @property
    def has_dla(self) -> bool:
        """DLA support: up to 10.x, absent in 11.0-11.3, back in 11.4 (AGX Orin)."""
        return self.major < 11 or (self.major, self.minor) >= (11, 4)

    @property
    def has_legacy_calibration(self) -> bool:
        """Implicit INT8 calibration (IInt8EntropyCalibrator2): 8.6-10.x only."""
        return self.major < 11


def import_tensorrt() -> Any:
    """Import the `tensorrt` module, or a one-line DdadError that says how to get it."""
    try:
        import tensorrt
    except ImportError:
        raise missing_package("tensorrt", "building and running TensorRT engines", INSTALL_HINT) from None
    return tensorrt


def tensorrt_version(trt: Any) -> TrtVersion:
    """The version of an imported TensorRT module (checked to be a supported family)."""
    version = TrtVersion.parse(trt.__version__)
    version.family  # noqa: B018 - refuses versions before 8.6 with one line
    return version


def slug(text: str) -> str:
    """A GPU name made safe for a file name: 'NVIDIA GeForce RTX 4090' -> 'nvidia-geforce-rtx-4090'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "gpu"


@dataclass(frozen=True)
class GpuInfo:
    """The CUDA device an engine is built for or runs on.

    On a Jetson every Orin module reports the GPU name 'Orin' and sm 8.7, so the module's device-tree
    model string, its SM count and its memory are part of the identity: an engine tuned on an AGX Orin
    (16 SMs) is not the engine for an Orin NX or Nano.
    """

    name: str  # as the driver reports it, e.g. 'Orin'
    compute_capability: str  # 'major.minor', e.g. '8.7'
    sm_count: int = 0  # streaming multiprocessors; 0: not known
    memory_mib: int = 0  # device memory (on a Jetson: the memory shared with the CPU); 0: not known
    module: str = ""  # the Jetson module's device-tree model string; '' off a Jetson

    @property
    def sm(self) -> str:
        return "sm" + self.compute_capability.replace(".", "")

    @property
    def memory_gib(self) -> int:
        """Memory rounded to GiB: what tells modules apart (carve-outs move the exact MiB by a few)."""
        return round(self.memory_mib / 1024)

    @property
    def identity(self) -> str:
        """The device part of engine and timing-cache names: module (or GPU), sm, SM count, memory."""
        parts = [slug(self.module or self.name), self.sm]
        if self.sm_count:
            parts.append(f"{self.sm_count}sm")
        if self.memory_mib:
            parts.append(f"{self.memory_gib}g")
        return "-".join(parts)

    def describe(self) -> str:
        """'NVIDIA Jetson Orin NX (Orin, sm 8.7, 8 SMs, 16 GiB)' for messages."""
        details = [f"sm {self.compute_capability}", *([f"{self.sm_count} SMs"] if self.sm_count else []),
                   *([f"{self.memory_gib} GiB"] if self.memory_mib else [])]
        head = f"{self.module} ({self.name}, " if self.module else f"{self.name} ("
        return head + ", ".join(details) + ")"


def engine_file_name(gpu: GpuInfo, version: TrtVersion) -> str:
    """`model.<device identity>-trt<version>.engine`: engines are valid for one device and one TensorRT."""
    return f"model.{gpu.identity}-trt{version}.engine"


def timing_cache_file_name(gpu: GpuInfo, version: TrtVersion) -> str:
    """The persistent timing cache beside the engine (timing data are per device and TensorRT version)."""
    return f"timing.{gpu.identity}-trt{version}.cache"
