"""Mutation score of one module from `mutmut results --all true` (used by scripts/mutation.sh).

usage: python scripts/mutation_score.py RESULTS.txt [PATTERN ...]
Counts the mutants whose names match a PATTERN (fnmatch; all when none is given) by status, prints the
score (killed, timeouts included, over the mutants that were run) and the names of the survivors.
"""

from __future__ import annotations

import fnmatch
import sys
from collections import Counter
from pathlib import Path

KILLED = {"killed", "timeout", "segfault"}  # a mutant that hangs or crashes the tests is caught by them
NOT_RUN = {"not checked", "skipped"}


def main(argv: list[str]) -> int:
    path, patterns = Path(argv[0]), argv[1:] or ["*"]
    statuses: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and "__mutmut_" in name and any(fnmatch.fnmatchcase(name, p) for p in patterns):
            statuses[name] = status.strip()
    counts = Counter(statuses.values())
    run = sum(n for s, n in counts.items() if s not in NOT_RUN)
    killed = sum(counts[s] for s in KILLED)
    score = f"{100 * killed / run:.1f} %" if run else "n/a"
    tally = ", ".join(f"{s} {n}" for s, n in sorted(counts.items()))
    print(f"   {path.parent.name}: {killed} of {run} killed ({score}); {tally}")
    for name, status in sorted(statuses.items()):
        if status not in KILLED | NOT_RUN:
            print(f"     {status}: {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
