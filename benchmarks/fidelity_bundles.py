"""Real exported bundles for the matrix's fidelity columns, made with the commands a user types.

    python benchmarks/fidelity_bundles.py        # into benchmarks/work/fidelity/ (cached: reruns continue)
    python benchmarks/run_matrix.py --fidelity-bundles benchmarks/work/fidelity/bundles

The matrix's speed rows are 256-px DDAD-S graphs with random weights: their cost is real, their outputs
are not. What each choice costs in accuracy (INT8 against FP32, a 2- or 1-step distilled sampler against
the 10-step teacher, pixel-only against fused scoring) is measured here on a model that is trained: the
tiny preset on the synthetic parts, small enough for a CPU. The matrix names that model beside every number
it takes from here, so it is never read as the accuracy of the 256-px DDAD-S.

  1. `ddad-edge synth --difficulty hard`: the hard synthetic set (a woven surface with faint stains, thin
     scratches, small holes and turned weave), on which the tiny teacher is not perfect, so what a variant
     costs can show (`--difficulty easy`: the demo's discs, where nearly every variant scores 1.000).
  2. `ddad-edge train --preset tiny --max-steps N --backbone B --backbone-weights none`: one UNet, trained
     for a fixed number of optimiser steps. No download: the extractor starts from random weights, as in
     the demo, and `adapt` adapts it to the parts.
  3. `ddad-edge distill --to-steps K --iterations N` for every K below the teacher's own steps, with the
     options `--student K:OPTIONS` gives that K (another grid or target, say). A student made with other
     options than asked is made again, and the bundles and refusals of its K with it. A K named by
     `--naive K:LEVEL` is not distilled: its bundles run the teacher itself, K steps from noise level LEVEL
     (`export --steps K --naive --start-level LEVEL`); a bundle or refusal of another sampler is made again.
  4. For every further backbone: a run folder of its own holding the same UNet and students (copied), its
     config's scoring backbone set to that backbone; `ddad-edge adapt` in every run folder.
  5. `ddad-edge export --steps K --precision P --scoring S --target onnx` for every variant; pixel-only
     bundles once (they have no extractor). Each bundle's report.json holds its fidelity against the run's
     FP32 torch pipeline, on painted defects and on the labelled test split. An export the command refuses
     (INT8 beyond the recipe's accuracy budget on this model, say) is a result too: its reason goes to
     bundles/refused.json, the matrix shows it in that row's place, and the other variants go on.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repository's ddad_edge, when run as a script

from ddad_edge.errors import DdadError  # noqa: E402

CATEGORY = "widget"
REFUSED = "refused.json"  # exports that failed (INT8 beyond its accuracy budget, say): what they said
TRAIN_FILES = ("config.yaml", "split.yaml", "checkpoints", "students", "distill")  # what a derived run copies
# Without --student every student gets the shared options. What else was tried for the 1-step student on the
# hard set, and why none of it is the default: docs/distillation.md, "One step on the hard set".
EXAMPLE_STUDENT = "1: --t-prime 124 --teacher-steps 4 --defect-target repaired --iterations 160"
# The 1-step variant of the committed matrices: the teacher from level 5, the best of 5-200 on a validation set
# drawn apart from the test split (docs/distillation.md, "One step from a low noise level").
EXAMPLE_NAIVE = "1:5"
# `distill` options a --student may set, and the key each one has in the distillation report's config
STUDENT_OPTIONS = {"--t-prime": "t_prime", "--teacher-steps": "teacher_steps", "--defect-target": "defect_target",
                   "--iterations": "iterations", "--lr": "lr", "--method": "method", "--batch-size": "batch_size",
                   "--synthetic-defects": "synthetic_defects", "--defect-weight": "defect_weight"}


def csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=HERE / "work" / "fidelity",
                   help="data/, runs/ and bundles/ go here; what is already there is kept")
    p.add_argument("--backbones", default="wide_resnet50_2,resnet18", help="extractors of the fused bundles")
    p.add_argument("--steps", default="10,2,1", help="sampler steps; those below the teacher's are distilled")
    p.add_argument("--precisions", default="fp32,int8", help="fp32,fp16,int8")
    p.add_argument("--scorings", default="fused,pixel")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--n-train", type=int, default=200, help="nominal training images of the synthetic set")
    p.add_argument("--difficulty", default="hard", choices=("easy", "hard"), help="`ddad-edge synth --difficulty`")
    p.add_argument("--n-test-good", type=int, default=60,
                   help="nominal test images (with --n-test-defect: enough for a bootstrap interval of a few points)")
    p.add_argument("--n-test-defect", type=int, default=80, help="defective test images, spread over the kinds")
    p.add_argument("--train-steps", type=int, default=800, help="optimiser steps of the UNet")
    p.add_argument("--adapt-steps", type=int, default=40, help="optimiser steps of each extractor's adaptation")
    p.add_argument("--distill-iterations", type=int, default=120, help="optimiser steps of each distillation")
    p.add_argument("--defect-target", default="teacher",
                   help="distill's target on a synthetic defect: teacher (follows the teacher from the first "
                        "iterations, for short budgets, as the demo) or repaired (needs ~200 iterations)")
    p.add_argument("--student", action="append", default=None, metavar="K:OPTIONS",
                   help="`ddad-edge distill` options of the K-step student, over --distill-iterations and "
                        f"--defect-target (repeatable; e.g. '{EXAMPLE_STUDENT}'). A student made with other "
                        "options than asked is made again, and the bundles made from it too")
    p.add_argument("--naive", action="append", default=None, metavar="K:LEVEL",
                   help="the K-step variant is the teacher itself, K steps from noise level LEVEL (`export "
                        f"--naive --start-level`), not a distilled student (repeatable; e.g. '{EXAMPLE_NAIVE}')")
    p.add_argument("--int8-recipe", default="", help="`ddad-edge export --recipe` of the INT8 bundles "
                   "(calibration/NAME.yaml or a path; default: the export's own, calibration/int8.yaml)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


class CommandFailed(DdadError):
    """A `ddad-edge` command that exited non-zero; `said` is what it wrote to stderr (its one-line reason)."""

    def __init__(self, args: list[str], code: int, said: str) -> None:
        super().__init__(f"`ddad-edge {' '.join(args)}` failed with exit status {code}")
        self.said = said


class _Tee(io.StringIO):
    """Writes through to `stream` and keeps a copy."""

    def __init__(self, stream) -> None:
        super().__init__()
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(text)
        return super().write(text)


def cli(args: list[str]) -> None:
    """One `ddad-edge` command, in this process, as a user would type it; CommandFailed when it fails."""
    from ddad_edge.cli import main

    print("$ ddad-edge " + " ".join(args), flush=True)
    err = _Tee(sys.stderr)
    with contextlib.redirect_stderr(err):
        code = main(args)
    if code != 0:
        said = [line.removeprefix("error: ") for line in err.getvalue().splitlines() if line.startswith("error: ")]
        raise CommandFailed(args, code, said[-1] if said else "")


def teacher_steps(run: Path) -> int:
    from ddad_edge.model.build import teacher_grid
    from ddad_edge.model.checkpoint import open_run

    return len(teacher_grid(open_run(run)))


def derive_run(base: Path, run: Path, backbone: str) -> None:
    """`run`: the trained UNet and students of `base`, scored with `backbone` (its own adaptation follows)."""
    tmp = run.with_name(run.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in TRAIN_FILES:
        src = base / name
        if src.is_dir():
            shutil.copytree(src, tmp / name)
        elif src.is_file():
            shutil.copy2(src, tmp / name)
    config = yaml.safe_load((tmp / "config.yaml").read_text())
    config["scoring"]["backbone"] = backbone
    (tmp / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    tmp.rename(run)


def bundle_name(precision: str, steps: int, scoring: str, backbone: str) -> str:
    return f"{precision}-k{steps}-{'pixel' if scoring == 'pixel' else backbone}"


def student_options(a: argparse.Namespace) -> dict[int, dict[str, str]]:
    """The `distill` options of each K named by --student, or a DdadError naming the bad one."""
    import shlex

    students: dict[int, dict[str, str]] = {}
    for text in a.student or ():
        k_text, sep, rest = text.partition(":")
        words = shlex.split(rest) if sep else []
        if not sep or not k_text.strip().isdigit() or int(k_text) < 1 or len(words) % 2:
            raise DdadError(f"--student {text!r}: give K: and distill options with their values, such as "
                            f"'{EXAMPLE_STUDENT}'")
        options = dict(zip(words[::2], words[1::2]))
        unknown = [o for o in options if o not in STUDENT_OPTIONS]
        if unknown:
            raise DdadError(f"--student {text!r}: {unknown[0]} is not one of {', '.join(STUDENT_OPTIONS)}")
        students[int(k_text)] = options
    return students


def naive_levels(a: argparse.Namespace, steps: list[int] | None = None) -> dict[int, int]:
    """K → start level of each K named by --naive, or a DdadError naming the bad one (a level must be a positive
    multiple of K, and K one of `steps` with no --student options, where given)."""
    levels: dict[int, int] = {}
    students = student_options(a)
    for text in a.naive or ():
        k_text, sep, level_text = (t.strip() for t in text.partition(":"))
        if not (sep and k_text.isdigit() and level_text.isdigit() and int(k_text) >= 1 and int(level_text) >= 1
                and int(level_text) % int(k_text) == 0):
            raise DdadError(f"--naive {text!r}: give K:LEVEL, K steps from noise level LEVEL (a multiple of K), "
                            f"such as '{EXAMPLE_NAIVE}'")
        k = int(k_text)
        if steps is not None and k not in steps:
            raise DdadError(f"--naive {text!r}: {k} is not one of --steps {','.join(map(str, steps))}")
        if k in students:
            raise DdadError(f"--naive {text!r} and --student for K={k}: a K-step variant is either the teacher "
                            "from a level or a distilled student; drop one")
        levels[k] = int(level_text)
    return levels


def sampler_label(k: int, native: int, levels: dict[int, int]) -> str:
    """What runs a K-step variant: 'teacher', 'naive from L' or 'student', in the words of
    `ddad_edge.bench.run.sampler_kind`, which reads them back from a bundle's manifest."""
    if k in levels:
        return f"naive from {levels[k]}"
    return "teacher" if k == native else "student"


