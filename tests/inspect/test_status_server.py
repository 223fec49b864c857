"""The status server on 127.0.0.1, without a browser: the bind rule shared with the metrics endpoint, its caps
on viewers and connections, idle timeouts, one encode per frame for every viewer, the states the page
shows (STARTING, READY, FAULT, STALE, STOPPED), and that it serves only what it made."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import pytest

from ddad_edge.cli import main
from ddad_edge.errors import DdadError
from ddad_edge.inspect.decide import Verdict
from ddad_edge.inspect.frame import Frame
from ddad_edge.inspect.metrics_http import MetricsServer
from ddad_edge.inspect.reject import RejectTicket
from ddad_edge.inspect.result import FrameResult
from ddad_edge.inspect.status_server import StatusServer
from tests.inspect.media import part_image


def result(seq: int, verdict: Verdict = Verdict.OK, score: float = 0.05, reason: str = "") -> FrameResult:
    now = time.monotonic()
    frame = Frame(seq, now, time.time(), part_image(seq, verdict is Verdict.NG))
    return FrameResult(frame, verdict, score=score, reason=reason, decided_at=now + 0.004,
                       reject=RejectTicket(now if verdict is Verdict.NG else None, ""),
                       stages_ms={"decode": 1.0, "preprocess": 0.5, "infer": 2.0, "decide": 0.1, "reject": 0.1,
                                  "sinks": 0.2})


def until(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the server did not get there in time"
        time.sleep(0.01)


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


@pytest.mark.parametrize("option", ["--http-host", "--metrics-host"])
@pytest.mark.parametrize("host", ["", "  "])
def test_an_empty_bind_address_is_refused_for_both_servers(tmp_path, red_bundle, capsys, option, host):
    port_option = "--http-port" if option == "--http-host" else "--metrics-port"
    code = main(["run", "--images", str(tmp_path), "--bundle", str(red_bundle.path), port_option, "8765",
                 option, host, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and f"{option} {host!r} is empty" in err and "0.0.0.0" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("make", [StatusServer, MetricsServer])
def test_the_servers_refuse_an_empty_address_themselves(make):
    with pytest.raises(DdadError, match="is empty"):
        make("", 0)


def test_viewers_and_connections_are_capped_and_idle_ones_closed():
    server = StatusServer(port=0, max_viewers=2, max_connections=4, idle_s=0.5)
    socks = []
    try:
        for _ in range(2):  # two viewers take the two stream places
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sock.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
            socks.append(sock)
        until(lambda: server.viewers == 2)
        status, body = get(server.port, "/stream.mjpg")
        assert status == 503 and b"too many viewers" in body
        # the refused viewer's handler gives its slot back once it has finished, a moment after the client read
        until(lambda: server.connections == 2)
        # a third and fourth connection that send nothing fill the connection slots; the fifth is turned away
        idle = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(2)]
        until(lambda: server.connections == 4)
        extra = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        assert extra.recv(200).startswith(b"HTTP/1.0 503")
        extra.close()
        # the idle ones are closed after idle_s, and their slots come back
        t0 = time.monotonic()
        for sock in idle:
            sock.settimeout(5)
            assert sock.recv(100) == b"", "the server closed the idle connection"
            sock.close()
        assert time.monotonic() - t0 < 3
        time.sleep(0.2)
        assert get(server.port, "/status.json")[0] == 200
    finally:
        for sock in socks:
            sock.close()
        server.close()


def test_each_frame_is_encoded_once_for_every_viewer():
    server = StatusServer(port=0, stream_fps=1000)
    stop, received = threading.Event(), []

    def view() -> None:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
            data = b""
            while not stop.is_set():
                try:
                    chunk = sock.recv(1 << 16)
                except socket.timeout:
                    break
                if not chunk:
                    break
                data += chunk
            received.append(data.count(b"\xff\xd8"))

    viewers = [threading.Thread(target=view) for _ in range(6)]
    for v in viewers:
        v.start()
    time.sleep(0.3)
    try:
        for seq in range(20):
            server.on_result(result(seq))
            time.sleep(0.03)
        time.sleep(0.3)
    finally:
        stop.set()
        server.close()
        for v in viewers:
            v.join(5)
    assert len(received) == 6 and all(n >= 5 for n in received), received
    assert server.encodes <= 20, f"{server.encodes} encodes for 20 frames and 6 viewers"


def test_the_states_the_page_shows_and_what_is_served(tmp_path):
    server = StatusServer(port=0, stale_s=0.4, out=tmp_path)
    try:
        server.on_start({"source": "video x.avi", "bundle": "/b/bottle-int8", "precision": "int8", "steps": 2,
                         "backend": "onnxruntime", "threshold": 0.5}, lambda m: None)
        status = json.loads(get(server.port, "/status.json")[1])
        assert status["state"] == "STARTING" and status["bundle"]["name"] == "bottle-int8"
        server.on_result(result(0))
        ng = result(1, Verdict.NG, 0.9)
        ng.model_input, ng.anomaly_map = ng.frame.image[:32, :32].copy(), ng.frame.image[:32, :32, 0] / 255.0
        ng.ng_image = "ng/a.png"
        (tmp_path / "ng").mkdir()
        (tmp_path / "ng" / "a.png").write_bytes(b"png bytes")
        server.on_result(ng)
        status = json.loads(get(server.port, "/status.json")[1])
        assert status["state"] == "READY" and (status["frames"], status["OK"], status["NG"]) == (2, 1, 1)
        assert status["yield_pct"] == 50.0 and status["pulses"]["requested"] == 1
        assert status["latency_ms"]["infer"]["p50"] == 2.0 and status["latency_ms"]["latency"]["p50"] > 0
        recent = json.loads(get(server.port, "/recent.json")[1])
        assert [n["seq"] for n in recent["ng"]] == [1] and [r["seq"] for r in recent["results"]] == [1, 0]
        code, thumb = get(server.port, "/ng/1.jpg")
        assert code == 200 and thumb[:2] == b"\xff\xd8"
        assert get(server.port, "/ng/1.png") == (200, b"png bytes")
        for path in ("/ng/0.png", "/ng/7.jpg", "/ng/../ng/a.png", "/ng/a.png", "/../../etc/passwd", "/x"):
            assert get(server.port, path)[0] == 404, path
        trend = json.loads(get(server.port, "/trend.json?minutes=1")[1])
        assert trend["threshold"] == 0.5 and trend["points"][-1]["max"] == pytest.approx(0.9)
        server.on_result(result(2, Verdict.FAULT, None, reason="inference error: boom"))
        status = json.loads(get(server.port, "/status.json")[1])
        assert status["state"] == "FAULT" and status["reason"] == "inference error: boom"
        server.on_result(result(3))
        time.sleep(0.6)
        status = json.loads(get(server.port, "/status.json")[1])
        assert status["state"] == "STALE" and "no frame for" in status["reason"]
        server.on_summary({"stop_reason": "end of source", "pulses_fired": 1, "pulses_merged": 0,
                           "pulses_cancelled": 0})
        status = json.loads(get(server.port, "/status.json")[1])
        assert status["state"] == "STOPPED" and status["pulses"]["fired"] == 1
    finally:
        server.close()
