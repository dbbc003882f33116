"""Explanation maps of a ViT classifier: the six methods of SPEC section 2 over one relevance engine.

Chefer, Gur & Wolf, "Transformer Interpretability Beyond Attention Visualization", CVPR 2021
(https://arxiv.org/abs/2012.09838):

* ``transformer_attribution`` -- eq. 13-14: ``Abar_b = E_h[(grad A_b * R^{A_b})+]``,
  ``C = prod_b (I + Abar_b)`` from ``start_layer``, map = row CLS, patch columns;
* ``rollout`` -- Abnar & Zuidema, ACL 2020: ``prod_b rownorm(E_h A_b + I)``;
* ``raw_attention`` -- ``E_h A_L`` of the last block, CLS row;
* ``attn_gradcam`` -- Grad-CAM on the last block's attention (Selvaraju et al. 2017);
* ``partial_lrp`` -- Voita et al. 2019: ``E_h (R^{A_L})+`` under plain LRP ("orig" rules);
* ``lrp`` -- plain LRP (Binder et al. 2016) all the way to the pixels (z^B rule at the input); on a
  hybrid, whose CNN stem has no rules, to the patch tokens (their relevance summed over channels).

Ablations of Chefer et al. Table 3 (extra method names): ``ta_no_grad`` (``E_h (R^{A_b})+``
rolled out like ``transformer_attribution``), ``ta_last_block`` (``E_h (grad A * R^A)+`` of the
last block only), ``ta_block_minus_1`` (the same for block ``L-2``, 0-based) and
``ta_second_block`` (block 1, 0-based: the reference code's ``second_layer`` ablation).

Every method takes a batch with one target class per sample. All methods asked for together
share one forward pass; gradients of all needed attention maps come from one
``torch.autograd.grad`` call on ``sum_b logits[b, target_b]`` (samples do not interact, so
these are the per-sample gradients); the relevance pass runs once per rule set as explicit
tensor operations (:meth:`vitaff.models.vit.VisionTransformer.relprop`, rules in
:mod:`vitaff.models.relevance`).

CLI: ``python -m vitaff.explain --model NAME --image a.jpg --method all --out map.png``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F

from vitaff.errors import VitaffError
from vitaff.models.relevance import ORIG, OURS, ProductCache, Record, add_relprop
from vitaff.models.vit import VisionTransformer

__all__ = [
    "METHODS",
    "ABLATION_METHODS",
    "ALL_METHODS",
    "UnknownMethodError",
    "explain",
    "explain_all",
    "explain_classes",
    "upsample_and_normalise",
]

METHODS = ("transformer_attribution", "rollout", "raw_attention", "attn_gradcam", "lrp", "partial_lrp")
ABLATION_METHODS = ("ta_no_grad", "ta_last_block", "ta_block_minus_1", "ta_second_block")
ALL_METHODS = METHODS + ABLATION_METHODS


class UnknownMethodError(VitaffError, ValueError):
    """A method name that is not one of :data:`ALL_METHODS` (the message lists them)."""


# ----------------------------------------------------------------------------------------------
# What each method needs from the forward / backward / relevance passes
# ----------------------------------------------------------------------------------------------


@dataclass
class _Needs:
    grad: set[int] = field(default_factory=set)  # blocks whose dA is needed
    ours: set[int] = field(default_factory=set)  # blocks whose R^A (section-1 rules) is needed
    orig: set[int] = field(default_factory=set)  # blocks whose R^A ("orig" rules) is needed
    pixels: bool = False  # "orig" relevance down to the pixels

    def add(self, other: "_Needs") -> None:
        self.grad |= other.grad
        self.ours |= other.ours
        self.orig |= other.orig
        self.pixels |= other.pixels


def _check_method(method: str) -> None:
    if method not in ALL_METHODS:
        raise UnknownMethodError(f"unknown method {method!r}; valid methods: {', '.join(ALL_METHODS)}")


# Ablations of one block (0-based): the last, the one before it, the second (the reference's ``second_layer``).
SINGLE_BLOCK_ABLATIONS = ("ta_last_block", "ta_block_minus_1", "ta_second_block")


def _single_block(method: str, depth: int) -> int:
    return {"ta_last_block": depth - 1, "ta_block_minus_1": depth - 2, "ta_second_block": 1}[method]


def _needs(method: str, depth: int, start_layer: int) -> _Needs:
    _check_method(method)
    last = depth - 1
    rolled = set(range(start_layer, depth))
    if method == "transformer_attribution":
        return _Needs(grad=rolled, ours=rolled)
    if method == "ta_no_grad":
        return _Needs(ours=rolled)
    if method in SINGLE_BLOCK_ABLATIONS:
        b = _single_block(method, depth)
        if not 0 <= b < depth:
            raise ValueError(f"{method} needs block {b}, the model has {depth} blocks")
        return _Needs(grad={b}, ours={b})
    if method == "attn_gradcam":
        return _Needs(grad={last})
    if method == "partial_lrp":
        return _Needs(orig={last})
    if method == "lrp":
        return _Needs(pixels=True)
    return _Needs()  # rollout, raw_attention: attention maps only


# ----------------------------------------------------------------------------------------------
# Engine
# ----------------------------------------------------------------------------------------------


def _check_start_layer(model: VisionTransformer, start_layer: int) -> int:
    """The model's depth, after checking that ``start_layer`` names one of its blocks."""
    depth = len(model.blocks)
    if not 0 <= start_layer < depth:
        raise ValueError(f"start_layer {start_layer} outside 0..{depth - 1}")
    return depth


