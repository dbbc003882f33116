"""A seeded uniform sample of mutmut's mutant names, for a mutation score that fits a short run:
prints N names (one a line) drawn from every mutant in ``mutants/**/*.meta`` whose name matches one
of the patterns. The mutants must exist (a first ``mutmut run`` generates them all).

    mutmut run $(python tools/mutation_sample.py 80 'vitaff.affinity.*')
    python tools/mutation_score.py $(python tools/mutation_sample.py 80 'vitaff.affinity.*')

The score of a sample of n estimates the module's score with a standard error of
sqrt(p (1 - p) / n) (3.6 points at p = 0.88, n = 80).
"""

from __future__ import annotations

import fnmatch
import json
import random
import sys
from pathlib import Path


def sample(n: int, patterns: list[str], seed: int = 0) -> list[str]:
    names = sorted(name for meta in Path("mutants").rglob("*.meta")
                   for name in json.loads(meta.read_text()).get("exit_code_by_key", {})
                   if any(fnmatch.fnmatch(name, p) for p in patterns))
    return sorted(random.Random(seed).sample(names, min(n, len(names))))


def main(argv: list[str]) -> int:
    if len(argv) < 2 or not argv[0].isdigit():
        print("usage: python tools/mutation_sample.py N PATTERN [PATTERN ...]", file=sys.stderr)
        return 2
    names = sample(int(argv[0]), argv[1:])
    if not names:
        print("no mutants found: run `mutmut run` once to generate them", file=sys.stderr)
        return 1
    print("\n".join(names))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
