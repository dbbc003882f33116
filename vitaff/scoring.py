"""Scoring helpers shared by the ``score`` rule and the diagnostics (paper step 7, SPEC 6): the
``split:stage:paths`` inputs of the scoring rules and the one-row-per-(stage, split) IoU table."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from vitaff.errors import VitaffError
from vitaff.metrics import ConfusionAccumulator

# The per-image stages whose labels are scored, in table order.
STAGES = ("seeds", "crf", "random_walk")


def score_row(stage: str, split: str, acc: ConfusionAccumulator, n: int, labels: Sequence[str]) -> dict:
    """One table row: per-class IoU and mIoU in percent (classes never seen are NaN, not 0);
    ``labels``: the column names, background first (:attr:`vitaff.data.classes.ClassList.labels`)."""
    iou = acc.iou() * 100
    if len(labels) != len(iou):
        raise ValueError(f"{len(labels)} class names for a {len(iou)}-label confusion matrix")
    return {"stage": stage, "split": split, "n_images": n, **dict(zip(labels, iou)), "mIoU": np.nanmean(iou)}


def parse_inputs(values):
    """``split:stage:path1,path2`` items -> (split, stage, [paths])."""
    out = []
    for item in values:
        split, stage, paths = item.split(":", 2)
        if stage not in STAGES:
            raise VitaffError(f"unknown stage {stage!r} in --inputs {item!r}; expected one of {STAGES}")
        out.append((split, stage, paths.split(",")))
    return out
