"""`ddad-edge doctor`: what this machine has for running an inspection line, and what to fix.

It reports and never fails: Python, numpy, OpenCV (and whether it was built with GStreamer and V4L2),
ONNX Runtime and its providers, OpenVINO with its devices and the CPU's BF16/AMX/VNNI support,
TensorRT, the CUDA device and its compute capability, pycuda /
cuda-python, the Jetson model and power mode, GPIO chips and cameras with their permissions, and whether
`ddad-edge build` can hold a graph to the installed TensorRT's parser rules (onnx, the support table it
uses) and, given a bundle, what those rules say about its graph. Each problem comes with its fix, and a
summary says what is missing for TensorRT.

It stands with deploy/ because it holds this machine to deploy's TensorRT parser rules (trt_rules);
`ddad-edge doctor` (cli/device.py) prints its findings.
"""

from __future__ import annotations

import glob
import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from ddad_edge.device_tree import JETSON_MODEL_FILE, on_jetson
from ddad_edge.lazy_import import SYSTEM_OPENCV_FIX, OpenCvUnavailable, import_cv2
from ddad_edge.runtime.trt_compat import INSTALL_HINT, TrtVersion

NO_GSTREAMER_FIX = ("only GStreamer pipelines need it (V4L2 cameras, files and URLs work): an OpenCV built with "
                    "GStreamer, e.g. the distribution's python3-opencv in a --system-site-packages venv")
ORT_INSTALL = "pip install onnxruntime (on a Jetson: the onnxruntime-gpu wheel for your JetPack)"


class Status(str, Enum):
    """How a check came out."""

    OK = "ok"
    INFO = "info"  # absent but optional here
    WARN = "warn"  # present but limited
    MISSING = "missing"


@dataclass(frozen=True)
class Finding:
    """One line of the doctor's report."""

    name: str
    status: Status
    detail: str
    fix: str = ""


def opencv_capabilities(build_info: str) -> dict[str, bool]:
    """GStreamer and V4L2 support from cv2.getBuildInformation() text."""
    def flag(pattern: str) -> bool:
        match = re.search(pattern + r"\s*:\s*(\S+)", build_info, flags=re.IGNORECASE | re.MULTILINE)
        return bool(match) and match.group(1).upper().startswith("YES")

    return {"gstreamer": flag(r"^\s*GStreamer"), "v4l2": flag(r"^\s*v4l/v4l2")}


def check_python() -> list[Finding]:
    import numpy

    py = platform.python_version()
    found = [Finding("python", Status.OK, f"{py} ({platform.machine()})")]
    found.append(Finding("numpy", Status.OK, numpy.__version__))
    return found


def check_opencv(model_file: Path = JETSON_MODEL_FILE) -> Finding:
    """cv2: missing, installed but broken (its first error line and the fix), or its GStreamer/V4L2 support.

    Fixes depend on the platform: a Jetson keeps JetPack's OpenCV (GStreamer, NumPy 1.x); elsewhere pip's.
    """
    jetson = on_jetson(model_file)
    try:
        cv2 = import_cv2("the doctor", jetson=jetson)
    except OpenCvUnavailable as exc:  # the doctor reports it as a finding instead of stopping
        return Finding("opencv", Status.MISSING, exc.detail, exc.fix)
    caps = opencv_capabilities(cv2.getBuildInformation())
    detail = (f"{cv2.__version__}, GStreamer {'yes' if caps['gstreamer'] else 'no'}, "
              f"V4L2 {'yes' if caps['v4l2'] else 'no'}")
    if not caps["gstreamer"]:
        return Finding("opencv", Status.WARN, detail + " (no CSI cameras or GStreamer pipelines)",
                       SYSTEM_OPENCV_FIX if jetson else NO_GSTREAMER_FIX)
    return Finding("opencv", Status.OK, detail)


def check_onnxruntime() -> Finding:
    try:
        import onnxruntime as ort
    except ImportError:
        return Finding("onnxruntime", Status.MISSING, "not installed", ORT_INSTALL)
    return Finding("onnxruntime", Status.OK, f"{ort.__version__}, providers {', '.join(ort.get_available_providers())}")


