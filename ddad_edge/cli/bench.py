"""`ddad-edge bench`: per-stage latency percentiles of a bundle, optionally against the DDAD-S reference."""

from __future__ import annotations

import shlex
import sys
import tempfile
from pathlib import Path
from typing import Optional

import typer

from ddad_edge.cli.app import app
from ddad_edge.errors import DdadError


def _print_row(row: dict) -> None:
    s = row["stages_ms"]
    typer.echo(f"{row['variant']['name']}: {row['frames']} frames in {row['calls']} calls of {row['batch']} "
               f"(warm-up {row['warmup_calls']} calls excluded)")
    typer.echo(f"  {'stage':<9}{'p50':>10}{'p90':>10}{'p99':>10}{'max':>10}  ms")
    for stage in ("decode", "resize", "infer", "decide", "frame"):
        p = s[stage]
        typer.echo(f"  {stage:<9}{p['p50']:>10.3f}{p['p90']:>10.3f}{p['p99']:>10.3f}{p['max']:>10.3f}")
    extra = [f"{row['fps']:.2f} fps", f"peak RSS {row['peak_rss_mb']} MiB ({row['peak_rss_scope']})",
             f"{row['cores_busy']} cores busy"]
    if row.get("device_memory_mb") is not None:
        extra.append(f"GPU memory {row['device_memory_mb']:g} MiB")
    if row.get("gflops_per_frame"):
        extra.append(f"{row['gflops_per_frame']:g} GFLOP/frame, {row['achieved_gflops']:g} GFLOP/s")
    if row.get("speedup_vs_reference") and not row.get("reference"):
        extra.append(f"{row['speedup_vs_reference']:g}x the reference")
    typer.echo("  " + "; ".join(extra))
    if row.get("power"):
        rails = {k: v for k, v in row["power"].items() if k.startswith("power_mw.")}
        typer.echo("  power: " + ", ".join(f"{k[9:]} {v['mean']:g} mW mean" for k, v in rails.items()))


def cross_device_note(rows: list[dict]) -> str | None:
    """A line when the reference and the bundle's row ran on different devices (CPU against GPU), else None."""
    from ddad_edge.bench.report import reference_row, row_on_cpu

    ref, row = reference_row(rows), rows[-1]
    if ref is None or row_on_cpu(ref) == row_on_cpu(row):
        return None
    on_cpu = row_on_cpu(row)
    return (f"the reference ran on {ref['variant'].get('device_label', ref['variant'].get('device'))}, "
            f"{row['variant']['name']} on {'the CPU' if on_cpu else 'a GPU'}: the speed-up compares two devices "
            f"(--torch-device {'cpu' if on_cpu else 'cuda'} times the reference on the same one)")


