"""The conveyor video: written with OpenCV, read back with OpenCV, ground truth that matches the pixels."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ddad_edge.data.video import ConveyorTruth, make_conveyor_video, write_frames_folder
from ddad_edge.errors import DdadError


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> tuple[Path, ConveyorTruth]:
    path = tmp_path_factory.mktemp("conveyor") / "belt.avi"
    truth = make_conveyor_video(path, n_parts=4, defect_rate=0.5, size=(160, 96), fps=10, part_size=48,
                                pitch=80, speed=12, seed=3)
    return path, truth


def _read_all(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened()
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def test_video_reads_back_with_the_frame_count_and_size(video):
    path, truth = video
    frames = _read_all(path)
    assert len(frames) == len(truth.frames)
    assert len(frames) == int(np.ceil((160 + 48 + 3 * 80) / 12)) + 1
    assert frames[0].shape == (96, 160, 3)
    cap = cv2.VideoCapture(str(path))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)
    cap.release()


def test_ground_truth_parts_and_json(video):
    path, truth = video
    assert [p.index for p in truth.parts] == [0, 1, 2, 3]
    assert sum(p.defective for p in truth.parts) == 2
    assert all((p.kind == "good") != p.defective for p in truth.parts)
    assert ConveyorTruth.from_json(path.with_suffix(".json").read_text()) == truth
    # Every part is seen whole in some frame, and its boxes move right at the belt speed.
    for p in truth.parts:
        boxes = [v.box for f in truth.frames for v in f if v.index == p.index and v.complete]
        assert boxes and all(b[2:] == (48, 48) for b in boxes)
        assert all(b1[0] - b0[0] == 12 for b0, b1 in zip(boxes, boxes[1:]))


def test_boxes_are_where_the_parts_are(video):
    path, truth = video
    frames = _read_all(path)
    empty_frame = next(i for i, f in enumerate(truth.frames) if not f)  # the first frame: belt only
    belt = frames[empty_frame].astype(np.float32)
    for i, in_view in enumerate(truth.frames):
        changed = np.abs(frames[i].astype(np.float32) - belt).max(axis=2) > 40  # the bright metal
        inside = np.zeros(changed.shape, bool)
        for v in in_view:
            x, y, w, h = v.box
            inside[y:y + h, x:x + w] = True
            if v.complete:
                assert changed[y:y + h, x:x + w].mean() > 0.25  # a disc covers ~45 % of its tile
        assert not (changed & ~inside).any()


def test_frames_folder(video, tmp_path: Path):
    path, truth = video
    paths = write_frames_folder(path, tmp_path / "frames")
    assert len(paths) == len(truth.frames) and paths[0].name == "000000.png"
    assert cv2.imread(str(paths[5])).shape == (96, 160, 3)


def test_bad_arguments_are_one_line_errors(tmp_path: Path):
    for call in (
        lambda: make_conveyor_video(tmp_path / "a.mp4"),
        lambda: make_conveyor_video(tmp_path / "b.avi", n_parts=0),
        lambda: make_conveyor_video(tmp_path / "c.avi", size=(40, 40), part_size=64),
        lambda: make_conveyor_video(tmp_path / "d.avi", pitch=10),
        lambda: write_frames_folder(tmp_path / "absent.avi", tmp_path / "f"),
    ):
        with pytest.raises(DdadError) as info:
            call()
        assert "\n" not in str(info.value)
