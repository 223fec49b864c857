"""The matrix runner of benchmarks/ end to end, at toy scale: bundles made with the export stage's functions,
the reference in the same run, and the three results files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def run_matrix(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import run_matrix

    return run_matrix


def test_matrix_at_toy_scale(run_matrix, tmp_path, capsys):
    pytest.importorskip("onnx")
    out = tmp_path / "results"
    args = ["--work", str(tmp_path / "work"), "--out", str(out), "--machine", "toy", "--preset", "tiny",
            "--image-size", "32", "--steps", "1", "--precisions", "fp32,int8", "--scorings", "pixel",
            "--frame-size", "64x48", "--warmup", "1", "--iters", "3", "--overhead-frames", "4", "--null-frames", "20",
            "--profile-runs", "1",
            "--edge", "fp32,1,pixel", "--backends", "onnxruntime", "--reference-spec", "tiny,32,resnet18",
            "--reference-threads", "1",
            "--reference-iters", "2", "--torch-device", "cpu", "--no-progress",
            "--fidelity-bundles", str(tmp_path)]  # no report under it: every row stays speed-only
    assert run_matrix.main(args) == 0
    rows = json.loads((out / "toy.json").read_text())
    # the reference, the rows, the reference once more at the end; the faster reference is THE reference
    assert [r["variant"]["precision"] for r in rows] == ["fp32", "fp32", "int8", "fp32"]
    first, fp32, int8, last = rows
    assert "again at the end" in last["variant"]["name"] and [first["reference"], last["reference"]].count(True) == 1
    ref = first if first["reference"] else last
    assert ref["variant"]["steps"] == 10 and ref["speedup_vs_reference"] == 1.0
    assert ref["stages_ms"]["frame"]["p50"] <= (last if ref is first else first)["stages_ms"]["frame"]["p50"]
    for r in (fp32, int8):
        assert r["variant"]["backend"] == "onnxruntime" and r["variant"]["scoring"] == "pixel"
        assert r["speedup_vs_reference"] == pytest.approx(
            ref["stages_ms"]["frame"]["p50"] / r["stages_ms"]["frame"]["p50"], rel=0.01)
        assert "random weights" in r["variant"]["model"] and r["fidelity"] is None
        assert len(r["samples_ms"]["frame"]) == 3 and r["run"]["command"].startswith("python benchmarks/run_matrix.py")
    md = (out / "toy.md").read_text()
    for words in ("What was measured on which model", "Target:", "ONNX Runtime profile", "INT8 against FP32",
                  "overhead", "| variant |"):
        assert words in md, words
    assert "torch (the reference) ran on the CPU" in md and ref["variant"]["device"] == "cpu"
    assert (out / "toy.png").read_bytes()[:4] == b"\x89PNG"
    details = json.loads((out / "toy.details.json").read_text())
    assert details["ort_profile"]["runs"] == 1
    # the edge variant (here FP32, by --edge) is profiled, and so is the fastest distilled INT8 row, another one
    assert details["ort_profile"]["row"] == fp32["variant"]["name"]
    assert [p["row"] for p in details["ort_profiles_more"]] == [int8["variant"]["name"]]
    assert details["meta"]["options"]["edge"] == "fp32,1,pixel" and fp32["variant"]["device"] == "cpu"
    assert "work" not in details["meta"]["options"]  # this machine's folders are not saved
    assert "Amdahl's bound" in md
    for r in (fp32, int8):
        assert f"| {r['variant']['name']} | {r['stages_ms']['frame']['p50']:,.1f} |" in md
    cases = list(details["loop_overhead"].values())
    fastest = min((fp32, int8), key=lambda r: r["stages_ms"]["frame"]["p50"])
    assert [c["runner"] for c in cases] == ["null graph"] * 3 + [fastest["variant"]["name"]]
    assert [c["event_log"] for c in cases] == [False, True, True, True]
    assert [c["frames"] for c in cases] == [20, 20, 20, 4]
    # --report-only writes the same Markdown again from the saved files, under the options of the run
    (out / "toy.md").unlink()
    assert run_matrix.main(["--report-only", "--out", str(out), "--machine", "toy"]) == 0
    assert (out / "toy.md").read_text() == md
    # results saved before options and device fields existed: parsed from the command line, all rows on the CPU
    old = json.loads((out / "toy.details.json").read_text())
    old["meta"].pop("options")
    old["ort_profile_fastest_int8"] = old.pop("ort_profiles_more")[0]
    (out / "toy.details.json").write_text(json.dumps(old))
    (out / "toy.json").write_text(json.dumps([{**r, "variant": {k: v for k, v in r["variant"].items()
                                                               if k != "device"}} for r in rows]))
    (out / "toy.md").unlink()
    assert run_matrix.main(["--report-only", "--out", str(out), "--machine", "toy"]) == 0
    assert (out / "toy.md").read_text() == md
    capsys.readouterr()
    assert run_matrix.main(["--report-only", "--out", str(tmp_path / "nothing"), "--machine", "toy"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "toy.json" in err and "run the matrix first" in err
    # a second run reuses the bundles it made
    made = sorted(p.name for p in (tmp_path / "work").iterdir() if p.is_dir() and p.name.startswith("tiny"))
    assert made == ["tiny-32-k1-pixel-fp32", "tiny-32-k1-pixel-int8"]
    assert "speed-only" in (tmp_path / "work" / made[1] / "manifest.yaml").read_text()


def test_free_compute_bound_applies_kernel_shares_to_the_rows_inference(run_matrix):
    import matrix_report

    row = {"variant": {"name": "v", "precision": "int8"}, "gflops_per_frame": 2.0,
           "stages_ms": {"frame": {"p50": 100.0}, "infer": {"p50": 90.0}}}
    profile = {"run_ms": 100.0, "kernels_ms": 90.0,  # 10 % of a run is ORT outside kernels: that stays
               "by_op": [{"name": "QLinearConv", "share": 0.3}, {"name": "Conv", "share": 0.1},
                         {"name": "Einsum", "share": 0.05}, {"name": "ReorderInput", "share": 0.05},
                         {"name": "DequantizeLinear", "share": 0.15}, {"name": "QuantizeLinear", "share": 0.05},
                         {"name": "InstanceNormalization", "share": 0.3}]}
    cpu = {"int8_peak_gops": 100.0}
    b = matrix_report.free_compute_bound(row, profile, peak=100.0)
    assert b["products_share"] == pytest.approx(0.5) and b["qdq_share"] == pytest.approx(0.2)
    # kernels: 90 ms x 0.9 = 81 ms; kept: decode etc. 10 ms + ORT outside kernels 9 ms = 19 ms
    assert b["free_products_ms"] == pytest.approx(19.0 + 81.0 * 0.5)
    assert b["free_products_qdq_ms"] == pytest.approx(19.0 + 81.0 * 0.3)  # only the normalisation is left
    assert b["products_at_peak_ms"] == pytest.approx(59.5 + 1e3 * 2.0 / 100.0)  # 2 GOP at 100 GOP/s
    assert matrix_report.free_compute_bound(row, profile)["products_at_peak_ms"] is None
    # a peak estimate below what was reached never makes the bound slower than the measured frame
    assert matrix_report.free_compute_bound(row, profile, peak=10.0)["products_at_peak_ms"] == pytest.approx(100.0)

    def text(ref_ms):
        ref = {"reference": True, "variant": {"name": "ref"}, "stages_ms": {"frame": {"p50": ref_ms}}}
        return "\n".join(matrix_report.bound_section([ref, row], ref, [dict(profile, row="v")], cpu))

    t = text(1000.0)  # 16.8x free products, 23.1x free Q/DQ too, 12.6x at peak
    assert "| v | 100.0 | 50% | 20% | 30% | 59.5 | 16.8x | 43.3 | 23.1x | 79.5 | 12.6x |" in t
    assert "none of the profiled variants gets there" in t and "Not even with the INT8 conversions free" in t
    assert "faster convolution kernels alone cannot reach the target" in t
    t = text(1500.0)  # 25.2x, 34.6x, 18.9x
    assert "With the INT8 conversions free too, v could get there (34.6x)" in t and "Not even" not in t
    assert "cannot reach" in t
    t = text(2000.0)  # 33.6x with free products, but the products at peak cost 20 ms: 25.2x
    assert "could get there (33.6x)" in t and "none of the profiled" not in t and "cannot reach" in t
    t = text(2500.0)  # 31.4x even at peak: no claim that faster kernels cannot reach the target
    assert "at 31.4x." in t and "cannot reach" not in t
    # a row without a peak estimate (FP16 here) is not covered by the claim, which names the rows it covers
    fp16 = {**row, "variant": {"name": "w", "precision": "fp16"}}
    ref = {"reference": True, "variant": {"name": "ref"}, "stages_ms": {"frame": {"p50": 1000.0}}}
    t = "\n".join(matrix_report.bound_section([ref, row, fp16], ref, [dict(profile, row="v"), dict(profile, row="w")],
                                               cpu))
    assert "| w | 100.0 |" in t and "| — | — |" in t
    assert "cannot reach the target at these estimated peak rates, for v (no peak estimate for the others)." in t


def test_an_openvino_profile_is_bounded_with_its_own_layer_types(run_matrix):
    """OpenVINO names its layers by type (Convolution, FullyConnected, Reorder, FakeQuantize): the edge
    variant's OpenVINO profile gets its row in the bound table, against the BF16 peak in bf16 mode."""
    import matrix_report

    row = {"variant": {"name": "ov", "precision": "fp32", "backend": "openvino-bf16"}, "gflops_per_frame": 2.0,
           "stages_ms": {"frame": {"p50": 100.0}, "infer": {"p50": 90.0}}}
    profile = {"run_ms": 90.0, "kernels_ms": 95.0,  # OpenVINO's layer times may sum past the wall time
               "by_op": [{"name": "Convolution", "share": 0.4}, {"name": "FullyConnected", "share": 0.05},
                         {"name": "Reorder", "share": 0.1}, {"name": "FakeQuantize", "share": 0.05},
                         {"name": "Add", "share": 0.4}], "row": "ov"}
    s = matrix_report.kernel_shares(profile)
    assert s["products"] == pytest.approx(0.55) and s["qdq"] == pytest.approx(0.05) and s["rest"] == pytest.approx(0.4)
    ref = {"reference": True, "variant": {"name": "ref"}, "stages_ms": {"frame": {"p50": 1000.0}}}
    cpu = {"fp32_peak_gflops": 50.0, "bf16_peak_gflops": 100.0}
    t = "\n".join(matrix_report.bound_section([ref, row], ref, [profile], cpu))
    # all 90 ms of inference is layer time; products free: 10 + 90 x 0.45 = 50.5 ms; Q/DQ free too: 46 ms;
    # products at the BF16 peak: 2 GFLOP at 100 GFLOP/s = 20 ms instead of 49.5 ms, so 70.5 ms
    assert "| ov | 100.0 | 55% | 5% | 40% | 50.5 | 19.8x | 46.0 | 21.7x | 70.5 | 14.2x |" in t