@app.command("bench")
def bench_command(
    bundle: Path = typer.Option(..., "--bundle", help="bundle folder (from ddad-edge export)"),
    backend: str = typer.Option("auto", "--backend",
                                help="auto | onnxruntime | openvino | openvino-bf16 | tensorrt | torch"),
    unmeasured_mode: bool = typer.Option(False, "--unmeasured-mode",
                                         help="time an OpenVINO execution mode (openvino, openvino-bf16) that the "
                                              "bundle's export did not measure or refused: its row has no fidelity"),
    batch: int = typer.Option(1, "--batch", help="frames per inference call"),
    warmup: int = typer.Option(3, "--warmup", help="inference calls run first and not counted"),
    iters: int = typer.Option(30, "--iters", help="inference calls measured"),
    reference: bool = typer.Option(False, "--reference",
                                   help="also time the DDAD-S reference (torch eager, 10 steps, wide_resnet101_2)"),
    reference_warmup: int = typer.Option(1, "--reference-warmup", help="warm-up calls of the reference"),
    reference_iters: int = typer.Option(3, "--reference-iters",
                                        help="measured calls of the reference (seconds each on a CPU)"),
    reference_threads: list[int] = typer.Option([0], "--reference-threads",
                                                help="torch threads of the reference on a CPU (0: torch's "
                                                     "default); repeat to try several: the fastest is the "
                                                     "reference. On a GPU it is timed once"),
    torch_device: str = typer.Option("auto", "--torch-device",
                                     help="where torch runs the reference and --backend torch: auto (the GPU "
                                          "where torch sees one, as DDAD runs), cpu, cuda, cuda:N"),
    images: Optional[Path] = typer.Option(None, "--images", help="read these image files (default: synthetic)"),
    frame_size: str = typer.Option("640x480", "--frame-size", help="size of the synthetic camera frames, WxH"),
    threads: int = typer.Option(0, "--threads", help="ONNX Runtime intra-op threads (0: its default)"),
    ort_profile: bool = typer.Option(False, "--ort-profile",
                                     help="also profile the graph per operator in ONNX Runtime (CPU)"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the rows (with raw samples) as JSON"),
    md: Optional[Path] = typer.Option(None, "--md", help="write a Markdown report"),
    plot: Optional[Path] = typer.Option(None, "--plot",
                                        help="write latency vs image AUROC as a PNG (.svg, .pdf: that format)"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar"),
) -> None:
    """Time a bundle per stage (decode, resize, inference, decision, whole frame): p50/p90/p99/max, fps, memory."""
    from ddad_edge.bench.frames import file_source_factory, image_files, parse_frame_size, write_synthetic_frames
    from ddad_edge.bench.machine import describe_machine
    from ddad_edge.bench.outputs import check_outputs
    from ddad_edge.bench.report import add_speedups
    from ddad_edge.bench.run import bench_bundle, bench_reference
    from ddad_edge.bundle import Precision, read_bundle
    from ddad_edge.output_paths import bundle_files

    # Everything the user gave is checked before the bundle loads and long before the last frame is timed:
    # a measurement can take minutes, and its results must have somewhere to go.
    outputs = check_outputs(json_out, md, plot, inputs=(*bundle_files(bundle), ("--images", images)))
    files = image_files(images) if images is not None else None
    size = parse_frame_size(frame_size) if images is None else None
    target = read_bundle(bundle)  # a bad bundle fails before any frame is written
    machine = describe_machine()
    peak = machine["cpu"].get("fp32_peak_gflops")
    command = "ddad-edge " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else "ddad-edge bench"
    with tempfile.TemporaryDirectory(prefix="ddad-bench-") as tmp:
        if files is None:
            files = write_synthetic_frames(Path(tmp), *size)
        source = file_source_factory(files)
        rows = []
        if reference:
            try:
                import torch  # noqa: F401
            except ImportError:
                raise DdadError("--reference runs the DDAD-S reference in torch, which is not installed here: "
                                "run it on a machine with ddad-edge[train]") from None
            from ddad_edge.bench.run import torch_device_of

            device = torch_device_of(torch_device)  # a device torch cannot use fails before any timing
            # thread counts matter on the CPU; on a GPU the reference is timed once
            for n in (reference_threads if device.type == "cpu" else [0]):
                rows.append(bench_reference(source, reference_warmup, reference_iters, peak, progress,
                                            threads=n or None, device=str(device)))
        rows.append(bench_bundle(target, source, backend, batch, warmup, iters, threads, cpu=machine["cpu"],
                                 show_progress=progress, torch_device=torch_device,
                                 unmeasured_mode=unmeasured_mode))
        if ort_profile:
            from ddad_edge.bench.ort_profile import profile_onnx
            from ddad_edge.inspect.preprocess import Preprocessor

            probe_frames = Preprocessor(target.image_size).prepare_batch([source(1).grab(1).frames[0].image])
            rows[-1]["ort_profile"] = profile_onnx(target.model_path, probe_frames, threads=threads,
                                                   int8=target.precision is Precision.INT8)
    add_speedups(rows)
    note = cross_device_note(rows)
    if note:
        typer.echo(f"note: {note}")
        rows[-1]["note"] = note
    if machine.get("jetson"):
        j = machine["jetson"]
        mode = j.get("power_mode") or {}
        typer.echo(f"{j['model']}: power mode {mode.get('name', 'unknown')} (id {mode.get('id')}; nvpmodel -q)")
    for row in rows:
        row["machine"], row["command"] = machine, command
        _print_row(row)
    if rows[-1].get("ort_profile"):
        prof = rows[-1]["ort_profile"]
        typer.echo(f"  ONNX Runtime profile: {prof['run_ms']:.1f} ms per run; by part: " + ", ".join(
            f"{p['name']} {100 * p['share']:.0f}%" for p in prof["by_part"]))
    _write_outputs(outputs, rows, machine, command, note)


def _write_outputs(outputs: dict[str, Path], rows: list[dict], machine: dict, command: str,
                   note: str | None) -> None:
    """Write the checked output files (outputs.check_outputs), the JSON rows first, and say where each went.
    A write that fails anyway (a full disk) does not stop the others; it is one line at the end."""
    from ddad_edge.bench.report import machine_lines, make_parent, markdown_table, plot_latency_vs_auroc, write_json
    from ddad_edge.bundle import atomic_write_bytes

    def write_md(path: Path) -> None:
        text = ["# ddad-edge bench", "", f"Command: `{command}`", "", *machine_lines(machine), "",
                markdown_table(rows), *(["", f"Note: {note}."] if note else [])]
        make_parent(path)
        atomic_write_bytes(path, "\n".join(text).encode())

    writers = {"json": ("rows, JSON", lambda p: write_json(p, rows)), "md": ("report, Markdown", write_md),
               "plot": ("latency vs AUROC plot", lambda p: plot_latency_vs_auroc(rows, p))}
    failed = []
    for kind, path in outputs.items():
        what, write = writers[kind]
        try:
            write(path)
        except DdadError as exc:
            failed.append(f"--{kind}: {exc}")
            continue
        typer.echo(f"written: {path} ({what})")
    if failed:
        raise DdadError("; ".join(failed))
