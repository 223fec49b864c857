"""`ddad-edge synth` through the real command line entry point."""

from __future__ import annotations

from pathlib import Path

from ddad_edge.cli import main
from ddad_edge.data.folders import list_test, list_train


def test_synth_writes_a_dataset_and_a_video(tmp_path: Path, capsys):
    rc = main(["synth", "--out", str(tmp_path), "--category", "disc", "--n-train", "4", "--n-test-good", "2",
               "--n-test-defect", "4", "--seed", "1", "--video"])
    out = capsys.readouterr().out
    assert rc == 0
    assert len(list_train(tmp_path, "disc")) == 4 and len(list_test(tmp_path, "disc")) == 6
    assert (tmp_path / "conveyor.avi").stat().st_size > 0 and (tmp_path / "conveyor.json").is_file()
    assert str(tmp_path / "disc") in out and "conveyor.avi" in out


def test_synth_into_a_non_empty_folder_is_one_line_error(tmp_path: Path, capsys):
    (tmp_path / "widget").mkdir()
    (tmp_path / "widget" / "keep.txt").write_text("x")
    rc = main(["synth", "--out", str(tmp_path), "--n-train", "1"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "not empty" in err