def distill_options(a: argparse.Namespace, k: int) -> dict[str, str]:
    """`distill` options of the K-step student: the shared ones, then what --student says for K."""
    shared = {"--iterations": str(a.distill_iterations), "--defect-target": a.defect_target}
    return {**shared, **student_options(a).get(k, {})}


def student_is_current(run: Path, k: int, options: dict[str, str]) -> bool:
    """Whether run's K-step student was made with `options` (its distillation report's config says)."""
    student, report = run / "students" / f"steps_{k}.pt", run / "distill" / f"report_steps_{k}.json"
    if not (student.is_file() and report.is_file()):
        return False
    config = json.loads(report.read_text()).get("config") or {}
    for option, value in options.items():
        made = config.get(STUDENT_OPTIONS[option])
        if isinstance(made, (int, float)) and not isinstance(made, bool):
            if float(value) != float(made):
                return False
        elif str(made) != value:
            return False
    return True


def check_options(a: argparse.Namespace) -> tuple[list[str], list[int], list[str], list[str]]:
    """The variant lists of the options, or a DdadError naming the option and the choices, before any work."""
    from ddad_edge.bundle import Precision
    from ddad_edge.config import BACKBONES

    choices = {"--backbones": BACKBONES, "--precisions": tuple(p.value for p in Precision),
               "--scorings": ("fused", "pixel")}
    lists = {"--backbones": csv(a.backbones), "--precisions": csv(a.precisions), "--scorings": csv(a.scorings)}
    for option, values in lists.items():
        bad = [v for v in values if v not in choices[option]] or ([] if values else ["(nothing)"])
        if bad:
            raise DdadError(f"{option} {bad[0]} is not one of {', '.join(choices[option])}")
    try:
        steps = [int(k) for k in csv(a.steps)]
    except ValueError:
        steps = []
    if not steps or min(steps) < 1:
        raise DdadError(f"--steps {a.steps} is not a list of step counts such as 10,2,1")
    student_options(a)
    naive_levels(a, steps)
    return lists["--backbones"], steps, lists["--precisions"], lists["--scorings"]


