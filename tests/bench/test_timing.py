"""The timing core: warm-up calls never reach the percentiles, which are those of the raw samples saved."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ddad_edge.bench.frames import file_source_factory
from ddad_edge.bench.report import make_row, write_json
from ddad_edge.bench.timing import iterations_for, measure_runner, percentiles_of
from ddad_edge.errors import DdadError
from ddad_edge.runtime.backends import open_runner
from tests.inspect.wrappers import SlowRunner

DELAY_S = 0.6  # a slow call lasts at least this; an ordinary toy call well under a millisecond


@pytest.fixture
def ort_runner(toy_bundle):
    with open_runner(toy_bundle, "onnxruntime", threads=1) as r:
        yield r


def test_percentiles_of_known_samples():
    p = percentiles_of(np.arange(1, 101, dtype=float))  # 1..100: linear interpolation between order stats
    assert p["p50"] == pytest.approx(50.5) and p["p90"] == pytest.approx(90.1) and p["p99"] == pytest.approx(99.01)
    assert p["max"] == 100 and p["mean"] == pytest.approx(50.5) and p["n"] == 100
    with pytest.raises(ValueError):
        percentiles_of(np.array([]))


def test_warmup_calls_are_excluded(ort_runner, frame_files):
    slow = SlowRunner(ort_runner, DELAY_S, slow_on={0, 1, 2})  # the first three calls are slow
    m = measure_runner(slow, file_source_factory(frame_files), batch=1, warmup=3, iters=20, show_progress=False)
    assert slow.calls == 23  # the warm-up calls did run
    assert m.warmup_calls == 3 and m.calls == 20 and m.frames == 20
    assert m.warmup_s >= 3 * DELAY_S
    for stage in ("infer", "call", "frame", "latency"):
        assert m.samples_ms[stage].max() < DELAY_S * 1e3, stage  # no slow call among the samples
    stats = m.stats()
    assert stats["frame"]["max"] < DELAY_S * 1e3


def test_without_warmup_the_slow_calls_show(ort_runner, frame_files):
    """The control: the same slow calls, not warmed up, are in the samples (so the test above can fail)."""
    slow = SlowRunner(ort_runner, DELAY_S, slow_on={0, 1, 2})
    m = measure_runner(slow, file_source_factory(frame_files), batch=1, warmup=0, iters=10, show_progress=False)
    assert (m.samples_ms["infer"] >= DELAY_S * 1e3).sum() == 3
    assert m.stats()["frame"]["max"] >= DELAY_S * 1e3


def test_percentiles_recomputed_from_saved_samples(ort_runner, frame_files, tmp_path):
    m = measure_runner(ort_runner, file_source_factory(frame_files), batch=2, warmup=1, iters=8,
                       show_progress=False)
    row = make_row({"name": "toy"}, m)
    saved = json.loads(write_json(tmp_path / "rows.json", [row]).read_text())[0]
    assert set(saved["samples_ms"]) >= {"decode", "resize", "infer", "decide", "frame", "call"}
    for stage, samples in saved["samples_ms"].items():
        again = percentiles_of(np.array(samples))
        for key in ("p50", "p90", "p99", "max", "n"):
            assert again[key] == saved["stages_ms"][stage][key], (stage, key)
    # per frame: 16 frames; per call: 8 calls, each equal to its frames' share times the batch
    assert len(saved["samples_ms"]["frame"]) == 16 and len(saved["samples_ms"]["call"]) == 8
    infer = np.array(saved["samples_ms"]["infer"])
    np.testing.assert_allclose(np.array(saved["samples_ms"]["call"]), infer[::2] * 2, atol=1e-5)
    # the whole frame is the sum of its stages, frame by frame
    parts = sum(np.array(saved["samples_ms"][s]) for s in ("decode", "resize", "infer", "decide"))
    np.testing.assert_allclose(np.array(saved["samples_ms"]["frame"]), parts, atol=1e-5)


def test_budget_cuts_measured_calls(ort_runner, frame_files):
    slow = SlowRunner(ort_runner, 0.05)  # every call ~50 ms: a 0.2 s budget holds 4 of them
    m = measure_runner(slow, file_source_factory(frame_files), warmup=1, iters=50, budget_s=0.2, min_iters=2,
                       show_progress=False)
    assert 2 <= m.calls <= 4 and m.frames == m.calls
    assert any("budget" in n for n in m.notes)


def test_iterations_for():
    assert iterations_for(10.0, 2.0, 3, 30) == 5
    assert iterations_for(10.0, 20.0, 3, 30) == 3  # never below the minimum
    assert iterations_for(1000.0, 0.001, 3, 30) == 30  # never above what was asked
    assert iterations_for(10.0, float("nan"), 3, 30) == 30


def test_faulted_frame_fails_the_benchmark(ort_runner, frame_files, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DdadError, match="FAULT"):
        measure_runner(ort_runner, file_source_factory([*frame_files, bad]), warmup=0, iters=8, show_progress=False)


def test_peak_memory_is_reported(ort_runner, frame_files):
    m = measure_runner(ort_runner, file_source_factory(frame_files), warmup=0, iters=3, show_progress=False)
    assert m.peak_rss_mb is not None and m.peak_rss_mb > 10  # a Python process with numpy and ORT
    assert m.peak_rss_scope in ("measured part", "process lifetime")
    assert m.cpu_s > 0 and m.wall_s > 0
