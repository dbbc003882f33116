"""The index CSV of a split (written by the ``dataset_index`` rule, paper step 0): one row per image.

Columns: id, height, width, labels (space-separated label indices present,
see :mod:`vitaff.data.classes`), has_mask.
"""

from __future__ import annotations

import pandas as pd


def read_index(path) -> pd.DataFrame:
    """Read an index CSV; ``labels`` becomes a list of label indices per image."""
    frame = pd.read_csv(path, dtype={"id": str, "labels": str}, keep_default_na=False)
    frame["labels"] = [[int(c) for c in s.split()] for s in frame["labels"]]
    return frame
