"""The optional status page and MJPEG stream (`--http-port`), bound to 127.0.0.1 unless told otherwise.

`/` is a small page, `/status.json` the counters and the last verdict, `/stream.mjpg` the annotated
frames as multipart/x-mixed-replace JPEGs. The loop only hands over a reference to its latest result;
encoding happens on the HTTP threads, at the viewers' pace, so a viewer never slows inspection.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ddad_edge.errors import DdadError
from ddad_edge.inspect.annotate import annotate
from ddad_edge.inspect.frame import Dropped
from ddad_edge.inspect.opencv import import_cv2
from ddad_edge.inspect.result import FrameResult
from ddad_edge.inspect.sinks import Sink

BOUNDARY = "ddadframe"
PAGE = """<!doctype html><html><head><title>ddad-edge</title></head><body style="font-family:sans-serif">
<h1>ddad-edge</h1><p id="s">...</p><img src="/stream.mjpg" style="max-width:100%">
<script>setInterval(()=>fetch('/status.json').then(r=>r.json()).then(j=>{document.getElementById('s')
.textContent=JSON.stringify(j)}),1000)</script></body></html>"""


class StatusServer(Sink):
    """Serves the status page and stream on `host:port` (port 0: any free port; see `.port`)."""

    name = "status-server"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, jpeg_quality: int = 80) -> None:
        self._cv2 = import_cv2()
        self._quality = jpeg_quality
        self._cond = threading.Condition()
        self._latest: FrameResult | None = None
        self._version = 0
        self._closing = False
        self.counts = {"frames": 0, "OK": 0, "NG": 0, "FAULT": 0, "dropped": 0}
        handler = type("Handler", (_Handler,), {"status": self})
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise DdadError(f"cannot serve the status page on {host}:{port}: {exc.strerror or exc}") from None
        self._server.daemon_threads = True
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, name="status-server", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def on_result(self, result: FrameResult) -> None:
        with self._cond:
            self._latest = result
            self._version += 1
            self.counts["frames"] += 1
            self.counts[result.verdict.value] += 1
            self._cond.notify_all()

    def on_dropped(self, dropped: Dropped) -> None:
        with self._cond:
            self.counts["frames"] += 1
            self.counts["dropped"] += 1

    def status(self) -> dict[str, Any]:
        """Counters and the latest verdict, as served at /status.json."""
        with self._cond:
            latest = self._latest
            status: dict[str, Any] = dict(self.counts)
        if latest is not None:
            status.update(seq=latest.frame.seq, verdict=latest.verdict.value, score=latest.score)
        return status

    def next_jpeg(self, seen: int, timeout_s: float = 1.0) -> tuple[int, bytes | None]:
        """The newest annotated frame after version `seen` as JPEG bytes, or None on timeout/close."""
        with self._cond:
            self._cond.wait_for(lambda: self._version != seen or self._closing, timeout_s)
            if self._closing or self._version == seen or self._latest is None:
                return seen, None
            version, result = self._version, self._latest
        ok, jpeg = self._cv2.imencode(".jpg", annotate(result), [self._cv2.IMWRITE_JPEG_QUALITY, self._quality])
        return version, jpeg.tobytes() if ok else None

    @property
    def closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    status: StatusServer

    def log_message(self, format: str, *args: Any) -> None:  # viewers are not worth a log line each
        pass

    def do_GET(self) -> None:
        if self.path == "/":
            self._send(200, "text/html; charset=utf-8", PAGE.encode())
        elif self.path == "/status.json":
            self._send(200, "application/json", json.dumps(self.status.status()).encode())
        elif self.path.startswith("/stream.mjpg"):
            self._stream()
        else:
            self._send(404, "text/plain", b"not found\n")

    def _send(self, code: int, kind: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        seen = -1
        try:
            while not self.status.closing:
                seen, jpeg = self.status.next_jpeg(seen)
                if jpeg is None:
                    continue
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                                 .encode() + jpeg + b"\r\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the viewer went away
