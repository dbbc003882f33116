"""Paper step 2: class-wise relevance seeds (SPEC 5 and 6, "Seeds").

For every class present in an image: the transformer-attribution map of that class on the token
grid, bilinearly upsampled to the image size, averaged with the map of the horizontally flipped
image (flipped back), optionally raised to 1/3 (the study's code), and min-max normalised per class.
One forward per batch, one relevance pass per (image, class) pair (:func:`vitaff.explain.explain_classes`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from vitaff.classifier import normalise, resize, to_tensor
from vitaff.data.voc import NUM_FG_CLASSES


def class_seeds(model: torch.nn.Module, images: Sequence[np.ndarray], classes: Sequence[Sequence[int]], img_size: int,
                device, *, method: str = "transformer_attribution", start_layer: int = 1, flip: bool = True,
                cube_root: bool = False) -> list[torch.Tensor]:
    """Seeds for a batch: per image a len(classes_i) x H_i x W_i float tensor in [0, 1] (CPU).

    ``classes`` are VOC indices (1..20); the classifier's outputs are indexed by class - 1.
    """
    from vitaff.explain import explain_classes, upsample_and_normalise

    x = torch.stack([normalise(resize(to_tensor(im), img_size)) for im in images]).to(device)
    targets = [[int(c) - 1 for c in cls] for cls in classes]
    if flip:
        x = torch.cat([x, x.flip(-1)])
        targets = targets + targets
    grids = explain_classes(model, x, targets, method=method, start_layer=start_layer)
    out = []
    for i, (image, cls) in enumerate(zip(images, classes)):
        if len(cls) == 0:
            out.append(torch.zeros(0, *image.shape[:2]))
            continue
        size = image.shape[:2]
        maps = F.interpolate(grids[i][None].float(), size=size, mode="bilinear", align_corners=False)[0]
        if flip:
            flipped = F.interpolate(grids[i + len(images)][None].float(), size=size, mode="bilinear",
                                    align_corners=False)[0]
            maps = (maps + flipped.flip(-1)) / 2
        maps = maps.clamp_min(0)
        if cube_root:
            maps = maps.pow(1 / 3)
        out.append(upsample_and_normalise(maps).cpu())  # min-max per class map
    return out


def to_full_stack(maps: torch.Tensor | np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """len(classes) x H x W -> 20 x H x W with each map at its class position (index class - 1)."""
    maps = np.asarray(maps)
    full = np.zeros((NUM_FG_CLASSES, *maps.shape[-2:]), dtype=np.float32)
    for k, c in enumerate(classes):
        full[int(c) - 1] = maps[k]
    return full


def seed_labels(full_maps: np.ndarray, classes: Sequence[int], bg_threshold: float) -> np.ndarray:
    """Seed-only prediction: argmax over [bg_threshold, M_c for present c]; absent classes excluded."""
    h, w = full_maps.shape[-2:]
    scores = np.full((NUM_FG_CLASSES + 1, h, w), -1.0, dtype=np.float32)
    scores[0] = bg_threshold
    for c in classes:
        scores[int(c)] = full_maps[int(c) - 1]
    return scores.argmax(0).astype(np.uint8)
