"""Build a TensorRT engine from a bundle's ONNX file, on the device that will run it.

Version-aware (see runtime/trt_compat.py for the families):
- network creation: EXPLICIT_BATCH on 8.x; STRONGLY_TYPED on 10.x (every 10.x has the flag) when the ONNX
  file carries its precision (FP16 file, Q/DQ INT8 file); 11 is strongly typed always and takes no flag.
- precision: on 8.6-10.x without strong typing the FP16/INT8 builder flags are set when the file (or
  the profile) needs them; 11 has no such flags and takes precision from the file only. 8.6 has no strong
  typing, so an FP16 file's FP32 layers are pinned to FP32 with OBEY_PRECISION_CONSTRAINTS (else the
  builder would run them in FP16 too).
- the parser imports InstanceNormalization natively (8.6 would otherwise insert a plugin that a runner
  in another process cannot load without registering plugins).
- workspace limit, builder optimisation level, a timing cache persisted in the bundle (a cache TensorRT
  refuses is replaced, not written back), optional DLA core with GPU fallback (refused on 11.0-11.3,
  which have no DLA; FP16/INT8 only; one fixed batch, as DLA needs min = opt = max), dynamic batch
  1..max_batch on the GPU.
The engine is written into the bundle as `model.<device>-sm<cc>[-<SMs>sm-<GiB>g]-trt<version>.engine`
(device: the Jetson module's device-tree model, else the GPU name) and recorded in the manifest with the
GPU, module, SM count, memory, compute capability, TensorRT version, precision, profile and, for DLA,
how many layers the builder placed on the DLA and on the GPU.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Callable

from ddad_edge.bundle import Bundle, Precision, atomic_write_bytes, read_bundle, update_manifest
from ddad_edge.deploy.tensorrt_calibrate import (
    CALIBRATION_CACHE_NAME,
    attach_calibrator,
    load_calibration_frames,
    make_entropy_calibrator,
    refuse_on_trt11,
)
from ddad_edge.deploy.tensorrt_profile import (
    BuildProfile,
    HardwareCompatibility,
    ProfilePrecision,
    detect_profile_name,
    load_build_profile,
)
from ddad_edge.deploy.trt_rules import log_parser_rules
from ddad_edge.errors import DdadError
from ddad_edge.runtime.base import INPUT_NAME
from ddad_edge.runtime.cuda_api import CudaApi, open_cuda
from ddad_edge.runtime.trt_compat import (
    ApiFamily,
    TrtVersion,
    api_path,
    engine_file_name,
    import_tensorrt,
    tensorrt_version,
    timing_cache_file_name,
)
from ddad_edge.runtime.trt_logger import count_layer_placement, make_recording_logger


class BuildTarget(str, Enum):
    """What `ddad-edge export --target` builds after the ONNX bundle."""

    AUTO = "auto"  # an engine when TensorRT and a GPU are present
    ONNX = "onnx"  # the ONNX bundle only
    TENSORRT = "tensorrt"  # an engine, or an error that says what is missing


@dataclass(frozen=True)
class PrecisionPlan:
    """How the engine's precision is obtained on one TensorRT version."""

    precision: Precision  # the engine's precision
    strongly_typed: bool  # tensor types come from the ONNX file
    fp16_flag: bool  # BuilderFlag.FP16 (8.6-10.x)
    int8_flag: bool  # BuilderFlag.INT8 (8.6-10.x)
    legacy_calibration: bool  # IInt8EntropyCalibrator2 on an FP32 file (8.6-10.x)
    keep_fp32_layers: bool = False  # 8.6, FP16 file: pin the file's FP32 layers, OBEY_PRECISION_CONSTRAINTS


