"""Random walk with learned affinities (SPEC section 6, "Random walk").

Implements the semantic propagation of AffinityNet (Ahn & Kwak, CVPR 2018, section 3.4):

    A   = a^beta on pairs within the radius, symmetrised, diag(A) = 1               (psa eq. 7-8)
    T   = A D^-1,  D = diag(column sums of A)     (columns of T sum to 1)
    v^T <- v^T T^t,  t = 2^logt                                                    (psa eq. 9)

where v is the ``C x N`` score matrix of the (padded) image on the ``h x w`` feature grid, with
the background channel ``(1 - max_c M_c)^16`` and classes at their VOC indices. Because A is
symmetric, one step is ``v(p) <- sum_q A[p, q] v(q) / d(p)`` with ``d(p) = sum_q A[p, q]``: each
pixel takes the affinity-weighted mean of its neighbourhood.

psa forms T densely (``N x N``) and squares it ``logt`` times. Here three exact methods compute
the same ``t``-step product (``method=``):

* ``"banded"``: applies the operator ``t`` times through shifted slices of the padded
  score map, ``O(t * (2K + 1) * C * h * w)`` work and ``O(K h w)`` memory, batched, any device.
* ``"sparse"``: one block-diagonal sparse CSR matrix for the batch, ``t`` sparse mat-mults
  (about 2x faster than ``"banded"`` on a CPU).
* ``"auto"`` (default): ``"sparse"`` on the CPU, ``"banded"`` elsewhere (plain slicing kernels,
  no dependence on sparse-tensor support of the accelerator).
* ``"dense"``: psa's dense ``N x N`` matrix squared ``logt`` times (``O(logt * N^3)``): fine for tiny
  grids and on a GPU for 56 x 56, slow on a CPU; useful as a cross-check.

``logt`` sets ``t = 2^logt`` steps as in psa's code (the study's "t = 8" is this logt);
``n_steps`` overrides it with an explicit step count.
Pair layout of ``aff``: see :mod:`vitaff.affinity` (``B x K x h x w``, entry ``[k, y, x]`` pairs
``(y, x)`` with ``(y, x) + pair_offsets(radius)[k]``; pairs leaving the grid are ignored).
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from vitaff.affinity import pair_in_grid, pair_offsets

__all__ = [
    "dense_affinity_matrix",
    "random_walk",
    "seed_score_grid",
    "scores_to_labels",
    "refine_seeds",
]

MAX_LABEL = 254  # label PNGs are uint8 with 255 void (vitaff.data.classes)


def _check_aff(aff: torch.Tensor, radius: int) -> torch.Tensor:
    k = pair_offsets(radius).shape[0]
    if aff.ndim != 4 or aff.shape[1] != k:
        raise ValueError(f"aff must be B x {k} x h x w for radius {radius}, got shape {tuple(aff.shape)}")
    inside = pair_in_grid(aff.shape[2], aff.shape[3], radius, device=aff.device)
    return aff.clamp(min=0) * inside.to(aff.dtype)


def dense_affinity_matrix(aff: torch.Tensor, radius: int = 5, beta: float = 1.0) -> torch.Tensor:
    """The symmetric ``N x N`` matrix A (``N = h w``, row-major pixels) with ``A = a^beta`` on the
    pairs of ``aff`` (``K x h x w`` or ``B x K x h x w``), both directions, and ``diag(A) = 1``.
    Batched input gives ``B x N x N``. Memory ``O(N^2)``: for small grids and checks."""
    batched = aff.ndim == 4
    a4 = _check_aff(aff if batched else aff.unsqueeze(0), radius) ** beta
    b, k, h, w = a4.shape
    n = h * w
    offs = pair_offsets(radius, device=aff.device)
    ys, xs = torch.meshgrid(torch.arange(h, device=aff.device), torch.arange(w, device=aff.device), indexing="ij")
    src = (ys * w + xs).reshape(1, h, w).expand(k, h, w)
    ty = ys.unsqueeze(0) + offs[:, 0].view(-1, 1, 1)
    tx = xs.unsqueeze(0) + offs[:, 1].view(-1, 1, 1)
    inside = pair_in_grid(h, w, radius, device=aff.device)
    i = src[inside]
    j = (ty * w + tx)[inside]
    mat = torch.zeros((b, n, n), dtype=a4.dtype, device=aff.device)
    vals = a4[:, inside]  # B x P
    mat[:, i, j] = vals
    mat[:, j, i] = vals
    diag = torch.arange(n, device=aff.device)
    mat[:, diag, diag] = 1.0
    return mat if batched else mat[0]


def _num_steps(logt: int | None, n_steps: int | None) -> int:
    if n_steps is not None:
        if n_steps < 0:
            raise ValueError("n_steps must be >= 0")
        return int(n_steps)
    if logt is None or logt < 0:
        raise ValueError("give logt >= 0 or n_steps")
    return 2 ** int(logt)


def _banded_weights(a: torch.Tensor, radius: int) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Per-pixel, row-normalised weights of the ``2K + 1`` neighbours (self, +offsets, -offsets).

    ``a`` is ``a^beta`` in pair layout (``B x K x h x w``, 0 outside the grid). Returns
    ``(weights B x (2K + 1) x h x w, tap offsets)``.
    """
    b, k, h, w = a.shape
    m = max(int(radius) - 1, 0)
    offs = pair_offsets(radius).tolist()
    # A[p, p - o_k] = a_k(p - o_k): shift each map by +o_k (zeros where p - o_k leaves the grid).
    ap = F.pad(a, (m, m, m, 0))
    backward = torch.stack([ap[:, i, m - dy : m - dy + h, m - dx : m - dx + w] for i, (dy, dx) in enumerate(offs)], 1)
    ones = torch.ones((b, 1, h, w), dtype=a.dtype, device=a.device)
    weights = torch.cat([ones, a, backward], dim=1)
    weights = weights / weights.sum(dim=1, keepdim=True)
    taps = [(0, 0)] + [(dy, dx) for dy, dx in offs] + [(-dy, -dx) for dy, dx in offs]
    return weights, taps


