"""What AffinityNet has learnt: its mean affinity per kind of neighbour pair.

No paper step: a diagnostic for steps 5-6 (AffinityNet, Ahn & Kwak CVPR 2018, SPEC 6) on the
embedded synthetic dataset, whose generator writes every object's discriminative part
(``SegmentationPart/``) beside its instance mask (``SegmentationObject/``). Each cell of the
affinity grid (stride ``feature_stride``) takes the majority instance of its pixels (void pixels do
not vote) and is ``part`` if most of its pixels lie on a part, ``body`` if it is on an object
otherwise, ``background`` if on none. Every pair within the radius (psa's layout, both cells inside
the grid) is then one of :data:`PAIR_KINDS`; the table gives the mean learned affinity and the
number of pairs of each kind. A random walk can only complete a seed that sits on the part if
``part-body`` and ``body-body`` affinities are high and ``body-background`` low.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from vitaff.affinity import _shifted, pair_in_grid
from vitaff.diagnostics.walk_ceiling import cell_instances

__all__ = ["PAIR_KINDS", "cell_regions", "PairAffinityAccumulator"]

BACKGROUND, BODY, PART = 0, 1, 2
PAIR_KINDS = ("background-background", "body-body", "part-body", "part-part", "body-background",
              "part-background", "object-object")


def cell_regions(instances: np.ndarray, parts: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """``(instance, region)`` of each grid cell: the majority instance (0 = background) and
    0 / 1 / 2 for background / body / part. ``parts`` holds the instance index on part pixels."""
    if instances.shape != parts.shape:
        raise ValueError(f"instance mask {instances.shape} and part mask {parts.shape} differ in shape")
    inst = cell_instances(instances, stride)
    on_part = cell_instances((parts > 0).astype(np.uint8), stride) > 0
    region = np.where(inst == 0, BACKGROUND, np.where(on_part, PART, BODY))
    return inst, region


def _pair_kind(ri: torch.Tensor, rj: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """Index into PAIR_KINDS for region pairs (symmetric), -1 for none."""
    lo, hi = torch.minimum(ri, rj), torch.maximum(ri, rj)
    kind = torch.full_like(ri, -1)
    kind[(lo == BACKGROUND) & (hi == BACKGROUND)] = 0
    obj = lo > BACKGROUND
    kind[obj & same & (lo == BODY) & (hi == BODY)] = 1
    kind[obj & same & (lo == BODY) & (hi == PART)] = 2
    kind[obj & same & (lo == PART) & (hi == PART)] = 3
    kind[(lo == BACKGROUND) & (hi == BODY)] = 4
    kind[(lo == BACKGROUND) & (hi == PART)] = 5
    kind[obj & ~same] = 6
    return kind


@dataclass
class PairAffinityAccumulator:
    """Running sums of learned affinity per pair kind; :meth:`rows` gives one row per kind."""

    radius: int = 5
    sums: np.ndarray = field(default_factory=lambda: np.zeros(len(PAIR_KINDS)))
    counts: np.ndarray = field(default_factory=lambda: np.zeros(len(PAIR_KINDS), dtype=np.int64))

    def update(self, aff: torch.Tensor, instances: np.ndarray, parts: np.ndarray, stride: int) -> None:
        """``aff``: ``K x h' x w'`` affinities of one image (padded grid, ``h' >= h``)."""
        inst, region = (torch.from_numpy(a) for a in cell_regions(instances, parts, stride))
        h, w = inst.shape
        if aff.shape[1] < h or aff.shape[2] < w:
            raise ValueError(f"affinity grid {tuple(aff.shape[1:])} smaller than the image's {h}x{w} cells")
        aff = aff[:, :h, :w].detach().cpu().double()
        inside = pair_in_grid(h, w, self.radius)
        for k, (inst_j, region_j) in enumerate(zip(_shifted(inst, self.radius, -1), _shifted(region, self.radius, -1))):
            kind = torch.where(inside[k], _pair_kind(region, region_j, inst == inst_j), -1)
            valid = kind >= 0
            self.sums += torch.bincount(kind[valid], weights=aff[k][valid], minlength=len(PAIR_KINDS)).numpy()
            self.counts += torch.bincount(kind[valid], minlength=len(PAIR_KINDS)).numpy()

    def rows(self, split: str) -> list[dict]:
        return [{"split": split, "pair": name, "pairs": int(n), "mean_affinity": s / n if n else np.nan}
                for name, s, n in zip(PAIR_KINDS, self.sums, self.counts)]
