"""Viewers of the status page never slow inspection: the same 1080p video replayed live, once with nobody
watching and once with 40 viewers of /stream.mjpg (half of them reading, half connected and reading nothing)
and the page's JSON polled, gives the same capture→verdict latency and drop count within noise.

Measured as a ratio against the no-viewer run in the same test, with generous bounds, so a noisy shared
machine does not make it flaky; before the stream encoded once per frame for all viewers (it encoded once
per viewer, uncapped), 40 viewers multiplied the latency several times over.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.request

from ddad_edge.inspect.loop import LoopConfig, run_loop
from ddad_edge.inspect.sources import SourceKind, SourceSpec, open_source
from ddad_edge.inspect.status_server import StatusServer
from tests.inspect.checks import is_red
from tests.inspect.media import part_image, write_video

VIEWERS = 40


class Viewer(threading.Thread):
    """One browser tab on /stream.mjpg: reads everything (`reads`), or connects and then reads nothing."""

    def __init__(self, port: int, reads: bool, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port, self.reads, self.stop, self.received = port, reads, stop, 0

    def run(self) -> None:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                sock.sendall(b"GET /stream.mjpg HTTP/1.0\r\nHost: x\r\n\r\n")
                while not self.stop.is_set():
                    if not self.reads:
                        time.sleep(0.05)
                        continue
                    try:
                        data = sock.recv(1 << 16)
                    except socket.timeout:
                        continue
                    if not data:
                        return
                    self.received += len(data)
        except OSError:
            pass


def poll_status(port: int, stop: threading.Event) -> None:
    while not stop.is_set():
        for path in ("status.json", "recent.json", "trend.json"):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}", timeout=2).read()
            except OSError:
                pass
        time.sleep(0.2)


def inspect_video(video, runner, viewers: int) -> tuple[dict, int, int]:
    """(latency p50/p99 ms, dropped frames, bytes the viewers received) of one live replay of `video`."""
    server = StatusServer(port=0)
    stop = threading.Event()
    watchers = [Viewer(server.port, reads=i % 2 == 0, stop=stop) for i in range(viewers)]
    pollers = [threading.Thread(target=poll_status, args=(server.port, stop), daemon=True)
               for _ in range(2 if viewers else 0)]
    for t in watchers + pollers:
        t.start()
    time.sleep(0.3 if viewers else 0.0)  # every viewer connected before the first frame
    try:
        source = open_source(SourceSpec(SourceKind.VIDEO, str(video), realtime=True))
        summary = run_loop(runner, source, LoopConfig(threshold=0.1), None, [server])
    finally:
        stop.set()
        server.close()
    for t in watchers + pollers:
        t.join(5)
    return summary.latency_ms, summary.dropped, sum(w.received for w in watchers)


def test_forty_viewers_do_not_move_verdict_latency(tmp_path, runner):
    frames = [part_image(i, is_red(i), height=1080, width=1920) for i in range(75)]
    video = write_video(tmp_path / "line-1080p.avi", frames, fps=30)
    alone, dropped_alone, _ = inspect_video(video, runner, viewers=0)
    watched, dropped_watched, received = inspect_video(video, runner, viewers=VIEWERS)
    print(f"no viewers: p50/p99 {alone['p50']:.1f}/{alone['p99']:.1f} ms, {dropped_alone} dropped; "
          f"{VIEWERS} viewers: p50/p99 {watched['p50']:.1f}/{watched['p99']:.1f} ms, {dropped_watched} dropped")
    assert received > 0, "the reading viewers got the stream"
    assert watched["p50"] <= 1.5 * alone["p50"] + 5.0
    assert watched["p99"] <= 2.0 * alone["p99"] + 20.0
    assert dropped_watched <= dropped_alone + 4 + len(frames) // 10  # drops swing by a few on a busy machine
