"""`import_cv2` for the inspection loop: an OpenCV that is absent or fails to import is one line with the
real reason and a fix for this platform (a Jetson keeps JetPack's OpenCV and numpy<2)."""

from __future__ import annotations

import pytest

from ddad_edge import device_tree, lazy_import
from ddad_edge.errors import DdadError


@pytest.mark.parametrize("jetson,fix", [(True, "keep the system OpenCV"), (False, "opencv-python-headless")])
def test_a_cv2_broken_by_numpy_2_says_why_and_how(monkeypatch, import_fails, jetson, fix):
    monkeypatch.setattr(lazy_import, "on_jetson", lambda *a: jetson)
    import_fails("cv2", exc=ImportError("numpy.core.multiarray failed to import\nsecond line"))
    with pytest.raises(DdadError) as info:
        lazy_import.import_cv2()
    message = str(info.value)
    assert "\n" not in message and "not installed" not in message
    assert "does not import: numpy.core.multiarray failed to import" in message
    assert "numpy<2" in message and fix in message


def test_an_absent_cv2_names_the_install_for_this_platform(monkeypatch, import_fails):
    import_fails("cv2", exc=ModuleNotFoundError("No module named 'cv2'", name="cv2"))
    monkeypatch.setattr(lazy_import, "on_jetson", lambda *a: False)
    with pytest.raises(DdadError, match="not installed; pip install opencv-python-headless$"):
        lazy_import.import_cv2()
    monkeypatch.setattr(lazy_import, "on_jetson", lambda *a: True)
    with pytest.raises(DdadError) as info:
        lazy_import.import_cv2()
    assert "--system-site-packages" in str(info.value) and "pip install opencv" not in str(info.value)


def test_on_jetson_reads_the_device_tree(tmp_path):
    model = tmp_path / "model"
    model.write_bytes(b"NVIDIA Jetson Orin Nano Developer Kit\x00")
    assert device_tree.on_jetson(model)
    model.write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\x00")
    assert not device_tree.on_jetson(model) and not device_tree.on_jetson(tmp_path / "absent")
