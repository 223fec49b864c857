"""The DDAD-S reference (torch): DDAD's settings, no zero layers, its row and the speed-ups against it."""

from __future__ import annotations

import torch

from ddad_edge.bench.frames import file_source_factory
from ddad_edge.bench.reference import (
    ReferenceSpec,
    fill_zero_parameters,
    random_unet,
    reference_pipeline,
    speed_pipeline,
    variant_gflops,
)
from ddad_edge.bench.report import add_speedups
from ddad_edge.bench.run import bench_bundle, bench_reference
from ddad_edge.model.flops import gflops_of


def test_reference_is_ddad_s_as_published():
    spec = ReferenceSpec()
    p = reference_pipeline(spec)
    assert p.timesteps == [225, 200, 175, 150, 125, 100, 75, 50, 25, 0] and p.eta == 1.0
    assert p.unet.cfg.preset == "ddad-s" and p.unet.cfg.image_size == 256
    assert p.scorer.extractor.name == "wide_resnet101_2" and p.scorer.cfg.mode.value == "fused"
    assert all(torch.any(q) for q in p.parameters())  # no layer left at its zero initialisation
    assert "random weights" in spec.describe() and "eta=1" in spec.describe()


def test_fill_zero_parameters_only_touches_zeros():
    conv = torch.nn.Conv2d(3, 4, 3)
    torch.nn.init.zeros_(conv.bias)
    before = conv.weight.detach().clone()
    fill_zero_parameters(conv)
    assert torch.equal(conv.weight, before) and torch.any(conv.bias)


def test_flops_of_a_variant_match_the_pipeline():
    """steps x UNet + backbone on [x, x̂0] is what the whole pipeline costs (plus the small blur)."""
    p = speed_pipeline(random_unet("tiny", 32), [125, 0], 250, 0.0, "resnet18")
    counted = gflops_of(p, torch.zeros(1, 3, 32, 32))
    expected = variant_gflops("tiny", 32, 2, "resnet18")
    assert expected <= counted <= 1.1 * expected
    assert variant_gflops("tiny", 32, 2, None) < expected


def test_reference_row_and_speedups(toy_bundle, frame_files, monkeypatch):
    source = file_source_factory(frame_files)
    spec = ReferenceSpec(preset="tiny", image_size=32, backbone="resnet18")  # small, same code path
    threads = torch.get_num_threads()
    # one torch thread: on a busy 2-core test machine two threads wait for each other (seconds per frame)
    ref = bench_reference(source, warmup=1, iters=2, show_progress=False, spec=spec, threads=1)
    assert torch.get_num_threads() == threads  # restored
    assert ref["variant"]["threads"] == 1 and "1 torch threads" in ref["variant"]["model"]
    assert ref["reference"] and ref["variant"]["steps"] == 10 and ref["variant"]["eta"] == 1.0
    assert ref["calls"] == 2 and ref["gflops_per_frame"] > 0
    # the CPU's description: the row is set against the peak of its file's arithmetic (toy_bundle: FP32). The
    # toy bundle's description names no preset to count FLOPs from, so its count is given here.
    monkeypatch.setattr("ddad_edge.bench.run.bundle_gflops", lambda variant: 2.0)
    cpu = {"fp32_peak_gflops": 100.0, "bf16_peak_gflops": 200.0, "int8_peak_gops": 400.0}
    row = bench_bundle(toy_bundle, source, "onnxruntime", warmup=1, iters=3, threads=1, show_progress=False, cpu=cpu)
    assert row["variant"]["precision"] == "fp32"
    assert row["gflops_per_frame"] == 2.0 and row["peak_fraction"] == round(row["achieved_gflops"] / 100.0, 3)
    add_speedups([ref, row])
    expected = ref["stages_ms"]["frame"]["p50"] / row["stages_ms"]["frame"]["p50"]
    assert abs(row["speedup_vs_reference"] - expected) <= 0.01 * expected + 0.01
    assert ref["speedup_vs_reference"] == 1.0


def test_reference_row_says_where_it_ran(frame_files):
    source = file_source_factory(frame_files)
    spec = ReferenceSpec(preset="tiny", image_size=32, backbone="resnet18")
    ref = bench_reference(source, warmup=0, iters=1, show_progress=False, spec=spec, threads=1, device="cpu")
    assert ref["variant"]["device"] == "cpu" and "on the CPU, 1 torch threads" in ref["variant"]["model"]


def test_torch_device_choice(monkeypatch):
    """auto takes the GPU where torch sees one (DDAD runs on CUDA), else the CPU; a device torch cannot use
    here is one line that says what to ask for. (torch.cuda's answers are set here: no GPU on this machine.)"""
    import pytest

    from ddad_edge.errors import DdadError
    from ddad_edge.model.device import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto").type == "cpu" and pick_device("cpu").type == "cpu"
    for asked, words in (("cuda", "no CUDA GPU here: ask for cpu, or auto"), ("cuda:0", "no CUDA GPU"),
                         ("tpu-7", "not a torch device")):
        with pytest.raises(DdadError) as err:
            pick_device(asked)
        assert words in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert pick_device("auto").type == "cuda" and pick_device("cuda:0").index == 0
    with pytest.raises(DdadError, match="sees 1 CUDA GPU"):
        pick_device("cuda:3")
    from ddad_edge.bench.run import torch_device_of

    assert torch_device_of("auto").type == "cuda"
    with pytest.raises(DdadError, match="cpu or cuda"):  # a torch device, but not one the benchmark times on
        torch_device_of("meta")


def test_cpu_peak_only_beside_cpu_rows(toy_bundle):
    """GFLOP/s is set against the CPU's peak only for runners that compute on the CPU."""
    from types import SimpleNamespace

    from ddad_edge.bench.run import runs_on_cpu
    from ddad_edge.runtime.backends import open_runner

    with open_runner(toy_bundle, "onnxruntime") as runner:
        assert runs_on_cpu(runner)
    assert not runs_on_cpu(SimpleNamespace(providers=("CUDAExecutionProvider", "CPUExecutionProvider")))
    assert runs_on_cpu(SimpleNamespace(device=torch.device("cpu")))
    assert not runs_on_cpu(SimpleNamespace(device=torch.device("cuda", 0)))
    assert not runs_on_cpu(SimpleNamespace())  # TensorRT says nothing: a GPU
