"""Train one DDAD-S model per category of a dataset: DDAD's per-category presets, resumable per category.

`ddad-edge train-all --data DIR --categories a,b,c|all --out RUNS/` trains RUNS/<category> for each
category in turn (a run folder as `ddad-edge train` makes it), with DDAD's w, v, λ and epochs for the
MVTec and VisA names (`config_presets.CATEGORY_PRESETS`) and the defaults for any other folder.

Resumable: a category whose last checkpoint says it finished, with the same stop limits (epochs,
max_steps), is skipped; one with a checkpoint that did not finish (interrupted, or stopped by
max_minutes) is resumed from it; the rest start afresh. A category whose folder cannot be used (a damaged
checkpoint, another preset's run) fails on its own, in the table, and the others still train; options
that no category can train with are refused in one line before any work. Under torchrun every rank runs
the same plan (rank 0 makes it and sends it to the others); evaluation and the summary happen on rank 0
after training.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Callable

from ddad_edge.config import RunConfig
from ddad_edge.config_checks import check_run_config
from ddad_edge.config_presets import CATEGORY_PRESETS, run_config_for
from ddad_edge.data.folders import GOOD
from ddad_edge.errors import DdadError
from ddad_edge.model.checkpoint import LAST, config_of, load_checkpoint
from ddad_edge.train.diffusion import train_diffusion
from ddad_edge.train.distributed import Ranks

SUMMARY_NAME = "train-all.json"


class CategoryState(str, Enum):
    """What train-all finds in a category's run folder, and so what it does there."""

    NEW = "new"  # nothing usable: train from the start
    PARTIAL = "resume"  # a checkpoint that did not finish (or asked for other stop limits): resume it
    DONE = "done"  # finished with the same stop limits: skip
    UNUSABLE = "unusable"  # the folder holds something train-all must not touch (see CategoryPlan.problem)


class Outcome(str, Enum):
    TRAINED = "trained"
    RESUMED = "resumed"
    SKIPPED = "skipped (done)"
    FAILED = "failed"


@dataclass(frozen=True)
class CategoryPlan:
    """One category's run: its config (preset applied), folder, and what state it was found in."""

    category: str
    cfg: RunConfig
    out: Path
    state: CategoryState
    from_step: int = 0
    problem: str = ""  # why the folder is UNUSABLE: one line naming it and the fix


@dataclass
class CategoryResult:
    """A row of the summary. `minutes`: training time over every session (None when unknown)."""

    category: str
    outcome: Outcome
    steps: int = 0
    final_loss: float = math.nan
    minutes: float | None = None
    finished: bool = False
    image_auroc: float | None = None
    note: str = ""
    evaluation_failed: bool = False  # --evaluate was asked and could not measure this category


def find_categories(data: Path) -> list[str]:
    """The category folders under `data` (those holding train/good), sorted by name."""
    data = Path(data)
    if not data.is_dir():
        raise DdadError(f"dataset folder not found: {data}")
    return sorted(p.name for p in data.iterdir() if (p / "train" / GOOD).is_dir())


def choose_categories(data: Path, spec: str) -> tuple[list[str], list[str]]:
    """The categories that `--categories` names (`a,b,c` or `all`), and notes for the user.

    `all`: every category folder under `data`; those without a DDAD preset train with the defaults.
    """
    found = find_categories(data)
    if not found:
        raise DdadError(f"no category folders under {data}: expected {data}/<category>/train/good/ "
                        "(MVTec layout)")
    if spec.strip().lower() == "all":
        chosen = found
    else:
        chosen = list(dict.fromkeys(c.strip() for c in spec.split(",") if c.strip()))
        if not chosen:
            raise DdadError("--categories is empty: give a,b,c or all")
        missing = [c for c in chosen if c not in found]
        if missing:
            raise DdadError(f"no category folder with train/good under {data} for: {', '.join(missing)} "
                            f"(found: {', '.join(found)})")
    plain = [c for c in chosen if c not in CATEGORY_PRESETS]
    notes = [f"no DDAD preset for {', '.join(plain)}: default w, v, λ and epochs"] if plain else []
    return chosen, notes


