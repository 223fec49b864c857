"""The DDAD-S reference (torch): DDAD's settings, no zero layers, its row and the speed-ups against it."""

from __future__ import annotations

import torch

from ddad_edge.bench.frames import file_source_factory
from ddad_edge.bench.reference import (ReferenceSpec, fill_zero_parameters, random_unet, reference_pipeline,
                                       speed_pipeline, variant_gflops)
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


def test_reference_row_and_speedups(toy_bundle, frame_files):
    source = file_source_factory(frame_files)
    spec = ReferenceSpec(preset="tiny", image_size=32, backbone="resnet18")  # small, same code path
    threads = torch.get_num_threads()
    # one torch thread: on a busy 2-core test machine two threads wait for each other (seconds per frame)
    ref = bench_reference(source, warmup=1, iters=2, show_progress=False, spec=spec, threads=1)
    assert torch.get_num_threads() == threads  # restored
    assert ref["variant"]["threads"] == 1 and "1 torch threads" in ref["variant"]["model"]
    assert ref["reference"] and ref["variant"]["steps"] == 10 and ref["variant"]["eta"] == 1.0
    assert ref["calls"] == 2 and ref["gflops_per_frame"] > 0
    row = bench_bundle(toy_bundle, source, "onnxruntime", warmup=1, iters=3, threads=1, show_progress=False)
    add_speedups([ref, row])
    expected = ref["stages_ms"]["frame"]["p50"] / row["stages_ms"]["frame"]["p50"]
    assert abs(row["speedup_vs_reference"] - expected) <= 0.01 * expected + 0.01
    assert ref["speedup_vs_reference"] == 1.0
