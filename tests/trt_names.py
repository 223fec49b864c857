"""The TensorRT name lists (tests/tensorrt_names/) and the AST check of the project's TensorRT code.

A list holds the names of one TensorRT version's real Python bindings (made by
scripts/extract_trt_names.py). `check_source` walks a module with `ast`: each function tagged
`@api_path(ApiFamily.X, ...)` is checked against the lists of those families, an untagged one against
all of them. Checked are attribute accesses on the variables that hold TensorRT objects
(`TRT_OBJECT_NAMES`, also as `self._<name>`), with `trt.<Enum>.<MEMBER>` checked by its qualified name
where the list has evidence for it; a `getattr`/`setattr`/`hasattr` on such a variable is a violation,
since a name in a string would slip past the check.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ddad_edge.runtime.trt_compat import TRT_OBJECT_NAMES, ApiFamily

NAMES_DIR = Path(__file__).parent / "tensorrt_names"
FAMILY_LISTS = {ApiFamily.TRT8: ("8.6",), ApiFamily.TRT10: ("10.3", "10.16"), ApiFamily.TRT11: ("11.4",)}
STRING_ACCESS = {"getattr", "setattr", "hasattr", "delattr"}


@dataclass(frozen=True)
class TrtNames:
    """The names of one TensorRT version's bindings."""

    label: str
    tails: frozenset[str]  # every suffix of every plain line: a name is present when it is one of them
    qualified: frozenset[str]  # 'BuilderFlag.INT8' where its docstring is in the bindings
    looked_for: frozenset[str]  # the qualified names the extractor searched for

    def has(self, name: str) -> bool:
        return name in self.tails

    def has_attribute(self, name: str, owner: str | None = None) -> bool:
        """`owner.name` (owner: a class on the module, e.g. BuilderFlag) or a plain name."""
        qualified = f"{owner}.{name}" if owner else None
        if qualified in self.looked_for:
            return qualified in self.qualified
        return self.has(name)


@lru_cache(maxsize=None)
def load_trt_names(label: str) -> TrtNames:
    """Read tests/tensorrt_names/trt-<label>.txt."""
    path = NAMES_DIR / f"trt-{label}.txt"
    tails, qualified, looked_for = set(), set(), set()
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("# qualified names looked for:"):
            looked_for.update(line.split(":", 1)[1].split())
        elif not line or line.startswith("#"):
            continue
        elif line.startswith("@"):
            qualified.add(line[1:])
        else:
            tails.update(line[i:] for i in range(len(line)))
    return TrtNames(label, frozenset(tails), frozenset(qualified), frozenset(looked_for))


@dataclass(frozen=True)
class Violation:
    where: str  # file:line in function
    name: str
    versions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.where}: {self.name} is absent in TensorRT {', '.join(self.versions)}"


@dataclass
class CheckStats:
    """What a check looked at, so a test can see that it was not vacuous."""

    accesses: int = 0
    tagged_functions: dict[str, frozenset[ApiFamily]] = field(default_factory=dict)


def _families_of(node: ast.FunctionDef | ast.AsyncFunctionDef) -> frozenset[ApiFamily] | None:
    for deco in node.decorator_list:
        if isinstance(deco, ast.Call) and getattr(deco.func, "id", getattr(deco.func, "attr", None)) == "api_path":
            return frozenset(ApiFamily[arg.attr] for arg in deco.args if isinstance(arg, ast.Attribute))
    return None


def _object_name(node: ast.expr) -> str | None:
    """'config' for `config`, 'engine' for `self._engine`; None for anything else."""
    if isinstance(node, ast.Name):
        return node.id if node.id in TRT_OBJECT_NAMES else None
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        name = node.attr.lstrip("_")
        return name if name in TRT_OBJECT_NAMES else None
    return None


class _Checker(ast.NodeVisitor):
    def __init__(self, filename: str, all_families: frozenset[ApiFamily]) -> None:
        self.filename = filename
        self.stack: list[tuple[str, frozenset[ApiFamily]]] = [("<module>", all_families)]
        self.violations: list[Violation] = []
        self.stats = CheckStats()

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        tagged = _families_of(node)
        families = tagged if tagged is not None else self.stack[-1][1]
        if tagged is not None:
            self.stats.tagged_functions[node.name] = tagged
        self.stack.append((node.name, families))
        self.generic_visit(node)
        self.stack.pop()

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function

    def _check(self, node: ast.AST, name: str, owner: str | None) -> None:
        self.stats.accesses += 1
        function, families = self.stack[-1]
        labels = [label for family in sorted(families) for label in FAMILY_LISTS[family]]
        absent = tuple(label for label in labels if not load_trt_names(label).has_attribute(name, owner))
        if absent:
            shown = f"{owner}.{name}" if owner else name
            self.violations.append(Violation(f"{self.filename}:{node.lineno} in {function}", shown, absent))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        value = node.value
        if isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name) and value.value.id == "trt":
            self._check(node, node.attr, owner=value.attr)  # trt.BuilderFlag.FP16
        elif _object_name(value) is not None:
            self._check(node, node.attr, owner=None)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id in STRING_ACCESS and node.args \
                and _object_name(node.args[0]) is not None:
            function = self.stack[-1][0]
            self.violations.append(Violation(f"{self.filename}:{node.lineno} in {function}",
                                             f"{node.func.id}() on a TensorRT object", ("any",)))
        self.generic_visit(node)


def check_source(source: str, filename: str = "<source>") -> tuple[list[Violation], CheckStats]:
    """Violations of one module's TensorRT attribute accesses against the name lists, and what was seen."""
    checker = _Checker(filename, frozenset(ApiFamily))
    checker.visit(ast.parse(source, filename))
    return checker.violations, checker.stats