class _Session:
    """One traced forward of a batch; then any number of (target -> maps) passes over it."""

    def __init__(self, model: VisionTransformer, images: torch.Tensor, methods: Sequence[str], start_layer: int,
                 passes: int = 1):
        depth = _check_start_layer(model, start_layer)
        if images.dim() != 4:
            raise ValueError(f"images must be B x C x H x W, got shape {tuple(images.shape)}")
        self.model, self.methods, self.start_layer = model, list(methods), start_layer
        self.needs = _Needs()
        for m in self.methods:
            self.needs.add(_needs(m, depth, start_layer))
        self.grad_blocks = sorted(self.needs.grad)
        # products of the Linear rule that do not depend on the relevance are shared between
        # relevance passes over this forward (several classes, both rule sets); with both rule
        # sets the two parts x+ W+^T, x- W-^T are kept (the "orig" rule needs them, "ours" adds
        # them), else only the "ours" Z (one GEMM from the forward's output, see linear_relprop)
        orig = bool(self.needs.orig or self.needs.pixels)
        relevance_passes = passes * (bool(self.needs.ours) + orig)
        self.cache = ProductCache(split=orig and bool(self.needs.ours)) if relevance_passes > 1 else None
        with torch.set_grad_enabled(bool(self.grad_blocks)):
            x = images.clone() if images.is_inference() else images
            if self.grad_blocks and not any(p.requires_grad for p in model.parameters()):
                x = x.detach().requires_grad_(True)  # frozen model: still build the graph
            self.logits, self.rec = model.forward_trace(x)
        self.attn = [r["attn"]["attn"] for r in self.rec["blocks"]]
        if not self.grad_blocks:
            self.logits = self.logits.detach()
        self.predicted = self.logits.detach().argmax(1)

    def targets(self, target: int | Sequence[int] | torch.Tensor | None) -> torch.Tensor:
        B, C = self.logits.shape
        if target is None:
            return self.predicted
        t = torch.as_tensor(target, dtype=torch.long, device=self.logits.device)
        if t.dim() == 0:
            t = t.expand(B)
        if t.shape != (B,):
            raise ValueError(f"target must be None, an int or {B} class indices, got shape {tuple(t.shape)}")
        if (t < 0).any() or (t >= C).any():
            raise ValueError(f"target classes must lie in 0..{C - 1}, got {t.tolist()}")
        return t

    def maps(self, target: torch.Tensor, retain_graph: bool = False) -> dict[str, torch.Tensor]:
        """Maps of every method for per-sample classes ``target`` (B,)."""
        model, needs = self.model, self.needs
        grads: dict[int, torch.Tensor] = {}
        if self.grad_blocks:
            with torch.enable_grad():
                score = self.logits.gather(1, target[:, None]).sum()
                g = torch.autograd.grad(score, [self.attn[b] for b in self.grad_blocks],
                                        retain_graph=retain_graph)
            grads = dict(zip(self.grad_blocks, g))
            if not retain_graph:
                self.release_graph()
        one_hot = F.one_hot(target, self.logits.shape[1]).to(self.logits.dtype)
        ours = orig = None
        if needs.ours:
            ours = model.relprop(self.rec, one_hot, OURS, keep_attn=needs.ours, stop_block=min(needs.ours),
                                 cache=self.cache)
        if needs.orig or needs.pixels:
            orig = model.relprop(self.rec, one_hot, ORIG, keep_attn=needs.orig,
                                 stop_block=min(needs.orig) if needs.orig else None,
                                 to_pixels=needs.pixels and _has_pixel_rules(model),
                                 cache=self.cache)
        with torch.no_grad():
            return {m: self._method(m, grads, ours, orig) for m in self.methods}

    def release_graph(self) -> None:
        """Drop the autograd graph; keep the recorded activations (detached)."""
        self.logits = self.logits.detach()
        _detach(self.rec)
        self.attn = [r["attn"]["attn"] for r in self.rec["blocks"]]
        self.grad_blocks = []

    def close(self) -> None:
        """Free the cached products and the graph (the session is done)."""
        self.release_graph()
        self.cache = None

    def _grid(self, row: torch.Tensor) -> torch.Tensor:
        """CLS row over the patch tokens (B x n) -> B x h x w."""
        gh, gw = self.rec["grid"]
        return row.reshape(row.shape[0], gh, gw)

    def _method(self, method: str, grads, ours, orig) -> torch.Tensor:
        depth, s = len(self.model.blocks), self.start_layer
        A = [a.detach() for a in self.attn]
        if method == "transformer_attribution":
            row = None
            for b in range(depth - 1, s - 1, -1):
                row = _attribution_step(row, grads[b], ours.attn[b])
            return self._grid(row[:, 1:])
        if method == "ta_no_grad":
            return self._grid(_roll([ours.attn[b].clamp(min=0).mean(1) for b in range(s, depth)]))
        if method in SINGLE_BLOCK_ABLATIONS:
            b = _single_block(method, depth)
            return self._grid((grads[b] * ours.attn[b]).clamp(min=0).mean(1)[:, 0, 1:])
        if method in ATTENTION_ONLY:
            return self._grid(_attention_only_row(method, [a.mean(1) for a in A[s:]]))
        if method == "attn_gradcam":
            w = grads[depth - 1][:, :, 0, 1:].mean(-1, keepdim=True)  # B x heads x 1
            return self._grid((w * A[-1][:, :, 0, 1:]).mean(1).clamp(min=0))
        if method == "partial_lrp":
            return self._grid(orig.attn[depth - 1].clamp(min=0).mean(1)[:, 0, 1:])
        if method == "lrp":
            if orig.pixels is not None:
                return orig.pixels
            # a hybrid's CNN stem has no relevance rules: the pass ends at the patch tokens, whose
            # relevance (without the position embedding's share, summed over channels) is the map
            r_tok, _ = add_relprop(self.rec["tokens"], self.rec["pos"], orig.tokens, ORIG)
            return self._grid(r_tok[:, 1:].sum(-1))
        raise UnknownMethodError(method)  # pragma: no cover - guarded by _needs


