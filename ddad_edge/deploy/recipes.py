"""Precision recipes: how an FP16 or INT8 file is made and what accuracy it must keep.

A recipe is a YAML file (any path, or NAME for calibration/NAME.yaml), read by the one strict loader
(yaml_strict.py) as configs and build profiles are: an unknown key or a wrong type is one line naming the
file and the key. `--recipe NAME` finds calibration/NAME.yaml in the working directory first (a user's own
recipes), then among the recipes shipped with ddad-edge (the repository's calibration/, inside the package
once installed: yaml_folders.py). Without --recipe a precision uses its default recipe (fp32, fp16, int8).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from ddad_edge.bundle import Precision
from ddad_edge.errors import DdadError
from ddad_edge.yaml_folders import search_folders
from ddad_edge.yaml_strict import from_dict, naming_the_file, read_yaml_mapping

RECIPE_DIR = "calibration"
RECIPE = "recipe"  # how errors name a recipe file
DEFAULT_RECIPES = {Precision.FP32: "fp32", Precision.FP16: "fp16", Precision.INT8: "int8"}


class Sensitivity(str, Enum):
    """How the INT8 fallback ranks the quantized nodes before keeping the worst in FP32."""

    OUTPUT = "output"  # each weight group quantized alone: its error in the graph's map and score (one run per group)
    LOCAL = "local"  # the relative error each node adds to its own output, from one run of the file (fast)


class CalibrationMethod(str, Enum):
    """How INT8 activation ranges are taken from the calibration images."""

    MINMAX = "minmax"  # the observed range
    ENTROPY = "entropy"  # the range that keeps the histogram's KL divergence smallest
    PERCENTILE = "percentile"  # the range holding `percentile` % of the values


@dataclass(frozen=True)
class Tolerance:
    """The accuracy a precision promises against the FP32 graph on the probe frames.

    map_rel: max |map − map_fp32| over max |map_fp32| (stored in the bundle as an absolute map_abs);
    score_rel: max |score − score_fp32| / |score_fp32|.
    """

    map_rel: float = 1e-4
    score_rel: float = 1e-4


@dataclass(frozen=True)
class Bf16Budget:
    """What OpenVINO's bf16 execution mode of the file may cost against the FP32 graph on the fidelity frames
    (deploy/execution_modes.py); beyond it the bundle does not offer the mode."""

    map_rel: float = 5e-2
    score_rel: float = 5e-2
    min_rank_correlation: float = 0.98


@dataclass(frozen=True)
class Fp16Recipe:
    """FP16: groups of nodes (precision.NodeGroup) kept in FP32 always, or when their error passes a limit."""

    keep_fp32: tuple[str, ...] = ()  # always FP32
    measure: tuple[str, ...] = ("normalization", "softmax", "time_embedding", "blur", "distances")
    keep_if_map_rel_above: float = 1e-3  # a measured group whose error alone exceeds this stays FP32


@dataclass(frozen=True)
class Int8Recipe:
    """INT8 Q/DQ: symmetric, zero points 0, per-channel weights, calibrated on nominal training images."""

    method: CalibrationMethod = CalibrationMethod.MINMAX
    percentile: float = 99.999  # for method: percentile
    calibration_images: int = 64  # nominal training images (never test images)
    op_types: tuple[str, ...] = ("Conv", "Gemm", "MatMul")  # ops whose inputs get Q/DQ
    quantize_outputs: tuple[str, ...] = ("Conv",)  # of op_types, those whose outputs get Q/DQ too (CPU fusion)
    keep_fp32: tuple[str, ...] = ("blur", "time_embedding")  # node groups never quantized
    min_rank_correlation: float = 0.98  # score ranking vs FP32 on held-out nominal + painted-defect images
    fallback_rounds: int = 4  # retries, each keeping more of the most sensitive nodes in FP32
    fallback_fraction: float = 0.1  # of the quantized nodes, excluded per retry (doubles each round)
    sensitivity: Sensitivity = Sensitivity.OUTPUT  # how the fallback ranks the nodes it keeps in FP32


@dataclass(frozen=True)
class Recipe:
    """A precision recipe, as in calibration/NAME.yaml."""

    precision: Precision = Precision.FP32
    description: str = ""
    tolerance: Tolerance = field(default_factory=Tolerance)
    fp16: Fp16Recipe = field(default_factory=Fp16Recipe)
    int8: Int8Recipe = field(default_factory=Int8Recipe)
    bf16: Bf16Budget = field(default_factory=Bf16Budget)
    name: str = ""  # set from the file name


def find_recipe(name_or_path: str | Path) -> Path:
    """The YAML file of a recipe given as a path or as NAME of calibration/NAME.yaml."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    if path.suffix in (".yaml", ".yml") and (path.parent != Path(".") or path.is_absolute()):
        raise DdadError(f"recipe file not found: {path}")
    stem = path.stem if path.suffix in (".yaml", ".yml") else str(name_or_path)
    for folder in search_folders(RECIPE_DIR):
        candidate = folder / f"{stem}.yaml"
        if candidate.is_file():
            return candidate
    known = sorted({p.stem for d in search_folders(RECIPE_DIR) if d.is_dir() for p in d.glob("*.yaml")})
    raise DdadError(f"no recipe '{name_or_path}': give a YAML path or one of {', '.join(known) or '(none found)'}")


