"""`ddad-edge doctor` on this machine (no GPU, no TensorRT) and its parsers on given inputs."""

from __future__ import annotations

import os
import platform
import sys
from types import SimpleNamespace

from ddad_edge.bundle import write_manifest
from ddad_edge.deploy.doctor import (
    Finding,
    Status,
    check_devices,
    check_jetson,
    check_opencv,
    check_parser_rules,
    format_findings,
    opencv_capabilities,
    run_doctor,
    tensorrt_summary,
)
from ddad_edge.lazy_import import SYSTEM_OPENCV_FIX
from tests.bundle_factory import make_toy_bundle

JETSON_BUILD_INFO = """
  Video I/O:
    DC1394:                      NO
    FFMPEG:                      YES
    GStreamer:                   YES (1.20.3)
    v4l/v4l2:                    YES (linux/videodev2.h)
"""
PIP_BUILD_INFO = """
  Video I/O:
    FFMPEG:                      YES
    GStreamer:                   NO
    v4l/v4l2:                    YES (linux/videodev2.h)
"""


def test_opencv_capabilities_from_build_information():
    assert opencv_capabilities(JETSON_BUILD_INFO) == {"gstreamer": True, "v4l2": True}
    assert opencv_capabilities(PIP_BUILD_INFO) == {"gstreamer": False, "v4l2": True}
    assert opencv_capabilities("") == {"gstreamer": False, "v4l2": False}


def test_doctor_here_reports_and_names_what_tensorrt_lacks():
    findings = run_doctor()
    by_name = {f.name: f for f in findings}
    assert by_name["python"].detail.startswith(platform.python_version())
    assert by_name["onnxruntime"].status is Status.OK and "CPUExecutionProvider" in by_name["onnxruntime"].detail
    for name in ("numpy", "opencv", "tensorrt", "pycuda", "cuda device", "jetson", "gpio", "camera"):
        assert name in by_name, name
    try:
        import tensorrt  # noqa: F401
        has_trt = True
    except ImportError:
        has_trt = False
    if not has_trt:  # this project's CI machines: the summary must say so, and how to fix it
        assert by_name["tensorrt"].status is Status.MISSING and "--system-site-packages" in by_name["tensorrt"].fix
        assert "missing tensorrt" in tensorrt_summary(findings)
    lines = format_findings(findings)
    assert lines[-1].startswith("TensorRT:")
    assert all(f"fix: {f.fix}" in "\n".join(lines) for f in findings if f.fix and f.status is not Status.OK)


def test_summary_ready_only_with_tensorrt_binding_and_device():
    ok = [Finding("tensorrt", Status.OK, "10.3.0"), Finding("pycuda", Status.OK, "x"),
          Finding("cuda-python", Status.INFO, "absent"), Finding("cuda device", Status.OK, "Orin")]
    assert tensorrt_summary(ok).startswith("TensorRT: ready")
    no_device = ok[:3] + [Finding("cuda device", Status.MISSING, "none"), Finding("onnxruntime", Status.OK, "1.20")]
    assert tensorrt_summary(no_device).endswith("(ddad-edge selftest --backend onnxruntime)")
    assert "a CUDA device" in tensorrt_summary(no_device) and "pycuda" not in tensorrt_summary(no_device)


def test_jetson_model_read_from_device_tree(tmp_path):
    model = tmp_path / "model"
    model.write_bytes(b"NVIDIA Jetson Orin Nano Developer Kit\x00")
    found = check_jetson(model)
    assert found[0] == Finding("jetson", Status.OK, "NVIDIA Jetson Orin Nano Developer Kit")
    assert check_jetson(tmp_path / "absent")[0].status is Status.INFO


def test_device_permissions_with_fix(tmp_path):
    readable = tmp_path / "gpiochip0"
    readable.write_bytes(b"")
    found = check_devices(str(tmp_path / "gpiochip*"), "gpio", "gpio", "none")
    assert found[0].status is Status.OK and "read/write" in found[0].detail
    if os.geteuid() != 0:  # root can open anything, so a permission problem only shows for a user
        readable.chmod(0)
        found = check_devices(str(tmp_path / "gpiochip*"), "gpio", "gpio", "none")
        assert found[0].status is Status.WARN and "usermod -aG gpio" in found[0].fix
    assert check_devices(str(tmp_path / "video*"), "camera", "video", "no cameras")[0].status is Status.INFO


