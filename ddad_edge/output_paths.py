"""Where a command may write: the one check of every output path a user gives (a file or a folder).

Checked before any work (a training, an evaluation or a benchmark can take minutes), so a path that cannot
be written is one line at once, not a traceback at the end. Nothing is created by the checks; the folders
are made when the files are written.

Outputs are written only as regular files. A device node, a FIFO or a socket at the path is refused: an
atomic write renames its temporary file over the path, which would replace `/dev/full` (as root) with a
JSON file. A symbolic link is followed: the file it points to is replaced and the link is kept, so the
checks return the link's target. An output never lands on one of the command's inputs (the video it
reads, a bundle's files, the image folder it inspects, the dataset it trains on): `inputs` names them.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterable

from ddad_edge.errors import DdadError


def _nearest_existing(path: Path) -> Path:
    """The closest ancestor of `path` that exists (the current folder at worst for a relative path)."""
    folder = path.parent
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    return folder


def _kind_of(mode: int) -> str | None:
    """What a non-regular, non-folder file is, in words; None for a regular file or a folder."""
    for test, words in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                        (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return words
    return None


def followed(path: Path) -> Path:
    """`path` with a symbolic link at its end replaced by what it points to (however many links deep),
    so a write replaces the link's target and keeps the link; any other path unchanged."""
    path = Path(path)
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def refuse_special_file(path: Path, option: str) -> None:
    """One DdadError line, naming `option` (where not ""), when `path` (links followed) is a device node, a
    FIFO or a socket: an output is written only as a regular file."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # absent (or a dangling link): a new regular file is made there
    kind = _kind_of(mode)
    if kind is not None:
        named = f"{option} {path}" if option else str(path)
        raise DdadError(f"{named} is {kind}, not a regular file: give a file path in a folder "
                        f"(outputs are written as regular files only)")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def refuse_inputs(path: Path, option: str, inputs: Iterable[tuple[str, Path]]) -> None:
    """One DdadError line when the output `path` is one of the command's `inputs` ((what, path) pairs: a
    file, or a folder whose files are all inputs) or lies inside an input folder: writing there would
    overwrite what the command reads, or feed its own output back to it."""
    target = Path(os.path.realpath(path))
    for what, given in inputs:
        if given is None:
            continue
        source = Path(os.path.realpath(given))
        if _inside(target, source):
            where = "is" if target == source else "is inside"
            raise DdadError(f"{option} {path} {where} {what} {given}: an output never overwrites or lands in "
                            f"an input; give a path outside it")


def bundle_files(bundle: Path | None) -> list[tuple[str, Path]]:
    """The files of a bundle folder, as `inputs` of `refuse_inputs`: its manifest, model and the rest at its
    top level (an evaluation's own `eval/` folder inside it is not an input)."""
    if bundle is None or not Path(bundle).is_dir():
        return []
    return [("a file of the bundle", p) for p in sorted(Path(bundle).iterdir()) if p.is_file()]


def check_output_file(path: Path, option: str, example: str,
                      inputs: Iterable[tuple[str, Path]] = ()) -> Path:
    """`path` as a file `option` may write, or one DdadError line: it is a folder (`example` is the file name
    proposed in it), a device node, FIFO or socket, one of `inputs` (see `refuse_inputs`), a folder above
    it is a file, or the folder it goes in cannot be created or written to. Returns the path to write: a
    symbolic link's target (so the link is kept); nothing is created."""
    path = Path(path)
    if path.is_dir():
        raise DdadError(f"{option} {path} is a folder: give a file path, for example {path / example}")
    refuse_special_file(path, option)
    refuse_inputs(path, option, inputs)
    path = followed(path)
    folder = _nearest_existing(path)
    if not folder.is_dir():
        what = "a file, not a folder" if folder.is_file() else "not a folder"
        raise DdadError(f"{option} {path}: {folder} is {what}: give a path in a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DdadError(f"{option} {path}: the folder {folder} is not writable: give a path in a writable folder")
    return path


def check_output_folder(path: Path, option: str, inputs: Iterable[tuple[str, Path]] = ()) -> Path:
    """`path` as a folder `option` may create or write into, or one DdadError line: it is a file, one of
    `inputs` or inside one, or a folder above it is a file or cannot be written to. Returns `path`; nothing
    is created."""
    path = Path(path)
    refuse_inputs(path, option, inputs)
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise DdadError(f"{option} {path}: the folder is not writable: give a writable folder")
        return path
    if os.path.lexists(path):
        raise DdadError(f"{option} {path} is a file, not a folder: give a folder path")
    return check_output_file(path, option, "")
