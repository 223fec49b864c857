"""The event log (flushed per record, rotation without loss) and NG images (atomic, heatmap, quota)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from ddad_edge.errors import DdadError
from ddad_edge.inspect.decide import Verdict
from ddad_edge.inspect.frame import Dropped, Frame
from ddad_edge.inspect.ng_images import NgImageSink, NgQuota, overlay_heatmap
from ddad_edge.inspect.result import FrameResult
from ddad_edge.inspect.sinks import EventLog, EventLogSink, Sink, read_events


def test_every_record_is_on_disk_before_the_next_is_written(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    for i in range(5):
        log.write({"kind": "frame", "seq": i})
        # read through a separate file handle while the log is still open: nothing waits in a buffer
        lines = (tmp_path / "events.jsonl").read_text().splitlines()
        assert len(lines) == i + 1 and json.loads(lines[-1])["seq"] == i
    log.close()


def test_rotation_by_size_keeps_every_record(tmp_path):
    log = EventLog(tmp_path / "events.jsonl", max_bytes=400, backups=20)
    for i in range(100):
        log.write({"kind": "frame", "seq": i, "pad": "x" * 20})
    log.close()
    files = list(tmp_path.glob("events.jsonl*"))
    assert len(files) > 5
    assert all(f.stat().st_size <= 400 for f in files)
    assert [r["seq"] for r in read_events(tmp_path / "events.jsonl")] == list(range(100))


class FakePowerCut:
    """What a power cut leaves of the files: for each file, only the bytes it held at its last fsync.

    Wraps os.fsync (the real one still runs); `durable(path)` is what would be read back after the cut."""

    def __init__(self, monkeypatch):
        self.synced: dict[tuple[int, int], int] = {}  # (st_dev, st_ino) → size at the last fsync
        real = os.fsync

        def fsync(fd):
            st = os.fstat(fd)
            self.synced[(st.st_dev, st.st_ino)] = st.st_size
            real(fd)

        monkeypatch.setattr(os, "fsync", fsync)

    def durable(self, path) -> bytes:
        st = os.stat(path)
        return Path(path).read_bytes()[:self.synced.get((st.st_dev, st.st_ino), 0)]


def test_with_fsync_every_record_survives_a_power_cut(tmp_path, monkeypatch):
    power = FakePowerCut(monkeypatch)
    log = EventLog(tmp_path / "events.jsonl", fsync_s=0.0)
    for i in range(20):
        log.write({"kind": "frame", "seq": i})
        survived = power.durable(tmp_path / "events.jsonl").decode().splitlines()
        assert [json.loads(line)["seq"] for line in survived] == list(range(i + 1))
    log.close()


def test_a_power_cut_loses_at_most_fsync_s_and_nothing_once_closed(tmp_path, monkeypatch):
    power = FakePowerCut(monkeypatch)
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    log = EventLog(tmp_path / "events.jsonl", fsync_s=1.0)
    for i in range(30):  # a record every 0.25 s
        clock[0] += 0.25
        log.write({"kind": "frame", "seq": i})
        survived = [json.loads(line)["seq"] for line in power.durable(tmp_path / "events.jsonl").splitlines()]
        assert survived == list(range(len(survived))) and i + 1 - len(survived) <= 3  # ≤ 1 s of records lost
        assert i < 4 or survived, "a record older than fsync_s is on the disk"
    log.write({"kind": "frame", "seq": 30})
    log.close()  # the tail since the last sync is synced on close
    assert [json.loads(line)["seq"] for line in power.durable(tmp_path / "events.jsonl").splitlines()] == \
        list(range(31))


def ng_result(seq: int, size: int = 32) -> FrameResult:
    rng = np.random.default_rng(seq)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)  # noise: PNGs of realistic size
    amap = np.zeros((size, size), np.float32)
    amap[8:16, 8:16] = 0.9
    return FrameResult(Frame(seq, time.monotonic(), time.time(), image), Verdict.NG, score=0.9,
                       model_input=image, anomaly_map=amap)


def test_ng_images_are_written_whole_with_a_heatmap(tmp_path):
    sink = NgImageSink(tmp_path / "ng", NgQuota(), threshold=0.5, run="r1")
    results = [ng_result(i) for i in range(3)]
    for r in results:
        sink.on_result(r)
    ok = FrameResult(Frame(9, 0.0, 0.0, results[0].model_input), Verdict.OK, score=0.1,
                     model_input=results[0].model_input, anomaly_map=results[0].anomaly_map)
    sink.on_result(ok)
    sink.close()
    files = sorted(p.name for p in (tmp_path / "ng").iterdir())
    assert files == ["r1_00000000_0.9000.png", "r1_00000001_0.9000.png", "r1_00000002_0.9000.png"]  # no .tmp
    assert [r.ng_image for r in results] == [f"ng/{f}" for f in files] and ok.ng_image is None
    saved = cv2.imread(str(tmp_path / "ng" / files[0]))
    assert saved.shape == (32, 64, 3)
    assert np.array_equal(saved[:, :32], cv2.cvtColor(results[0].model_input, cv2.COLOR_RGB2BGR))
    overlay = saved[:, 32:].astype(int)
    assert overlay[12, 12, 2] - overlay[12, 12, 0] > overlay[0, 0, 2] - overlay[0, 0, 0]  # hot spot is red


def test_quota_by_count_stops_saving_but_not_recording(tmp_path):
    notes = []
    sink = NgImageSink(tmp_path / "ng", NgQuota(max_images=2), threshold=0.5)
    sink.on_start({}, notes.append)
    results = [ng_result(i) for i in range(5)]
    for r in results:
        sink.on_result(r)
    sink.close()
    assert len(list((tmp_path / "ng").iterdir())) == 2 and sink.saved == 2 and sink.skipped == 3
    assert [r.ng_image is not None for r in results] == [True, True, False, False, False]
    assert all("quota reached (2 images)" in r.ng_image_note for r in results[2:])
    assert len(notes) == 1 and "inspection goes on" in notes[0]


def test_quota_by_bytes_is_never_exceeded(tmp_path):
    one = len(cv2.imencode(".png", overlay_heatmap(ng_result(0).model_input, ng_result(0).anomaly_map, 0.5),
                           [cv2.IMWRITE_PNG_COMPRESSION, 3])[1])
    limit = int(one * 3.5)
    sink = NgImageSink(tmp_path / "ng", NgQuota(max_images=100, max_bytes=limit), threshold=0.5, queue_size=1)
    sink.on_start({}, lambda message: None)
    for i in range(10):
        sink.on_result(ng_result(i))
        time.sleep(0.02)  # let the writer keep up, so the quota is the limit, not the queue
    sink.close()
    written = sum(p.stat().st_size for p in (tmp_path / "ng").iterdir())
    assert 2 <= sink.saved <= 3 and written <= limit


def test_quota_counts_images_left_by_earlier_runs(tmp_path):
    first = NgImageSink(tmp_path / "ng", NgQuota(max_images=4), threshold=0.5, run="first")
    for i in range(3):
        first.on_result(ng_result(i))
    first.close()
    second = NgImageSink(tmp_path / "ng", NgQuota(max_images=4), threshold=0.5, run="second")
    second.on_start({}, lambda message: None)
    results = [ng_result(i) for i in range(3)]  # the same sequence numbers as the first run
    for r in results:
        second.on_result(r)
    second.close()
    names = sorted(p.name for p in (tmp_path / "ng").iterdir())
    assert len(names) == 4 and sum(n.startswith("first_") for n in names) == 3, "nothing of run 1 replaced"
    assert second.saved == 1 and [r.ng_image is not None for r in results] == [True, False, False]


def test_settings_that_json_cannot_hold_are_written_as_text(tmp_path):
    sink = EventLogSink(EventLog(tmp_path / "events.jsonl"))
    sink.on_start({"threshold": float("inf"), "nested": {"x": float("nan")}}, lambda message: None)
    sink.close()
    (record,) = read_events(tmp_path / "events.jsonl")
    assert record["kind"] == "start" and record["threshold"] == "inf" and record["nested"]["x"] == "nan"


def test_the_event_log_sink_writes_one_record_of_each_kind(tmp_path):
    path = tmp_path / "events.jsonl"
    sink = EventLogSink(EventLog(path))
    assert sink.records is True and sink.name == "events"
    sink.on_start({"threshold": 0.5}, lambda message: None)
    sink.on_dropped(Dropped(7, 1.5, 2.5, "busy"))
    sink.on_note("camera slow")
    sink.on_rejects_cancelled([3, 4], "2 reject pulses cancelled")
    sink.on_summary({"frames": 9})
    sink.close()
    sink.close()  # a second close does nothing
    start, dropped, note, cancelled, summary = read_events(path)
    assert (start["kind"], start["message"], start["threshold"]) == ("start", "run started", 0.5)
    assert dropped == {"kind": "dropped", "seq": 7, "t_capture": 1.5, "wall_time": 2.5, "reason": "busy"}
    assert (note["kind"], note["message"]) == ("status", "camera slow")
    assert (cancelled["kind"], cancelled["seqs"], cancelled["message"]) == \
        ("rejects_cancelled", [3, 4], "2 reject pulses cancelled")
    assert (summary["kind"], summary["message"], summary["frames"]) == ("summary", "run ended", 9)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644 & ~umask


def test_a_sink_that_only_takes_notes_hears_of_cancelled_rejects():
    class Notes(Sink):
        def __init__(self):
            self.notes = []

        def on_note(self, message):
            self.notes.append(message)

    sink = Notes()
    sink.on_rejects_cancelled([1], "1 reject pulse cancelled")
    assert sink.notes == ["1 reject pulse cancelled"] and Sink.records is False


def test_an_event_log_that_cannot_be_created_is_one_line(tmp_path):
    (tmp_path / "taken").write_text("a file where the folder should be")
    with pytest.raises(DdadError) as caught:
        EventLog(tmp_path / "taken" / "events.jsonl")
    assert str(caught.value) == f"cannot write the event log {tmp_path / 'taken' / 'events.jsonl'}: File exists"


def test_rotation_fills_each_file_up_to_max_bytes_exactly(tmp_path):
    record = {"kind": "frame", "seq": 0}
    size = len(json.dumps(record, separators=(",", ":"))) + 1  # every record below has this size
    log = EventLog(tmp_path / "events.jsonl", max_bytes=3 * size, backups=2)
    for seq in range(8):
        log.write({"kind": "frame", "seq": seq})
    log.close()
    assert [p.stat().st_size for p in (tmp_path / "events.jsonl.2", tmp_path / "events.jsonl.1")] == [3 * size] * 2
    assert [r["seq"] for r in read_events(tmp_path / "events.jsonl")] == list(range(8))
    assert not (tmp_path / "events.jsonl.3").exists()


@pytest.mark.parametrize("backups", [0, 1])
def test_rotation_keeps_at_most_backups_old_files_the_newest_ones(tmp_path, backups):
    log = EventLog(tmp_path / "events.jsonl", max_bytes=60, backups=backups)
    for seq in range(10):
        log.write({"kind": "frame", "seq": seq, "pad": "x" * 20})  # 46 bytes: one record per file
    log.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl"] + [f"events.jsonl.{i}" for i in
                                                                             range(1, backups + 1)]
    assert [r["seq"] for r in read_events(tmp_path / "events.jsonl")] == list(range(9 - backups, 10))


def test_read_events_skips_torn_lines_and_files_that_are_not_rotations(tmp_path):
    path = tmp_path / "events.jsonl"
    (tmp_path / "events.jsonl.2").write_text('{"seq": 0}\n')
    (tmp_path / "events.jsonl.1").write_text('{"seq": 1}\n{"seq": 2, "tor\n{"seq": 2.5}\n{"seq": 2.6, "t')
    (tmp_path / "events.jsonl.bak").write_text('{"seq": 99}\n')
    path.write_text('{"seq": 3}\n')
    assert [r["seq"] for r in read_events(path)] == [0, 1, 2.5, 3]  # a damaged line costs only itself
    path.unlink()
    assert [r["seq"] for r in read_events(path)] == [0, 1, 2.5]


def test_a_log_file_deleted_while_running_is_started_again_and_says_how_much_may_be_lost(tmp_path, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    path = tmp_path / "out" / "day" / "events.jsonl"
    log = EventLog(path, fsync_s=2.0)
    log.write({"seq": 0})
    shutil.rmtree(tmp_path / "out")  # the file and the folders above it
    log.write({"seq": 1})  # before the next sync: goes with the deleted file
    clock[0] += 2.0
    log.write({"seq": 2})  # the sync notices the deletion
    log.write({"seq": 3})
    log.close()
    note, *rest = read_events(path)
    assert set(note) == {"kind", "t", "wall_time", "message"} and note["kind"] == "status"
    assert "records of up to 2 s before this one" in note["message"] and note["t"] == 102.0
    assert path.read_text().splitlines()[0] == json.dumps(note, separators=(",", ":"))  # compact, as every record
    assert [r["seq"] for r in rest] == [3] and log.records == 4
    only_file = EventLog(tmp_path / "kept" / "events.jsonl", fsync_s=0.0)
    only_file.write({"seq": 0})
    (tmp_path / "kept" / "events.jsonl").unlink()  # the folder stays
    only_file.write({"seq": 1})
    only_file.close()
    assert "deleted while the run wrote it" in read_events(tmp_path / "kept" / "events.jsonl")[0]["message"]


def test_a_log_that_cannot_be_started_again_loses_records_without_writing_elsewhere(tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(time, "monotonic", lambda: 100.0)
    path = tmp_path / "out" / "events.jsonl"
    log = EventLog(path, fsync_s=0.0)
    log.write({"seq": 0})
    shutil.rmtree(tmp_path / "out")
    (tmp_path / "out").write_text("a file where the log's folder was")
    log.write({"seq": 1})  # written to the deleted file; starting it again fails
    for seq in (2, 3):
        with pytest.raises(OSError):
            log.write({"seq": seq})
    log.close()
    assert log.lost == 2 and capfd.readouterr().out == ""


def test_a_rotation_that_cannot_open_the_new_file_loses_records_without_writing_elsewhere(tmp_path, monkeypatch,
                                                                                       capfd):
    log = EventLog(tmp_path / "events.jsonl", max_bytes=60, backups=5)
    log.write({"kind": "frame", "seq": 0, "pad": "x" * 20})
    real_open = os.open

    def failing_open(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "open", failing_open)
    for seq in (1, 2):
        with pytest.raises(OSError):
            log.write({"kind": "frame", "seq": seq, "pad": "x" * 20})
    monkeypatch.setattr(os, "open", real_open)
    for seq in (3, 4, 5):
        log.write({"kind": "frame", "seq": seq, "pad": "x" * 20})
    log.close()
    assert log.lost == 2 and capfd.readouterr().out == ""
    records = read_events(tmp_path / "events.jsonl")
    assert [r.get("seq") for r in records] == [0, None, 3, 4, 5]  # one note on the gap, before the next record
    assert set(records[1]) == {"kind", "t", "wall_time", "message"} and records[1]["kind"] == "status"
    assert records[1]["message"] == ("event log: 2 records could not be written (disk full or I/O error) and are "
                                     "missing before this one")
    raw = [line for p in sorted(tmp_path.glob("events.jsonl*")) for line in p.read_text().splitlines()]
    assert json.dumps(records[1], separators=(",", ":")) in raw  # compact, as every record


def test_a_record_that_json_cannot_hold_is_refused_and_nothing_is_written(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    log.write({"seq": 0})
    with pytest.raises(ValueError):
        log.write({"seq": 1, "score": float("nan")})  # NaN is no JSON: readers would choke on the line
    log.write({"seq": 2})
    log.close()
    assert (tmp_path / "events.jsonl").read_text() == '{"seq":0}\n{"seq":2}\n' and log.lost == 0


def test_default_log_keeps_five_backups_syncs_every_second_and_makes_its_folders(tmp_path, monkeypatch):
    power = FakePowerCut(monkeypatch)
    clock = [50.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    path = tmp_path / "a" / "b" / "events.jsonl"
    log = EventLog(path)
    clock[0] += 0.6
    log.write({"seq": 0})
    assert power.durable(path) == b""  # within the second: not synced yet
    clock[0] += 0.6
    log.write({"seq": 1})
    assert len(power.durable(path).splitlines()) == 2
    log.close()
    rotating = EventLog(tmp_path / "r" / "events.jsonl", max_bytes=60)
    for seq in range(10):
        rotating.write({"kind": "frame", "seq": seq, "pad": "x" * 20})  # one record per file
    rotating.close()
    assert len(list((tmp_path / "r").iterdir())) == 1 + 5


def test_closing_twice_leaves_other_descriptors_alone(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    log.write({"seq": 0})
    log.close()
    log.close()
    for fd in (0, 1, 2):
        os.fstat(fd)  # still open


def test_a_run_after_a_crash_mid_line_starts_its_records_on_a_line_of_their_own(tmp_path):
    """A power cut or SIGKILL during a write leaves half a line at the end of events.jsonl: the next run's
    first record must not be glued to it (read_events would drop both)."""
    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    log.write({"kind": "frame", "seq": 0})
    log.close()
    with path.open("ab") as f:
        f.write(b'{"kind":"frame","se')  # the torn tail of the crashed run
    log = EventLog(path)
    log.write({"kind": "frame", "seq": 1})
    log.close()
    assert [r["seq"] for r in read_events(path)] == [0, 1]
    assert path.read_bytes().endswith(b'{"kind":"frame","se\n{"kind":"frame","seq":1}\n')