# methods read from the attention maps alone: one map per image, whatever the class
ATTENTION_ONLY = ("rollout", "raw_attention")


def _attention_only_row(method: str, head_means: list[torch.Tensor]) -> torch.Tensor:
    """CLS row over the patch tokens (B x (N - 1)) of ``rollout`` or ``raw_attention`` from the
    head-averaged attention maps ``E_h A_b`` (B x N x N) of blocks ``start_layer..depth-1``."""
    if method == "raw_attention":
        return head_means[-1][:, 0, 1:]
    mats = []
    for m in head_means:
        m = m + torch.eye(m.shape[-1], dtype=m.dtype, device=m.device)
        mats.append(m / m.sum(-1, keepdim=True))
    return _roll(mats, residual=False)


def _attention_only_maps(model: VisionTransformer, images: torch.Tensor, method: str,
                         start_layer: int) -> torch.Tensor:
    """B x h x w maps of an :data:`ATTENTION_ONLY` method without a traced session: a no-grad
    forward, block by block, that keeps each block's head-averaged attention (1/heads of the
    map) and drops the block's other activations as it goes. A session would keep every block's
    record for relevance passes these methods never make: at psa's scale 2.0 on the hybrid
    (3,137 tokens) that is 23 GB for two images against about 1 GB per image here."""
    depth = _check_start_layer(model, start_layer)
    with torch.no_grad():
        x, grid = model.embed_tokens(images)
        head_means = []
        for b in range(depth):
            rec = Record()
            x = model.forward_block(b, x, rec)  # the traced arithmetic: the same maps as a session's
            if b >= start_layer:
                head_means.append(rec["attn"]["attn"].mean(1))
            del rec
        row = _attention_only_row(method, head_means)
    return row.reshape(row.shape[0], *grid)


