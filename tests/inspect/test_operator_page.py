"""The operator page in a real browser: headless Chromium loads the page of `ddad-edge run --http-port` while
the loop inspects a stream of a conveyor video with an INT8 bundle, and checks what a person would see.

One run, one browser: the stream plays its frames (every fifth part with a defect), then freezes with the
connection held open (the page says STALE), then the loop declares the camera lost (the page says FAULT,
with the reason), then the stream comes back (READY again), then the process is stopped (DISCONNECTED).
Counters are compared with events.jsonl while the line is quiet, the NG thumbnails with the NG records,
each thumbnail's link with the NG image the run saved. The screenshot is saved as a test artifact
(test-artifacts/operator-page.png; docs/images/operator-page.png is a copy of one).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from ddad_edge.inspect.sinks import read_events
from tests.bundle_factory import make_toy_bundle
from tests.inspect.browser import open_chromium, wait_for
from tests.inspect.media import MjpegServer

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("DDAD_TEST_ARTIFACTS", REPO / "test-artifacts"))
FRAMES = 60  # 3 s of stream at 20 frames/s


def conveyor_frame(i: int, defect: bool, width: int = 320, height: int = 240) -> np.ndarray:
    """(H, W, 3) uint8 RGB: a part moving along a grey belt; a defective one carries a white spot.

    Belt and part stay within 100..160 of grey (toy score under 0.25); the spot scores about 1.0.
    """
    image = np.full((height, width, 3), 124, dtype=np.uint8)
    image[:, (np.arange(width) + 6 * i) % 40 < 3] = 112  # belt seams, moving with the belt
    cx = 40 + (i * 23) % (width - 80)
    cv2.circle(image, (cx, height // 2), 56, (152, 150, 146), -1)
    if defect:
        cv2.circle(image, (cx + 12, height // 2 - 10), 22, (255, 255, 255), -1)
    return image


def is_defect(i: int) -> bool:
    return i % 5 == 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def counters_on_page(driver) -> dict[str, int]:
    return {k: int(driver.find_element("id", f"c-{k}").text) for k in ("frames", "OK", "NG", "FAULT", "dropped")}


def counters_in_log(events: Path) -> dict[str, int]:
    records = [r for r in read_events(events) if r["kind"] in ("frame", "dropped")]
    counts = {"frames": len(records), "OK": 0, "NG": 0, "FAULT": 0, "dropped": 0}
    for r in records:
        counts[r["verdict"] if r["kind"] == "frame" else "dropped"] += 1
    return counts


@pytest.fixture(scope="module")
def driver():
    browser = open_chromium()
    yield browser
    browser.quit()


@pytest.fixture(scope="module")
def int8_bundle(tmp_path_factory):
    return make_toy_bundle(tmp_path_factory.mktemp("int8"), image_size=32, precision="int8")


def test_the_page_shows_what_the_line_does(tmp_path, driver, int8_bundle):
    images = [conveyor_frame(i, is_defect(i)) for i in range(FRAMES)]
    stream = MjpegServer(images, fps=20, hold_after=FRAMES)
    out, port = tmp_path / "out", free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen(
        [sys.executable, "-m", "ddad_edge", "run", "--url", stream.url, "--bundle", str(int8_bundle.path),
         "--threshold", "0.5", "--gpio", "sim", "--stall-s", "4", "--http-port", str(port), "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    base = f"http://127.0.0.1:{port}/"
    try:
        wait_for(lambda: _answers(base), 60, "the status page to answer")
        driver.get(base)
        # running: READY, frames counting, the stream showing, the bundle named
        wait_for(lambda: driver.find_element("id", "state").text == "READY" and
                 int(driver.find_element("id", "c-frames").text) >= 10, 30, "READY with frames counted")
        assert "int8" in driver.find_element("id", "bundle").text
        assert driver.execute_script("return document.getElementById('stream').naturalWidth") > 0
        wait_for(lambda: int(driver.find_element("id", "c-frames").text) >= FRAMES - 8, 30, "most frames shown")
        wait_for(lambda: len(driver.find_elements("css selector", "#ngs img")) >= 6, 10, "NG thumbnails")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "operator-page.png"))

        # the stream freezes: STALE while the loop waits, and the counters are the event log's
        wait_for(lambda: driver.find_element("id", "state").text == "STALE", 10, "STALE after the stream froze")
        events = out / "events.jsonl"
        wait_for(lambda: counters_on_page(driver) == counters_in_log(events), 5,
                 "the page's counters to equal events.jsonl")
        logged = counters_in_log(events)
        assert logged["NG"] >= 6 and logged["OK"] >= 20 and logged["FAULT"] == 0
        assert int(driver.find_element("id", "p-requested").text) == logged["NG"]

        # the thumbnails are the last NG frames, newest first, each linking to the image this run saved
        ng_records = [r for r in read_events(events) if r["kind"] == "frame" and r["verdict"] == "NG"]
        links = driver.find_elements("css selector", "#ngs a")
        assert [int(a.get_attribute("data-seq")) for a in links] == [r["seq"] for r in ng_records][::-1][:12]
        assert all(driver.execute_script("return arguments[0].naturalWidth", img) > 0
                   for img in driver.find_elements("css selector", "#ngs img"))
        wait_for(lambda: all((out / r["ng_image"]).exists() for r in ng_records), 10, "NG images written")
        for a, record in zip(links[:3], ng_records[::-1]):
            with urllib.request.urlopen(a.get_attribute("href"), timeout=5) as response:
                assert response.read() == (out / record["ng_image"]).read_bytes()
            thumb = _fetch_image(base + f"ng/{record['seq']}.jpg")
            assert thumb[..., :].max() > 240, "the thumbnail shows the white defect"
        # nothing came from anywhere but the line PC
        sources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert sources and all(s.startswith(base) for s in sources), sources

        # the loop gives the camera up: FAULT with the reason; then the stream comes back: READY
        wait_for(lambda: driver.find_element("id", "state").text == "FAULT", 15, "FAULT when the camera stalled")
        assert "stalled" in driver.find_element("id", "reason").text
        assert counters_in_log(events)["FAULT"] >= 1
        stream.release.set()
        wait_for(lambda: driver.find_element("id", "state").text == "READY", 30, "READY after the stream returned")

        # the process stops: the page says so
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
        wait_for(lambda: driver.find_element("id", "state").text == "DISCONNECTED", 10, "DISCONNECTED")
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        stream.close()
    assert process.returncode == 0


def _answers(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "status.json", timeout=2) as response:
            return "state" in json.loads(response.read())
    except OSError:
        return False


def _fetch_image(url: str) -> np.ndarray:
    with urllib.request.urlopen(url, timeout=5) as response:
        data = np.frombuffer(response.read(), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    assert image is not None
    return image
