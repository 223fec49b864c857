"""`ddad-edge adapt`: the feature extractor adapted to the domain of a run's nominal images."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ddad_edge.cli.app import app


@app.command()
def adapt(
    run: Optional[Path] = typer.Option(None, help="Run folder (default: the latest under ./runs)."),
    epochs: Optional[int] = typer.Option(None, help="Adaptation epochs (default: DDAD's FE epochs)."),
    max_steps: Optional[int] = typer.Option(None),
    device: str = typer.Option("auto"),
) -> None:
    """Adapt the feature extractor to the domain of the run's nominal images."""
    from ddad_edge.model.checkpoint import latest_run, open_run
    from ddad_edge.train.adapt import adapt_extractor
    from ddad_edge.train.run_setup import with_overrides

    r = open_run(run or latest_run())
    r.cfg = with_overrides(r.cfg, "adapt", epochs=epochs, max_steps=max_steps)
    res = adapt_extractor(r, device=device)
    typer.echo(f"adapted {r.cfg.scoring.backbone} for {res.steps} steps in {res.seconds:.0f} s "
               f"(loss {res.first_loss:.4g} → {res.final_loss:.4g}); saved {res.path}")