def _has_pixel_rules(model: VisionTransformer) -> bool:
    """Whether the relevance pass reaches the pixels (a plain ViT's patch embedding has rules)."""
    return hasattr(model.patch_embed, "relprop")


def _roll(mats: list[torch.Tensor], residual: bool = True) -> torch.Tensor:
    """CLS row of ``M_L ... M_s`` with ``M_b = I + mats_b`` (``residual``) or ``M_b = mats_b``.

    ``mats`` are ordered first block first. Multiplying the row vector ``e_0^T`` from the left
    costs O(N^2) per block instead of the O(N^3) of the full matrix product; the result is the
    same CLS row. Returns B x (N - 1), the patch columns.
    """
    r = torch.zeros_like(mats[-1][:, 0])
    r[:, 0] = 1
    for m in reversed(mats):
        rm = (r.unsqueeze(1) @ m).squeeze(1)
        r = r + rm if residual else rm
    return r[:, 1:]


def _attribution_step(row: torch.Tensor | None, grad_attn: torch.Tensor, rel_attn: torch.Tensor,
                      consume: bool = False) -> torch.Tensor:
    """One factor of eq. 13-14 folded into the CLS row: ``r^T (I + Abar_b)`` with
    ``Abar_b = E_h[(grad A_b * R^{A_b})+]``; ``row``: B x N, the maps B x heads x N x N.

    The one transformer-attribution arithmetic: a :class:`_Session` folds its blocks from the last
    down with it, :func:`_attribution_sweep` block by block as the relevance pass reaches them.
    ``consume``: ``grad_attn`` is a temporary of the caller's, overwritten instead of copied.
    ``row`` None: start from ``e_0^T`` (in ``Abar_b``'s dtype).
    """
    prod = grad_attn.mul_(rel_attn) if consume else grad_attn * rel_attn
    abar = prod.clamp_(min=0).mean(1)
    del prod, grad_attn
    if row is None:
        row = _cls_row(abar)
    return row + (row.unsqueeze(1) @ abar).squeeze(1)


def _cls_row(like: torch.Tensor) -> torch.Tensor:
    """``e_0^T``: B x N, 1 at the CLS token (``like``: any B x N x ... tensor)."""
    row = like.new_zeros(like.shape[:2])
    row[:, 0] = 1
    return row


class _Fold:
    """``keep_attn`` callback of one block's relevance pass: folds ``Abar_b`` into the CLS row as
    soon as ``R^{A_b}`` is known, consuming ``grad A_b`` (it is released before the pass goes on)."""

    def __init__(self, grad_attn: torch.Tensor, row: torch.Tensor | None) -> None:
        self.grad_attn, self.row = grad_attn, row

    def __call__(self, rel_attn: torch.Tensor) -> None:
        grad, self.grad_attn = self.grad_attn, None
        self.row = _attribution_step(self.row, grad, rel_attn, consume=True)


