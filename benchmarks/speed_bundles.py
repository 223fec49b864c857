"""Speed-only bundles: a DDAD-S pipeline with random weights, exported exactly as `ddad-edge export` exports.

A K-step graph costs the same whatever its weights hold, so the speed of a distilled 1- or 2-step
student, of an INT8 file, or of another backbone can be measured without training any of them. The
graph comes from the export stage's own functions (ddad_edge.deploy): `export_onnx` for the FP32 file,
`quantize_first_try` with the default INT8 recipe for INT8 (calibration/int8.yaml: Q/DQ on Conv/Gemm/MatMul
inputs and convolution outputs, symmetric S8S8, per-channel weights, the blur and the time embedding kept
in FP32: the file the export writes on its first try), and `convert_fp16` with the
fp16-safe recipe's groups for FP16. What is NOT reproduced: the INT8 accuracy-guided fallback (there is no
trained model to judge; it can only keep more nodes in FP32, never fewer) and the thresholds. Calibration
ranges come from synthetic nominal parts at the model's size.

Bundles are cached under the work folder by variant; a second run reuses them.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ddad_edge.bundle import MODEL_NAME, Bundle, Precision, read_bundle, write_manifest
from ddad_edge.errors import DdadError

SPEED_RECIPE = 4  # bump when the way speed bundles are made changes: cached ones are then made again
SPEED_MODEL = "speed-only: random weights (DDAD-S UNet, {backbone}); outputs are not meaningful, only their cost"


@dataclass(frozen=True)
class SpeedVariant:
    """One graph to time: steps K, scoring with a backbone (None: pixel-only), precision, image size."""

    steps: int
    backbone: str | None
    precision: Precision
    image_size: int = 256
    preset: str = "ddad-s"

    @property
    def scoring(self) -> str:
        return "fused" if self.backbone else "pixel"

    @property
    def key(self) -> str:
        return f"{self.preset}-{self.image_size}-k{self.steps}-{self.backbone or 'pixel'}-{self.precision.value}"

    def graph(self) -> dict:
        return {"image_size": self.image_size, "steps": self.steps, "scoring": self.scoring,
                "backbone": self.backbone, "preset": self.preset}


def student_grid(steps: int, t_prime: int = 250) -> list[int]:
    """A K-step grid from T' (what a distilled student's grid looks like: K evenly spaced timesteps)."""
    skip = t_prime // steps
    return list(range(t_prime - skip, -1, -skip))[:steps]


def calibration_frames(image_size: int, count: int, seed: int = 1) -> np.ndarray:
    """Synthetic nominal parts (count, S, S, 3) uint8 for INT8 ranges."""
    from ddad_edge.data.synth import render_belt, render_part

    rng = np.random.default_rng(seed)
    belt = render_belt(image_size)
    return np.stack([render_part(image_size, rng, belt=belt).image for _ in range(count)])


def _export_fp32(variant: SpeedVariant, path: Path, seed: int) -> Path:
    from ddad_edge.bench.reference import random_unet, speed_pipeline
    from ddad_edge.deploy.onnx_export import export_onnx

    unet = random_unet(variant.preset, variant.image_size, seed)
    grid = student_grid(variant.steps)
    pipeline = speed_pipeline(unet, grid, 250, 0.0, variant.backbone, seed=seed)
    return export_onnx(pipeline, path)


def _quantize_int8(fp32: Path, dst: Path, frames: np.ndarray, work: Path) -> Path:
    from ddad_edge.deploy.int8_fallback import quantize_first_try
    from ddad_edge.deploy.recipes import load_recipe

    return quantize_first_try(fp32, dst, frames, load_recipe("int8").int8, work)


def _convert_fp16(fp32: Path, dst: Path) -> Path:
    import onnx

    from ddad_edge.deploy.precision import convert_fp16, nodes_of_groups
    from ddad_edge.deploy.recipes import load_recipe

    keep = load_recipe("fp16-safe").fp16.keep_fp32
    return convert_fp16(fp32, dst, nodes_of_groups(onnx.load(str(fp32)), keep))


def speed_bundle(variant: SpeedVariant, work: Path, seed: int = 0, calib_count: int = 4,
                 log=print) -> Bundle:
    """The bundle of `variant` under `work` (made on first use; reused when its manifest matches)."""
    out = Path(work) / variant.key
    if (out / "manifest.yaml").is_file():
        try:
            bundle = read_bundle(out)
            m = bundle.manifest
            if (m.get("speed_variant"), m.get("seed"), m.get("speed_recipe")) == (variant.key, seed, SPEED_RECIPE):
                return bundle
        except DdadError:
            pass
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    fp32_variant = SpeedVariant(variant.steps, variant.backbone, Precision.FP32, variant.image_size, variant.preset)
    if variant.precision is Precision.FP32:
        _export_fp32(variant, out / MODEL_NAME, seed)
    else:
        fp32 = speed_bundle(fp32_variant, work, seed, calib_count, log)  # reuse the FP32 file
        if variant.precision is Precision.INT8:
            frames = calibration_frames(variant.image_size, calib_count)
            with tempfile.TemporaryDirectory(dir=work) as scratch:  # the quantizer's source copy and ranges
                _quantize_int8(fp32.model_path, out / MODEL_NAME, frames, Path(scratch))
        else:
            _convert_fp16(fp32.model_path, out / MODEL_NAME)
    manifest = {
        "model_file": MODEL_NAME, "precision": variant.precision.value, "graph": variant.graph(),
        "source": {"run": None, "kind": "speed-only", "weights": "random"},
        "speed_variant": variant.key, "seed": seed, "speed_recipe": SPEED_RECIPE,
        "notes": SPEED_MODEL.format(backbone=variant.backbone or "pixel-only scoring"),
    }
    bundle = write_manifest(out, manifest)
    log(f"made {variant.key} in {time.perf_counter() - t0:.0f} s")
    return bundle