CPUINFO = Path("/proc/cpuinfo")
# ISA extensions that decide what OpenVINO's CPU plugin can do fast: BF16 inference (AVX512_BF16, AMX tiles)
# and INT8 dot products (VNNI). ONNX Runtime's CPU provider uses VNNI but not AMX.
CPU_FEATURES = ("avx512_bf16", "amx_bf16", "amx_int8", "avx512_vnni", "avx_vnni")


def cpu_features(cpuinfo: Path = CPUINFO) -> tuple[str, ...] | None:
    """Which of CPU_FEATURES the first CPU's flags list, or None where /proc/cpuinfo is not readable."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    match = re.search(r"^(?:flags|Features)\s*:\s*(.*)$", text, flags=re.MULTILINE)
    flags = set(match.group(1).split()) if match else set()
    return tuple(f for f in CPU_FEATURES if f in flags)


def check_openvino(cpuinfo: Path = CPUINFO) -> Finding:
    """OpenVINO's version and devices, and the CPU features that decide its BF16 and INT8 speed."""
    features = cpu_features(cpuinfo)
    isa = ("CPU features unknown" if features is None else
           f"CPU {'has ' + ', '.join(features) if features else 'has none of ' + ', '.join(CPU_FEATURES)}")
    try:
        import openvino as ov
    except ImportError:
        return Finding("openvino", Status.INFO, f"not installed ({isa})",
                       "pip install openvino, for x86 line PCs (ddad-edge run --backend openvino)")
    core = ov.Core()
    devices = list(core.available_devices)
    try:
        caps = ", ".join(str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # no CPU plugin
        caps = "?"
    bf16 = "BF16 yes" if "BF16" in caps else "BF16 no"
    return Finding("openvino", Status.OK, f"{ov.__version__.split('-')[0]}, devices {', '.join(devices) or 'none'}; "
                   f"CPU capabilities {caps} ({bf16}); {isa}")


def check_tensorrt() -> Finding:
    try:
        import tensorrt as trt
    except ImportError:
        return Finding("tensorrt", Status.MISSING, "not installed", INSTALL_HINT)
    raw = "?"
    try:
        raw = str(trt.__version__)
        version = TrtVersion.parse(raw)
        family = version.family.value
    except Exception as exc:  # a too-old or odd version is reported, not raised
        return Finding("tensorrt", Status.WARN, f"{raw}: {exc}", "use TensorRT 8.6+ (JetPack 6.0 or newer)")
    return Finding("tensorrt", Status.OK, f"{version} (API family {family}, DLA "
                   f"{'yes' if version.has_dla else 'no'}, legacy INT8 calibration "
                   f"{'yes' if version.has_legacy_calibration else 'no'})")


def check_cuda_bindings() -> list[Finding]:
    found = []
    try:
        import pycuda  # noqa: F401
        import pycuda.driver  # noqa: F401

        found.append(Finding("pycuda", Status.OK, getattr(pycuda, "VERSION_TEXT", "installed")))
    except ImportError:
        found.append(Finding("pycuda", Status.MISSING, "not installed", "pip install pycuda (with CUDA on PATH)"))
    except Exception as exc:  # pycuda imports but its driver library fails to load
        found.append(Finding("pycuda", Status.WARN, f"installed but broken: {str(exc).splitlines()[0]}",
                             "check the NVIDIA driver / CUDA libraries"))
    try:
        try:
            from cuda.bindings import runtime  # noqa: F401
        except ImportError:
            from cuda import cudart  # noqa: F401
        found.append(Finding("cuda-python", Status.OK, "installed (CUDA-graph replay available)"))
    except ImportError:
        found.append(Finding("cuda-python", Status.INFO, "not installed (optional: CUDA-graph replay)",
                             "pip install cuda-python"))
    return found


def check_cuda_device() -> Finding:
    from ddad_edge.errors import DdadError
    from ddad_edge.runtime.cuda_api import query_gpu

    try:
        gpu = query_gpu()
        return Finding("cuda device", Status.OK, f"{gpu.name}, compute capability {gpu.compute_capability}")
    except DdadError as binding_error:
        reason = str(binding_error)
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10)
            line = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else ""
        except (OSError, subprocess.TimeoutExpired):
            line = ""
        if line:
            return Finding("cuda device", Status.OK, f"{line} (nvidia-smi; Python bindings: {reason})")
    return Finding("cuda device", Status.MISSING, "no CUDA device found",
                   "TensorRT needs an NVIDIA GPU (a Jetson or a CUDA PC) with its driver")


