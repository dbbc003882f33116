"""Segmentation test (Chefer et al. Table 2; SPEC 4): foreground = map > mean(map); per image
the 2-class confusion counts and the average precision, summed / averaged over the set
(:mod:`vitaff.metrics`, the one IoU implementation)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from vitaff.explain_eval.metrics import check_gathered, image_average_precision
from vitaff.metrics import confusion_matrix, iou_per_class, pixel_accuracy


def foreground(maps: torch.Tensor) -> torch.Tensor:
    """Binary foreground of [0, 1] maps (B x H x W or H x W): map > mean of its own image."""
    flat = maps.reshape(-1, maps.shape[-2] * maps.shape[-1]) if maps.dim() == 3 else maps.reshape(1, -1)
    mean = flat.mean(1)
    out = flat > mean[:, None]
    return out.reshape(maps.shape)


def segmentation_rows(maps01: dict[str, torch.Tensor], masks: torch.Tensor, indices: Sequence[int]) -> list[dict]:
    """Per image and method: the 2-class confusion counts and the image's AP.

    ``maps01``: method -> B x H x W maps in [0, 1]; ``masks``: B x H x W binary ground truth.
    """
    rows = []
    gt = masks.cpu().numpy().astype(np.int64)
    for method, maps in maps01.items():
        maps = maps.detach().float().cpu()
        pred = foreground(maps).numpy().astype(np.int64)
        values = maps.numpy()
        for b, index in enumerate(indices):
            cm = confusion_matrix(gt[b], pred[b], num_classes=2)
            rows.append({"index": int(index), "method": method, "bg_bg": int(cm[0, 0]), "bg_fg": int(cm[0, 1]),
                         "fg_bg": int(cm[1, 0]), "fg_fg": int(cm[1, 1]),
                         "ap": image_average_precision(values[b], gt[b])})
    return rows


def summarise_segmentation(frame) -> "pd.DataFrame":
    """Per-image rows (of any number of shards) -> one row per method: pixel_accuracy, mAP,
    mIoU in percent and n_images. Methods keep their first-appearance order."""
    import pandas as pd

    check_gathered(frame, ["index", "method"])
    out = []
    for method, group in frame.groupby("method", sort=False):
        cm = np.array([[group.bg_bg.sum(), group.bg_fg.sum()], [group.fg_bg.sum(), group.fg_fg.sum()]], dtype=np.int64)
        iou = iou_per_class(cm)
        out.append({"method": method, "pixel_accuracy": 100 * pixel_accuracy(cm),
                    "mAP": 100 * float(group.sort_values("index").ap.mean()),
                    "mIoU": 100 * float(np.nanmean(iou)), "iou_bg": 100 * iou[0], "iou_fg": 100 * iou[1],
                    "n_images": int(group["index"].nunique())})
    return pd.DataFrame(out)
