"""Hybrid ViT: a ResNetV2 stem (BiT: StdConv + GroupNorm) whose feature map is the token grid.

Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021, section 3.1 "Hybrid
Architecture" (R50+ViT-B/16, https://arxiv.org/abs/2010.11929); the stem is timm's own
``timm.models.resnetv2.ResNetV2`` (Kolesnikov et al., "Big Transfer (BiT)", ECCV 2020), so the
parameter names equal timm's ``patch_embed.backbone.*`` and a timm ``vit_base_r50_s16_384``
state dict loads with ``strict=True``. SPEC section 5.

Relevance (SPEC section 5) is propagated through the transformer only: the CNN stem has no
rules, the pass stops at the tokens. The stem's stage outputs feed AffinityNet (SPEC section 6):
:meth:`HybridVisionTransformer.forward_cnn_features` and ``cnn_feature_info``.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn

from .vit import Record, VisionTransformer, _pair

__all__ = ["HybridEmbed", "HybridVisionTransformer", "make_resnetv2_stem"]


def make_resnetv2_stem(
    layers: tuple[int, ...] = (3, 4, 9),
    channels: tuple[int, ...] = (256, 512, 1024),
    stem_chs: int = 64,
    padding_same: bool = True,
    num_groups: int = 32,
    in_chans: int = 3,
) -> nn.Module:
    """timm's ResNetV2 feature extractor as used by timm's hybrid ViTs (no pre-activation).

    ``padding_same``: TF-style 'SAME' padding (``StdConv2dSame``, as the R50 hybrid checkpoints
    need); otherwise symmetric padding with ``StdConv2d``. ``num_groups``: GroupNorm groups.
    """
    from timm.layers import GroupNormAct, StdConv2d, StdConv2dSame
    from timm.models.resnetv2 import ResNetV2

    conv_layer = partial(StdConv2dSame if padding_same else StdConv2d, eps=1e-8)
    return ResNetV2(
        layers=list(layers),
        channels=tuple(channels),
        num_classes=0,
        global_pool="",
        in_chans=in_chans,
        stem_chs=stem_chs,
        preact=False,
        stem_type="same" if padding_same else "",
        conv_layer=conv_layer,
        norm_layer=partial(GroupNormAct, num_groups=num_groups),
    )


class HybridEmbed(nn.Module):
    """CNN feature map -> 1x1 conv projection -> tokens (timm ``HybridEmbed``: backbone, proj)."""

    def __init__(self, backbone: nn.Module, img_size: int | tuple[int, int] = 224, embed_dim: int = 768) -> None:
        super().__init__()
        self.backbone = backbone
        info = [dict(num_chs=int(f["num_chs"]), reduction=int(f["reduction"])) for f in backbone.feature_info]
        self.feature_info = info[1:]  # the stage outputs (the stem's stride-2 entry is pre-pooling)
        self.reduction = self.feature_info[-1]["reduction"]
        self.proj = nn.Conv2d(self.feature_info[-1]["num_chs"], embed_dim, kernel_size=1, stride=1)
        self.set_img_size(img_size)

    def set_img_size(self, img_size: int | tuple[int, int]) -> None:
        self.img_size = _pair(img_size)
        # strided convs and pools with 'same' or symmetric padding give ceil(size / stride)
        self.grid_size = tuple(-(-s // self.reduction) for s in self.img_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of every ResNet stage (strides ``feature_info[i]['reduction']``)."""
        x = self.backbone.stem(x)
        feats = []
        for stage in self.backbone.stages:
            x = stage(x)
            feats.append(x)
        feats[-1] = self.backbone.norm(feats[-1])
        return feats

    def embed(self, x: torch.Tensor, rec: Record | None = None) -> tuple[torch.Tensor, tuple[int, int]]:
        x = self.proj(self.backbone.forward_features(x))
        return x.flatten(2).transpose(1, 2), (x.shape[-2], x.shape[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)[0]


class HybridVisionTransformer(VisionTransformer):
    """ViT over a CNN stem; ``forward_cnn_features`` exposes the stem's stages for AffinityNet."""

    def __init__(self, backbone: nn.Module, img_size: int | tuple[int, int] = 384, embed_dim: int = 768,
                 **kwargs) -> None:
        kwargs.pop("patch_size", None)
        super().__init__(img_size=img_size, embed_dim=embed_dim,
                         embed_layer=HybridEmbed(backbone, img_size, embed_dim), **kwargs)

    @property
    def cnn_feature_info(self) -> list[dict[str, int]]:
        """One ``dict(num_chs=..., reduction=...)`` per map of :meth:`forward_cnn_features`."""
        return [dict(f) for f in self.patch_embed.feature_info]

    def forward_cnn_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Images -> the CNN stem's stage outputs, finest first (e.g. strides 4, 8, 16)."""
        return self.patch_embed.stages(x)
