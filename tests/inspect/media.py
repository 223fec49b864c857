"""Real media for the loop tests: part images, MJPG videos written by OpenCV, image folders, and an
HTTP MJPEG server on 127.0.0.1 (multipart/x-mixed-replace), as IP cameras serve them."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np

GREEN = (0, 160, 0)
RED = (255, 0, 0)


def part_image(index: int, red: bool, height: int = 48, width: int = 64) -> np.ndarray:
    """(H, W, 3) uint8 RGB: a green frame, with a red patch over the middle quarter when `red`.

    The top-left 8x8 block is grey at 16 * (index % 15) + 16, so a test can tell which source frame the
    loop saw, even through JPEG (luma survives it within a few levels; the block adds < 0.02 to the score).
    """
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[:] = GREEN
    if red:
        image[height // 4: 3 * height // 4, width // 4: 3 * width // 4] = RED
    image[:8, :8] = 16 * (index % 15) + 16
    return image


def index_of(image: np.ndarray) -> int:
    """The index % 15 that `part_image` wrote into a (possibly JPEG-decoded) RGB frame."""
    return int(round(float(image[2:6, 2:6].mean()) / 16)) - 1


def write_video(path: Path, images: list[np.ndarray], fps: float = 30.0) -> Path:
    """An MJPG .avi of RGB frames, written by OpenCV."""
    height, width = images[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened()
    for image in images:
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_images(folder: Path, images: list[np.ndarray]) -> list[Path]:
    """PNG files frame_000.png, ... of RGB images."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        paths.append(folder / f"frame_{i:03d}.png")
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return paths


class MjpegServer:
    """Serves `images` as an MJPEG stream at `fps` on 127.0.0.1, then closes the connection.

    `hold_after`: after this many frames (over all connections) the stream stalls, the connection held
    open, until `release` is set.
    `refuse_s`: after the first connection ends, answer 503 for this long (a camera rebooting), then
    serve the stream again from the start.
    `cut(i)`: frame i arrives cut in half (a flaky link): its part announces the whole JPEG's length and
    the next boundary follows after the first half. `content_length`: False sends parts without it (the
    client finds each part's end at the next boundary).
    """

    def __init__(self, images: list[np.ndarray], fps: float = 30.0, refuse_s: float = 0.0,
                 hold_after: int | None = None, cut=lambda i: False, content_length: bool = True) -> None:
        self.images = images
        self.cut = cut
        self.content_length = content_length
        self.fps = fps
        self.refuse_s = refuse_s
        self.hold_after = hold_after  # frames sent, over all connections, before the stream stalls
        self.release = threading.Event()  # set: a stalled stream goes on (a new connection starts over)
        self.sent = 0
        self.connections = 0
        self.first_ended_at: float | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.connections += 1
                ended = server.first_ended_at
                if ended is not None and time.monotonic() - ended < server.refuse_s:
                    self.send_error(503)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    for i, image in enumerate(server.images):
                        server.hold()
                        server.sent += 1
                        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                                                [cv2.IMWRITE_JPEG_QUALITY, 95])
                        data = jpeg.tobytes()[:len(jpeg) // 2 if server.cut(i) else len(jpeg)]
                        length = b"Content-Length: %d\r\n" % len(jpeg) if server.content_length else b""
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n" + length + b"\r\n" + data
                                         + b"\r\n")
                        self.wfile.flush()
                        time.sleep(1 / server.fps)
                    server.hold()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                if server.first_ended_at is None:
                    server.first_ended_at = time.monotonic()

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/stream.mjpg"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def hold(self) -> None:
        """Past `hold_after` frames: stay connected and send nothing (a camera that froze) until released."""
        while self.hold_after is not None and self.sent >= self.hold_after and not self.release.is_set():
            time.sleep(0.05)

    def close(self) -> None:
        self.release.set()  # a stalled handler ends (its client is gone or goes)
        self._httpd.shutdown()
        self._httpd.server_close()


def refused_url() -> str:
    """An http:// URL on 127.0.0.1 whose port nothing listens on (bound, then closed): a connection to it is
    refused, as to a camera that has not booted yet."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/stream.mjpg"
