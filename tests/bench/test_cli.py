"""`ddad-edge bench` end to end on a real ONNX bundle, its files, its one-line errors, and that it runs
where torch is not installed (a Jetson)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ddad_edge.bench.timing import percentiles_of
from tests.cli_helpers import run_cli

REPO = Path(__file__).resolve().parents[2]


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


def _bad_outputs(tmp_path):
    """(options, words of the error) for output paths that cannot be written; tmp_path/out is a folder and
    tmp_path/model.onnx a file."""
    out, onnx = tmp_path / "out", tmp_path / "model.onnx"
    return [
        (("--json", out), ["--json", f"{out} is a folder", str(out / "bench.json")]),
        (("--md", out), ["--md", f"{out} is a folder"]),
        (("--plot", out), ["--plot", f"{out} is a folder"]),  # not a silent out.png beside it
        (("--json", onnx / "x.json"), ["--json", f"{onnx} is a file, not a folder"]),
        (("--md", onnx / "deep" / "x.md"), ["--md", f"{onnx} is a file, not a folder"]),
        (("--plot", onnx / "x.png"), ["--plot", f"{onnx} is a file, not a folder"]),
        (("--plot", tmp_path / "lat.xyz"), ["--plot", "does not write .xyz files", ".png"]),
        (("--json", tmp_path / "r.json", "--md", tmp_path / "r.json"), ["--json and --md both write"]),
    ]


@pytest.mark.parametrize("case", range(8))
def test_output_paths_are_checked_before_the_bundle_loads(capsys, tmp_path, case):
    """A bad output path is one line before anything is loaded or timed: the bundle here does not even
    exist, and the error is still about the output. Nothing is created."""
    (tmp_path / "out").mkdir()
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    options, words = _bad_outputs(tmp_path)[case]
    good = next((o, tmp_path / "new" / f"r.{ext}") for o, ext in (("--json", "json"), ("--md", "md"), ("--plot", "png"))
                if o not in options)  # a good output beside the bad one: its folder must not be made either
    code, _, err = run_cli(capsys, "bench", "--bundle", tmp_path / "no-bundle", *options, *good, "--no-progress")
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert all(w in err for w in words), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "out"] and not any((tmp_path / "out").iterdir())


def test_bench_says_where_its_files_went(capsys, toy_bundle, tmp_path):
    """One line per written file, with the path written: a plot named without a suffix is a .png."""
    code, out, err = run_cli(capsys, "bench", "--bundle", toy_bundle.path, "--warmup", 0, "--iters", 2,
                             "--frame-size", "64x48", "--no-progress", "--json", tmp_path / "new" / "r.json",
                             "--md", tmp_path / "r.md", "--plot", tmp_path / "latency")
    assert code == 0, err
    written = [line for line in out.splitlines() if line.startswith("written: ")]
    assert written == [f"written: {tmp_path / 'new' / 'r.json'} (rows, JSON)",
                       f"written: {tmp_path / 'r.md'} (report, Markdown)",
                       f"written: {tmp_path / 'latency.png'} (latency vs AUROC plot)"], out
    assert json.loads((tmp_path / "new" / "r.json").read_text())[0]["frames"] == 2
    assert (tmp_path / "latency.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("size,words", [("100000x100000", ["10,000,000,000 pixels", "67,108,864"]),
                                        ("8193x8192", ["more than the limit"]),
                                        ("70000x16", ["JPEG", "65500"])])
def test_frame_size_over_the_image_limit(capsys, toy_bundle, size, words):
    code, _, err = run_cli(capsys, "bench", "--bundle", toy_bundle.path, "--frame-size", size, "--iters", 1,
                           "--warmup", 0, "--no-progress")
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith(f"error: --frame-size {size}"), err
    assert all(w in err for w in words), err


def test_a_failed_write_keeps_the_other_files(capsys, tmp_path):
    """A file that cannot be written after all (the disk filled, a file appeared where a folder was) does not
    stop the others: they are written and said, and the failure is one line at the end."""
    from ddad_edge.cli.bench import _write_outputs
    from ddad_edge.errors import DdadError

    (tmp_path / "taken").write_text("")
    outputs = {"json": tmp_path / "taken" / "r.json", "plot": tmp_path / "p.png"}
    with pytest.raises(DdadError, match=r"^--json: cannot create the folder of .*taken/r\.json") as caught:
        _write_outputs(outputs, [], {}, "ddad-edge bench", None)
    assert len(str(caught.value).splitlines()) == 1
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert capsys.readouterr().out == f"written: {tmp_path / 'p.png'} (latency vs AUROC plot)\n"