def check_jetson(model_file: Path = JETSON_MODEL_FILE) -> list[Finding]:
    try:
        model = model_file.read_bytes().decode(errors="replace").rstrip("\x00").strip()
    except OSError:
        return [Finding("jetson", Status.INFO, "not a Jetson (no /proc/device-tree/model)")]
    found = [Finding("jetson", Status.OK, model)]
    nvpmodel = shutil.which("nvpmodel")
    if not nvpmodel:
        found.append(Finding("power mode", Status.INFO, "nvpmodel not found",
                             "it comes with JetPack (nvidia-l4t-tools)"))
        return found
    try:
        out = subprocess.run([nvpmodel, "-q"], capture_output=True, text=True, timeout=10)
        text = " ".join(out.stdout.split()) or out.stderr.strip()
        found.append(Finding("power mode", Status.OK if out.returncode == 0 else Status.WARN, text[:120],
                             "" if out.returncode == 0 else "run `sudo nvpmodel -q` to read it"))
    except (OSError, subprocess.TimeoutExpired) as exc:
        found.append(Finding("power mode", Status.WARN, f"nvpmodel -q failed: {exc}"))
    return found


def check_devices(pattern: str, label: str, fix_group: str, absent: str) -> list[Finding]:
    """Device nodes matching `pattern`, each with whether this user can read and write it."""
    paths = sorted(glob.glob(pattern))
    if not paths:
        return [Finding(label, Status.INFO, absent)]
    found = []
    for path in paths:
        if os.access(path, os.R_OK | os.W_OK):
            found.append(Finding(label, Status.OK, f"{path} (read/write)"))
        else:
            found.append(Finding(label, Status.WARN, f"{path} (no read/write permission for this user)",
                                 f"sudo usermod -aG {fix_group} $USER, then log in again"))
    return found


def _installed_tensorrt() -> TrtVersion | None:
    """The installed TensorRT's version when it is one ddad-edge builds with (8.6+), else None."""
    try:
        import tensorrt as trt

        version = TrtVersion.parse(str(trt.__version__))
        version.family  # noqa: B018 - refuses versions before 8.6
        return version
    except Exception:  # noqa: BLE001 - absent or odd: check_tensorrt reports why
        return None


def check_parser_rules(bundle: Path | None = None) -> list[Finding]:
    """onnx (build checks the graph with it before parsing), the onnx-tensorrt support table the checker
    uses for the installed TensorRT, and with `bundle` the verdict of that version's rules on its graph."""
    from ddad_edge.deploy.trt_rules import support_tables, table_for

    version = _installed_tensorrt()
    try:
        import onnx
    except ImportError:
        needed = version is not None  # build refuses to run without it
        return [Finding("onnx", Status.MISSING if needed else Status.INFO,
                        "not installed: no check of a graph against TensorRT's parser rules"
                        + ("; `ddad-edge build` needs it" if needed else " (only `build` needs it)"),
                        "pip install onnx")]
    found = [Finding("onnx", Status.OK, f"{onnx.__version__} (checks graphs against TensorRT's parser rules)")]
    if version is None:
        tables = ", ".join(t.branch for t in support_tables())
        found.append(Finding("parser rules", Status.INFO, f"no TensorRT here; tables of onnx-tensorrt {tables}"))
    else:
        table, exact = table_for(version)
        found.append(Finding("parser rules", Status.OK, f"TensorRT {version.major}.{version.minor}: {table.source}"
                             + ("" if exact else " (the nearest table; a real parse in `ddad-edge build` decides)")))
    if bundle is not None:
        found.append(check_bundle_rules(Path(bundle), version))
    return found


