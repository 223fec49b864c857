"""FakeTensorRT: a stand-in `tensorrt` module for one version's API surface, where TensorRT cannot run.

Built from that version's real binding names (tests/tensorrt_names/): every public attribute of the
module and of its objects is refused with AttributeError when the version's bindings lack it (so the 11
surface has no EXPLICIT_BATCH, no BuilderFlag.FP16/INT8, no int8_calibrator, no IInt8EntropyCalibrator2;
10.x has no execute_async_v2). It records what the code asked for (`calls`) and behaves enough like
TensorRT to exercise the builder and runner end to end: the "engine" is the ONNX model behind a header,
executed by ONNX Runtime on the FakeCuda device memory at the addresses the runner bound. Its parser
applies ddad_edge/deploy/trt_rules.py for its version first, so it refuses what the real parser refuses.

What else it models, as the real TensorRT does it:
- plugins: the 8.6 parser imports InstanceNormalization as the plugin InstanceNormalization_TRT unless
  OnnxParserFlag.NATIVE_INSTANCENORM is set (10+: set by default); creating a parser registers the standard
  plugins (`init_libnvinfer_plugins` does it too); a runtime that deserialises a plan holding a plugin
  nobody registered logs "getPluginCreator could not find plugin" and returns None.
- precision: the network's layers carry the ONNX file's output types; in the plan header
  `layer_precisions` says what each layer ran in: the file's type when strongly typed, else FP16 under the
  FP16 flag unless the layer's precision is set and OBEY_PRECISION_CONSTRAINTS is on. A strongly typed
  network with the FP16/INT8 flag does not build.
- DLA: a layer runs on the DLA only with a fixed-shape profile, FP16/INT8 precision and a DLA-capable op;
  the builder reports each layer as "[DlaLayer] ..." or "[GpuLayer] ..." at INFO to an ILogger subclass.
- timing caches record the TensorRT build that made them; `set_timing_cache` refuses (returns False) a
  cache of another build and leaves the config without one.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ddad_edge.deploy.trt_rules import check_trt_rules
from tests.fakes.fake_cuda import FakeCuda
from tests.trt_names import TrtNames, load_trt_names

VERSIONS = {"8.6": "8.6.1", "10.3": "10.3.0", "10.16": "10.16.1.11", "11.4": "11.4.0.106"}
MAGIC = b"FAKEPLAN"
INSTANCE_NORM_PLUGIN = "InstanceNormalization_TRT"
# ONNX element type -> TensorRT DataType member name (INT64 tensors become INT32 in TensorRT).
ONNX_TO_TRT = {1: "FLOAT", 10: "HALF", 3: "INT8", 2: "UINT8", 6: "INT32", 7: "INT32", 9: "BOOL"}
DLA_OPS = frozenset({"Conv", "Mul", "Add", "Sub", "Abs", "Relu", "Sigmoid", "MaxPool", "AveragePool"})


class _Gated:
    """Public attributes exist only where the version's bindings have them (owner: qualified lookups)."""

    _names: TrtNames
    _owner: str | None = None
    _own: frozenset[str] = frozenset()  # the fake's own test-facing attributes

    def _gate(self, name: str) -> None:
        if not name.startswith("_") and name not in object.__getattribute__(self, "_own"):
            names = object.__getattribute__(self, "_names")
            owner = object.__getattribute__(self, "_owner")
            if not names.has_attribute(name, owner):
                where = f"{owner}." if owner else ""
                raise AttributeError(f"TensorRT {names.label} has no attribute {where}{name}")

    def __getattribute__(self, name: str) -> Any:
        object.__getattribute__(self, "_gate")(name)
        return object.__getattribute__(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        self._gate(name)
        object.__setattr__(self, name, value)


class _Member:
    def __init__(self, owner: str, name: str, value: int) -> None:
        self.owner, self.name, self.value = owner, name, value

    def __int__(self) -> int:
        return self.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Member) and (other.owner, other.name) == (self.owner, self.name)

    def __hash__(self) -> int:
        return hash((self.owner, self.name))

    def __repr__(self) -> str:
        return f"{self.owner}.{self.name}"


