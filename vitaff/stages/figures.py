"""Rule ``figures``: stage-by-stage panels (image, GT, seeds, CRF, affinity, refined) for a few images."""

from __future__ import annotations

from pathlib import Path

from vitaff.inspect import inspect_image
from vitaff.stages import _cli
from vitaff.data.index import read_index
from vitaff.store import save_png
from vitaff.viz import stack_rows


def main(args, params) -> None:
    ids = sorted(read_index(args.index)["id"])[: params["figures"]["n_images"]]
    rows = [inspect_image(i, Path(params["voc_root"]), Path(args.results), params["seeds"]["bg_threshold"],
                          params["affinity"]["radius"], params["device"]) for i in ids]
    save_png(stack_rows(rows), args.out)


if __name__ == "__main__":
    p = _cli.parser(__doc__)
    p.add_argument("--index", required=True)
    p.add_argument("--results", default="results")
    p.add_argument("--out", required=True)
    _cli.run(main, p)
