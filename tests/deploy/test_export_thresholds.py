"""Export judges its own thresholds against the test split (issue 25, item 10).

`export --margin 5` made a threshold that passed most defective test images without a word, and
`--margin 1e300` a threshold of 1.5e298 that passes every part. The bundle now records the defective test
scores and the exported thresholds (sealed), says how many defective images a threshold passes, and
refuses one over ten times every score seen.
"""

from __future__ import annotations

import dataclasses

import pytest

from ddad_edge.deploy.bundle_export import write_bundle
from ddad_edge.deploy.thresholds import ThresholdRule
from ddad_edge.errors import DdadError
from ddad_edge.inspect.decide import threshold_from_bundle
from tests.cli_helpers import assert_one_line
from tests.deploy.tiny_bundles import prepared, tiny_project


@pytest.fixture(scope="module")
def project(tiny_run, tmp_path_factory):
    return tiny_project(tiny_run, tmp_path_factory)


def export(project, tmp_path, margin):
    prep = prepared(project)
    lines = []
    options = dataclasses.replace(prep.options, out=tmp_path / "b", thresholds=ThresholdRule(margin=margin),
                                  latency_runs=1)
    return write_bundle(prep, options, log=lines.append), lines


def test_a_huge_margin_is_refused_and_writes_nothing(project, tmp_path):
    with pytest.raises(DdadError) as info:
        export(project, tmp_path, 1e300)
    assert_one_line(info.value, "--margin 1e+300", "every part would pass", "0.05")
    assert not (tmp_path / "b").exists() and list(tmp_path.iterdir()) == []


def test_a_margin_that_passes_defective_test_images_is_said_with_the_count(project, tmp_path):
    bundle, lines = export(project, tmp_path, 5.0)
    test = bundle.manifest["test_scores"]
    image = bundle.manifest["thresholds"]["image"]
    assert bundle.manifest["thresholds_exported"] == bundle.manifest["thresholds"]
    assert test["defective_passed"] > 0.25 * test["defective"], "the tiny run's scores make margin 5 pass most"
    warnings = [line for line in lines if line.startswith("warning: ")]
    assert len(warnings) == 1
    assert f"passes {test['defective_passed']} of {test['defective']} defective test images" in warnings[0]
    assert f"{image:.4g}" in warnings[0]
    threshold_from_bundle(bundle.manifest)  # a warning, not a refusal: it is a threshold a line might choose
