"""`ddad-edge run`: the inspection loop on the line (camera → runner → decision → GPIO reject)."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import typer

from ddad_edge.cli.app import app
from ddad_edge.errors import DdadError

EXIT_FAULT_STOP = 3  # the loop stopped itself on a fault (--on-fault stop)
EXIT_OUTPUT_FAILED = 4  # a reject or READY line failed while running (a restart reopens it, or says why not)


SIM_LOG = "gpio-sim.jsonl"  # level changes of simulated lines, in the output folder


def _source_spec(camera, csi, gst, url, video, images, width, height, fps, realtime, keep, stall_s):
    from ddad_edge.inspect.grabber import Backoff
    from ddad_edge.inspect.sources import SourceKind, SourceSpec

    given = [(kind, value) for kind, value in ((SourceKind.CAMERA, camera), (SourceKind.CSI, csi),
                                                 (SourceKind.GST, gst), (SourceKind.URL, url),
                                                 (SourceKind.VIDEO, video), (SourceKind.IMAGES, images))
             if value is not None]
    if len(given) != 1:
        raise DdadError("give exactly one frame source: --camera, --csi, --gst, --url, --video or --images")
    (kind, target), = given
    if realtime and kind is not SourceKind.VIDEO:
        raise DdadError("--realtime applies to --video only (cameras and streams are live already)")
    return SourceSpec(kind, str(target), width=width, height=height, fps=fps, realtime=realtime, keep=keep,
                      stall_s=stall_s, backoff=Backoff())


@app.command("run")
def run_command(
    bundle: Path = typer.Option(Path("bundle"), "--bundle", help="bundle folder (from ddad-edge export)"),
    backend: str = typer.Option("auto", "--backend",
                                help="auto | tensorrt | onnxruntime | openvino | openvino-bf16"),
    unmeasured_mode: bool = typer.Option(False, "--unmeasured-mode",
                                         help="run an OpenVINO execution mode (openvino, openvino-bf16) that the "
                                              "bundle's export did not measure or refused: fidelity unknown"),
    camera: Optional[str] = typer.Option(None, "--camera", help="V4L2 camera: /dev/videoN or N"),
    csi: Optional[str] = typer.Option(None, "--csi", help="Jetson CSI camera sensor id (needs GStreamer)"),
    gst: Optional[str] = typer.Option(None, "--gst", help="GStreamer pipeline ending in appsink"),
    url: Optional[str] = typer.Option(None, "--url", help="stream: rtsp://... or http://... (MJPEG)"),
    video: Optional[Path] = typer.Option(None, "--video", help="video file: every frame, in order"),
    images: Optional[Path] = typer.Option(None, "--images", help="image folder (recursive): every image"),
    realtime: bool = typer.Option(False, "--realtime", help="replay --video at its frame rate, like a camera"),
    width: int = typer.Option(0, "--width", help="camera frame width (0: device default)"),
    height: int = typer.Option(0, "--height", help="camera frame height (0: device default)"),
    fps: float = typer.Option(0.0, "--fps", help="camera frame rate (0: device default)"),
    stall_s: float = typer.Option(3.0, "--stall-s",
                                  help="a live source silent this long counts as lost (raise for triggered cameras)"),
    roi: Optional[str] = typer.Option(None, "--roi", help="x,y,w,h crop of the frame in pixels"),
    batch: int = typer.Option(1, "--batch", help="frames per inference call"),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="image threshold (default: bundle's)"),
    debounce: str = typer.Option("1/1", "--debounce", help="k/n: NG when k of the last n frames are above"),
    deadline_ms: float = typer.Option(0.0, "--deadline-ms", help="inference slower than this is a FAULT (0: none)"),
    on_fault: str = typer.Option("reject", "--on-fault", help="reject | stop | ignore"),
    gpio: str = typer.Option("none", "--gpio", help="none | sim | jetson:BOARD:18 | gpiod:/dev/gpiochip0:17"),
    ready_gpio: Optional[str] = typer.Option(None, "--ready-gpio", help="READY line, same forms as --gpio"),
    active_low: bool = typer.Option(False, "--active-low", help="lines are active low (idle high)"),
    pulse_ms: float = typer.Option(50.0, "--pulse-ms", help="reject pulse width"),
    delay_ms: float = typer.Option(0.0, "--delay-ms", help="travel time capture → ejector (0: fire at once)"),
    max_late_ms: float = typer.Option(10.0, "--max-late-ms", help="latest a pulse may still start"),
    out: Optional[Path] = typer.Option(None, "--out", help="output folder (default runs/inspect-<time>)"),
    events: Optional[Path] = typer.Option(None, "--events", help="event log (default OUT/events.jsonl)"),
    events_max_mb: float = typer.Option(0.0, "--events-max-mb", help="rotate the event log at this size (0: never)"),
    ng_images: bool = typer.Option(True, "--ng-images/--no-ng-images", help="save NG frames with heatmaps"),
    ng_max_images: int = typer.Option(10_000, "--ng-max-images", help="NG image quota (count)"),
    ng_max_mb: float = typer.Option(1024.0, "--ng-max-mb", help="NG image quota (MB)"),
    preview: bool = typer.Option(False, "--preview", help="show frames in a window (needs a GUI OpenCV)"),
    http_port: int = typer.Option(0, "--http-port", help="serve a status page and MJPEG stream (0: off)"),
    http_host: str = typer.Option("127.0.0.1", "--http-host", help="address the status page binds to"),
    metrics_port: int = typer.Option(0, "--metrics-port",
                                     help="serve Prometheus metrics at /metrics on this port (0: off)"),
    metrics_host: str = typer.Option("127.0.0.1", "--metrics-host", help="address the metrics endpoint binds to"),
    max_frames: int = typer.Option(0, "--max-frames", help="stop after this many frames (0: no limit)"),
) -> None:
    """Inspect frames on the line: verdicts OK/NG/FAULT, reject pulses, events.jsonl and NG images."""
    from ddad_edge.bundle import read_bundle
    from ddad_edge.inspect.bind_host import check_bind_host
    from ddad_edge.inspect.decide import Debounce, FaultPolicy, threshold_from_bundle
    from ddad_edge.inspect.frame_gate import FrameGate
    from ddad_edge.inspect.gpio_lines import GpioKind, GpioSpec, check_distinct_lines, check_sim_log
    from ddad_edge.inspect.loop import LoopConfig
    from ddad_edge.inspect.preprocess import Roi
    from ddad_edge.inspect.reject import RejectTiming
    from ddad_edge.inspect.sources import check_source
    from ddad_edge.inspect.threshold_check import threshold_edit_note, threshold_notes

    # Everything a user can mistype is checked before the model loads: one line, at once (the numbers
    # already are: cli/numbers.py).
    check_bind_host(http_host, "--http-host")
    check_bind_host(metrics_host, "--metrics-host")
    spec = _source_spec(camera, csi, gst, url, video, images, width, height, fps, realtime, batch, stall_s)
    try:
        policy = FaultPolicy(on_fault)
    except ValueError:
        raise DdadError(f"--on-fault {on_fault!r}: choose reject, stop or ignore") from None
    gpio_spec = GpioSpec.parse(gpio)
    ready_spec = GpioSpec.parse(ready_gpio, option="--ready-gpio") if ready_gpio else None
    if ready_spec is not None:
        check_distinct_lines(gpio_spec, ready_spec)
    uses_sim = gpio_spec.kind is GpioKind.SIM or (ready_spec is not None and ready_spec.kind is GpioKind.SIM)
    out = out or Path("runs") / time.strftime("inspect-%Y%m%d-%H%M%S")  # created once the source is open
    events = _check_output_paths(out, events, bundle, video, images)
    if uses_sim:
        check_sim_log(out / SIM_LOG)
    config_roi = Roi.parse(roi) if roi else None
    window = Debounce.parse(debounce)
    # The source last among the cheap checks: a camera not plugged in yet exits 75 (the service retries),
    # so a mistyped option must be reported (exit 2) before it, not only once the camera is there.
    check_source(spec)
    loaded = read_bundle(bundle)
    chosen = threshold_from_bundle(loaded.manifest, threshold)
    notes = threshold_notes(chosen, loaded.manifest,
                            "--threshold" if threshold is not None else "thresholds.image in manifest.yaml")
    notes += [note for note in [threshold_edit_note(loaded.manifest)] if note]
    gate = FrameGate.from_manifest(loaded.manifest)
    if gate is None:  # a bundle made before the gate: said once here, and in the start record
        notes.append("this bundle has no frame-quality gate (exported before it): dark, white, blurred or damaged "
                     "frames get verdicts; export the bundle again to have them FAULT")
    config = LoopConfig(threshold=chosen, debounce=window, batch=batch, gate=gate,
                        deadline_ms=deadline_ms, on_fault=policy, roi=config_roi, max_frames=max_frames)
    timing = RejectTiming(pulse_s=pulse_ms / 1e3, delay_s=delay_ms / 1e3, max_late_s=max_late_ms / 1e3)
    outputs = _Outputs(out, events, events_max_mb, ng_images, ng_max_images, ng_max_mb, preview, http_port,
                       http_host, gpio_spec, ready_spec, not active_low, timing, metrics_port, metrics_host)
    graph = loaded.manifest.get("graph") if isinstance(loaded.manifest.get("graph"), dict) else {}
    info = {"bundle": str(bundle), "backend": backend, "out": str(out), "gpio": gpio, "delay_ms": delay_ms,
            "pulse_ms": pulse_ms, "precision": loaded.manifest.get("precision"), "steps": graph.get("steps"),
            "frame_gate": gate is not None, **({"warnings": notes} if notes else {})}
    with _status_lines_on_stderr():
        _inspect(spec, loaded, backend, config, outputs, info, unmeasured_mode)


def _check_output_paths(out: Path, events: Optional[Path], bundle: Path, video: Optional[Path],
                        images: Optional[Path]) -> Path:
    """The event log's path, once it and the output folder are known to be writable and clear of the run's
    inputs: the event log never replaces a bundle file or the video, and nothing is written into the image
    folder (NG images there would be inspected by the next run) or the bundle. One line if not."""
    from ddad_edge.output_paths import bundle_files, check_output_file, check_output_folder

    sources = (("--video", video), ("--images", images))
    check_output_folder(out, "--out", (("the bundle", bundle), *sources))
    return check_output_file(events or out / "events.jsonl", "--events" if events else "--out", "events.jsonl",
                             (*bundle_files(bundle), *sources))


@dataclass(frozen=True)
class _Outputs:
    """Where results go: the sinks and the reject output, as the options ask."""

    out: Path
    events: Path  # checked (_check_output_paths): OUT/events.jsonl unless --events names another file
    events_max_mb: float
    ng_images: bool
    ng_max_images: int
    ng_max_mb: float
    preview: bool
    http_port: int
    http_host: str
    gpio_spec: Any
    ready_spec: Any
    active_high: bool
    timing: Any
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"

    def open(self, threshold: float, opened: list) -> tuple[list, object]:
        """Create the output folder, open the sinks (event log last) and the reject output, appending each
        to `opened`."""
        from ddad_edge.inspect.ng_images import NgImageSink, NgQuota
        from ddad_edge.inspect.reject import open_reject_output
        from ddad_edge.inspect.sinks import EventLog, EventLogSink

        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DdadError(f"cannot create the output folder {self.out}: {exc.strerror or exc}") from None
        sinks = []
        if self.ng_images:
            quota = NgQuota(self.ng_max_images, int(self.ng_max_mb * 1e6))
            sinks.append(NgImageSink(self.out / "ng", quota, threshold, run=_run_stamp(self.out / "ng")))
            opened.append(sinks[-1])
        if self.http_port:
            from ddad_edge.inspect.status_server import StatusServer

            sinks.append(StatusServer(self.http_host, self.http_port, out=self.out))
            opened.append(sinks[-1])
            typer.echo(f"status page: {sinks[-1].url}", err=True)
        if self.preview:
            from ddad_edge.inspect.preview import PreviewSink

            sinks.append(PreviewSink())
            opened.append(sinks[-1])
        if self.metrics_port:
            from ddad_edge.inspect.metrics_http import MetricsServer

            sinks.append(MetricsServer(self.metrics_host, self.metrics_port))  # before the event log: both record
            opened.append(sinks[-1])
            typer.echo(f"metrics: {sinks[-1].url}", err=True)
        log = EventLog(self.events, max_bytes=int(self.events_max_mb * 1e6))
        sinks.append(EventLogSink(log))
        opened.append(sinks[-1])
        reject = open_reject_output(self.gpio_spec, self.timing, self.ready_spec, active_high=self.active_high,
                                    sim_log=self.out / SIM_LOG)
        opened.append(reject)
        for sink in sinks:
            if hasattr(sink, "watch_reject"):  # the status page shows pulses fired and merged as they happen
                sink.watch_reject(reject)
        return sinks, reject


def _run_stamp(ng_folder: Path) -> str:
    """The start time that names this run's NG images (`<stamp>_<seq>_<score>.png`), made unique in the
    folder: a service restarted into the same --out within the second would otherwise write the earlier
    run's names again, replacing its images."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate, n = stamp, 1
    while ng_folder.is_dir() and next(ng_folder.glob(f"{candidate}_*"), None) is not None:
        n += 1
        candidate = f"{stamp}-{n}"
    return candidate


