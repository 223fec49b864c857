"""Checkpoint files and run folders: the permissions a checkpoint is written with, and a damaged split.yaml."""

import os
import shutil
import stat

import pytest

from ddad_edge.errors import DdadError
from ddad_edge.model.checkpoint import open_run, save_checkpoint


@pytest.fixture
def umask_022():
    before = os.umask(0o022)
    yield
    os.umask(before)


def test_a_checkpoint_gets_the_mode_of_a_plain_file(tmp_path, umask_022):
    path = save_checkpoint(tmp_path / "students" / "steps_2.pt", {"config": {}})
    plain = tmp_path / "plain.yaml"
    plain.write_text("x: 1\n")
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o644
    os.chmod(path, 0o640)  # a mode someone chose for a file stays when it is written again
    save_checkpoint(path, {"config": {}, "step": 2})
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [p.name for p in path.parent.iterdir()] == ["steps_2.pt"]  # no temporary file left behind


@pytest.mark.parametrize("text, words", [
    ("train: [a.png\nval: [", "is not valid YAML"),
    ("- a.png\n- b.png\n", "is not a split"),
    ("train: 3\nval: []\n", "is not a split"),
])
def test_a_damaged_split_yaml_is_one_line_naming_it(tiny_run, tmp_path, text, words):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    (run_dir / "split.yaml").write_text(text)
    with pytest.raises(DdadError, match=words) as caught:
        open_run(run_dir)
    message = str(caught.value)
    assert str(run_dir / "split.yaml") in message and "train the run again" in message
    assert len(message.splitlines()) == 1


def test_evaluate_on_a_run_with_a_garbled_split_yaml_is_one_line(tiny_run, tmp_path, capsys):
    from ddad_edge.cli import main

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    (run_dir / "split.yaml").write_bytes(b"train: [\xff\xfe")
    code = main(["evaluate", "--run", str(run_dir)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "split.yaml" in err and len(err.splitlines()) == 1, err
