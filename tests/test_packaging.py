"""A normal (non-editable) install carries the data files the code reads at run time.

`ddad-edge build` looks up TensorRT build profiles (export/NAME.yaml) and `ddad-edge export` precision
recipes (calibration/NAME.yaml) by name; both must ship inside the wheel, and be found by an installed
ddad-edge run outside any checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "ddad_edge" / "deploy"

FIND_BOTH = """
import ddad_edge
from ddad_edge.deploy.recipes import recipe_for
from ddad_edge.deploy.tensorrt_profile import load_build_profile
from ddad_edge.bundle import Precision
print(ddad_edge.__file__)
print(load_build_profile("orin-nano").name, recipe_for(Precision.INT8).name)
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the sources (so the checkout gets no build/ folder), offline."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "ddad_edge", src / "ddad_edge", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "-q", "-w", str(tmp / "dist"), str(src)], check=True, timeout=120, capture_output=True)
    (path,) = (tmp / "dist").glob("ddad_edge-*.whl")
    return path


def test_the_wheel_holds_every_profile_and_recipe(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = sorted(p.relative_to(ROOT).as_posix() for folder in ("export", "calibration")
                     for p in (DEPLOY / folder).glob("*.yaml"))
    assert len(shipped) >= 10  # 4 profiles, 6 recipes
    assert [n for n in shipped if n not in names] == []


def test_an_installed_wheel_finds_them_outside_the_checkout(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target",
                    str(site), str(wheel)], check=True, timeout=120, capture_output=True)
    elsewhere = tmp_path / "elsewhere"  # no export/ or calibration/ here
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", FIND_BOTH], cwd=elsewhere, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    where, found = out.stdout.splitlines()
    assert Path(where).is_relative_to(site)  # the installed copy, not the checkout
    assert found == "orin-nano int8"