class _Enum(_Gated):
    def __init__(self, names: TrtNames, owner: str, members: list[str]) -> None:
        object.__setattr__(self, "_names", names)
        object.__setattr__(self, "_owner", owner)
        for value, member in enumerate(members):
            object.__setattr__(self, member, _Member(owner, member, value))


class _HostMemory:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def __bytes__(self) -> bytes:
        return self._data


class _Object(_Gated):
    """A TensorRT object of the fake module; `_trt` is the module (for names, calls, device)."""

    def __init__(self, trt: "FakeTensorRT") -> None:
        object.__setattr__(self, "_names", trt._names)
        object.__setattr__(self, "_trt", trt)


class _Tensor(_Object):
    def __init__(self, trt: "FakeTensorRT", name: str, dtype: str = "FLOAT") -> None:
        super().__init__(trt)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "dtype", getattr(trt.DataType, dtype))


class _Layer(_Object):
    """One ONNX node as a network layer: its outputs carry the file's types; precision can be pinned."""

    def __init__(self, trt: "FakeTensorRT", name: str, op: str, outputs: list[tuple[str, str]]) -> None:
        super().__init__(trt)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "_op", op)
        object.__setattr__(self, "_outputs", outputs)
        object.__setattr__(self, "_precision", None)
        object.__setattr__(self, "_output_types", {})

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    def get_output(self, index: int) -> _Tensor:
        return _Tensor(self._trt, *self._outputs[index])

    @property
    def precision(self) -> _Member | None:
        return self._precision

    @precision.setter
    def precision(self, value: _Member) -> None:
        object.__setattr__(self, "_precision", value)
        self._trt.calls.append(("layer_precision", self.name, value.name))

    def set_output_type(self, index: int, dtype: _Member) -> None:
        self._output_types[index] = dtype
        self._trt.calls.append(("set_output_type", self.name, index, dtype.name))


class _Network(_Object):
    def __init__(self, trt: "FakeTensorRT", flags: int) -> None:
        super().__init__(trt)
        object.__setattr__(self, "_flags", flags)
        object.__setattr__(self, "_model", None)
        object.__setattr__(self, "_inputs", [])
        object.__setattr__(self, "_layers", [])
        object.__setattr__(self, "_plugins", [])

    @property
    def num_inputs(self) -> int:
        return len(self._inputs)

    @property
    def num_layers(self) -> int:
        return len(self._layers)

    def get_layer(self, index: int) -> _Layer:
        return self._layers[index]

    def get_input(self, index: int) -> _Tensor:
        return _Tensor(self._trt, self._inputs[index])


class _ParserError(_Object):
    def __init__(self, trt: "FakeTensorRT", text: str) -> None:
        super().__init__(trt)
        object.__setattr__(self, "_text", text)

    def desc(self) -> str:
        return self._text


