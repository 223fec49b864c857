"""benchmarks/fidelity_bundles.py end to end at toy scale: real commands (synth, train, distill, adapt,
export) on a 32-px tiny model with randomly initialised extractors (nothing is downloaded), and the matrix's
fidelity index finding every bundle under its variant."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import types
from pathlib import Path

import pytest
import yaml

from ddad_edge.bench.report import image_auroc

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
TOY = ["--backbones", "resnet18,resnet50", "--steps", "1", "--image-size", "32", "--n-train", "12",
       "--train-steps", "2", "--adapt-steps", "1", "--distill-iterations", "1", "--n-test-good", "4",
       "--n-test-defect", "4", "--student", "1: --t-prime 124 --teacher-steps 4 --iterations 1"]


@pytest.fixture(scope="module")
def scripts():
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCHMARKS))
        import fidelity_bundles
        import run_matrix

        yield types.SimpleNamespace(fidelity_bundles=fidelity_bundles, run_matrix=run_matrix)


@pytest.fixture(scope="module")
def made(scripts, tmp_path_factory):
    """FP32 bundles of the toy model, fused for both backbones and pixel-only once; what the first call said."""
    pytest.importorskip("onnx")
    out = tmp_path_factory.mktemp("fidelity")
    args = ["--out", str(out), *TOY, "--precisions", "fp32", "--scorings", "fused,pixel"]
    said = io.StringIO()
    with contextlib.redirect_stdout(said):
        assert scripts.fidelity_bundles.main(args) == 0
    return out, args, said.getvalue()


def test_bundles_for_every_variant_and_a_rerun_makes_nothing(scripts, made, capsys):
    out, args, first = made
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
    variants = {("fp32", 1, "fused", "resnet18"), ("fp32", 1, "fused", "resnet50"), ("fp32", 1, "pixel", None)}
    assert {k[1:] for k in index if k[0] == "onnxruntime"} == variants
    # OpenVINO's f32 mode of each file, measured by the export, on the test split too (bf16 where the CPU has it)
    assert {k[1:] for k in index if k[0] == "openvino-f32"} == variants
    assert {k[0] for k in index} <= {"onnxruntime", "openvino-f32", "openvino-bf16"}
    for key, (numbers, source, model) in index.items():
        if key[0] == "onnxruntime":
            assert "mode" not in model
            continue
        assert model["mode"] == key[0] and model["mode_status"]["status"] in ("offered", "refused")
        test = scripts.run_matrix.scores_of_test_split(Path(source), key[0])
        assert test["labels"] == [0] * 4 + [1] * 4 and len(test["scores"]) == 8
        ort = scripts.run_matrix.scores_of_test_split(Path(source))
        if key[0] == "openvino-f32":  # the file's arithmetic: the same scores as ONNX Runtime's, to rounding
            assert test["scores"] == pytest.approx(ort["scores"], rel=1e-3, abs=1e-6)
    for numbers, source, model in index.values():
        assert 0.0 <= image_auroc(numbers) <= 1.0 and Path(source).is_file()
        assert (model["preset"], model["image_size"]) == ("tiny", 32)
        assert model["data_set"].startswith("the hard synthetic set (woven surface")
        assert "8 test images" in model["data_set"]
        # per-image test scores, for the matrix's paired AUROC drop against the teacher
        test = scripts.run_matrix.scores_of_test_split(Path(source))
        assert test["labels"] == [0] * 4 + [1] * 4 and len(test["scores"]) == 8
    assert yaml.safe_load((out / "data" / "widget" / "synth.yaml").read_text())["difficulty"] == "hard"
    # the teacher's own AUROC, with its interval, is checked against the hard set's band at the end
    assert first.count("most-steps FP32 bundle fp32-k1-") == 3 and "0.85-0.95" in first
    assert scripts.run_matrix.refused_index([out / "bundles"]) == {}

    # everything is there: a second call only lists it
    assert scripts.fidelity_bundles.main(args) == 0
    assert "$ ddad-edge" not in capsys.readouterr().out


def test_a_refused_export_is_recorded_and_the_rest_goes_on(scripts, made, tmp_path, capsys):
    """An INT8 budget no file can meet (map error 1e-9 of max, no fallback round): the export refuses it
    for real, the script says so, keeps the reason for the matrix, and does not try it again."""
    out, _, _ = made
    recipe = yaml.safe_load((BENCHMARKS.parent / "calibration" / "int8.yaml").read_text())
    recipe["tolerance"] = {"map_rel": 1e-9, "score_rel": 1e-9}
    recipe["int8"].update(calibration_images=4, fallback_rounds=0)
    (tmp_path / "strict.yaml").write_text(yaml.safe_dump(recipe))
    args = ["--out", str(out), *TOY, "--precisions", "fp32,int8", "--scorings", "pixel",
            "--int8-recipe", str(tmp_path / "strict.yaml")]
    assert scripts.fidelity_bundles.main(args) == 0
    said = capsys.readouterr()
    assert said.out.count("$ ddad-edge export ") == 1 and "--recipe" in said.out  # only the INT8 one is new
    assert "refused: int8-k1-pixel: INT8 missed the recipe's budget" in said.out
    refused = json.loads((out / "bundles" / "refused.json").read_text())
    assert list(refused) == ["int8-k1-pixel"] and not (out / "bundles" / "int8-k1-pixel" / "manifest.yaml").exists()
    entry = scripts.run_matrix.refused_index([out / "bundles"])[("int8", 1, "pixel", None)]
    assert "budget" in entry["why"] and (entry["preset"], entry["image_size"]) == ("tiny", 32)
    # refused once, refused on a rerun without a new try
    assert scripts.fidelity_bundles.main(args) == 0
    again = capsys.readouterr().out
    assert "$ ddad-edge" not in again and "refused: int8-k1-pixel" in again


def test_the_matrix_sets_each_backends_fidelity_beside_its_row(scripts, made, tmp_path):
    """The matrix at toy scale over these real bundles, on ONNX Runtime and OpenVINO's f32 mode: each row's
    fidelity is its backend's (the OpenVINO row's from the mode the export measured), the teacher is the FP32
    file of the most steps in its best-scoring scoring as ONNX Runtime runs it, and the results name the
    frontier and the fastest variant within one AUROC point of the teacher, which is the default edge variant."""
    out, _, _ = made
    results = tmp_path / "results"
    args = ["--work", str(tmp_path / "work"), "--out", str(results), "--machine", "toy", "--preset", "tiny",
            "--image-size", "32", "--steps", "1", "--precisions", "fp32", "--backbones", "resnet18",
            "--scorings", "fused,pixel", "--backends", "onnxruntime,openvino", "--frame-size", "64x48",
            "--warmup", "1", "--iters", "2", "--overhead-frames", "0", "--profile-runs", "1",
            "--reference-spec", "tiny,32,resnet18", "--reference-threads", "1", "--reference-iters", "1",
            "--no-reference-again", "--torch-device", "cpu", "--no-progress",
            "--fidelity-bundles", str(out / "bundles")]
    assert scripts.run_matrix.main(args) == 0
    rows = [r for r in json.loads((results / "toy.json").read_text()) if not r.get("reference")]
    assert sorted(r["variant"]["name"] for r in rows) == [
        "onnxruntime fp32 k1 pixel-only", "onnxruntime fp32 k1 resnet18",
        "openvino-f32 fp32 k1 pixel-only", "openvino-f32 fp32 k1 resnet18"]
    reports = {r["variant"]["name"]: json.loads(Path(r["fidelity_source"]).read_text()) for r in rows}
    for r in rows:
        report = reports[r["variant"]["name"]]
        if r["variant"]["backend"] == "onnxruntime":
            own = report["test_split"]
        else:
            own = report["execution_modes"]["openvino-f32"]["test_split"]
            assert r["mode_status"]["status"] == report["execution_modes"]["openvino-f32"]["status"]
        assert image_auroc(r["fidelity"]) == pytest.approx(own["auroc"])
        assert r["fidelity_test"]["scores"] == own["scores"]
    import matrix_report  # beside run_matrix in benchmarks/

    view = matrix_report.budget_view(json.loads((results / "toy.json").read_text()))
    aurocs = {r["variant"]["scoring"]: own["test_split"]["auroc"] for r in rows
              if r["variant"]["backend"] == "onnxruntime" for own in [reports[r["variant"]["name"]]]}
    best_scoring = max(aurocs, key=lambda k: (aurocs[k], k == "fused"))
    teacher = f"onnxruntime fp32 k1 {'resnet18' if best_scoring == 'fused' else 'pixel-only'}"
    assert view["teacher"]["variant"]["name"] == teacher
    md = (results / "toy.md").read_text()
    assert "## The fastest variant within the fidelity budget" in md and "The frontier" in md
    best = view["best"]  # the teacher itself is within budget (drop 0): there is always one here
    assert best is not None and best.drop <= 0.01
    assert f"**Fastest within budget: {best.name}**" in md
    assert f"Default edge variant (`--edge frontier`: the fastest variant within the fidelity budget, above): " \
           f"**{best.name}**" in md


@pytest.mark.parametrize("option, value, named", [("--backbones", "resnet18,no_such_net", "no_such_net"),
                                                 ("--precisions", "fp32,int4", "int4"),
                                                 ("--scorings", "fused,features", "features"),
                                                 ("--steps", "2,x", "x"),
                                                 ("--student", "1: --epochs 3", "--epochs"),
                                                 ("--student", "one: --iterations 3", "one"),
                                                 ("--student", "1: --iterations", "--iterations"),
                                                 ("--naive", "1", "'1'"),
                                                 ("--naive", "2:5", "'2:5'"),  # no whole 2-step grid from 5
                                                 ("--naive", "3:6", "not one of --steps 10,2,1")])
def test_a_bad_option_is_one_line_before_any_work(scripts, tmp_path, capsys, option, value, named):
    out = tmp_path / "f"
    assert scripts.fidelity_bundles.main(["--out", str(out), option, value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and named in err[0] and option in err[0]
    assert not out.exists()


def test_a_k_named_both_naive_and_student_is_one_line(scripts, tmp_path, capsys):
    out = tmp_path / "f"
    assert scripts.fidelity_bundles.main(["--out", str(out), "--naive", "1:5", "--student", "1: --iterations 3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "either the teacher from a level or a distilled student" in err[0]
    assert not out.exists()


def test_data_of_another_difficulty_is_refused_before_it_is_used(scripts, tmp_path, capsys):
    from ddad_edge.data.synth import make_synthetic_dataset

    make_synthetic_dataset(tmp_path / "f" / "data", n_train=2, n_test_good=1, n_test_defect=1)  # the easy set
    assert scripts.fidelity_bundles.main(["--out", str(tmp_path / "f"), *TOY]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "holds the easy synthetic set, not the hard one" in err[-1]
    assert not (tmp_path / "f" / "runs").exists()


def test_a_hard_set_of_another_strength_is_refused_before_it_is_used(scripts, tmp_path, capsys):
    """Its test images would silently measure another difficulty than the calibrated one."""
    from ddad_edge.data.surface import HARD_STRENGTH, make_surface_dataset

    make_surface_dataset(tmp_path / "f" / "data", n_train=2, n_test_good=1, n_test_defect=1,
                         strength=HARD_STRENGTH / 2)
    assert scripts.fidelity_bundles.main(["--out", str(tmp_path / "f"), *TOY]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"error: {tmp_path / 'f' / 'data' / 'widget'} holds the hard set at defect strength "
                       f"{HARD_STRENGTH / 2}, not the calibrated {HARD_STRENGTH}: remove its data/ and bundles/ "
                       "folders (runs/ stays valid: the training images are the same at every strength) or give "
                       "another --out")
    assert not (tmp_path / "f" / "runs").exists()


def test_a_student_asked_with_other_options_is_made_again_with_its_bundles(scripts, made, tmp_path, capsys):
    """The distillation report says how each student was made; asked otherwise (here the 1-step student from
    a 2-step grid instead of 4), the script distills it again, copies it into the derived run, and exports
    again the bundles made from the old one. Asked the same way again, it makes nothing."""
    out = tmp_path / "f"
    shutil.copytree(made[0], out)
    base, derived = out / "runs" / "resnet18", out / "runs" / "resnet50"
    before = json.loads((base / "distill" / "report_steps_1.json").read_text())["config"]
    assert (before["t_prime"], before["teacher_steps"]) == (124, 4)
    args = ["--out", str(out), *TOY, "--student", "1: --t-prime 124 --teacher-steps 2 --iterations 1",
            "--precisions", "fp32", "--scorings", "pixel"]
    assert scripts.fidelity_bundles.main(args) == 0
    said = capsys.readouterr().out
    assert said.count("$ ddad-edge distill ") == 1 and "--teacher-steps 2" in said and "--replace" in said
    assert "fp32-k1-pixel: made from an earlier 1-step student; exported again" in said
    assert said.count("$ ddad-edge export ") == 1
    after = json.loads((base / "distill" / "report_steps_1.json").read_text())["config"]
    assert (after["t_prime"], after["teacher_steps"]) == (124, 2)
    assert (derived / "students" / "steps_1.pt").read_bytes() == (base / "students" / "steps_1.pt").read_bytes()
    manifest = yaml.safe_load((out / "bundles" / "fp32-k1-pixel" / "manifest.yaml").read_text())
    assert manifest["graph"]["timesteps"] == [62]  # the 1-step student of the 2-step grid from 124
    assert scripts.fidelity_bundles.main(args) == 0
    assert "$ ddad-edge" not in capsys.readouterr().out


def test_a_refusal_older_than_its_student_is_tried_again(scripts, tmp_path):
    """A refusal (INT8 beyond budget, say) was the old student's result; a new student may pass. Refusals
    kept from before they were stamped count as old as refused.json."""
    fb = scripts.fidelity_bundles
    run, bundles = tmp_path / "run", tmp_path / "bundles"
    (run / "students").mkdir(parents=True)
    student = run / "students" / "steps_1.pt"
    student.write_bytes(b"student")
    os.utime(student, (2000.0, 2000.0))
    refused = {"int8-k1-pixel": {"why": "budget", "when": 1000.0}, "int8-k2-pixel": {"why": "budget", "when": 3000.0},
               "int8-k1-resnet18": {"why": "budget"}}
    fb.write_refused(bundles, refused)
    os.utime(bundles / fb.REFUSED, (2500.0, 2500.0))
    stale = {name: fb.made_before_student(bundles / name, name, run, 1, refused) for name in refused}
    assert stale == {"int8-k1-pixel": True, "int8-k2-pixel": False, "int8-k1-resnet18": False}
    os.utime(bundles / fb.REFUSED, (1500.0, 1500.0))
    assert fb.made_before_student(bundles / "int8-k1-resnet18", "int8-k1-resnet18", run, 1, refused)
    assert not fb.made_before_student(bundles / "fp32-k1-pixel", "fp32-k1-pixel", run, 1, refused)  # neither


def test_a_k_asked_as_the_teacher_from_a_level_replaces_its_student_bundles(scripts, made, tmp_path, capsys):
    """--naive 1:20: the 1-step variant becomes the teacher itself from level 20. Nothing is distilled, the
    bundle made from the student is exported again with `--naive --start-level 20`, and the matrix's index
    says which sampler its fidelity comes from. Asked the same way again, it makes nothing."""
    out = tmp_path / "f"
    shutil.copytree(made[0], out)
    args = ["--out", str(out), *TOY[:TOY.index("--student")], "--naive", "1:20", "--precisions", "fp32",
            "--scorings", "pixel"]
    assert scripts.fidelity_bundles.main(args) == 0
    said = capsys.readouterr().out
    assert "$ ddad-edge distill " not in said
    assert "fp32-k1-pixel: made with the student sampler, asked for the naive from 20 one; exported again" in said
    assert said.count("$ ddad-edge export ") == 1 and "--naive --start-level 20" in said
    graph = yaml.safe_load((out / "bundles" / "fp32-k1-pixel" / "manifest.yaml").read_text())["graph"]
    assert (graph["timesteps"], graph["t_prime"], graph["start_level"]) == ([20], 20, 20)
    index = scripts.run_matrix.fidelity_index([out / "bundles"])
    assert index[("onnxruntime", "fp32", 1, "pixel", None)][2]["sampler"].startswith(
        "the teacher itself, 1 step from noise level 20 (20 → 20;")
    assert scripts.fidelity_bundles.main(args) == 0
    assert "$ ddad-edge" not in capsys.readouterr().out


def test_a_refusal_of_another_sampler_is_tried_again(scripts, tmp_path):
    """A refusal names the sampler it was made with; one kept from before refusals did was of the teacher or
    a student, so a K now asked as the teacher from a level tries it again."""
    fb = scripts.fidelity_bundles
    missing = tmp_path / "no-bundle"
    assert fb.sampler_made(missing, None, 1, 10) is None
    assert fb.sampler_made(missing, {"why": "budget"}, 1, 10) == "student"
    assert fb.sampler_made(missing, {"why": "budget"}, 10, 10) == "teacher"
    assert fb.sampler_made(missing, {"why": "budget", "sampler": "naive from 5"}, 1, 10) == "naive from 5"
    assert fb.sampler_label(1, 10, {1: 5}) == "naive from 5" != fb.sampler_made(missing, {"why": "b"}, 1, 10)