def test_no_cpu_bound_against_a_gpu_reference(run_matrix):
    """With the reference on a GPU the verdict takes the TensorRT row and sets no CPU bound against the GPU."""
    import matrix_report
    from speed_bundles import SpeedVariant

    from ddad_edge.bundle import Precision

    stages = {s: {"p50": 1.0} for s in ("frame", "infer", "decode", "resize", "decide")}
    ref = {"reference": True, "variant": {"name": "ref", "device": "cuda:0"}, "stages_ms": {"frame": {"p50": 100.0}}}
    ort = {"variant": {"name": "ort", "backend": "onnxruntime", "precision": "int8", "steps": 2, "backbone": None,
                       "device": "cpu"}, "stages_ms": {**stages, "frame": {"p50": 50.0}, "infer": {"p50": 49.0}}}
    trt = {"variant": {"name": "trt", "backend": "tensorrt", "precision": "int8", "steps": 2, "backbone": None,
                       "device": "gpu"}, "stages_ms": stages}
    profile = {"variant": "ort", "row": "ort", "runs": 1, "run_ms": 49.0, "kernels_ms": 45.0,
               "by_part": [], "by_op": [{"name": "QLinearConv", "share": 1.0, "ms_per_run": 45.0}], "top_nodes": []}
    text = "\n".join(matrix_report.verdict([ref, ort, trt], SpeedVariant(2, None, Precision.INT8, 256, "ddad-s"),
                                           profile, cpu={"int8_peak_gops": 1.0}))
    assert "**trt**" in text and "→ **100.0x** (target met)" in text
    assert "Amdahl" not in text and "no CPU bound is set against it" in text


