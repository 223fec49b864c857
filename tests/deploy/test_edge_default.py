"""The export's default sampler: the fewest-step distilled student within the edge's fidelity budget, read
from distillation reports written on disk in the layout `ddad-edge distill` writes (rows as its report has
them; the AUROCs are the hard set's measured ones, typed in as inputs)."""

from __future__ import annotations

import json

import pytest

from ddad_edge.deploy.edge_default import default_steps, measured_aurocs
from ddad_edge.metrics import AUROC_BUDGET


def report(run, to_steps: int, student: float | None, teacher_ddad: float | None = 0.901,
           teacher: float = 0.902, teacher_steps: int = 8) -> None:
    rows = [{"label": "teacher", "round": 0, "steps": teacher_steps, "image_auroc": teacher}]
    if teacher_ddad is not None:
        rows.append({"label": "teacher (DDAD grid)", "round": 0, "steps": 10, "image_auroc": teacher_ddad})
    rows += [{"label": "student", "round": 1, "steps": to_steps, "image_auroc": student},
             {"label": "naive teacher", "round": 1, "steps": to_steps, "image_auroc": 0.99}]
    (run / "distill").mkdir(parents=True, exist_ok=True)
    (run / "distill" / f"report_steps_{to_steps}.json").write_text(json.dumps({"rows": rows}))


def test_the_fewest_steps_within_budget_not_the_fewest_steps(tmp_path):
    report(tmp_path, 1, 0.548)
    report(tmp_path, 2, 0.893)
    said: list[str] = []
    assert default_steps(tmp_path, [1, 2, 8], said.append) == 2
    assert said[0].startswith("not the 1-step student by default: its image AUROC 0.548 is more than 1 point "
                              "below the teacher's 0.901")
    assert "--steps 1 takes it anyway" in said[0]
    assert "fewest steps within the edge's budget (image AUROC 0.893 against the teacher's 0.901" in said[1]
    assert len(said) == 2 and all("\n" not in line for line in said)


@pytest.mark.parametrize("student, chosen", [(0.901 - AUROC_BUDGET, 1), (0.901 - AUROC_BUDGET - 0.001, 8)])
def test_the_budget_is_one_point_at_its_edge(tmp_path, student, chosen):
    """At exactly one point below: within. Just beyond: not; the 8-step intermediate teacher, measured in the
    same report (0.902), is the next within it."""
    report(tmp_path, 1, student)
    assert default_steps(tmp_path, [1, 8], lambda _: None) == chosen


def test_the_teacher_when_every_student_is_beyond_the_budget(tmp_path):
    report(tmp_path, 1, 0.5)
    report(tmp_path, 2, 0.7)
    said: list[str] = []
    assert default_steps(tmp_path, [1, 2], said.append) is None
    assert said[-1].startswith("no distilled student is within the edge's budget: using the teacher's own sampler")


def test_an_unmeasured_student_is_taken_and_said_so(tmp_path):
    """No report (as a student stood in by the test suite's tiny project), or one without labels: the fewest
    steps, as before the budget existed, with a line that says its fidelity is unknown."""
    said: list[str] = []
    assert default_steps(tmp_path, [2, 4], said.append) == 2
    assert "its fidelity is unmeasured" in said[0]
    report(tmp_path, 2, None, teacher_ddad=None)
    assert measured_aurocs(tmp_path, 2) == (None, None, "")


def test_the_teacher_of_the_ddad_grid_first_and_the_distilled_grid_without_it(tmp_path):
    report(tmp_path, 2, 0.893, teacher_ddad=None, teacher=0.95)
    auroc, teacher, source = measured_aurocs(tmp_path, 2)
    assert (auroc, teacher) == (0.893, 0.95) and source.endswith("report_steps_2.json")
    report(tmp_path, 2, 0.893)
    assert measured_aurocs(tmp_path, 2)[1] == 0.901
    (tmp_path / "distill" / "report_steps_4.json").write_text("{not json")  # a damaged report is passed over
    assert measured_aurocs(tmp_path, 2)[0] == 0.893
