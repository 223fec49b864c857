"""`ddad-edge bench` end to end on a real ONNX bundle, its files, its one-line errors, and that it runs
where torch is not installed (a Jetson)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from ddad_edge.bench.timing import percentiles_of
from ddad_edge.cli import main

REPO = Path(__file__).resolve().parents[2]


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err.strip()


def test_bench_writes_json_markdown_and_plot(capsys, toy_bundle, tmp_path):
    code, out, err = run_cli(capsys, "bench", "--bundle", toy_bundle.path, "--backend", "onnxruntime", "--batch", 2,
                             "--warmup", 1, "--iters", 4, "--frame-size", "64x48", "--threads", 1, "--no-progress",
                             "--json", tmp_path / "b.json", "--md", tmp_path / "b.md", "--plot", tmp_path / "b.png",
                             "--ort-profile")
    assert code == 0, err
    assert "frame" in out and "p99" in out and "fps" in out
    rows = json.loads((tmp_path / "b.json").read_text())
    assert isinstance(rows, list) and len(rows) == 1
    row = rows[0]
    assert row["variant"]["backend"] == "onnxruntime" and row["batch"] == 2 and row["calls"] == 4
    assert len(row["samples_ms"]["frame"]) == 8 and len(row["samples_ms"]["call"]) == 4
    assert row["stages_ms"]["frame"]["p99"] == percentiles_of(np.array(row["samples_ms"]["frame"]))["p99"]
    assert row["speedup_vs_reference"] is None  # no --reference
    assert row["machine"]["cpu"]["cores"] >= 1 and row["command"].startswith("ddad-edge")
    assert row["ort_profile"]["runs"] >= 1
    md = (tmp_path / "b.md").read_text()
    assert "| variant |" in md and "estimated FP32 peak" in md
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_reads_given_images(capsys, toy_bundle, frame_files, tmp_path):
    code, out, err = run_cli(capsys, "bench", "--bundle", toy_bundle.path, "--images", frame_files[0].parent,
                             "--warmup", 0, "--iters", 3, "--no-progress", "--json", tmp_path / "r.json")
    assert code == 0, err
    assert json.loads((tmp_path / "r.json").read_text())[0]["frames"] == 3


def test_one_line_errors(capsys, toy_bundle, frame_files, tmp_path):
    for args, word in ((("--bundle", tmp_path / "nope"), "not found"),
                       (("--bundle", toy_bundle.path, "--images", frame_files[0]), "is a file, not a folder"),
                       (("--bundle", toy_bundle.path, "--frame-size", "big"), "--frame-size"),
                       (("--bundle", toy_bundle.path, "--backend", "cuda-magic"), "unknown backend"),
                       (("--bundle", toy_bundle.path, "--images", tmp_path), "no images"),
                       (("--bundle", toy_bundle.path, "--reference", "--torch-device", "tpu-7"),
                        "not a torch device")):
        code, _, err = run_cli(capsys, "bench", *args, "--no-progress")
        assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: ") and word in err, err


def test_bench_without_torch(toy_bundle, tmp_path):
    """The device half: with torch unimportable, bench still times the bundle (no FLOP count)."""
    script = (
        "import sys; sys.modules['torch'] = None\n"  # any `import torch` now raises ImportError
        "from ddad_edge.cli import main\n"
        f"code = main(['bench', '--bundle', {str(toy_bundle.path)!r}, '--iters', '2', '--warmup', '1', "
        f"'--frame-size', '64x48', '--no-progress', '--json', {str(tmp_path / 'n.json')!r}])\n"
        "assert 'ddad_edge.model.unet' not in sys.modules\n"
        "sys.exit(code)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    row = json.loads((tmp_path / "n.json").read_text())[0]
    assert row["frames"] == 2 and row["gflops_per_frame"] is None


def test_cross_device_note():
    """A GPU reference against a CPU bundle row (or the reverse) is said in one line; like with like is not."""
    from ddad_edge.cli.bench import cross_device_note

    ref = {"reference": True, "variant": {"device": "cuda:0", "device_label": "Orin (cuda:0)"}}
    cpu_row = {"variant": {"name": "onnxruntime int8 k2 resnet18", "device": "cpu"}}
    gpu_row = {"variant": {"name": "tensorrt int8 k2 resnet18", "device": "gpu"}}
    note = cross_device_note([ref, cpu_row])
    assert note and "Orin (cuda:0)" in note and "on the CPU" in note and "--torch-device cpu" in note
    assert cross_device_note([ref, gpu_row]) is None
    assert cross_device_note([cpu_row]) is None  # no reference
    cpu_ref = {"reference": True, "variant": {"device": "cpu", "device_label": "the CPU, 2 torch threads"}}
    assert "--torch-device cuda" in cross_device_note([cpu_ref, gpu_row])
    assert note.startswith("the reference ran on Orin")
