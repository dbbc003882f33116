"""The model names :func:`vitaff.models.create_model` accepts, importable without torch.

The Snakefile checks every model name of the config against this list when the workflow starts
(``vitaff.config``), so a typo stops ``snakemake -n`` instead of a training job hours later.
``tests/test_models.py`` keeps it equal to the registry in :mod:`vitaff.models`.
"""

from __future__ import annotations

import difflib

#: registered architectures (timm's names; vit_synth_tiny / vit_hybrid_synth are vitaff's embedded models)
MODEL_NAMES = (
    "deit_base_patch16_224",
    "deit_small_patch16_224",
    "deit_tiny_patch16_224",
    "vit_base_patch16_224",
    "vit_base_r50_s16_384",
    "vit_hybrid_synth",
    "vit_large_patch16_224",
    "vit_small_patch16_224",
    "vit_synth_tiny",
    "vit_tiny_patch16_224",
)


def architecture(name: str) -> str:
    """The registered part of a name: a timm pretrained tag after the first '.' is dropped."""
    return name.split(".", 1)[0]


def unknown_model_message(name: str) -> str | None:
    """None for an accepted name, else a sentence naming the closest and all valid names."""
    arch = architecture(name)
    if arch in MODEL_NAMES:
        return None
    close = difflib.get_close_matches(arch, MODEL_NAMES, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return (f"unknown model {name!r}{hint}; valid names: {', '.join(MODEL_NAMES)}, "
            "optionally with a timm pretrained tag after a dot (vit_base_patch16_224.orig_in21k_ft_in1k)")
