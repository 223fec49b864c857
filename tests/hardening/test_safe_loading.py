"""Loading never runs code from a file: checkpoints through torch.load(weights_only=True), YAML through
safe_load, no pickled arrays in bundles. Each file that tries is refused with one line, and the code it
carries does not run (it would create a marker file).

The source scan keeps it so: the package may not import pickle (or its relatives), call yaml.load,
allow_pickle=True or weights_only=False, and every torch.load / np.load call must say it loads no pickle.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from ddad_edge.bundle import check_npz, load_arrays, write_manifest
from ddad_edge.errors import DdadError
from tests.bundle_factory import make_toy_bundle
from tests.cli_helpers import assert_one_line

PACKAGE = Path(__file__).resolve().parents[2] / "ddad_edge"


class Payload:
    """Unpickling this object would create `marker`: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_checkpoint_carrying_a_pickled_object_is_refused(tmp_path):
    import torch

    from ddad_edge.config import RunConfig
    from ddad_edge.model.checkpoint import load_checkpoint
    from ddad_edge.yaml_strict import to_dict

    marker = tmp_path / "code-ran"
    path = tmp_path / "last.pt"
    torch.save({"config": to_dict(RunConfig()), "unet": {"w": torch.zeros(2)}, "extra": Payload(marker)}, path)
    with pytest.raises(DdadError) as info:
        load_checkpoint(path)
    assert_one_line(info.value, "last.pt")
    assert not marker.exists()
    # the same file without the object loads: the refusal is about the object, not the format
    torch.save({"config": to_dict(RunConfig()), "unet": {"w": torch.zeros(2)}}, path)
    assert set(load_checkpoint(path)) == {"config", "unet"}


def test_backbone_weights_carrying_a_pickled_object_are_refused(tmp_path):
    import torch

    from ddad_edge.model.backbone import load_backbone

    marker = tmp_path / "code-ran"
    path = tmp_path / "weights.pth"
    torch.save({"conv1.weight": torch.zeros(1), "evil": Payload(marker)}, path)
    with pytest.raises(DdadError) as info:
        load_backbone("resnet18", str(path))
    assert_one_line(info.value, "weights.pth")
    assert not marker.exists()


@pytest.mark.parametrize("content", [[1, 2], {"conv1.weight": [0.0]}, 3.0], ids=["list", "dict-of-lists", "number"])
def test_backbone_weights_that_are_no_state_dict_are_one_line(tmp_path, content):
    import torch

    from ddad_edge.model.backbone import load_backbone

    path = tmp_path / "weights.pth"
    torch.save(content, path)  # a valid torch file, but not a mapping of names to tensors
    with pytest.raises(DdadError) as info:
        load_backbone("resnet18", str(path))
    assert_one_line(info.value, "weights.pth", "state_dict")