class _status_lines_on_stderr:
    """Status lines of the loop (camera lost, READY dropped, quota reached) on stderr while it runs."""

    def __enter__(self) -> None:
        self.handler = logging.StreamHandler(sys.stderr)
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        self.logger = logging.getLogger("ddad_edge.inspect")
        self.level = self.logger.level
        self.logger.addHandler(self.handler)
        self.logger.setLevel(logging.INFO)

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.level)


def _inspect(spec, bundle, backend, config, outputs: _Outputs, info: dict, unmeasured_mode: bool = False) -> None:
    import threading

    from ddad_edge.cli import lost_interrupt
    from ddad_edge.inspect.loop import install_stop_signals, run_loop
    from ddad_edge.inspect.ng_images import NgImageSink
    from ddad_edge.inspect.run_lock import RunLock
    from ddad_edge.inspect.sources import SourceKind, open_source
    from ddad_edge.inspect.summary import StopReason
    from ddad_edge.runtime.backends import open_runner

    # A file source (image folder, video not replayed in real time) is opened before any output is created,
    # so a source it refuses (no images, an unreadable video) leaves nothing behind; it reads nothing until
    # the loop asks. A live source is opened last: it starts grabbing at once.
    file_source = spec.kind is SourceKind.IMAGES or (spec.kind is SourceKind.VIDEO and not spec.realtime)
    opened: list = []  # closed in reverse if anything fails before the loop owns them
    try:
        runner = open_runner(bundle, backend, **({"unmeasured_mode": True} if unmeasured_mode else {}))
        opened.append(runner)
        if backend == "auto":  # the page and the start record say which backend auto chose
            info["backend"] = f"auto: {runner.backend}"
        source = open_source(spec) if file_source else None
        if source is not None:
            opened.append(source)
        lock = RunLock(outputs.events)  # a second run into the same event log is refused here
        opened.append(lock)
        sinks, reject = outputs.open(config.threshold, opened)
        if source is None:
            source = open_source(spec)
    except BaseException:
        for thing in reversed(opened):
            thing.close()
        raise
    for note in info.get("warnings", []):  # at every start, once the run is sure to begin; also in the start record
        typer.echo(f"warning: {note}", err=True)
    stop, hurry = threading.Event(), threading.Event()  # the first and the second SIGINT/SIGTERM
    restore = install_stop_signals(stop, hurry)
    if lost_interrupt.take():  # a Ctrl-C while loading that Python could not raise: the first Ctrl-C, now
        stop.set()
    try:
        with runner:
            summary = run_loop(runner, source, config, reject, sinks, stop, info=info, hurry=hurry)
    finally:
        restore()
        lock.close()
    typer.echo(summary.text())
    for sink in sinks:
        if isinstance(sink, NgImageSink):
            typer.echo(f"NG images: {sink.saved} saved in {sink.folder}, {sink.skipped + sink.failed} not saved")
    typer.echo(f"events: {sinks[-1].log.path}")
    if summary.stop_reason is StopReason.FAULT:
        sys.exit(EXIT_FAULT_STOP)
    if summary.stop_reason is StopReason.OUTPUT_ERROR:
        sys.exit(EXIT_OUTPUT_FAILED)
