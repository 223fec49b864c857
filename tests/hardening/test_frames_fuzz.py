"""Frames that cross into a runner or the loop: wrong shape, dtype, channels, empty, NaN, odd strides.

`check_frames` and the real ONNX Runtime runner accept exactly (N, S, S, 3) uint8 with N >= 1, whatever
the memory layout, and refuse everything else with one DdadError line. The loop turns any frame it
cannot inspect into a FAULT with a reason and goes on: every sequence number is recorded exactly once.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ddad_edge.errors import DdadError
from ddad_edge.inspect.frame import Frame, Grab
from ddad_edge.inspect.loop import LoopConfig, run_loop
from ddad_edge.inspect.sinks import EventLog, EventLogSink
from ddad_edge.runtime.backends import open_runner
from ddad_edge.runtime.base import check_frames
from tests.bundle_factory import make_toy_bundle
from tests.cli_helpers import assert_one_line
from tests.hardening.checks import fuzz
from tests.inspect.checks import assert_each_seq_once

SIZE = 16
DTYPES = [np.uint8, np.int8, np.uint16, np.int32, np.int64, np.float16, np.float32, np.float64, np.bool_,
          np.complex64]

shapes = (st.tuples(st.integers(0, 3), st.sampled_from([SIZE, 15, 0]), st.sampled_from([SIZE, 17]),
                    st.sampled_from([3, 1, 4]))
          | st.tuples(st.sampled_from([SIZE, 8]), st.sampled_from([SIZE, 8]), st.sampled_from([3, 2]))
          | hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4))
valid = hnp.arrays(np.uint8, st.sampled_from([(1, SIZE, SIZE, 3), (3, SIZE, SIZE, 3), (SIZE, SIZE, 3)]))
arrays = valid | st.builds(lambda dtype, shape: (dtype, shape), st.sampled_from(DTYPES), shapes).flatmap(
    lambda ds: hnp.arrays(ds[0], ds[1], elements=None if ds[0] is not np.float32 else st.floats(
        allow_nan=True, allow_infinity=True, width=32)))


def is_valid(frames: np.ndarray) -> bool:
    shape = frames.shape if frames.ndim != 3 else (1, *frames.shape)
    return (frames.dtype == np.uint8 and len(shape) == 4 and shape[0] >= 1 and shape[1:] == (SIZE, SIZE, 3))


@fuzz(150)
@given(frames=arrays)
def test_check_frames_accepts_exactly_the_contract(frames):
    try:
        out = check_frames(frames, SIZE)
    except DdadError as exc:
        assert not is_valid(frames), f"refused a valid batch {frames.shape} {frames.dtype}: {exc}"
        assert_one_line(exc)
        event("refused")
        return
    event("accepted")
    assert is_valid(frames) and out.flags.c_contiguous and out.dtype == np.uint8
    assert np.array_equal(out.reshape(frames.shape), frames)


@pytest.mark.parametrize("thing", [None, [[1, 2, 3]], "frames", b"\x00" * 768, 3.5, {"frames": 1}])
def test_check_frames_refuses_what_is_no_array(thing):
    with pytest.raises(DdadError) as info:
        check_frames(thing, SIZE)
    assert_one_line(info.value, "numpy array")


@pytest.fixture(scope="module")
def toy_runner(tmp_path_factory):
    bundle = make_toy_bundle(tmp_path_factory.mktemp("toy") / "bundle", image_size=SIZE)
    with open_runner(bundle, "onnxruntime", threads=1) as runner:
        yield runner


@fuzz(60)
@given(frames=arrays)
def test_the_onnx_runner_on_any_array(toy_runner, frames):
    try:
        out = toy_runner.infer(frames)
    except DdadError as exc:
        assert not is_valid(frames)
        assert_one_line(exc)
        return
    n = 1 if frames.ndim == 3 else frames.shape[0]
    assert out.maps.shape == (n, 1, SIZE, SIZE) and out.scores.shape == (n,)
    assert np.isfinite(out.maps).all() and np.isfinite(out.scores).all()


@fuzz(25)
@given(data=st.data())
def test_memory_layout_does_not_change_the_answer(toy_runner, data):
    """Strided, reversed and Fortran-ordered views of a batch score exactly like its contiguous copy."""
    n = data.draw(st.integers(1, 3))
    base = data.draw(hnp.arrays(np.uint8, (n, SIZE * 2, SIZE * 2, 6)))
    view = data.draw(st.sampled_from([
        lambda b: b[:, ::2, ::2, :3], lambda b: b[:, :SIZE, SIZE:, 3:], lambda b: b[:, ::-2, ::-2, 2::-1],
        lambda b: np.asfortranarray(b[:, :SIZE, :SIZE, :3]),
    ]))(base)
    out, ref = toy_runner.infer(view), toy_runner.infer(np.ascontiguousarray(view))
    assert np.array_equal(out.maps, ref.maps) and np.array_equal(out.scores, ref.scores)


class ArraySource:
    """A frame source of in-memory images, as a camera driver or a GStreamer pipeline might hand them over
    (any shape or dtype); used to put odd frames into the real loop."""

    live = False
    name = "arrays"

    def __init__(self, images: list) -> None:
        self.images, self.next = images, 0

    def grab(self, max_frames: int, timeout_s: float = 0.0) -> Grab:
        grab = Grab()
        while self.next < len(self.images) and len(grab.frames) < max_frames:
            grab.frames.append(Frame(self.next, 0.0, 0.0, self.images[self.next], name=f"a{self.next}"))
            self.next += 1
        grab.ended = self.next >= len(self.images)
        return grab

    def close(self):
        return []


odd_images = (arrays | hnp.arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40), st.just(3)))
              | st.sampled_from([None, "not an image", np.zeros((0, 0, 3), np.uint8), np.zeros((1, 1, 3), np.uint8)]))


@fuzz(20)
@given(images=st.lists(odd_images, min_size=1, max_size=8), batch=st.integers(1, 4))
def test_the_loop_survives_any_frame(tmp_path_factory, runner, images, batch):
    """Every odd frame becomes a FAULT with a one-line reason; good frames among them are still inspected."""
    events = tmp_path_factory.mktemp("loop") / "events.jsonl"
    summary = run_loop(runner, ArraySource(images), LoopConfig(threshold=0.5, batch=batch), None,
                       [EventLogSink(EventLog(events))])
    records = assert_each_seq_once(events, len(images))
    for image, record in zip(images, records):
        usable = isinstance(image, np.ndarray) and image.ndim == 3 and image.dtype == np.uint8 \
            and image.shape[2] == 3 and image.size > 0
        assert (record["verdict"] != "FAULT") == usable, (getattr(image, "shape", image), record)
        if not usable:
            assert record["reason"] and "\n" not in record["reason"]
    assert summary.frames == len(images) and summary.stop_reason.value == "end of source"
