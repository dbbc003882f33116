"""Vision Transformer layers and model with layer-wise relevance propagation (SPEC section 1).

Model: Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image Recognition at
Scale", ICLR 2021 (https://arxiv.org/abs/2010.11929), with timm's parameter names
(``timm/models/vision_transformer.py``) so that every timm checkpoint loads with ``strict=True``.

Relevance: Chefer, Gur & Wolf, "Transformer Interpretability Beyond Attention Visualization",
CVPR 2021 (https://arxiv.org/abs/2012.09838), section 3.1-3.2; the rules live in
:mod:`vitaff.models.relevance`, this module applies them layer by layer (and the z^B rule of
eq. 4 at the input, in :class:`PatchEmbed`).

Design (see ``STYLE.md``):

* a plain ``model(x)`` is an ordinary ``nn.Module`` forward (fused attention, nothing recorded);
* ``model.forward_trace(x)`` runs the same layers with a per-call :class:`Record` tree in which
  each layer stores the activations its relevance rule needs -- no state stays on the modules,
  so calls are re-entrant and a batch is just a batch;
* every layer has ``relprop(R, rec, rules)`` and :meth:`VisionTransformer.relprop` reads like
  the forward pass in reverse; the rule set (:data:`OURS` = section 1, :data:`ORIG` = the "orig"
  rules of plain LRP, SPEC section 2) is a parameter;
* sums that the rules normalise by ("over the whole tensor") run per sample, so the relevance of
  one image does not depend on the rest of its batch.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from vitaff.models.relevance import (
    EPS,
    IDENTITY_TOL,
    ORIG,
    OURS,
    RULE_SETS,
    ProductCache,
    Record,
    RelevanceResult,
    RuleSet,
    add_relprop,
    fork_relprop,
    linear_relprop,
    matmul_relprop,
    safe_divide,
    sample_sum,
    sample_total,
)

__all__ = [
    "RuleSet",
    "OURS",
    "ORIG",
    "RULE_SETS",
    "Record",
    "RelevanceResult",
    "PatchEmbed",
    "Attention",
    "Mlp",
    "Block",
    "VisionTransformer",
    "safe_divide",
    "fork_relprop",
    "linear_relprop",
    "ProductCache",
    "IDENTITY_TOL",
    "add_relprop",
    "matmul_relprop",
]

# ----------------------------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------------------------


class PatchEmbed(nn.Module):
    """Image to patch tokens with a strided convolution (timm ``PatchEmbed``: ``proj``)."""

    def __init__(self, img_size: int | tuple[int, int] = 224, patch_size: int = 16, in_chans: int = 3,
                 embed_dim: int = 768) -> None:
        super().__init__()
        self.img_size = _pair(img_size)
        self.patch_size = _pair(patch_size)
        self.grid_size = (self.img_size[0] // self.patch_size[0], self.img_size[1] // self.patch_size[1])
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def set_img_size(self, img_size: int | tuple[int, int]) -> None:
        self.img_size = _pair(img_size)
        self.grid_size = (self.img_size[0] // self.patch_size[0], self.img_size[1] // self.patch_size[1])
        self.num_patches = self.grid_size[0] * self.grid_size[1]

    def feature_grid(self, x: torch.Tensor) -> tuple[int, int]:
        return x.shape[-2] // self.patch_size[0], x.shape[-1] // self.patch_size[1]

    def embed(self, x: torch.Tensor, rec: Record | None = None) -> tuple[torch.Tensor, tuple[int, int]]:
        """Images -> (B x n x D tokens, token grid)."""
        if rec is not None:
            rec["x"] = x
        x = self.proj(x)
        return x.flatten(2).transpose(1, 2), (x.shape[-2], x.shape[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)[0]

    def relprop(self, R: torch.Tensor, rec: Record, rules: RuleSet) -> torch.Tensor:
        """z^B rule of the input layer (Montavon et al. 2017), bounds L, H = per-image min/max.

        ``R``: B x n_patches x D -> B x C x H x W pixel relevance.
        """
        x = rec["x"]
        w = self.proj.weight
        wp, wn = w.clamp(min=0), w.clamp(max=0)
        B = x.shape[0]
        low = x.reshape(B, -1).amin(1).reshape(B, 1, 1, 1).expand_as(x)
        high = x.reshape(B, -1).amax(1).reshape(B, 1, 1, 1).expand_as(x)
        conv = dict(stride=self.proj.stride, padding=self.proj.padding)
        gh, gw = self.feature_grid(x)
        R = R.transpose(1, 2).reshape(B, -1, gh, gw)
        z = F.conv2d(x, w, **conv) - F.conv2d(low, wp, **conv) - F.conv2d(high, wn, **conv) + EPS
        s = R / z
        out_pad = (x.shape[-2] - ((gh - 1) * self.proj.stride[0] + w.shape[-2]),
                   x.shape[-1] - ((gw - 1) * self.proj.stride[1] + w.shape[-1]))

        def back(weight: torch.Tensor) -> torch.Tensor:
            return F.conv_transpose2d(s, weight, output_padding=out_pad, **conv)

        return x * back(w) - low * back(wp) - high * back(wn)


class Attention(nn.Module):
    """Multi-head self-attention (timm names ``qkv``, ``proj``)."""

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, rec: Record | None = None, cls_only: bool = False) -> torch.Tensor:
        """``cls_only`` (traced pass only): the output of the CLS token alone (B x 1 x C); the
        attention map is still recorded in full."""
        B, N, C = x.shape
        qkv = self.qkv(x)
        q, k, v = qkv.reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        if rec is None:
            o = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop.p if self.training else 0.0)
        else:
            attn = self.attn_drop(((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1))
            rec.update(x=x, qkv=qkv, q=q, k=k, v=v, attn=attn)
            o = (attn[:, :, :1] if cls_only else attn) @ v
        o = o.transpose(1, 2).reshape(B, o.shape[2], C)
        y = self.proj(o)
        if rec is not None:
            rec.update(o=o, proj=y)  # Linear outputs: the "ours" Linear rule reuses x W^T
        return self.proj_drop(y)

    def relprop(self, R: torch.Tensor, rec: Record, rules: RuleSet,
                keep_attn: Callable[[torch.Tensor], None] | None = None,
                stop_at_attn: bool = False, cls_only: bool = False, cache: ProductCache | None = None
                ) -> torch.Tensor | None:
        """proj -> (A V) -> softmax (identity) -> (Q K^T) -> qkv; dropout is identity.

        ``cls_only``: ``R`` (B x 1 x C) is the relevance of the CLS output token, all others
        are 0 (the last block); rows that would stay 0 are not computed.
        """
        B, n, C = R.shape
        h, d = self.num_heads, self.head_dim
        o = rec["o"][:, :n]
        R = linear_relprop(o, self.proj, R, rules, rec["proj"][:, :n], cache).reshape(B, n, h, d).transpose(1, 2)
        attn, v = rec["attn"][:, :, :n], rec["v"]
        N = v.shape[2]
        # the product A V is o before merging heads: no need to recompute it
        r_attn, r_v = matmul_relprop(attn, v, R, z=o.reshape(B, n, h, d).transpose(1, 2))
        if keep_attn is not None:
            if n < N:
                full = r_attn.new_zeros(B, h, N, N)
                full[:, :, :n] = r_attn
                keep_attn(full)
            else:
                keep_attn(r_attn)
        if stop_at_attn:
            return None
        q, k = rec["q"][:, :, :n], rec["k"]
        r_q, r_kt = matmul_relprop(q, k.transpose(-2, -1), r_attn)
        r_qkv = R.new_zeros(B, N, 3, h, d) if n < N else R.new_empty(B, N, 3, h, d)
        r_qkv[:, :n, 0] = r_q.transpose(1, 2)
        r_qkv[:, :, 1] = r_kt.permute(0, 3, 1, 2)
        r_qkv[:, :, 2] = r_v.transpose(1, 2)
        return linear_relprop(rec["x"], self.qkv, r_qkv.reshape(B, N, 3 * C), rules, rec["qkv"], cache)


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2 (timm names ``fc1``, ``fc2``)."""

    def __init__(self, in_features: int, hidden_features: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor, rec: Record | None = None) -> torch.Tensor:
        u = self.fc1(x)
        h = self.drop1(self.act(u))
        y = self.fc2(h)
        if rec is not None:
            rec.update(x=x, fc1=u, h=h, fc2=y)  # Linear outputs: the "ours" Linear rule reuses x W^T
        return self.drop2(y)

    def relprop(self, R: torch.Tensor, rec: Record, rules: RuleSet, cache: ProductCache | None = None) -> torch.Tensor:
        """``R``: relevance of the first ``R.shape[1]`` output tokens (all in a normal pass)."""
        n = R.shape[1]
        R = linear_relprop(rec["h"][:, :n], self.fc2, R, rules, rec["fc2"][:, :n], cache)  # GELU, dropout: identity
        return linear_relprop(rec["x"][:, :n], self.fc1, R, rules, rec["fc1"][:, :n], cache)


