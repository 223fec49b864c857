"""The synthetic sets by difficulty: `ddad-edge synth --difficulty easy|hard`.

easy (the default, `data.synth`): machined discs on a belt with plain defects; a few minutes of training
separate them perfectly, which suits the demo and tests. hard (`data.surface`): a woven surface with subtle
defects, calibrated to leave the tiny preset's 10-step FP32 teacher between 0.85 and 0.95 image AUROC (0.901
at its strength: benchmarks/README.md): the set benchmarks/fidelity_bundles.py makes, where variants can differ.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from ddad_edge.data.surface import make_surface_dataset
from ddad_edge.data.synth import make_synthetic_dataset


class Difficulty(str, Enum):
    """Which synthetic set to make."""

    EASY = "easy"
    HARD = "hard"


def make_synthetic_set(out: Path | str, difficulty: Difficulty = Difficulty.EASY, **options) -> Path:
    """Write the synthetic set of `difficulty` under `out/category` and return that folder; `options` are
    those of `make_synthetic_dataset` (category, size, n_train, n_test_good, n_test_defect, seed)."""
    make = make_surface_dataset if Difficulty(difficulty) is Difficulty.HARD else make_synthetic_dataset
    return make(out, **options)