def _attribution_sweep(model: VisionTransformer, images: torch.Tensor, targets: Sequence[torch.Tensor],
                       start_layer: int) -> list[torch.Tensor]:
    """``transformer_attribution`` maps (B x h x w) for each per-sample target vector in ``targets``,
    block by block with bounded memory.

    The same arithmetic as a :class:`_Session` (the model's own traced forward pieces, the same
    rules and :func:`_attribution_step`; the maps equal it and the reference), organised so that
    nothing of size blocks x N x N is ever held:

    1. one forward without autograd keeps only the input tokens of the blocks ``start_layer..L-1``
       (B x N x D each; the CNN stem of a hybrid runs without a graph);
    2. one top-down sweep over the blocks (:func:`_sweep_block`): block ``b`` is re-run from its
       input with autograd (recording what its relevance rules need), then for every target in
       turn the gradient is taken one block down (``d y_t / d A_b`` and the gradient at the
       block's input, from the gradient at its output), the relevance pass goes one block down
       (``R^{A_b}`` and the relevance at its input), and ``Abar_b`` is folded at once into the CLS
       row: ``e_0^T (I + Abar_{L-1}) ... (I + Abar_s)`` is built from the last block down, the
       order of the relevance pass. The block's record and graph are dropped before the next block.

    Per target the sweep costs one backward and one relevance pass, like the session; the extra
    forward of step 2 is shared by all targets. Memory: the block inputs, one block's record and
    graph, and per target two B x N x D tensors (gradient and relevance).
    """
    L = len(model.blocks)
    if not 0 <= start_layer < L:
        raise ValueError(f"start_layer {start_layer} outside 0..{L - 1}")
    if images.dim() != 4:
        raise ValueError(f"images must be B x C x H x W, got shape {tuple(images.shape)}")
    with torch.no_grad():
        x, grid = model.embed_tokens(images)
        inputs: dict[int, torch.Tensor] = {}
        for b in range(L):
            if b >= start_layer:
                inputs[b] = x
            if b < L - 1:
                x = model.forward_block(b, x, Record())  # the traced arithmetic; the record is dropped
        del x
    n = len(targets)
    grads: list[torch.Tensor | None] = [None] * n  # gradient of y_t at the current block's output
    rels: list[torch.Tensor | None] = [None] * n  # relevance at the current block's output
    rows: list[torch.Tensor | None] = [None] * n  # CLS row of (I + Abar_{L-1}) ... (I + Abar_b)
    for b in range(L - 1, start_layer - 1, -1):
        _sweep_block(model, b, inputs.pop(b), targets, grads, rels, rows, need_input=b > start_layer)
    gh, gw = grid
    return [r[:, 1:].reshape(r.shape[0], gh, gw) for r in rows]


def _sweep_block(model: VisionTransformer, b: int, x_in: torch.Tensor, targets: Sequence[torch.Tensor],
                 grads: list, rels: list, rows: list, need_input: bool) -> None:
    """Step 2 of :func:`_attribution_sweep` for block ``b``: update, per target ``k``, ``grads[k]``
    and ``rels[k]`` (now at the block's input; not computed below ``start_layer``: ``need_input``
    false) and ``rows[k]``. Everything of the block is released on return."""
    last = b == len(model.blocks) - 1
    with torch.enable_grad():
        xb = x_in.detach().requires_grad_(True)
        rec = Record()
        out = model.forward_block(b, xb, rec)
        logits = model.forward_pooled(out, rec) if last else None
    wrt = [rec["attn"]["attn"], xb] if need_input else [rec["attn"]["attn"]]
    cache = ProductCache() if len(targets) > 1 else None
    for k, target in enumerate(targets):
        retain = k < len(targets) - 1
        with torch.enable_grad():
            if last:
                g = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), wrt, retain_graph=retain)
            else:
                g = torch.autograd.grad(out, wrt, grads[k], retain_graph=retain)
        grads[k] = g[1] if need_input else None
        fold = _Fold(g[0], rows[k])
        del g
        with torch.no_grad():
            if last:
                one_hot = F.one_hot(target, logits.shape[1]).to(logits.dtype)
                R = model.relprop_head(rec["pooled"], logits, one_hot, OURS, xb.shape, cache)
                fold.row = _cls_row(R)
            else:
                R, rels[k] = rels[k], None
            rels[k] = model.blocks[b].relprop(R, rec, OURS, fold, stop_at_attn=not need_input, cls_only=last,
                                              cache=cache)
            del R
        rows[k] = fold.row


def _detach(rec: Record) -> None:
    for k, v in rec.items():
        if torch.is_tensor(v):
            rec[k] = v.detach()
        elif isinstance(v, Record):
            _detach(v)
        elif isinstance(v, list):
            for item in v:
                if isinstance(item, Record):
                    _detach(item)


class _EvalMode:
    """Eval mode (no dropout) and autograd available even inside the caller's ``no_grad`` or
    ``inference_mode``; the caller's module mode is restored afterwards."""

    def __init__(self, model: torch.nn.Module):
        self.model, self.was_training = model, model.training
        self.inference = torch.inference_mode(False)

    def __enter__(self):
        self.inference.__enter__()
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was_training)
        return self.inference.__exit__(*exc)


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


