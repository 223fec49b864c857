"""The one check of every output path (ddad_edge.output_paths) and the atomic write behind it: regular files
only, a link's target replaced and the link kept, never an input."""

from __future__ import annotations

import os
import stat

import pytest

from ddad_edge.bundle import atomic_write_bytes
from ddad_edge.errors import DdadError
from ddad_edge.output_paths import bundle_files, check_output_file, check_output_folder


def test_a_fifo_is_refused_and_left_a_fifo(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(DdadError, match=r"--json .*pipe is a FIFO \(named pipe\), not a regular file"):
        check_output_file(fifo, "--json", "x.json")
    # the write itself refuses it too (the check a command forgot would not turn the pipe into a file)
    with pytest.raises(DdadError, match="not a regular file"):
        atomic_write_bytes(fifo, b"{}")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert os.listdir(tmp_path) == ["pipe"], "no temporary file left"


@pytest.mark.parametrize("node", ["/dev/null", "/dev/full"])
def test_a_device_node_is_refused_by_the_check(node):
    """Only the check (it opens nothing): a write test on a real device node could replace it."""
    with pytest.raises(DdadError, match="is a character device, not a regular file"):
        check_output_file(node, "--md", "x.md")
    assert stat.S_ISCHR(os.stat(node).st_mode)


def test_a_link_is_followed_its_target_replaced_and_the_link_kept(tmp_path):
    target = tmp_path / "real" / "metrics.json"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "latest.json"
    link.symlink_to(target)
    path = check_output_file(link, "--json", "x.json")
    assert path == target.resolve()
    atomic_write_bytes(link, b"new")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new"


def test_a_link_to_a_device_node_is_refused(tmp_path):
    link = tmp_path / "out.json"
    link.symlink_to("/dev/null")
    with pytest.raises(DdadError, match="character device"):
        check_output_file(link, "--json", "x.json")
    assert link.is_symlink()


def test_outputs_never_land_on_or_in_inputs(tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.yaml").write_text("schema_version: 1\n")
    (bundle / "eval").mkdir()
    inputs = (*bundle_files(bundle), ("--images", tmp_path / "images"))
    with pytest.raises(DdadError, match="is a file of the bundle"):
        check_output_file(bundle / "manifest.yaml", "--events", "events.jsonl", inputs)
    link = tmp_path / "log.jsonl"
    link.symlink_to(bundle / "manifest.yaml")  # through a link as well
    with pytest.raises(DdadError, match="is a file of the bundle"):
        check_output_file(link, "--events", "events.jsonl", inputs)
    with pytest.raises(DdadError, match="is inside --images"):
        check_output_folder(tmp_path / "images" / "out", "--out", inputs)
    assert check_output_file(bundle / "eval" / "m.json", "--json", "m.json", inputs) == bundle / "eval" / "m.json"
    assert (bundle / "manifest.yaml").read_text() == "schema_version: 1\n"
