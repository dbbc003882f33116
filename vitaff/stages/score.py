"""Rule ``score``: VOC mIoU of every stage's labels on every scored split (paper step 7, SPEC 6).

Stages: ``seeds`` (argmax over [bg_threshold, M_c]), ``crf`` (low-alpha dense CRF argmax, the CRF
baseline), ``random_walk`` (AffinityNet refinement). The eval split is the study's Table 4; the
train split is the pseudo-label quality that psa reports. One row per (stage, split), one column
per class plus mIoU, all in percent. Confusion matrices are summed over shards (exact gathering).

With ``--ceiling`` (the ``walk_ceiling`` diagnostic's CSV) a ``walk_ceiling`` row per split is added:
the same random walk on the same seeds with ground-truth instance affinity at the configured
background power, i.e. how much room the seeds leave the refinement (see
:mod:`vitaff.diagnostics.walk_ceiling`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from vitaff.data.voc import NUM_CLASSES, VOC_CLASSES, load_mask
from vitaff.metrics import ConfusionAccumulator
from vitaff.seeds import seed_labels
from vitaff.stages import _cli
from vitaff.store import open_shards, write_csv

STAGES = ("seeds", "crf", "random_walk")
CEILING_STAGE = "walk_ceiling"


def stage_prediction(stage: str, reader, k: int, bg_threshold: float) -> np.ndarray:
    if stage == "seeds":
        return seed_labels(reader.read(k, "maps").astype(np.float32), reader.classes[k], bg_threshold)
    if stage == "crf":
        return reader.read(k, "fg")
    return reader.read(k, "labels")


def score_stage(stage: str, shard_paths, voc_root: Path, mask_dir: str, bg_threshold: float) -> tuple[ConfusionAccumulator, int]:
    readers, _ = open_shards(shard_paths)
    acc, n = ConfusionAccumulator(NUM_CLASSES), 0
    for reader in readers:
        for k, image_id in enumerate(tqdm(reader.ids, desc=f"score {stage}", mininterval=10)):
            mask_path = voc_root / mask_dir / f"{image_id}.png"
            if not mask_path.is_file():
                continue  # ids without ground truth (e.g. train_aug) are not scored
            gt = load_mask(mask_path, reader.sizes[k])
            acc.update(gt, stage_prediction(stage, reader, k, bg_threshold))
            n += 1
    return acc, n


def score_row(stage: str, split: str, acc: ConfusionAccumulator, n: int) -> dict:
    iou = acc.iou() * 100
    return {"stage": stage, "split": split, "n_images": n, **dict(zip(VOC_CLASSES, iou)), "mIoU": np.nanmean(iou)}


def ceiling_rows(path) -> list[dict]:
    """The ``walk_ceiling.csv`` rows walked at the configured background power, as score rows."""
    table = pd.read_csv(path)
    used = table[(table["stage"] == "random_walk_gt_affinity") & table["used"].astype(bool)]
    columns = ["stage", "split", "n_images", *VOC_CLASSES, "mIoU"]
    return [{**row, "stage": CEILING_STAGE} for row in used[columns].to_dict("records")]


def main(args, params) -> None:
    rows = []
    voc = Path(params["voc_root"])
    for split, stage, paths in parse_inputs(args.inputs):
        acc, n = score_stage(stage, paths, voc, params["dataset"]["mask_dir"], params["seeds"]["bg_threshold"])
        rows.append(score_row(stage, split, acc, n))
    if getattr(args, "ceiling", None):
        rows += ceiling_rows(args.ceiling)
    frame = pd.DataFrame(rows)
    order = {s: i for i, s in enumerate((*STAGES, CEILING_STAGE))}
    frame = frame.sort_values(["split", "stage"], key=lambda col: col.map(order) if col.name == "stage" else col)
    write_csv(frame.round(2), args.out)


def parse_inputs(values):
    """``split:stage:path1,path2`` items -> (split, stage, [paths])."""
    out = []
    for item in values:
        split, stage, paths = item.split(":", 2)
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
        out.append((split, stage, paths.split(",")))
    return out


if __name__ == "__main__":
    p = _cli.split_stores_parser(__doc__)
    p.add_argument("--ceiling", default=None, help="walk_ceiling.csv: add its rows at the configured bg_power")
    _cli.run(main, p)