def explain_all(
    model: VisionTransformer,
    images: torch.Tensor,
    target: int | Sequence[int] | torch.Tensor | None = None,
    methods: Iterable[str] = METHODS,
    start_layer: int = 1,
) -> dict[str, torch.Tensor]:
    """Maps of several methods from one shared forward pass: ``{method: maps}``.

    Shapes as :func:`explain`. ``target``: ``None`` (each image's predicted class), an int
    (the same class for all) or B class indices.
    """
    methods = list(methods)
    for m in methods:
        _check_method(m)
    with _EvalMode(model):
        session = _Session(model, images, methods, start_layer)
        return session.maps(session.targets(target))


def explain(
    model: VisionTransformer,
    images: torch.Tensor,
    target: int | Sequence[int] | torch.Tensor | None = None,
    method: str = "transformer_attribution",
    start_layer: int = 1,
) -> torch.Tensor:
    """Raw (not normalised) relevance of ``images`` (B x 3 x H x W, already normalised).

    Returns B x h x w on the token grid; ``method="lrp"`` returns B x H x W on the pixels.
    ``start_layer`` (first block of the products in ``transformer_attribution``, ``rollout``
    and ``ta_no_grad``) is 1 in the paper's evaluation scripts.
    """
    _check_method(method)
    return explain_all(model, images, target, [method], start_layer)[method]


def explain_classes(
    model: VisionTransformer,
    images: torch.Tensor,
    classes_per_image: Sequence[Sequence[int] | torch.Tensor],
    method: str = "transformer_attribution",
    start_layer: int = 1,
) -> list[torch.Tensor]:
    """Maps of several classes per image (e.g. every class present, for WSSS seeds).

    One forward pass for the batch, then one backward + relevance pass per class rank ``k``
    (the k-th class of every image that has one). ``transformer_attribution`` runs as a
    block-by-block sweep (:func:`_attribution_sweep`): its memory is one block's activations
    plus the block inputs, whatever the number of classes; other methods keep the graph of one
    traced forward between passes and release it after the last. Returns a list with, for image ``i``, a tensor
    ``len(classes_per_image[i]) x h x w`` (``x H x W`` for ``lrp``), rows in the given class
    order; an image without classes gets a ``0 x h x w`` tensor.
    """
    _check_method(method)
    if len(classes_per_image) != images.shape[0]:
        raise ValueError(f"{len(classes_per_image)} class lists for {images.shape[0]} images")
    classes = [torch.as_tensor(c, dtype=torch.long).reshape(-1).tolist() for c in classes_per_image]
    n_max = max((len(c) for c in classes), default=0)
    results: list[list[torch.Tensor]] = [[] for _ in classes]
    # images with fewer classes repeat their first one (or class 0); those rows are discarded
    fills = [[c[k] if k < len(c) else (c[0] if c else 0) for c in classes] for k in range(n_max)]
    with _EvalMode(model):
        if method in ("transformer_attribution", *ATTENTION_ONLY):
            n_classes = model.num_classes
            targets = [torch.as_tensor(f, dtype=torch.long, device=images.device) for f in fills]
            for t in targets:
                if (t < 0).any() or (t >= n_classes).any():
                    raise ValueError(f"target classes must lie in 0..{n_classes - 1}, got {t.tolist()}")
        if method == "transformer_attribution":
            x = images.clone() if images.is_inference() else images
            per_rank = _attribution_sweep(model, x, targets, start_layer) if n_max else []
            empty_shape = _token_grid(model, images)
        elif method in ATTENTION_ONLY:
            # class-independent: one map per image, repeated for each of its classes
            shared = _attention_only_maps(model, images, method, start_layer) if n_max else None
            per_rank = [shared] * n_max
            empty_shape = _token_grid(model, images)
        else:
            session = _Session(model, images, [method], start_layer, passes=n_max)
            per_rank = []
            for k in range(n_max):
                target = session.targets(fills[k])
                per_rank.append(session.maps(target, retain_graph=k < n_max - 1)[method])
            session.close()
            empty_shape = _map_shape(session, method)
    for k, maps in enumerate(per_rank):
        for i, c in enumerate(classes):
            if k < len(c):
                results[i].append(maps[i])
    return [torch.stack(r) if r else images.new_zeros((0,) + empty_shape) for r in results]


def _token_grid(model: VisionTransformer, images: torch.Tensor) -> tuple[int, int]:
    pe = model.patch_embed
    if hasattr(pe, "feature_grid"):
        return tuple(pe.feature_grid(images))
    if tuple(images.shape[-2:]) == tuple(pe.img_size):
        return tuple(pe.grid_size)
    with torch.no_grad():
        return tuple(pe.embed(images[:1])[1])


