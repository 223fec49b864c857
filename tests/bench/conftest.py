"""Fixtures of the benchmark tests: a real toy bundle (ONNX Runtime) and small JPEG frames to read."""

from __future__ import annotations

import pytest

from ddad_edge.bench.frames import write_synthetic_frames
from tests.bundle_factory import make_toy_bundle


@pytest.fixture(scope="session")
def toy_bundle(tmp_path_factory):
    return make_toy_bundle(tmp_path_factory.mktemp("bench-bundle"), image_size=32)


@pytest.fixture(scope="session")
def frame_files(tmp_path_factory):
    """Four synthetic parts as 64x48 JPEG files (the runner's input is resized to 32 px by the loop)."""
    return write_synthetic_frames(tmp_path_factory.mktemp("bench-frames"), width=64, height=48, count=4)