class DropPath(nn.Module):
    """Stochastic depth per sample (training only); identity for relevance."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 proj_drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0,
                 norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop)
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=proj_drop)
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x: torch.Tensor, rec: Record | None = None, cls_only: bool = False) -> torch.Tensor:
        """``cls_only`` (traced pass only): compute and record the CLS token's output alone
        (B x 1 x D) -- all the head reads of the last block; the attention map stays full."""
        if rec is None:
            x = x + self.drop_path1(self.attn(self.norm1(x)))
            return x + self.drop_path2(self.mlp(self.norm2(x)))
        a = self.drop_path1(self.attn(self.norm1(x), rec.child("attn"), cls_only))
        rec.update(x=x, a=a)
        x = x[:, :a.shape[1]] + a
        m = self.drop_path2(self.mlp(self.norm2(x), rec.child("mlp")))
        out = x + m
        rec.update(x_mid=x, m=m, out=out)
        return out

    def relprop(self, R: torch.Tensor, rec: Record, rules: RuleSet,
                keep_attn: Callable[[torch.Tensor], None] | None = None,
                stop_at_attn: bool = False, cls_only: bool = False, cache: ProductCache | None = None
                ) -> torch.Tensor | None:
        """add2 -> (mlp <- norm2) + residual (fork) -> add1 -> (attn <- norm1) + residual (fork).

        Each fork (the reference's ``Clone``) applies :func:`fork_relprop` to the sum of its
        two branches' relevance.

        ``cls_only``: only the CLS token of ``R`` is non-zero (the last block after the CLS
        select); the token-wise rules then run on that token alone.
        """
        n = 1 if cls_only else R.shape[1]
        R = R[:, :n]
        x_mid = rec["x_mid"][:, :n]
        r_res, r_mlp = add_relprop(x_mid, rec["m"][:, :n], R, rules, z=rec["out"][:, :n])
        # norm2: identity; the fork of x_mid gathers both branches
        R = fork_relprop(x_mid, self.mlp.relprop(r_mlp, rec["mlp"], rules, cache).add_(r_res))
        r_res, r_attn = add_relprop(rec["x"][:, :n], rec["a"][:, :n], R, rules, z=x_mid)
        R = self.attn.relprop(r_attn, rec["attn"], rules, keep_attn, stop_at_attn, cls_only, cache)
        if R is None:
            return None
        R[:, :n] += r_res  # norm1: identity
        return fork_relprop(rec["x"], R)  # the fork of the block input


# ----------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------


class VisionTransformer(nn.Module):
    """ViT with a CLS token, learned position embedding, pre-norm blocks and a linear head.

    ``embed_layer``: a module with ``embed(x, rec=None) -> (B x n x D tokens, grid)``,
    ``grid_size`` and ``num_patches`` (``PatchEmbed`` or the hybrid's CNN embedding). With ``dynamic_img_size`` the position embedding is resampled on the fly for
    inputs whose grid differs from the configured one.
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_eps: float = 1e-6,
        dynamic_img_size: bool = False,
        embed_layer: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_features = self.embed_dim = embed_dim
        self.num_prefix_tokens = 1
        self.dynamic_img_size = dynamic_img_size
        self.patch_embed = embed_layer if embed_layer is not None else PatchEmbed(
            img_size, patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList([
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, proj_drop_rate, attn_drop_rate, dpr[i], norm_eps)
            for i in range(depth)
        ])
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.init_weights()

    def init_weights(self) -> None:
        """timm's default ("jax"-free) init: trunc-normal 0.02 for Linear and embeddings."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @property
    def grid_size(self) -> tuple[int, int]:
        return tuple(self.patch_embed.grid_size)

    # -- forward, in the pieces the traced forward and the attribution sweep share --------------

    def _pos_embed(self, tokens: torch.Tensor, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prepend the CLS token; return (tokens with CLS, position embedding to add)."""
        pos = self.pos_embed
        if tuple(grid) != self.grid_size:
            if not self.dynamic_img_size:
                raise ValueError(
                    f"input gives a {grid[0]}x{grid[1]} token grid but the model was built for "
                    f"{self.grid_size[0]}x{self.grid_size[1]}; create it with img_size=... or "
                    "dynamic_img_size=True")
            from timm.layers import resample_abs_pos_embed
            pos = resample_abs_pos_embed(pos, list(grid), list(self.grid_size), num_prefix_tokens=1)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        return torch.cat((cls, tokens), dim=1), pos

    def embed_tokens(self, x: torch.Tensor, rec: Record | None = None) -> tuple[torch.Tensor, tuple[int, int]]:
        """Images -> (input of block 0: patch tokens with CLS plus position embedding, token grid).

        ``rec``: record what the relevance pass down to the pixels needs (``patch_embed``,
        ``grid``, ``tokens``, ``pos``).
        """
        tokens, grid = self.patch_embed.embed(x, rec.child("patch_embed") if rec is not None else None)
        tokens, pos = self._pos_embed(tokens, grid)
        if rec is not None:
            rec.update(grid=grid, tokens=tokens, pos=pos)
        return self.pos_drop(tokens + pos), grid

    def forward_block(self, b: int, x: torch.Tensor, rec: Record | None = None) -> torch.Tensor:
        """Block ``b`` on its input tokens. Traced (``rec`` given): the block records what its
        relevance rules need, with the attention arithmetic written out (no fused kernel); the
        last block computes the CLS token's output alone (the head reads nothing else)."""
        return self.blocks[b](x, rec, cls_only=rec is not None and b == len(self.blocks) - 1)

    def forward_pooled(self, x: torch.Tensor, rec: Record | None = None) -> torch.Tensor:
        """Output tokens of the last block -> logits: final norm, CLS token, head. ``rec``: record
        the head's input and output (``pooled``, ``logits``) for :meth:`relprop_head`."""
        pooled = self.head_drop(self.norm(x)[:, 0])
        logits = self.head(pooled)
        if rec is not None:
            rec.update(pooled=pooled, logits=logits)
        return logits

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> tokens after the final norm (B x N x D)."""
        x, _ = self.embed_tokens(x)
        for b in range(len(self.blocks)):
            x = self.forward_block(b, x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Tokens after the final norm -> logits (CLS token pooling)."""
        x = self.head_drop(x[:, 0])
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    # -- traced forward and relevance pass ----------------------------------------------------

    def forward_trace(self, x: torch.Tensor) -> tuple[torch.Tensor, Record]:
        """Forward that records what the relevance rules need into a fresh :class:`Record`.

        Gradients flow as usual (run under ``torch.no_grad()`` when none are needed); the record
        holds references to activations only (including each Linear layer's output, from which
        the "ours" Linear rule takes ``x W^T``), the caller decides how long they live. The last
        block computes and records the CLS token's output only (the head reads nothing else);
        its attention map is recorded in full.
        """
        rec = Record()
        x, _ = self.embed_tokens(x, rec)
        blocks = rec["blocks"] = [Record() for _ in self.blocks]
        for b, brec in enumerate(blocks):
            x = self.forward_block(b, x, brec)
        return self.forward_pooled(x, rec), rec

    def relprop_head(self, pooled: torch.Tensor, logits: torch.Tensor, R: torch.Tensor, rules: RuleSet,
                     tokens_shape: torch.Size | tuple[int, ...], cache: ProductCache | None = None,
                     sums: list | None = None) -> torch.Tensor:
        """Logit relevance ``R`` (B x classes) -> relevance of the last block's output tokens.

        Head (Linear rule) -> CLS select (all relevance to token 0, gradient x input like the
        reference's IndexSelect: :func:`fork_relprop`) -> final norm (identity). ``pooled``,
        ``logits``: the head's input and output; ``tokens_shape``: B x N x D. ``sums``: list to
        append the per-sample totals to.
        """
        with torch.no_grad():
            R = R.to(pooled.dtype)
            if sums is not None:
                sums.append(("logits", sample_total(R)))
            r_cls = linear_relprop(pooled, self.head, R, rules, logits, cache)
            if sums is not None:
                sums.append(("head", sample_total(r_cls)))
            out = pooled.new_zeros(tokens_shape)
            out[:, 0] = fork_relprop(pooled, r_cls)
            return out

    def relprop(
        self,
        rec: Record,
        R: torch.Tensor,
        rules: RuleSet = OURS,
        keep_attn: set[int] | None = None,
        stop_block: int | None = None,
        to_pixels: bool = False,
        cache: ProductCache | None = None,
    ) -> RelevanceResult:
        """Relevance pass: head -> CLS select -> final norm -> blocks (last to first) -> tokens.

        ``R``: B x num_classes relevance of the logits (one-hot of the explained class).
        ``keep_attn``: blocks whose attention relevance ``R^A`` to return. ``stop_block``: the
        pass ends once ``R^A`` of this block is known (only later blocks are traversed in
        full); ``None`` runs through all blocks to the tokens. ``to_pixels`` continues through
        the position-embedding add and the patch embedding to the image (plain ViT only).
        ``cache``: a :class:`ProductCache` shared by several passes over the same ``rec`` (other
        targets, other rule set) so that the rule-independent products of the Linear rule are
        computed once.
        """
        if to_pixels and not hasattr(self.patch_embed, "relprop"):
            raise ValueError(
                f"{type(self.patch_embed).__name__} has no relevance rules: relevance stops at the "
                "tokens for this model (no pixel-level 'lrp')")
        keep_attn = set(keep_attn or ())
        out = RelevanceResult(rules=rules)
        with torch.no_grad():
            R = self.relprop_head(rec["pooled"], rec["logits"], R, rules, rec["tokens"].shape, cache, out.sums)
            if to_pixels:
                stop_block = None
            for b in range(len(self.blocks) - 1, (stop_block or 0) - 1, -1):
                keep = (lambda r, b=b: out.attn.__setitem__(b, r)) if b in keep_attn else None
                R = self.blocks[b].relprop(R, rec["blocks"][b], rules, keep, stop_at_attn=(b == stop_block),
                                           cls_only=(b == len(self.blocks) - 1), cache=cache)
                if R is None:
                    return out
                out.sums.append((f"block{b}", sample_total(R)))
            out.tokens = R
            if to_pixels:
                r_tok, r_pos = add_relprop(rec["tokens"], rec["pos"], R, rules)
                out.sums.append(("tokens+pos", sample_total(r_tok) + sample_total(r_pos)))
                out.pixels = self.patch_embed.relprop(r_tok[:, 1:], rec["patch_embed"], rules).sum(1)
                out.sums.append(("pixels", sample_total(out.pixels)))
        return out


def _pair(v: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)
