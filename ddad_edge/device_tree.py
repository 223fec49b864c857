"""The board's model string, where the kernel publishes it: what tells a Jetson (and which one) from a PC.

One path for every reader: OpenCV's fixes (a Jetson keeps JetPack's OpenCV), the doctor, the benchmark's
record of the machine, and the choice of a TensorRT build profile.
"""

from __future__ import annotations

from pathlib import Path

JETSON_MODEL_FILE = Path("/proc/device-tree/model")


def on_jetson(model_file: Path = JETSON_MODEL_FILE) -> bool:
    """Whether this machine is an NVIDIA Jetson (its device-tree model names NVIDIA or Jetson)."""
    try:
        model = model_file.read_bytes().decode(errors="replace").lower()
    except OSError:
        return False
    return "jetson" in model or "nvidia" in model