def test_no_gpio_chip_names_gpio_values_that_run_accepts(monkeypatch):
    import glob
    import re

    from ddad_edge.inspect.gpio_lines import GpioSpec

    real_glob = glob.glob
    monkeypatch.setattr(glob, "glob", lambda p, *a, **k: [] if p == "/dev/gpiochip*" else real_glob(p, *a, **k))
    (gpio,) = [f for f in run_doctor() if f.name == "gpio"]
    values = re.findall(r"--gpio (\S+)", gpio.detail)
    assert gpio.status is Status.INFO and values, gpio.detail
    for value in values:
        GpioSpec.parse(value)  # raises DdadError for a value `run --gpio` refuses (such as 'simulated')


def _jetson(tmp_path):
    model = tmp_path / "model"
    model.write_bytes(b"NVIDIA Jetson AGX Orin Developer Kit\x00")
    return model


NUMPY2 = ImportError("numpy.core.multiarray failed to import\n(more lines of the module's own message)")


def test_a_cv2_that_fails_to_import_shows_why_and_the_numpy_fix(monkeypatch, tmp_path, import_fails):
    import_fails("cv2", exc=NUMPY2)
    found = check_opencv(_jetson(tmp_path))
    assert found.status is Status.MISSING and "not installed" not in found.detail
    assert found.detail.endswith("numpy.core.multiarray failed to import")
    assert "numpy<2" in found.fix and "keep the system OpenCV" in found.fix
    assert "pip install opencv" not in found.fix
    elsewhere = check_opencv(tmp_path / "absent")
    assert "numpy<2" in elsewhere.fix and "JetPack" not in elsewhere.fix


def test_opencv_fixes_fit_the_platform(monkeypatch, tmp_path, import_fails):
    import_fails("cv2", exc=ModuleNotFoundError("No module named 'cv2'", name="cv2"))
    assert check_opencv(_jetson(tmp_path)).fix == SYSTEM_OPENCV_FIX
    x86 = check_opencv(tmp_path / "absent")
    assert x86.detail == "not installed" and x86.fix == "pip install opencv-python-headless"
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "cv2", SimpleNamespace(__version__="4.10.0",
                                                            getBuildInformation=lambda: PIP_BUILD_INFO))
    assert check_opencv(_jetson(tmp_path)).fix == SYSTEM_OPENCV_FIX
    no_gst = check_opencv(tmp_path / "absent")
    assert no_gst.status is Status.WARN and "JetPack" not in no_gst.fix and "GStreamer" in no_gst.fix


def test_summary_says_onnxruntime_works_only_when_it_imports():
    no_trt = [Finding("tensorrt", Status.MISSING, "not installed"), Finding("cuda device", Status.MISSING, "none")]
    with_ort = tensorrt_summary(no_trt + [Finding("onnxruntime", Status.OK, "1.20.1")])
    assert with_ort.endswith("the ONNX Runtime backend works (ddad-edge selftest --backend onnxruntime)")
    without = tensorrt_summary(no_trt + [Finding("onnxruntime", Status.MISSING, "not installed")])
    assert "works" not in without and "pip install onnxruntime" in without


SAPPHIRE_RAPIDS_FLAGS = "fpu vme sse2 avx2 avx512f avx512_bf16 avx512_vnni amx_bf16 amx_tile amx_int8"


def test_cpu_features_name_the_bf16_amx_and_vnni_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {SAPPHIRE_RAPIDS_FLAGS}\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    from ddad_edge.deploy.doctor import cpu_features

    assert cpu_features(cpuinfo) == ("avx512_bf16", "amx_bf16", "amx_int8", "avx512_vnni")
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2\n")
    assert cpu_features(cpuinfo) == ()
    assert cpu_features(tmp_path / "absent") is None


def test_doctor_reports_openvino_devices_and_the_cpu_features(tmp_path):
    """OpenVINO is a [dev] dependency, so here it is installed: the line names its CPU device and says
    whether BF16 is there, and the CPU's features come from the file given."""
    from ddad_edge.deploy.doctor import check_openvino

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"flags\t\t: {SAPPHIRE_RAPIDS_FLAGS}\n")
    finding = check_openvino(cpuinfo)
    assert finding.name == "openvino" and finding.status is Status.OK
    assert "devices CPU" in finding.detail and ("BF16 yes" in finding.detail or "BF16 no" in finding.detail)
    assert "CPU has avx512_bf16, amx_bf16, amx_int8, avx512_vnni" in finding.detail
    assert any(f.name == "openvino" for f in run_doctor())


