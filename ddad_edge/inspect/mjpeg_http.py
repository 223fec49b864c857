"""An HTTP MJPEG stream (multipart/x-mixed-replace, what IP cameras serve) read by ddad-edge itself.

Through OpenCV's FFmpeg backend a JPEG cut short on the way is concealed with the previous frame's pixels
and reaches the loop as a frame like any other. Read here, every part's bytes are checked before decoding
(`jpeg_check`): a damaged part is a FAULT frame with its reason, and keeps its place in the sequence.

`MjpegHttpCapture` looks like a cv2.VideoCapture to the grabber (grab / retrieve / release): `grab` reads
one part, `retrieve` checks and decodes it (DamagedFrame for a damaged one). A lost connection, a read
timeout or the end of the stream make `grab` return False: the grabber's camera-lost path, as before.
"""

from __future__ import annotations

import http.client
import re
from typing import Any
from urllib.parse import urlsplit

from ddad_edge.inspect.jpeg_check import decode_checked

MAX_PART = 64 << 20  # bytes; a part larger than any JPEG frame means the stream is not what it says


def open_mjpeg_http(url: str, timeout_s: float, shape: list[tuple[int, int]]) -> "MjpegHttpCapture | None":
    """The stream at `url` if it answers with multipart/x-mixed-replace (or a body in that form); None for
    any other content (left to OpenCV, which connects again). Raises OSError when it cannot be reached or does
    not answer 200. `shape`: see `decode_checked`."""
    parts = urlsplit(url)
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(parts.hostname or "", parts.port, timeout=timeout_s)
    what = f"cannot open stream {url}"
    try:
        connection.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
                           headers={"Accept": "multipart/x-mixed-replace, image/jpeg, */*"})
        response = connection.getresponse()
    except (OSError, http.client.HTTPException):
        connection.close()
        raise OSError(what) from None
    if response.status != 200:
        connection.close()
        raise OSError(what)
    kind = response.getheader("Content-Type", "")
    boundary = re.search(r'boundary="?([^";]+)"?', kind, re.IGNORECASE)
    if kind.lower().startswith("multipart/x-mixed-replace") and boundary:
        return MjpegHttpCapture(connection, response, boundary.group(1).strip(), shape)
    # FFmpeg's own server (-f mpjpeg -listen 1) labels the stream application/octet-stream: a body that
    # opens with a boundary line and a part header is multipart all the same
    start = b""
    try:
        while len(start) < 256 and b"\r\n\r\n" not in start:
            more = response.read1(256 - len(start))
            if not more:
                break
            start += more
    except (OSError, http.client.HTTPException, ValueError):
        pass
    first = re.match(rb"--([!-~]{1,70})\r?\n[A-Za-z-]+:", start)
    if first is None:
        connection.close()
        return None
    capture = MjpegHttpCapture(connection, response, first.group(1).decode("latin-1"), shape)
    capture.feed(start)
    return capture


class MjpegHttpCapture:
    """One open multipart/x-mixed-replace response, read part by part."""

    def __init__(self, connection: Any, response: Any, boundary: str, shape: list[tuple[int, int]]) -> None:
        self._connection, self._response = connection, response
        # RFC 2046 puts "--" before the boundary; some cameras declare it with the dashes already in it
        self._delimiter = (boundary if boundary.startswith("--") else "--" + boundary).encode("latin-1")
        self._shape = shape
        self._buf = bytearray()
        self._part: tuple[bytes, int | None] | None = None

    def feed(self, data: bytes) -> None:
        """Bytes of the body already read (while the stream's kind was being found)."""
        self._buf += data

    def isOpened(self) -> bool:  # noqa: N802 - the cv2.VideoCapture interface
        return not self._response.isclosed()

    def get(self, prop: int) -> float:
        return 0.0

    def _fill(self) -> bool:
        try:
            chunk = self._response.read1(65536)
        except (OSError, http.client.HTTPException, ValueError):
            return False
        self._buf += chunk
        return bool(chunk) and len(self._buf) <= MAX_PART

    def grab(self) -> bool:
        """Read the next part; False when the stream ended, broke or went silent."""
        self._part = None
        while (start := self._buf.find(self._delimiter)) < 0:  # preamble, or the CRLF after the last part
            del self._buf[:max(0, len(self._buf) - len(self._delimiter))]
            if not self._fill():
                return False
        while (end := self._buf.find(b"\r\n\r\n", start)) < 0:
            if not self._fill():
                return False
        headers = bytes(self._buf[start + len(self._delimiter):end]).decode("latin-1")
        del self._buf[:end + 4]
        length = re.search(r"content-length:\s*(\d+)", headers, re.IGNORECASE)
        declared = int(length.group(1)) if length else None
        while True:
            tail = len(self._delimiter) + 2
            settled = declared is not None and len(self._buf) >= declared + tail
            if declared is not None and settled \
                    and bytes(self._buf[declared:declared + tail]).lstrip(b"\r\n").startswith(self._delimiter):
                body = bytes(self._buf[:declared])  # as long as announced, the next part right after it
                del self._buf[:declared]
                break
            nxt = self._buf.find(self._delimiter)
            if nxt >= 0 and (declared is None or nxt < declared or settled):
                # no Content-Length, or not what arrived: the part is what came before the next boundary
                body = bytes(self._buf[:nxt])
                body = body[:-2] if body.endswith(b"\r\n") else body[:-1] if body.endswith(b"\n") else body
                del self._buf[:nxt]
                break
            if not self._fill():
                # the stream ended or broke after this part began: the part is judged on what arrived (the
                # last one whole, or a FAULT cut short), and the next grab reports the stream lost
                body = bytes(self._buf[:declared] if declared is not None else self._buf).rstrip(b"\r\n")
                self._buf.clear()
                if not body:
                    return False
                break
        self._part = (body, declared)
        return True

    def retrieve(self) -> tuple[bool, Any]:
        """(True, BGR image) of the part `grab` read; raises DamagedFrame for a damaged part."""
        if self._part is None:
            return False, None
        body, declared = self._part
        self._part = None
        return True, decode_checked(body, self._shape, declared)

    def read(self) -> tuple[bool, Any]:
        return self.retrieve() if self.grab() else (False, None)

    def release(self) -> None:
        self._response.close()
        self._connection.close()
