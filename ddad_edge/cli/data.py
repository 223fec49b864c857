"""`ddad-edge synth`: write the synthetic dataset (and optionally a conveyor video) for tests and the demo."""

from __future__ import annotations

from pathlib import Path

import typer

from ddad_edge.cli.app import app
from ddad_edge.data.synth_sets import Difficulty, make_synthetic_set


@app.command("synth")
def synth(
    out: Path = typer.Option(..., "--out", help="Folder to write into; the dataset goes to OUT/CATEGORY."),
    category: str = typer.Option("widget", "--category", help="Category folder name."),
    size: int = typer.Option(64, "--size", help="Image side in pixels (64, 128 or 256 suit the presets)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed writes the same files."),
    n_train: int = typer.Option(200, "--n-train", help="Nominal training images."),
    n_test_good: int = typer.Option(30, "--n-test-good", help="Nominal test images."),
    n_test_defect: int = typer.Option(40, "--n-test-defect", help="Defective test images, spread over kinds."),
    video: bool = typer.Option(False, "--video", help="Also write OUT/conveyor.avi and its ground truth."),
    difficulty: Difficulty = typer.Option(Difficulty.EASY, "--difficulty", help="easy: discs on a belt with "
                                          "plain defects; hard: a woven surface with subtle defects (stains, thin "
                                          "scratches, small holes, texture changes), meant to separate variants."),
) -> None:
    """Write a synthetic MVTec-layout dataset: machined discs with scratches, holes, stains, missing pieces
    (easy), or a woven surface with subtle defects (hard)."""
    from ddad_edge.data.folders import list_test, list_train
    from ddad_edge.output_paths import check_output_folder

    check_output_folder(out, "--out")
    root = make_synthetic_set(out, difficulty, category=category, size=size, n_train=n_train,
                              n_test_good=n_test_good, n_test_defect=n_test_defect, seed=seed)
    test = list_test(root)
    kinds = sorted({s.kind for s in test if s.label == 1})
    typer.echo(f"wrote {root}: {len(list_train(root))} train/good, "
               f"{sum(s.label == 0 for s in test)} test/good, {sum(s.label for s in test)} defective "
               f"({', '.join(kinds)}) at {size}x{size} px ({difficulty.value} set), with masks in ground_truth/ "
               "and synth.yaml")
    if video:
        from ddad_edge.data.video import make_conveyor_video

        path = Path(out) / "conveyor.avi"
        truth = make_conveyor_video(path, seed=seed)
        n_bad = sum(p.defective for p in truth.parts)
        typer.echo(f"wrote {path}: {len(truth.frames)} frames of {truth.size[0]}x{truth.size[1]} at "
                   f"{truth.fps:g} fps, {len(truth.parts)} parts ({n_bad} defective); "
                   f"ground truth in {path.with_suffix('.json')}")
