"""Every way of running ddad-edge finds the data files the code reads at run time.

`ddad-edge build` looks up TensorRT build profiles (export/NAME.yaml) and `ddad-edge export` precision
recipes (calibration/NAME.yaml) by name. Both folders sit at the top of the repository; pyproject.toml maps
them into the wheel as ddad_edge/shipped/. A normal (non-editable) install must carry them and find them
outside any checkout; an editable install and a plain checkout find the repository's own folders.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("export", "calibration")  # top-level folders of YAML that the wheel carries
IN_WHEEL = "ddad_edge/shipped"  # where pyproject.toml's package-dir maps them

FIND_BOTH = """
import sys
import ddad_edge
from ddad_edge.deploy.recipes import load_recipe, recipe_for
from ddad_edge.deploy.tensorrt_profile import load_build_profile, shipped_profiles
from ddad_edge.bundle import Precision
from ddad_edge.yaml_folders import shipped_folder
print(ddad_edge.__file__)
print(load_build_profile("orin-nano").name, recipe_for(Precision.INT8).name)
print(shipped_folder("export"))
print(shipped_folder("calibration"))
print(" ".join(sorted(p.name for p in shipped_profiles())))
print(" ".join(load_recipe(name).name for name in sys.argv[1:]))
"""


def shipped_stems(folder: str) -> list[str]:
    """The names of the YAML files in a top-level folder of the checkout."""
    return sorted(p.stem for p in (ROOT / folder).glob("*.yaml"))


def pip(*args: str) -> None:
    """pip, offline, with the build backend of this environment (no network here or in CI)."""
    subprocess.run([sys.executable, "-m", "pip", *args, "--no-deps", "--no-index", "-q"], check=True,
                   timeout=180, capture_output=True)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    """A copy of what a build reads, so the checkout gets no build/ or egg-info folder."""
    src = tmp_path_factory.mktemp("sources") / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for folder in ("ddad_edge", *SHIPPED):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return src


@pytest.fixture(scope="module")
def wheel(sources, tmp_path_factory) -> Path:
    """A wheel built from the copied sources, offline."""
    dist = tmp_path_factory.mktemp("dist")
    pip("wheel", "--no-build-isolation", "-w", str(dist), str(sources))
    (path,) = dist.glob("ddad_edge-*.whl")
    return path


def find_both(cwd: Path, env: dict[str, str], python: list[str]) -> list[str]:
    """FIND_BOTH's lines, run by `python` (an interpreter and its leading arguments) in `cwd`."""
    out = subprocess.run([*python, FIND_BOTH, *shipped_stems("calibration")], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_the_package_list_names_every_package_of_ddad_edge():
    """pyproject.toml lists the packages (the mapped folders need a list, not a find directive): a new
    sub-package of ddad_edge/ (code, or data read at run time such as deploy/trt_support) must be added to it,
    or the wheel would leave it out."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+; ddad-edge itself runs on 3.10
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    on_disk = {".".join(d.relative_to(ROOT).parts) for d in [ROOT / "ddad_edge", *(ROOT / "ddad_edge").rglob("*")]
               if d.is_dir() and d.name != "__pycache__" and any(f.is_file() for f in d.iterdir())}
    assert sorted(p for p in listed if not p.startswith("ddad_edge.shipped.")) == sorted(on_disk)
    assert {p for p in listed if p.startswith("ddad_edge.shipped.")} == {f"ddad_edge.shipped.{f}" for f in SHIPPED}


def test_the_wheel_holds_every_profile_and_recipe(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = sorted(f"{IN_WHEEL}/{folder}/{stem}.yaml" for folder in SHIPPED for stem in shipped_stems(folder))
    assert len(shipped) >= 10  # 4 profiles, 6 recipes
    assert [n for n in shipped if n not in names] == []
    tables = sorted(p.name for p in (ROOT / "ddad_edge" / "deploy" / "trt_support").glob("*.txt"))
    assert tables and [t for t in tables if f"ddad_edge/deploy/trt_support/{t}" not in names] == []


def test_an_installed_wheel_finds_them_outside_the_checkout(wheel, tmp_path):
    site_dir = tmp_path / "site"
    pip("install", "--target", str(site_dir), str(wheel))
    elsewhere = tmp_path / "elsewhere"  # no export/ or calibration/ here
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site_dir)}
    where, found, profile_folder, recipe_folder, profiles, loaded = find_both(elsewhere, env, [sys.executable, "-c"])
    assert Path(where).is_relative_to(site_dir)  # the installed copy, not the checkout
    assert found == "orin-nano int8"
    assert [Path(profile_folder), Path(recipe_folder)] == [(site_dir / IN_WHEEL / f).resolve() for f in SHIPPED]
    assert profiles.split() == shipped_stems("export")  # every profile loads from the installed package
    assert loaded.split() == shipped_stems("calibration")  # and every recipe


def test_an_editable_install_finds_the_top_level_folders(sources, tmp_path):
    """`pip install -e .` runs the sources in place: the folders found are the repository's own."""
    prefix = tmp_path / "prefix"
    pip("install", "--no-build-isolation", "--prefix", str(prefix), "-e", str(sources))
    (editable_site,) = prefix.glob("lib/python*/site-packages")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # -S: this environment's own editable ddad-edge (the checkout's) must not answer; its libraries (yaml,
    # numpy) are put on the path by hand, without their .pth files, and the new install's .pth is read.
    boot = (f"import site, sys; site.addsitedir({str(editable_site)!r}); "
            f"sys.path.extend({site.getsitepackages()!r}); exec(sys.argv.pop(1))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where, found, profile_folder, recipe_folder, profiles, loaded = find_both(
        elsewhere, env, [sys.executable, "-S", "-c", boot])
    assert Path(where) == sources / "ddad_edge" / "__init__.py"
    assert found == "orin-nano int8"
    assert [Path(profile_folder), Path(recipe_folder)] == [sources / f for f in SHIPPED]
    assert profiles.split() == shipped_stems("export")
    assert loaded.split() == shipped_stems("calibration")


def test_a_checkout_finds_them_at_the_top_of_the_repository():
    """Run from the sources (PYTHONPATH), the folders are the repository's own."""
    from ddad_edge.yaml_folders import shipped_folder

    assert [shipped_folder(folder) for folder in SHIPPED] == [ROOT / folder for folder in SHIPPED]
    assert not (ROOT / IN_WHEEL).exists()  # only a wheel has the mapped copy
