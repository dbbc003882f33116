"""How far the random walk could take these seeds: the walk with ground-truth affinity.

No paper step: a diagnostic for step 6 (AffinityNet's random walk, Ahn & Kwak CVPR 2018, SPEC 6).
It replaces the learned affinities by the ideal ones -- 1 between grid cells of the same ground-truth
instance (or both background), 0 otherwise -- and runs the very same walk (``refine_seeds``: psa's
background channel, beta, 2^logt steps) on the very same seeds. Its mIoU is an upper bound of what
any affinity network can add to these seeds under these walk constants, so a ceiling below the
seeds says the seeds (not AffinityNet) are what limits the refinement.
"""

from __future__ import annotations

import numpy as np
import torch

from vitaff.affinity import _shifted, pair_in_grid
from vitaff.data.voc import IGNORE_INDEX

__all__ = ["cell_instances", "instance_affinity"]


def cell_instances(instances: np.ndarray, stride: int) -> np.ndarray:
    """Majority instance id (0 = background) of each ``stride x stride`` cell of an ``H x W``
    instance map, on the grid ``ceil(H / stride) x ceil(W / stride)`` laid from the top-left corner
    (the walk's padded grid). Void pixels (255) do not vote; a cell with no other pixel is background."""
    if instances.ndim != 2:
        raise ValueError(f"instances must be H x W, got shape {instances.shape}")
    h, w = instances.shape
    gh, gw = -(-h // stride), -(-w // stride)
    canvas = np.full((gh * stride, gw * stride), IGNORE_INDEX, dtype=np.int64)
    canvas[:h, :w] = instances
    cells = canvas.reshape(gh, stride, gw, stride).transpose(0, 2, 1, 3).reshape(gh, gw, -1)
    # vote only over the ids present (always with background first): ties go to the smallest id and
    # an all-void cell, where every count is 0, to background
    ids = np.union1d([0], cells[cells != IGNORE_INDEX])
    votes = np.stack([(cells == k).sum(-1) for k in ids], axis=-1)
    return ids[votes.argmax(-1)].astype(np.int64)


def instance_affinity(instances: np.ndarray, stride: int = 8, radius: int = 5) -> torch.Tensor:
    """Ideal affinities ``K x h x w`` (psa's pair layout, as ``AffinityNet.affinity`` returns for
    one padded image): 1 where cell ``i`` and its neighbour ``i + offset_k`` hold the same instance,
    0 where they differ or the neighbour lies outside the grid."""
    cells = torch.from_numpy(cell_instances(instances, stride))
    h, w = cells.shape
    same = torch.stack([cells == other for other in _shifted(cells, radius, -1)]) if radius > 1 \
        else torch.zeros((0, h, w), dtype=torch.bool)
    return (same & pair_in_grid(h, w, radius)).float()
