"""Started by torchrun from tests/train/test_ddp.py: `ddad-edge train` as a user runs it, with spies.

Usage: torchrun --nproc-per-node 2 tests/train/ddp_worker.py EVIDENCE_DIR -- <ddad-edge train arguments>

The spies wrap the real functions (they record, then call through): which checkpoint paths this rank
saved, whether it wrote config.yaml / split.yaml, and the UNet weights it holds when training returns.
Each rank writes them to EVIDENCE_DIR/rank<R>.pt for the test to compare.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> int:
    import torch

    from ddad_edge.cli import main as cli_main
    from ddad_edge.train import diffusion

    evidence, args = Path(sys.argv[1]), sys.argv[sys.argv.index("--") + 1:]
    rank = int(os.environ["RANK"])
    saved: list[str] = []
    prepared: list[str] = []
    fitted = []
    real_save, real_prepare, real_fit = diffusion.save_checkpoint, diffusion.prepare_run, diffusion.fit_diffusion

    def save_spy(path, payload):
        saved.append(str(path))
        return real_save(path, payload)

    def prepare_spy(cfg, out):
        prepared.append(str(out))
        return real_prepare(cfg, out)

    def fit_spy(*a, **k):
        fitted.append(real_fit(*a, **k))
        return fitted[-1]

    diffusion.save_checkpoint, diffusion.prepare_run, diffusion.fit_diffusion = save_spy, prepare_spy, fit_spy
    code = cli_main(["train", *args])
    evidence.mkdir(parents=True, exist_ok=True)
    torch.save({"code": code, "saved": saved, "prepared": prepared,
                "unet": fitted[0].unet.state_dict() if fitted else None,
                "world_size": fitted[0].result.world_size if fitted else None},
               evidence / f"rank{rank}.pt")
    return code


if __name__ == "__main__":
    sys.exit(main())
