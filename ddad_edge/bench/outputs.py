"""The files a benchmark writes (--json, --md, --plot), checked before anything is loaded or timed.

A measurement can take minutes (the DDAD-S reference on a CPU takes seconds a frame), so an output path
that cannot be written is one line before it starts, not a traceback after it: a folder where a file is
asked for, a path under a file, a folder that cannot be created or written, the same file named twice,
a plot format matplotlib does not write, a device node (`ddad_edge.output_paths`, the check every command's
outputs share). Nothing is created by the checks; the files' folders are made when the files are written.
"""

from __future__ import annotations

from pathlib import Path

from ddad_edge.errors import DdadError, missing_package
from ddad_edge.output_paths import check_output_file


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


def check_outputs(json_out: Path | None, md: Path | None, plot: Path | None,
                  inputs: tuple[tuple[str, Path], ...] = ()) -> dict[str, Path]:
    """The benchmark's output files by kind ("json", "md", "plot"), each checked (check_output_file; none may
    be one of `inputs`, the bundle and the images it reads), or one DdadError line; two options naming the
    same file are refused (the second would overwrite the first)."""
    outputs: dict[str, Path] = {}
    if json_out is not None:
        outputs["json"] = check_output_file(json_out, "--json", "bench.json", inputs)
    if md is not None:
        outputs["md"] = check_output_file(md, "--md", "bench.md", inputs)
    if plot is not None:
        outputs["plot"] = check_output_file(plot_path(plot), "--plot", "latency.png", inputs)
    seen: dict[Path, str] = {}
    for kind, path in outputs.items():
        key = path.resolve()
        if key in seen:
            raise DdadError(f"--{seen[key]} and --{kind} both write {path}: give each its own file")
        seen[key] = kind
    return outputs
