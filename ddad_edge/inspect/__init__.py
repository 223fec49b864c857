"""The device half's inspection loop: frame sources, preprocessing, decision, reject outputs, sinks.

No torch here (not even lazily): a Jetson runs this with numpy, OpenCV and its runner (TensorRT or ONNX
Runtime). Entry points: `loop.run_loop` (the loop), `sources.open_source`, `reject.open_reject_output`,
`profile.profile_loop` (per-stage timing for the benchmark); `ddad-edge run` wires them together.
"""
