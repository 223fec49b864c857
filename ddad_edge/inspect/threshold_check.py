"""Is a decision threshold plausible for this bundle? Refuse the absurd, warn about the doubtful.

A bundle records what scores looked like at export: the held-out nominal images' (`nominal_scores`) and,
where the dataset had a labelled test split, the defective images' (`test_scores`). A threshold far
outside them decides nothing: at or below 0 (scores are maxima of distances, never negative) or below every
nominal score, every part is NG; ten times above every score ever seen, every part passes. Those are
refused in one line with the numbers. Above the median defective score (half of the known defects pass)
or below the nominal p95 (more than one good part in twenty rejected) is a warning, since a line may have
its reasons. Thresholds are editable by hand in manifest.yaml by design (the decision lives outside the
graph); the exported value is sealed beside them, so a change is said at every start with both values.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from ddad_edge.errors import DdadError

IMPLAUSIBLE_FACTOR = 10.0  # a threshold this many times above every score seen passes every part


def _stats(manifest: Mapping[str, Any], key: str, fields: tuple[str, ...]) -> dict[str, float] | None:
    """manifest[key] as floats when every field is a finite number (old bundles lack them: no check)."""
    entry = manifest.get(key)
    if not isinstance(entry, dict):
        return None
    try:
        values = {f: float(entry[f]) for f in fields}
    except (KeyError, TypeError, ValueError):
        return None
    return values if all(math.isfinite(v) for v in values.values()) else None


def threshold_notes(threshold: float, manifest: Mapping[str, Any], what: str) -> list[str]:
    """Warnings about `threshold` (finite) for the bundle of `manifest`; raises DdadError where it decides
    nothing. `what` names where it came from (`--threshold`, `thresholds.image in manifest.yaml`)."""
    nominal = _stats(manifest, "nominal_scores", ("min", "median", "p95", "max"))
    defective = _stats(manifest, "test_scores", ("defective", "defective_min", "defective_median",
                                                 "defective_max"))
    fix = "use a threshold between them, or remove the edit" if "manifest" in what else \
        "give a threshold between them, or leave --threshold out for the bundle's"
    seen = ""
    if nominal:
        seen = (f"held-out nominal scores at export: min {nominal['min']:.4g}, median {nominal['median']:.4g}, "
                f"max {nominal['max']:.4g}")
    if defective:
        seen += (f"{'; ' if seen else ''}defective test scores: min {defective['defective_min']:.4g}, "
                 f"median {defective['defective_median']:.4g}, max {defective['defective_max']:.4g}")
    if threshold <= 0:
        raise DdadError(f"{what} {threshold:g} is not above 0: scores are never negative, so every part would "
                        f"be NG{f' ({seen})' if seen else ''}; {fix if seen else 'give a threshold above 0'}")
    if nominal and threshold < nominal["min"]:
        raise DdadError(f"{what} {threshold:.4g} is below every held-out nominal score, so every part would be "
                        f"NG ({seen}); {fix}")
    highest = max([nominal["max"]] + ([defective["defective_max"]] if defective else [])) if nominal else None
    if highest is not None and highest > 0 and threshold > IMPLAUSIBLE_FACTOR * highest:
        raise DdadError(f"{what} {threshold:.4g} is over {IMPLAUSIBLE_FACTOR:g} times the highest score seen at "
                        f"export, so every part would pass ({seen}); {fix}")
    notes = []
    if nominal and threshold < nominal["p95"]:
        notes.append(f"{what} {threshold:.4g} is below the nominal p95 {nominal['p95']:.4g}: more than 1 in 20 "
                     f"good parts will be rejected ({seen})")
    if defective and threshold > defective["defective_median"]:
        notes.append(f"{what} {threshold:.4g} is above the median defective test score: at least half of the "
                     f"{int(defective['defective'])} defective test images would pass ({seen})")
    return notes


def threshold_edit_note(manifest: dict[str, Any]) -> str | None:
    """A line naming every threshold edited in manifest.yaml since export (exported and current values),
    or None. `thresholds_exported` is sealed (manifest.SEALED_KEYS); `thresholds` is not, by design."""
    exported, current = manifest.get("thresholds_exported"), manifest.get("thresholds")
    if not isinstance(exported, dict) or not isinstance(current, dict):
        return None
    changed = [f"{key} {exported.get(key)!r} -> {current.get(key)!r}" for key in sorted(set(exported) | set(current))
               if current.get(key) != exported.get(key)]
    if not changed:
        return None
    return f"thresholds edited in manifest.yaml since export (exported -> now): {', '.join(changed)}"
