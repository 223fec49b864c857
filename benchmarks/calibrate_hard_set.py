"""Choose the hard set's defect strength: evaluate a trained teacher on the hard set made at several strengths.

    python benchmarks/calibrate_hard_set.py --run benchmarks/work/fidelity/runs/wide_resnet50_2 \\
        --strengths 1,1.1,1.15,1.25 --scoring pixel

The hard set (`ddad-edge synth --difficulty hard`, `ddad_edge/data/surface.py`) should leave the tiny
preset's 10-step FP32 teacher between 0.85 and 0.95 image AUROC, so that what fewer steps, INT8 or another
backbone cost can show. A strength changes only the defects' contrast, never a draw, so the nominal images
of a seed are the same at every strength: one teacher, trained once on the hard set's train/good images (as
`fidelity_bundles.py` trains it), is evaluated here with `ddad-edge evaluate` on the test split made at each
strength. Set `surface.HARD_STRENGTH` to the strength whose AUROC lands in the band, and say so in
benchmarks/README.md with the numbers this prints.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repository's ddad_edge, when run as a script
sys.path.insert(0, str(HERE))

from fidelity_bundles import CATEGORY, cli, csv  # noqa: E402

BAND = (0.85, 0.95)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="a teacher trained on the hard set's train/good")
    p.add_argument("--out", type=Path, default=HERE / "work" / "calibration", help="test sets and metrics go here")
    p.add_argument("--strengths", default="0.5,0.75,1,1.5")
    p.add_argument("--scoring", default="pixel", help="fused, pixel or feature (`ddad-edge evaluate --scoring`)")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--n-train", type=int, default=200, help="as the teacher's data: the test images then match it")
    p.add_argument("--n-test-good", type=int, default=60)
    p.add_argument("--n-test-defect", type=int, default=80)
    p.add_argument("--seed", type=int, default=0, help="the seed the teacher's data was made with")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from ddad_edge.data.surface import make_surface_dataset

    a = parse_args(argv)
    results = []
    for strength in [float(s) for s in csv(a.strengths)]:
        data = a.out / f"strength-{strength:g}"
        if not (data / CATEGORY).is_dir():
            make_surface_dataset(data, CATEGORY, a.image_size, n_train=a.n_train, n_test_good=a.n_test_good,
                                 n_test_defect=a.n_test_defect, seed=a.seed, strength=strength)
        metrics = a.out / f"strength-{strength:g}.{a.scoring}.json"
        started = time.monotonic()
        if not metrics.is_file():
            cli(["evaluate", "--run", str(a.run), "--data", str(data), "--category", CATEGORY, "--eta", "0",
                 "--scoring", a.scoring, "--out", str(a.out / f"eval-{strength:g}-{a.scoring}"),
                 "--json", str(metrics)])
        m = json.loads(metrics.read_text())
        results.append((strength, m, time.monotonic() - started))
    print(f"teacher {a.run}, {a.scoring} scoring, eta 0; target image AUROC {BAND[0]}-{BAND[1]}")
    print("| strength | image AUROC [95 % interval] | pixel AUROC | AUPRO | in band | wall s |")
    print("|---|---|---|---|---|---|")
    for strength, m, wall in results:
        inside = BAND[0] <= m["image_auroc"] <= BAND[1]
        print(f"| {strength:g} | {m['image_auroc']:.3f} [{m['image_auroc_low']:.3f}, {m['image_auroc_high']:.3f}] | "
              f"{m['pixel_auroc']:.3f} | {m['aupro']:.3f} | {'yes' if inside else 'no'} | {wall:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
