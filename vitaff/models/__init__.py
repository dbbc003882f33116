"""Models: ViT and hybrid ViT with relevance propagation, and AffinityNet.

Models are created by name (timm's names and parameter names, SPEC sections 1 and 5)::

    from vitaff.models import create_model
    model = create_model("vit_base_patch16_224", num_classes=1000, pretrained="vit_b16.pth")

``pretrained``: ``None`` / ``False`` (random init), a local checkpoint file (``.pth``, ``.pt``,
``.bin``, ``.safetensors``; plain or wrapped state dict, ``module.`` prefixes stripped), or
``True`` (timm downloads its weights; needs internet). A name may carry a timm pretrained tag,
e.g. ``vit_base_patch16_224.orig_in21k_ft_in1k`` (the paper's weights, SPEC section 1): the
architecture is the part before the dot, the tag picks timm's weights for ``pretrained=True``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vitaff.errors import VitaffError

from .checkpoint import CheckpointError, adapt_state_dict, load_checkpoint, read_state_dict
from .hybrid import HybridVisionTransformer, make_resnetv2_stem
from .vit import ORIG, OURS, RULE_SETS, RelevanceResult, RuleSet, VisionTransformer

__all__ = [
    "create_model",
    "list_models",
    "model_config",
    "UnknownModelError",
    "CheckpointError",
    "load_checkpoint",
    "read_state_dict",
    "VisionTransformer",
    "HybridVisionTransformer",
    "RuleSet",
    "OURS",
    "ORIG",
    "RULE_SETS",
    "RelevanceResult",
]



class UnknownModelError(VitaffError, ValueError):
    """A model name that is not registered (the message lists the valid ones)."""


_VIT = dict(patch_size=16, img_size=224, mlp_ratio=4.0, qkv_bias=True)
_SIZES = {
    "tiny": dict(embed_dim=192, depth=12, num_heads=3),
    "small": dict(embed_dim=384, depth=12, num_heads=6),
    "base": dict(embed_dim=768, depth=12, num_heads=12),
    "large": dict(embed_dim=1024, depth=24, num_heads=16),
}

#: name -> constructor keyword arguments; hybrids carry a ``backbone`` dict for the ResNetV2 stem
_REGISTRY: dict[str, dict[str, Any]] = {}
for _size, _dims in _SIZES.items():
    _REGISTRY[f"vit_{_size}_patch16_224"] = dict(_VIT, **_dims)
    if _size != "large":
        _REGISTRY[f"deit_{_size}_patch16_224"] = dict(_VIT, **_dims)
_REGISTRY["vit_synth_tiny"] = dict(_VIT, patch_size=8, img_size=128, embed_dim=128, depth=4, num_heads=4)
_REGISTRY["vit_base_r50_s16_384"] = dict(
    img_size=384, embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0, qkv_bias=True,
    backbone=dict(layers=(3, 4, 9), channels=(256, 512, 1024), stem_chs=64, padding_same=True, num_groups=32),
)
_REGISTRY["vit_hybrid_synth"] = dict(
    img_size=128, embed_dim=128, depth=4, num_heads=4, mlp_ratio=4.0, qkv_bias=True,
    # stem 7x7/2 + pool/2 + two bottleneck stages (second strided): output stride 8, 16 x 16
    # tokens at 128 px, receptive field ~27 px (small next to ~50 px objects, SPEC section 6 note)
    backbone=dict(layers=(1, 1), channels=(64, 128), stem_chs=32, padding_same=False, num_groups=8),
)
_BACKBONE_KEYS = ("layers", "channels", "stem_chs", "padding_same", "num_groups")
_SYNTHETIC = ("vit_synth_tiny", "vit_hybrid_synth")


def list_models() -> list[str]:
    """Registered model names."""
    return sorted(_REGISTRY)


def model_config(name: str, **overrides: Any) -> dict[str, Any]:
    """The constructor arguments of ``name`` (tag after '.' ignored) with ``overrides`` applied."""
    arch = name.split(".", 1)[0]
    if arch not in _REGISTRY:
        raise UnknownModelError(f"unknown model {name!r}; valid names: {', '.join(list_models())}")
    cfg = dict(_REGISTRY[arch])
    if "backbone" in cfg:
        cfg["backbone"] = dict(cfg["backbone"])
        for k in _BACKBONE_KEYS:
            if k in overrides:
                cfg["backbone"][k] = overrides.pop(k)
    cfg.update(overrides)
    return cfg


class WeightDownloadError(VitaffError, OSError):
    """timm's pretrained weights could not be downloaded; the message names the key that avoids it."""


def create_model(
    name: str,
    num_classes: int = 1000,
    pretrained: bool | str | Path | None = None,
    img_size: int | tuple[int, int] | None = None,
    weights_key: str = "a checkpoint path",
    **overrides: Any,
) -> VisionTransformer:
    """Build a registered ViT / hybrid ViT, optionally loading weights.

    ``img_size`` may differ from the checkpoint's: the position embedding is resampled. A
    checkpoint head with another number of classes than ``num_classes`` is skipped with a
    warning (fine-tuning, e.g. 20 VOC classes from ImageNet weights); any other missing,
    unexpected or misshaped key raises :class:`CheckpointError`. ``overrides``: constructor
    arguments (``depth``, ``embed_dim``, ``num_heads``, ``mlp_ratio``, ``patch_size``,
    ``drop_rate``, ``drop_path_rate``, ``dynamic_img_size``, ...; hybrids also ``layers``,
    ``channels``, ``stem_chs``, ``padding_same``, ``num_groups`` of the ResNetV2 stem).
    ``weights_key``: the config key that gives a local checkpoint instead of ``pretrained=True``,
    named by the error when the download fails (an offline node).
    """
    if img_size is not None:
        overrides["img_size"] = img_size
    cfg = model_config(name, num_classes=num_classes, **overrides)
    backbone = cfg.pop("backbone", None)
    if backbone is not None:
        model: VisionTransformer = HybridVisionTransformer(make_resnetv2_stem(**backbone), **cfg)
    else:
        model = VisionTransformer(**cfg)
    if pretrained is None or pretrained is False:
        return model
    if pretrained is True:
        if name.split(".", 1)[0] in _SYNTHETIC:
            raise CheckpointError(f"{name} is a vitaff configuration without published weights: set {weights_key} "
                                  "to a local checkpoint, or pretrained: false")
        import timm

        try:
            state = timm.create_model(name, pretrained=True).state_dict()
        except Exception as err:  # offline node, hub down, proxy: every failure has the same fix
            raise WeightDownloadError(
                f"could not download the pretrained weights of {name} ({type(err).__name__}: {err}). "
                f"Set {weights_key} to a local copy, saved on a machine with internet with "
                f"python -c \"import timm, torch; torch.save(timm.create_model('{name}', pretrained=True)"
                f".state_dict(), '{name}.pth')\" (README.md, 'Reproducing Table 4 on PASCAL VOC 2012')") from err
        source = f"timm:{name}"
    else:
        state = read_state_dict(pretrained)
        source = str(pretrained)
    state = adapt_state_dict(state, model, source, allow_head_mismatch=True)
    missing_head = [k for k in ("head.weight", "head.bias") if k not in state]
    model.load_state_dict(state, strict=not missing_head)
    return model
