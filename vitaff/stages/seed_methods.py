"""Rule ``seed_methods``: one table of every seed source through the same refinement (SPEC 8).

Gathers each method's score table (``results/methods/<method>/miou.csv``, written by the ``score``
stage from that method's seeds, CRF and random-walk stores; for ``seeds.method`` the main job's
score file) into ``results/seed_methods.csv``: one
row per method x stage (seeds, crf, random_walk) x scored split, a ``method`` column first, the
methods in the config's order.
"""

from __future__ import annotations

import pandas as pd

from vitaff.errors import VitaffError
from vitaff.stages import _cli
from vitaff.store import write_csv


def gather(methods: list[str], tables: list[pd.DataFrame]) -> pd.DataFrame:
    """The per-method tables stacked with a leading ``method`` column (rows in the given order)."""
    if len(methods) != len(tables):
        raise VitaffError(f"{len(methods)} methods but {len(tables)} score tables")
    return pd.concat([t.assign(method=m)[["method", *t.columns]] for m, t in zip(methods, tables)],
                     ignore_index=True)


def main(args, params) -> None:
    tables = [pd.read_csv(path) for path in args.scores]
    write_csv(gather(args.methods, tables), args.out)


if __name__ == "__main__":
    p = _cli.parser(__doc__)
    p.add_argument("--methods", nargs="+", required=True)
    p.add_argument("--scores", nargs="+", required=True, help="one score CSV per method, in --methods order")
    p.add_argument("--out", required=True)
    _cli.run(main, p)
