"""Export of the one per-frame graph and the bundle it goes into, on the session's tiny run.

The graph: opset 17, uint8 frames in, K steps unrolled (no control flow), dynamic batch; the bundle:
hashed files, the manifest keys the device half and the torch reference read, thresholds that follow
their rule, calibration frames from training images only, and the user's exact command.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml

from ddad_edge.bundle import Precision, read_bundle
from ddad_edge.cli import main
from ddad_edge.data.folders import load_images
from ddad_edge.deploy.fidelity import run_onnx
from ddad_edge.deploy.onnx_export import check_graph
from ddad_edge.deploy.tensorrt_profile import profile_tensorrt_versions
from ddad_edge.model.checkpoint import open_run
from ddad_edge.runtime.backends import open_runner
from tests.deploy.tiny_bundles import STEPS, prepared, tiny_bundle, tiny_project


@pytest.fixture(scope="module")
def project(tiny_run, tmp_path_factory):
    return tiny_project(tiny_run, tmp_path_factory)


@pytest.fixture(scope="module")
def prep(project):
    return prepared(project)


def test_graph_is_one_opset17_graph_with_the_steps_unrolled(prep):
    model = onnx.load(str(prep.fp32))
    onnx.checker.check_model(model, full_check=True)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 17
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"Loop", "If", "Scan"}
    assert "InstanceNormalization" in ops and "GroupNormalization" not in ops  # TensorRT 8.6 reads it
    summary = check_graph(prep.fp32, 32, STEPS)
    assert summary.unet_calls == STEPS == len(prep.pipeline.timesteps)
    # the UNet's weights are stored once and read once per step
    stem = [n for n in model.graph.node if "pipeline.unet.stem.weight" in n.input]
    assert len(stem) == STEPS
    (inp,) = model.graph.input
    assert inp.name == "frames" and inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["N", 32, 32, 3]
    assert [o.name for o in model.graph.output] == ["anomaly_map", "score"]


def test_graph_takes_any_batch_and_a_frame_scores_the_same_alone(prep):
    frames = prep.fid.frames[:3]
    maps, scores = run_onnx(prep.fp32, frames, batch=3)
    assert maps.shape == (3, 1, 32, 32) and scores.shape == (3,)
    for i in range(3):
        m1, s1 = run_onnx(prep.fp32, frames[i:i + 1], batch=1)
        # not bit-equal: ONNX Runtime picks convolution kernels per batch size
        assert np.abs(m1[0] - maps[i]).max() <= 1e-4 * np.abs(maps[i]).max()
        np.testing.assert_allclose(s1[0], scores[i], rtol=1e-4)
    np.testing.assert_allclose(scores, prep.ref.scores[:3], rtol=1e-4)


def test_a_groupnorm_with_one_channel_per_group_is_one_instance_norm_with_the_same_outputs(tmp_path):
    """DDAD-S's full-resolution layers have 32 channels in 32 groups: those GroupNorms are written as one
    InstanceNormalization with their own scale and bias (no Reshape, Mul, Add around it), the others as
    before, and the file computes what the torch pipeline computes. Random weights, pixel-only scoring."""
    import dataclasses

    import torch

    from ddad_edge.bench.reference import fill_zero_parameters, speed_pipeline
    from ddad_edge.config_presets import model_preset
    from ddad_edge.deploy.onnx_export import export_onnx
    from ddad_edge.model.pipeline import FrameGraph
    from ddad_edge.model.unet import UNet

    cfg = dataclasses.replace(model_preset("tiny", 32), base_channels=8, norm_groups=8, channel_mults=(1, 2))
    torch.manual_seed(0)
    unet = fill_zero_parameters(UNet(cfg), 0).eval()
    norms = [m for m in unet.modules() if isinstance(m, torch.nn.GroupNorm)]
    with torch.no_grad():
        for m in norms:  # not the default 1 and 0, so a lost scale or shift shows in the outputs
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.5, 0.5)
    per_channel = [m for m in norms if m.num_groups == m.num_channels]
    assert per_channel and len(per_channel) < len(norms)
    pipeline = speed_pipeline(unet, [100, 50], 150, 0.0, None)
    path = export_onnx(pipeline, tmp_path / "model.onnx")
    assert [m for m in unet.modules() if isinstance(m, torch.nn.GroupNorm)] == norms  # put back after export
    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    instance = [n for n in model.graph.node if n.op_type == "InstanceNormalization"]
    direct = [n for n in instance if producers.get(n.input[0]) is None or producers[n.input[0]].op_type != "Reshape"]
    calls = 2  # the UNet is unrolled once per step
    assert len(direct) == calls * len(per_channel) and len(instance) == calls * len(norms)
    for n in direct:  # the GroupNorm's own per-channel scale, not the ones of the reshaped form
        scale = onnx.numpy_helper.to_array(inits[n.input[1]])
        assert scale.shape == (8,) and not np.allclose(scale, 1.0)
    frames = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    maps, scores = run_onnx(path, frames)
    with torch.no_grad():
        ref_maps, ref_scores = FrameGraph(pipeline).eval()(torch.from_numpy(frames))
    np.testing.assert_allclose(maps, ref_maps.numpy(), rtol=1e-4, atol=1e-5 * float(ref_maps.abs().max()))
    np.testing.assert_allclose(scores, ref_scores.numpy(), rtol=1e-4)


def test_check_graph_refuses_a_graph_with_fewer_steps_than_the_sampler(prep):
    from ddad_edge.errors import DdadError

    with pytest.raises(DdadError, match="evaluates the UNet 2 times"):
        check_graph(prep.fp32, 32, STEPS + 1)
    with pytest.raises(DdadError, match="input"):
        check_graph(prep.fp32, 64, STEPS)


def test_fp32_bundle_manifest_report_and_files(project):
    bundle = tiny_bundle(project, "fp32")
    m = bundle.manifest
    assert bundle.precision is Precision.FP32
    assert set(m["files"]) >= {"model.onnx", "probe.npz", "report.json", "calibration.npz"}
    assert m["graph"]["steps"] == STEPS and m["graph"]["scoring"] == "fused" and m["graph"]["opset"] == 17
    run = open_run(Path(m["source"]["run"]))
    assert m["source"]["data"] == run.cfg.data.root and m["source"]["category"] == "widget"
    assert m["probe"] == {"file": "probe.npz", "frames": 4}
    assert m["tolerance"]["score_rel"] == pytest.approx(1e-4) and m["tolerance"]["map_abs"] > 0
    th = m["thresholds"]
    assert th["image"] > 0 and th["pixel"] > 0 and th["image_f1"] is not None  # the synth data has a test split
    stats = m["nominal_scores"]
    assert stats["n"] == len(run.val_files) and stats["min"] <= stats["median"] <= stats["max"]
    report = json.loads(bundle.file("report.json").read_text())
    fid = report["fidelity"]
    assert fid["reference"] == "FP32 torch pipeline"
    assert fid["map_max_rel"] < 1e-4 and fid["score_max_rel"] < 1e-4
    assert fid["score_rank_correlation"] > 0.999 and fid["auroc_drop"] == pytest.approx(0.0, abs=1e-9)
    assert report["test_split"]["frames"] == 16 and report["test_split"]["defective"] == 8
    assert report["latency"]["this_file"]["p50_ms"] > 0 and report["latency"]["this_file"]["runs"] == 3
    # OpenVINO (a [dev] dependency) ran the file in its f32 mode on the same frames: measured and offered
    f32 = report["execution_modes"]["openvino-f32"]
    assert f32["status"] == "offered" and f32["fidelity"]["map_max_rel"] < 1e-4
    assert f32["fidelity"]["auroc_drop"] == pytest.approx(0.0, abs=1e-9)
    assert m["execution_modes"]["openvino-f32"]["status"] == "offered"
    assert m["execution_modes"]["openvino-bf16"]["status"] in ("offered", "refused", "unavailable")
    with np.load(bundle.file("probe.npz")) as probe:
        assert probe["frames"].dtype == np.uint8 and probe["frames"].shape == (4, 32, 32, 3)
        assert probe["maps"].shape == (4, 1, 32, 32) and probe["scores"].shape == (4,)


def test_thresholds_follow_their_rule_on_the_bundles_own_scores(project):
    bundle = tiny_bundle(project, "int8")
    run = open_run(Path(bundle.manifest["source"]["run"]))
    val = load_images([Path(p) for p in run.val_files], 32)
    with open_runner(bundle, "onnxruntime") as runner:
        out = runner.infer(val)
    rule = bundle.manifest["threshold_rule"]
    expected = float(np.quantile(out.scores.astype(np.float64), rule["quantile"])) * (1 + rule["margin"])
    assert bundle.thresholds["image"] == pytest.approx(expected, rel=1e-6)
    pixel = float(np.quantile(out.maps.astype(np.float64).ravel(), rule["pixel_quantile"])) * (1 + rule["margin"])
    assert bundle.thresholds["pixel"] == pytest.approx(pixel, rel=1e-6)
    assert np.mean(out.scores >= bundle.thresholds["image"]) <= 1 - rule["quantile"] + 1e-9


def test_calibration_frames_are_training_images_never_validation_or_test(project):
    bundle = tiny_bundle(project, "fp32")
    run = open_run(Path(bundle.manifest["source"]["run"]))
    with np.load(bundle.file("calibration.npz")) as data:
        calib = data["frames"]
    train = load_images([Path(p) for p in run.train_files], 32)
    val = load_images([Path(p) for p in run.val_files], 32)
    key = lambda a: a.tobytes()  # noqa: E731
    train_keys, val_keys = {key(x) for x in train}, {key(x) for x in val}
    assert len(calib) == min(32, len(train))
    assert all(key(x) in train_keys and key(x) not in val_keys for x in calib)


def test_the_exact_command_in_a_project_folder_makes_an_fp16_bundle(project):
    bundle = tiny_bundle(project, "fp16")  # `ddad-edge export --precision fp16` run in `project`
    assert bundle.path == project / "bundles" / f"widget-fp16-k{STEPS}"
    assert bundle.precision is Precision.FP16
    assert bundle.manifest["graph"]["steps"] == STEPS and not bundle.manifest["graph"]["naive"]
    assert bundle.manifest["recipe"]["name"] == "fp16"
    rules = bundle.manifest["tensorrt_rules"]  # one verdict per TensorRT version the build profiles name
    assert list(rules) == list(profile_tensorrt_versions()) and all(v["ok"] for v in rules.values()), rules


def test_evaluate_through_the_bundle_matches_the_export_report(project, tmp_path, capsys):
    bundle = tiny_bundle(project, "fp32")
    out = tmp_path / "ev"
    code = main(["evaluate", "--bundle", str(bundle.path), "--backend", "onnxruntime", "--out", str(out),
                 "--json", str(tmp_path / "m.json")])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((tmp_path / "m.json").read_text())
    report = json.loads(bundle.file("report.json").read_text())
    assert metrics["precision"] == "fp32" and metrics["n_images"] == 16
    assert metrics["image_auroc"] == pytest.approx(report["test_split"]["auroc"], abs=1e-9)
    assert metrics["f1_threshold"] == pytest.approx(bundle.thresholds["image_f1"], rel=1e-5)


def test_export_refuses_a_taken_folder_and_a_run_without_validation_images(project, tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x").write_text("x")
    code = main(["export", "--run", str(project / "runs" / "widget"), "--precision", "fp32", "--out", str(taken)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "--overwrite" in err and len(err.splitlines()) == 1
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.yaml").write_text((project / "runs" / "widget" / "config.yaml").read_text())
    (bare / "split.yaml").write_text(yaml.safe_dump({"train": [], "val": []}))
    code = main(["export", "--run", str(bare), "--precision", "fp32", "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "validation images" in err


def test_a_wrong_recipe_is_one_line(project, tmp_path, capsys):
    code = main(["export", "--run", str(project / "runs" / "widget"), "--precision", "fp16", "--recipe", "int8",
                 "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "is for int8, not fp16" in err and len(err.splitlines()) == 1


def test_a_refused_export_leaves_no_half_bundle_and_overwrite_keeps_the_old_one(project, tmp_path, capsys):
    """INT8 against a budget no file meets (map error 1e-9 of max, no fallback round): the export refuses
    for real. The bundle it was to replace is still there, whole; a new folder is not left half made."""
    import shutil

    from tests.deploy.tiny_bundles import INT8_TEST_RECIPE

    strict = yaml.safe_load(INT8_TEST_RECIPE)
    strict["tolerance"] = {"map_rel": 1e-9, "score_rel": 1e-9}
    strict["int8"].update(calibration_images=4, fallback_rounds=0)
    (tmp_path / "strict.yaml").write_text(yaml.safe_dump(strict))
    old = tmp_path / "bundle"
    shutil.copytree(tiny_bundle(project, "fp32").path, old)
    before = {p.name: p.read_bytes() for p in old.iterdir()}
    for out, overwrite in ((old, ["--overwrite"]), (tmp_path / "new", [])):
        code = main(["export", "--run", str(project / "runs" / "widget"), "--precision", "int8", "--recipe",
                     str(tmp_path / "strict.yaml"), "--target", "onnx", "--out", str(out), *overwrite])
        err = capsys.readouterr().err.strip()
        assert code == 2 and "missed the recipe's budget" in err and len(err.splitlines()) == 1
    assert {p.name: p.read_bytes() for p in old.iterdir()} == before and read_bundle(old).precision is Precision.FP32
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "strict.yaml"]  # no new/, no .partial


def test_bundle_reads_back_verified_and_a_changed_model_is_refused(project, tmp_path):
    import shutil

    from ddad_edge.errors import DdadError

    src = tiny_bundle(project, "fp32").path
    copy = tmp_path / "copy"
    shutil.copytree(src, copy)
    assert read_bundle(copy).precision is Precision.FP32
    data = bytearray((copy / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(DdadError, match="sha256"):
        read_bundle(copy)


def test_no_nan_anywhere_in_the_reports(project):
    for precision in ("fp32", "fp16", "int8"):
        report = json.loads(tiny_bundle(project, precision).file("report.json").read_text())

        def walk(x):
            if isinstance(x, float):
                assert math.isfinite(x), precision
            elif isinstance(x, dict):
                for v in x.values():
                    walk(v)
            elif isinstance(x, list):
                for v in x:
                    walk(v)

        walk(report)


def test_bundle_table_lists_each_bundle_with_its_fidelity_and_latency(project, capsys):
    bundles = [tiny_bundle(project, p) for p in ("fp32", "fp16", "int8")]
    code = main(["bundle-table", *(str(b.path) for b in bundles)])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("| precision |") and len(lines) == 2 + 3
    for line, bundle in zip(lines[2:], bundles):
        report = json.loads(bundle.file("report.json").read_text())
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] == bundle.precision.value and cells[2] == str(STEPS)
        assert cells[3] == f"{report['test_split']['auroc']:.4f}"
        assert cells[7] == f"{report['latency']['this_file']['p50_ms']:.1f}"


def test_a_naive_sampler_from_a_start_level_is_recorded_and_rebuilt(project, tmp_path, capsys):
    """`export --steps 1 --naive --start-level 20`: the manifest names the grid it runs (20 → 20), and the torch
    backend rebuilds that sampler from the manifest, not the run's own T' (pixel scoring, FP32)."""
    from ddad_edge.model.build import pipeline_of_bundle

    out = tmp_path / "from20"
    code = main(["export", "--run", str(project / "runs" / "widget"), "--steps", "1", "--naive", "--start-level",
                 "20", "--scoring", "pixel", "--precision", "fp32", "--target", "onnx", "--no-test-split",
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    graph = read_bundle(out).manifest["graph"]
    assert (graph["steps"], graph["timesteps"], graph["t_prime"], graph["naive"], graph["start_level"]) == (
        1, [20], 20, True, 20)
    rebuilt = pipeline_of_bundle(read_bundle(out))
    assert (rebuilt.timesteps, rebuilt.t_prime) == ([20], 20)
    frames = np.load(out / "probe.npz")["frames"]
    with open_runner(read_bundle(out), "torch") as torch_runner, open_runner(read_bundle(out), "onnxruntime") as ort:
        ours, theirs = torch_runner.infer(frames), ort.infer(frames)
    np.testing.assert_allclose(ours.scores, theirs.scores, rtol=1e-4)