def _map_shape(session: _Session, method: str) -> tuple[int, int]:
    if method == "lrp" and _has_pixel_rules(session.model):
        return tuple(session.rec["patch_embed"]["x"].shape[-2:])
    return tuple(session.rec["grid"])


def upsample_and_normalise(
    maps: torch.Tensor,
    size: int | tuple[int, int] | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """Bilinear upsampling (``align_corners=False``) to ``size`` or by ``scale`` (x16 for the
    paper's 14 x 14 -> 224 x 224), then min-max to [0, 1] per image (a constant map gives 0).

    ``maps``: B x h x w (or h x w) -> B x H x W (or H x W).
    """
    squeeze = maps.dim() == 2
    m = maps.unsqueeze(0) if squeeze else maps
    m = m.unsqueeze(1).float() if m.dtype not in (torch.float32, torch.float64) else m.unsqueeze(1)
    if size is not None or scale is not None:
        if size is not None:
            size = (size, size) if isinstance(size, int) else tuple(size)
            m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
        else:
            m = F.interpolate(m, scale_factor=scale, mode="bilinear", align_corners=False)
    m = m.squeeze(1)
    flat = m.reshape(m.shape[0], -1)
    lo = flat.amin(1).reshape(-1, 1, 1)
    hi = flat.amax(1).reshape(-1, 1, 1)
    span = hi - lo
    m = torch.where(span > 0, (m - lo) / torch.where(span > 0, span, torch.ones_like(span)), torch.zeros_like(m))
    return m[0] if squeeze else m


# ----------------------------------------------------------------------------------------------
# CLI: heat-map overlays of one image
# ----------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    import numpy as np
    from PIL import Image, ImageDraw

    from vitaff.models import create_model
    from vitaff.viz import overlay

    ap = argparse.ArgumentParser(prog="python -m vitaff.explain", description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--checkpoint", default=None, help="local checkpoint (timm key names)")
    ap.add_argument("--num-classes", type=int, default=1000)
    ap.add_argument("--img-size", type=int, default=None, help="input size (default: the model's)")
    ap.add_argument("--image", required=True)
    ap.add_argument("--target", type=int, default=None, help="class to explain (default: predicted)")
    ap.add_argument("--method", default="transformer_attribution", help=f"one of {', '.join(ALL_METHODS)} or 'all'")
    ap.add_argument("--start-layer", type=int, default=1)
    ap.add_argument("--mean", type=float, nargs=3, default=(0.5, 0.5, 0.5))
    ap.add_argument("--std", type=float, nargs=3, default=(0.5, 0.5, 0.5))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    methods = list(METHODS) if args.method == "all" else [args.method]
    for m in methods:
        _check_method(m)
    model = create_model(args.model, num_classes=args.num_classes, pretrained=args.checkpoint,
                         img_size=args.img_size).to(args.device).eval()
    h, w = model.patch_embed.img_size
    rgb = np.array(Image.open(args.image).convert("RGB").resize((w, h), Image.BILINEAR))
    x = torch.from_numpy(rgb).permute(2, 0, 1).float().div(255)
    x = (x - torch.tensor(args.mean)[:, None, None]) / torch.tensor(args.std)[:, None, None]
    x = x.unsqueeze(0).to(args.device)
    if "lrp" in methods and not hasattr(model.patch_embed, "relprop"):
        methods.remove("lrp")  # hybrid: relevance stops at the tokens
    maps = explain_all(model, x, args.target, methods, args.start_layer)
    tiles = []
    for m in methods:
        heat = upsample_and_normalise(maps[m].float(), size=(h, w))[0].cpu().numpy()
        tile = Image.fromarray(overlay(rgb, heat))
        ImageDraw.Draw(tile).text((4, 4), m, fill=(255, 255, 255))
        tiles.append(tile)
    canvas = Image.new("RGB", (w * len(tiles), h))
    for i, t in enumerate(tiles):
        canvas.paste(t, (i * w, 0))
    canvas.save(args.out)
    with torch.no_grad():
        pred = model(x).argmax(1).item()
    print(f"predicted class {pred}; explained {args.target if args.target is not None else pred}; "
          f"wrote {args.out} ({', '.join(methods)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
