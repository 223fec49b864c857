"""The torch half's networks and their inference: UNet, schedule, conditioned sampler, backbone, scoring, the
one graph, and the torch reference runner.

Importing this package registers that runner in runtime/'s backend table (by its dotted path: torch is
imported only when the torch backend is opened), so runtime/ serves `torch` without importing model/.
"""

from ddad_edge.runtime.backends import register_backend

register_backend("torch", "ddad_edge.model.torch_runner:TorchRunner",
                 missing="the torch backend needs torch ({exc}); install ddad-edge[train]")
