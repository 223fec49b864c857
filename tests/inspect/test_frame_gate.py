"""The frame-quality gate (issue 25, items 1 and 2): frames a station cannot judge are FAULTs, nominal never.

The red-score bundle gets a gate calibrated as export calibrates one (deploy/frame_gate_calibration.py) on
the synthetic nominal parts and their maps. Then real frames go through `ddad-edge run`: nominal parts
and a nominal conveyor video (empty belt in the window included) give no FAULT; black, white, blurred and
over-exposed frames are each a FAULT naming why.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from ddad_edge.bundle import write_manifest
from ddad_edge.cli import main
from ddad_edge.data.image_files import list_image_files, read_image
from ddad_edge.data.synth import make_synthetic_dataset
from ddad_edge.data.video import make_conveyor_video
from ddad_edge.deploy.frame_gate_calibration import calibrate_frame_gate
from ddad_edge.inspect.frame_gate import FrameGate
from ddad_edge.runtime.backends import open_runner
from tests.bundle_factory import make_red_bundle
from tests.inspect.checks import frame_records
from tests.inspect.media import write_images

SIZE = 64


@pytest.fixture(scope="module")
def nominal(tmp_path_factory):
    root = make_synthetic_dataset(tmp_path_factory.mktemp("data"), size=SIZE, n_train=24, n_test_good=8,
                                  n_test_defect=8)
    train = [read_image(p) for p in list_image_files(root / "train" / "good")]
    held_out = [read_image(p) for p in list_image_files(root / "test" / "good")]
    defective = [read_image(p) for p in list_image_files(root / "test", recursive=True) if "/good/" not in p.as_posix()]
    return np.stack(train), np.stack(held_out), np.stack(defective)


@pytest.fixture(scope="module")
def gated(nominal, tmp_path_factory):
    bundle = make_red_bundle(tmp_path_factory.mktemp("gated"), image_size=SIZE, threshold=0.9)
    with open_runner(bundle, "onnxruntime", threads=1) as runner:
        maps = runner.infer(nominal[0]).maps
    return write_manifest(bundle.path, {**bundle.manifest, "frame_gate": calibrate_frame_gate(nominal[0], maps)})


def run(bundle, tmp_path, *source):
    out = tmp_path / "out"
    code = main(["run", "--bundle", str(bundle.path), *source, "--backend", "onnxruntime", "--out", str(out)])
    assert code == 0
    return frame_records(out / "events.jsonl"), json.loads((out / "events.jsonl").read_text().splitlines()[0])


def damaged(images: np.ndarray) -> dict[str, np.ndarray]:
    one = images[0]
    return {"black": np.zeros_like(one), "white": np.full_like(one, 255),
            "black with sensor noise": np.random.default_rng(0).integers(0, 6, one.shape, dtype=np.uint8),
            "blurred": cv2.GaussianBlur(one, (0, 0), 1.5),
            "over-exposed": np.clip(one.astype(np.int16) * 2, 0, 255).astype(np.uint8)}


def test_nominal_and_defective_parts_pass_the_gate_and_bad_frames_do_not(gated, nominal):
    gate = FrameGate.from_manifest(gated.manifest)
    for image in np.concatenate(nominal):  # train, held-out nominal, and defective parts: all judged
        assert gate.check_pixels(image) == ""
    reasons = {name: gate.check_pixels(image) for name, image in damaged(nominal[1]).items()}
    assert all(reasons.values()), reasons
    assert "brightness" in reasons["white"] or "shows nothing" in reasons["white"]
    assert "blurred" in reasons["blurred"] and "exposed" in reasons["over-exposed"]


def test_the_loop_faults_black_white_blurred_and_over_exposed_frames_with_their_reason(gated, nominal, tmp_path):
    bad = damaged(nominal[1])
    images = list(nominal[1][:4]) + list(bad.values())
    write_images(tmp_path / "frames", images)
    records, start = run(gated, tmp_path, "--images", str(tmp_path / "frames"))
    assert start["frame_gate"] is True
    assert [r["verdict"] for r in records[:4]] == ["OK"] * 4
    for record, name in zip(records[4:], bad):
        assert record["verdict"] == "FAULT" and record["reason"].startswith("frame quality"), (name, record)


def test_a_nominal_conveyor_video_never_faults(gated, tmp_path):
    # a triggered camera as in the demo: one part per frame in the window, the empty belt before and after
    video = tmp_path / "line.avi"
    truth = make_conveyor_video(video, n_parts=10, defect_rate=0.0, size=(320, 96), fps=10, part_size=SIZE,
                                pitch=160, speed=160, seed=3)
    box = next(p.box for frame in truth.frames for p in frame if p.complete)
    records, _ = run(gated, tmp_path, "--video", str(video), "--roi", ",".join(map(str, box)))
    assert len(records) == len(truth.frames)
    assert any(not frame for frame in truth.frames), "the video has empty-belt frames, as the demo's has"
    assert [r for r in records if r["verdict"] == "FAULT"] == []


def test_a_bundle_made_before_the_gate_runs_without_it_and_says_so_once(nominal, tmp_path, capsys):
    bundle = make_red_bundle(tmp_path / "old", image_size=SIZE, threshold=0.9)
    write_images(tmp_path / "frames", [np.zeros_like(nominal[1][0])])
    records, start = run(bundle, tmp_path, "--images", str(tmp_path / "frames"))
    err = capsys.readouterr().err
    assert err.count("no frame-quality gate") == 1 and start["frame_gate"] is False
    assert records[0]["verdict"] == "OK"  # what the issue found: a black frame passes without the gate
