"""Fixtures of the hardening suite: the inspection tests' red-score bundle and its real ONNX Runtime runner."""

from tests.inspect.conftest import red_bundle, runner  # noqa: F401  (pytest finds fixtures by name here)
