"""ddad-edge: DDAD-S anomaly detection from training to a production line.

Importing this package imports neither torch nor any hardware library, so `import ddad_edge` works on a
Jetson with only numpy, OpenCV and TensorRT, and on a CPU machine without them.
"""

__version__ = "0.1.0"
