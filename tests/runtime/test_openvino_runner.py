"""The OpenVINO runner on real toy bundles (OpenVINO's real CPU plugin; randomly initialised toy graphs): its
outputs against ONNX Runtime's on the same file, the precision it is asked for and the one it compiled, its
one-line refusals, the compiled-model cache, the execution modes an export measures and the runner's refusal
of one it did not, and `selftest`, `bench` and `run` through it.

The toy bundles are written by hand, not exported, so they record no execution modes: the tests that run
them say `unmeasured_mode=True` (`--unmeasured-mode`) in so many words, as a user would have to.

The parity against the torch reference is in test_parity.py, with every other backend."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from ddad_edge.cli import main
from ddad_edge.errors import DdadError
from ddad_edge.inspect.selftest import run_selftest
from ddad_edge.runtime.backends import open_runner
from ddad_edge.runtime.openvino_runner import OpenVinoRunner, device_capabilities, openvino
from tests.bundle_factory import make_toy_bundle
from tests.inspect.checks import is_red
from tests.inspect.media import part_image, write_video


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("ov-bundles")
    return {p: make_toy_bundle(root / p, precision=p, image_size=32) for p in ("fp32", "int8")}


def _frames(n: int = 3, size: int = 32) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_openvino_matches_onnx_runtime_on_the_same_file(bundles, precision, tmp_path):
    bundle = bundles[precision]
    frames = _frames()
    with open_runner(bundle.path, "onnxruntime") as ort_runner:
        ref = ort_runner.infer(frames)
    with open_runner(bundle.path, "openvino", cache_dir=tmp_path / "cache", unmeasured_mode=True) as runner:
        assert runner.backend == "openvino" and runner.mode == "openvino-f32" and runner.compiled_precision == "f32"
        out = runner.infer(frames)
        single = runner.infer(frames[:1])  # a dynamic batch: one frame after three
    assert out.maps.shape == ref.maps.shape and out.maps.dtype == np.float32 and out.scores.shape == (3,)
    scale = float(np.abs(ref.maps).max())
    # FP32: the same arithmetic up to kernel order. INT8: OpenVINO runs the Q/DQ file as integer kernels,
    # ONNX Runtime too, but their requantisation may round differently by one step in a few places.
    tol = 1e-4 if precision == "fp32" else 0.05
    assert np.abs(out.maps - ref.maps).max() <= tol * scale
    np.testing.assert_allclose(out.scores, ref.scores, rtol=tol)
    np.testing.assert_allclose(single.scores, out.scores[:1], rtol=1e-5)


def test_f32_is_asked_for_explicitly_and_bf16_only_where_the_cpu_has_it(bundles, tmp_path):
    """OpenVINO's CPU plugin would choose bf16 by itself on a CPU that has it: the runner always sets the
    precision. bf16 where the CPU lacks it is one line; where it has it, the runner compiles bf16."""
    core = openvino().Core()
    with OpenVinoRunner(bundles["fp32"], precision="f32", cache_dir="", unmeasured_mode=True) as runner:
        assert runner.compiled_precision == "f32"
    if "BF16" in device_capabilities(core, "CPU"):
        with OpenVinoRunner(bundles["fp32"], precision="bf16", cache_dir="", unmeasured_mode=True) as runner:
            assert runner.compiled_precision == "bf16"
            assert runner.infer(_frames(1)).scores.shape == (1,)
    else:
        with pytest.raises(DdadError, match=r"no BF16 support here .*--ov-precision f32"):
            OpenVinoRunner(bundles["fp32"], precision="bf16", cache_dir="", unmeasured_mode=True)


@pytest.mark.parametrize("kwargs, words", [
    ({"device": "TPU"}, "unknown OpenVINO device 'TPU'"),
    ({"device": "NPU"}, "OpenVINO device NPU is not available here"),
    ({"precision": "fp8"}, "unknown OpenVINO inference precision 'fp8'"),
    ({"threads": -1}, "--threads must be 0"),
])
def test_bad_options_are_one_line(bundles, kwargs, words):
    if kwargs.get("device") == "NPU" and "NPU" in openvino().Core().available_devices:
        kwargs = {"device": "FPGA"}
        words = "unknown OpenVINO device 'FPGA'"
    with pytest.raises(DdadError, match=words) as exc:
        OpenVinoRunner(bundles["fp32"], cache_dir="", unmeasured_mode=True, **kwargs)
    assert "\n" not in str(exc.value)


def test_a_graph_that_is_not_a_ddad_edge_graph_is_refused(tmp_path):
    """A float input where the bundle promises uint8 frames: refused when the model is read."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("frames", TensorProto.FLOAT, ["N", 32, 32, 3])
    y = helper.make_tensor_value_info("anomaly_map", TensorProto.FLOAT, ["N", 32, 32, 3])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["frames"], ["anomaly_map"])], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    with pytest.raises(DdadError, match=r"belongs to another bundle or model; export the bundle again"):
        OpenVinoRunner(SimpleNamespace(model_path=path, image_size=32, manifest={}), cache_dir="",
                       unmeasured_mode=True)