class _OnnxParser(_Object):
    def __init__(self, trt: "FakeTensorRT", network: _Network, logger: Any) -> None:
        super().__init__(trt)
        object.__setattr__(self, "_network", network)
        object.__setattr__(self, "_errors", [])
        # 10.0 made native InstanceNormalization the default (onnx-tensorrt Changelog); 8.6 used the plugin.
        object.__setattr__(self, "_flags", {"NATIVE_INSTANCENORM"} if trt._major >= 10 else set())
        trt._register_plugins()  # the parser library registers the standard plugins as it loads

    def set_flag(self, flag: _Member) -> None:
        self._flags.add(flag.name)
        self._trt.calls.append(("parser_set_flag", flag.name))

    def clear_flag(self, flag: _Member) -> None:
        self._flags.discard(flag.name)

    def get_flag(self, flag: _Member) -> bool:
        return flag.name in self._flags

    def parse_from_file(self, path: str) -> bool:
        import onnxruntime as ort

        trt = self._trt
        if trt._major < 10 and not self._network._flags & 1:
            self._errors.append("network must be created with the EXPLICIT_BATCH flag (TensorRT 8)")
            return False
        verdict = check_trt_rules(Path(path), trt.__version__)  # what the real parser of this version refuses
        if not verdict.ok:
            self._errors.extend(f"{v.node} [{v.op}]: {v.rule}: {v.detail}" for v in verdict.violations)
            return False
        data = Path(path).read_bytes()
        try:
            session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        except Exception as exc:
            self._errors.append(f"ONNX model could not be parsed: {str(exc).splitlines()[0]}")
            return False
        object.__setattr__(self._network, "_model", data)
        object.__setattr__(self._network, "_inputs", [i.name for i in session.get_inputs()])
        object.__setattr__(self._network, "_frame_shape", tuple(session.get_inputs()[0].shape[1:]))
        self._import_layers(data)
        trt.calls.append(("parse_from_file", Path(path).name))
        return True

    def _import_layers(self, data: bytes) -> None:
        """The network's layers: one per ONNX node, outputs typed as the file types them."""
        import onnx

        model = onnx.shape_inference.infer_shapes(onnx.load_from_string(data))
        graph = model.graph
        types = {v.name: v.type.tensor_type.elem_type for v in [*graph.input, *graph.value_info, *graph.output]}
        layers, plugins = [], []
        for index, node in enumerate(graph.node):
            if node.op_type == "InstanceNormalization" and "NATIVE_INSTANCENORM" not in self._flags:
                plugins.append(INSTANCE_NORM_PLUGIN)
            outputs = [(name, ONNX_TO_TRT.get(types.get(name, 1), "FLOAT")) for name in node.output]
            layers.append(_Layer(self._trt, node.name or f"{node.op_type}_{index}", node.op_type, outputs))
        object.__setattr__(self._network, "_layers", layers)
        object.__setattr__(self._network, "_plugins", sorted(set(plugins)))

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, index: int) -> _ParserError:
        return _ParserError(self._trt, self._errors[index])


class _Profile(_Object):
    def set_shape(self, name: str, min: tuple, opt: tuple, max: tuple) -> None:  # noqa: A002 - TensorRT's names
        object.__setattr__(self, "_shape", (name, tuple(min), tuple(opt), tuple(max)))
        self._trt.calls.append(("set_shape", name, tuple(min), tuple(opt), tuple(max)))


class _TimingCache(_Object):
    def __init__(self, trt: "FakeTensorRT", data: bytes) -> None:
        super().__init__(trt)
        content = json.loads(data) if data else {"entries": 0, "tensorrt": trt.__version__}
        object.__setattr__(self, "_entries", content["entries"])
        object.__setattr__(self, "_made_by", content.get("tensorrt"))

    def serialize(self) -> _HostMemory:
        return _HostMemory(json.dumps({"entries": self._entries, "tensorrt": self._made_by}).encode())


class _Config(_Object):
    def __init__(self, trt: "FakeTensorRT") -> None:
        super().__init__(trt)
        object.__setattr__(self, "_flags", {"TF32"})  # the real builder config starts with TF32 on
        object.__setattr__(self, "_profiles", [])
        object.__setattr__(self, "_timing_cache", None)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        self._trt.calls.append((name, value if isinstance(value, (int, str, _Member)) else type(value).__name__))

    def set_memory_pool_limit(self, pool: _Member, size: int) -> None:
        self._trt.calls.append(("set_memory_pool_limit", pool.name, size))

    def set_flag(self, flag: _Member) -> None:
        self._flags.add(flag.name)
        self._trt.calls.append(("set_flag", flag.name))

    def clear_flag(self, flag: _Member) -> None:
        self._flags.discard(flag.name)
        self._trt.calls.append(("clear_flag", flag.name))

    def get_flag(self, flag: _Member) -> bool:
        return flag.name in self._flags

    def create_timing_cache(self, data: bytes) -> _TimingCache:
        self._trt.calls.append(("create_timing_cache", len(data)))
        return _TimingCache(self._trt, data)

    def set_timing_cache(self, cache: _TimingCache, ignore_mismatch: bool) -> bool:
        self._trt.calls.append(("set_timing_cache", ignore_mismatch))
        if cache._made_by != self._trt.__version__ and not ignore_mismatch:
            return False  # TensorRT refuses a cache of another build and keeps none
        object.__setattr__(self, "_timing_cache", cache)
        return True

    def add_optimization_profile(self, profile: _Profile) -> int:
        self._profiles.append(profile)
        self._trt.calls.append(("add_optimization_profile",))
        return len(self._profiles) - 1

    def set_calibration_profile(self, profile: _Profile) -> bool:
        self._trt.calls.append(("set_calibration_profile", profile._shape[1]))
        return True