def load_recipe(name_or_path: str | Path) -> Recipe:
    """Load a recipe strictly (unknown keys and wrong types are errors naming the file and the key)."""
    path = find_recipe(name_or_path)
    data = read_yaml_mapping(path, RECIPE)
    with naming_the_file(RECIPE, path):
        if "name" in data:
            raise DdadError("'name' comes from the file name, remove the key")
        recipe = dataclasses.replace(from_dict(Recipe, data), name=path.stem)
        _validate(recipe)
    return recipe


def _validate(recipe: Recipe) -> None:
    """The relations the types alone do not hold: node groups that exist, positive tolerances, ..."""
    from ddad_edge.deploy.precision import NodeGroup

    groups = {g.value for g in NodeGroup}
    for key, names in (("fp16.keep_fp32", recipe.fp16.keep_fp32), ("fp16.measure", recipe.fp16.measure),
                       ("int8.keep_fp32", recipe.int8.keep_fp32)):
        bad = [n for n in names if n not in groups]
        if bad:
            raise DdadError(f"{key} names unknown node groups {bad}; choose from {', '.join(sorted(groups))}")
    if not (recipe.tolerance.map_rel > 0 and recipe.tolerance.score_rel > 0):
        raise DdadError("tolerance values must be positive")
    if not (recipe.bf16.map_rel > 0 and recipe.bf16.score_rel > 0 and -1 <= recipe.bf16.min_rank_correlation <= 1):
        raise DdadError("bf16 budget values must be positive (min_rank_correlation in [-1, 1])")
    stray = [t for t in recipe.int8.quantize_outputs if t not in recipe.int8.op_types]
    if stray:
        raise DdadError(f"int8.quantize_outputs names {stray}, which are not in int8.op_types "
                        f"{list(recipe.int8.op_types)}: only quantized ops can have their outputs quantized")
    if recipe.int8.calibration_images < 1:
        raise DdadError("int8.calibration_images must be at least 1")
    if not 0 < recipe.int8.percentile <= 100:
        raise DdadError("int8.percentile must be in (0, 100]")


def recipe_for(precision: Precision, name_or_path: str | Path | None = None) -> Recipe:
    """The recipe to export `precision` with: the given one (which must be of that precision) or the default."""
    recipe = load_recipe(name_or_path or DEFAULT_RECIPES[precision])
    if recipe.precision is not precision:
        raise DdadError(f"recipe '{recipe.name}' is for {recipe.precision.value}, not {precision.value}: "
                        f"drop --recipe or pass --precision {recipe.precision.value}")
    return recipe
