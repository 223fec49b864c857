"""Extract the attribute names of each TensorRT Python bindings version into small text files.

The TensorRT code of ddad-edge cannot run where it is developed (no GPU, no TensorRT libraries), so it is
checked against the real bindings instead: the bindings wheels are small and on the package index, and
their `tensorrt.so` (pybind11) holds every Python-visible name as a NUL-terminated string. This script
downloads each wheel once (`pip download --no-deps`), reads those strings, and writes
`tests/tensorrt_names/trt-<major.minor>.txt`; the tests read the committed files and never download.

Two details of how a linker stores strings decide the file format:
- A short name can be stored as the tail of a longer string ("INT8" inside "UINT8", "Logger" inside
  "ILogger"). So each line is the trailing identifier run of one string, and a name counts as present
  when some line ends with it. Runs that are tails of other runs are dropped (they add nothing).
- A flat name cannot tell `BuilderFlag.INT8` (removed in TensorRT 11) from `DataType.INT8` (kept). For
  the few enum members whose class matters, the member's docstring is the evidence; those lines start
  with `@` (`@BuilderFlag.INT8`), and the header lists every qualified name that was looked for.
Names defined in the wheel's `__init__.py` (`__version__`, `nptype`, ...) are added as plain lines.

Usage:  python scripts/extract_trt_names.py [--wheels DIR] [--out tests/tensorrt_names]
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import re
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

# label -> pip requirement. The Python API surface is the same on x86_64 and aarch64 (Jetson) wheels.
VERSIONS = {
    "8.6": "tensorrt-bindings==8.6.1",  # JetPack 6.0
    "10.3": "tensorrt-cu12-bindings==10.3.0",  # JetPack 6.1 / 6.2
    "10.16": "tensorrt-cu12-bindings==10.16.1.11",  # JetPack 7.2
    "11.4": "tensorrt-cu13-bindings==11.4.0.106",  # JetPack 7.2.2+
}

# Qualified names whose presence is decided by their docstring (a flat name is ambiguous for them).
DOCSTRING_EVIDENCE = {
    "BuilderFlag.FP16": b"Enable FP16 layer selection",
    "BuilderFlag.INT8": b"Enable Int8 layer selection",
    "BuilderFlag.TF32": b"to use TF32. TF32 computes inner products",
}

PLATFORMS = ("manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_27_x86_64",
             "manylinux_2_28_x86_64", "manylinux_2_31_x86_64", "manylinux_2_34_x86_64")

_TRAILING_IDENT = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*$")


def download_wheel(requirement: str, dest: Path) -> Path:
    """`pip download --no-deps` one bindings wheel (cp311, manylinux x86_64) into `dest`; returns its path."""
    before = set(dest.glob("*.whl"))
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
           "3.11", "--implementation", "cp", "-d", str(dest), requirement]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    subprocess.run(cmd, check=True)
    new = set(dest.glob("*.whl")) - before
    name = requirement.split("==")[0].replace("-", "_")
    version = requirement.split("==")[1]
    found = new or {p for p in dest.glob(f"{name}-{version}-*.whl")}
    if len(found) != 1:
        raise SystemExit(f"expected one wheel for {requirement} in {dest}, found {sorted(found)}")
    return found.pop()


def rodata_of(elf: bytes) -> bytes:
    """The `.rodata` section of a 64-bit little-endian ELF shared library.

    pybind11 names are string literals, which live there; the symbol tables (`.strtab`, `.dynstr`) hold
    mangled C++ names that would only bloat the lists.
    """
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        raise SystemExit("not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    headers = [struct.unpack_from("<IIQQQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    names_off = headers[shstrndx][4]
    for name, _type, _flags, _addr, offset, size in headers:
        end = elf.index(b"\x00", names_off + name)
        if elf[names_off + name:end] == b".rodata":
            return elf[offset:offset + size]
    raise SystemExit("the library has no .rodata section")


def trailing_runs(blob: bytes) -> set[str]:
    """The trailing identifier run of every NUL-terminated string in a block of string literals."""
    runs = set()
    for chunk in blob.split(b"\x00"):
        match = _TRAILING_IDENT.search(chunk)
        if match:
            runs.add(match.group().decode("ascii"))
    return runs


def drop_tails(runs: set[str]) -> list[str]:
    """Runs that are not a proper tail of another run, sorted: the suffix query stays the same."""
    tails = set()
    for run in runs:
        for i in range(1, len(run)):
            tails.add(run[i:])
    return sorted(r for r in runs if r not in tails)


def init_names(source: str) -> set[str]:
    """Module-level functions, classes and assignments of the wheel's `__init__.py`."""
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def names_of_wheel(wheel: Path) -> tuple[list[str], list[str]]:
    """(plain lines, qualified names present) of one bindings wheel."""
    with zipfile.ZipFile(wheel) as zf:
        so_names = [n for n in zf.namelist() if re.search(r"/tensorrt[^/]*\.so$", n)]
        if len(so_names) != 1:
            raise SystemExit(f"{wheel.name}: expected one tensorrt*.so, found {so_names}")
        blob = rodata_of(zf.read(so_names[0]))
        init = [n for n in zf.namelist() if n.endswith("/__init__.py") and n.count("/") == 1]
        extra = init_names(zf.read(init[0]).decode()) if init else set()
    plain = drop_tails(trailing_runs(blob) | extra)
    qualified = sorted(q for q, doc in DOCSTRING_EVIDENCE.items() if doc in blob)
    return plain, qualified


def write_names(label: str, requirement: str, wheel: Path, out: Path) -> Path:
    """Write tests/tensorrt_names/trt-<label>.txt for one wheel; returns the file."""
    plain, qualified = names_of_wheel(wheel)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    lines = [
        f"# TensorRT {label} Python binding names, from {requirement}",
        f"# wheel: {wheel.name} sha256 {digest}",
        "# made by scripts/extract_trt_names.py: a name is present when some plain line ends with it;",
        f"# qualified names looked for: {' '.join(sorted(DOCSTRING_EVIDENCE))}",
        *[f"@{q}" for q in qualified],
        *plain,
    ]
    path = out / f"trt-{label}.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=Path, help="folder with the wheels already downloaded (else: download)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "tests" / "tensorrt_names")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.wheels or Path(tmp)
        for label, requirement in VERSIONS.items():
            name, version = requirement.split("==")
            existing = sorted(folder.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
            wheel = existing[0] if existing else download_wheel(requirement, folder)
            path = write_names(label, requirement, wheel, args.out)
            print(f"{path}: {sum(1 for _ in path.open())} lines from {wheel.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