def make(a: argparse.Namespace, backbones: list[str], steps: list[int], precisions: list[str],
         scorings: list[str]) -> tuple[list[Path], dict[str, dict]]:
    """Steps 1-5 of the module docstring for the checked variant lists (`check_options`); returns the bundle
    folders (made now or before) and the exports that were refused (the export's own reason, also in
    bundles/refused.json), by bundle name."""
    out = a.out
    data, runs, bundles = out / "data", out / "runs", out / "bundles"
    if not (data / CATEGORY / "train").is_dir():
        cli(["synth", "--out", str(data), "--category", CATEGORY, "--size", str(a.image_size),
             "--n-train", str(a.n_train), "--n-test-good", str(a.n_test_good), "--n-test-defect",
             str(a.n_test_defect), "--difficulty", a.difficulty, "--seed", str(a.seed)])
    check_difficulty(data / CATEGORY, a.difficulty)
    base = runs / backbones[0]
    if not (base / "checkpoints" / "last.pt").is_file():
        cli(["train", "--data", str(data), "--category", CATEGORY, "--preset", a.preset, "--image-size",
             str(a.image_size), "--out", str(base), "--max-steps", str(a.train_steps), "--seed", str(a.seed),
             "--backbone", backbones[0], "--backbone-weights", "none"])
    native = teacher_steps(base)
    levels = naive_levels(a)
    distilled = sorted({k for k in steps if k < native and k not in levels}, reverse=True)
    for k in distilled:
        options = distill_options(a, k)
        if not student_is_current(base, k, options):
            replace = ["--replace"] if (base / "students" / f"steps_{k}.pt").is_file() else []
            cli(["distill", "--run", str(base), "--to-steps", str(k), *(w for o in options.items() for w in o),
                 "--max-minutes", "0", "--seed", str(a.seed), "--scoring", "pixel", *replace])
    made, refused = [], read_refused(bundles)  # a refused export is refused again on a rerun: not retried
    for i, backbone in enumerate(backbones):
        run = runs / backbone
        if not run.is_dir():
            derive_run(base, run, backbone)
        elif run != base:
            refresh_students(base, run, distilled)
        if not (run / "backbone.pt").is_file():
            cli(["adapt", "--run", str(run), "--max-steps", str(a.adapt_steps)])
        for k in steps:
            for precision in precisions:
                for scoring in scorings:
                    if scoring == "pixel" and i > 0:
                        continue  # no extractor in a pixel-only graph: one bundle serves every backbone
                    name = bundle_name(precision, k, scoring, backbone)
                    bundle = bundles / name
                    sampler = sampler_label(k, native, levels)
                    stale = None  # why the bundle or refusal kept from before is not this variant's any more
                    if k in distilled and made_before_student(bundle, name, run, k, refused):
                        stale = f"made from an earlier {k}-step student"
                    elif (was := sampler_made(bundle, refused.get(name), k, native)) not in (None, sampler):
                        stale = f"made with the {was} sampler, asked for the {sampler} one"
                    if stale:
                        print(f"{name}: {stale}; exported again", flush=True)
                        shutil.rmtree(bundle, ignore_errors=True)
                        refused.pop(name, None)
                        write_refused(bundles, refused)
                    if (bundle / "manifest.yaml").is_file():
                        made.append(bundle)
                        continue
                    if name in refused:
                        continue
                    try:
                        recipe = ["--recipe", a.int8_recipe] if precision == "int8" and a.int8_recipe else []
                        naive = ["--naive", "--start-level", str(levels[k])] if k in levels else []
                        cli(["export", "--run", str(run), "--steps", str(k), *naive, "--precision", precision,
                             "--scoring", scoring, "--target", "onnx", "--out", str(bundle), "--overwrite", *recipe])
                        made.append(bundle)
                    except CommandFailed as exc:  # e.g. INT8 beyond the recipe's accuracy budget: a result
                        refused[name] = {"precision": precision, "steps": k, "scoring": scoring, "sampler": sampler,
                                         "backbone": None if scoring == "pixel" else backbone,
                                         "run": str(run), "preset": a.preset, "image_size": a.image_size,
                                         "why": exc.said or str(exc), "when": time.time()}
                        write_refused(bundles, refused)
    return made, refused