def test_the_compiled_model_is_cached_for_the_next_start(bundles, tmp_path):
    cache = tmp_path / "cache"
    with OpenVinoRunner(bundles["int8"], cache_dir=cache, unmeasured_mode=True) as first:
        a = first.infer(_frames(2))
    files = sorted(p.name for p in cache.iterdir())
    assert files, "no compiled model was cached"
    with OpenVinoRunner(bundles["int8"], cache_dir=cache, unmeasured_mode=True) as second:  # loads the cached blob
        b = second.infer(_frames(2))
    assert sorted(p.name for p in cache.iterdir()) == files  # the same entry was used, not a second one
    np.testing.assert_array_equal(a.scores, b.scores)


def test_selftest_passes_through_openvino(bundles, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    report = run_selftest(bundles["int8"].path, "openvino", repeats=1)
    assert report.passed and report.backend == "openvino"


def test_bench_names_the_openvino_mode(capsys, bundles, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    code = main(["bench", "--bundle", str(bundles["int8"].path), "--backend", "openvino", "--warmup", "1",
                 "--iters", "3", "--frame-size", "64x48", "--threads", "1", "--no-progress",
                 "--json", str(tmp_path / "b.json")])
    assert code == 2 and "does not offer openvino-f32" in capsys.readouterr().err  # no fidelity, no timing
    code = main(["bench", "--bundle", str(bundles["int8"].path), "--backend", "openvino", "--warmup", "1",
                 "--iters", "3", "--frame-size", "64x48", "--threads", "1", "--no-progress", "--unmeasured-mode",
                 "--json", str(tmp_path / "b.json")])
    assert code == 0, capsys.readouterr().err
    row = json.loads((tmp_path / "b.json").read_text())[0]
    assert row["variant"]["backend"] == "openvino-f32" and row["variant"]["device"] == "cpu"
    assert row["variant"]["name"].startswith("openvino-f32 int8")


def test_the_inspection_loop_runs_on_openvino(bundles, tmp_path, capsys, monkeypatch):
    """The red toy bundle through `run --backend openvino`: the same verdicts ONNX Runtime gives."""
    from tests.bundle_factory import make_red_bundle

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    red = make_red_bundle(tmp_path / "red", image_size=32, threshold=0.1)
    write_video(tmp_path / "v.avi", [part_image(i, is_red(i)) for i in range(12)])
    verdicts = {}
    for backend in ("onnxruntime", "openvino"):
        out = tmp_path / backend
        code = main(["run", "--video", str(tmp_path / "v.avi"), "--bundle", str(red.path), "--backend", backend,
                     "--gpio", "none", "--out", str(out), "--unmeasured-mode"])
        assert code == 0, capsys.readouterr().err
        records = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
        verdicts[backend] = [r["verdict"] for r in records if "verdict" in r]
    assert verdicts["openvino"] == verdicts["onnxruntime"] == ["NG" if is_red(i) else "OK" for i in range(12)]


def test_a_mode_the_export_did_not_measure_is_refused_in_one_line(bundles):
    with pytest.raises(DdadError, match=r"does not offer openvino-f32: the export did not measure it.*"
                                        r"--unmeasured-mode") as exc:
        open_runner(bundles["fp32"].path, "openvino")
    assert "\n" not in str(exc.value)
    refused = SimpleNamespace(**vars(bundles["fp32"]))
    refused.manifest = {"execution_modes": {"openvino-f32": {"status": "refused",
                                                             "reason": "map error 0.2 of max > budget 0.05"}}}
    with pytest.raises(DdadError, match=r"found it refused: map error 0.2 of max > budget 0.05"):
        OpenVinoRunner(refused, cache_dir="")


def test_the_export_measures_each_mode_and_refuses_one_beyond_its_budget(bundles):
    """measure_modes on the toy FP32 file against its own FP32 probe outputs (ONNX Runtime's): OpenVINO's f32
    mode is within the FP32 recipe's 1e-4 and offered; against references 0.1 % off (as far as a mode 0.1 %
    off would be from the true ones) it is refused, with the numbers; bf16 is measured where the CPU has it and
    unavailable, with the reason, where it has not."""
    from ddad_edge.deploy.execution_modes import measure_modes
    from ddad_edge.deploy.recipes import recipe_for

    bundle = bundles["fp32"]
    with np.load(bundle.file("probe.npz")) as probe:
        frames, maps, scores = probe["frames"], probe["maps"], probe["scores"]
    labels = np.r_[np.zeros(len(frames) // 2, int), np.ones(len(frames) - len(frames) // 2, int)]
    recipe = recipe_for(bundle.precision)
    lines: list[str] = []
    modes = measure_modes(bundle.model_path, 32, frames, labels, maps, scores, recipe, lines.append)
    f32 = modes["openvino-f32"]
    assert f32["status"] == "offered" and f32["fidelity"]["map_max_rel"] <= 1e-4
    assert f32["fidelity"]["compiled_precision"] == "f32" and f32["budget"]["map_rel"] == recipe.tolerance.map_rel
    has_bf16 = "BF16" in device_capabilities(openvino().Core(), "CPU")
    bf16 = modes["openvino-bf16"]
    if has_bf16:
        assert bf16["status"] in ("offered", "refused") and bf16["fidelity"]["compiled_precision"] == "bf16"
    else:
        assert bf16["status"] == "unavailable" and "no BF16 support" in bf16["reason"] and bf16["fidelity"] is None
    lines.clear()
    modes = measure_modes(bundle.model_path, 32, frames, labels, maps * 1.001, scores, recipe, lines.append, ("f32",))
    assert modes["openvino-f32"]["status"] == "refused"
    assert modes["openvino-f32"]["reason"].startswith("map error 0.000999") and "> budget 0.0001" in lines[0]
    assert lines == [f"openvino-f32: refused, beyond its budget: {modes['openvino-f32']['reason']}; "
                     "the bundle will not offer it"]


def test_each_measured_mode_is_run_on_the_test_split_too(bundles):
    """With the run's labelled test split, measure_modes runs it in each mode that compiles: the mode's own
    scores per image (what the matrix pairs with the teacher's), its AUROC with an interval, its error
    against the FP32 references; the benchmark reads them back per mode. f32 scores the file as ONNX Runtime
    does, so its AUROC is the file's."""
    from ddad_edge.bench.report import image_auroc
    from ddad_edge.bench.run import read_fidelity
    from ddad_edge.deploy.execution_modes import measure_modes
    from ddad_edge.deploy.recipes import recipe_for
    from ddad_edge.metrics import image_auroc as auroc_of

    bundle = bundles["fp32"]
    with np.load(bundle.file("probe.npz")) as probe:
        frames, maps, scores = probe["frames"], probe["maps"], probe["scores"]
    labels = np.r_[np.zeros(len(frames) // 2, int), np.ones(len(frames) - len(frames) // 2, int)]
    test_frames = _frames(8)
    with open_runner(bundle.path, "onnxruntime") as ort_runner:
        ref = ort_runner.infer(test_frames)
    test_labels = np.array([0, 1] * 4)
    modes = measure_modes(bundle.model_path, 32, frames, labels, maps, scores, recipe_for(bundle.precision),
                          lambda _: None, ("f32",), test=(test_frames, test_labels, ref.maps, ref.scores))
    test = modes["openvino-f32"]["test_split"]
    assert test["labels"] == [0, 1] * 4 and test["frames"] == 8 and test["defective"] == 4
    np.testing.assert_allclose(test["scores"], ref.scores, rtol=1e-4)
    assert test["auroc"] == pytest.approx(auroc_of(test_labels, ref.scores))
    assert test["map_max_rel"] <= 1e-4 and len(test["auroc_interval"]) == 2

    # the benchmark's view of the mode: its test-split AUROC, not the file's painted-defect one
    report = bundle.path / "report.json"
    saved = report.read_text() if report.is_file() else None
    try:
        report.write_text(json.dumps({"fidelity": {"auroc": 0.123}, "execution_modes": modes}, default=float))
        numbers, source = read_fidelity(bundle, "openvino-f32")
        assert source == str(report) and image_auroc(numbers) == pytest.approx(test["auroc"])
        assert image_auroc(read_fidelity(bundle)[0]) == 0.123
        assert read_fidelity(bundle, "openvino-bf16") == (None, str(report))  # not measured: no numbers
    finally:
        report.write_text(saved) if saved is not None else report.unlink()