def check_bundle_rules(bundle: Path, version: TrtVersion | None) -> Finding:
    """The installed TensorRT's parser rules on the bundle's graph; without TensorRT, what export recorded."""
    from ddad_edge.bundle import read_bundle
    from ddad_edge.deploy.trt_rules import check_trt_rules
    from ddad_edge.errors import DdadError

    try:
        read = read_bundle(bundle)
        if version is None:
            recorded = read.manifest.get("tensorrt_rules") or {}
            said = ", ".join(f"{v} {'ok' if r.get('ok') else 'fails'}" for v, r in recorded.items()) or "nothing"
            return Finding("bundle", Status.INFO, f"{bundle}: no TensorRT here; export recorded {said}")
        verdict = check_trt_rules(read.model_path, version)
    except DdadError as exc:
        return Finding("bundle", Status.MISSING, str(exc), "copy the bundle again, or export it again")
    if not verdict.ok:
        return Finding("bundle", Status.MISSING, verdict.first_line(str(read.model_path)),
                       "export it again (`ddad-edge export --target tensorrt` refuses such a graph)")
    plugins = f"; plugins {', '.join(verdict.plugins)}" if verdict.plugins else ""
    return Finding("bundle", Status.OK, f"{read.model_path} meets TensorRT {verdict.tensorrt}'s parser rules{plugins}")


NO_GPIO_CHIP = "no /dev/gpiochip* (not a Jetson?): run with --gpio sim (simulated) or --gpio none"


def run_doctor(bundle: Path | None = None) -> list[Finding]:
    """Every check, in report order; with `bundle`, also the installed TensorRT's parser rules on its graph."""
    findings = check_python()
    findings += [check_opencv(), check_onnxruntime(), check_openvino(), check_tensorrt()]
    findings += check_parser_rules(bundle)
    findings += check_cuda_bindings()
    findings.append(check_cuda_device())
    findings += check_jetson()
    findings += check_devices("/dev/gpiochip*", "gpio", "gpio", NO_GPIO_CHIP)
    findings += check_devices("/dev/video*", "camera", "video", "no /dev/video* cameras (files and URLs still work)")
    return findings


def tensorrt_summary(findings: list[Finding]) -> str:
    """One line: ready for TensorRT, or exactly what is missing."""
    by_name = {f.name: f for f in findings}
    missing = []
    if by_name.get("tensorrt") is None or by_name["tensorrt"].status is not Status.OK:
        missing.append("tensorrt")
    if by_name.get("onnx") is not None and by_name["onnx"].status is Status.MISSING:
        missing.append("onnx")
    cuda_ok = any(by_name.get(n) is not None and by_name[n].status is Status.OK for n in ("pycuda", "cuda-python"))
    if not cuda_ok:
        missing.append("pycuda (or cuda-python)")
    if by_name.get("cuda device") is None or by_name["cuda device"].status is not Status.OK:
        missing.append("a CUDA device")
    if not missing:
        return "TensorRT: ready (ddad-edge build, then ddad-edge selftest --backend tensorrt)"
    ort = by_name.get("onnxruntime")
    if ort is not None and ort.status is Status.OK:
        fallback = "the ONNX Runtime backend works (ddad-edge selftest --backend onnxruntime)"
    else:
        fallback = f"the ONNX Runtime backend needs onnxruntime too: {ORT_INSTALL}"
    return f"TensorRT: not available here, missing {', '.join(missing)}; {fallback}"


def format_findings(findings: list[Finding]) -> list[str]:
    """Report lines: status, name, detail, and the fix indented under a problem."""
    lines = []
    for f in findings:
        lines.append(f"[{f.status.value:>7}] {f.name:<12} {f.detail}")
        if f.fix and f.status is not Status.OK:
            lines.append(f"{'':>10} fix: {f.fix}")
    lines.append(tensorrt_summary(findings))
    return lines
