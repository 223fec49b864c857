"""Where ddad-edge finds a YAML file by name: the user's own folder first, then the one shipped with it.

Two folders of YAML ship with ddad-edge, at the top of the repository as the design card lays them out:
`export/` (TensorRT build profiles, `build --profile NAME`) and `calibration/` (precision recipes,
`export --recipe NAME`). A built wheel has no repository around it, so pyproject.toml (package-dir) maps
both into the package as ddad_edge/shipped/export and ddad_edge/shipped/calibration; `shipped_folder` finds
either place, so the same code serves a checkout, an editable install (which runs the checkout's files) and
an installed wheel.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
SHIPPED_IN_WHEEL = "shipped"  # ddad_edge/shipped/<folder> in an installed wheel (pyproject.toml's package-dir)


def shipped_folder(folder: str) -> Path:
    """The shipped YAML folder `folder` ("export" or "calibration"): inside the installed package when it is
    there, else the repository's own top-level folder (a checkout or an editable install)."""
    installed = PACKAGE / SHIPPED_IN_WHEEL / folder
    return installed if installed.is_dir() else PACKAGE.parent / folder


def search_folders(folder: str) -> list[Path]:
    """Where names are looked up, in order: ./`folder` (a user's own files, which win), then the shipped one;
    one entry when the working directory is the checkout whose folder is the shipped one."""
    here = Path.cwd() / folder
    shipped = shipped_folder(folder)
    return [here] if here.resolve() == shipped.resolve() else [here, shipped]