def plan_precision(bundle: Precision, requested: ProfilePrecision, version: TrtVersion) -> PrecisionPlan:
    """Decide strong typing and builder flags for a bundle's precision and a profile's request."""
    target = bundle if requested is ProfilePrecision.BUNDLE else Precision(requested.value)
    if target is not bundle:
        if bundle is not Precision.FP32:
            raise DdadError(f"the bundle is {bundle.value} (precision is in its ONNX file) and the profile asks "
                            f"for {target.value}: set precision: bundle, or export a {target.value} bundle")
        if version.family is ApiFamily.TRT11 and target is Precision.INT8:
            refuse_on_trt11(version)
        if version.family is ApiFamily.TRT11:
            raise DdadError(f"TensorRT {version} takes precision from the ONNX file only (no FP16 builder flag): "
                            f"export a {target.value} bundle (ddad-edge export --precision {target.value})")
    if version.family is ApiFamily.TRT11:
        return PrecisionPlan(target, strongly_typed=True, fp16_flag=False, int8_flag=False,
                             legacy_calibration=False)
    if target is bundle and bundle is not Precision.FP32 and version.strongly_typed_by_file:
        return PrecisionPlan(target, strongly_typed=True, fp16_flag=False, int8_flag=False,
                             legacy_calibration=False)
    return PrecisionPlan(target, strongly_typed=False, fp16_flag=target is Precision.FP16,
                         int8_flag=target is Precision.INT8 and bundle is Precision.INT8,
                         legacy_calibration=target is Precision.INT8 and bundle is Precision.FP32,
                         keep_fp32_layers=target is bundle and bundle is Precision.FP16)


@api_path(ApiFamily.TRT8)
def create_network_trt8(trt: Any, builder: Any) -> Any:
    """8.x: explicit batch must be asked for."""
    return builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))


@api_path(ApiFamily.TRT10)
def create_network_trt10(trt: Any, builder: Any, strongly_typed: bool) -> Any:
    """10.x: always explicit batch (the flag is ignored); strong typing on request."""
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    return builder.create_network(flags)


@api_path(ApiFamily.TRT11)
def create_network_trt11(builder: Any) -> Any:
    """11.x: strongly typed always; the STRONGLY_TYPED flag is deprecated and ignored, so none is passed."""
    return builder.create_network(0)


def create_network(trt: Any, builder: Any, version: TrtVersion, plan: PrecisionPlan) -> Any:
    """The network definition with the creation flags of this TensorRT family."""
    if version.family is ApiFamily.TRT8:
        return create_network_trt8(trt, builder)
    if version.family is ApiFamily.TRT10:
        return create_network_trt10(trt, builder, plan.strongly_typed)
    return create_network_trt11(builder)


@api_path(ApiFamily.TRT8, ApiFamily.TRT10)
def set_precision_flags(trt: Any, config: Any, plan: PrecisionPlan) -> None:
    """8.6-10.x without strong typing: let the builder choose FP16 / INT8 kernels."""
    if plan.fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    if plan.int8_flag:
        config.set_flag(trt.BuilderFlag.INT8)


@api_path(ApiFamily.TRT8)
def keep_fp32_layers(trt: Any, network: Any, config: Any) -> int:
    """8.6 (no strong typing): pin every layer whose outputs the ONNX file types FP32 to FP32 and make the
    builder obey, so the fp16-safe recipe's FP32 islands stay FP32 under the FP16 flag; returns how many."""
    kept = 0
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        types = [layer.get_output(i).dtype for i in range(layer.num_outputs)]
        if types and all(dtype == trt.DataType.FLOAT for dtype in types):
            layer.precision = trt.DataType.FLOAT
            for i in range(layer.num_outputs):
                layer.set_output_type(i, trt.DataType.FLOAT)
            kept += 1
    config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    return kept


