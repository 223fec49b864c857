"""The operator page and its JSON and MJPEG endpoints (`--http-port`), bound to 127.0.0.1 unless told otherwise.

Read-only. What it serves, and nothing else (no path from a request ever reaches the file system):
  /               the operator page (status_page.py: inline HTML, CSS and JS, nothing fetched from outside)
  /status.json    state (READY, FAULT, STALE, STOPPED), bundle, counters, pulses, latency, fps
  /recent.json    the last verdicts and the last NG frames
  /trend.json     per-second mean and max scores of the last minutes (`?minutes=N`, at most 10), threshold
  /stream.mjpg    the annotated frames, multipart/x-mixed-replace JPEGs
  /ng/SEQ.jpg     thumbnail (frame beside its heatmap) of one of the last NG frames, by sequence number
  /ng/SEQ.png     the NG image this run saved for that frame

Viewers never slow inspection: the loop only hands over a reference to its result. Each frame is annotated
and encoded at most once, on an HTTP thread, whatever the number of viewers, and at most `stream_fps` times
a second; streams are capped at `max_viewers`, connections at `max_connections` (more are answered 503 at
once, without a thread), and a connection that sends nothing, or reads nothing, for `idle_s` is closed.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ddad_edge.errors import DdadError
from ddad_edge.inspect.annotate import annotate
from ddad_edge.inspect.bind_host import check_bind_host
from ddad_edge.inspect.frame import Dropped
from ddad_edge.inspect.line_board import LineBoard, NgEntry
from ddad_edge.inspect.ng_images import overlay_heatmap
from ddad_edge.inspect.result import FrameResult
from ddad_edge.inspect.sinks import Note, Sink
from ddad_edge.inspect.status_page import PAGE
from ddad_edge.lazy_import import import_cv2

BOUNDARY = "ddadframe"
NG_PATH = re.compile(r"^/ng/(\d{1,12})\.(jpg|png)$")
BUSY = b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 21\r\n" \
       b"Connection: close\r\n\r\ntoo many connections\n"


class _BoundedServer(ThreadingHTTPServer):
    """A threading server with at most `max_connections` handler threads; the rest get 503 and are closed
    on the accepting thread, so a crowd of clients never makes a crowd of threads."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type, max_connections: int) -> None:
        self._slots = threading.BoundedSemaphore(max_connections)
        self._count_lock = threading.Lock()
        self.connections = 0  # connections holding a handler thread now
        super().__init__(address, handler)

    def _count(self, step: int) -> None:
        with self._count_lock:
            self.connections += step

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            try:
                request.settimeout(0.5)
                request.sendall(BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        self._count(1)
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._count(-1)
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._count(-1)
            self._slots.release()


class StatusServer(Sink):
    """Serves the operator page on `host:port` (port 0: any free port; see `.port`).

    `out`: the run's output folder, where NgImageSink's images are (their names come from the results,
    never from a request). `stale_s`: no frame for this long shows STALE.
    """

    name = "status-server"
    records = True  # called after the other sinks: stage times are final, the NG image has its name

    def __init__(self, host: str = "127.0.0.1", port: int = 0, jpeg_quality: int = 80, out: Path | None = None,
                 stale_s: float = 2.0, stream_fps: float = 15.0, max_viewers: int = 8, max_connections: int = 32,
                 idle_s: float = 10.0) -> None:
        check_bind_host(host, "--http-host")
        self._cv2 = import_cv2()
        self._quality = jpeg_quality
        self.out = Path(out) if out is not None else None
        self.board = LineBoard(stale_s)
        self.stream_interval_s = 1.0 / stream_fps
        self.max_viewers = max_viewers
        self.viewers = 0
        self.encodes = 0  # frames annotated and encoded for the stream, for all viewers together
        self._cond = threading.Condition()
        self._latest: FrameResult | None = None
        self._version = 0
        self._jpeg: tuple[int, bytes | None] = (-1, None)
        self._encode_lock = threading.Lock()
        self._closing = False
        handler = type("Handler", (_Handler,), {"status": self, "timeout": idle_s})
        try:
            self._server = _BoundedServer((host, port), handler, max_connections)
        except OSError as exc:
            raise DdadError(f"cannot serve the status page on {host}:{port}: {exc.strerror or exc}") from None
        address = self._server.server_address
        self.host, self.port = str(address[0]), int(address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="status-server", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def counts(self) -> dict[str, int]:
        return self.board.counts

    @property
    def connections(self) -> int:
        """Connections holding a handler thread now (at most `max_connections`)."""
        return self._server.connections

    def watch_reject(self, reject: Any) -> None:
        """Show the reject output's live pulse counts (fired, merged) while the loop runs."""
        self.board.pulses = lambda: {"fired": reject.pulses_fired, "merged": reject.pulses_merged}

    # --- the loop's side: references and counters only ------------------------------------------------

    def on_start(self, info: dict[str, Any], note: Note) -> None:
        self.board.start(info)

    def on_result(self, result: FrameResult) -> None:
        self.board.add_result(result)
        with self._cond:
            self._latest = result
            self._version += 1
            self._cond.notify_all()

    def on_dropped(self, dropped: Dropped) -> None:
        self.board.add_dropped()

    def on_note(self, message: str) -> None:
        self.board.add_note(message)

    def on_summary(self, summary: dict[str, Any]) -> None:
        self.board.end(summary)

    def status(self) -> dict[str, Any]:
        """What /status.json serves."""
        return self.board.status()

    # --- the viewers' side --------------------------------------------------------------------------

    def next_jpeg(self, seen: int, timeout_s: float = 1.0) -> tuple[int, bytes | None]:
        """The newest annotated frame after version `seen` as JPEG bytes, or None on timeout/close.

        Encoded by the first viewer that asks for a version; every other viewer gets the same bytes.
        """
        with self._cond:
            self._cond.wait_for(lambda: self._version != seen or self._closing, timeout_s)
            if self._closing or self._version == seen or self._latest is None:
                return seen, None
            version, result = self._version, self._latest
        with self._encode_lock:
            if self._jpeg[0] < version:
                ok, jpeg = self._cv2.imencode(".jpg", annotate(result),
                                              [self._cv2.IMWRITE_JPEG_QUALITY, self._quality])
                self._jpeg = (version, jpeg.tobytes() if ok else None)
                self.encodes += 1
            return self._jpeg

    def thumbnail(self, entry: NgEntry) -> bytes | None:
        """The JPEG of an NG frame beside its heatmap (made once, then kept with the entry)."""
        if entry.thumbnail is None:
            r = entry.result
            if r.model_input is None or r.anomaly_map is None:
                return None
            image = overlay_heatmap(r.model_input, r.anomaly_map, self.board.threshold())
            if image.shape[0] < 96:  # a 32 px model input is too small to see on a screen
                scale = 96 // image.shape[0] + 1
                image = self._cv2.resize(image, None, fx=scale, fy=scale, interpolation=self._cv2.INTER_NEAREST)
            ok, jpeg = self._cv2.imencode(".jpg", image, [self._cv2.IMWRITE_JPEG_QUALITY, 85])
            entry.thumbnail = jpeg.tobytes() if ok else None
        return entry.thumbnail

    def ng_image(self, entry: NgEntry) -> bytes | None:
        """The PNG this run saved for an NG frame, or None when it has none (quota, not written yet)."""
        if self.out is None or not entry.image_name:
            return None
        path = (self.out / entry.image_name).resolve()
        if self.out.resolve() not in path.parents:  # the name is our own sink's, but stay inside anyway
            return None
        try:
            return path.read_bytes()
        except OSError:
            return None

    def enter_stream(self) -> bool:
        with self._cond:
            if self.viewers >= self.max_viewers:
                return False
            self.viewers += 1
            return True

    def leave_stream(self) -> None:
        with self._cond:
            self.viewers -= 1

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
        url = urlsplit(self.path)
        path = url.path
        if path == "/":
            self._send(200, "text/html; charset=utf-8", PAGE.encode())
        elif path == "/status.json":
            self._json(self.status.status())
        elif path == "/recent.json":
            self._json(self.status.board.recent())
        elif path == "/trend.json":
            try:
                minutes = min(10.0, max(0.1, float(parse_qs(url.query).get("minutes", ["5"])[0])))
            except ValueError:
                minutes = 5.0
            self._json(self.status.board.trend(minutes))
        elif path == "/stream.mjpg":
            self._stream()
        elif (match := NG_PATH.match(path)) is not None:
            self._ng(int(match.group(1)), match.group(2))
        else:
            self._send(404, "text/plain", b"not found\n")

    def _ng(self, seq: int, kind: str) -> None:
        entry = self.status.board.ng_entry(seq)
        body = None
        if entry is not None:
            body = self.status.thumbnail(entry) if kind == "jpg" else self.status.ng_image(entry)
        if body is None:
            why = "not one of the last NG frames" if entry is None else (entry.image_note or "not saved (yet)")
            self._send(404, "text/plain", f"frame {seq}: {why}\n".encode())
        else:
            self._send(200, "image/jpeg" if kind == "jpg" else "image/png", body)

    def _json(self, data: dict[str, Any]) -> None:
        self._send(200, "application/json", json.dumps(data).encode())

    def _send(self, code: int, kind: str, body: bytes) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the viewer went away or stopped reading

    def _stream(self) -> None:
        if not self.status.enter_stream():
            self._send(503, "text/plain", f"too many viewers (at most {self.status.max_viewers})\n".encode())
            return
        try:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            seen, sent_at = -1, 0.0
            while not self.status.closing:
                wait = sent_at + self.status.stream_interval_s - time.monotonic()
                if wait > 0:  # the stream's rate cap: no viewer makes more encodes than this
                    time.sleep(wait)
                seen, jpeg = self.status.next_jpeg(seen)
                if jpeg is None:
                    continue
                sent_at = time.monotonic()
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                                 .encode() + jpeg + b"\r\n")
                self.wfile.flush()
        except OSError:
            pass  # the viewer went away, or read nothing for idle_s (socket timeout)
        finally:
            self.status.leave_stream()

