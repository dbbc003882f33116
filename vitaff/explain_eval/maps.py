"""Explanation maps as the tests use them: every method of one batch from one
:func:`vitaff.explain.explain_all` forward, upsampled and min-max normalised per image, plus the
seeded random baseline; and the batched top-1 classification the tests score."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch

from vitaff.classifier import normalise
from vitaff.config import ConfigError
from vitaff.explain import ALL_METHODS, explain_all, upsample_and_normalise

#: name of the random-map baseline (a uniform random pixel map, seeded per image)
RANDOM = "random"
#: the six methods and the three ablations of Chefer et al. Table 3. "B-1" is the reference
#: code's ``blocks[1]`` (blocks counted from the output: (1) = last block, (B-1) = second block)
DEFAULT_METHODS = ("transformer_attribution", "rollout", "raw_attention", "attn_gradcam", "lrp", "partial_lrp",
                   "ta_no_grad", "ta_last_block", "ta_second_block")


def check_methods(methods: Iterable[str]) -> list[str]:
    methods = list(methods)
    bad = [m for m in methods if m not in ALL_METHODS and m != RANDOM]
    if bad:
        raise ConfigError(f"unknown explanation methods {bad}; valid: {', '.join(ALL_METHODS + (RANDOM,))}")
    return methods


@torch.no_grad()
def classify(model: torch.nn.Module, images01: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Top-1 classes (on the CPU) of [0, 1] images, normalised here, in batches."""
    preds = [model(normalise(chunk)).argmax(1).cpu() for chunk in images01.split(batch_size)]
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)


def random_maps(shape: tuple[int, int], indices: Sequence[int], seed: int) -> torch.Tensor:
    """Uniform random pixel maps, one generator per image index (independent of batching and sharding)."""
    return torch.stack([torch.from_numpy(np.random.default_rng([seed, 11, int(i)]).random(shape)).float()
                        for i in indices])


def explanation_maps(model: torch.nn.Module, images01: torch.Tensor, target: torch.Tensor, methods: Sequence[str],
                     start_layer: int = 1, indices: Sequence[int] | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    """Maps at input resolution, min-max normalised per image: method -> B x H x W in [0, 1].

    One :func:`explain_all` forward for all relevance methods; token maps are upsampled bilinearly
    (``align_corners=False``, SPEC 2), ``lrp`` is already on the pixels; ``random`` is a seeded
    uniform map per image index.
    """
    H, W = images01.shape[-2:]
    relevance = [m for m in methods if m != RANDOM]
    out: dict[str, torch.Tensor] = {}
    if relevance:
        raw = explain_all(model, normalise(images01), target, relevance, start_layer)
        for m in relevance:
            r = raw[m].detach().float()
            out[m] = upsample_and_normalise(r, size=None if tuple(r.shape[-2:]) == (H, W) else (H, W)).cpu()
    if RANDOM in methods:
        idx = list(indices) if indices is not None else list(range(images01.shape[0]))
        out[RANDOM] = random_maps((H, W), idx, seed)
    return {m: out[m] for m in methods}