def parse_onnx(trt: Any, network: Any, logger: Any, model_path: Path) -> Any:
    """Parse the bundle's ONNX file into `network`; the first parser error is one line."""
    parser = trt.OnnxParser(network, logger)
    # 8.6 imports InstanceNormalization (GroupNorm's export) as the plugin InstanceNormalization_TRT unless
    # told otherwise (onnx-tensorrt 8.6-GA builtin_op_importers.cpp); 10+ imports it natively by default.
    parser.set_flag(trt.OnnxParserFlag.NATIVE_INSTANCENORM)
    if not parser.parse_from_file(str(model_path)):
        errors = [str(parser.get_error(i).desc()) for i in range(parser.num_errors)]
        raise DdadError(f"TensorRT cannot parse {model_path.name}: {errors[0] if errors else 'unknown error'}"
                        f"{f' (+{len(errors) - 1} more)' if len(errors) > 1 else ''}")
    return parser


def check_dla(builder: Any, build_profile: BuildProfile, version: TrtVersion, plan: PrecisionPlan) -> None:
    """Refuse a DLA core that this TensorRT or this device does not have, or a precision it cannot run."""
    if build_profile.dla_core < 0:
        return
    if plan.precision is Precision.FP32:
        # DLA runs FP16 and INT8 only (TensorRT "DLA Supported Layers and Restrictions"): with GPU fallback
        # every layer would land on the GPU, and the engine would only claim the DLA.
        raise DdadError(f"profile {build_profile.name} asks for DLA core {build_profile.dla_core} and the engine "
                        "would be fp32, which the DLA cannot run: export an fp16 or int8 bundle (or set "
                        "precision: fp16 on TensorRT 8.6-10.x), or set dla_core: -1")
    if not version.has_dla:
        raise DdadError(f"TensorRT {version} has no DLA support (11.0-11.3): set dla_core: -1 in profile "
                        f"{build_profile.name}, or use TensorRT 11.4+ / 10.x")
    if build_profile.dla_core >= builder.num_DLA_cores:
        raise DdadError(f"profile {build_profile.name} asks for DLA core {build_profile.dla_core}, this device "
                        f"has {builder.num_DLA_cores}: set dla_core: -1 (GPU only) or a smaller index")


def configure(trt: Any, builder: Any, config: Any, build_profile: BuildProfile, cache_bytes: bytes,
              log: Callable[[str], None] = print) -> Any:
    """Workspace, optimisation level, TF32, timing cache, hardware compatibility and DLA; returns the timing
    cache the build adds to."""
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, build_profile.workspace_mib << 20)
    config.builder_optimization_level = build_profile.optimization_level
    if not build_profile.tf32:
        # On by default in every TensorRT version: FP32 layers would round to 10-bit mantissas, a precision
        # the bundle's ONNX file does not say and its tolerance does not allow.
        config.clear_flag(trt.BuilderFlag.TF32)
    timing_cache = config.create_timing_cache(cache_bytes)
    # A cache of another GPU/version is refused, not mixed in; the refused one would be written back as it
    # was, so the build starts an empty cache instead and that one is kept.
    if not config.set_timing_cache(timing_cache, False) and cache_bytes:
        log("the timing cache in the bundle was made by another GPU or TensorRT build and was refused: "
            "building without it, a new one replaces it")
        timing_cache = config.create_timing_cache(b"")
        config.set_timing_cache(timing_cache, False)
    if build_profile.hardware_compatibility is HardwareCompatibility.AMPERE_PLUS:
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
    if build_profile.dla_core >= 0:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = build_profile.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)  # layers the DLA cannot run go to the GPU
    return timing_cache


def batch_range(build_profile: BuildProfile) -> tuple[int, int]:
    """(min, max) batch of the engine: 1..max_batch on the GPU; on a DLA one fixed batch, opt_batch, since
    the DLA runs only shapes with min = opt = max (else every layer falls back to the GPU)."""
    if build_profile.dla_core >= 0:
        return build_profile.opt_batch, build_profile.opt_batch
    return 1, build_profile.max_batch


