"""Input transforms of the explainability tests: uint8 images to [0, 1] tensors at the model's
input size, binary masks resized alike."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def to_unit_tensor(image: np.ndarray, size: int | None = None) -> torch.Tensor:
    """H x W x 3 uint8 -> 3 x size x size float in [0, 1] (bilinear resize, ``align_corners=False``)."""
    x = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div_(255.0)
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False)[0].clamp_(0, 1)
    return x


def resize_mask(mask: np.ndarray, size: int) -> torch.Tensor:
    """H x W binary -> size x size (nearest)."""
    m = torch.from_numpy(np.array(mask, dtype=np.float32))[None, None]
    return F.interpolate(m, size=(size, size), mode="nearest")[0, 0].to(torch.uint8)
