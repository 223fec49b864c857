"""Resource limits: event-log rotation by size keeps every record it is allowed to keep, a restart appends
instead of replacing, and `ddad-edge run` refuses numeric options that would misdrive the line (NaN,
negative, absurd) with one line before anything is opened. (The NG-image quota is held under the soak,
test_soak.py; a full disk is test_disk_full.py.)"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ddad_edge.cli import main
from ddad_edge.inspect.sinks import EventLog, read_events
from tests.hardening.checks import fuzz


def files_of(path):
    return sorted(path.parent.glob(path.name + "*"))


@fuzz(25)
@given(max_bytes=st.integers(200, 3000), backups=st.integers(0, 6), sizes=st.lists(st.integers(0, 400),
                                                                                   min_size=1, max_size=120))
def test_rotation_keeps_a_whole_contiguous_tail(tmp_path_factory, max_bytes, backups, sizes):
    """Whatever the limit, the number of old files and the record sizes: the records kept are whole,
    in order, the newest ones without a gap; no file is over the limit unless one record alone is."""
    path = tmp_path_factory.mktemp("log") / "events.jsonl"
    log = EventLog(path, max_bytes=max_bytes, backups=backups)
    for seq, size in enumerate(sizes):
        log.write({"seq": seq, "pad": "x" * size})
    log.close()
    kept = [r["seq"] for r in read_events(path)]
    assert kept == list(range(len(sizes) - len(kept), len(sizes))) and kept, "a contiguous tail, newest last"
    files = files_of(path)
    assert len(files) <= backups + 1
    for f in files:
        lines = f.read_text().splitlines()
        assert all(json.loads(line) for line in lines)
        assert f.stat().st_size <= max_bytes or len(lines) == 1
    # nothing was dropped that the limit allowed to keep: one more old file would have held more
    if kept[0] > 0:
        assert len(files) == backups + 1


def test_rotation_with_room_for_everything_loses_nothing(tmp_path):
    path = tmp_path / "events.jsonl"
    log = EventLog(path, max_bytes=1000, backups=100)
    for seq in range(600):
        log.write({"kind": "frame", "seq": seq})
    log.close()
    assert [r["seq"] for r in read_events(path)] == list(range(600)) and len(files_of(path)) > 10


def test_a_restart_appends_and_keeps_rotating(tmp_path):
    path = tmp_path / "events.jsonl"
    for run in range(3):
        log = EventLog(path, max_bytes=600, backups=50)
        for seq in range(run * 40, run * 40 + 40):
            log.write({"run": run, "seq": seq})
        log.close()
    assert [r["seq"] for r in read_events(path)] == list(range(120))


@pytest.mark.parametrize("option,value", [
    ("--pulse-ms", "nan"), ("--pulse-ms", "-5"), ("--pulse-ms", "0"), ("--delay-ms", "-1"), ("--delay-ms", "inf"),
    ("--max-late-ms", "nan"), ("--deadline-ms", "-10"), ("--stall-s", "0"), ("--events-max-mb", "-1"),
    ("--ng-max-mb", "nan"), ("--ng-max-images", "-1"), ("--fps", "-30"), ("--batch", "100000"),
    ("--http-port", "70000"), ("--threshold", "nan"), ("--threshold", "inf"), ("--max-frames", "-1"),
])
def test_run_refuses_numbers_that_would_misdrive_the_line(tmp_path, red_bundle, capsys, option, value):
    (tmp_path / "images").mkdir()
    code = main(["run", "--images", str(tmp_path / "images"), "--bundle", str(red_bundle.path),
                 "--out", str(tmp_path / "out"), option, value])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    assert option.lstrip("-") in err[0] or "threshold" in err[0], err
    assert not (tmp_path / "out").exists(), "refused before anything was written"


def test_run_refuses_an_output_folder_it_cannot_create(tmp_path, red_bundle, capsys):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"")
    (tmp_path / "taken").write_text("a file where the output folder should go")
    code = main(["run", "--images", str(tmp_path / "images"), "--bundle", str(red_bundle.path),
                 "--out", str(tmp_path / "taken" / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    # refused by the output-path check, before the bundle loads: the error names --out and the file in its way
    assert code == 2 and len(err) == 1 and "--out" in err[0] and "is a file, not a folder" in err[0], err
    assert (tmp_path / "taken").read_text().startswith("a file")


def test_a_log_deleted_while_running_is_started_again(tmp_path):
    path = tmp_path / "out" / "events.jsonl"
    log = EventLog(path, fsync_s=0.0)  # check at every record
    log.write({"seq": 0})
    (tmp_path / "out" / "events.jsonl").unlink()
    (tmp_path / "out").rmdir()
    for seq in range(1, 4):
        log.write({"seq": seq})
    log.close()
    records = read_events(path)
    assert "deleted while the run wrote it" in records[0]["message"]
    assert [r["seq"] for r in records[1:]] == [2, 3]  # record 1 went with the deleted file, as the note says