def test_edge_row_compares_like_with_like(run_matrix):
    """With the reference on a GPU, the verdict takes the edge variant's TensorRT row; on a CPU, ONNX Runtime's."""
    import matrix_report
    from speed_bundles import SpeedVariant

    from ddad_edge.bundle import Precision

    def row(backend, precision, steps, p50, device):
        return {"variant": {"name": f"{backend} {precision} k{steps}", "backend": backend, "precision": precision,
                            "steps": steps, "backbone": "resnet18", "device": device},
                "stages_ms": {"frame": {"p50": p50}}}

    rows = [row("onnxruntime", "int8", 2, 50.0, "cpu"), row("tensorrt", "int8", 2, 5.0, "gpu"),
            row("onnxruntime", "fp32", 1, 30.0, "cpu"), row("onnxruntime", "int8", 10, 1.0, "cpu")]
    edge = SpeedVariant(2, "resnet18", Precision.INT8, 256, "ddad-s")
    gpu_ref = {"reference": True, "variant": {"device": "cuda:0"}, "stages_ms": {"frame": {"p50": 100.0}}}
    cpu_ref = {"reference": True, "variant": {"device": "cpu"}, "stages_ms": {"frame": {"p50": 100.0}}}
    assert matrix_report.edge_row([gpu_ref, *rows], edge)["variant"]["backend"] == "tensorrt"
    assert matrix_report.edge_row([cpu_ref, *rows], edge)["variant"]["backend"] == "onnxruntime"
    # distilled only (1-2 steps): the 10-step row is faster but not a candidate
    assert matrix_report.fastest_distilled(rows, "onnxruntime")["variant"]["name"] == "onnxruntime fp32 k1"
    assert matrix_report.fastest_distilled(rows, "onnxruntime", "int8")["variant"]["name"] == "onnxruntime int8 k2"
    assert matrix_report.fastest_distilled(rows, "onnxruntime", "fp16") is None


