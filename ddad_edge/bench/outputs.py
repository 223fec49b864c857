"""The files a benchmark writes (--json, --md, --plot), checked before anything is loaded or timed.

A measurement can take minutes (the DDAD-S reference on a CPU takes seconds a frame), so an output path
that cannot be written is one line before it starts, not a traceback after it: a folder where a file is
asked for, a path under a file, a folder that cannot be created or written, the same file named twice,
a plot format matplotlib does not write. Nothing is created by the checks; the files' folders are made
when the files are written.
"""

from __future__ import annotations

import os
from pathlib import Path

from ddad_edge.errors import DdadError, missing_package


def _nearest_existing(path: Path) -> Path:
    """The closest ancestor of `path` that exists (the current folder at worst for a relative path)."""
    folder = path.parent
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    return folder


def check_output_file(path: Path, option: str, example: str) -> Path:
    """`path` as a file `option` may write, or one DdadError line: it is a folder (`example` is the file name
    proposed in it), a folder above it is a file, or the folder it goes in cannot be created or written to.
    Returns `path`; nothing is created."""
    path = Path(path)
    if path.is_dir():
        raise DdadError(f"{option} {path} is a folder: give a file path, for example {path / example}")
    folder = _nearest_existing(path)
    if not folder.is_dir():
        what = "a file, not a folder" if folder.is_file() else "not a folder"
        raise DdadError(f"{option} {path}: {folder} is {what}: give a path in a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DdadError(f"{option} {path}: the folder {folder} is not writable: give a path in a writable folder")
    return path


def check_output_folder(path: Path, option: str) -> Path:
    """`path` as a folder `option` may create or write into, or one DdadError line: it is a file, or a folder
    above it is a file or cannot be written to. Returns `path`; nothing is created."""
    path = Path(path)
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise DdadError(f"{option} {path}: the folder is not writable: give a writable folder")
        return path
    if os.path.lexists(path):
        raise DdadError(f"{option} {path} is a file, not a folder: give a folder path")
    return check_output_file(path, option, "")


def plot_path(path: Path) -> Path:
    """The file `--plot path` writes: `path` itself, in the format its suffix names (png, svg, pdf, …), or
    `path`.png where it has no suffix (matplotlib's rule). One line where matplotlib is missing or does not
    write that format."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise missing_package("matplotlib", "--plot") from None
    path = Path(path)
    if path.is_dir():  # before the suffix is added: `--plot out` for a folder out/ must not write out.png
        raise DdadError(f"--plot {path} is a folder: give a file path, for example {path / 'latency.png'}")
    formats = FigureCanvasBase.get_supported_filetypes()
    if not path.suffix:
        return path.with_name(path.name + ".png")
    if path.suffix[1:].lower() not in formats:
        raise DdadError(f"--plot {path}: matplotlib does not write {path.suffix} files: end the name in "
                        f"{', '.join('.' + f for f in ('png', 'svg', 'pdf') if f in formats)}")
    return path


def check_outputs(json_out: Path | None, md: Path | None, plot: Path | None) -> dict[str, Path]:
    """The benchmark's output files by kind ("json", "md", "plot"), each checked (check_output_file), or one
    DdadError line; two options naming the same file are refused (the second would overwrite the first)."""
    outputs: dict[str, Path] = {}
    if json_out is not None:
        outputs["json"] = check_output_file(json_out, "--json", "bench.json")
    if md is not None:
        outputs["md"] = check_output_file(md, "--md", "bench.md")
    if plot is not None:
        outputs["plot"] = check_output_file(plot_path(plot), "--plot", "latency.png")
    seen: dict[Path, str] = {}
    for kind, path in outputs.items():
        key = path.resolve()
        if key in seen:
            raise DdadError(f"--{seen[key]} and --{kind} both write {path}: give each its own file")
        seen[key] = kind
    return outputs
