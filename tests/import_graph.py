"""The imports of a package's source files, read with `ast` (nothing is imported), and the floors they
must respect: the checker behind tests/test_import_floors.py and tests/runtime/test_no_torch.py.

An import is any of: `import a.b`, `from a.b import c` (relative ones resolved), a constant string handed to
`importlib.import_module` or `__import__`, and, for the package itself, any constant string that is a
dotted module name of it ("ddad_edge.model.runner", or "ddad_edge.model.runner:TorchRunner" as entry points
write it): a module loaded by name is an arrow like any other. Imports inside functions count too: a lazy
import is still an arrow, only a later one. A package `__init__` that walks its own folder with pkgutil and
imports what it finds (the CLI registering its command modules) imports each of its submodules.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

LOADERS = ("import_module", "__import__")  # calls whose constant first argument names a module to load
PKGUTIL_WALKS = ("iter_modules", "walk_packages")


@dataclass(frozen=True)
class Import:
    """One import in one file: the module doing it, where, and the dotted name it asks for."""

    importer: str
    path: Path
    line: int
    imported: str


@dataclass(frozen=True)
class Arrow:
    """An import between two modules of the package, `imported` resolved to a module that exists."""

    importer: str
    imported: str
    path: Path
    line: int


def module_name(path: Path, package_dir: Path) -> str:
    """'ddad_edge.cli.run' for package_dir/cli/run.py; a package's __init__.py is the package itself."""
    parts = [package_dir.name, *path.relative_to(package_dir).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules(package_dir: Path) -> dict[str, Path]:
    """Every module of the package by dotted name."""
    return {module_name(p, package_dir): p for p in sorted(Path(package_dir).rglob("*.py"))}


def _absolute(module: str, path: Path, level: int, name: str | None) -> str:
    """The absolute dotted name of a relative `from ... import` written in `module` (at `path`)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[:len(package) - (level - 1)] if level > 1 else package
    return ".".join(base + ([name] if name else []))


def imports_in(path: Path, module: str = "", own_package: str = "") -> list[Import]:
    """Every import written in the file at `path` (the module `module`), in source order.

    `own_package`: also count constant strings that are dotted names inside this package.
    """
    tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=str(path))
    dotted = re.compile(rf"{re.escape(own_package)}(\.[A-Za-z_]\w*)+(:[A-Za-z_]\w*)?") if own_package else None
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(module, path, node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, path, node.level, node.module) if node.level else (node.module or "")
            # `from a import b` loads a.b when b is a module; which it is gets decided against the package
            found += [Import(module, path, node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str) \
                and getattr(node.func, "attr", getattr(node.func, "id", "")) in LOADERS:
            found.append(Import(module, path, node.lineno, node.args[0].value))
        elif dotted is not None and isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and dotted.fullmatch(node.value):
            found.append(Import(module, path, node.lineno, node.value.split(":")[0]))
    return sorted(set(found), key=lambda i: (i.line, i.imported))


def _walks_own_folder(path: Path) -> int:
    """The line of a pkgutil walk over `__path__` in a package __init__, or 0."""
    if path.name != "__init__.py":
        return 0
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in PKGUTIL_WALKS and node.args \
                and isinstance(node.args[0], ast.Name) and node.args[0].id == "__path__":
            return node.lineno
    return 0


def _resolve(name: str, modules: Mapping[str, Path]) -> str | None:
    """The module that importing `name` loads: itself, or for `from pkg.mod import attr` the longest module
    prefix of it; None outside the package."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def package_arrows(package_dir: Path) -> tuple[dict[str, Path], list[Arrow]]:
    """The package's modules and every arrow between two different ones of them."""
    package_dir = Path(package_dir)
    modules = package_modules(package_dir)
    arrows: set[Arrow] = set()
    for module, path in modules.items():
        for imp in imports_in(path, module, own_package=package_dir.name):
            target = _resolve(imp.imported, modules) if imp.imported.split(".")[0] == package_dir.name else None
            if target is not None and target != module:
                arrows.add(Arrow(module, target, path, imp.line))
        line = _walks_own_folder(path)
        for sub in modules:
            if line and sub.rpartition(".")[0] == module:
                arrows.add(Arrow(module, sub, path, line))
    return modules, sorted(arrows, key=lambda a: (a.importer, a.imported, a.line))


def floor_of(module: str, floors: Mapping[str, int]) -> int | None:
    """The floor of a module from a table of module or package names: the longest entry that is the module
    or a package holding it. The root package's name matches only its own __init__, so a new top-level
    module has no floor until the table gives it one."""
    root = module.split(".")[0]
    best = None
    for name in floors:
        if module == name or (name != root and module.startswith(name + ".")):
            if best is None or len(name) > len(best):
                best = name
    return None if best is None else floors[best]


def floor_violations(modules: Iterable[str], arrows: Iterable[Arrow], floors: Mapping[str, int],
                     floor_names: Mapping[int, str], root: Path | None = None) -> list[str]:
    """One line for each module on no floor and for each arrow that goes up, naming the importing file,
    the imported module and both floors."""
    lines = [f"{m} stands on no floor: give it one in the floor table (and docs/architecture.md)"
             for m in sorted(modules) if floor_of(m, floors) is None]
    for a in arrows:
        low, high = floor_of(a.importer, floors), floor_of(a.imported, floors)
        if low is not None and high is not None and high > low:
            where = a.path.relative_to(root) if root is not None else a.path
            lines.append(f"{where}:{a.line} ({a.importer}, floor '{floor_names[low]}') imports {a.imported} "
                         f"(floor '{floor_names[high]}'): an arrow up")
    return lines


def import_cycles(arrows: Iterable[Arrow]) -> list[list[str]]:
    """Groups of modules that import each other, directly or round a longer circle (Tarjan's strongly
    connected components of more than one module), each sorted, the groups sorted."""
    graph: dict[str, set[str]] = {}
    for a in arrows:
        graph.setdefault(a.importer, set()).add(a.imported)
        graph.setdefault(a.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(start: str) -> None:  # iterative, so a deep import chain cannot reach the recursion limit
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def cycle_lines(arrows: Iterable[Arrow], root: Path | None = None) -> list[str]:
    """One line per circle, naming its modules and the files and lines of the arrows inside it."""
    arrows = list(arrows)
    lines = []
    for group in import_cycles(arrows):
        members = set(group)
        inside = [a for a in arrows if a.importer in members and a.imported in members]
        where = ", ".join(f"{a.path.relative_to(root) if root is not None else a.path}:{a.line} → {a.imported}"
                          for a in inside)
        lines.append(f"import circle between {', '.join(group)}: {where}")
    return lines
