"""Rule ``walk_ceiling``: mIoU of the random walk with ground-truth affinity, next to the seeds.

Reads the seeds shards of every scored split and the instance masks (``SegmentationObject/``, which
VOC ships for its segmentation splits and the embedded dataset writes too) and writes rows in the
layout of ``voc_miou.csv`` plus a ``bg_power`` column: per split one ``seeds`` row and one
``random_walk_gt_affinity`` row for each background power of ``random_walk.ceiling_bg_powers`` and
``random_walk.bg_power`` (see :mod:`vitaff.diagnostics.walk_ceiling`); ``used`` marks the configured
power. Ids without an instance mask are skipped, as the score skips ids without ground truth.

Choosing ``random_walk.bg_power``: the smallest power whose train-split ceiling is within 2 points of
the highest (:func:`best_bg_power`, ``python -m vitaff.diagnostics.stages.walk_ceiling --choose
results/walk_ceiling.csv``). The walk's best background power depends on how the seeds are distributed
(weak seeds on the bodies need a large power, so that the background channel does not swamp them),
and picking it on train keeps val held out.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from vitaff.data.classes import VOC, ClassList, read_classes
from vitaff.data.voc import INSTANCE_DIR, load_mask
from vitaff.errors import MissingFileError
from vitaff.metrics import ConfusionAccumulator
from vitaff.random_walk import refine_seeds
from vitaff.seeds import seed_labels
from vitaff.stages import _cli
from vitaff.scoring import parse_inputs, score_row
from vitaff.store import open_shards, write_csv
from vitaff.diagnostics.walk_ceiling import instance_affinity



def ceiling_powers(random_walk: dict) -> list[float]:
    """The background powers walked: ``ceiling_bg_powers`` and ``bg_power``, sorted, no repeats."""
    return sorted({float(p) for p in random_walk.get("ceiling_bg_powers", [])} | {float(random_walk["bg_power"])})


def best_bg_power(table: pd.DataFrame, split: str = "train", tolerance: float = 2.0) -> float:
    """The smallest background power whose ``random_walk_gt_affinity`` mIoU on ``split`` of a
    ``walk_ceiling.csv`` table is within ``tolerance`` points of the best one.

    Why the smallest near-best rather than the best: a learned affinity leaks across object borders,
    and the larger the power, the weaker the background channel that has to stop the leak (embedded
    data, train split: ceiling 63.9 at power 32 and 65.5 at 64, the learned walk 52.1 and 49.9).
    """
    rows = table[(table["stage"] == "random_walk_gt_affinity") & (table["split"] == split)]
    if rows.empty:
        raise ValueError(f"no random_walk_gt_affinity rows for split {split!r}")
    rows = rows.sort_values("bg_power", kind="stable")
    near = rows[rows["mIoU"] >= rows["mIoU"].max() - tolerance]
    return float(near["bg_power"].iloc[0])


def split_rows(split: str, seed_paths, voc_root: Path, mask_dir: str, params: dict,
               classes: ClassList = VOC) -> list[dict]:
    if not (voc_root / INSTANCE_DIR).is_dir():
        raise MissingFileError(f"{voc_root / INSTANCE_DIR} not found: the walk ceiling needs VOC's instance masks "
                                "(SegmentationObject/, part of VOC2012 and of the embedded dataset)")
    aff, rw = params["affinity"], params["random_walk"]
    readers, _ = open_shards(seed_paths)
    powers = ceiling_powers(rw)
    seeds, n = ConfusionAccumulator(classes.num_labels), 0
    walked = {p: ConfusionAccumulator(classes.num_labels) for p in powers}
    for reader in readers:
        for k, image_id in enumerate(tqdm(reader.ids, desc=f"walk ceiling {split}", mininterval=10)):
            gt_path, inst_path = voc_root / mask_dir / f"{image_id}.png", voc_root / INSTANCE_DIR / f"{image_id}.png"
            if not (gt_path.is_file() and inst_path.is_file()):
                continue
            size = reader.sizes[k]
            gt = load_mask(gt_path, size, classes.num_fg)
            maps, present = reader.read_present(k, "maps").astype(np.float32), reader.classes[k]
            ideal = instance_affinity(load_mask(inst_path, size, num_fg=None), aff["feature_stride"], aff["radius"])
            seeds.update(gt, seed_labels(maps, present, params["seeds"]["bg_threshold"]))
            for power, acc in walked.items():
                acc.update(gt, refine_seeds(maps, present, ideal, stride=aff["feature_stride"], radius=aff["radius"],
                                            beta=rw["beta"], logt=rw["logt"], bg_power=power))
            n += 1
    rows = [{**score_row("seeds", split, seeds, n, classes.labels), "bg_power": np.nan, "used": False}]
    for power, acc in walked.items():
        rows.append({**score_row("random_walk_gt_affinity", split, acc, n, classes.labels), "bg_power": power,
                     "used": power == float(rw["bg_power"])})
    return rows


def main(args, params) -> None:
    rows = []
    for split, stage, paths in parse_inputs(args.inputs):
        if stage == "seeds":
            rows += split_rows(split, paths, Path(params["voc_root"]), params["dataset"]["mask_dir"], params,
                               read_classes(args.classes))
    write_csv(pd.DataFrame(rows).round(2), args.out)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--choose":  # print the chosen power of a walk_ceiling.csv
        print(f"{best_bg_power(pd.read_csv(sys.argv[2])):g}")
        sys.exit(0)
    p = _cli.split_stores_parser(__doc__)
    p.add_argument("--classes", required=True, help="results/data/classes.csv")
    _cli.run(main, p)