class _Builder(_Object):
    def __init__(self, trt: "FakeTensorRT", logger: Any) -> None:
        super().__init__(trt)
        object.__setattr__(self, "_logger", logger)

    @property
    def num_DLA_cores(self) -> int:  # noqa: N802 - TensorRT's name
        return self._trt.dla_cores

    def create_network(self, flags: int = 0) -> _Network:
        self._trt.calls.append(("create_network", flags))
        return _Network(self._trt, flags)

    def create_builder_config(self) -> _Config:
        return _Config(self._trt)

    def create_optimization_profile(self) -> _Profile:
        return _Profile(self._trt)

    def build_serialized_network(self, network: _Network, config: _Config) -> _HostMemory | None:
        trt = self._trt
        if network._model is None or not config._profiles:
            return None
        calibrator = config.__dict__.get("int8_calibrator")
        if calibrator is not None:
            self._calibrate(calibrator, network._inputs[0], network._frame_shape)
        strongly_typed = self._trt._major >= 11 or bool(network._flags & 2)
        if strongly_typed and config._flags & {"FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS"}:
            trt._emit(self._logger, "ERROR", "a strongly typed network takes no precision builder flags")
            return None
        if config._timing_cache is not None:
            object.__setattr__(config._timing_cache, "_entries", config._timing_cache._entries + 1)
        _, min_shape, _, max_shape = config._profiles[0]._shape
        precisions = {layer.name: self._layer_precision(layer, config, strongly_typed) for layer in network._layers}
        on_dla = self._place_on_dla(network, config, precisions, fixed=min_shape == max_shape)
        if on_dla is None:
            return None
        header = json.dumps({"tensorrt": trt.__version__, "min_batch": min_shape[0], "max_batch": max_shape[0],
                             "flags": network._flags, "builder_flags": sorted(config._flags),
                             "plugins": network._plugins, "layer_precisions": precisions,
                             "dla_layers": on_dla}).encode()
        trt.calls.append(("build_serialized_network",))
        return _HostMemory(MAGIC + struct.pack("<I", len(header)) + header + network._model)

    @staticmethod
    def _layer_precision(layer: _Layer, config: _Config, strongly_typed: bool) -> str:
        """What a layer runs in: the file's type when strongly typed; else the builder's choice (FP16 under
        the FP16 flag) unless its precision is pinned and OBEY_PRECISION_CONSTRAINTS is on."""
        declared = layer._outputs[0][1] if layer._outputs else "FLOAT"
        if strongly_typed or declared not in ("FLOAT", "HALF"):
            return declared
        if layer._precision is not None and "OBEY_PRECISION_CONSTRAINTS" in config._flags:
            return layer._precision.name
        return "HALF" if "FP16" in config._flags else declared

    def _place_on_dla(self, network: _Network, config: _Config, precisions: dict[str, str],
                      fixed: bool) -> list[str] | None:
        """Names of the layers the DLA runs (reported per layer at INFO); None when the build fails."""
        trt = self._trt
        if config.__dict__.get("default_device_type") != trt.DeviceType.DLA:
            return []
        placed = []
        for layer in network._layers:
            dla = fixed and layer._op in DLA_OPS and precisions[layer.name] in ("HALF", "INT8")
            trt._emit(self._logger, "INFO", f"[{'DlaLayer' if dla else 'GpuLayer'}] {layer._op}: {layer.name}")
            placed += [layer.name] if dla else []
        if len(placed) < len(network._layers) and "GPU_FALLBACK" not in config._flags:
            trt._emit(self._logger, "ERROR", "a layer cannot run on DLA and GPU fallback is off")
            return None
        return placed

    def _calibrate(self, calibrator: Any, input_name: str, frame_shape: tuple[int, ...]) -> None:
        """What TensorRT does with a calibrator: batches through device memory, then the cache."""
        trt = self._trt
        if calibrator.read_calibration_cache() is not None:
            trt.calls.append(("calibration_cache_reused",))
            return
        batch = calibrator.get_batch_size()
        peaks = []
        while True:
            pointers = calibrator.get_batch([input_name])
            if not pointers:
                break
            frame_bytes = int(np.prod(frame_shape))
            peaks.append(int(trt.cuda.read(pointers[0], batch * frame_bytes).max()))
        trt.calls.append(("calibrated", len(peaks)))
        calibrator.write_calibration_cache(json.dumps({"batches": len(peaks), "peaks": peaks}).encode())