def _walk_banded(a: torch.Tensor, v: torch.Tensor, radius: int, steps: int) -> torch.Tensor:
    weights, taps = _banded_weights(a, radius)
    h, w = v.shape[-2:]
    m = max(int(radius) - 1, 0)
    wts = [weights[:, t : t + 1] for t in range(len(taps))]  # B x 1 x h x w each
    for _ in range(steps):
        vp = F.pad(v, (m, m, m, m))
        out = v * wts[0]
        for t in range(1, len(taps)):
            dy, dx = taps[t]
            out.addcmul_(vp[:, :, m + dy : m + dy + h, m + dx : m + dx + w], wts[t])
        v = out
    return v


def _walk_sparse(a: torch.Tensor, v: torch.Tensor, radius: int, steps: int) -> torch.Tensor:
    b, k, h, w = a.shape
    c = v.shape[1]
    n = h * w
    dev = a.device
    offs = pair_offsets(radius, device=dev)
    ys, xs = torch.meshgrid(torch.arange(h, device=dev), torch.arange(w, device=dev), indexing="ij")
    inside = pair_in_grid(h, w, radius, device=dev)
    src = (ys * w + xs).unsqueeze(0).expand(k, h, w)[inside]
    dst = ((ys.unsqueeze(0) + offs[:, 0].view(-1, 1, 1)) * w + xs.unsqueeze(0) + offs[:, 1].view(-1, 1, 1))[inside]
    base = (torch.arange(b, device=dev) * n).view(-1, 1)
    vals = a[:, inside]  # B x P
    diag = torch.arange(b * n, device=dev)
    rows = torch.cat([(base + src).reshape(-1), (base + dst).reshape(-1), diag])
    cols = torch.cat([(base + dst).reshape(-1), (base + src).reshape(-1), diag])
    data = torch.cat([vals.reshape(-1), vals.reshape(-1), torch.ones(b * n, dtype=a.dtype, device=dev)])
    deg = torch.zeros(b * n, dtype=a.dtype, device=dev).index_add_(0, rows, data)
    data = data / deg[rows]
    mat = torch.sparse_coo_tensor(torch.stack([rows, cols]), data, (b * n, b * n), check_invariants=False)
    with warnings.catch_warnings():  # torch flags sparse CSR as beta on first use
        warnings.simplefilter("ignore", UserWarning)
        mat = mat.coalesce().to_sparse_csr()
    x = v.permute(0, 2, 3, 1).reshape(b * n, c)
    for _ in range(steps):
        x = mat @ x
    return x.reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous()


