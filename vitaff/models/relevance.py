"""Relevance rules of the ViT (SPEC section 1), apart from the layers that use them.

Chefer, Gur & Wolf, "Transformer Interpretability Beyond Attention Visualization", CVPR 2021
(https://arxiv.org/abs/2012.09838), section 3.1-3.2: LRP with alpha = 1, beta = 0 (eq. 1-3), the
normalised Add rule (eq. 7-8) and gradient x input on the two activation-activation products of
attention (each half / 2); the z^B rule of eq. 4 at the input sits with the patch embedding
(:class:`vitaff.models.vit.PatchEmbed`). Also here: the two rule sets (:data:`OURS` = section 1,
:data:`ORIG` = plain LRP, SPEC section 2), the per-call :class:`Record` the traced forward fills
for the rules, the :class:`ProductCache` that passes over one forward share, and the
:class:`RelevanceResult` of a pass. As Chefer's ``layers_ours.py`` and timm's ``layers/`` keep
rules and building blocks apart from the model file, :mod:`vitaff.models.vit` holds only layers
and the model; each layer's ``relprop`` calls the rules below.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

__all__ = [
    "RuleSet",
    "OURS",
    "ORIG",
    "RULE_SETS",
    "Record",
    "RelevanceResult",
    "safe_divide",
    "fork_relprop",
    "linear_relprop",
    "ProductCache",
    "IDENTITY_TOL",
    "add_relprop",
    "matmul_relprop",
    "sample_sum",
    "sample_total",
]

EPS = 1e-9


@dataclass(frozen=True)
class RuleSet:
    """Which variant of the two rules that differ between Chefer et al. and plain LRP.

    ``rescale_add``: Add rescales both operands' relevance so that ``|sum R_u| : |sum R_v|`` is
    kept and the pair conserves ``sum R`` (section 1). Plain LRP ("orig"): gradient x input only.
    ``separate_linear``: the Linear rule normalises the positive part ``x+ W+`` and the negative
    part ``x- W-`` separately ("orig") instead of by their sum (section 1).
    """

    name: str
    rescale_add: bool
    separate_linear: bool


OURS = RuleSet("ours", rescale_add=True, separate_linear=False)
ORIG = RuleSet("orig", rescale_add=False, separate_linear=True)
RULE_SETS = {r.name: r for r in (OURS, ORIG)}


def safe_divide(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a / (b + 1e-9)``, and 0 where ``b == 0`` (SPEC section 1, "Division everywhere").

    Chefer et al.'s ``safe_divide``: the denominator is ``b + 1e-9`` whatever the sign of ``b``
    (``clamp(b, min=eps) + clamp(b, max=eps)``), replaced by ``1e-9`` where that sum is 0
    (``b == -1e-9``), and the quotient is zeroed where ``b == 0``.
    """
    den = b + EPS
    if EPS:
        den.masked_fill_(den == 0, EPS)
    return (a / den).masked_fill_(b == 0, 0)


