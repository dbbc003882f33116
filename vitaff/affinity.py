"""Affinity labels, pixel pairs, pairwise affinities and the AffinityNet loss (SPEC section 6,
"Affinity labels" and "AffinityNet").

Implements AffinityNet (Ahn & Kwak, CVPR 2018, "Learning Pixel-level Semantic Affinity with
Image-level Supervision"), section 3.2-3.3, as used by the study:

* affinity labels from the two CRF stacks: label = low-alpha argmax (VOC index), 255 (neutral)
  where the low-alpha argmax is background, 0 where the high-alpha argmax is background;
* pairs (i, j) with 0 < ||i - j||^2 < radius^2 on the feature grid, one half-plane of offsets;
* affinity  a_ij = exp(-mean_channels |f_i - f_j|)                                  (psa eq. 2)
* loss      L = L_bg+ / 4 + L_fg+ / 4 + L- / 2                                 (psa eq. 3-6)
  with -log(a + 1e-5) for positive pairs and -log(1 + 1e-5 - a) for negative pairs, each term
  averaged over its own pair count (+ 1e-5).

Pair layout (shared by :func:`extract_pairs`, :func:`pairwise_affinity` and
:mod:`vitaff.random_walk`): a tensor ``... x K x h x w`` whose entry ``[k, y, x]`` is the pair
``i = (y, x)``, ``j = (y + dy_k, x + dx_k)`` with ``(dy_k, dx_k) = pair_offsets(radius)[k]``.
Every pixel of the grid is a "from" pixel; pairs whose ``j`` falls outside the grid are invalid
(labels are padded with 255 so such pairs are never positive or negative, and
:func:`pairwise_affinity` returns 0 for them). psa instead crops the "from" pixels to
``[0, h - r + 1) x [r - 1, w - r + 1)`` so that every ``j`` stays inside; the padded layout is
exact and keeps the pairs psa drops along the bottom, left and right borders.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "IGNORE",
    "pair_offsets",
    "pair_in_grid",
    "affinity_label_map",
    "extract_pairs",
    "pairwise_affinity",
    "affinity_loss",
]

#: Label value of neutral / unknown grid cells (no pairs are formed with them).
IGNORE = 255
_EPS = 1e-5


def pair_offsets(radius: int = 5, device=None) -> torch.Tensor:
    """Half-plane offsets ``(dy, dx)`` with ``0 < dy^2 + dx^2 < radius^2``, as a ``K x 2`` LongTensor.

    Order as psa: ``(0, 1) .. (0, radius - 1)``, then rows ``dy = 1 .. radius - 1`` with
    ``dx`` from ``-(radius - 1)`` to ``radius - 1``. The half-plane is ``dy > 0 or (dy == 0 and
    dx > 0)``, so an offset and its negation never both appear. K = 34 for radius 5.
    """
    r = int(radius)
    if r < 1:
        raise ValueError(f"radius must be >= 1, got {radius}")
    offs = [(0, dx) for dx in range(1, r)]
    offs += [(dy, dx) for dy in range(1, r) for dx in range(-r + 1, r) if dy * dy + dx * dx < r * r]
    return torch.tensor(offs, dtype=torch.long, device=device).reshape(-1, 2)


def _margin(radius: int) -> int:
    return max(int(radius) - 1, 0)


def pair_in_grid(h: int, w: int, radius: int = 5, device=None) -> torch.Tensor:
    """``K x h x w`` bool: True where the pair's ``j`` lies inside the ``h x w`` grid."""
    offs = pair_offsets(radius)
    ys = torch.arange(h, device=device).view(1, h, 1)
    xs = torch.arange(w, device=device).view(1, 1, w)
    dy = offs[:, 0].to(device).view(-1, 1, 1)
    dx = offs[:, 1].to(device).view(-1, 1, 1)
    return (ys + dy < h) & (xs + dx >= 0) & (xs + dx < w)


