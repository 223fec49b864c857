"""Prometheus metrics of the inspection loop (`ddad-edge run --metrics-port N`), served by prometheus_client.

Bound to 127.0.0.1 unless `--metrics-host` says otherwise. What a scrape of `http://HOST:PORT/metrics` holds:

  ddad_frames_total                     sequence numbers accounted for (inspected + dropped), as in the summary
  ddad_verdicts_total{verdict}          inspected frames by verdict: OK, NG, FAULT
  ddad_dropped_frames_total             frames grabbed but never inspected (the loop was busy)
  ddad_reject_pulses_total              reject pulses planned (NG, and FAULT under --on-fault reject),
                                        before overlapping pulses merge on the line
  ddad_missed_rejects_total             NG verdicts too late for the ejector, or after the output failed
  ddad_stage_seconds{stage}             histogram per stage: decode, preprocess, infer, decide, reject, sinks,
                                        and loop (their sum); batch stages are divided by the batch size,
                                        as in the run summary
  ddad_latency_seconds                  histogram of capture → verdict
  ddad_last_score                       the anomaly score of the latest inspected frame

Each counter moves once per `frame` or `dropped` record of events.jsonl, so a scrape and the event log agree.
Metrics live in a registry of their own (not the process-wide default), so two loops in one process, or a
test, never share counters.
"""

from __future__ import annotations

import math
from typing import Any

from ddad_edge.errors import DdadError, missing_package
from ddad_edge.inspect.bind_host import check_bind_host
from ddad_edge.inspect.decide import Verdict
from ddad_edge.inspect.frame import Dropped
from ddad_edge.inspect.result import STAGES, FrameResult
from ddad_edge.inspect.sinks import Sink

# 0.5 ms to 5 s: a Jetson frame takes a few ms to a few hundred; slower than seconds is a fault anyway
BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
OWN_STAGES = ("decode", "sinks")  # each frame's own time; the other stages are shared by its batch


def import_prometheus_client() -> Any:
    """prometheus_client, or a one-line DdadError naming the package."""
    try:
        import prometheus_client
    except ImportError:
        raise missing_package("prometheus_client", "--metrics-port", "pip install prometheus-client") from None
    return prometheus_client


class MetricsServer(Sink):
    """A sink that counts what the loop produces and serves it on `host:port` (port 0: any free port;
    see `.port`). Closing it stops the HTTP server."""

    name = "metrics"
    records = True  # called after the other sinks, so the frame's sink time is known

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        check_bind_host(host, "--metrics-host")
        prom = import_prometheus_client()
        self.registry = prom.CollectorRegistry()
        r = self.registry
        self.frames = prom.Counter("ddad_frames", "Frames accounted for: inspected + dropped", registry=r)
        self.verdicts = prom.Counter("ddad_verdicts", "Inspected frames by verdict", ["verdict"], registry=r)
        for verdict in Verdict:
            self.verdicts.labels(verdict.value)  # every verdict shows, at 0 until it happens
        self.dropped = prom.Counter("ddad_dropped_frames", "Frames grabbed but never inspected", registry=r)
        self.reject_pulses = prom.Counter("ddad_reject_pulses", "Reject pulses planned (before merging)",
                                          registry=r)
        self.missed_rejects = prom.Counter(
            "ddad_missed_rejects", "NG verdicts too late for the ejector or after the output failed", registry=r)
        self.stage = prom.Histogram("ddad_stage_seconds", "Time per frame of each loop stage", ["stage"],
                                    buckets=BUCKETS_S, registry=r)
        for stage in (*STAGES, "loop"):
            self.stage.labels(stage)
        self.latency = prom.Histogram("ddad_latency_seconds", "Capture to verdict", buckets=BUCKETS_S, registry=r)
        self.score = prom.Gauge("ddad_last_score", "Anomaly score of the latest inspected frame", registry=r)
        try:
            self._server, self._thread = prom.start_http_server(port, addr=host, registry=r)
        except OSError as exc:
            raise DdadError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
        self.host, self.port = self._server.server_address[:2]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def on_result(self, result: FrameResult) -> None:
        self.frames.inc()
        self.verdicts.labels(result.verdict.value).inc()
        if result.reject.start is not None:
            self.reject_pulses.inc()
        if result.reject.missed:
            self.missed_rejects.inc()
        batch = max(result.batch_size, 1)
        for stage in (*STAGES, "loop"):
            ms = result.stages_ms.get(stage)
            if ms is not None:
                share = ms if stage in OWN_STAGES or stage == "loop" else ms / batch
                self.stage.labels(stage).observe(share / 1e3)
        if result.decided_at:
            self.latency.observe(max(0.0, result.decided_at - result.frame.t_capture))
        if result.score is not None and math.isfinite(result.score):
            self.score.set(result.score)

    def on_dropped(self, dropped: Dropped) -> None:
        self.frames.inc()
        self.dropped.inc()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2.0)
