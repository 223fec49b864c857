"""A full disk, on a real tmpfs and on the fake (see full_disk.py).

The loop keeps inspecting every frame and says that saving stopped; the event log never holds half a
record and says how many it lost; writing a manifest or an engine fails with one line and leaves the
bundle exactly as it was, with no temporary file behind.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from ddad_edge.bundle import read_bundle, update_manifest
from ddad_edge.cli import main
from ddad_edge.errors import DdadError
from ddad_edge.inspect.loop import LoopConfig, run_loop
from ddad_edge.inspect.ng_images import NgImageSink, NgQuota
from ddad_edge.inspect.sinks import EventLog, EventLogSink, Sink, read_events
from ddad_edge.inspect.sources import ImageFolderSource
from tests.bundle_factory import make_toy_bundle
from tests.cli_helpers import assert_one_line
from tests.hardening.checks import snapshot
from tests.inspect.media import write_images


def lines_of(path):
    """Every line of a JSON-lines file, parsed: a torn line fails here."""
    text = path.read_text()
    assert text == "" or text.endswith("\n"), "the file ends in half a record"
    return [json.loads(line) for line in text.splitlines()]


def test_event_log_loses_whole_records_only_and_says_how_many(tiny_disk):
    path = tiny_disk.path / "events.jsonl"
    log = EventLog(path)
    tiny_disk.fill(leave=5000)
    written, failed = [], 0
    for seq in range(200):
        try:
            log.write({"kind": "frame", "seq": seq, "pad": "x" * (37 + seq % 11)})  # odd sizes: partial writes
            written.append(seq)
        except OSError:
            failed += 1
        assert [r["seq"] for r in lines_of(path)] == written  # after every attempt: whole records only
    assert written == list(range(len(written))) and 10 < len(written) < 200
    assert failed == 200 - len(written) and log.lost == failed
    tiny_disk.free()
    for seq in range(200, 205):
        log.write({"kind": "frame", "seq": seq})
    log.close()
    records = lines_of(path)
    gap = records[len(written)]
    assert gap["kind"] == "status" and f"{failed} records could not be written" in gap["message"]
    assert [r["seq"] for r in records if r["kind"] == "frame"] == written + list(range(200, 205))


def noisy_part(i: int, red: bool) -> np.ndarray:
    """A 48x64 RGB frame of green and blue noise (PNGs of a few KB), with a red patch when `red`."""
    image = np.random.default_rng(i).integers(0, 120, (48, 64, 3), dtype=np.uint8)
    image[..., 0] = 0  # the red-score bundle scores the red channel
    if red:
        image[12:36, 16:48] = (255, 0, 0)
    return image


class Memory(Sink):
    """Keeps verdicts and notes in memory, where the disk cannot lose them."""

    name = "memory"

    def __init__(self):
        self.verdicts, self.notes = {}, []

    def on_result(self, result):
        self.verdicts[result.frame.seq] = result.verdict.value

    def on_note(self, message):
        self.notes.append(message)


def test_the_loop_keeps_inspecting_when_the_disk_fills(tiny_disk, tmp_path, runner):
    n = 120
    red = [i % 3 == 0 for i in range(n)]
    write_images(tmp_path / "frames", [noisy_part(i, r) for i, r in enumerate(red)])
    memory = Memory()
    ng = NgImageSink(tiny_disk.path / "ng", NgQuota(), threshold=0.1, retry_s=3600)
    log = EventLog(tiny_disk.path / "events.jsonl")
    tiny_disk.fill(leave=40_000)
    summary = run_loop(runner, ImageFolderSource(tmp_path / "frames"), LoopConfig(threshold=0.1), None,
                       [ng, memory, EventLogSink(log)])
    # every frame inspected, with the right verdict, although the disk filled part way
    assert summary.frames == n and summary.stop_reason.value == "end of source"
    assert [memory.verdicts[i] for i in range(n)] == ["NG" if r else "OK" for r in red]
    assert 0 < ng.saved < sum(red) and ng.failed >= 1 and ng.skipped >= 1
    disk_notes = [m for m in memory.notes if "disk full" in m]
    assert disk_notes and "paused" in disk_notes[0] and "inspection goes on" in disk_notes[0]
    assert log.lost > 0 and summary.sink_errors >= log.lost
    # what is on the disk is whole: PNGs that decode, no temporary files, an event log of whole lines
    files = sorted((tiny_disk.path / "ng").iterdir())
    assert len(files) == ng.saved and all(f.suffix == ".png" for f in files)
    assert all(cv2.imread(str(f)) is not None for f in files)
    # records kept are in order; where frames are missing (space came back now and then, as failed writes
    # freed their bytes), a status record between them says that records could not be written
    records = lines_of(tiny_disk.path / "events.jsonl")
    frames = [i for i, r in enumerate(records) if r["kind"] == "frame"]
    assert frames and records[frames[0]]["seq"] == 0
    for a, b in zip(frames, frames[1:]):
        assert records[b]["seq"] > records[a]["seq"]
        if records[b]["seq"] > records[a]["seq"] + 1:
            assert any("could not be written" in r.get("message", "") for r in records[a + 1:b]), records[a:b + 1]


def test_manifest_writing_fails_whole(tiny_disk, tmp_path):
    bundle = make_toy_bundle(tiny_disk.path / "bundle", image_size=16)
    before = snapshot(bundle.path)
    tiny_disk.fill(leave=0)
    with pytest.raises(DdadError) as info:
        update_manifest(bundle.path, {"calibration": {"summary": "x" * 50_000}})
    assert_one_line(info.value, "manifest.yaml", "No space left on device")
    assert snapshot(bundle.path) == before, "the old manifest is intact and no temporary file is left"
    assert read_bundle(bundle.path).manifest == bundle.manifest


def test_engine_writing_fails_whole(tiny_disk):
    from ddad_edge.deploy.tensorrt_build import build_engine
    from ddad_edge.deploy.tensorrt_profile import BuildProfile
    from tests.fakes.fake_cuda import FakeCuda
    from tests.fakes.fake_tensorrt import FakeTensorRT

    bundle = make_toy_bundle(tiny_disk.path / "bundle", image_size=16)
    before = snapshot(bundle.path)
    tiny_disk.fill(leave=0)
    cuda = FakeCuda()
    with pytest.raises(DdadError) as info:
        build_engine(bundle.path, BuildProfile(name="test", max_batch=2), trt=FakeTensorRT("10.3", cuda=cuda),
                     cuda=cuda, log=lambda line: None)
    assert_one_line(info.value, ".engine", "No space left on device")
    assert snapshot(bundle.path) == before
    tiny_disk.free()
    read_bundle(bundle.path)


def test_the_run_command_on_a_full_disk(tiny_disk, tmp_path, red_bundle, capsys):
    """`ddad-edge run --out` on a full disk: exit 0, every frame in the summary, no traceback."""
    write_images(tmp_path / "frames", [noisy_part(i, i % 2 == 0) for i in range(30)])
    tiny_disk.fill(leave=0)
    code = main(["run", "--images", str(tmp_path / "frames"), "--bundle", str(red_bundle.path),
                 "--out", str(tiny_disk.path / "out")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "frames 30: OK 15, NG 15, FAULT 0" in out
    assert "Traceback" not in err and "inspection goes on" in err
    tiny_disk.free()
    assert read_events(tiny_disk.path / "out" / "events.jsonl") == [] or all(
        isinstance(r, dict) for r in read_events(tiny_disk.path / "out" / "events.jsonl"))


def test_atomic_writes_leave_ordinary_whole_files(tmp_path):
    from ddad_edge.bundle import atomic_write_bytes

    target = tmp_path / "report.json"
    target.write_text("old")
    atomic_write_bytes(target, b"new" * 1000)
    assert target.read_bytes() == b"new" * 1000 and (target.stat().st_mode & 0o777) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
    with pytest.raises(DdadError) as info:
        atomic_write_bytes(tmp_path / "missing-folder" / "x.json", b"x")
    assert_one_line(info.value, "missing-folder")
