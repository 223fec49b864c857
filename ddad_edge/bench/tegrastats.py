"""Power draw and clocks on a Jetson while a benchmark runs, from `tegrastats`.

tegrastats ships with every Jetson Linux release and prints one line per interval, e.g. (Orin):

  RAM 2449/7620MB (lfb 1x4MB) SWAP 0/3810MB CPU [11%@1510,3%@1510,off,off] EMC_FREQ 1%@2133
  GR3D_FREQ 47%@[1300] VIC_FREQ 729 ... VDD_IN 5832mW/4412mW VDD_CPU_GPU_CV 1520mW/980mW VDD_SOC 1475mW/1398mW

and on older boards (Nano, TX2, Xavier) `GR3D_FREQ 47%@921`, `POM_5V_IN 2446/2446` or `GPU 1234/1100`
(power rails in mW: current/average). The sampler keeps the current values of every line and reports
their mean and maximum over the benchmark. jtop reads the same kernel sources, so tegrastats suffices.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from typing import Any

_RAIL_MW = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)mW/(\d+)mW")
_RAIL_OLD = re.compile(r"\b((?:POM_|VDD_)[A-Z0-9_]+) (\d+)/(\d+)\b")
_GR3D = re.compile(r"\bGR3D_FREQ (\d+)%(?:@\[?(\d+)(?:,\d+)*\]?)?")
_EMC = re.compile(r"\bEMC_FREQ (\d+)%(?:@(\d+))?")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_CPU = re.compile(r"\bCPU \[([^\]]*)\]")


def parse_tegrastats_line(line: str) -> dict[str, float]:
    """One tegrastats line → flat numbers: `power_mw.<RAIL>` (current), `gpu_load_pct`, `gpu_mhz`,
    `emc_load_pct`, `emc_mhz`, `ram_used_mb`, `cpu_load_pct` (mean of online cores), `cpu_mhz` (max)."""
    out: dict[str, float] = {}
    for rail, now, _avg in _RAIL_MW.findall(line) + _RAIL_OLD.findall(line):
        out[f"power_mw.{rail}"] = float(now)
    if m := _GR3D.search(line):
        out["gpu_load_pct"] = float(m.group(1))
        if m.group(2):
            out["gpu_mhz"] = float(m.group(2))
    if m := _EMC.search(line):
        out["emc_load_pct"] = float(m.group(1))
        if m.group(2):
            out["emc_mhz"] = float(m.group(2))
    if m := _RAM.search(line):
        out["ram_used_mb"] = float(m.group(1))
    if m := _CPU.search(line):
        cores = [re.match(r"(\d+)%(?:@(\d+))?", c.strip()) for c in m.group(1).split(",")]
        cores = [c for c in cores if c]  # "off" cores are not running
        if cores:
            out["cpu_load_pct"] = sum(float(c.group(1)) for c in cores) / len(cores)
            freqs = [float(c.group(2)) for c in cores if c.group(2)]
            if freqs:
                out["cpu_mhz"] = max(freqs)
    return out


def summarise(samples: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """{quantity: {"mean", "max", "n"}} over parsed lines."""
    keys = sorted({k for s in samples for k in s})
    out = {}
    for k in keys:
        values = [s[k] for s in samples if k in s]
        out[k] = {"mean": round(sum(values) / len(values), 1), "max": max(values), "n": len(values)}
    return out


class TegrastatsSampler:
    """`with TegrastatsSampler() as t: ...` runs tegrastats in the background; `t.summary()` afterwards.

    `command` defaults to tegrastats at `interval_ms`; where tegrastats is absent the sampler does
    nothing and `available` is False (a desktop, a CI machine).
    """

    def __init__(self, interval_ms: int = 100, command: list[str] | None = None) -> None:
        exe = shutil.which("tegrastats")
        self.command = command or ([exe, "--interval", str(interval_ms)] if exe else None)
        self.available = self.command is not None
        self.samples: list[dict[str, float]] = []
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            parsed = parse_tegrastats_line(line)
            if parsed:
                self.samples.append(parsed)

    def __enter__(self) -> "TegrastatsSampler":
        if self.available:
            try:
                self._proc = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                              text=True, bufsize=1)
            except OSError:
                self.available = False
                return self
            self._thread = threading.Thread(target=self._read, name="tegrastats", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def summary(self) -> dict[str, Any] | None:
        """Mean and max of every quantity seen, or None when nothing was sampled."""
        return summarise(self.samples) if self.samples else None
