"""What a benchmark ran on: the CPU peak estimate from cpuinfo text, nvpmodel output, the results' file name."""

from __future__ import annotations

import pytest

from ddad_edge.bench.machine import (
    arithmetic_peak,
    cpu_peak,
    describe_machine,
    machine_slug,
    parse_nvpmodel,
    peak_label,
)

XEON = """processor\t: 0
model name\t: Intel(R) Xeon(R) Processor
cpu MHz\t\t: 2100.000
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512_vnni amx_int8 hypervisor
"""
OLD = """model name\t: Some CPU
cpu MHz\t\t: 3000.000
flags\t\t: fpu sse sse2
"""


def test_peak_avx512(monkeypatch):
    monkeypatch.setattr("ddad_edge.bench.machine._read", lambda path: "")  # no cpufreq: cpuinfo's clock
    p = cpu_peak(XEON, "x86_64", cores=2)
    assert p["fp32_flops_per_cycle"] == 64
    assert p["fp32_peak_gflops"] == pytest.approx(2 * 2.1 * 64)
    assert p["int8_peak_gops"] == pytest.approx(4 * p["fp32_peak_gflops"])
    assert p["estimate"] is True and "avx512_vnni" in p["features"]


ZEN5 = """model name\t: AMD EPYC
cpu MHz\t\t: 2500.000
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512_vnni avx512_bf16 hypervisor
"""


def test_each_row_is_set_against_the_peak_of_the_arithmetic_it_runs_in(monkeypatch):
    monkeypatch.setattr("ddad_edge.bench.machine._read", lambda path: "")
    zen5 = cpu_peak(ZEN5, "x86_64", cores=2)
    assert zen5["fp32_peak_gflops"] == pytest.approx(2 * 2.5 * 64)
    assert zen5["bf16_peak_gflops"] == pytest.approx(2 * zen5["fp32_peak_gflops"])
    assert arithmetic_peak(zen5, "fp32", "onnxruntime") == zen5["fp32_peak_gflops"]
    assert arithmetic_peak(zen5, "fp32", "openvino-f32") == zen5["fp32_peak_gflops"]
    assert arithmetic_peak(zen5, "fp32", "openvino-bf16") == zen5["bf16_peak_gflops"]
    assert arithmetic_peak(zen5, "int8", "openvino-bf16") == zen5["int8_peak_gops"]
    assert arithmetic_peak(zen5, "int8", "onnxruntime") == zen5["int8_peak_gops"]
    assert arithmetic_peak(zen5, "fp16", "onnxruntime") is None
    assert [peak_label(zen5, p, b) for p, b in (("fp32", "onnxruntime"), ("fp32", "openvino-bf16"),
                                                ("int8", "onnxruntime"))] == ["FP32", "BF16", "INT8 VNNI"]
    xeon = cpu_peak(XEON, "x86_64", cores=2)  # AVX-512 VNNI but no BF16 instructions
    assert "bf16_peak_gflops" not in xeon
    assert arithmetic_peak(xeon, "fp32", "openvino-bf16") == xeon["fp32_peak_gflops"]
    assert peak_label(xeon, "fp32", "openvino-bf16") == "FP32"
    avx2 = cpu_peak(OLD.replace("sse2", "sse2 avx avx2 fma"), "x86_64", cores=2)  # no VNNI: no INT8 estimate
    assert arithmetic_peak(avx2, "int8", "onnxruntime") is None
    assert arithmetic_peak(avx2, "fp32", "onnxruntime") == pytest.approx(2 * 3.0 * 32)


def test_peak_without_vector_units(monkeypatch):
    monkeypatch.setattr("ddad_edge.bench.machine._read", lambda path: "")
    p = cpu_peak(OLD, "x86_64", cores=4)
    assert p["fp32_peak_gflops"] == pytest.approx(4 * 3.0 * 8) and "int8_peak_gops" not in p


def test_nvpmodel():
    assert parse_nvpmodel("NV Power Mode: MAXN\n0\n") == {"name": "MAXN", "id": 0}
    assert parse_nvpmodel("NV Power Mode: 15W\n2\n") == {"name": "15W", "id": 2}
    assert parse_nvpmodel("nvpmodel: command not found") is None


def test_this_machine_and_its_slug():
    info = describe_machine()
    assert info["cpu"]["cores"] >= 1 and "onnxruntime" in info["versions"]
    slug = machine_slug(info)
    assert slug and slug == slug.lower() and "/" not in slug and " " not in slug
    assert machine_slug({"jetson": {"model": "NVIDIA Jetson AGX Orin Developer Kit"}}) == \
        "nvidia-jetson-agx-orin-developer-kit"


def test_the_slug_tells_cpus_of_one_family_apart_by_their_vector_units():
    """Two virtualised CPUs may both call themselves "AMD EPYC"; their results must not share a file."""
    def slug(features):
        return machine_slug({"cpu": {"model": "AMD EPYC", "machine": "x86_64", "cores": 2, "features": features}})
    assert slug(["avx2", "fma"]) == "x86-64-2core-amd-epyc-avx2"
    assert slug(["avx2", "avx512f", "avx512_vnni"]) == "x86-64-2core-amd-epyc-avx512"
    assert slug(["avx2", "avx512f", "avx512_bf16"]) == "x86-64-2core-amd-epyc-avx512-bf16"
    assert slug(["avx512f", "avx512_bf16", "amx_bf16", "amx_int8"]) == "x86-64-2core-amd-epyc-amx"
    assert slug([]) == "x86-64-2core-amd-epyc"
    assert machine_slug({"cpu": {"model": "Neoverse-N1", "machine": "aarch64", "cores": 4,
                                 "features": ["asimd"]}}) == "aarch64-4core-neoverse-n1"
