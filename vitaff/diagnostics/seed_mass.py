"""Where the relevance seeds put their mass: discriminative part, rest of the object, background.

No paper step: a diagnostic for the embedded synthetic dataset, whose generator writes the part
of every object (``SegmentationPart/<id>.png``, instance index on the part pixels). It measures
the property the refinement depends on (README, "Results on the embedded default"): seeds that are
incomplete but *weak and non-zero* on the rest of the object, as CAMs are on VOC, rather than zero
there. Per region it reports the pixel-weighted mean seed of the objects' own classes and how the
CRF stage labels those pixels (confident background, confident foreground, neutral).

Regions of one image, for a present class ``c`` (ground truth ``gt``, part mask ``parts > 0``):
``part`` = class-c pixels on a part, ``body`` = class-c pixels off the parts, ``background`` =
``gt == 0`` (its seed mean is taken over every present class's map). Void pixels (255) are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vitaff.data.voc import IGNORE_INDEX as IGNORE

REGIONS = ("part", "body", "background")


@dataclass
class SeedMassAccumulator:
    """Running sums over images; :meth:`rows` turns them into one row per region."""

    seed_sum: dict = field(default_factory=lambda: dict.fromkeys(REGIONS, 0.0))
    seed_count: dict = field(default_factory=lambda: dict.fromkeys(REGIONS, 0))
    # pixels per region labelled [confident background, confident foreground, neutral]
    crf_counts: dict = field(default_factory=lambda: {r: np.zeros(3, dtype=np.int64) for r in REGIONS})

    def update(self, gt: np.ndarray, parts: np.ndarray, maps: np.ndarray, classes, confident: np.ndarray | None = None
               ) -> None:
        """``maps``: the present classes' maps in the order of ``classes`` (the seeds store's
        layout); ``classes``: the present label indices; ``confident``: the CRF stage's label map or None."""
        if gt.shape != parts.shape or gt.shape != maps.shape[1:]:
            raise ValueError(f"shapes differ: ground truth {gt.shape}, parts {parts.shape}, seeds {maps.shape[1:]}")
        on_part = parts > 0
        background = gt == 0
        for m, c in zip(maps, classes):
            obj = gt == int(c)
            for region, mask in (("part", obj & on_part), ("body", obj & ~on_part), ("background", background)):
                self.seed_sum[region] += float(m[mask].sum(dtype=np.float64))
                self.seed_count[region] += int(mask.sum())
        if confident is not None:
            objects = (gt > 0) & (gt != IGNORE)
            for region, mask in (("part", objects & on_part), ("body", objects & ~on_part), ("background", background)):
                v = confident[mask]
                self.crf_counts[region] += [(v == 0).sum(), ((v > 0) & (v != IGNORE)).sum(), (v == IGNORE).sum()]

    def rows(self, split: str) -> list[dict]:
        out = []
        for r in REGIONS:
            crf = self.crf_counts[r]
            share = crf / crf.sum() if crf.sum() else np.full(3, np.nan)
            out.append({"split": split, "region": r, "seed_pixels": self.seed_count[r],
                        "seed_mean": self.seed_sum[r] / self.seed_count[r] if self.seed_count[r] else np.nan,
                        "crf_confident_bg": share[0], "crf_confident_fg": share[1], "crf_neutral": share[2]})
        return out
