"""TensorRT build profiles: one frozen dataclass per target, loaded strictly from export/NAME.yaml.

A name is looked up in ./export/NAME.yaml first (a user's own profiles), then in the profiles shipped with
ddad-edge (the repository's export/, inside the package once installed: yaml_folders.py; agx-orin,
orin-nx, orin-nano, x86-gpu). The file is read by the one strict loader (yaml_strict.py), as configs and
recipes are: an unknown key or a wrong type is one line naming the file and the key.

A profile says how to build an engine on one kind of device (workspace, optimisation level, batch
range, DLA, precision). Precision normally follows the bundle (the ONNX file carries it); a profile can
ask for a different one only where TensorRT still has the builder flags for it (8.6-10.x). It also names
the TensorRT versions its target runs (`tensorrt`): `ddad-edge export` holds the graph to the ONNX parser
rules of every version the shipped profiles name, and of the `--profile` it was given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from ddad_edge.device_tree import JETSON_MODEL_FILE
from ddad_edge.errors import DdadError
from ddad_edge.runtime.trt_compat import TrtVersion
from ddad_edge.yaml_folders import search_folders, shipped_folder
from ddad_edge.yaml_strict import from_dict, naming_the_file, read_yaml_mapping

PROFILE_DIR = "export"
PROFILE = "build profile"  # how errors name a profile file


class ProfilePrecision(str, Enum):
    """The precision a profile builds at. BUNDLE: whatever the bundle's ONNX file carries."""

    BUNDLE = "bundle"
    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"  # on an FP32 bundle: TensorRT's legacy implicit calibration (8.6-10.x only)


class HardwareCompatibility(str, Enum):
    """TensorRT's hardware compatibility level (x86 Ampere+ only; not on Jetson)."""

    NONE = "none"
    AMPERE_PLUS = "ampere_plus"


@dataclass(frozen=True)
class BuildProfile:
    """How to build an engine for one target. Sizes in MiB; batch is the engine's dynamic batch range."""

    name: str = "default"
    description: str = ""
    precision: ProfilePrecision = ProfilePrecision.BUNDLE
    workspace_mib: int = 1024  # builder scratch memory limit (MemoryPoolType.WORKSPACE)
    optimization_level: int = 3  # builder_optimization_level 0-5: higher builds longer, may run faster
    opt_batch: int = 1  # batch the kernels are tuned for
    max_batch: int = 1  # largest batch the engine accepts (minimum is always 1)
    dla_core: int = -1  # -1: GPU only; 0/1: run on that DLA core, layers it cannot run fall back to the GPU
    hardware_compatibility: HardwareCompatibility = HardwareCompatibility.NONE
    timing_cache: bool = True  # keep kernel timings in the bundle so a rebuild takes seconds
    calibration_batch: int = 8  # batch size of the legacy INT8 calibrator
    # TF32 for FP32 layers on Ampere and later (TensorRT enables it by default): faster, but the FP32
    # layers then multiply 10-bit mantissas, so an FP32 bundle's engine no longer matches its ONNX Runtime
    # reference within the bundle's tolerance (`selftest` fails). Off unless asked for.
    tf32: bool = False
    # The TensorRT versions (major.minor, quoted) this target runs: what an export checks the graph against.
    tensorrt: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # The messages name the key; the loader leads them with the file (`build profile export/x.yaml: ...`).
        if not 0 <= self.optimization_level <= 5:
            raise DdadError(f"optimization_level must be 0-5, got {self.optimization_level}")
        if self.workspace_mib < 16:
            raise DdadError("workspace_mib must be at least 16")
        if not 1 <= self.opt_batch <= self.max_batch:
            raise DdadError(f"need 1 <= opt_batch <= max_batch, got opt_batch={self.opt_batch}, "
                            f"max_batch={self.max_batch}")
        if self.dla_core < -1:
            raise DdadError("dla_core is -1 (none) or a core index")
        if self.calibration_batch < 1:
            raise DdadError("calibration_batch must be at least 1")
        for text in self.tensorrt:
            if not re.fullmatch(r"\d+\.\d+", text):
                raise DdadError(f"tensorrt lists versions as major.minor in quotes (\"10.3\"), got {text!r}")
            TrtVersion.parse(text).family  # noqa: B018 - refuses versions before 8.6 in one line


def load_build_profile(name_or_path: str | Path) -> BuildProfile:
    """A profile from a YAML path, or by name from export/NAME.yaml. Unknown keys are errors."""
    text = str(name_or_path)
    path = Path(text)
    if not path.is_file():
        if path.suffix or "/" in text:
            raise DdadError(f"build profile not found: {text}")
        folders = search_folders(PROFILE_DIR)
        found = [d / f"{text}.yaml" for d in folders if (d / f"{text}.yaml").is_file()]
        if not found:
            known = sorted({p.stem for d in folders if d.is_dir() for p in d.glob("*.yaml")})
            raise DdadError(f"no build profile named '{text}' (looked in "
                            f"{', '.join(str(d) for d in folders)}); known: {', '.join(known) or 'none'}")
        path = found[0]
    data = read_yaml_mapping(path, PROFILE)
    data.setdefault("name", path.stem)
    with naming_the_file(PROFILE, path):
        versions = data.get("tensorrt")
        if isinstance(versions, list) and any(isinstance(v, (int, float)) and not isinstance(v, bool)
                                              for v in versions):
            # YAML reads 10.10 as the number 10.1: a version must stay text
            raise DdadError(f"write the tensorrt versions in quotes, e.g. [\"8.6\", \"10.3\"]; got {versions}")
        return from_dict(BuildProfile, data)


def shipped_profiles() -> list[BuildProfile]:
    """Every profile shipped with ddad-edge (export/*.yaml), by name."""
    return [load_build_profile(p) for p in sorted(shipped_folder(PROFILE_DIR).glob("*.yaml"))]


def profile_tensorrt_versions(extra: BuildProfile | None = None) -> tuple[str, ...]:
    """The TensorRT versions (major.minor, oldest first) the shipped profiles and `extra` name: the versions
    an export holds its graph to."""
    named = {v for p in [*shipped_profiles(), *([extra] if extra else [])] for v in p.tensorrt}
    return tuple(sorted(named, key=TrtVersion.parse))


def detect_profile_name(model_file: Path = JETSON_MODEL_FILE) -> str:
    """The profile for this machine from the Jetson model string; 'x86-gpu' when not a Jetson."""
    try:
        model = model_file.read_bytes().decode(errors="replace").rstrip("\x00").lower()
    except OSError:
        return "x86-gpu"
    if "orin" in model and "agx" in model:
        return "agx-orin"
    if "orin" in model and "nx" in model:
        return "orin-nx"
    if "orin" in model and "nano" in model:
        return "orin-nano"
    return "agx-orin" if "orin" in model else "x86-gpu"
