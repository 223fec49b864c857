"""Jetson power and clocks: tegrastats lines of the two formats, and the background sampler."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from ddad_edge.bench.tegrastats import TegrastatsSampler, parse_tegrastats_line, summarise

FAKE = Path(__file__).with_name("fake_tegrastats.py")

ORIN = ("RAM 2449/7620MB (lfb 1x4MB) SWAP 0/3810MB (cached 0MB) CPU [11%@1510,3%@1510,off,off] EMC_FREQ 1%@2133 "
        "GR3D_FREQ 47%@[1300] VIC_FREQ 729 APE 174 CPU@48.5C VDD_IN 5832mW/4412mW VDD_CPU_GPU_CV 1520mW/980mW "
        "VDD_SOC 1475mW/1398mW")
NANO = ("RAM 1540/3956MB (lfb 141x4MB) SWAP 0/1978MB (cached 0MB) IRAM 0/252kB(lfb 252kB) CPU [5%@1479,2%@1479,"
        "0%@1479,1%@1479] EMC_FREQ 4%@1600 GR3D_FREQ 99%@921 APE 25 PLL@33C CPU@35.5C POM_5V_IN 4626/4270 "
        "POM_5V_GPU 1894/1620 POM_5V_CPU 490/495")


def test_orin_line():
    p = parse_tegrastats_line(ORIN)
    assert p["power_mw.VDD_IN"] == 5832 and p["power_mw.VDD_CPU_GPU_CV"] == 1520 and p["power_mw.VDD_SOC"] == 1475
    assert p["gpu_load_pct"] == 47 and p["gpu_mhz"] == 1300
    assert p["emc_load_pct"] == 1 and p["emc_mhz"] == 2133
    assert p["ram_used_mb"] == 2449
    assert p["cpu_load_pct"] == pytest.approx(7.0) and p["cpu_mhz"] == 1510  # offline cores not counted
    assert not any(k.startswith("power_mw.CPU") for k in p)  # a temperature is not a rail


def test_nano_line():
    p = parse_tegrastats_line(NANO)
    assert p["power_mw.POM_5V_IN"] == 4626 and p["power_mw.POM_5V_GPU"] == 1894
    assert p["gpu_load_pct"] == 99 and p["gpu_mhz"] == 921
    assert p["cpu_load_pct"] == pytest.approx(2.0) and p["ram_used_mb"] == 1540


def test_unrelated_text_gives_nothing():
    assert parse_tegrastats_line("tegrastats: permission denied") == {}


def test_summary_mean_and_max():
    s = summarise([{"power_mw.VDD_IN": 5000.0}, {"power_mw.VDD_IN": 7000.0, "gpu_load_pct": 50.0}])
    assert s["power_mw.VDD_IN"] == {"mean": 6000.0, "max": 7000.0, "n": 2}
    assert s["gpu_load_pct"]["n"] == 1


def test_sampler_runs_and_stops_the_tool():
    with TegrastatsSampler(command=[sys.executable, str(FAKE)]) as sampler:
        deadline = time.monotonic() + 10
        while len(sampler.samples) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert sampler._proc.poll() is not None  # terminated on exit, not left running
    s = sampler.summary()
    assert s["power_mw.VDD_IN"]["max"] == 7000 and 5000 <= s["power_mw.VDD_IN"]["mean"] <= 7000
    assert s["gpu_mhz"]["mean"] == 1300


def test_sampler_without_tegrastats(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with TegrastatsSampler() as sampler:
        pass
    assert not sampler.available and sampler.summary() is None
