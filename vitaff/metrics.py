"""Segmentation scores: the one confusion-matrix / IoU implementation every score in vitaff uses.

VOC protocol as in psa's evaluation: a 21-class confusion matrix accumulated over the whole split
(rows = ground truth, columns = prediction), pixels whose ground truth is 255 ignored, predictions
of 255 counted as background; IoU_c = diag / (row + col - diag); mIoU = nanmean over classes that
occur in ground truth or prediction. Because confusion matrices add, shards are gathered exactly.
The ImageNet-segmentation test uses the same code with two classes (background, foreground).
"""

from __future__ import annotations

import numpy as np

IGNORE_INDEX = 255


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int = 21,
                     ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """num_classes x num_classes int64 counts; rows ground truth, columns prediction."""
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in shape")
    gt = gt.reshape(-1).astype(np.int64)
    pred = pred.reshape(-1).astype(np.int64)
    keep = gt != ignore_index
    gt, pred = gt[keep], pred[keep]
    pred = np.where(pred == ignore_index, 0, pred)  # unlabelled prediction = background
    if gt.size and (gt.min() < 0 or gt.max() >= num_classes):
        raise ValueError(f"ground truth values outside 0..{num_classes - 1} (and {ignore_index})")
    if pred.size and (pred.min() < 0 or pred.max() >= num_classes):
        raise ValueError(f"prediction values outside 0..{num_classes - 1} (and {ignore_index})")
    return np.bincount(gt * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    """IoU of every class; NaN for a class absent from both ground truth and prediction."""
    cm = np.asarray(cm, dtype=np.float64)
    inter = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), np.nan)


def mean_iou(cm: np.ndarray) -> float:
    iou = iou_per_class(cm)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def pixel_accuracy(cm: np.ndarray) -> float:
    cm = np.asarray(cm, dtype=np.float64)
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


class ConfusionAccumulator:
    """Adds per-image confusion matrices; ``+`` merges accumulators of different shards."""

    def __init__(self, num_classes: int = 21, ignore_index: int = IGNORE_INDEX):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, gt: np.ndarray, pred: np.ndarray) -> "ConfusionAccumulator":
        self.matrix += confusion_matrix(gt, pred, self.num_classes, self.ignore_index)
        return self

    def __add__(self, other: "ConfusionAccumulator") -> "ConfusionAccumulator":
        out = ConfusionAccumulator(self.num_classes, self.ignore_index)
        out.matrix = self.matrix + other.matrix
        return out

    def iou(self) -> np.ndarray:
        return iou_per_class(self.matrix)

    def miou(self) -> float:
        return mean_iou(self.matrix)


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Binary average precision, sum_n (R_n - R_{n-1}) P_n over distinct score thresholds.

    Same definition as scikit-learn's ``average_precision_score`` (which the reference evaluation
    scripts call); NaN when there is no positive.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    targets = np.asarray(targets).reshape(-1) > 0
    n_pos = targets.sum()
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    scores, targets = scores[order], targets[order]
    # the last index of each run of equal scores is where a threshold takes effect
    last_of_run = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    tp = np.cumsum(targets)[last_of_run]
    fp = (last_of_run + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Multi-label mAP: AP per class (column) over images, mean over classes with a positive."""
    aps = [average_precision(scores[:, k], targets[:, k]) for k in range(scores.shape[1])]
    aps = np.array(aps)
    return float(np.nanmean(aps)) if np.isfinite(aps).any() else float("nan")
