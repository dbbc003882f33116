"""Rule ``walk_ceiling``: mIoU of the random walk with ground-truth affinity, next to the seeds.

Reads the seeds shards of every scored split and the instance masks (``SegmentationObject/``, which
VOC ships for its segmentation splits and the embedded dataset writes too) and writes one row per
(stage, split) in the layout of ``voc_miou.csv``: ``seeds`` and ``random_walk_gt_affinity`` (see
:mod:`vitaff.diagnostics.walk_ceiling`). Ids without an instance mask are skipped, as the score skips ids
without ground truth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from vitaff.data.voc import NUM_CLASSES, load_mask
from vitaff.metrics import ConfusionAccumulator
from vitaff.random_walk import refine_seeds
from vitaff.seeds import seed_labels
from vitaff.stages import _cli
from vitaff.stages.score import parse_inputs, score_row
from vitaff.store import open_shards, write_csv
from vitaff.diagnostics.walk_ceiling import instance_affinity

INSTANCE_DIR = "SegmentationObject"


def split_rows(split: str, seed_paths, voc_root: Path, mask_dir: str, params: dict) -> list[dict]:
    if not (voc_root / INSTANCE_DIR).is_dir():
        raise FileNotFoundError(f"{voc_root / INSTANCE_DIR} not found: the walk ceiling needs VOC's instance masks "
                                "(SegmentationObject/, part of VOC2012 and of the embedded dataset)")
    aff, rw = params["affinity"], params["random_walk"]
    readers, _ = open_shards(seed_paths)
    seeds, walked, n = ConfusionAccumulator(NUM_CLASSES), ConfusionAccumulator(NUM_CLASSES), 0
    for reader in readers:
        for k, image_id in enumerate(tqdm(reader.ids, desc=f"walk ceiling {split}", mininterval=10)):
            gt_path, inst_path = voc_root / mask_dir / f"{image_id}.png", voc_root / INSTANCE_DIR / f"{image_id}.png"
            if not (gt_path.is_file() and inst_path.is_file()):
                continue
            size = reader.sizes[k]
            gt = load_mask(gt_path, size)
            maps, classes = reader.read(k, "maps").astype(np.float32), reader.classes[k]
            ideal = instance_affinity(load_mask(inst_path, size), aff["feature_stride"], aff["radius"])
            seeds.update(gt, seed_labels(maps, classes, params["seeds"]["bg_threshold"]))
            walked.update(gt, refine_seeds(maps, classes, ideal, stride=aff["feature_stride"], radius=aff["radius"],
                                           beta=rw["beta"], logt=rw["logt"], bg_power=rw["bg_power"]))
            n += 1
    return [score_row("seeds", split, seeds, n), score_row("random_walk_gt_affinity", split, walked, n)]


def main(args, params) -> None:
    rows = []
    for split, stage, paths in parse_inputs(args.inputs):
        if stage == "seeds":
            rows += split_rows(split, paths, Path(params["voc_root"]), params["dataset"]["mask_dir"], params)
    write_csv(pd.DataFrame(rows).round(2), args.out)


if __name__ == "__main__":
    p = _cli.split_stores_parser(__doc__)
    _cli.run(main, p)
