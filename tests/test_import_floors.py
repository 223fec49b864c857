"""Imports only go down the floors of docs/architecture.md, and no modules import each other round a circle.

Every module of ddad_edge is read with `ast` (tests/import_graph.py: imports, lazy imports inside functions,
`importlib.import_module` strings and dotted names such as "ddad_edge.model.runner"), given its floor from
FLOORS below (the same table as docs/architecture.md's), and each arrow up names the importing file and
line, the imported module and both floors. Moving between packages of one floor is allowed without
circles. The device half (runtime/, inspect/) imports no torch, neither itself nor through any module of the
package it reaches, lazily or not (tests/runtime/test_no_torch.py also imports them to be sure).
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.import_graph import Arrow, cycle_lines, floor_of, floor_violations, imports_in, package_arrows

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "ddad_edge"
ARCHITECTURE = REPO / "docs" / "architecture.md"

# Floors, bottom (0) to top. A name is a module or a package (then all of it); the longest name wins.
FLOOR_NAMES = {0: "shared", 1: "config, data, metrics", 2: "bundle", 3: "runtime",
               4: "model, inspect, bench, evaluate", 5: "train, deploy", 6: "cli"}
FLOORS = {
    "ddad_edge.cli": 6, "ddad_edge.__main__": 6,
    "ddad_edge.train": 5, "ddad_edge.deploy": 5, "ddad_edge.demo": 5,
    "ddad_edge.model": 4, "ddad_edge.inspect": 4, "ddad_edge.bench": 4, "ddad_edge.evaluate": 4,
    "ddad_edge.runtime": 3,
    "ddad_edge.bundle": 2, "ddad_edge.manifest": 2,
    "ddad_edge.config": 1, "ddad_edge.config_checks": 1, "ddad_edge.config_presets": 1, "ddad_edge.config_yaml": 1,
    "ddad_edge.data": 1, "ddad_edge.metrics": 1,
    "ddad_edge": 0, "ddad_edge.errors": 0, "ddad_edge.yaml_strict": 0, "ddad_edge.yaml_folders": 0,
    "ddad_edge.output_paths": 0, "ddad_edge.progress": 0, "ddad_edge.graph_signature": 0, "ddad_edge.overlay": 0,
    "ddad_edge.lazy_import": 0, "ddad_edge.device_tree": 0, "ddad_edge.page_shot": 0,
}
DEVICE_PACKAGES = ("ddad_edge.runtime", "ddad_edge.inspect")  # run on a Jetson: no torch


def torch_reached(package_dir: Path, device_packages: tuple[str, ...] = DEVICE_PACKAGES) -> list[str]:
    """One line for each module that imports torch and that the device half reaches, by being it or along
    the package's arrows, with the shortest chain from a device-side module that gets there."""
    modules, arrows = package_arrows(package_dir)
    graph: dict[str, list[str]] = {}
    for a in arrows:
        graph.setdefault(a.importer, []).append(a.imported)
    starts = sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in device_packages))
    chain = {m: [m] for m in starts}
    todo = list(starts)  # breadth first, so each chain is a shortest one
    lines = []
    while todo:
        module = todo.pop(0)
        torch = [imp.line for imp in imports_in(modules[module], module) if imp.imported.split(".")[0] == "torch"]
        if torch:
            lines.append(f"{' -> '.join(chain[module])} imports torch "
                         f"({modules[module].relative_to(package_dir.parent)}:{torch[0]})")
        for nxt in graph.get(module, []):
            if nxt not in chain:
                chain[nxt] = chain[module] + [nxt]
                todo.append(nxt)
    return sorted(lines)

def check_package(package_dir: Path, floors: dict[str, int] = FLOORS) -> list[str]:
    """Every problem of a package's imports, one line each: modules on no floor, arrows up, circles."""
    modules, arrows = package_arrows(package_dir)
    return (floor_violations(modules, arrows, floors, FLOOR_NAMES, root=package_dir.parent)
            + cycle_lines(arrows, root=package_dir.parent))


def test_every_import_goes_down_the_floors_and_none_round_a_circle():
    problems = check_package(PACKAGE)
    assert not problems, "\n" + "\n".join(problems)


def test_the_device_half_reaches_no_torch():
    problems = torch_reached(PACKAGE)
    assert not problems, "\n" + "\n".join(problems)


def test_the_table_is_the_one_in_docs():
    """docs/architecture.md lists each floor's modules as `| floor | name, name |` rows, top floor first."""
    text = ARCHITECTURE.read_text()
    documented = {}
    for floor, names in re.findall(r"^\|\s*(\d)\s*\|[^|]*\|\s*([^|]+?)\s*\|\s*$", text, flags=re.MULTILINE):
        for name in re.findall(r"`([\w.]+)`", names):
            documented[name] = int(floor)
    assert documented == FLOORS


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return root / "ddad_edge"


