"""Scoring helpers shared by the ``score`` rule and the diagnostics (paper step 7, SPEC 6): the
``split:stage:paths`` inputs of the scoring rules and the one-row-per-(stage, split) IoU table."""

from __future__ import annotations

import numpy as np

from vitaff.data.voc import VOC_CLASSES
from vitaff.errors import VitaffError
from vitaff.metrics import ConfusionAccumulator

# The per-image stages whose labels are scored, in table order.
STAGES = ("seeds", "crf", "random_walk")


def score_row(stage: str, split: str, acc: ConfusionAccumulator, n: int) -> dict:
    """One table row: per-class IoU and mIoU in percent (classes never seen are NaN, not 0)."""
    iou = acc.iou() * 100
    return {"stage": stage, "split": split, "n_images": n, **dict(zip(VOC_CLASSES, iou)), "mIoU": np.nanmean(iou)}


def parse_inputs(values):
    """``split:stage:path1,path2`` items -> (split, stage, [paths])."""
    out = []
    for item in values:
        split, stage, paths = item.split(":", 2)
        if stage not in STAGES:
            raise VitaffError(f"unknown stage {stage!r} in --inputs {item!r}; expected one of {STAGES}")
        out.append((split, stage, paths.split(",")))
    return out
