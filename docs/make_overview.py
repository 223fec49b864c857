"""Make the README's overview picture: defective parts, their reconstructions and anomaly maps.

    python docs/make_overview.py --run demo-out/runs/widget --steps 2 --out docs/images/overview.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from ddad_edge.data.folders import list_test, load_images
from ddad_edge.model.build import build_pipeline
from ddad_edge.model.checkpoint import open_run
from ddad_edge.model.pipeline import frames_to_tensor
from ddad_edge.overlay import heatmap_overlay


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("docs/images/overview.png"))
    ap.add_argument("--scale", type=int, default=3)
    args = ap.parse_args()
    run = open_run(args.run)
    samples = list_test(run.cfg.data.root, run.cfg.data.category)
    picks, kinds = [], set()
    for s in samples:  # one image of each defect kind
        if s.label == 1 and s.kind not in kinds:
            kinds.add(s.kind)
            picks.append(s.path)
    size = run.cfg.model.image_size
    images = load_images(picks, size)
    pipe = build_pipeline(run, steps=args.steps, eta=0.0)
    with torch.no_grad():
        x = frames_to_tensor(images)
        x0 = pipe.reconstruct(x)
        maps, _ = pipe.scorer(x, x0)
    recon = ((x0.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    vmax = float(maps.max())
    rows = [np.concatenate([images[i], recon[i], heatmap_overlay(images[i], maps[i, 0].numpy(), vmax=vmax)], 1)
            for i in range(len(picks))]
    sheet = np.concatenate(rows, 0)
    sheet = cv2.resize(sheet, None, fx=args.scale, fy=args.scale, interpolation=cv2.INTER_NEAREST)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), sheet[:, :, ::-1])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