class _Context(_Object):
    def __init__(self, trt: "FakeTensorRT", engine: "_Engine") -> None:
        super().__init__(trt)
        object.__setattr__(self, "_engine", engine)
        object.__setattr__(self, "_shapes", {})
        object.__setattr__(self, "_addresses", {})

    def set_input_shape(self, name: str, shape: tuple) -> bool:
        if not 1 <= shape[0] <= self._engine._header["max_batch"]:
            return False
        self._shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple:
        if name in self._shapes:
            return self._shapes[name]
        (input_name,) = self._shapes
        probe = np.zeros(self._shapes[input_name], np.uint8)
        return tuple(self._engine._session.run([name], {input_name: probe})[0].shape)

    def set_tensor_address(self, name: str, address: int) -> bool:
        self._addresses[name] = address
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        trt, engine = self._trt, self._engine
        (input_name,) = self._shapes
        shape = self._shapes[input_name]
        addresses = dict(self._addresses)

        def work() -> None:
            frames = trt.cuda.read(addresses[input_name], int(np.prod(shape))).reshape(shape)
            outputs = engine._session.run(engine._outputs, {input_name: frames})
            for name, value in zip(engine._outputs, outputs, strict=True):
                trt.cuda.write(addresses[name], value.astype(np.float32))
            trt.executions += 1

        trt.cuda.enqueue(stream_handle, work)
        return True


class _Engine(_Object):
    def __init__(self, trt: "FakeTensorRT", header: dict, model: bytes) -> None:
        import onnxruntime as ort

        super().__init__(trt)
        session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        object.__setattr__(self, "_header", header)
        object.__setattr__(self, "_session", session)
        object.__setattr__(self, "_inputs", [i.name for i in session.get_inputs()])
        object.__setattr__(self, "_outputs", [o.name for o in session.get_outputs()])

    @property
    def num_io_tensors(self) -> int:
        return len(self._inputs) + len(self._outputs)

    def get_tensor_name(self, index: int) -> str:
        return (self._inputs + self._outputs)[index]

    def get_tensor_mode(self, name: str) -> _Member:
        return self._trt.TensorIOMode.INPUT if name in self._inputs else self._trt.TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str) -> _Member:
        return self._trt.DataType.UINT8 if name in self._inputs else self._trt.DataType.FLOAT

    def create_execution_context(self) -> _Context:
        return _Context(self._trt, self)


class _Runtime(_Object):
    def __init__(self, trt: "FakeTensorRT", logger: Any) -> None:
        super().__init__(trt)
        object.__setattr__(self, "_logger", logger)

    def deserialize_cuda_engine(self, data: bytes) -> _Engine | None:
        if not data.startswith(MAGIC):
            return None
        header, model = split_plan(data)
        if header["tensorrt"] != self._trt.__version__:
            return None  # TensorRT refuses a plan serialised by another version
        for plugin in header.get("plugins", []):
            if not self._trt._plugins_registered:
                self._trt._emit(self._logger, "ERROR", f"getPluginCreator could not find plugin: {plugin} version: 1")
                return None
        return _Engine(self._trt, header, model)


def split_plan(data: bytes) -> tuple[dict, bytes]:
    """(header, model bytes) of a plan FakeTensorRT serialised: MAGIC, header length, JSON header, model."""
    (size,) = struct.unpack_from("<I", data, len(MAGIC))
    start = len(MAGIC) + 4
    return json.loads(data[start:start + size]), data[start + size:]


class _Logger(_Object):
    def __init__(self, trt: "FakeTensorRT", severity: _Member) -> None:
        super().__init__(trt)
        object.__setattr__(self, "_severity", severity)


class _ILoggerBase:
    """trt.ILogger: subclasses implement log(severity, msg); TensorRT calls it for every message."""

    def __init__(self) -> None:
        pass


