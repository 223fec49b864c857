"""Thresholds that decide nothing are refused, doubtful ones said at start, hand edits logged (issue 25, 10/12).

The red-score bundle scores a green part about 0 and a part with a red quarter about 0.25. Here it carries
the statistics an export records (nominal and defective test scores, the sealed exported thresholds), so
`--threshold 0`, `-1`, `1e308` or a manifest edited to `image: 999` or `-1` can be judged against them.
"""

from __future__ import annotations

import json

import pytest
import yaml

from ddad_edge.bundle import MANIFEST_NAME, read_bundle, write_manifest
from ddad_edge.cli import main
from ddad_edge.errors import DdadError
from ddad_edge.inspect.decide import threshold_from_bundle
from ddad_edge.inspect.threshold_check import threshold_notes
from tests.bundle_factory import make_red_bundle
from tests.cli_helpers import assert_one_line
from tests.inspect.checks import frame_records, is_red
from tests.inspect.media import part_image, write_images

STATS = {"nominal_scores": {"n": 20, "mean": 0.03, "std": 0.005, "min": 0.02, "median": 0.03, "p95": 0.04,
                            "p99": 0.045, "max": 0.05},
         "test_scores": {"defective": 19, "defective_min": 0.15, "defective_median": 0.25, "defective_max": 0.3,
                         "defective_passed": 0, "nominal": 10, "nominal_rejected": 0},
         "thresholds_exported": {"image": 0.1}}


@pytest.fixture
def bundle(tmp_path):
    made = make_red_bundle(tmp_path / "bundle", image_size=32, threshold=0.1)
    return write_manifest(made.path, {**made.manifest, **STATS})


def edit_manifest(bundle, image) -> None:
    """A hand edit of thresholds.image in manifest.yaml, as a text editor makes it (nothing re-hashed)."""
    path = bundle.path / MANIFEST_NAME
    text = path.read_text()
    assert "  image: 0.1\n" in text
    path.write_text(text.replace("  image: 0.1\n", f"  image: {image}\n", 1))


@pytest.mark.parametrize("value, words", [(0.0, "not above 0"), (-1.0, "not above 0"), (0.01, "below every"),
                                          (1e308, "over 10 times"), (3.1, "over 10 times")])
def test_a_threshold_that_decides_nothing_is_refused_with_the_numbers(bundle, value, words):
    with pytest.raises(DdadError) as info:
        threshold_from_bundle(bundle.manifest, value)
    assert_one_line(info.value, "--threshold", words, "median 0.03")


def test_plausible_thresholds_pass_and_doubtful_ones_are_warned_about(bundle):
    assert threshold_from_bundle(bundle.manifest) == pytest.approx(0.1)
    assert threshold_notes(0.1, bundle.manifest, "--threshold") == []
    high = threshold_notes(0.28, bundle.manifest, "--threshold")
    assert len(high) == 1 and "at least half of the 19 defective" in high[0] and "median 0.25" in high[0]
    low = threshold_notes(0.035, bundle.manifest, "--threshold")
    assert len(low) == 1 and "1 in 20 good parts" in low[0]
    # a bundle without recorded statistics (made before them) is judged by the sign only
    assert threshold_notes(5.0, {"thresholds": {"image": 5.0}}, "--threshold") == []
    with pytest.raises(DdadError, match="not above 0"):
        threshold_notes(0.0, {}, "--threshold")


def run(bundle, tmp_path, *extra):
    frames = tmp_path / "frames"
    if not frames.exists():
        write_images(frames, [part_image(i, is_red(i), 32, 32) for i in range(6)])
    out = tmp_path / f"out{len(list(tmp_path.glob('out*')))}"
    code = main(["run", "--bundle", str(bundle.path), "--images", str(frames), "--backend", "onnxruntime",
                 "--out", str(out), *extra])
    return code, out


@pytest.mark.parametrize("value", ["999", "-1", "1.0e+300"])
def test_run_refuses_a_manifest_edited_to_a_threshold_that_decides_nothing(bundle, tmp_path, capsys, value):
    edit_manifest(bundle, value)
    read_bundle(bundle.path)  # thresholds are editable: the bundle itself still loads
    code, out = run(bundle, tmp_path)
    err = capsys.readouterr().err.strip()
    assert code == 2 and not out.exists()
    assert_one_line(err.removeprefix("error: "), "thresholds.image in manifest.yaml")


def test_selftest_fails_a_bundle_whose_threshold_passes_every_part(tmp_path, capsys):
    from tests.bundle_factory import make_toy_bundle

    toy = make_toy_bundle(tmp_path / "toy")
    write_manifest(toy.path, {**toy.manifest, "thresholds": {"image": 0.5}, **STATS})
    assert main(["selftest", "--bundle", str(toy.path), "--backend", "onnxruntime", "--repeats", "1"]) == 0
    edit_manifest_text = (toy.path / MANIFEST_NAME).read_text().replace("  image: 0.5\n", "  image: 999\n", 1)
    (toy.path / MANIFEST_NAME).write_text(edit_manifest_text)
    capsys.readouterr()
    assert main(["selftest", "--bundle", str(toy.path), "--backend", "onnxruntime", "--repeats", "1"]) == 2
    assert "over 10 times" in capsys.readouterr().err


def test_a_plausible_hand_edit_runs_and_is_said_at_start_with_old_and_new_values(bundle, tmp_path, capsys):
    edit_manifest(bundle, "0.2")
    code, out = run(bundle, tmp_path)
    err = capsys.readouterr().err
    assert code == 0
    assert "thresholds edited in manifest.yaml since export (exported -> now): image 0.1 -> 0.2" in err
    start = json.loads((out / "events.jsonl").read_text().splitlines()[0])
    assert start["kind"] == "start" and start["threshold"] == 0.2
    assert any("image 0.1 -> 0.2" in w for w in start["warnings"])
    assert [r["verdict"] for r in frame_records(out / "events.jsonl")] == \
        ["NG" if is_red(i) else "OK" for i in range(6)]


@pytest.mark.parametrize("key, value", [("nominal_scores", {"min": 0}), ("graph", {"image_size": 32}),
                                        ("thresholds_exported", {"image": 5}), ("precision", "fp16")])
def test_an_edit_outside_the_thresholds_is_refused(bundle, key, value):
    path = bundle.path / MANIFEST_NAME
    manifest = yaml.safe_load(path.read_text())
    manifest[key] = {**manifest[key], **value} if isinstance(value, dict) else value
    if manifest[key] == bundle.manifest[key]:
        manifest[key]["edited"] = 1
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))  # files not re-hashed: none changed
    with pytest.raises(DdadError) as info:
        read_bundle(bundle.path)
    assert_one_line(info.value, "edited outside 'thresholds'", "only thresholds may be edited")
