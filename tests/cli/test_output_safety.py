"""What the commands write never destroys anything: no device node, no input, no bundle file, no other run's
log; a full disk is one line and no empty file. Each case was a traceback or a lost file before."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ddad_edge.cli import main
from tests.bundle_factory import make_red_bundle
from tests.cli.test_bad_inputs import _red_dataset
from tests.cli_helpers import assert_one_line, run_cli
from tests.inspect.checks import is_red
from tests.inspect.media import part_image, write_video

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def bundle(tmp_path):
    return make_red_bundle(tmp_path / "bundle", image_size=32, threshold=0.1)


@pytest.fixture
def video(tmp_path):
    return write_video(tmp_path / "v.avi", [part_image(i, is_red(i)) for i in range(10)])


@pytest.mark.parametrize("option", ["--json", "--md"])
def test_bench_refuses_a_device_node_before_anything(capsys, tmp_path, option):
    """`bench --json /dev/full` as root replaced the device node with a JSON file. The bundle named here
    does not exist, so no code path reaches a write: the check must come first, and it does."""
    res = run_cli(capsys, "bench", "--bundle", tmp_path / "nope", option, "/dev/full", "--no-progress")
    assert_one_line(res, f"{option} /dev/full is a character device, not a regular file")
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def _manifest_bytes(bundle) -> bytes:
    return (bundle.path / "manifest.yaml").read_bytes()


def test_run_events_never_overwrite_a_bundle_file_or_the_video(capsys, tmp_path, bundle, video):
    before, video_bytes = _manifest_bytes(bundle), video.read_bytes()
    for events, words in ((bundle.path / "manifest.yaml", "is a file of the bundle"), (video, "is --video")):
        res = run_cli(capsys, "run", "--video", video, "--bundle", bundle.path, "--out", tmp_path / "o",
                      "--events", events)
        assert_one_line(res, "--events", words)
    assert _manifest_bytes(bundle) == before and video.read_bytes() == video_bytes
    assert not (tmp_path / "o").exists()


def test_run_out_is_never_the_image_folder_or_the_bundle(capsys, tmp_path, bundle):
    """`run --images X --out X` wrote its NG images into X, and inspected them on the next start."""
    images = tmp_path / "frames"
    images.mkdir()
    import cv2

    for i in range(3):
        cv2.imwrite(str(images / f"{i}.png"), part_image(i, True)[:, :, ::-1])
    for out, words in ((images, "--out"), (images / "out", "is inside --images"), (bundle.path, "the bundle")):
        res = run_cli(capsys, "run", "--images", images, "--bundle", bundle.path, "--out", out)
        assert_one_line(res, words)
    assert sorted(p.name for p in images.iterdir()) == ["0.png", "1.png", "2.png"]


def test_a_second_run_into_the_same_log_is_refused_while_the_first_runs(capsys, tmp_path, bundle):
    """Two runs into one --out interleaved their records with nothing to tell them apart."""
    long_video = write_video(tmp_path / "long.avi", [part_image(i, is_red(i)) for i in range(600)], fps=30)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    first = subprocess.Popen([sys.executable, "-m", "ddad_edge", "run", "--video", str(long_video), "--realtime",
                              "--bundle", str(bundle.path), "--out", str(out)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while not (out / "events.jsonl").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        res = run_cli(capsys, "run", "--video", long_video, "--bundle", bundle.path, "--out", out,
                      "--max-frames", "3")
        assert_one_line(res, f"another ddad-edge run (process {first.pid}) is writing the event log")
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert first.returncode == 0
    # once the first has ended, the same command runs (the lock died with it)
    assert main(["run", "--video", str(long_video), "--bundle", str(bundle.path), "--out", str(out),
                 "--max-frames", "3"]) == 0


def test_evaluate_json_on_a_full_disk_is_one_line_and_no_empty_file(capsys, tmp_path, bundle, tiny_disk):
    data = _red_dataset(tmp_path / "data")
    tiny_disk.fill()
    target = tiny_disk.path / "metrics.json"
    code, _, err = run_cli(capsys, "evaluate", "--bundle", bundle.path, "--data", data, "--category", "widget",
                           "--out", tmp_path / "ev", "--json", target)
    assert code == 2 and "Traceback" not in err, err
    assert err.splitlines()[-1] == (f"error: cannot write {target}: No space left on device; nothing was "
                                    "changed there"), "one line, after the evaluation's own notes"
    assert not target.exists()
    assert sorted(p.name for p in tiny_disk.path.iterdir()) == [".filler"], "no temporary file left"


def test_train_out_a_file_or_inside_the_dataset_is_one_line(capsys, tmp_path):
    """`train --out` an existing file was a FileExistsError traceback; the dataset root got a run in it."""
    import shutil

    data = _red_dataset(tmp_path / "data")
    shutil.copytree(data / "widget" / "test" / "good", data / "widget" / "train" / "good")  # a trainable set
    (tmp_path / "notes.txt").write_text("mine")
    listing = sorted(str(p) for p in data.rglob("*"))
    for out, words in ((tmp_path / "notes.txt", "is a file, not a folder"), (data, "is the dataset"),
                       (data / "widget" / "run", "is inside the dataset")):
        res = run_cli(capsys, "train", "--data", data, "--category", "widget", "--preset", "tiny",
                      "--out", out, "--max-steps", "1")
        assert_one_line(res, "--out", words)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert sorted(str(p) for p in data.rglob("*")) == listing


def test_demo_and_synth_check_where_they_write_first(capsys, tmp_path, monkeypatch):
    """The demo runs for minutes and wrote --json last (a traceback then); synth --out a file raised."""
    import ddad_edge.demo

    def never(*_args, **_kwargs):
        raise AssertionError("the demo ran before its output paths were checked")

    monkeypatch.setattr(ddad_edge.demo, "run_demo", never)
    (tmp_path / "notes.txt").write_text("mine")
    for args, words in ((["demo", "--out", tmp_path / "d", "--json", "/dev/null"], "character device"),
                        (["demo", "--out", tmp_path / "notes.txt"], "is a file, not a folder"),
                        (["synth", "--out", tmp_path / "notes.txt", "--n-train", "2"], "is a file, not a folder")):
        res = run_cli(capsys, *args)
        assert_one_line(res, words)
    assert (tmp_path / "notes.txt").read_text() == "mine" and sorted(os.listdir(tmp_path)) == ["notes.txt"]
