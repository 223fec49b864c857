"""benchmarks/fidelity_bundles.py end to end at toy scale: real commands (synth, train, distill, adapt,
export) on a 32-px tiny model with randomly initialised extractors (nothing is downloaded), and the matrix's
fidelity index finding every bundle under its variant."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import yaml

from ddad_edge.bench.report import image_auroc

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def scripts(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import fidelity_bundles
    import run_matrix

    return types.SimpleNamespace(fidelity_bundles=fidelity_bundles, run_matrix=run_matrix)


def test_bundles_for_every_variant_and_a_rerun_makes_nothing(scripts, tmp_path, capsys):
    pytest.importorskip("onnx")
    out = tmp_path / "fidelity"
    args = ["--out", str(out), "--backbones", "resnet18,resnet50", "--steps", "1", "--precisions", "fp32",
            "--scorings", "fused,pixel", "--image-size", "32", "--n-train", "12", "--train-steps", "2",
            "--adapt-steps", "1", "--distill-iterations", "1"]
    assert scripts.fidelity_bundles.main(args) == 0
    first = capsys.readouterr().out
    for command in ("synth", "train", "distill", "adapt", "export"):
        assert f"$ ddad-edge {command} " in first, command
    assert first.count("$ ddad-edge adapt ") == 2 and first.count("$ ddad-edge export ") == 3

    # the second backbone's run holds the first one's UNet and student, scored with its own extractor
    base, derived = out / "runs" / "resnet18", out / "runs" / "resnet50"
    for name in ("checkpoints/last.pt", "students/steps_1.pt"):
        assert (derived / name).read_bytes() == (base / name).read_bytes(), name
    assert yaml.safe_load((derived / "config.yaml").read_text())["scoring"]["backbone"] == "resnet50"
    assert (derived / "backbone.pt").is_file() and (base / "backbone.pt").is_file()

    index = scripts.run_matrix.fidelity_index([out / "bundles"])
    assert set(index) == {("fp32", 1, "fused", "resnet18"), ("fp32", 1, "fused", "resnet50"),
                          ("fp32", 1, "pixel", None)}
    for numbers, source, model in index.values():
        assert 0.0 <= image_auroc(numbers) <= 1.0 and Path(source).is_file()
        assert (model["preset"], model["image_size"]) == ("tiny", 32)

    # everything is there: a second call only lists it
    assert scripts.fidelity_bundles.main(args) == 0
    assert "$ ddad-edge" not in capsys.readouterr().out


@pytest.mark.parametrize("option, value, named", [("--backbones", "resnet18,no_such_net", "no_such_net"),
                                                 ("--precisions", "fp32,int4", "int4"),
                                                 ("--scorings", "fused,features", "features"),
                                                 ("--steps", "2,x", "x")])
def test_a_bad_option_is_one_line_before_any_work(scripts, tmp_path, capsys, option, value, named):
    out = tmp_path / "f"
    assert scripts.fidelity_bundles.main(["--out", str(out), option, value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and named in err[0] and option in err[0]
    assert not out.exists()
