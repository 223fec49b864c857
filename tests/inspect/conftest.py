"""Fixtures of the inspection tests: the red-score bundle and its real ONNX Runtime runner."""

from __future__ import annotations

import pytest

from ddad_edge.runtime.backends import open_runner
from tests.bundle_factory import make_red_bundle


@pytest.fixture(scope="session")
def red_bundle(tmp_path_factory):
    return make_red_bundle(tmp_path_factory.mktemp("bundle"), image_size=32, threshold=0.1)


@pytest.fixture
def runner(red_bundle):
    with open_runner(red_bundle, "onnxruntime", threads=1) as r:
        yield r