def add_batch_profile(builder: Any, network: Any, config: Any, build_profile: BuildProfile,
                      image_size: int) -> str:
    """The batch optimisation profile (see batch_range, tuned at opt_batch); returns the input name."""
    if network.num_inputs != 1:
        raise DdadError(f"the ONNX graph has {network.num_inputs} inputs, a ddad-edge graph has one ({INPUT_NAME})")
    trt_input = network.get_input(0)
    name = trt_input.name
    frame = (image_size, image_size, 3)
    profile = builder.create_optimization_profile()
    low, high = batch_range(build_profile)
    profile.set_shape(name, (low, *frame), (build_profile.opt_batch, *frame), (high, *frame))
    config.add_optimization_profile(profile)
    return name


def dla_placement(build_profile: BuildProfile, counted: tuple[int, int] | None,
                  log: Callable[[str], None]) -> dict[str, Any]:
    """The manifest's DLA fields: `dla_core` names a core only where the builder reported layers on it;
    `dla` keeps the request and the counts ('unknown' where this TensorRT did not report placement)."""
    core = build_profile.dla_core
    if core < 0:
        return {"dla_core": -1}
    if counted is None:
        log(f"DLA core {core} was asked for; TensorRT did not report where the layers run, so the engine is "
            "not recorded as a DLA engine (check with trtexec --useDLACore --verbose)")
        return {"dla_core": -1, "dla": {"requested_core": core, "dla_layers": "unknown", "gpu_layers": "unknown"}}
    on_dla, on_gpu = counted
    log(f"DLA core {core}: {on_dla} layers on the DLA, {on_gpu} on the GPU")
    if not on_dla:
        log(f"no layer runs on DLA core {core}: the engine runs on the GPU alone")
    return {"dla_core": core if on_dla else -1,
            "dla": {"requested_core": core, "dla_layers": on_dla, "gpu_layers": on_gpu}}


def reusable_cache(bundle: Bundle, name: str, log: Callable[[str], None]) -> bytes | None:
    """A cache an earlier build left in the bundle (timing or calibration), checked against its sha256;
    None when there is none, or when it is damaged or unlisted (said in the log: this build makes it again)."""
    if not (bundle.path / name).is_file():
        return None
    try:
        return bundle.read_device_file(name)
    except DdadError:
        log(f"{name} is damaged or not in the manifest: building without it, a new one replaces it")
        return None


