"""Extract onnx-tensorrt's operator support tables into small data files of the package.

The exported graph must parse on every TensorRT a build profile names, and the parser's own statement of
what it accepts is the table in onnx/onnx-tensorrt `docs/operators.md` of each release branch: one row
per ONNX operator with Y/N and the supported types, and a header line with the opset range. This script
reads that file from a local git clone of onnx-tensorrt (`git show BRANCH:docs/operators.md`) and writes
`ddad_edge/deploy/trt_support/onnx-tensorrt-<branch>.txt`; ddad_edge/deploy/trt_rules.py and the tests
read the committed files and never download. Rules the tables do not state (UINT8 only at the graph's
edges, the InstanceNormalization plugin's float32 fields) come from the importer sources and live in
trt_rules.py, with the file they come from.

File format: `#` comment lines (source branch and commit), `opset MIN MAX`, then one line per operator:
`NAME Y|N TYPE,TYPE,...` (`-` when the row lists no types).

Usage:  python scripts/extract_trt_ops.py --repo PATH/TO/onnx-tensorrt [--out ddad_edge/deploy/trt_support]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

# Release branches to extract. The stored clone this was made from had 8.6-GA, 10.0-GA and 10.1-GA (and an
# older main); trt_rules.py maps each TensorRT version to the newest table at or below it.
BRANCHES = ("8.6-GA", "10.1-GA")

_ROW = re.compile(r"^\|\s*([A-Za-z][A-Za-z0-9_]*)\s*\|\s*([YN])\s*\|?\s*([^|]*)")
_UP_TO = re.compile(r"up to Opset (\d+)", re.IGNORECASE)
_RANGE = re.compile(r"range of opset (\d+) to opset (\d+)", re.IGNORECASE)
# A misspelling in one row of the 10.x table (ConstantOfShape: "INF64"); kept readable by fixing it here.
_TYPO = {"INF64": "INT64"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def parse_operators_md(text: str) -> tuple[tuple[int, int], dict[str, tuple[bool, list[str]]]]:
    """((min opset, max opset), {operator: (supported, types)}) of one docs/operators.md."""
    if match := _RANGE.search(text):
        opsets = (int(match.group(1)), int(match.group(2)))
    elif match := _UP_TO.search(text):
        opsets = (7, int(match.group(1)))  # 8.x states no minimum; ModelImporter.cpp refuses below 7
    else:
        raise SystemExit("docs/operators.md states no opset range")
    ops: dict[str, tuple[bool, list[str]]] = {}
    for line in text.splitlines():
        match = _ROW.match(line)
        if not match or match.group(1) == "Operator":
            continue
        types = [_TYPO.get(t.strip(), t.strip()) for t in match.group(3).split(",") if t.strip()]
        ops[match.group(1)] = (match.group(2) == "Y", types)
    if len(ops) < 100:
        raise SystemExit(f"only {len(ops)} operator rows found: the table format changed")
    return opsets, ops


def write_table(repo: Path, branch: str, out: Path) -> Path:
    """Write onnx-tensorrt-<branch>.txt from `branch` of the clone `repo`; returns the file."""
    commit = git(repo, "rev-parse", branch).strip()
    date = git(repo, "log", "-1", "--format=%cs", commit).strip()
    (low, high), ops = parse_operators_md(git(repo, "show", f"{commit}:docs/operators.md"))
    lines = [
        "# ONNX operators the TensorRT ONNX parser supports, from onnx/onnx-tensorrt docs/operators.md",
        f"# branch {branch}, commit {commit} ({date})",
        "# made by scripts/extract_trt_ops.py: NAME Y|N TYPES (the table's 'Supported Types'; - for none)",
        f"opset {low} {high}",
        *[f"{name} {'Y' if ok else 'N'} {','.join(types) or '-'}" for name, (ok, types) in sorted(ops.items())],
    ]
    path = out / f"onnx-tensorrt-{branch}.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, required=True, help="a git clone of onnx/onnx-tensorrt")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parents[1] / "ddad_edge" / "deploy" / "trt_support")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for branch in BRANCHES:
        path = write_table(args.repo, branch, args.out)
        print(f"{path}: {sum(1 for _ in path.open()) - 4} operators from {branch}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
