"""A Markdown table of bundles' report.json: accuracy cost and ONNX Runtime CPU speed side by side.

    | precision | recipe | image AUROC | AUROC drop | score rank corr | max map err | ORT CPU ms/frame | vs FP32 |

Image AUROC is on the dataset's test split when the export had one (else on held-out nominal and
painted-defect images, marked *); errors are against the FP32 torch pipeline (for FP16 also the
emulated FP16 error, what a GPU will show); the latency is ONNX Runtime's CPU provider on the exporting
machine, batch 1, p50 of single-frame calls.
"""

from __future__ import annotations

import json
from pathlib import Path

from ddad_edge.bundle import REPORT_NAME, read_bundle

HEADER = ("| precision | recipe | steps | image AUROC | AUROC drop | score rank corr | max map err | "
          "ORT CPU ms/frame | vs FP32 file |")


def _fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def bundle_table(bundles: list[Path]) -> str:
    """The table's Markdown text (header, separator, one row per bundle)."""
    rows = [HEADER, "|" + "---|" * (HEADER.count("|") - 1)]
    for path in bundles:
        bundle = read_bundle(Path(path))
        report = json.loads(bundle.file(REPORT_NAME).read_text())
        test, fid = report.get("test_split"), report["fidelity"]
        scores = test if test and test.get("auroc") is not None else fid
        mark = "" if scores is test else "*"
        latency = report["latency"]
        map_err = f"{fid['map_max_rel']:.2e} of max"
        emulated = (report.get("precision_details") or {}).get("emulated_fp16_error")
        if emulated:  # ONNX Runtime on a CPU runs part of an FP16 file in FP32: show the device estimate too
            map_err += f" (FP16 device est. {emulated['map_max_rel']:.2e})"
        rows.append(
            f"| {report['precision']} | {report['recipe']} | {bundle.manifest['graph']['steps']} | "
            f"{_fmt(scores.get('auroc'), '.4f')}{mark} | {_fmt(scores.get('auroc_drop'), '+.4f')} | "
            f"{fid['score_rank_correlation']:.4f} | {map_err} | "
            f"{latency['this_file']['p50_ms']:.1f} | {_fmt(latency.get('speedup_vs_fp32'), '.2f')}x |")
    return "\n".join(rows)