def _walk_dense(a: torch.Tensor, v: torch.Tensor, radius: int, steps: int) -> torch.Tensor:
    b, _, h, w = a.shape
    mat = dense_affinity_matrix(a, radius, beta=1.0)  # a is already a^beta
    trans = mat / mat.sum(dim=1, keepdim=True)  # T[i, j] = A[i, j] / sum_i A[i, j] (symmetric A)
    if steps > 0 and steps & (steps - 1) == 0:
        for _ in range(int(math.log2(steps))):
            trans = trans @ trans
    else:
        trans = torch.linalg.matrix_power(trans, steps)
    vec = v.reshape(b, v.shape[1], h * w)
    return (vec @ trans).reshape(v.shape)


def random_walk(
    aff: torch.Tensor,
    scores: torch.Tensor,
    *,
    radius: int = 5,
    beta: float = 16.0,
    logt: int | None = 8,
    n_steps: int | None = None,
    method: str = "auto",
) -> torch.Tensor:
    """Propagate ``scores`` (``B x C x h x w``) ``2^logt`` (or ``n_steps``) times through T built
    from ``aff`` (``B x K x h x w``, pair layout of :mod:`vitaff.affinity`). Returns ``B x C x h x w``
    in the dtype of ``scores`` promoted with ``aff``; no gradients are needed or kept."""
    if scores.ndim != 4 or aff.ndim != 4 or scores.shape[0] != aff.shape[0] or scores.shape[2:] != aff.shape[2:]:
        raise ValueError(f"aff {tuple(aff.shape)} and scores {tuple(scores.shape)} must be B x K x h x w and B x C x h x w")
    steps = _num_steps(logt, n_steps)
    dtype = torch.promote_types(aff.dtype, scores.dtype)
    with torch.no_grad():
        a = _check_aff(aff.to(dtype), radius) ** beta
        v = scores.to(device=aff.device, dtype=dtype)
        if method == "auto":
            method = "sparse" if aff.device.type == "cpu" else "banded"
        if method == "banded":
            return _walk_banded(a, v, radius, steps)
        if method == "sparse":
            return _walk_sparse(a, v, radius, steps)
        if method == "dense":
            return _walk_dense(a, v, radius, steps)
    raise ValueError(f"unknown method {method!r}; use 'auto', 'banded', 'sparse' or 'dense'")


def _present_maps(class_maps, present_classes: Sequence[int], device) -> tuple[torch.Tensor, list[int]]:
    maps = class_maps if torch.is_tensor(class_maps) else torch.as_tensor(np.asarray(class_maps))
    maps = maps.to(device=device, dtype=torch.float32)
    present = [int(c) for c in present_classes]
    if len(set(present)) != len(present) or any(c < 1 or c > MAX_LABEL for c in present):
        raise ValueError(f"present_classes must be distinct label indices in 1..{MAX_LABEL}, got {present}")
    if maps.ndim != 3:
        raise ValueError(f"class_maps must be C x H x W, got shape {tuple(maps.shape)}")
    if maps.shape[0] == len(present):
        return maps, present
    if present and maps.shape[0] >= max(present):
        return maps[[c - 1 for c in present]], present
    raise ValueError(f"class_maps has {maps.shape[0]} channels; expected {len(present)} (present classes) "
                     f"or a full stack of at least {max(present, default=0)} (indexed by class - 1)")