def refresh_students(base: Path, run: Path, steps: list[int]) -> None:
    """A derived run's copy of each K-step student and its report, where base's was made again since."""
    for k in steps:
        for name in (f"students/steps_{k}.pt", f"distill/report_steps_{k}.json"):
            src, dst = base / name, run / name
            if src.is_file() and (not dst.is_file() or dst.read_bytes() != src.read_bytes()):
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)


def sampler_made(bundle: Path, refusal: dict | None, k: int, native: int) -> str | None:
    """The sampler the bundle (or else the refusal) of a K-step variant was made with; None when there is
    neither. A refusal kept from before refusals named their sampler was of the teacher or a student: the
    script made nothing else then."""
    from ddad_edge.bench.run import sampler_kind

    if (bundle / "manifest.yaml").is_file():
        return sampler_kind(yaml.safe_load((bundle / "manifest.yaml").read_text()))
    if refusal is None:
        return None
    return refusal.get("sampler") or sampler_label(k, native, {})


def made_before_student(bundle: Path, name: str, run: Path, k: int, refused: dict[str, dict]) -> bool:
    """Whether the bundle (or the refusal) of a K-step variant is older than run's K-step student."""
    student = run / "students" / f"steps_{k}.pt"
    if not student.is_file():
        return False
    made = student.stat().st_mtime
    if (bundle / "manifest.yaml").is_file():
        return (bundle / "manifest.yaml").stat().st_mtime < made
    if name not in refused:
        return False
    file = bundle.parent / REFUSED  # a refusal kept from before refusals were stamped: as old as the file
    when = refused[name].get("when", file.stat().st_mtime if file.is_file() else 0.0)
    return when < made


