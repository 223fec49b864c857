"""The device half never imports torch: ddad_edge/runtime and ddad_edge/inspect run on a Jetson with the
system's TensorRT, OpenCV and numpy only.

Two checks: importing every module under both packages in a fresh interpreter leaves 'torch' out of
sys.modules (so no module pulls it in through another), and no source file there mentions an import
of torch at all, not even inside a function (so no code path can pull it in later).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "ddad_edge"
DEVICE_PACKAGES = ("runtime", "inspect")

IMPORT_ALL = """
import importlib, pkgutil, sys
import ddad_edge.runtime, ddad_edge.inspect
names = []
for pkg in (ddad_edge.runtime, ddad_edge.inspect):
    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        importlib.import_module(info.name)
        names.append(info.name)
print(len(names))
print("torch" in sys.modules)
print(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))
"""


def _device_modules() -> list[Path]:
    return sorted(p for pkg in DEVICE_PACKAGES for p in (PACKAGE / pkg).rglob("*.py"))


def test_importing_every_device_module_leaves_torch_unloaded():
    proc = subprocess.run([sys.executable, "-c", IMPORT_ALL], capture_output=True, text=True,
                          cwd=PACKAGE.parent, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    count, loaded, modules = proc.stdout.strip().splitlines()
    expected = sum(1 for p in _device_modules() if p.name != "__init__.py")
    assert int(count) == expected  # every module was really imported
    assert loaded == "False", f"torch was imported: {modules}"


def _torch_imports(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(), filename=str(path))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name == "torch" or a.name.startswith("torch.") for a in node.names):
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module and (node.module == "torch"
                                                                   or node.module.startswith("torch.")):
            lines.append(node.lineno)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant) \
                and str(node.args[0].value).split(".")[0] == "torch":
            lines.append(node.lineno)
    return lines


def test_no_device_source_file_imports_torch_anywhere():
    files = _device_modules()
    assert len(files) > 5
    offenders = {str(p.relative_to(PACKAGE)): lines for p in files if (lines := _torch_imports(p))}
    assert offenders == {}


def test_the_ast_check_would_catch_a_lazy_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    import torch.nn as nn\n    return nn\n"
                      "def g():\n    from torch import Tensor\n"
                      "def h():\n    import importlib\n    return importlib.import_module('torch')\n")
    assert _torch_imports(sample) == [2, 5, 8]
