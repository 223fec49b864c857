"""What the matrix needs from a fidelity bundle beyond its numbers: the data set they were measured on,
and the per-image test scores that pair it with the teacher's bundle (a paired interval of the AUROC drop).

Reports written before the export kept per-image scores have none; the plot then shows the drop without
an interval and says so. Data sets made before `ddad-edge synth --difficulty` existed have a synth.yaml
without `difficulty`: they are the easy set, the only one there was.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


def scores_of_test_split(report: Path, mode: str | None = None) -> dict[str, list] | None:
    """{"labels", "scores"} of a report.json's test split (list_test order), or None where it kept none; with
    `mode`, those of that execution mode (e.g. openvino-bf16) where the export ran it on the test split."""
    try:
        saved = json.loads(Path(report).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if mode is not None:
        saved = (saved.get("execution_modes") or {}).get(mode) or {}
    test = saved.get("test_split") or {}
    if not test.get("scores") or len(test.get("labels") or []) != len(test["scores"]):
        return None
    return {"labels": test["labels"], "scores": test["scores"]}


def data_set_of(manifest: dict[str, Any]) -> str:
    """A few words naming the data set a bundle's test split came from: the synthetic set and its
    difficulty where the dataset's synth.yaml says so, else the dataset folder."""
    src = manifest.get("source") or {}
    root = Path(src.get("data") or "") / (src.get("category") or "")
    info_path = root / "synth.yaml"
    if not info_path.is_file():
        return f"dataset {root}"
    info = yaml.safe_load(info_path.read_text()) or {}
    difficulty = info.get("difficulty", "easy")
    what = ("woven surface, subtle defects" if difficulty == "hard" else "discs on a belt")
    n_test = int(info.get("test_good", 0)) + sum((info.get("test_defect") or {}).values())
    return f"the {difficulty} synthetic set ({what}; {n_test} test images, seed {info.get('seed')})"


def fidelity_note(rows: list[dict[str, Any]]) -> str:
    """The line under the plot: which model and data set the fidelity came from."""
    sets = sorted({r.get("fidelity_set") or "the easy synthetic set (discs on a belt; recorded before sets had a "
                   "difficulty)" for r in rows if r.get("fidelity")})
    models = sorted({r["fidelity_model"].split(" (")[-1].rstrip(")") for r in rows if r.get("fidelity_model")})
    if not sets:
        return "no variant has a fidelity report: speed only"
    return (f"Fidelity: {' and '.join(models) or 'trained bundles'} on {'; '.join(sets)}; "
            "speed: DDAD-S graphs at full size, random weights (benchmarks/README.md).")
