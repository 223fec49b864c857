"""Which Jetson module this is: the device-tree model string, read where the kernel publishes it.

Every Orin module (AGX, NX, Nano) reports the same CUDA name ('Orin') and compute capability (8.7), so
the model string is what tells an engine built on one module from one built on another. Off a Jetson
there is no device tree and the string is empty.
"""

from __future__ import annotations

from pathlib import Path

# /proc/device-tree is a link to /sys/firmware/devicetree/base; containers sometimes mount only one.
DEVICE_TREE_MODEL_FILES = (Path("/proc/device-tree/model"), Path("/sys/firmware/devicetree/base/model"))


def read_jetson_model(paths: tuple[Path, ...] = DEVICE_TREE_MODEL_FILES) -> str:
    """The device-tree model string ('NVIDIA Jetson Orin NX Engineering Reference Developer Kit'), without
    the NUL the device tree ends it with; '' where no file of `paths` can be read (not a Jetson)."""
    for path in paths:
        try:
            text = Path(path).read_bytes().decode(errors="replace")
        except OSError:
            continue
        text = text.replace("\x00", " ").strip()
        if text:
            return text
    return ""