def test_bad_torch_device_before_any_work(run_matrix, tmp_path):
    from ddad_edge.errors import DdadError

    with pytest.raises(DdadError, match="not a torch device"):
        run_matrix.main(["--work", str(tmp_path / "work"), "--torch-device", "tpu-7"])
    assert not (tmp_path / "work").exists()  # refused before a bundle was made
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(BENCHMARKS / "run_matrix.py"), "--work", str(tmp_path / "work"),
                           "--torch-device", "tpu-7"], capture_output=True, text=True, timeout=300)
    err = done.stderr.strip()
    assert done.returncode == 2 and len(err.splitlines()) == 1 and err.startswith("error: ") and "tpu-7" in err


def test_fidelity_of_another_model_is_named_and_flagged(run_matrix):
    """Fidelity numbers measured on a smaller trained model are listed per model, and flagged as the cost of
    each choice, not the accuracy of the timed model; measured on the timed model itself, no flag."""
    import argparse

    import matrix_report

    def row(name, preset, size):
        return {"variant": {"name": name}, "fidelity": {"test_split.auroc": 0.9}, "fidelity_source": f"/b/{name}/r",
                "fidelity_graph": {"run": "/runs/a", "preset": preset, "image_size": size},
                "fidelity_model": f"exported from run /runs/a ({preset} at {size} px)"}

    timed = argparse.Namespace(preset="ddad-s", image_size=256)
    lines = matrix_report.fidelity_provenance([row("int8 k2", "tiny", 64), row("fp32 k2", "tiny", 64)], timed)
    assert lines[0].startswith("  - exported from run /runs/a (tiny at 64 px): int8 k2, fp32 k2")
    assert len(lines) == 2 and "not as the accuracy of the timed model" in lines[1]
    assert "tiny at 64 px" in lines[1] and "ddad-s at 256 px" in lines[1]
    same = matrix_report.fidelity_provenance([row("int8 k2", "ddad-s", 256)], timed)
    assert len(same) == 1 and "not as the accuracy" not in same[0]
    # rows saved before the model was recorded apart from its text: listed, never flagged on a guess
    old = {k: v for k, v in row("int8 k1", "tiny", 64).items() if k != "fidelity_graph"}
    assert len(matrix_report.fidelity_provenance([old], timed)) == 1


