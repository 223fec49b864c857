"""The on-device self-test: the bundle's probe frames through a backend, against the FP32 outputs.

Export stores a few probe frames with the FP32 ONNX Runtime outputs (`probe.npz`: frames (N,H,W,3)
uint8, maps (N,1,H,W) float32, scores (N,) float32) and the precision's stated tolerance
(`tolerance: {map_abs, score_rel}`). A frame passes when max |map - map_ref| <= map_abs and
|score - score_ref| <= score_rel * |score_ref| + 1e-6. Latency is the wall time of single-frame
`infer` calls after one warm-up, over `repeats` passes of the probe frames.

It lives with the inspection loop because it runs where the loop runs, before the line starts, and
like the loop it imports no torch; `ddad-edge selftest` (cli/device.py) prints its report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ddad_edge.bundle import Bundle, read_bundle
from ddad_edge.errors import DdadError
from ddad_edge.runtime.backends import Backend, open_runner

SCORE_ABS_FLOOR = 1e-6  # keeps the relative score check meaningful for a reference score near 0


@dataclass(frozen=True)
class FrameCheck:
    """One probe frame against its reference."""

    index: int
    map_abs_error: float  # max |map - map_ref|
    score_rel_error: float  # |score - score_ref| / |score_ref|
    passed: bool


@dataclass(frozen=True)
class SelftestReport:
    """What `ddad-edge selftest` found. Latencies in milliseconds per single-frame call."""

    backend: str
    precision: str
    map_abs: float
    score_rel: float
    frames: tuple[FrameCheck, ...]
    latency_p50_ms: float
    latency_p99_ms: float

    @property
    def passed(self) -> bool:
        return bool(self.frames) and all(f.passed for f in self.frames)


def load_probe(bundle: Bundle) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """(frames, maps, scores, map_abs, score_rel) from the bundle's probe file and manifest."""
    probe = bundle.manifest.get("probe")
    tolerance = bundle.manifest.get("tolerance")
    if not isinstance(probe, dict) or "file" not in probe:
        raise DdadError(f"bundle {bundle.path} has no probe frames (manifest 'probe'); export it again with "
                        "this ddad-edge to get a self-testable bundle")
    if not isinstance(tolerance, dict) or not {"map_abs", "score_rel"} <= set(tolerance):
        raise DdadError(f"bundle {bundle.path}: manifest 'tolerance' needs map_abs and score_rel")
    path = bundle.file(probe["file"])
    if not path.is_file():
        raise DdadError(f"bundle {bundle.path}: probe file {probe['file']} is missing")
    with np.load(path, allow_pickle=False) as data:
        missing = {"frames", "maps", "scores"} - set(data.files)
        if missing:
            raise DdadError(f"{path} lacks arrays {sorted(missing)}")
        frames, maps, scores = data["frames"], data["maps"], data["scores"]
    n = len(frames)
    if frames.dtype != np.uint8 or maps.shape[0] != n or scores.shape != (n,):
        raise DdadError(f"{path}: frames/maps/scores do not match ({frames.shape} {frames.dtype}, "
                        f"{maps.shape}, {scores.shape})")
    return frames, maps.astype(np.float32), scores.astype(np.float32), float(tolerance["map_abs"]), \
        float(tolerance["score_rel"])


def check_frame(index: int, map_out: np.ndarray, score_out: float, map_ref: np.ndarray, score_ref: float,
                map_abs: float, score_rel: float) -> FrameCheck:
    """Compare one frame's map (1,H,W) and score with the reference under the tolerance."""
    if map_out.shape != map_ref.shape:
        return FrameCheck(index, float("inf"), float("inf"), False)
    map_err = float(np.max(np.abs(map_out.astype(np.float64) - map_ref)))
    score_diff = abs(float(score_out) - float(score_ref))
    rel = score_diff / max(abs(float(score_ref)), SCORE_ABS_FLOOR)
    finite = np.isfinite(map_err) and np.isfinite(score_diff)
    passed = finite and map_err <= map_abs and score_diff <= score_rel * abs(float(score_ref)) + SCORE_ABS_FLOOR
    return FrameCheck(index, map_err, rel, bool(passed))


def run_selftest(bundle: Path | Bundle, backend: Backend | str = Backend.AUTO, repeats: int = 5,
                 **runner_options) -> SelftestReport:
    """Run the probe frames through `backend`, check them, and time single-frame inference."""
    if repeats < 1:
        raise DdadError("repeats must be at least 1")
    if not isinstance(bundle, Bundle):
        bundle = read_bundle(Path(bundle))
    frames, maps, scores, map_abs, score_rel = load_probe(bundle)
    if "image" in (bundle.manifest.get("thresholds") or {}):
        from ddad_edge.inspect.decide import threshold_from_bundle

        # a bundle whose threshold passes (or rejects) every part is not fit for the line, whatever its graph
        threshold_from_bundle(bundle.manifest)
    # the self-test measures the mode's fidelity itself (probe frames against the FP32 outputs), so an OpenVINO
    # mode the export could not measure (a CPU without BF16 there) may run here
    with open_runner(bundle, backend, unmeasured_mode=True, **runner_options) as runner:
        out = runner.infer(frames)
        checks = tuple(check_frame(i, out.maps[i], out.scores[i], maps[i], scores[i], map_abs, score_rel)
                       for i in range(len(frames)))
        runner.infer(frames[:1])  # warm-up for the single-frame path
        times = []
        for _ in range(repeats):
            for i in range(len(frames)):
                start = time.perf_counter()
                runner.infer(frames[i:i + 1])
                times.append((time.perf_counter() - start) * 1000.0)
        name = runner.backend
    return SelftestReport(
        backend=name, precision=bundle.precision.value, map_abs=map_abs, score_rel=score_rel, frames=checks,
        latency_p50_ms=float(np.percentile(times, 50)), latency_p99_ms=float(np.percentile(times, 99)),
    )


def format_report(report: SelftestReport) -> list[str]:
    """The lines `ddad-edge selftest` prints."""
    lines = [f"selftest: {report.backend}, {report.precision} bundle, tolerance map_abs {report.map_abs:g}, "
             f"score_rel {report.score_rel:g}"]
    for f in report.frames:
        lines.append(f"  frame {f.index}: {'PASS' if f.passed else 'FAIL'}  map max abs err {f.map_abs_error:.3g}  "
                     f"score rel err {f.score_rel_error:.3g}")
    failed = sum(not f.passed for f in report.frames)
    lines.append(f"latency per frame: p50 {report.latency_p50_ms:.2f} ms, p99 {report.latency_p99_ms:.2f} ms")
    lines.append(f"overall: {'PASS' if report.passed else 'FAIL'} ({len(report.frames) - failed}/"
                 f"{len(report.frames)} frames within tolerance)")
    return lines
