"""Step distillation of the deterministic (η=0) conditioned DDIM reconstruction (Salimans & Ho, 2022).

Progressive route. A teacher reconstructs on a grid of K_T steps from T' (default 8 steps from T'=248,
skip 31, so that halving stays on integers: 217,186,…,0 → 217,155,93,31 → 217,93 → 217). A student starts
as a copy of the teacher and learns to take ONE conditioned step from t_{2i} where the teacher takes TWO
(t_{2i} → t_{2i+1} → t_{2i+2}); then the student becomes the next teacher and the steps halve again.

The student's step is the same conditioned step the pipeline runs (sampler.conditioned_step):
  ε̂ = ε_θ(x_t) − w·√(1−ᾱ_t)·(y_t − x_t),  x̂0 = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t,  x_next = √ᾱ_next·x̂0 + √(1−ᾱ_next)·ε̂
and the loss is taken on the student's x̂0 AFTER that formula. The conditioning map ε_θ → ε̂ is never
inverted: its slope (1 − w·(1−ᾱ_t)) is near 0 for w·(1−ᾱ_t) near 1 (t≈186 at w=3), where inverting it
would blow the target up. What is inverted is only the plain DDIM step x̂0 → x_next at fixed x_t, which
is affine with a slope bounded away from 0 (x̃0 below), exactly as in Salimans & Ho:
  x_next = a·x̂0 + b·x_t,  b = √(1−ᾱ_next)/√(1−ᾱ_t),  a = √ᾱ_next − b·√ᾱ_t
  x̃0 = (x_teacher_next − b·x_t) / a        (the x̂0 a single step would need to land on the teacher)
For the last step (t_next = clean image) a = 1, b = 0: x̃0 is the teacher's own final x̂0.

Direct route (option): the student runs its whole K-step chain from x_T' and is trained end to end on the
teacher's final x̂0 (for K = 1: x_T', y → x̂0 in one call).

Training inputs are as at test time: nominal training images as both x and y, the states x_t on the
teacher's own trajectory from the pipeline's fixed noise constant z. Options: a fraction of each batch with
a small synthetic defect drawn in (default every image, its pixels weighted 30× in the loss, see
add_synthetic_defects; the target there is the teacher's reconstruction of the image without the defect
for the direct method, of the image with it for progressive, see DefectTarget), and a fraction started
from fresh noise instead of z (default none: at this budget it did not help, and the deployed graph always
starts from z). The measurements behind the defaults are in docs/distillation.md.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from enum import Enum

import torch

from ddad_edge.config import STUDENT_STEPS
from ddad_edge.errors import DdadError
from ddad_edge.model.sampler import (
    conditioned_step,
    ddim_steps,
    grid_coefficients,
    noise_to,
    start_coefficients,
    start_noise,
    step_coefficients,
)
from ddad_edge.model.schedule import alpha_bar, ddim_timesteps, halve_grid
from ddad_edge.model.unet import UNet
from ddad_edge.progress import Progress


class DefectTarget(str, Enum):
    """What the student must output where a synthetic defect was drawn (see draw_batch)."""

    # The teacher's reconstruction of the image with the defect: pure distillation, the student copies its
    # teacher, repairs and failures alike. Default of the progressive method.
    TEACHER = "teacher"
    # The teacher's reconstruction of the same image before the defect was drawn: on nominal pixels the
    # student still copies its teacher; on the defect it must output what the teacher makes of the nominal
    # part. Measured better than the teacher itself and than the naive 2-step teacher (docs/distillation.md);
    # default of the direct method, which it needs (the progressive student steps from the teacher's own
    # states, which carry the defect).
    REPAIRED = "repaired"


class DistillMethod(str, Enum):
    """How the student is made."""

    PROGRESSIVE = "progressive"  # halve the steps round by round, each student the next teacher
    DIRECT = "direct"  # one round: the student's whole K-step chain against the teacher's final x̂0


@dataclass(frozen=True)
class DistillConfig:
    """Settings of `ddad-edge distill` (saved inside every student checkpoint and the report)."""

    to_steps: int = 2
    teacher_steps: int = 8  # the grid distilled from: to_steps·2^n steps from t_prime
    t_prime: int = 248  # 248 = 8·31: an 8-step grid that halves on integers, next to DDAD's 250
    method: DistillMethod = DistillMethod.DIRECT  # measured better than progressive at K=2 (docs/distillation.md)
    iterations: int = 200  # optimiser steps per round
    max_minutes: float = 8.0  # training time over all rounds (0: no limit), shared equally by the rounds
    batch_size: int = 8
    lr: float = 1e-4
    random_noise: float = 0.0  # fraction of each batch started from fresh noise instead of the fixed z
    synthetic_defects: float = 1.0  # fraction of each batch given a synthetic defect (see add_synthetic_defects)
    defect_weight: float = 30.0  # loss weight of the pixels of a synthetic defect (others: 1)
    defect_target: DefectTarget | None = None  # None: repaired for the direct method, teacher for progressive
    flip: bool = True  # horizontal flips of the training images
    seed: int = 0

    def __post_init__(self) -> None:
        # Resolved here (from enum values too), so checkpoints and reports record what was used.
        method = _choice(DistillMethod, self.method, "--method")
        if self.defect_target is None:
            target = DefectTarget.REPAIRED if method is DistillMethod.DIRECT else DefectTarget.TEACHER
        else:
            target = _choice(DefectTarget, self.defect_target, "--defect-target")
        if target is DefectTarget.REPAIRED and method is not DistillMethod.DIRECT:
            raise DdadError("--defect-target repaired needs --method direct: the progressive student steps from "
                            "the teacher's own states, which carry the defect")
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "defect_target", target)
        self._check_numbers()

    def _check_numbers(self) -> None:
        """Refuse, naming the option, numbers no round can run with (NaN, ∞, negative, zero where it trains
        nothing). T' against the run's schedule is checked by `check_t_prime` (it needs the run)."""
        if self.to_steps not in STUDENT_STEPS:  # here too, so a typo is refused before the run is opened
            raise DdadError(f"--to-steps {self.to_steps} is not offered: choose one of "
                            f"{', '.join(map(str, STUDENT_STEPS))}")
        for name, lo, hi in _INT_RANGES:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise DdadError(f"{_option(name)} {value!r}: give a whole number from {lo} to {hi}")
        for name, lo, hi, low_open in _FLOAT_RANGES:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise DdadError(f"{_option(name)} {value!r}: give a finite number")
            if value > hi or value < lo or (low_open and value == lo):
                span = f"more than {lo:g} and at most {hi:g}" if low_open else f"from {lo:g} to {hi:g}"
                raise DdadError(f"{_option(name)} {value:g}{_FLOAT_MEANING.get(name, '')}: give a number {span}")


# (name, lowest, highest) of the whole-number settings; a teacher grid finer than 1024 steps or a batch
# beyond 4096 images is a typo, not a plan.
_INT_RANGES = (("teacher_steps", 2, 1024), ("t_prime", 1, 100_000),
               ("iterations", 1, 1_000_000_000), ("batch_size", 1, 4096), ("seed", 0, 2**32 - 1))
# (name, lowest, highest, lowest excluded) of the number settings
_FLOAT_RANGES = (("max_minutes", 0.0, 1e7, False), ("lr", 0.0, 10.0, True),
                 ("random_noise", 0.0, 1.0, False), ("synthetic_defects", 0.0, 1.0, False),
                 ("defect_weight", 0.0, 1e6, True))
_FLOAT_MEANING = {"max_minutes": " is out of range (0: no limit)", "random_noise": " is a fraction",
                  "synthetic_defects": " is a fraction"}


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_t_prime(t_prime: int, num_timesteps: int) -> None:
    """T' must be a noise level of the run's schedule (0 < T' < diffusion.num_timesteps)."""
    if not 0 < t_prime < num_timesteps:
        raise DdadError(f"--t-prime {t_prime} is not a noise level of this run's schedule: give a multiple of "
                        f"--teacher-steps from 1 to {num_timesteps - 1} (diffusion.num_timesteps is {num_timesteps})")


def _choice(kind: type[Enum], value: object, option: str):
    """`value` as a member of the enum `kind`, or one line naming the option and its choices."""
    try:
        return kind(value)
    except ValueError:
        raise DdadError(f"{option} {value!r}: choose {' or '.join(m.value for m in kind)}") from None


def distillation_grids(t_prime: int, teacher_steps: int, to_steps: int) -> list[list[int]]:
    """The teacher's grid, then the grid of each student down to `to_steps` (each the halving of the last).

    E.g. (248, 8, 2) → [[217, 186, 155, 124, 93, 62, 31, 0], [217, 155, 93, 31], [217, 93]].
    """
    if to_steps not in STUDENT_STEPS:
        raise DdadError(f"--to-steps {to_steps} is not offered: choose one of {', '.join(map(str, STUDENT_STEPS))}")
    rounds = math.log2(teacher_steps / to_steps) if teacher_steps > to_steps else 0.0
    if rounds < 1 or rounds != int(rounds):
        raise DdadError(f"a teacher of {teacher_steps} steps cannot be halved down to {to_steps}: "
                        f"use {to_steps}·2^n teacher steps (8 or 16)")
    if t_prime % teacher_steps:
        raise DdadError(f"T'={t_prime} is not a multiple of {teacher_steps} teacher steps: "
                        f"use T'={teacher_steps * (250 // teacher_steps)}")
    grids = [ddim_timesteps(t_prime, t_prime // teacher_steps)]
    while len(grids[-1]) > to_steps:
        grids.append(halve_grid(grids[-1]))
    return grids


def thin_grid(grid: list[int], steps: int) -> list[int]:
    """Every (len/steps)-th point of `grid`, from its first: the grid a direct student of `steps` steps uses."""
    return list(grid[:: len(grid) // steps])


def fixed_start_noise(image_size: int, channels: int, steps: int, seed: int) -> torch.Tensor:
    """The noise constant z (1, C, S, S) that DDADPipeline starts from (sampler.start_noise)."""
    return start_noise(steps, channels, image_size, seed)[0]


def run_states(unet: UNet, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, abar: torch.Tensor,
               grid: list[int], t_prime: int, w: float) -> list[torch.Tensor]:
    """The η=0 conditioned DDIM trajectory: [x_{t_0} (= x_T'), x_{t_1}, …, x_{t_{K−1}}, final x̂0].

    x, y: (B, C, S, S) in [−1, 1]; z: (B or 1, C, S, S). Returns K+1 tensors of x's shape; gradients flow
    when called with grad enabled.
    """
    x_t = noise_to(x, start_coefficients(abar, t_prime), z)
    states = [x_t]
    for i, (x_next, x0) in enumerate(ddim_steps(unet, x_t, y, grid_coefficients(abar, grid, 0.0), w)):
        states.append(x0 if i == len(grid) - 1 else x_next)  # after the last step: the clean image, x̂0
    return states


def x0_target(x_t: torch.Tensor, x_next: torch.Tensor, abar: torch.Tensor, t: int, t_next: int) -> torch.Tensor:
    """x̃0: the x̂0 with which one η=0 DDIM step from (x_t, t) lands exactly on `x_next` at t_next."""
    a_t, a_n = alpha_bar(abar, t), alpha_bar(abar, t_next)
    b = math.sqrt(1 - a_n) / math.sqrt(1 - a_t)
    a = math.sqrt(a_n) - b * math.sqrt(a_t)  # > 0: SNR grows from t to t_next
    return (x_next - b * x_t) / a


def progressive_loss(student: UNet, states: list[torch.Tensor], y: torch.Tensor, abar: torch.Tensor,
                     teacher_grid: list[int], w: float, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared x̂0 error of one student step against two teacher steps, averaged over the student's steps
    (pixels weighted by `weight` (B, 1, H, W) when given).

    `states` is the teacher's trajectory (run_states on `teacher_grid`, no grad); the student steps from
    teacher_grid[2i] to teacher_grid[2i+2] (or the clean image).
    """
    total = y.new_zeros(())
    k_t = len(teacher_grid)
    for i in range(0, k_t, 2):
        t, t_next = teacher_grid[i], (teacher_grid[i + 2] if i + 2 < k_t else -1)
        x_t, target = states[i], x0_target(states[i], states[i + 2], abar, t, t_next)
        eps = student(x_t, torch.full((y.shape[0],), float(t), device=y.device, dtype=y.dtype))
        _, x0 = conditioned_step(eps, x_t, y, step_coefficients(abar, t, t_next, 0.0), w)
        total = total + weighted_mse(x0, target, weight)
    return total / (k_t // 2)


def direct_loss(student: UNet, x: torch.Tensor, z: torch.Tensor, target_x0: torch.Tensor, abar: torch.Tensor,
                student_grid: list[int], t_prime: int, w: float, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error of the student's final x̂0 (its whole chain, y = x) against the teacher's."""
    x0 = run_states(student, x, x, z, abar, student_grid, t_prime, w)[-1]
    return weighted_mse(x0, target_x0, weight)


def weighted_mse(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean over pixels of weight·(a − b)², a, b (B, C, H, W), weight (B, 1, H, W) or None for all ones."""
    err = (a - b).square()
    return (err * weight).mean() if weight is not None else err.mean()


@dataclass
class RoundResult:
    """One round of distillation."""

    student: UNet
    grid: list[int]
    iterations: int
    seconds: float
    losses: list[float] = field(default_factory=list)


def add_synthetic_defects(x: torch.Tensor, fraction: float, gen: torch.Generator
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """(copy of x, mask (B, 1, H, W) bool of the changed pixels): in a copy of x (B, C, H, W) a `fraction` of
    the images carry one synthetic defect inside an H/4 × W/4 box: a spot (a disc of radius 1 to H/16), a
    line (1 to 2 pixels wide, like a scratch) or a rectangle, filled with a flat colour (dark, light or
    random) or, for a rectangle, with a patch of another image of the batch taken from elsewhere.

    Why: on nominal images alone the teacher's output is close to its input, and a student can match it by
    copying its input more, which erases exactly what the detector needs, the teacher NOT reproducing a
    defect. Off-nominal inputs teach the student to repair: toward the teacher's reconstruction of the same
    image without the defect (DefectTarget.REPAIRED) or of the image with it (TEACHER, the teacher's own
    repairs). Small dark spots and thin lines matter most: they are what a student that copies its input
    reproduces first. No real defect is used.
    """
    b, c, h, w = x.shape
    out = x.clone()
    mask = torch.zeros(b, 1, h, w, dtype=torch.bool, device=x.device)
    rows = torch.arange(h, device=x.device).view(h, 1).float()
    cols = torch.arange(w, device=x.device).view(1, w).float()

    def rand() -> float:
        return float(torch.rand(1, generator=gen))

    def randint(high: int) -> int:
        return int(torch.randint(0, max(high, 1), (1,), generator=gen))

    for i in range(b):
        if rand() >= fraction:
            continue
        bh, bw = max(h // 4, 1), max(w // 4, 1)
        top, left = randint(h - bh + 1), randint(w - bw + 1)
        kind = randint(3)
        if kind == 0:  # spot
            r = 1 + rand() * max(h / 16 - 1, 0)
            cy, cx = top + rand() * (bh - 1), left + rand() * (bw - 1)
            shape = (rows - cy) ** 2 + (cols - cx) ** 2 <= r * r
        elif kind == 1:  # line through the box
            y0, x0, y1, x1 = top + rand() * (bh - 1), left + rand() * (bw - 1), top + rand() * (bh - 1), \
                left + rand() * (bw - 1)
            dy, dx = y1 - y0, x1 - x0
            length = max((dy * dy + dx * dx) ** 0.5, 1e-6)
            along = ((rows - y0) * dy + (cols - x0) * dx) / length
            across = ((rows - y0) * dx - (cols - x0) * dy).abs() / length
            shape = (across <= 0.5 + rand()) & (along >= 0) & (along <= length)
        else:  # rectangle of 1 to H/4 × 1 to W/4
            ph, pw = 1 + randint(bh), 1 + randint(bw)
            shape = (rows >= top) & (rows < top + ph) & (cols >= left) & (cols < left + pw)
            if rand() < 0.3:
                j, sy, sx = randint(b), randint(h - ph + 1), randint(w - pw + 1)
                out[i, :, top:top + ph, left:left + pw] = x[j, :, sy:sy + ph, sx:sx + pw]
                mask[i, 0] = shape
                continue
        shape = shape & (rows >= top) & (rows < top + bh) & (cols >= left) & (cols < left + bw)
        tone = rand()
        if tone < 0.4:
            colour = torch.full((c, 1, 1), -1.0) + torch.rand(c, 1, 1, generator=gen) * 0.3
        elif tone < 0.6:
            colour = torch.full((c, 1, 1), 1.0) - torch.rand(c, 1, 1, generator=gen) * 0.3
        else:
            colour = torch.rand(c, 1, 1, generator=gen) * 2 - 1
        out[i] = torch.where(shape, colour.to(x), out[i])
        mask[i, 0] = shape
    return out, mask


def draw_batch(images: torch.Tensor, z_fixed: torch.Tensor, cfg: DistillConfig, gen: torch.Generator,
               device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A training batch (x, z, weight, clean): random images (flipped, some with synthetic defects), each
    with the fixed or fresh start noise, the loss weight of each pixel (B, 1, H, W): cfg.defect_weight inside
    a synthetic defect, 1 elsewhere, and the same images before the defects were drawn. x serves as its own
    condition y, as at test time."""
    n = images.shape[0]
    b = min(cfg.batch_size, n)
    x = images[torch.randperm(n, generator=gen)[:b]]
    if cfg.flip:
        flip = torch.rand(b, generator=gen) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    weight = torch.ones(b, 1, *x.shape[2:])
    clean = x
    if cfg.synthetic_defects > 0:
        x, mask = add_synthetic_defects(x, cfg.synthetic_defects, gen)
        weight = torch.where(mask, cfg.defect_weight, 1.0)
    fresh = (torch.rand(b, generator=gen) < cfg.random_noise).view(-1, 1, 1, 1)
    z = torch.where(fresh, torch.randn(x.shape, generator=gen), z_fixed.expand_as(x))
    return x.to(device), z.to(device), weight.to(device), clean.to(device)


def distill_round(teacher: UNet, teacher_grid: list[int], images: torch.Tensor, abar: torch.Tensor,
                  t_prime: int, w: float, z_fixed: torch.Tensor, cfg: DistillConfig, student_steps: int,
                  deadline: float = math.inf, device: torch.device | str = "cpu", label: str = "distill",
                  show_progress: bool = True, student: UNet | None = None) -> RoundResult:
    """Train a copy of `teacher` to reconstruct with `student_steps` steps; returns the student (eval mode).

    images: nominal training images (N, C, S, S) in [−1, 1] on the CPU. The progressive method needs
    student_steps = len(teacher_grid) / 2; the direct method any divisor. Stops after cfg.iterations
    optimiser steps or at `deadline` (time.monotonic()), whichever comes first. `student` continues the
    training of an earlier student instead of starting from a copy of the teacher.
    """
    device = torch.device(device)
    k_t = len(teacher_grid)
    if cfg.method is DistillMethod.PROGRESSIVE and k_t != 2 * student_steps:
        raise ValueError(f"progressive distillation halves the steps: {k_t} → {student_steps} is not a halving")
    repaired = cfg.defect_target is DefectTarget.REPAIRED  # DistillConfig refuses it with progressive
    grid = thin_grid(teacher_grid, student_steps)
    teacher = teacher.to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = copy.deepcopy(teacher if student is None else student).to(device).train()
    for p in student.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(student.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed + 1000 * student_steps)
    z_fixed = z_fixed.cpu()
    losses: list[float] = []
    started = time.monotonic()
    step = 0
    with Progress(label, total=cfg.iterations, enabled=show_progress) as bar:
        while step < cfg.iterations and time.monotonic() < deadline:
            x, z, weight, clean = draw_batch(images, z_fixed, cfg, gen, device)
            with torch.no_grad():
                # repaired: the teacher reconstructs the image as it was before the defect was drawn
                source = clean if repaired else x
                states = run_states(teacher, source, source, z, abar, teacher_grid, t_prime, w)
            if cfg.method is DistillMethod.PROGRESSIVE:
                loss = progressive_loss(student, states, x, abar, teacher_grid, w, weight)
            else:
                loss = direct_loss(student, x, z, states[-1], abar, grid, t_prime, w, weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            # A few large steps early on can throw a copied teacher far off its good starting point.
            torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
            opt.step()
            step += 1
            losses.append(float(loss.detach()))
            bar.update(step, loss=losses[-1])
    for p in student.parameters():
        p.requires_grad_(False)
    return RoundResult(student.eval(), grid, step, time.monotonic() - started, losses)


@torch.no_grad()
def reconstruction_error(a: UNet, grid_a: list[int], b: UNet, grid_b: list[int], images: torch.Tensor,
                         abar: torch.Tensor, t_prime: int, w: float, z: torch.Tensor, batch: int = 8) -> float:
    """Mean |x̂0_a − x̂0_b| over images (N, C, S, S) in [−1, 1], both samplers from the same noise z (1, C, S, S)."""
    total, count = 0.0, 0
    dev = next(a.parameters()).device
    for i in range(0, images.shape[0], batch):
        x = images[i:i + batch].to(dev)
        xa = run_states(a.eval(), x, x, z.to(dev), abar, grid_a, t_prime, w)[-1]
        xb = run_states(b.eval(), x, x, z.to(dev), abar, grid_b, t_prime, w)[-1]
        total += float((xa - xb).abs().sum())
        count += xa.numel()
    return total / max(count, 1)