def check_difficulty(root: Path, difficulty: str) -> None:
    """A DdadError when the data kept from an earlier run is another set than `--difficulty` asks for: its
    bundles would silently measure the other set. (synth.yaml without `difficulty`: the easy set.)"""
    info = yaml.safe_load((root / "synth.yaml").read_text()) if (root / "synth.yaml").is_file() else {}
    made = (info or {}).get("difficulty", "easy")
    if made != difficulty:
        raise DdadError(f"{root} holds the {made} synthetic set, not the {difficulty} one: give another --out "
                        f"(its runs and bundles are of the {made} set) or --difficulty {made}")
    if made == "hard":
        from ddad_edge.data.surface import HARD_STRENGTH

        strength = (info or {}).get("defect_strength")
        if strength != HARD_STRENGTH:
            raise DdadError(f"{root} holds the hard set at defect strength {strength}, not the calibrated "
                            f"{HARD_STRENGTH}: remove its data/ and bundles/ folders (runs/ stays valid: the "
                            "training images are the same at every strength) or give another --out")


def read_refused(bundles: Path) -> dict[str, dict]:
    path = bundles / REFUSED
    return json.loads(path.read_text()) if path.is_file() else {}


def write_refused(bundles: Path, refused: dict[str, dict]) -> None:
    bundles.mkdir(parents=True, exist_ok=True)
    (bundles / REFUSED).write_text(json.dumps(refused, indent=1))


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    started = time.monotonic()
    try:
        variants = check_options(a)
    except DdadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        made, refused = make(a, *variants)
    except DdadError as exc:  # a command's own error line is above this one
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(made)} bundles under {a.out / 'bundles'} in {(time.monotonic() - started) / 60:.1f} min; "
          f"their fidelity: ddad-edge bundle-table {a.out / 'bundles'}/*", flush=True)
    for name, why in refused.items():
        print(f"refused: {name}: {why['why']}", flush=True)
    for line in teacher_lines(made, a.difficulty):
        print(line, flush=True)
    return 0


def teacher_lines(bundles: list[Path], difficulty: str) -> list[str]:
    """The FP32 bundles of the most steps (the teacher's sampler when the teacher's steps were made): their image
    AUROC on the test split with its interval, against the band the hard set is calibrated for
    (benchmarks/calibrate_hard_set.py)."""
    fp32 = [b for b in bundles if b.name.startswith("fp32-k") and (b / "report.json").is_file()]
    steps = max((int(b.name.split("-")[1][1:]) for b in fp32), default=None)
    lines = []
    for b in (b for b in fp32 if int(b.name.split("-")[1][1:]) == steps):
        test = json.loads((b / "report.json").read_text()).get("test_split") or {}
        if test.get("auroc") is None:
            continue
        lo, hi = test.get("auroc_interval") or (float("nan"), float("nan"))
        band = "" if difficulty != "hard" else (
            " (in the hard set's 0.85-0.95)" if 0.85 <= test["auroc"] <= 0.95 else
            " (OUTSIDE the hard set's 0.85-0.95: recalibrate with benchmarks/calibrate_hard_set.py)")
        lines.append(f"most-steps FP32 bundle {b.name}: image AUROC {test['auroc']:.3f} [{lo:.3f}, {hi:.3f}]{band}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