class _LoggerClass(_Enum):
    def __init__(self, trt: "FakeTensorRT") -> None:
        super().__init__(trt._names, "Logger", ["INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE"])
        object.__setattr__(self, "_trt", trt)

    def __call__(self, severity: _Member) -> _Logger:
        return _Logger(self._trt, severity)


class FakeTensorRT(_Gated):
    """The `tensorrt` module of TensorRT `label` (8.6, 10.3, 10.16, 11.4); `version` overrides its __version__.

    Test-facing: `calls` (what was asked for, in order), `executions`, `dla_cores`, `cuda` (the FakeCuda).
    """

    _own = frozenset({"calls", "executions", "dla_cores", "cuda", "plugin_library"})

    def __init__(self, label: str, cuda: FakeCuda | None = None, version: str | None = None,
                 dla_cores: int = 0, plugin_library: bool = True) -> None:
        names = load_trt_names(label)
        setattr_ = object.__setattr__
        setattr_(self, "_names", names)
        setattr_(self, "_owner", None)
        setattr_(self, "__version__", version or VERSIONS[label])
        setattr_(self, "_major", int((version or VERSIONS[label]).split(".")[0]))
        setattr_(self, "calls", [])
        setattr_(self, "executions", 0)
        setattr_(self, "dla_cores", dla_cores)
        setattr_(self, "cuda", cuda or FakeCuda())
        setattr_(self, "plugin_library", plugin_library)  # False: libnvinfer_plugin absent
        setattr_(self, "_plugins_registered", False)
        enums = {
            "NetworkDefinitionCreationFlag": ["EXPLICIT_BATCH", "STRONGLY_TYPED"],
            "BuilderFlag": ["FP16", "INT8", "DEBUG", "GPU_FALLBACK", "REFIT", "TF32", "OBEY_PRECISION_CONSTRAINTS"],
            "OnnxParserFlag": ["NATIVE_INSTANCENORM"],
            "MemoryPoolType": ["WORKSPACE", "DLA_MANAGED_SRAM", "DLA_LOCAL_DRAM", "DLA_GLOBAL_DRAM"],
            "DeviceType": ["GPU", "DLA"],
            "HardwareCompatibilityLevel": ["NONE", "AMPERE_PLUS"],
            "TensorIOMode": ["NONE", "INPUT", "OUTPUT"],
            "DataType": ["FLOAT", "HALF", "INT8", "INT32", "BOOL", "UINT8"],
        }
        for owner, members in enums.items():
            setattr_(self, owner, _Enum(names, owner, members))
        setattr_(self, "Logger", _LoggerClass(self))

    # The classes of the module, bound to this fake.
    def Builder(self, logger: Any) -> _Builder:  # noqa: N802 - TensorRT's names
        return _Builder(self, logger)

    def OnnxParser(self, network: _Network, logger: Any) -> _OnnxParser:  # noqa: N802
        return _OnnxParser(self, network, logger)

    def Runtime(self, logger: Any) -> _Runtime:  # noqa: N802
        return _Runtime(self, logger)

    @property
    def ILogger(self) -> type:  # noqa: N802
        return _ILoggerBase

    def init_libnvinfer_plugins(self, logger: Any, namespace: str) -> bool:
        self.calls.append(("init_libnvinfer_plugins", namespace))
        return self._register_plugins()

    def _register_plugins(self) -> bool:
        object.__setattr__(self, "_plugins_registered", self._plugins_registered or self.plugin_library)
        return self.plugin_library

    def _emit(self, logger: Any, severity: str, message: str) -> None:
        """A message to the application's logger: TensorRT calls an ILogger subclass for every severity."""
        if isinstance(logger, _ILoggerBase):
            logger.log(getattr(self.Logger, severity), message)

    @property
    def IInt8EntropyCalibrator2(self) -> type:  # noqa: N802
        class EntropyCalibrator2Base:
            def __init__(self) -> None:
                pass

        return EntropyCalibrator2Base

    def nptype(self, dtype: _Member) -> type:
        return {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "BOOL": np.bool_,
                "UINT8": np.uint8}[dtype.name]
