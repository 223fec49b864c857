"""Step distillation: grids that halve, one round that brings the student closer to its teacher, the
checkpoints and report of `ddad-edge distill`, and `evaluate --steps K` for a K that was never distilled."""

import json
import math
import shutil

import pytest
import torch

from ddad_edge.cli import main
from ddad_edge.config import DiffusionConfig
from ddad_edge.data.folders import load_images
from ddad_edge.errors import DdadError
from ddad_edge.model.build import build_pipeline
from ddad_edge.model.checkpoint import load_checkpoint, load_run_unet, open_run
from ddad_edge.model.pipeline import frames_to_tensor
from ddad_edge.model.schedule import alpha_bar, alphas_cumprod
from ddad_edge.train.distill import (
    DefectTarget,
    DistillConfig,
    DistillMethod,
    add_synthetic_defects,
    distill_round,
    distillation_grids,
    fixed_start_noise,
    reconstruction_error,
    run_states,
    x0_target,
)


def test_grids_halve_on_integers_down_to_one_step():
    grids = distillation_grids(248, 8, 1)
    assert grids[0] == [217, 186, 155, 124, 93, 62, 31, 0]
    assert [len(g) for g in grids] == [8, 4, 2, 1]
    for teacher, student in zip(grids, grids[1:]):
        # student step i starts where teacher step 2i starts, and ends where teacher step 2i+1 ends
        assert student == [teacher[2 * i] for i in range(len(teacher) // 2)]
    assert grids[-1] == [217]
    sixteen = distillation_grids(240, 16, 2)
    assert [len(g) for g in sixteen] == [16, 8, 4, 2] and sixteen[0][0] == 225 and sixteen[0][-1] == 0


@pytest.mark.parametrize("t_prime, teacher_steps, to_steps, words", [
    (248, 8, 3, "4, 2, 1"),  # not an offered K
    (248, 6, 2, "cannot be halved"),  # 6 → 3 → ... never reaches 2 by halving
    (250, 8, 2, "T'=248"),  # 250 steps do not split into 8 integer steps
])
def test_grids_that_do_not_halve_are_refused(t_prime, teacher_steps, to_steps, words):
    with pytest.raises(DdadError, match=words):
        distillation_grids(t_prime, teacher_steps, to_steps)


def test_x0_target_makes_one_step_land_on_the_teacher():
    abar = alphas_cumprod(DiffusionConfig())
    g = torch.Generator().manual_seed(0)
    x_t, x_next = torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
    for t, t_next in [(217, 155), (93, 31)]:
        x0 = x0_target(x_t, x_next, abar, t, t_next)
        a, a_n = alpha_bar(abar, t), alpha_bar(abar, t_next)
        eps_hat = (x_t - math.sqrt(a) * x0) / math.sqrt(1 - a)  # the ε̂ that goes with this x̂0 at x_t
        landed = math.sqrt(a_n) * x0 + math.sqrt(1 - a_n) * eps_hat  # the η=0 step
        torch.testing.assert_close(landed, x_next, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(x0_target(x_t, x_next, abar, 31, -1), x_next)  # last step: the teacher's x̂0


def test_synthetic_defects_are_one_small_shape_in_the_chosen_images():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(6, 3, 32, 32, generator=g) * 2 - 1
    before = x.clone()
    out, mask = add_synthetic_defects(x, 1.0, g)
    torch.testing.assert_close(x, before)  # the batch itself is left alone
    for i in range(6):
        rows, cols = torch.nonzero((out[i] != x[i]).any(0), as_tuple=True)
        assert len(rows) > 0
        assert rows.max() - rows.min() < 8 and cols.max() - cols.min() < 8  # at most H/4 × W/4
        assert mask[i, 0, rows, cols].all()  # every changed pixel is marked
    many, marks = add_synthetic_defects(torch.zeros(64, 3, 32, 32), 1.0, g)
    sizes = marks.flatten(1).sum(1)
    assert sizes.min() >= 1 and sizes.max() <= 64  # never more than the H/4 x W/4 box
    assert (sizes <= 12).float().mean() > 0.3  # spots and thin lines, not only patches
    untouched, none = add_synthetic_defects(x, 0.0, g)
    torch.testing.assert_close(untouched, x)
    assert not none.any()


def _round_setup(run_dir):
    run = open_run(run_dir)
    size = run.cfg.model.image_size
    images = frames_to_tensor(load_images(run.train_files, size))
    val = frames_to_tensor(load_images(run.val_files, size))
    abar = alphas_cumprod(run.cfg.diffusion)
    z = fixed_start_noise(size, 3, 2, run.cfg.sampler.noise_seed)
    return run, images, val, abar, z


@pytest.mark.parametrize("method, teacher_steps, student_steps", [
    (DistillMethod.PROGRESSIVE, 2, 1),  # 124, 0 → 124
    (DistillMethod.DIRECT, 4, 2),  # 186, 124, 62, 0 → 186, 62 (the student's whole chain trained)
])
def test_one_round_brings_the_student_closer_to_the_teacher_on_held_out_images(tiny_run, method, teacher_steps,
                                                                              student_steps):
    run, images, val, abar, z = _round_setup(tiny_run)
    teacher = load_run_unet(run)
    grids = distillation_grids(248, teacher_steps, student_steps)
    t_grid, s_grid = grids[0], grids[-1]
    w = run.cfg.sampler.w
    # Before training the student IS the teacher, run on the student's grid: the naive teacher.
    before = reconstruction_error(teacher, s_grid, teacher, t_grid, val, abar, 248, w, z)
    # Pure distillation (the student's targets are all the teacher's own reconstructions); the direct
    # method's default, the repaired target, is tested on its own below: it leaves the teacher on purpose.
    cfg = DistillConfig(to_steps=student_steps, teacher_steps=teacher_steps, method=method, iterations=20,
                        batch_size=4, lr=1e-4, defect_target=DefectTarget.TEACHER)
    res = distill_round(teacher, t_grid, images, abar, 248, w, z, cfg, student_steps, show_progress=False)
    after = reconstruction_error(res.student, s_grid, teacher, t_grid, val, abar, 248, w, z)
    assert res.grid == s_grid and res.iterations == 20
    assert after < 0.8 * before, (before, after)  # seen: 0.47 and 0.67 of before
    # the teacher itself was not touched by its student's training
    torch.testing.assert_close(teacher.state_dict(), load_run_unet(run).state_dict())


def test_the_target_on_synthetic_defects_follows_the_method_and_is_checked_when_made():
    assert DistillConfig().defect_target is DefectTarget.REPAIRED  # the direct method's default
    assert DistillConfig(method=DistillMethod.PROGRESSIVE).defect_target is DefectTarget.TEACHER
    from_yaml = DistillConfig(method="direct", defect_target="teacher")  # values as a file would give them
    assert from_yaml.method is DistillMethod.DIRECT and from_yaml.defect_target is DefectTarget.TEACHER
    with pytest.raises(DdadError, match="needs --method direct"):
        DistillConfig(method="progressive", defect_target="repaired")


def test_a_repaired_target_teaches_the_student_to_remove_what_the_teacher_would_not_have_seen(tiny_run):
    # Same seed, same batches, same iterations; only the target on the synthetic defects differs. Held-out
    # images with defects of their own: inside the defects, the "repaired" student's reconstruction must be
    # nearer the teacher's reconstruction of the clean image than the plain student's is.
    run, images, val, abar, z = _round_setup(tiny_run)
    teacher = load_run_unet(run)
    t_grid, s_grid = distillation_grids(248, 4, 2)[0], distillation_grids(248, 4, 2)[-1]
    w = run.cfg.sampler.w
    defected, mask = add_synthetic_defects(val, 1.0, torch.Generator().manual_seed(7))
    with torch.no_grad():
        clean_target = run_states(teacher, val, val, z, abar, t_grid, 248, w)[-1]

    def error_in_defects(target: DefectTarget) -> float:
        cfg = DistillConfig(to_steps=2, teacher_steps=4, method=DistillMethod.DIRECT, iterations=40, batch_size=4,
                            defect_target=target)
        student = distill_round(teacher, t_grid, images, abar, 248, w, z, cfg, 2, show_progress=False).student
        with torch.no_grad():
            out = run_states(student, defected, defected, z, abar, s_grid, 248, w)[-1]
        return float(((out - clean_target).abs() * mask).sum() / (mask.sum() * out.shape[1]))

    plain, repaired = error_in_defects(DefectTarget.TEACHER), error_in_defects(DefectTarget.REPAIRED)
    assert repaired < 0.9 * plain, (plain, repaired)  # seen: 0.77 of plain


def _cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


def test_progressive_distill_saves_each_round_with_its_grid_and_w_and_evaluate_picks_it(tmp_path, tiny_run,
                                                                                         capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    code, out, err = _cli(capsys, "distill", "--run", run_dir, "--to-steps", 1, "--teacher-steps", 4,
                          "--method", "progressive", "--iterations", 2, "--batch-size", 4, "--device", "cpu",
                          "--scoring", "pixel")
    assert code == 0, err
    run = open_run(run_dir)
    assert run.students() == [1, 2, 4]
    expected = {4: ([186, 124, 62, 0], 0), 2: ([186, 62], 1), 1: ([186], 2)}
    for k, (grid, round_) in expected.items():
        payload = load_checkpoint(run.student_path(k))
        assert payload["timesteps"] == grid and payload["t_prime"] == 248 and payload["round"] == round_
        assert payload["w"] == run.cfg.sampler.w and payload["eta"] == 0.0
    student = load_checkpoint(run.student_path(1))
    assert set(student["fidelity"]) >= {"student", "naive"} and student["training"]["iterations"] == 2

    report_path = run_dir / "distill" / "report_steps_1.json"
    assert f"report {report_path}" in out
    report = json.loads(report_path.read_text())
    assert report["scoring"] == "pixel" and "pixel scoring" in out  # the mode the report's scores use
    assert report["config"]["defect_target"] == "teacher"  # progressive's only target, recorded
    assert student["distill"]["defect_target"] == "teacher"
    labels = [(r["label"], r["steps"]) for r in report["rows"]]
    assert labels[:2] == [("teacher", 4), ("teacher (DDAD grid)", 10)]
    assert ("student", 1) in labels and ("naive teacher", 1) in labels and ("student", 2) in labels
    assert all(0.0 <= r["image_auroc"] <= 1.0 for r in report["rows"])
    assert set(report["summary"]) >= {"teacher", "teacher_ddad_grid", "student_1", "naive_1"}
    assert "| student" in out and "naive teacher" in out  # the printed table

    pipe = build_pipeline(run, steps=2)
    assert pipe.timesteps == [186, 62] and pipe.t_prime == 248 and pipe.w == run.cfg.sampler.w
    assert run.cfg.sampler.eta == 1.0 and pipe.eta == 0.0  # a student runs at the η it was distilled for
    with pytest.warns(UserWarning, match="distilled for w="):
        build_pipeline(run, steps=2, w=run.cfg.sampler.w + 1.0)

    code, out, err = _cli(capsys, "evaluate", "--run", run_dir, "--steps", 1, "--eta", 0,
                          "--json", tmp_path / "ev.json", "--out", tmp_path / "ev")
    assert code == 0, err
    ev = json.loads((tmp_path / "ev.json").read_text())
    assert ev["steps"] == 1 and ev["timesteps"] == [186] and ev["w"] == run.cfg.sampler.w

    # A direct distillation to 2 would write over round 1 of this progressive one (students/steps_2.pt, which
    # report_steps_1.json describes): refused in one line before any work, nothing touched.
    first, old_student = report_path.read_bytes(), run.student_path(2).read_bytes()
    direct = ("distill", "--run", run_dir, "--to-steps", 2, "--teacher-steps", 4, "--method", "direct",
              "--iterations", 1, "--batch-size", 4, "--device", "cpu", "--scoring", "pixel")
    code, out, err = _cli(capsys, *direct)
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "steps_2.pt" in err and "--method progressive" in err and "report_steps_1.json" in err
    assert "--replace" in err
    assert run.student_path(2).read_bytes() == old_student and report_path.read_bytes() == first
    assert not (run_dir / "distill" / "report_steps_2.json").exists()

    # With --replace it goes ahead: its own report, and the old report says its round's student was replaced.
    code, out, err = _cli(capsys, *direct, "--replace")
    assert code == 0, err
    second = json.loads((run_dir / "distill" / "report_steps_2.json").read_text())
    assert second["method"] == "direct" and [r["steps"] for r in second["rounds"]] == [2]
    assert load_checkpoint(run.student_path(2))["method"] == "direct"
    old = json.loads(report_path.read_text())
    assert old["rounds"][0]["checkpoint"] is None and "--method direct" in old["rounds"][0]["replaced_by"]
    assert old["rounds"][1]["checkpoint"].endswith("steps_1.pt") and old["summary"] == report["summary"]
    assert "student_2" in second["summary"] and "student_1" in report["summary"]


def test_evaluate_refuses_steps_that_were_not_distilled_in_one_line(tiny_run, capsys):
    code, out, err = _cli(capsys, "evaluate", "--run", tiny_run, "--steps", 4)
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    assert "4 steps" in err and "distill" in err


@pytest.mark.parametrize("args, words", [
    (("--to-steps", 3), "4, 2, 1"),
    (("--method", "magic"), "progressive or direct"),
    (("--random-noise", 1.5), "fraction"),
    (("--teacher-steps", 6), "cannot be halved"),
    (("--defect-weight", 0), "more than 0"),
    (("--defect-target", "clean"), "teacher or repaired"),
    (("--method", "progressive", "--defect-target", "repaired"), "needs --method direct"),
    (("--max-minutes", "nan"), "--max-minutes nan: give a finite number"),
    (("--max-minutes", "-1"), "--max-minutes -1"),
    (("--t-prime", 0), "--t-prime 0"),
    (("--t-prime", -8), "--t-prime -8"),
    (("--t-prime", 8000), "--t-prime 8000 is not a noise level"),
    (("--lr", -1), "--lr -1"),
    (("--lr", "inf"), "--lr inf"),
    (("--defect-weight", "nan"), "--defect-weight nan"),
    (("--synthetic-defects", "nan"), "--synthetic-defects nan"),
    (("--iterations", 0), "--iterations 0"),
    (("--batch-size", 0), "--batch-size 0"),
    (("--teacher-steps", 0), "--teacher-steps 0"),
    (("--seed", -1), "--seed -1"),
])
def test_distill_bad_options_are_one_line(tiny_run, capsys, args, words):
    code, out, err = _cli(capsys, "distill", "--run", tiny_run, *args)
    assert code == 2 and len(err.splitlines()) == 1 and words in err, err
    assert not open_run(tiny_run).students()


def _fake_student(run, steps, grid, **distill):
    """A student file as `distill` writes it (its origin: kind, grid, method, K, teacher steps, T'), holding a
    marker instead of trained weights: cheap to make, and any rewrite of it shows."""
    from ddad_edge.model.checkpoint import save_checkpoint
    from ddad_edge.yaml_strict import to_dict

    return save_checkpoint(run.student_path(steps), {
        "kind": "student", "config": to_dict(run.cfg), "timesteps": grid, "t_prime": 248, "round": 1,
        "distill": to_dict(DistillConfig(**distill)), "method": distill.get("method", "direct"), "marker": 1})


def test_a_round_with_no_iteration_keeps_the_student_it_would_replace(tmp_path, tiny_run, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    run = open_run(run_dir)
    path = _fake_student(run, 2, [186, 62], to_steps=2, teacher_steps=4)  # the same distillation, earlier
    before = path.read_bytes()
    code, out, err = _cli(capsys, "distill", "--run", run_dir, "--to-steps", 2, "--teacher-steps", 4,
                          "--iterations", 5, "--batch-size", 4, "--max-minutes", "0.000001", "--device", "cpu",
                          "--scoring", "pixel")
    assert code == 2 and err.splitlines()[-1].startswith("error: distill round 1"), err
    assert "made no optimiser step" in err and "--max-minutes" in err and "kept as it was" in err
    assert path.read_bytes() == before
    assert not (run_dir / "distill" / "report_steps_2.json").exists()


def test_a_student_of_another_distillation_is_not_replaced_silently(tmp_path, tiny_run, capsys):
    # `distill --to-steps 4` (direct, 8-step teacher) made students/steps_4.pt; a progressive distillation to
    # 2 steps would write its round 1 there.
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    run = open_run(run_dir)
    path = _fake_student(run, 4, [217, 155, 93, 31], to_steps=4, teacher_steps=8)
    before = path.read_bytes()
    code, out, err = _cli(capsys, "distill", "--run", run_dir, "--to-steps", 2, "--method", "progressive",
                          "--iterations", 1, "--batch-size", 4, "--device", "cpu")
    assert code == 2 and len(err.splitlines()) == 1, err
    assert str(path) in err and "--to-steps 4 --method direct" in err
    assert "distill/report_steps_4.json" in err and "--replace" in err
    assert path.read_bytes() == before and run.students() == [4]
