"""Scores of the explainability tests (SPEC 3-4): the per-image average precision of the
segmentation test, the perturbation test's AUC, and the check that gathered shard rows cover
every image once."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from vitaff.errors import InputError
from vitaff.metrics import average_precision

#: removal fractions of the perturbation test (exact decimals: 0.3 is 3 / 10, not 0.1 * 3)
STEPS: tuple[float, ...] = tuple(i / 10 for i in range(10))


def image_average_precision(map01: np.ndarray, mask: np.ndarray) -> float:
    """AP of the flattened pair ``[1 - map, map]`` against one-hot ``[bg, fg]``; NaN -> 0."""
    m = np.asarray(map01, dtype=np.float64).reshape(-1)
    fg = (np.asarray(mask).reshape(-1) > 0).astype(np.int64)
    ap = average_precision(np.concatenate([1.0 - m, m]), np.concatenate([1 - fg, fg]))
    return 0.0 if np.isnan(ap) else ap


def auc(accuracy: Sequence[float], steps: Sequence[float] = STEPS) -> float:
    """100 * trapezoid area under accuracy (fractions) over the removal fractions ``steps``."""
    acc = np.asarray(accuracy, dtype=np.float64)
    x = np.asarray(steps, dtype=np.float64)
    return float(100 * np.sum((x[1:] - x[:-1]) * (acc[1:] + acc[:-1]) / 2))


def check_gathered(frame, keys: list[str]) -> None:
    """Rows gathered from shards: no (image, ...) key twice, image indices 0..n-1 without a gap."""
    dup = frame.duplicated(keys)
    if dup.any():
        raise InputError(f"{int(dup.sum())} duplicated rows over {keys}: overlapping shards?")
    idx = np.sort(frame["index"].unique())
    if len(idx) and not np.array_equal(idx, np.arange(len(idx))):
        missing = sorted(set(range(int(idx.max()) + 1)) - set(idx.tolist()))[:10]
        raise InputError(f"image indices are not contiguous from 0 (missing e.g. {missing}): a shard is missing")
