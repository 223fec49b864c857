"""ONNX Runtime sessions the way ddad-edge opens them everywhere: one place for the optimisation level, the
thread count, and the graph passes an INT8 file runs faster without.

INT8 files on the CPU: ONNX Runtime's NHWC layout pass (`NhwcTransformer`, part of the `all` level) makes
each QLinearConv channels-last and wraps it in Transposes. In DDAD-S a GroupNorm, which reads
channels-first, sits between every two convolutions, so every activation is transposed there and back:
without the pass, 256-px DDAD-S INT8 files ran 4-12% faster on a 2-core x86 CPU (interleaved A/B runs of
the 1-step pixel-only and 2-step wide_resnet50_2 files), and the integer arithmetic is the same. FP32 files
keep every pass: their convolutions' blocked layout (NCHWc) comes from other passes of the `all` level, which
ran the 1-step FP32 file 22% faster than `extended` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ddad_edge.errors import DdadError, missing_package, raise_if_interrupted

OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
INT8_CPU_DISABLED = ("NhwcTransformer",)


def onnxruntime(purpose: str):
    """The onnxruntime module, or the one-line error that says how to install it."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise_if_interrupted(exc)
        raise missing_package("onnxruntime", purpose, "pip install onnxruntime (or onnxruntime-gpu)") from None
    return ort


def session_options(ort: Any, optimization: str = "all", threads: int = 0, profile_prefix: str | None = None):
    """SessionOptions: optimisation `optimization` (one of OPTIMIZATION_LEVELS), `threads` intra-op threads
    (0: ONNX Runtime's default), ONNX Runtime's own log quiet, and its profiler on when `profile_prefix`."""
    levels = dict(zip(OPTIMIZATION_LEVELS, (ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                                            ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                            ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                                            ort.GraphOptimizationLevel.ORT_ENABLE_ALL)))
    if optimization not in levels:
        raise DdadError(f"unknown ONNX Runtime optimisation level {optimization!r}: choose one of "
                        f"{', '.join(OPTIMIZATION_LEVELS)}")
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[optimization]
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return options


def disabled_passes(providers: list[str] | tuple[str, ...], int8: bool) -> list[str]:
    """The graph passes left out for a file: the NHWC layout pass for an INT8 file on the CPU provider."""
    return list(INT8_CPU_DISABLED) if int8 and "CPUExecutionProvider" in providers else []


def open_session(model: Path | str | bytes, providers: list[str] | tuple[str, ...] = ("CPUExecutionProvider",),
                 optimization: str = "all", threads: int = 0, int8: bool = False,
                 profile_prefix: str | None = None, purpose: str = "running an ONNX file"):
    """An InferenceSession of `model` (a path, or the bytes of a model) on `providers`; `int8` says the file
    holds Q/DQ nodes (`disabled_passes`). A file ONNX Runtime refuses is one DdadError line naming it."""
    ort = onnxruntime(purpose)
    options = session_options(ort, optimization, threads, profile_prefix)
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, options, providers=list(providers),
                                    disabled_optimizers=disabled_passes(providers, int8))
    except Exception as exc:  # ORT raises its own exception types for a broken file
        name = "the model" if isinstance(model, bytes) else str(model)
        raise DdadError(f"ONNX Runtime cannot load {name}: {str(exc).splitlines()[0][:200]}") from None
