"""The builder of a run's inference pipeline, and the one check of which samplers a run offers.

`build_pipeline` assembles a run's UNet (the teacher, the teacher on a naive K-step grid, or a distilled
student), feature extractor and scoring into one `DDADPipeline`. `check_sampler` is the only place that decides
whether --steps / --naive name a sampler: evaluate, export and the torch runner all ask it, so the rule and its
one-line errors are written once.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

from ddad_edge.bundle import Bundle
from ddad_edge.config import STUDENT_STEPS, RatioMode, ScoringMode
from ddad_edge.errors import DdadError
from ddad_edge.model.checkpoint import Run, load_checkpoint, load_run_extractor, load_run_unet, open_run, unet_from
from ddad_edge.model.pipeline import DDADPipeline
from ddad_edge.model.schedule import alphas_cumprod, ddim_timesteps, level_grid
from ddad_edge.model.scoring import AnomalyScorer


def teacher_grid(run: Run) -> list[int]:
    """The run's full conditioned DDIM grid (DDAD: 225, 200, …, 0)."""
    return ddim_timesteps(run.cfg.sampler.t_prime, run.cfg.sampler.skip)


def _choices(values: tuple[int, ...], last: str) -> str:
    """'4, 2, 1' (last=', ') or '4, 2 or 1' (last=' or ')."""
    words = [str(v) for v in values]
    return ", ".join(words[:-1]) + last + words[-1] if len(words) > 1 else "".join(words)


def check_sampler(steps: int | None, naive: bool, run: Run | None = None, *, choices_last: str = ", ",
                  start_level: int | None = None) -> None:
    """Refuse, in one line, --steps / --naive / --start-level that name no sampler (of `run`, where it is given).

    Without a run only the options themselves are checked (--naive needs --steps, K ≥ 1, --start-level needs
    --naive and a multiple of K), so a command can refuse them before it opens anything. With a run, K must be
    the teacher's own number of steps, a distilled student of the run, or, with `naive`, a grid that divides T'
    (or the start level, below the levels the UNet was trained on: train.t_max). `choices_last` joins the last
    two student sizes in the message ('4, 2, 1' or '4, 2 or 1'): evaluate and export have always worded it so.
    """
    if naive and steps is None:  # else the teacher would run on its own grid under a "naive" label
        raise DdadError("--naive needs --steps K: it runs the teacher itself on a K-step grid")
    if start_level is not None and not naive:  # a student runs on the grid it was distilled on
        raise DdadError(f"--start-level {start_level} needs --naive and --steps K: it starts the teacher itself "
                        "from that noise level; a distilled student keeps the grid it was distilled on")
    if steps is None:
        return
    if steps < 1:
        raise DdadError(f"--steps {steps}: a sampler takes at least 1 step")
    if start_level is not None and (start_level < 1 or start_level % steps):
        raise DdadError(f"--start-level {start_level}: give a positive multiple of --steps {steps} (the grid "
                        f"{start_level}, {start_level} − {start_level}/{steps}, … needs whole levels)")
    if run is None:
        return
    if start_level is not None:
        # the levels the UNet was trained on: below train.t_max where the run set one, else all of them
        t_max = run.cfg.train.t_max or run.cfg.diffusion.num_timesteps
        if start_level >= t_max:
            raise DdadError(f"--start-level {start_level}: the run's UNet was trained on noise levels 0 to "
                            f"{t_max - 1} (train.t_max {t_max}); give a level below that")
        return
    t_prime = run.cfg.sampler.t_prime
    teacher = len(teacher_grid(run))
    if naive:
        if t_prime % steps:
            raise DdadError(f"a naive {steps}-step grid needs T'={t_prime} divisible by {steps}")
        return
    if steps == teacher or run.student_path(steps).is_file():
        return
    have = ", ".join(str(k) for k in [teacher, *run.students()])
    fixes = [f"distill one with `ddad-edge distill --run {run.path} --to-steps {steps}`" if steps in STUDENT_STEPS
             else f"choose one of those (distill makes {_choices(STUDENT_STEPS, choices_last)} steps only)"]
    if t_prime % steps == 0:  # the grid a naive K-step teacher needs
        fixes.append(f"pass --naive for the teacher itself on a {steps}-step grid")
    raise DdadError(f"no sampler with {steps} steps in {run.path} (available: {have}): {', or '.join(fixes)}")


