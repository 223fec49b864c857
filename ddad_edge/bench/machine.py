"""What a benchmark ran on: CPU and its estimated peak, memory, GPU and Jetson power mode, versions.

The CPU's peak is an estimate, labelled as one: cores × clock × FP32 FLOPs per cycle from the vector
units its flags announce (AVX-512: 2 FMA units × 16 lanes × 2; AVX2+FMA: 2 × 8 × 2; Armv8 NEON: 2 × 4 × 2).
Under a hypervisor the clock is the one it reports (often the base clock) and a "core" may be a
hyper-thread of the host, so the real peak can differ either way.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from ddad_edge.device_tree import JETSON_MODEL_FILE

VERSIONED = ("numpy", "onnxruntime", "onnxruntime-gpu", "opencv-python-headless", "opencv-python", "torch",
             "tensorrt")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def cpu_cores() -> int:
    """CPUs this process may run on (its affinity), not the host's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def cpu_flags(cpuinfo: str) -> set[str]:
    """The feature flags of the first CPU in /proc/cpuinfo text (x86 `flags`, Arm `Features`)."""
    match = re.search(r"^(?:flags|Features)\s*:\s*(.*)$", cpuinfo, re.M)
    return set(match.group(1).split()) if match else set()


def cpu_mhz(cpuinfo: str) -> float | None:
    """The highest clock the system reports: cpufreq's maximum, else /proc/cpuinfo's `cpu MHz`."""
    top = _read(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")).strip()
    if top.isdigit():
        return int(top) / 1000
    values = [float(v) for v in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", cpuinfo, re.M)]
    return max(values) if values else None


def fp32_flops_per_cycle(flags: set[str], machine: str) -> tuple[int, str]:
    """FP32 FLOPs per cycle per core the flags allow, and the assumption behind the number."""
    if machine in ("aarch64", "arm64"):
        return 16, "Armv8 NEON: 2 FMA pipes x 4 lanes x 2"
    if "avx512f" in flags:
        return 64, "AVX-512: 2 FMA units x 16 lanes x 2 (some parts have 1 unit: then half)"
    if "avx2" in flags and "fma" in flags:
        return 32, "AVX2+FMA: 2 FMA units x 8 lanes x 2"
    if "avx" in flags:
        return 16, "AVX: 8-lane add + 8-lane multiply"
    return 8, "SSE: 4-lane add + 4-lane multiply"


def cpu_peak(cpuinfo: str | None = None, machine: str | None = None, cores: int | None = None) -> dict[str, Any]:
    """The CPU's estimated FP32 peak in GFLOP/s (and INT8 where VNNI is present), with its assumptions."""
    cpuinfo = _read(Path("/proc/cpuinfo")) if cpuinfo is None else cpuinfo
    machine = machine or platform.machine()
    cores = cores or cpu_cores()
    flags = cpu_flags(cpuinfo)
    mhz = cpu_mhz(cpuinfo)
    per_cycle, why = fp32_flops_per_cycle(flags, machine)
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M)
    out: dict[str, Any] = {
        "model": model.group(1).strip() if model else platform.processor() or machine,
        "machine": machine, "cores": cores, "mhz": mhz, "fp32_flops_per_cycle": per_cycle,
        "vector_units": why,
        "features": sorted(flags & {"avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16",
                                    "amx_int8", "amx_bf16", "asimd", "asimddp"}),
        "fp32_peak_gflops": round(cores * mhz / 1e3 * per_cycle, 1) if mhz else None,
        "estimate": True,
    }
    if mhz and ("avx512_vnni" in flags or "avx_vnni" in flags):
        # VNNI: one instruction does 4 int8 multiply-adds per 32-bit lane, 4x the FP32 rate
        out["int8_peak_gops"] = round(4 * out["fp32_peak_gflops"], 1)
    if mhz and "avx512_bf16" in flags:
        # AVX512_BF16 (VDPBF16PS): 2 bf16 multiply-adds per 32-bit lane, 2x the FP32 rate (AMX tiles not counted)
        out["bf16_peak_gflops"] = round(2 * out["fp32_peak_gflops"], 1)
    return out


PEAK_KEYS = {"INT8 VNNI": "int8_peak_gops", "BF16": "bf16_peak_gflops", "FP32": "fp32_peak_gflops"}


def peak_label(cpu: dict[str, Any] | None, precision: str, backend: str = "") -> str | None:
    """Which estimated rate a row's products run at: "INT8 VNNI" for INT8 files, "BF16" for FP32 files in
    OpenVINO's bf16 mode where the CPU has AVX512_BF16, "FP32" for the other FP32 rows; None for FP16 files
    (CPUs with FP16 arithmetic could exceed the FP32 rate, and no FP16 rate is estimated here)."""
    if precision == "int8":
        return "INT8 VNNI"
    if precision != "fp32":
        return None
    return "BF16" if backend == "openvino-bf16" and (cpu or {}).get("bf16_peak_gflops") else "FP32"


def arithmetic_peak(cpu: dict[str, Any] | None, precision: str, backend: str = "") -> float | None:
    """The CPU's estimated peak at `peak_label`'s rate (GOP/s for INT8, else GFLOP/s); None where there is no
    estimate (INT8 without VNNI: older integer instructions have none here; FP16)."""
    label = peak_label(cpu, precision, backend)
    return (cpu or {}).get(PEAK_KEYS[label]) if label else None


def total_memory_mb() -> float | None:
    match = re.search(r"^MemTotal:\s+(\d+) kB", _read(Path("/proc/meminfo")), re.M)
    return round(int(match.group(1)) / 1024, 1) if match else None


def jetson_model() -> str | None:
    """The board's name from the device tree on a Jetson, else None."""
    text = _read(JETSON_MODEL_FILE).strip("\x00\n ")
    return text if "jetson" in text.lower() or "nvidia" in text.lower() else None


def parse_nvpmodel(text: str) -> dict[str, Any] | None:
    """`nvpmodel -q` output ("NV Power Mode: MAXN" then the mode id) → {"name", "id"}."""
    match = re.search(r"NV Power Mode:\s*(\S+)", text)
    if not match:
        return None
    mode = re.search(r"^\s*(\d+)\s*$", text[match.end():], re.M)
    return {"name": match.group(1), "id": int(mode.group(1)) if mode else None}


def power_mode() -> dict[str, Any] | None:
    """The Jetson power mode from `nvpmodel -q`, or None where nvpmodel is absent or says nothing."""
    exe = shutil.which("nvpmodel")
    if not exe:
        return None
    try:
        done = subprocess.run([exe, "-q"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_nvpmodel(done.stdout + done.stderr)


def gpu_memory_used_mb(pid: int | None = None) -> float | None:
    """GPU memory this process holds (MiB) per nvidia-smi, or None where that is not readable
    (no nvidia-smi; a Jetson, whose GPU shares host memory: see the peak RSS and tegrastats' RAM)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    pid = os.getpid() if pid is None else pid
    try:
        done = subprocess.run([exe, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in done.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0] == str(pid) and parts[1].replace(".", "").isdigit():
            return float(parts[1])
    return None


def gpus() -> list[str]:
    """Names of the NVIDIA GPUs nvidia-smi lists (empty where there is none or no nvidia-smi)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        done = subprocess.run([exe, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def versions() -> dict[str, str]:
    """Installed versions of the packages that decide the numbers (those present)."""
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def describe_machine() -> dict[str, Any]:
    """Everything above, as one JSON-safe dict."""
    out: dict[str, Any] = {"host": platform.node(), "os": f"{platform.system()} {platform.release()}",
                           "cpu": cpu_peak(), "memory_mb": total_memory_mb(), "versions": versions()}
    if "hypervisor" in cpu_flags(_read(Path("/proc/cpuinfo"))):
        out["virtualised"] = True
    board = jetson_model()
    if board:
        out["jetson"] = {"model": board, "power_mode": power_mode()}
    found = gpus()
    if found:
        out["gpus"] = found
    return out


def vector_tier(features: list[str] | set[str]) -> str:
    """The widest x86 vector arithmetic the CPU's features announce ("" for none known): under a hypervisor
    the model name is often only the family ("AMD EPYC"), and AVX2-only and AVX-512 BF16 parts share it."""
    for tier, flag in (("amx", "amx_bf16"), ("avx512-bf16", "avx512_bf16"), ("avx512", "avx512f"), ("avx2", "avx2")):
        if flag in features:
            return tier
    return ""


def machine_slug(info: dict[str, Any]) -> str:
    """A file name for a machine's results: jetson model, or `<arch>-<cores>core-<cpu words>-<vector tier>`."""
    if "jetson" in info:
        name = info["jetson"]["model"]
    else:
        cpu = info["cpu"]
        words = re.sub(r"\(.*?\)|CPU|Processor|@.*", " ", cpu["model"]).split()[:3]
        name = "-".join([cpu["machine"], f"{cpu['cores']}core", *words, vector_tier(cpu.get("features", ()))])
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
