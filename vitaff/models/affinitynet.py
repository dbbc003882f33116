"""AffinityNet head (SPEC section 6, "AffinityNet").

Ahn & Kwak, "Learning Pixel-level Semantic Affinity with Image-level Supervision", CVPR 2018,
section 3.3: a feature map f is predicted from backbone features and pixel affinities are
``a_ij = exp(-mean_channels |f_i - f_j|)`` (psa eq. 2, :func:`vitaff.affinity.pairwise_affinity`).

psa reduces three backbone stages with 1x1 convolutions (ResNet-38: 512 -> 64, 1024 -> 128,
4096 -> 256), concatenates them (448 channels) and applies a final 1x1 convolution (448 -> 448),
ELU after each. The study takes the hybrid ViT's CNN stem with two 1x1 convolutions. Both are
instances of :class:`AffinityNet`: one reduction per given stage, concatenation on one grid, one
final 1x1 convolution. The backbone stays outside: ``forward`` takes the list of stage feature
maps (e.g. ``hybrid.forward_cnn_features(x)``), so freezing the backbone is the caller's choice.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from vitaff.affinity import pairwise_affinity

__all__ = ["AffinityNet"]


class AffinityNet(nn.Module):
    """Per-stage 1x1 conv + ELU, resize to the ``out_stride`` grid, concat, 1x1 conv + ELU.

    Args:
        in_channels: channels of each input stage, e.g. ``[256, 512, 1024]``.
        reductions: output channels of each stage's 1x1 convolution, e.g. ``[64, 128, 256]``.
        strides: stride of each stage w.r.t. the input image, e.g. ``[4, 8, 16]``.
        out_stride: stride of the affinity grid (8 in psa). The grid is the size of a stage with
            this stride if there is one, else ``ceil(size * stride / out_stride)`` of the first stage.
        out_dim: channels of the affinity features (default: ``sum(reductions)``, 448 in psa).
        group_norm: add a GroupNorm (32 groups where divisible) after each reduction.

    Finer stages are mean pooled to the grid (adaptive average pooling), coarser ones resized
    bilinearly (``align_corners=False``).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        reductions: Sequence[int],
        strides: Sequence[int],
        out_stride: int = 8,
        out_dim: int | None = None,
        group_norm: bool = False,
    ) -> None:
        super().__init__()
        if not (len(in_channels) == len(reductions) == len(strides)) or len(in_channels) == 0:
            raise ValueError("in_channels, reductions and strides need one entry per stage")
        self.in_channels = [int(c) for c in in_channels]
        self.strides = [int(s) for s in strides]
        self.out_stride = int(out_stride)
        hidden = int(sum(reductions))
        self.out_dim = int(out_dim) if out_dim is not None else hidden
        self.reduce = nn.ModuleList()
        for c_in, c_out in zip(in_channels, reductions):
            layers: list[nn.Module] = [nn.Conv2d(int(c_in), int(c_out), 1, bias=False)]
            if group_norm:
                layers.append(nn.GroupNorm(32 if c_out % 32 == 0 else 1, int(c_out)))
            layers.append(nn.ELU())
            self.reduce.append(nn.Sequential(*layers))
        self.fuse = nn.Conv2d(hidden, self.out_dim, 1, bias=False)
        for block in self.reduce:
            nn.init.kaiming_normal_(block[0].weight)
        # psa initialises the last projection with a large gain so that initial affinities spread
        nn.init.xavier_uniform_(self.fuse.weight, gain=4)

    def grid_size(self, features: Sequence[torch.Tensor]) -> tuple[int, int]:
        for f, s in zip(features, self.strides):
            if s == self.out_stride:
                return int(f.shape[-2]), int(f.shape[-1])
        f, s = features[0], self.strides[0]
        return -(-f.shape[-2] * s // self.out_stride), -(-f.shape[-1] * s // self.out_stride)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """``features``: one ``B x C_i x h_i x w_i`` map per stage -> ``B x out_dim x h x w``."""
        if len(features) != len(self.reduce):
            raise ValueError(f"expected {len(self.reduce)} feature maps, got {len(features)}")
        size = self.grid_size(features)
        parts = []
        for f, block, c_in in zip(features, self.reduce, self.in_channels):
            if f.ndim != 4 or f.shape[1] != c_in:
                raise ValueError(f"stage feature of shape {tuple(f.shape)}, expected B x {c_in} x h x w")
            y = block(f)
            if tuple(y.shape[-2:]) != size:
                if y.shape[-2] >= size[0] and y.shape[-1] >= size[1]:
                    y = F.adaptive_avg_pool2d(y, size)
                else:
                    y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
            parts.append(y)
        return F.elu(self.fuse(torch.cat(parts, dim=1)))

    def affinity(self, features: Sequence[torch.Tensor], radius: int = 5) -> torch.Tensor:
        """Pairwise affinities ``B x K x h x w`` (pair layout of :mod:`vitaff.affinity`)."""
        return pairwise_affinity(self(features), radius)