def build_pipeline(run: Run, steps: int | None = None, eta: float | None = None, mode: ScoringMode | None = None,
                   w: float | None = None, naive: bool = False, ratio: RatioMode | None = None,
                   fixed_ratio: float | None = None, start_level: int | None = None) -> DDADPipeline:
    """The inference pipeline of a run.

    `steps`: None or the teacher's number of steps → the teacher on its own grid; another K → the student
    distilled to K steps (refused in one line when none was), or with `naive` the teacher itself run on a
    K-step grid: DDAD's grid from the run's T', or with `start_level` L DDIM's grid L, L−L/K, …, L/K from level
    L (`schedule.level_grid`). `eta`, `mode`, `w`, `ratio` override the run's config (w of a student: warned
    about); a student runs at the η it was distilled for unless `eta` is given.
    """
    check_sampler(steps, naive, run, start_level=start_level)
    cfg = run.cfg
    abar = alphas_cumprod(cfg.diffusion)
    t_prime = cfg.sampler.t_prime
    grid = teacher_grid(run)
    w_used = cfg.sampler.w if w is None else w
    if start_level is not None and steps is not None:  # check_sampler: a start level only with --naive
        unet = load_run_unet(run)
        t_prime, grid = start_level, level_grid(start_level, steps)
    elif steps is None or (steps == len(grid) and not run.student_path(steps).is_file()):
        unet = load_run_unet(run)
    elif naive:
        unet = load_run_unet(run)
        grid = ddim_timesteps(t_prime, t_prime // steps)
    else:
        path = run.student_path(steps)
        payload = load_checkpoint(path)
        unet = unet_from(payload, path, cfg.model)
        grid = [int(t) for t in payload["timesteps"]]
        t_prime = int(payload["t_prime"])
        if w is not None and abs(w - float(payload["w"])) > 1e-9:
            # distill takes w from the run's config (sampler.w): it has no option of its own for it
            warnings.warn(f"the {steps}-step student was distilled for w={payload['w']}, not w={w}: its "
                          f"reconstructions will be off; leave out --w to evaluate it at w={payload['w']}, or "
                          f"evaluate the teacher at w={w} (without --steps, or with --naive)", stacklevel=2)
        else:
            w_used = float(payload["w"])
        if eta is None:  # a student is distilled for its own η (0): the run's η (DDAD's 1) would be off
            eta = float(payload.get("eta", 0.0))
    scoring = cfg.scoring
    changes = {}
    if mode is not None:
        changes["mode"] = mode
    if ratio is not None:
        changes["ratio"] = ratio
    if fixed_ratio is not None:
        changes["fixed_ratio"] = fixed_ratio
    scoring = dataclasses.replace(scoring, **changes)
    extractor = load_run_extractor(run) if scoring.mode is not ScoringMode.PIXEL else None
    scorer = AnomalyScorer(scoring, extractor)
    return DDADPipeline(unet, scorer, abar, grid, t_prime, w_used, cfg.sampler.eta if eta is None else eta,
                        cfg.sampler.noise_seed).eval()


def pipeline_of_bundle(bundle: Bundle) -> DDADPipeline:
    """Rebuild the torch pipeline a bundle was exported from (its manifest names the run and the variant)."""
    source = bundle.manifest.get("source", {})
    run_dir = source.get("run")
    if not run_dir or not Path(run_dir).is_dir():
        raise DdadError(f"bundle {bundle.path} was exported from run {run_dir!r}, which is not here: "
                        "the torch backend needs that run folder")
    graph = bundle.manifest["graph"]
    return build_pipeline(open_run(Path(run_dir)), steps=graph.get("steps"), eta=0.0,
                          mode=ScoringMode(graph.get("scoring", "fused")), naive=bool(graph.get("naive", False)),
                          start_level=graph.get("start_level"))
