"""Rule ``score_segmentation``: results/segmentation_miou.csv, the step-3 table (SPEC 9).

Rows: the pseudo labels of the scored split themselves (``result = pseudo_labels``, ``mode =
labels``: the same PNGs and the same metrics code as the ``random_walk`` row of voc_miou.csv), then
every network's rows written by the ``segment`` rule (one per inference mode: the network trained
on the pseudo labels, and, when ``segmentation.gt_reference`` is on, the same network trained on
the ground-truth masks, the fully-supervised upper bound). Columns: result, mode, init, split,
n_images, the IoU of background and every class of the dataset, and mIoU, in percent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vitaff.data.classes import read_classes
from vitaff.segmentation import PSEUDO_LABELS_RESULT, score_label_dir
from vitaff.stages import _cli
from vitaff.data.index import read_index
from vitaff.store import write_csv

KEYS = ["result", "mode", "init", "split", "n_images"]


def main(args, params) -> None:
    mask_dir = Path(params["voc_root"]) / params["dataset"]["mask_dir"]
    ids = list(read_index(args.index)["id"])
    classes = read_classes(args.classes)
    acc, n = score_label_dir(args.pseudo_labels, ids, lambda i: mask_dir / f"{i}.png", classes.num_labels)
    iou = acc.iou() * 100
    rows = [pd.DataFrame([{"result": PSEUDO_LABELS_RESULT, "mode": "labels", "init": "", "split": args.split,
                           "n_images": n, **dict(zip(classes.labels, iou)), "mIoU": np.nanmean(iou)}]).round(2)]
    rows += [pd.read_csv(path, keep_default_na=True) for path in args.networks]
    table = pd.concat(rows, ignore_index=True)[[*KEYS, *classes.labels, "mIoU"]]
    write_csv(table, args.out)


if __name__ == "__main__":
    p = _cli.parser(__doc__)
    p.add_argument("--index", required=True, help="index CSV of the scored split")
    p.add_argument("--classes", required=True, help="results/data/classes.csv")
    p.add_argument("--split", required=True)
    p.add_argument("--pseudo-labels", required=True, help="pseudo-label PNG directory of the scored split")
    p.add_argument("--networks", nargs="+", required=True, help="score CSVs of the segment rule")
    p.add_argument("--out", required=True)
    _cli.run(main, p)