def _safe_divide_into(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """:func:`safe_divide` written into ``b`` (a temporary the caller owns): the same values,
    without the two extra tensors of ``b``'s size."""
    if torch.result_type(a, b) != b.dtype:  # mixed precision (autocast): b cannot hold the quotient
        return safe_divide(a, b)
    zero = b == 0
    b.add_(EPS)
    if EPS:
        b.masked_fill_(b == 0, EPS)
    torch.div(a, b, out=b)
    return b.masked_fill_(zero, 0)


def fork_relprop(x: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """Relevance of ``x`` where several relevances ``R = R_1 + R_2 (+ ...)`` arrive at it.

    The reference's ``Clone`` (residual fork) and ``IndexSelect`` (CLS select) rules are gradient
    x input: ``R_x = x * sum_i R_i / (x + 1e-9)`` (0 where ``x == 0``), not the plain sum
    ``sum_i R_i`` -- the stabiliser moves relevance by ``R * 1e-9 / x`` where ``x`` is small.
    Element-wise.
    """
    return safe_divide(R, x).mul_(x)


def sample_total(t: torch.Tensor) -> torch.Tensor:
    """Per-sample total (B,) of a relevance tensor."""
    return t.reshape(t.shape[0], -1).sum(1)


def sample_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over everything but the batch dimension, shaped to broadcast against ``t``."""
    return t.reshape(t.shape[0], -1).sum(1).reshape((t.shape[0],) + (1,) * (t.dim() - 1))


class ProductCache(dict):
    """Relevance-independent products of the Linear rule, shared by relevance passes over one
    traced forward (other targets, other rule set); keys ``(id(weight), token shape)``.

    ``split``: an "orig" pass will follow, so the "ours" pass computes ``x+ W+^T`` and
    ``x- W-^T`` separately (the "orig" rule needs both; "ours" takes their sum) instead of the
    cheaper identity of :func:`linear_relprop`.
    """

    def __init__(self, split: bool = False) -> None:
        super().__init__()
        self.split = split

    def abs_weight(self, w: torch.Tensor) -> torch.Tensor:
        """``|W|``, computed once per session (weights do not change between its passes)."""
        key = ("|W|", id(w))
        if key not in self:
            self[key] = w.abs()
        return self[key]


#: the "ours" identity is used only where ``Z >= IDENTITY_TOL * (|x| |W|^T + |b|)`` for every
#: entry: its rounding error is ~ulp(|x| |W|^T + |b|), i.e. at most ~1/IDENTITY_TOL ulps of Z
#: (dense ViT layers give Z / (|x| |W|^T + |b|) ~ 0.2-0.5; a layer that fails falls back to the
#: exact two-part products)
IDENTITY_TOL = 2.0 ** -8


def linear_relprop(x: torch.Tensor, layer: nn.Linear, R: torch.Tensor, rules: RuleSet,
                   y: torch.Tensor | None = None, cache: ProductCache | None = None) -> torch.Tensor:
    """LRP alpha1-beta0 through ``y = x W^T + b``, bias ignored.

    ours: ``Z = x+ W+^T + x- W-^T; S = R / Z; R_x = x+ (S W+) + x- (S W-)``.
    orig: the same with ``S+ = R / (x+ W+^T)`` and ``S- = R / (x- W-^T)``.

    ``y``: the layer's output recorded by the forward pass. The "ours" rule then uses
    ``x+ W+^T + x- W-^T = (x W^T + |x| |W|^T) / 2`` and
    ``x+ (S W+) + x- (S W-) = (x (S W) + |x| (S |W|)) / 2`` with ``x W^T = y - b`` from the
    forward: Z costs one GEMM instead of two and no ``W+`` / ``W-`` copies are made. Both
    identities add and subtract terms of size ``|x| |W|``, so they are used only where Z is not
    much smaller than that (:data:`IDENTITY_TOL`); otherwise, without ``y``, and for "orig" the
    two parts are computed separately.
    ``cache``: relevance-independent products (Z, or ``x+ W+^T`` and ``x- W-^T``, and ``|W|``)
    kept for later passes over the same activations.
    """
    shape, d_in = x.shape[:-1], x.shape[-1]
    x2, r2 = x.reshape(-1, d_in), R.reshape(-1, R.shape[-1])
    w = layer.weight
    key = (id(w), tuple(shape))
    z = cache.get(key) if cache is not None else None
    split = rules.separate_linear or (cache is not None and cache.split)
    # the identity's rounding error is ~ulp(|x| |W|^T): too coarse in a 16-bit format (autocast)
    wide = y is not None and y.dtype in (torch.float32, torch.float64)
    if not split and wide and not isinstance(z, tuple):
        ax, aw = x2.abs(), (w.abs() if cache is None else cache.abs_weight(w))
        if z is None:
            z = _ours_z(x2, ax, aw, y.reshape(-1, y.shape[-1]), layer.bias)
            if cache is not None and z is not None:
                cache[key] = z
        if z is not None:
            s = safe_divide(r2, z).mul_(0.5)
            out = (s @ w).mul_(x2)
            out.addcmul_(ax, s @ aw)
            return out.reshape(*shape, d_in)
    # two-part form (exact: every product is a sum of same-signed terms)
    wp, wn = w.clamp(min=0), w.clamp(max=0)
    xp, xn = x2.clamp(min=0), x2.clamp(max=0)
    if isinstance(z, tuple):
        zp, zn = z
    elif cache is not None or rules.separate_linear:
        zp, zn = xp @ wp.T, xn @ wn.T
        if cache is not None:
            cache[key] = (zp, zn)
    else:
        zp = zn = None
    if rules.separate_linear:
        sp, sn = safe_divide(r2, zp), safe_divide(r2, zn)
    else:
        # Z >= 0: both products are sums of non-negative terms
        sp = sn = safe_divide(r2, torch.addmm(xp @ wp.T, xn, wn.T) if zp is None else zp + zn)
    out = (sp @ wp).mul_(xp)
    out.addcmul_(xn, sn @ wn)
    return out.reshape(*shape, d_in)


def _ours_z(x: torch.Tensor, ax: torch.Tensor, aw: torch.Tensor, y: torch.Tensor,
            bias: torch.Tensor | None) -> torch.Tensor | None:
    """``Z = x+ W+^T + x- W-^T = (x W^T + |x| |W|^T) / 2`` with ``x W^T = y - b`` from the
    forward (one GEMM); ``None`` if some entry is too small for that to be accurate."""
    a = ax @ aw.T
    z = y.sub(bias) if bias is not None else y.clone()
    z.add_(a).mul_(0.5)
    bound = a.add_(bias.abs()) if bias is not None else a
    if (z < bound.mul_(IDENTITY_TOL)).any():
        return None
    return z


def add_relprop(
    u: torch.Tensor, v: torch.Tensor, R: torch.Tensor, rules: RuleSet, z: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Relevance of the two operands of ``z = u + v`` (``v`` may broadcast over the batch).

    Gradient x input ``R_u = u R / z``; with ``rules.rescale_add`` each part is then rescaled per
    sample so that ``|sum R_u| : |sum R_v|`` is kept and ``sum R_u + sum R_v = sum R``.
    ``z``: the sum if the forward pass kept it.
    """
    s = safe_divide(R, u + v if z is None else z)
    ru, rv = u * s, v * s
    if rules.rescale_add:
        su, sv, sr = sample_sum(ru), sample_sum(rv), sample_sum(R)
        total = su.abs() + sv.abs()
        ru.mul_(safe_divide(safe_divide(su.abs(), total) * sr, su))
        rv.mul_(safe_divide(safe_divide(sv.abs(), total) * sr, sv))
    return ru, rv


def matmul_relprop(
    a: torch.Tensor, b: torch.Tensor, R: torch.Tensor, z: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient x input through ``z = a @ b`` of two activations, each half divided by 2.

    ``S = R / Z``; ``R_a = a * (S b^T) / 2``, ``R_b = b * (a^T S) / 2``.
    """
    s = (_safe_divide_into(R, a @ b) if z is None else safe_divide(R, z)).mul_(0.5)
    ra = (s @ b.transpose(-1, -2)).mul_(a)
    rb = (a.transpose(-1, -2) @ s).mul_(b)
    return ra, rb


class Record(dict):
    """Per-call activations of one layer (and, under string keys, of its sub-layers)."""

    def child(self, name: str) -> "Record":
        sub = self.get(name)
        if sub is None:
            sub = self[name] = Record()
        return sub


@dataclass
class RelevanceResult:
    """Output of :meth:`VisionTransformer.relprop`.

    ``attn``: block index -> ``R^{A_b}`` (B x heads x N x N, the halved relevance of the
    attention probabilities) for the requested blocks. ``sums``: (stage, per-sample total
    relevance) in the order of the pass -- the conservation property test reads these.
    ``tokens``: relevance at the input of block 0 (B x N x D) if the pass got there.
    ``pixels``: B x H x W input relevance, summed over channels (``to_pixels=True``).
    """

    rules: RuleSet
    attn: dict[int, torch.Tensor] = field(default_factory=dict)
    sums: list[tuple[str, torch.Tensor]] = field(default_factory=list)
    tokens: torch.Tensor | None = None
    pixels: torch.Tensor | None = None