def test_pickled_npz_members_are_refused(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "frames.npz"
    np.savez(path, frames=np.zeros((2, 4, 4, 3), np.uint8), evil=np.array([Payload(marker)], dtype=object))
    for load in (lambda: check_npz(path), lambda: load_arrays(path, ("frames",))):
        with pytest.raises(DdadError) as info:
            load()
        assert_one_line(info.value, "frames.npz", "pickled")
    assert not marker.exists()
    np.savez(path, frames=np.zeros((2, 4, 4, 3), np.uint8))
    assert load_arrays(path, ("frames",))["frames"].shape == (2, 4, 4, 3)
    for damaged in (b"", b"PK\x03\x04 not a zip", np.zeros(3).tobytes()):
        path.write_bytes(damaged)
        with pytest.raises(DdadError) as info:
            load_arrays(path, ("frames",))
        assert_one_line(info.value, "frames.npz")


def test_calibration_frames_with_a_pickle_inside(tmp_path):
    """TensorRT's legacy calibrator reads calibration.npz from the bundle: a pickled member is one line,
    whether or not the manifest was re-hashed after the swap."""
    from ddad_edge.bundle import read_bundle
    from ddad_edge.deploy.tensorrt_calibrate import load_calibration_frames

    marker = tmp_path / "code-ran"
    bundle = make_toy_bundle(tmp_path / "bundle", image_size=16, calibration_frames=4)
    np.savez(bundle.path / "calibration.npz", frames=np.array([Payload(marker)], dtype=object))
    with pytest.raises(DdadError) as info:
        load_calibration_frames(bundle)  # the bundle object as it was read before the swap
    assert_one_line(info.value, "calibration.npz", "pickled")
    write_manifest(bundle.path, bundle.manifest)
    with pytest.raises(DdadError) as info:
        read_bundle(bundle.path)
    assert_one_line(info.value, "calibration.npz", "pickled")
    assert not marker.exists()


def test_yaml_with_python_tags_runs_nothing(tmp_path):
    from ddad_edge.deploy.tensorrt_profile import load_build_profile

    marker = tmp_path / "code-ran"
    path = tmp_path / "profile.yaml"
    path.write_text(f"name: !!python/object/apply:pathlib.Path.touch [!!python/object/apply:pathlib.Path "
                    f"['{marker}']]\n")
    with pytest.raises(DdadError) as info:
        load_build_profile(str(path))
    assert_one_line(info.value)
    assert not marker.exists()


# --- the source scan --------------------------------------------------------------------------------

PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
FORBIDDEN_TEXT = [r"yaml\.load\(", r"yaml\.unsafe_load", r"yaml\.full_load", r"Loader\s*=\s*yaml\.(Unsafe|Full)?Loader",
                  r"allow_pickle\s*=\s*True", r"weights_only\s*=\s*False", r"torch\.hub\.load", r"\bpickle\."]


def package_sources() -> list[tuple[Path, str]]:
    return [(p, p.read_text(encoding="utf-8")) for p in sorted(PACKAGE.rglob("*.py"))]


def call_name(node: ast.Call) -> str:
    func, parts = node.func, []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def keyword(node: ast.Call, name: str):
    for kw in node.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else "not a constant"
    return None


def test_the_package_loads_no_pickle():
    problems, torch_loads, np_loads = [], 0, 0
    for path, text in package_sources():
        where = path.relative_to(PACKAGE.parent)
        for pattern in FORBIDDEN_TEXT:
            for match in re.finditer(pattern, text):
                problems.append(f"{where}:{text[:match.start()].count(chr(10)) + 1}: {match.group(0)}")
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                problems += [f"{where}:{node.lineno}: imports {n}" for n in names
                             if n.split(".")[0] in PICKLE_MODULES]
            if isinstance(node, ast.Call):
                name = call_name(node)
                if name == "torch.load":
                    torch_loads += 1
                    if keyword(node, "weights_only") is not True:
                        problems.append(f"{where}:{node.lineno}: torch.load without weights_only=True")
                if name in ("np.load", "numpy.load"):
                    np_loads += 1
                    if keyword(node, "allow_pickle") not in (None, False):
                        problems.append(f"{where}:{node.lineno}: np.load with allow_pickle")
    assert not problems, "\n".join(problems)
    assert torch_loads >= 2 and np_loads >= 2, "the scan found the loading calls it is meant to check"


def test_the_scan_catches_what_it_forbids(tmp_path, monkeypatch):
    """The scan is not vacuous: a module with each forbidden form is flagged."""
    bad = tmp_path / "ddad_edge"
    bad.mkdir()
    (bad / "bad.py").write_text(
        "import pickle\nimport torch, yaml, numpy as np\n"
        "a = torch.load('x')\nb = torch.load('x', weights_only=False)\nc = yaml.load('x')\n"
        "d = np.load('x', allow_pickle=True)\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", bad)
    with pytest.raises(AssertionError) as info:
        test_the_package_loads_no_pickle()
    report = str(info.value)
    for needle in ("imports pickle", ":3: torch.load without", ":4: weights_only=False", "yaml.load(",
                   "allow_pickle=True"):
        assert needle in report, (needle, report)
