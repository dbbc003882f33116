"""The affinity-statistics diagnostic: cell regions, pair kinds and per-kind means on a hand case."""

import numpy as np
import pytest
import torch

from vitaff.affinity import pair_offsets
from vitaff.diagnostics.affinity_stats import PAIR_KINDS, PairAffinityAccumulator, cell_regions


def _scene():
    # 1 x 4 grid at stride 2 (2 x 8 pixels): background | body | part | background (one object)
    inst = np.zeros((2, 8), dtype=np.uint8)
    inst[:, 2:6] = 1
    parts = np.zeros_like(inst)
    parts[:, 4:6] = 1
    return inst, parts


def test_cell_regions():
    inst, region = cell_regions(*_scene(), stride=2)
    assert inst.tolist() == [[0, 1, 1, 0]]
    assert region.tolist() == [[0, 1, 2, 0]]
    with pytest.raises(ValueError, match="differ in shape"):
        cell_regions(np.zeros((2, 8), np.uint8), np.zeros((2, 6), np.uint8), 2)


def test_pair_kinds_and_means():
    radius = 3
    offsets = pair_offsets(radius).tolist()
    aff = torch.zeros(len(offsets), 1, 4)
    right, right2 = offsets.index([0, 1]), offsets.index([0, 2])
    # horizontal neighbours: bg-body 0.1, body-part 0.8, part-bg 0.3; two apart: bg-part 0.5,
    # body-bg 0.2; rows below the 1-row grid are outside and must not count
    aff[right, 0] = torch.tensor([0.1, 0.8, 0.3, 0.0])
    aff[right2, 0] = torch.tensor([0.5, 0.2, 0.0, 0.0])
    aff[[k for k, (dy, _) in enumerate(offsets) if dy > 0]] = 9.0
    acc = PairAffinityAccumulator(radius)
    acc.update(aff, *_scene(), stride=2)
    rows = {r["pair"]: r for r in acc.rows("val")}
    assert [r["pair"] for r in acc.rows("val")] == list(PAIR_KINDS)
    assert rows["part-body"]["pairs"] == 1 and rows["part-body"]["mean_affinity"] == pytest.approx(0.8)
    assert rows["body-background"]["pairs"] == 2 and rows["body-background"]["mean_affinity"] == pytest.approx(0.15)
    assert rows["part-background"]["pairs"] == 2 and rows["part-background"]["mean_affinity"] == pytest.approx(0.4)
    assert rows["background-background"]["pairs"] == 0 and np.isnan(rows["background-background"]["mean_affinity"])
    assert rows["object-object"]["pairs"] == 0


def test_two_objects_and_grid_check():
    inst = np.zeros((2, 4), dtype=np.uint8)
    inst[:, :2], inst[:, 2:] = 1, 2
    acc = PairAffinityAccumulator(2)
    acc.update(torch.full((len(pair_offsets(2)), 1, 2), 0.25), inst, np.zeros_like(inst), stride=2)
    rows = {r["pair"]: r for r in acc.rows("val")}
    assert rows["object-object"]["pairs"] == 1 and rows["object-object"]["mean_affinity"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="smaller"):
        acc.update(torch.zeros(len(pair_offsets(2)), 1, 1), inst, np.zeros_like(inst), stride=2)
