"""Rules ``explain_segmentation`` / ``explain_perturbation``: combine the shards' per-image rows
into the result tables (exact: confusion counts add, per-image AP and correctness are averaged
over all images at once; missing or overlapping shards are an error)."""

from __future__ import annotations

import pandas as pd

from vitaff import explain_eval as ev
from vitaff.stages import _cli
from vitaff.store import write_csv


def main(args, params) -> None:
    frame = pd.concat([pd.read_csv(p) for p in args.inputs], ignore_index=True)
    table = ev.summarise_segmentation(frame) if args.test == "segmentation" else ev.summarise_perturbation(frame)
    write_csv(table.round(4), args.out)
    _cli.log.info("%s\n%s", args.test, table.to_string(index=False))


if __name__ == "__main__":
    p = _cli.parser(__doc__)
    p.add_argument("--test", choices=("segmentation", "perturbation"), required=True)
    p.add_argument("--inputs", nargs="+", required=True)
    p.add_argument("--out", required=True)
    _cli.run(main, p)