def build_engine(bundle_dir: Path | Bundle, build_profile: BuildProfile, *, trt: Any = None,
                 cuda: CudaApi | None = None, log: Callable[[str], None] = print) -> Path:
    """Build an engine for this GPU and TensorRT from the bundle's ONNX file; returns the engine's path.

    `trt` and `cuda` default to the real `tensorrt` module and device 0 (tests pass stand-ins).
    The manifest is updated with the engine and, when kept, the timing cache and calibration cache.
    """
    bundle = bundle_dir if isinstance(bundle_dir, Bundle) else read_bundle(Path(bundle_dir))
    trt = trt if trt is not None else import_tensorrt()
    version = tensorrt_version(trt)
    plan = plan_precision(bundle.precision, build_profile.precision, version)
    own_cuda = cuda is None
    cuda = cuda if cuda is not None else open_cuda()
    try:
        gpu = cuda.gpu
        engine_name = engine_file_name(gpu, version)
        cache_name = timing_cache_file_name(gpu, version)
        cache_path = bundle.path / cache_name
        cache_bytes = (reusable_cache(bundle, cache_name, log) if build_profile.timing_cache else None) or b""
        log(f"building {engine_name}: TensorRT {version}, {gpu.describe()}, "
            f"{plan.precision.value}{' strongly typed' if plan.strongly_typed else ''}, "
            f"profile {build_profile.name}")

        trt_log = make_recording_logger(trt)  # the DLA placement report is read from its messages
        logger = trt_log
        builder = trt.Builder(logger)
        check_dla(builder, build_profile, version, plan)
        network = create_network(trt, builder, version, plan)
        log_parser_rules(bundle.model_path, version, log)  # the rules first: one line naming node and rule
        parser = parse_onnx(trt, network, logger, bundle.model_path)
        config = builder.create_builder_config()
        timing_cache = configure(trt, builder, config, build_profile, cache_bytes, log)
        if version.family is not ApiFamily.TRT11:
            set_precision_flags(trt, config, plan)
        if plan.keep_fp32_layers:
            log(f"TensorRT {version} has no strong typing: {keep_fp32_layers(trt, network, config)} FP32 layers "
                "of the file pinned to FP32")
        input_name = add_batch_profile(builder, network, config, build_profile, bundle.image_size)
        if plan.legacy_calibration:
            refuse_on_trt11(version)
            frames = load_calibration_frames(bundle)
            batch = build_profile.calibration_batch
            if reusable_cache(bundle, CALIBRATION_CACHE_NAME, log) is None:  # damaged: calibrate again
                (bundle.path / CALIBRATION_CACHE_NAME).unlink(missing_ok=True)
            calibrator = make_entropy_calibrator(trt, cuda, frames, batch, bundle.path / CALIBRATION_CACHE_NAME)
            attach_calibrator(trt, builder, config, calibrator, input_name,
                              (batch, bundle.image_size, bundle.image_size, 3))

        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise DdadError(f"TensorRT {version} could not build an engine from {bundle.model_path.name} "
                            "(its log above says why); try a larger workspace_mib or precision: bundle")
        del parser  # the parser must outlive the build: it owns the weights the network points to
        placement = dla_placement(build_profile, count_layer_placement(trt_log.messages), log)
        engine_path = bundle.path / engine_name
        atomic_write_bytes(engine_path, bytes(serialized))
        if build_profile.timing_cache:
            atomic_write_bytes(cache_path, bytes(timing_cache.serialize()))
    finally:
        if own_cuda:
            cuda.close()

    engines = dict(bundle.engines)
    engines[engine_name] = {
        "gpu": gpu.name,
        "module": gpu.module,
        "sm_count": gpu.sm_count,
        "memory_mib": gpu.memory_mib,
        "compute_capability": gpu.compute_capability,
        "tensorrt": str(version),
        "precision": plan.precision.value,
        "strongly_typed": plan.strongly_typed,
        "profile": build_profile.name,
        "min_batch": batch_range(build_profile)[0],
        "max_batch": batch_range(build_profile)[1],
        **placement,
        "tf32": build_profile.tf32,
        "built": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    written = (engine_name, *([cache_name] if build_profile.timing_cache else []),
               *([CALIBRATION_CACHE_NAME] if plan.legacy_calibration else []))
    update_manifest(bundle.path, {"engines": engines}, written)
    log(f"wrote {engine_path} ({engine_path.stat().st_size / 2**20:.1f} MiB)")
    return engine_path


def tensorrt_available() -> str | None:
    """None when TensorRT imports and a CUDA device answers; else the one-line reason."""
    try:
        trt = import_tensorrt()
        tensorrt_version(trt)
        cuda = open_cuda()
        cuda.close()
    except DdadError as exc:
        return str(exc)
    return None


def build_if_possible(bundle_dir: Path, target: BuildTarget | str = BuildTarget.AUTO,
                      profile: BuildProfile | str | None = None,
                      log: Callable[[str], None] = print) -> Path | None:
    """`export --target`: ONNX → no engine; TENSORRT → build or fail; AUTO → build when TensorRT and a GPU exist.

    `profile` defaults to the one detected for this machine (agx-orin, orin-nx, orin-nano, x86-gpu).
    """
    try:
        target = BuildTarget(target)
    except ValueError:
        raise DdadError(f"unknown target {target!r}: choose auto, onnx or tensorrt") from None
    if target is BuildTarget.ONNX:
        return None
    if target is BuildTarget.AUTO:
        reason = tensorrt_available()
        if reason is not None:
            log(f"no TensorRT engine built (the bundle runs on ONNX Runtime): {reason}")
            return None
    if profile is None:
        profile = detect_profile_name()
    if not isinstance(profile, BuildProfile):
        profile = load_build_profile(profile)
    return build_engine(bundle_dir, profile, log=log)
