"""Latency benchmark: per-stage percentiles of a bundle's runner against the DDAD-S reference.

  timing.py      the timing core: warm-up excluded, raw per-frame samples kept, percentiles from them
  frames.py      the frames a benchmark reads (synthetic parts as camera-sized JPEG files, or a folder)
  machine.py     what the numbers were measured on: CPU and its estimated peak, memory, Jetson power
  tegrastats.py  power and clocks on a Jetson while a benchmark runs
  reference.py   the DDAD-S reference pipeline (torch eager) and FLOP counts           — torch, lazily
  ort_profile.py per-operator and per-part time of a graph from ONNX Runtime's profiler
  report.py      rows as JSON, a Markdown table and the latency-vs-AUROC plot

Nothing here imports torch at module level: `ddad-edge bench` without `--reference` runs on a device
that has no torch.
"""