def category_config(category: str, data: Path, preset: str, image_size: int | None,
                    train_overrides: dict[str, Any]) -> RunConfig:
    """`run_config_for` of the category (DDAD's preset when it has one), with the given train.* values,
    checked as `train` checks its options (`check_run_config`): a bad value is one line naming its key."""
    cfg = run_config_for(preset, image_size, category, str(data))
    return check_run_config(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **train_overrides)))


def check_options(preset: str, image_size: int | None, train_overrides: dict[str, Any]) -> None:
    """Refuse, in one line and before any work, options no category can train with (`--batch-size 0`,
    `--epochs -1`, `--max-minutes -1`, an image size the preset cannot take). Every rank calls it, so under
    torchrun they all stop together instead of waiting on rank 0's plan."""
    if image_size is not None and image_size < 1:  # the presets read 0 as "the preset's size"
        raise DdadError(f"--image-size {image_size}: give a size in pixels, or leave it out for the preset's")
    if train_overrides.get("epochs", 1) < 1:
        raise DdadError(f"--epochs {train_overrides['epochs']} trains nothing: give 1 or more "
                        "(or leave it out for DDAD's epochs per category)")
    category_config("", Path(), preset, image_size, train_overrides)


def find_state(cfg: RunConfig, out: Path) -> tuple[CategoryState, int]:
    """The state of a category's run folder for the requested config, and the step its checkpoint is at."""
    last = out / "checkpoints" / LAST
    if not last.is_file() or not (out / "split.yaml").is_file():
        return CategoryState.NEW, 0
    payload = load_checkpoint(last)
    saved = config_of(payload, last)
    if saved.model != cfg.model:
        raise DdadError(f"{out} holds a run of preset {saved.model.preset} at {saved.model.image_size} px, not "
                        f"{cfg.model.preset} at {cfg.model.image_size} px: choose another --out or remove it")
    step = int(payload.get("step", 0))
    same_limits = (saved.train.epochs, saved.train.max_steps) == (cfg.train.epochs, cfg.train.max_steps)
    if payload.get("finished") and same_limits:
        return CategoryState.DONE, step
    return CategoryState.PARTIAL, step


def plan_categories(data: Path, spec: str, preset: str, image_size: int | None, runs: Path,
                    train_overrides: dict[str, Any]) -> tuple[list[CategoryPlan], list[str]]:
    """A plan per chosen category (config, run folder RUNS/<category>, state found there), and notes.

    A folder that cannot be used (its checkpoint damaged, another preset's run in it) gets an UNUSABLE
    plan, which fails on its own in `train_categories`; options that are wrong for every category raise.
    """
    chosen, notes = choose_categories(data, spec)
    plans = []
    for category in chosen:
        cfg = category_config(category, data, preset, image_size, train_overrides)
        out = Path(runs) / category
        try:
            state, step = find_state(cfg, out)
        except DdadError as exc:
            plans.append(CategoryPlan(category, cfg, out, CategoryState.UNUSABLE, problem=str(exc)))
            continue
        plans.append(CategoryPlan(category, cfg, out, state, step))
    return plans, notes


def result_of_done(plan: CategoryPlan) -> CategoryResult:
    payload = load_checkpoint(plan.out / "checkpoints" / LAST)
    seconds = payload.get("seconds")
    return CategoryResult(plan.category, Outcome.SKIPPED, int(payload.get("step", plan.from_step)),
                          float(payload.get("loss", math.nan)),
                          None if seconds is None else float(seconds) / 60, True)


def train_categories(plans: list[CategoryPlan], ranks: Ranks, device: str = "auto", show_progress: bool = True,
                     say: Callable[[str], None] = print) -> list[CategoryResult]:
    """Train, resume or skip each planned category in turn; a category that fails does not stop the others.

    Every rank calls this with the same plans (under torchrun); `say` is called on rank 0 only.
    """
    results = []
    for i, plan in enumerate(plans, 1):
        head = f"[{i}/{len(plans)}] {plan.category}"
        if plan.state is CategoryState.UNUSABLE:
            results.append(CategoryResult(plan.category, Outcome.FAILED, note=plan.problem))
            if ranks.is_main:
                say(f"{head}: failed: {plan.problem}")
            continue
        if plan.state is CategoryState.DONE:
            results.append(result_of_done(plan))
            if ranks.is_main:
                say(f"{head}: finished before at step {results[-1].steps}, skipped")
            continue
        resume = plan.state is CategoryState.PARTIAL
        if ranks.is_main:
            say(f"{head}: resuming from step {plan.from_step}" if resume else f"{head}: training")
        try:
            r = train_diffusion(plan.cfg, plan.out, resume=resume, device=device, show_progress=show_progress)
        except DdadError as exc:  # the same on every rank (a bad folder): go on with the next category
            results.append(CategoryResult(plan.category, Outcome.FAILED, note=str(exc)))
            if ranks.is_main:
                say(f"{head}: failed: {exc}")
            continue
        results.append(CategoryResult(plan.category, Outcome.RESUMED if resume else Outcome.TRAINED, r.steps,
                                      r.final_loss, r.total_seconds / 60, r.finished))
    return results


