"""Mutation score of `make mutation`: killed / all mutants whose name matches one of the patterns
given (the same patterns `mutmut run` was given), read from mutmut's ``mutants/**/*.meta``.

    python tools/mutation_score.py 'vitaff.metrics.*' ...     # prints the score and every survivor
"""

from __future__ import annotations

import fnmatch
import json
import sys
from collections import Counter
from pathlib import Path

# mutmut's exit codes: 1 = a test failed (killed), 0 = survived, 33 = no test reaches the function,
# 34 = skipped, 36 = timeout (counted as killed: the mutant made the tests hang), None = not run
KILLED = {1, 3, -24, 36, 24, 152, 255, -11, -9}


def main(patterns: list[str]) -> int:
    rows = {}
    for meta in Path("mutants").rglob("*.meta"):
        for name, code in json.loads(meta.read_text()).get("exit_code_by_key", {}).items():
            if any(fnmatch.fnmatch(name, p) for p in patterns):
                rows[name] = code
    if not rows:
        print("no mutants found: run `make mutation` first", file=sys.stderr)
        return 1
    status = Counter()
    survivors = []
    for name, code in sorted(rows.items()):
        kind = "not run" if code is None else "killed" if code in KILLED else "survived" if code == 0 else \
            "no tests" if code == 33 else "skipped" if code == 34 else f"exit {code}"
        status[kind] += 1
        if kind in ("survived", "no tests"):
            survivors.append(f"{kind}: {name}")
    counted = sum(status.values()) - status["not run"] - status["skipped"]
    print("\n".join(survivors))
    print(dict(status))
    print(f"mutation score: {status['killed']} / {counted} killed = {100 * status['killed'] / max(counted, 1):.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