def _shifted(x: torch.Tensor, radius: int, fill) -> list[torch.Tensor]:
    """For each offset k, the ``... x h x w`` view of ``x`` at ``j = i + offset_k`` (fill outside)."""
    h, w = x.shape[-2:]
    m = _margin(radius)
    if m == 0:
        return []
    lead = x.shape[:-2]
    flat = x.reshape(-1, 1, h, w)
    if flat.dtype.is_floating_point:
        padded = F.pad(flat, (m, m, 0, m), value=float(fill))
    else:  # F.pad does not take integer tensors on every backend: build the frame by hand
        padded = torch.full((flat.shape[0], 1, h + m, w + 2 * m), fill, dtype=flat.dtype, device=flat.device)
        padded[..., :h, m : m + w] = flat
    padded = padded.reshape(*lead, h + m, w + 2 * m)
    return [padded[..., dy : dy + h, m + dx : m + dx + w] for dy, dx in pair_offsets(radius).tolist()]


def _cell_means(probs: np.ndarray, stride: int, grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``K x H x W`` probabilities over each ``stride x stride`` cell of a ``grid`` laid
    from the top-left corner; cells partly outside the image average their inside pixels only.
    Returns ``(means K x gh x gw, has_pixels gh x gw)``."""
    k, h, w = probs.shape
    gh, gw = grid
    hp, wp = gh * stride, gw * stride
    hv, wv = min(h, hp), min(w, wp)
    canvas = np.zeros((k, hp, wp), dtype=np.float64)
    canvas[:, :hv, :wv] = probs[:, :hv, :wv]
    count = np.zeros((hp, wp), dtype=np.float64)
    count[:hv, :wv] = 1.0
    sums = canvas.reshape(k, gh, stride, gw, stride).sum(axis=(2, 4))
    counts = count.reshape(gh, stride, gw, stride).sum(axis=(1, 3))
    return sums / np.maximum(counts, 1.0), counts > 0


def affinity_label_map(
    probs_low,
    probs_high,
    present_classes: Sequence[int],
    stride: int = 8,
    padded_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Affinity label grid (``h x w`` uint8) from the low- and high-alpha CRF probability stacks.

    probs_low, probs_high: ``(1 + n_present) x H x W``, channel 0 = background, channel k = VOC
    class ``present_classes[k - 1]`` (the output of :func:`vitaff.crf.crf_confident_labels`).
    The grid is ``ceil(H / stride) x ceil(W / stride)``, or ``ceil(padded_size / stride)`` when the
    image is padded (bottom/right) to ``padded_size``. Each cell takes the mean of the
    probabilities of its image pixels (mean pooling by ``stride``; a cell cut by the image border
    averages the pixels inside, which gives psa's argmax since zero padding scales all channels
    alike). Values: VOC index of the low-alpha argmax; 255 where that argmax is background;
    0 where the high-alpha argmax is background (this wins); 255 on cells without image pixels.
    """
    lo = probs_low.detach().cpu().numpy() if torch.is_tensor(probs_low) else np.asarray(probs_low)
    hi = probs_high.detach().cpu().numpy() if torch.is_tensor(probs_high) else np.asarray(probs_high)
    if lo.shape != hi.shape or lo.ndim != 3:
        raise ValueError(f"probs_low {lo.shape} and probs_high {hi.shape} must both be K x H x W")
    present = [int(c) for c in present_classes]
    if lo.shape[0] != len(present) + 1:
        raise ValueError(f"{lo.shape[0]} channels but {len(present)} present classes (+1 background)")
    _, h, w = lo.shape
    stride = int(stride)
    if padded_size is None:
        grid = (math.ceil(h / stride), math.ceil(w / stride))
    else:
        ph, pw = int(padded_size[0]), int(padded_size[1])
        if ph < h or pw < w:
            raise ValueError(f"padded_size {padded_size} is smaller than the image {h}x{w}")
        grid = (math.ceil(ph / stride), math.ceil(pw / stride))
    mean_lo, inside = _cell_means(lo, stride, grid)
    mean_hi, _ = _cell_means(hi, stride, grid)
    lut = np.array([0] + present, dtype=np.uint8)
    arg_lo = mean_lo.argmax(axis=0)
    arg_hi = mean_hi.argmax(axis=0)
    label = lut[arg_lo]
    label[arg_lo == 0] = IGNORE
    label[arg_hi == 0] = 0
    label[~inside] = IGNORE
    return label


def extract_pairs(label, radius: int = 5) -> dict[str, torch.Tensor]:
    """Positive / negative pair masks of an affinity label grid.

    label: ``h x w`` or ``B x h x w`` integer grid (0 = background, 1..20 classes, 255 neutral).
    Returns bool tensors shaped ``(B x) K x h x w`` in the pair layout of this module:
    ``bg_pos`` (both 0), ``fg_pos`` (same class > 0), ``neg`` (different labels), all requiring
    neither end to be 255 and ``j`` inside the grid.
    """
    lab = label if torch.is_tensor(label) else torch.as_tensor(np.asarray(label))
    lab = lab.long()
    if lab.ndim not in (2, 3):
        raise ValueError(f"label must be h x w or B x h x w, got shape {tuple(lab.shape)}")
    targets = _shifted(lab, radius, IGNORE)
    if not targets:
        empty = torch.zeros((*lab.shape[:-2], 0, *lab.shape[-2:]), dtype=torch.bool, device=lab.device)
        return {"bg_pos": empty, "fg_pos": empty.clone(), "neg": empty.clone()}
    to = torch.stack(targets, dim=-3)
    fr = lab.unsqueeze(-3)
    valid = (fr != IGNORE) & (to != IGNORE)
    same = fr == to
    return {
        "bg_pos": valid & same & (fr == 0),
        "fg_pos": valid & same & (fr != 0),
        "neg": valid & ~same,
    }


def pairwise_affinity(features: torch.Tensor, radius: int = 5) -> torch.Tensor:
    """``a_ij = exp(-mean_c |f_i - f_j|)`` for ``B x C x h x w`` features -> ``B x K x h x w``.

    Pairs whose ``j`` lies outside the grid get affinity 0. Differentiable.
    """
    if features.ndim != 4:
        raise ValueError(f"features must be B x C x h x w, got shape {tuple(features.shape)}")
    b, _, h, w = features.shape
    targets = _shifted(features, radius, 0.0)
    if not targets:
        return features.new_zeros((b, 0, h, w))
    aff = torch.stack([torch.exp(-(features - fj).abs().mean(dim=1)) for fj in targets], dim=1)
    inside = pair_in_grid(h, w, radius, device=features.device)
    return aff * inside.to(aff.dtype)


def affinity_loss(aff: torch.Tensor, pairs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """AffinityNet loss ``L_bg+/4 + L_fg+/4 + L-/2``; returns ``(total, terms)``.

    ``terms`` holds the three losses (``bg_pos``, ``fg_pos``, ``neg``) and their pair counts
    (``*_count``, without the 1e-5), all detached except through ``total``.
    """
    terms: dict[str, torch.Tensor] = {}
    losses = {}
    for name in ("bg_pos", "fg_pos", "neg"):
        mask = pairs[name].to(aff.dtype)
        if mask.shape != aff.shape:
            raise ValueError(f"pair mask {name} has shape {tuple(mask.shape)}, affinities {tuple(aff.shape)}")
        nll = -torch.log(1.0 + _EPS - aff) if name == "neg" else -torch.log(aff + _EPS)
        count = mask.sum()
        losses[name] = (mask * nll).sum() / (count + _EPS)
        terms[name] = losses[name].detach()
        terms[f"{name}_count"] = count.detach()
    total = losses["bg_pos"] / 4 + losses["fg_pos"] / 4 + losses["neg"] / 2
    return total, terms