def test_int8_fidelity_bundles_say_how_much_of_them_is_int8(run_matrix, tmp_path):
    """An INT8 bundle whose fallback kept nodes in FP32 is not the all-INT8 file its row times: the report
    says how many nodes each INT8 fidelity bundle quantized, read from its report.json."""
    import argparse

    import matrix_report

    report = tmp_path / "report.json"
    report.write_text(json.dumps({"precision_details": {"kind": "int8", "quantized_nodes": 20,
                                                        "candidate_nodes": 94, "fallback_nodes": ["a"] * 74}}))
    assert run_matrix.int8_share(report) == {"int8_quantized": 20, "int8_candidates": 94}
    report.write_text(json.dumps({"precision_details": {"kind": "fp16"}}))
    assert run_matrix.int8_share(report) == {}
    report.write_text("{not json")
    assert run_matrix.int8_share(report) == {}

    def row(name, graph):
        return {"variant": {"name": name}, "fidelity": {"test_split.auroc": 0.9}, "fidelity_source": "/b/r",
                "fidelity_graph": graph, "fidelity_model": "exported from run /runs/a (tiny at 64 px)"}

    graph = {"run": "/runs/a", "preset": "tiny", "image_size": 64}
    timed = argparse.Namespace(preset="tiny", image_size=64)
    lines = matrix_report.fidelity_provenance(
        [row("int8 k2", {**graph, "int8_quantized": 20, "int8_candidates": 94}), row("fp32 k2", graph)], timed)
    assert len(lines) == 2 and "int8 k2 20 of 94" in lines[1] and "fp32 k2" not in lines[1]
    assert len(matrix_report.fidelity_provenance([row("fp32 k2", graph)], timed)) == 1


def test_each_steps_sampler_is_named_where_its_fidelity_is_listed(run_matrix):
    """A K-step row's fidelity may come from a distilled student or from the teacher on a K-step grid: the
    manifest says which (`sampler_words`), and the provenance lists it once per K."""
    import argparse

    import matrix_report

    config = {"sampler": {"t_prime": 250, "skip": 25}}
    words = run_matrix.sampler_words
    assert words({"graph": {"steps": 10, "timesteps": list(range(225, -1, -25)), "t_prime": 250,
                            "naive": False}, "config": config}).startswith("the teacher, 10 steps (250 → 225, 200")
    assert words({"graph": {"steps": 2, "timesteps": [217, 93], "t_prime": 248, "naive": False},
                  "config": config}) == "the 2-step distilled student (248 → 217, 93)"
    assert words({"graph": {"steps": 1, "timesteps": [5], "t_prime": 5, "naive": True, "start_level": 5},
                  "config": config}) == ("the teacher itself, 1 step from noise level 5 (5 → 5; `export --steps 1 "
                                         "--naive --start-level 5`)")
    assert words({"graph": {"steps": 2, "timesteps": [125, 0], "t_prime": 250, "naive": True},
                  "config": config}).startswith("the teacher itself on DDAD's 2-step grid (250 → 125, 0;")

    def row(name, steps, sampler):
        return {"variant": {"name": name, "steps": steps}, "fidelity": {"test_split.auroc": 0.9},
                "fidelity_source": "/b/r", "fidelity_model": "exported from run /runs/a (tiny at 64 px)",
                "fidelity_graph": {"run": "/runs/a", "preset": "tiny", "image_size": 64, "sampler": sampler}}

    timed = argparse.Namespace(preset="tiny", image_size=64)
    lines = matrix_report.fidelity_provenance(
        [row("int8 k1", 1, "one from 5"), row("fp32 k1", 1, "one from 5"), row("fp32 k2", 2, "two")], timed)
    named = [line for line in lines if "What reconstructs" in line]
    assert len(named) == 1 and "k2: two; k1: one from 5." in named[0]


def test_paths_in_results_are_relative_where_they_can_be(run_matrix, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_matrix.shown(tmp_path / "work" / "fidelity" / "runs" / "a") == "work/fidelity/runs/a"
    assert run_matrix.shown("/elsewhere/run") == "/elsewhere/run" and run_matrix.shown(None) is None