def test_doctor_without_openvino_says_how_to_install_it(tmp_path, import_fails):
    import_fails("openvino")
    from ddad_edge.deploy.doctor import check_openvino

    finding = check_openvino(tmp_path / "absent")
    assert finding.status is Status.INFO and "not installed" in finding.detail
    assert "pip install openvino" in finding.fix and "CPU features unknown" in finding.detail


def uint8_before_cast(bundle):
    """The bundle's graph with an Identity on the uint8 frames ahead of its Cast (TensorRT refuses that)."""
    import onnx
    from onnx import helper

    model = onnx.load(str(bundle.model_path))
    frames = model.graph.input[0].name
    for node in model.graph.node:
        node.input[:] = ["frames_copy" if name == frames else name for name in node.input]
    model.graph.node.insert(0, helper.make_node("Identity", [frames], ["frames_copy"], name="copy_frames"))
    onnx.save(model, str(bundle.model_path))
    # the manifest records this graph's own signature, so loading accepts it and only the rules can refuse it
    write_manifest(bundle.path, {k: v for k, v in bundle.manifest.items() if k != "signature"})


def test_doctor_names_the_table_the_checker_uses_for_the_installed_tensorrt(monkeypatch):
    from tests.fakes.fake_tensorrt import FakeTensorRT

    for label, source, nearest in (("8.6", "branch 8.6-GA", False), ("10.3", "branch 10.1-GA", True)):
        monkeypatch.setitem(sys.modules, "tensorrt", FakeTensorRT(label))
        found = {f.name: f for f in check_parser_rules()}
        assert found["onnx"].status is Status.OK
        rules = found["parser rules"]
        assert rules.status is Status.OK and rules.detail.startswith(f"TensorRT {label}: {source}")
        assert ("nearest" in rules.detail) is nearest
        assert "bundle" not in found


def test_doctor_with_a_bundle_gives_the_installed_versions_verdict(monkeypatch, tmp_path):
    from tests.fakes.fake_tensorrt import FakeTensorRT

    monkeypatch.setitem(sys.modules, "tensorrt", FakeTensorRT("8.6"))
    bundle = make_toy_bundle(tmp_path / "bundle")
    found = {f.name: f for f in run_doctor(bundle.path)}
    assert found["bundle"].status is Status.OK and "meets TensorRT 8.6's parser rules" in found["bundle"].detail
    uint8_before_cast(bundle)
    bad = {f.name: f for f in check_parser_rules(bundle.path)}["bundle"]
    assert bad.status is Status.MISSING and "does not parse on TensorRT 8.6" in bad.detail
    assert "copy_frames" in bad.detail and "UINT8" in bad.detail and bad.fix
    assert "\n" not in bad.detail


def test_doctor_without_tensorrt_lists_the_tables_and_what_export_recorded(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` fails, as in CI
    bundle = make_toy_bundle(tmp_path / "bundle")
    write_manifest(bundle.path, {**bundle.manifest, "tensorrt_rules": {"8.6": {"ok": True}, "11.4": {"ok": False}}})
    found = {f.name: f for f in check_parser_rules(bundle.path)}
    assert found["parser rules"].status is Status.INFO
    assert "8.6-GA" in found["parser rules"].detail and "10.1-GA" in found["parser rules"].detail
    assert found["bundle"].status is Status.INFO and "8.6 ok, 11.4 fails" in found["bundle"].detail


def test_doctor_says_build_needs_onnx_where_tensorrt_is(monkeypatch):
    from tests.fakes.fake_tensorrt import FakeTensorRT

    monkeypatch.setitem(sys.modules, "onnx", None)
    monkeypatch.setitem(sys.modules, "tensorrt", FakeTensorRT("10.3"))
    (onnx_finding,) = check_parser_rules()
    assert onnx_finding.status is Status.MISSING and onnx_finding.fix == "pip install onnx"
    assert "missing onnx" in tensorrt_summary([*run_doctor()])
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    (onnx_finding,) = check_parser_rules()
    assert onnx_finding.status is Status.INFO  # without TensorRT nothing here needs it
