"""The decision: threshold from the bundle or the command line, k-of-n debounce, non-finite scores."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ddad_edge.errors import DdadError
from ddad_edge.inspect.decide import Debounce, Decider, Verdict, threshold_from_bundle
from ddad_edge.inspect.preprocess import Preprocessor, Roi


def test_threshold_comes_from_the_manifest_unless_overridden():
    manifest = {"thresholds": {"image": 0.37}}
    assert threshold_from_bundle(manifest) == pytest.approx(0.37)
    assert threshold_from_bundle(manifest, 0.5) == 0.5
    with pytest.raises(DdadError, match="--threshold"):
        threshold_from_bundle({"thresholds": {}})
    with pytest.raises(DdadError, match="not a number"):
        threshold_from_bundle({"thresholds": {"image": "high"}})


@pytest.mark.parametrize("manifest, override, message", [
    ({"thresholds": ["image", 0.3]}, None, "not a mapping"),
    ({}, None, "has no image threshold"),
    ({"thresholds": None}, None, "has no image threshold"),
    ({"thresholds": {"image": None}}, None, "has no image threshold"),
    ({"thresholds": {"image": "nan"}}, None, "threshold is nan"),
    ({"thresholds": {"image": float("inf")}}, None, "threshold is inf"),
    ({"thresholds": {"image": True}}, None, "threshold is nan"),  # a bool is not a threshold
    ({"thresholds": {"image": 10 ** 400}}, None, "is not a number"),
    ({"thresholds": {"image": 0.3}}, float("nan"), "--threshold nan is not a finite number"),
    ({"thresholds": {"image": 0.3}}, -float("inf"), "--threshold -inf is not a finite number"),
])
def test_a_threshold_that_is_missing_or_not_a_finite_number_is_one_line(manifest, override, message):
    with pytest.raises(DdadError, match=message) as caught:
        threshold_from_bundle(manifest, override)
    text = str(caught.value)
    assert "\n" not in text and text.startswith("the bundle" if override is None else "--threshold")
    if override is None:
        assert text.endswith(" export the bundle again with `ddad-edge export`, or pass --threshold")


def test_a_threshold_is_a_float_whatever_its_source_type():
    for value in (threshold_from_bundle({"thresholds": {"image": "0.25"}}), threshold_from_bundle({}, 1)):
        assert type(value) is float
    assert threshold_from_bundle({"thresholds": {"image": 2}}) == 2.0


def test_single_frame_decision_is_score_at_or_above_threshold():
    decider = Decider(0.5)
    assert decider.decide(0.49) == (Verdict.OK, False)
    assert decider.decide(0.5) == (Verdict.NG, True)
    assert decider.decide(float("nan")) == (Verdict.FAULT, False)  # a fault is not "above the threshold"
    assert decider.decide(math.inf) == (Verdict.FAULT, False)


def test_k_of_n_debounce_needs_k_recent_frames_above():
    decider = Decider(0.5, Debounce.parse("2/3"))
    scores = [0.9, 0.1, 0.1, 0.9, 0.9, 0.1, 0.1, 0.9, 0.1, 0.9]
    verdicts = [decider.decide(s)[0].value for s in scores]
    # window of the last 3 above-flags: NG when at least 2 are above
    assert verdicts == ["OK", "OK", "OK", "OK", "NG", "NG", "OK", "OK", "OK", "NG"]


def test_without_debounce_each_frame_stands_alone():
    decider = Decider(0.5)
    assert decider.debounce == Debounce(1, 1)
    assert [decider.decide(s)[0] for s in (0.9, 0.1, 0.9, 0.2)] == [Verdict.NG, Verdict.OK, Verdict.NG, Verdict.OK]


@pytest.mark.parametrize("text, k, n", [("1/1", 1, 1), ("1/4", 1, 4), ("3/3", 3, 3), (" 2 / 5 ", 2, 5)])
def test_debounce_parses_k_of_n(text, k, n):
    assert Debounce.parse(text) == Debounce(k, n)


def test_faults_do_not_enter_the_debounce_window():
    decider = Decider(0.5, Debounce(2, 2))
    assert decider.decide(0.9)[0] is Verdict.OK
    assert decider.decide(float("nan"))[0] is Verdict.FAULT
    assert decider.decide(0.9)[0] is Verdict.NG


@pytest.mark.parametrize("text", ["3/2", "0/1", "0/0", "2", "a/b", "1/2/3"])
def test_bad_debounce_is_one_line(text):
    with pytest.raises(DdadError, match="--debounce"):
        Debounce.parse(text)


def test_roi_crop_and_resize_to_the_model_size():
    image = np.zeros((100, 200, 3), dtype=np.uint8)
    image[10:50, 20:60] = 255  # exactly the ROI
    pre = Preprocessor(16, Roi.parse("20,10,40,40"))
    out = pre.prepare(image)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8 and out.min() == 255
    assert pre.check(np.zeros((30, 30, 3), np.uint8)) and "does not fit" in pre.check(np.zeros((30, 30, 3), np.uint8))
    batch = Preprocessor(8).prepare_batch([image, image[:, :100]])
    assert batch.shape == (2, 8, 8, 3)
    with pytest.raises(DdadError, match="--roi"):
        Roi.parse("1,2,3")