def seed_score_grid(
    class_maps,
    present_classes: Sequence[int],
    grid_size: tuple[int, int],
    stride: int = 8,
    bg_power: float = 16.0,
    device=None,
) -> torch.Tensor:
    """The ``(1 + K) x h x w`` score grid psa walks on: channel 0 = ``(1 - max_c M_c)^bg_power``,
    channel k = the k-th present class (psa walks all 21 VOC channels, but absent classes are 0 and
    stay 0: each channel walks on its own, so only the present ones are kept, and the walk's cost
    grows with the classes present, not with the dataset's), zero-padded bottom/right to
    ``h*stride x w*stride`` and mean pooled by ``stride`` (padding zeros count in the means, as psa)."""
    maps, present = _present_maps(class_maps, present_classes, device)
    _, hh, ww = maps.shape
    gh, gw = int(grid_size[0]), int(grid_size[1])
    if gh * stride < hh or gw * stride < ww:
        raise ValueError(f"grid {gh}x{gw} with stride {stride} does not cover the image {hh}x{ww}")
    full = maps.new_zeros((1 + len(present), gh * stride, gw * stride))
    if present:
        full[0, :hh, :ww] = (1.0 - maps.max(dim=0).values) ** bg_power
        full[1:, :hh, :ww] = maps
    else:
        full[0, :hh, :ww] = 1.0
    return F.avg_pool2d(full.unsqueeze(0), stride, stride)[0]


def scores_to_labels(
    scores: torch.Tensor, present_classes: Sequence[int], image_size: tuple[int, int], stride: int = 8,
    *, resized: bool = False,
) -> np.ndarray:
    """``(1 + K) x h x w`` grid scores (background, then the K present classes in the order of
    ``present_classes``, as :func:`seed_score_grid` makes them) -> bilinear upsampling to
    ``h*stride x w*stride`` and crop to ``image_size`` (the padded grid of psa), or straight to
    ``image_size`` when the grid covers the image resized to a square (``resized``, the study's);
    then argmax over background + present classes (absent classes have no channel, so none can
    win). Returns ``H x W`` uint8 label indices."""
    present = [int(c) for c in present_classes]
    if scores.ndim != 3 or scores.shape[0] != 1 + len(present):
        raise ValueError(f"scores must be (1 + {len(present)} present classes) x h x w, got shape {tuple(scores.shape)}")
    hh, ww = int(image_size[0]), int(image_size[1])
    _, gh, gw = scores.shape
    size = (hh, ww) if resized else (gh * stride, gw * stride)
    up = F.interpolate(scores.unsqueeze(0).float(), size=size, mode="bilinear", align_corners=False)[0]
    up = up[:, :hh, :ww]
    labels = np.array([0, *present], dtype=np.uint8)
    return labels[up.argmax(dim=0).cpu().numpy()]


def refine_seeds(
    class_maps,
    present_classes: Sequence[int],
    aff: torch.Tensor,
    stride: int = 8,
    radius: int = 5,
    beta: float = 16.0,
    logt: int | None = 8,
    bg_power: float = 16.0,
    *,
    n_steps: int | None = None,
    method: str = "auto",
    resized: bool = False,
    dtype: torch.dtype = torch.float32,
) -> np.ndarray:
    """Random-walk refinement of one image's seeds; returns its ``H x W`` uint8 label map.

    class_maps: ``C x H x W`` seeds in [0, 1] at image resolution, one per present class in the
    order of ``present_classes`` (or a full stack indexed by class - 1).
    aff: ``K x h x w`` affinities of the image zero-padded bottom/right to ``h*stride x w*stride``
    (needs ``h*stride >= H`` and ``w*stride >= W``), as from ``AffinityNet.affinity`` (psa); or,
    with ``resized``, of the image resized to ``h*stride x w*stride`` (the study's code): the seeds
    are resized the same way before pooling and the walked scores upsampled back to ``H x W``.
    ``dtype``: of the walk (the study's code walks in float64).
    """
    if aff.ndim != 3:
        raise ValueError(f"aff must be K x h x w for one image, got shape {tuple(aff.shape)}")
    maps, present = _present_maps(class_maps, present_classes, aff.device)
    image_size = maps.shape[1:]
    if resized:
        side = (aff.shape[1] * stride, aff.shape[2] * stride)
        maps = F.interpolate(maps[None], size=side, mode="bilinear", align_corners=False)[0]
    grid = seed_score_grid(maps, present, aff.shape[1:], stride, bg_power, device=aff.device)
    walked = random_walk(aff.unsqueeze(0).to(dtype), grid.unsqueeze(0).to(dtype), radius=radius, beta=beta, logt=logt,
                         n_steps=n_steps, method=method)[0]
    return scores_to_labels(walked, present, image_size, stride, resized=resized)
