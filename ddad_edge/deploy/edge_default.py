"""The sampler `ddad-edge export` takes when not told: the fastest one within the edge's fidelity budget.

Fewer network calls are always faster, so the fastest sampler is the fewest-step distilled student; but a
student can lose more than it gains (on the hard synthetic set the 1-step student scored image AUROC 0.548
against its teacher's 0.901, while the 2-step one kept 0.893). So the default is the fewest-step student whose
distillation report (distill/report_steps_K.json, on the run's labelled test split) puts its image AUROC at
most metrics.AUROC_BUDGET below the teacher's: the rule by which the benchmark matrix picks its default edge
variant from its speed/fidelity frontier (benchmarks/README.md). A student whose report has no AUROC (a run
without a labelled test split) is taken as before, with a line that says its fidelity is unmeasured; when
every measured student is beyond the budget, the teacher is. Every choice is said in one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from ddad_edge.metrics import AUROC_BUDGET, within_auroc_budget


def measured_aurocs(run_path: Path, steps: int) -> tuple[float | None, float | None, str]:
    """(the K-step sampler's image AUROC, its teacher's, the report it came from) from the run's distillation
    reports: a student row of K steps, or a saved intermediate teacher of K steps; the teacher is DDAD's
    10-step grid where the report has it, else the grid the students were distilled from. (None, None, "")
    where no report measured it."""
    for report in sorted((Path(run_path) / "distill").glob("report_steps_*.json")):
        try:
            rows = json.loads(report.read_text()).get("rows") or []
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
        mine = [r for r in rows if r.get("steps") == steps and r.get("label") in ("student", "teacher")
                and r.get("image_auroc") is not None]
        teacher = ([r for r in rows if r.get("label") == "teacher (DDAD grid)"] or
                   [r for r in rows if r.get("label") == "teacher"])
        if mine and teacher and teacher[0].get("image_auroc") is not None:
            return float(mine[-1]["image_auroc"]), float(teacher[0]["image_auroc"]), str(report)
    return None, None, ""


def default_steps(run_path: Path, students: list[int], log: Callable[[str], None] = print) -> int | None:
    """The export's default steps for a run with distilled `students` (module docstring); None: the
    teacher's own grid."""
    for k in sorted(students):
        auroc, teacher, report = measured_aurocs(run_path, k)
        if auroc is None:
            log(f"using the distilled {k}-step sampler of {run_path}, the fewest steps; its fidelity is unmeasured "
                "(no image AUROC in its distillation report: a run without a labelled test split) (--steps to "
                "choose another)")
            return k
        if within_auroc_budget(teacher - auroc):
            log(f"using the distilled {k}-step sampler of {run_path}: the fewest steps within the edge's budget "
                f"(image AUROC {auroc:.3f} against the teacher's {teacher:.3f}, at most {100 * AUROC_BUDGET:g} "
                f"point below; {report}) (--steps to choose another)")
            return k
        log(f"not the {k}-step student by default: its image AUROC {auroc:.3f} is more than "
            f"{100 * AUROC_BUDGET:g} point below the teacher's {teacher:.3f} ({report}); --steps {k} takes it anyway")
    if students:
        log("no distilled student is within the edge's budget: using the teacher's own sampler "
            "(--steps to choose another)")
    return None