def evaluate_category(out: Path, device: str = "cpu") -> float:
    """Image AUROC of a trained run on its test split (the teacher sampler), written where `ddad-edge
    evaluate` writes it (RUN/eval/steps<K>/); an evaluation newer than the checkpoint is reused."""
    from ddad_edge.evaluate import evaluate_runner, write_evaluation
    from ddad_edge.model.build import build_pipeline, teacher_grid
    from ddad_edge.model.checkpoint import open_run
    from ddad_edge.model.torch_runner import TorchRunner

    run = open_run(out)
    folder = out / "eval" / f"steps{len(teacher_grid(run))}"
    metrics = folder / "metrics.json"
    if metrics.is_file() and metrics.stat().st_mtime >= run.last_checkpoint.stat().st_mtime:
        value = json.loads(metrics.read_text()).get("image_auroc")
        return math.nan if value is None else float(value)
    pipe = build_pipeline(run)
    with TorchRunner(pipe, device=device) as runner:
        ev, images, maps, _ = evaluate_runner(runner, run.cfg.data.root, run.cfg.data.category, show_progress=False)
    write_evaluation(ev, folder, images, maps, extra={"run": str(out), "steps": len(pipe.timesteps),
                                                     "timesteps": pipe.timesteps, "by": "train-all"})
    return ev.image_auroc


def evaluate_results(results: list[CategoryResult], runs: Path, device: str = "cpu",
                     say: Callable[[str], None] = print) -> int:
    """Fill `image_auroc` of every trained, resumed or skipped category (rank 0, after training).

    Returns how many evaluations failed (each marked `evaluation_failed`, with the reason in `note`).
    """
    failed = 0
    for r in results:
        if r.outcome is Outcome.FAILED:
            continue
        try:
            r.image_auroc = evaluate_category(Path(runs) / r.category, device)
        except DdadError as exc:
            r.note = f"evaluation failed: {exc}"
            r.evaluation_failed = True
            failed += 1
            say(f"{r.category}: {r.note}")
    return failed


def summary_table(results: list[CategoryResult], with_auroc: bool) -> str:
    """The table printed at the end: category, outcome, steps, final loss, minutes (and image AUROC)."""
    head = ["category", "outcome", "steps", "final loss", "minutes"] + (["image AUROC"] if with_auroc else [])
    rows = []
    for r in results:
        row = [r.category, r.outcome.value + ("" if r.finished or r.outcome is Outcome.FAILED else ", unfinished"),
               str(r.steps), "-" if math.isnan(r.final_loss) else f"{r.final_loss:.4g}",
               "-" if r.minutes is None else f"{r.minutes:.1f}"]
        if with_auroc:
            row.append("-" if r.image_auroc is None or math.isnan(r.image_auroc) else f"{r.image_auroc:.3f}")
        rows.append(row)
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    lines = ["  ".join(x.ljust(w) for x, w in zip(line, widths)).rstrip() for line in [head, *rows]]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def write_summary(results: list[CategoryResult], runs: Path) -> Path:
    """RUNS/train-all.json: the rows of the summary, with the time they were made."""
    def plain(value: Any) -> Any:
        return None if isinstance(value, float) and math.isnan(value) else value

    rows = [{k: plain(v.value if isinstance(v, Enum) else v) for k, v in dataclasses.asdict(r).items()}
            for r in results]
    path = Path(runs) / SUMMARY_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"written": time.strftime("%Y-%m-%dT%H:%M:%S"), "categories": rows}, indent=2))
    return path