def test_a_planted_arrow_up_is_named_with_its_file_and_both_floors(tmp_path):
    package = _write(tmp_path, {
        "ddad_edge/__init__.py": "",
        "ddad_edge/errors.py": "",
        "ddad_edge/runtime/__init__.py": "",
        "ddad_edge/runtime/base.py": "import importlib\n\n\ndef load():\n"
                                     "    return importlib.import_module('ddad_edge.model.runner')\n",
        "ddad_edge/model/__init__.py": "",
        "ddad_edge/model/runner.py": "from ddad_edge.errors import DdadError\n",
        "ddad_edge/inspect/__init__.py": "",
        "ddad_edge/inspect/loop.py": "def f():\n    from ..train.distill import STEPS\n",
        "ddad_edge/train/__init__.py": "",
        "ddad_edge/train/distill.py": "STEPS = 2\n",
    })
    problems = check_package(package)
    assert problems == [
        "ddad_edge/inspect/loop.py:2 (ddad_edge.inspect.loop, floor 'model, inspect, bench, evaluate') imports "
        "ddad_edge.train.distill (floor 'train, deploy'): an arrow up",
        "ddad_edge/runtime/base.py:5 (ddad_edge.runtime.base, floor 'runtime') imports ddad_edge.model.runner "
        "(floor 'model, inspect, bench, evaluate'): an arrow up",
    ]


def test_a_planted_circle_and_a_module_without_a_floor_are_named(tmp_path):
    package = _write(tmp_path, {
        "ddad_edge/__init__.py": "",
        "ddad_edge/runtime/__init__.py": "",
        "ddad_edge/runtime/base.py": "def open():\n    from ddad_edge.runtime.onnx_runner import OnnxRunner\n",
        "ddad_edge/runtime/onnx_runner.py": "from ddad_edge.runtime import base\n",
        "ddad_edge/cli/__init__.py": "import importlib, pkgutil\n\nfor info in pkgutil.iter_modules(__path__):\n"
                                     "    importlib.import_module(f'{__name__}.{info.name}')\n\n\ndef main():\n"
                                     "    pass\n",
        "ddad_edge/cli/demo.py": "def step():\n    from ddad_edge.cli import main\n",
        "ddad_edge/stray.py": "",
    })
    problems = check_package(package)
    assert problems[0].startswith("ddad_edge.stray stands on no floor")
    assert problems[1:] == [
        "import circle between ddad_edge.cli, ddad_edge.cli.demo: ddad_edge/cli/__init__.py:3 → ddad_edge.cli.demo, "
        "ddad_edge/cli/demo.py:2 → ddad_edge.cli",
        "import circle between ddad_edge.runtime.base, ddad_edge.runtime.onnx_runner: "
        "ddad_edge/runtime/base.py:2 → ddad_edge.runtime.onnx_runner, "
        "ddad_edge/runtime/onnx_runner.py:1 → ddad_edge.runtime.base",
    ]


def test_an_edge_list_is_checked_without_files():
    arrows = [Arrow("ddad_edge.bench.run", "ddad_edge.train.diffusion", Path("ddad_edge/bench/run.py"), 12),
              Arrow("ddad_edge.cli.run", "ddad_edge.inspect.loop", Path("ddad_edge/cli/run.py"), 3)]
    lines = floor_violations(["ddad_edge.bench.run", "ddad_edge.train.diffusion", "ddad_edge.cli.run",
                              "ddad_edge.inspect.loop"], arrows, FLOORS, FLOOR_NAMES)
    assert lines == ["ddad_edge/bench/run.py:12 (ddad_edge.bench.run, floor 'model, inspect, bench, evaluate') "
                     "imports ddad_edge.train.diffusion (floor 'train, deploy'): an arrow up"]


def test_the_longest_table_name_decides_and_the_root_holds_only_itself():
    assert floor_of("ddad_edge.config_checks", FLOORS) == 1 and floor_of("ddad_edge.cli.demo", FLOORS) == 6
    assert floor_of("ddad_edge", FLOORS) == 0 and floor_of("ddad_edge.somewhere_new", FLOORS) is None


def test_a_planted_lazy_torch_import_behind_a_device_module_is_named(tmp_path):
    package = _write(tmp_path, {
        "ddad_edge/__init__.py": "",
        "ddad_edge/inspect/__init__.py": "",
        "ddad_edge/inspect/loop.py": "from ddad_edge.bundle import read\n",
        "ddad_edge/bundle.py": "def read():\n    import torch.nn as nn\n    return nn\n",
        "ddad_edge/model/__init__.py": "",
        "ddad_edge/model/unet.py": "import torch\n",
    })
    assert torch_reached(package) == [
        "ddad_edge.inspect.loop -> ddad_edge.bundle imports torch (ddad_edge/bundle.py:2)"]
