"""Where an export writes its bundle: the --out folder is checked before any work, the bundle is made in a
staging folder beside it and moved into place only when whole.

A refused export (INT8 beyond its budget, say) so leaves no half-made bundle, and --overwrite keeps the old
bundle until the new one exists. --overwrite replaces only a bundle folder, never a run folder, a dataset
root, or anything that is not a bundle.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import yaml

from ddad_edge.bundle import MANIFEST_MAX_BYTES, MANIFEST_NAME
from ddad_edge.errors import DdadError
from ddad_edge.model.checkpoint import Run
from ddad_edge.yaml_strict import load_yaml


def is_bundle_folder(folder: Path) -> bool:
    """A folder with a bundle's manifest.yaml (read_bundle's test without the hashes: a damaged bundle may be
    replaced, a folder of anything else may not). Subfolders are allowed: `evaluate --bundle` writes its
    results into BUNDLE/eval by default."""
    manifest = folder / MANIFEST_NAME
    if not manifest.is_file() or manifest.stat().st_size > MANIFEST_MAX_BYTES:
        return False
    try:
        data = load_yaml(manifest.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError):
        return False
    return isinstance(data, dict) and {"schema_version", "files"} <= set(data)


def check_out(out: Path, overwrite: bool, run: Run) -> Path:
    """Refuse an --out that cannot take a bundle, in one line and before any work; return the folder to write.

    A symbolic link (a device's `current -> v1`) is followed: the bundle it points to is replaced, the link
    kept. --overwrite replaces only a bundle folder, and never the run folder or the dataset root, nor a
    folder inside or around them.
    """
    if out.is_symlink() and not out.exists():
        raise DdadError(f"--out {out} is a symbolic link to {os.readlink(out)}, which does not exist: "
                        "point the link at a bundle folder or choose another --out")
    try:
        target = out.resolve()
    except (OSError, RuntimeError):  # a loop of links
        raise DdadError(f"--out {out}: its symbolic links cannot be followed; choose another --out") from None
    if out.name in ("", ".", "..") or target == Path.cwd() or target in Path.cwd().parents:
        raise DdadError(f"--out {out} is the current folder or one above it, not a bundle folder: "
                        "name a folder such as bundles/widget-fp32")
    for parent in target.parents:  # the nearest existing folder above must be a folder we may write in
        if parent.exists():
            if not parent.is_dir():
                raise DdadError(f"--out {out}: {parent} is a file, so no folder can be made under it; "
                                "choose another --out")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise DdadError(f"--out {out}: {parent} is not writable; choose another --out")
            break
    if target.exists() and not target.is_dir():
        raise DdadError(f"--out {out} is a file, not a folder")
    if not (target.is_dir() and any(target.iterdir())):
        return target
    if not overwrite:
        raise DdadError(f"{out} already exists and is not empty: choose another --out or pass --overwrite")
    if not is_bundle_folder(target):
        raise DdadError(f"--overwrite replaces a bundle folder only, and {out} is not one (no bundle "
                        f"{MANIFEST_NAME}); nothing was removed: choose another --out")
    for name, guarded in (("run folder", run.path), ("dataset root", Path(run.cfg.data.root))):
        guarded = guarded.resolve()
        if target == guarded or guarded in target.parents or target in guarded.parents:
            raise DdadError(f"--out {out} is, holds or lies inside the {name} {guarded}, which --overwrite "
                            f"must not remove; nothing was removed: choose an --out outside it")
    return target


def move_into_place(staging: Path, target: Path) -> None:
    """Rename the whole bundle `staging` to `target`; an old bundle there is set aside and removed only once
    the new one is in place, put back otherwise."""
    try:
        if not target.exists():
            staging.rename(target)
            return
        old = target.with_name(f".{target.name}.{os.getpid()}.old")
        target.rename(old)  # refused onto anything but a missing or empty folder: nothing else is replaced
        try:
            staging.rename(target)
        except BaseException:
            old.rename(target)
            raise
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise DdadError(f"cannot move the new bundle into {target}: {exc.strerror or exc}; "
                        "the folder there is as it was") from None
