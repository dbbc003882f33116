"""Explanation methods (SPEC section 2) against an independent slow computation of each definition.

The reference below does not use vitaff's engine: activations, attention maps and their
gradients come from *timm's* model (non-fused attention) through forward hooks and autograd,
one image at a time; the LRP rules are applied the way Chefer et al.'s reference code does,
with ``torch.autograd.grad`` on recomputed layers (gradient x input), per-sample python loops
for the Add normalisation, and full N x N matrix products for the roll-outs.

Every rule is written as the reference writes it, its 1e-9 stabiliser included: also the
residual fork (Clone: ``R_x = x * grad(S_1 + S_2)`` with ``S_i = R_i / (x + 1e-9)``) and the
CLS select (IndexSelect: ``R_x0 = x0 * R / (x0 + 1e-9)``). ``EXACT=False`` replaces those two by
the plain sums the stabiliser-free algebra gives; the sensitivity test checks that this moves
the maps by far more than the 1e-9 tolerance, so moving a stabiliser fails the comparison.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

torch.set_num_threads(1)  # 2 shared cores: one thread avoids OpenMP oversubscription stalls

import timm  # noqa: E402  (a required dependency: a broken install fails here, it is not skipped)

from vitaff.explain import (  # noqa: E402
    ALL_METHODS,
    METHODS,
    UnknownMethodError,
    explain,
    explain_all,
    explain_classes,
    main,
    upsample_and_normalise,
)
from vitaff.models import create_model  # noqa: E402

TINY = dict(img_size=32, patch_size=8, depth=3, embed_dim=48, num_heads=3, num_classes=7)


# ----------------------------------------------------------------------------------------------
# Independent reference
# ----------------------------------------------------------------------------------------------


def ref_sdiv(a, b):
    den = b.clamp(min=1e-9) + b.clamp(max=1e-9)
    den = den + den.eq(0).to(den.dtype) * 1e-9
    return a / den * b.ne(0).to(b.dtype)


def _leaf(t):
    return t.detach().clone().requires_grad_(True)


def ref_linear(x, W, R, separate):
    wp, wn = W.clamp(min=0), W.clamp(max=0)
    xp, xn = _leaf(x.clamp(min=0)), _leaf(x.clamp(max=0))
    z1, z2 = F.linear(xp, wp), F.linear(xn, wn)
    s1 = ref_sdiv(R, z1 if separate else z1 + z2)
    s2 = ref_sdiv(R, z2 if separate else z1 + z2)
    return (xp * torch.autograd.grad(z1, xp, s1)[0] + xn * torch.autograd.grad(z2, xn, s2)[0]).detach()


def ref_add(u, v, R, rescale):
    u, v = _leaf(u), _leaf(v)
    z = u + v
    gu, gv = torch.autograd.grad(z, [u, v], ref_sdiv(R, z))
    a, b = (u * gu).detach(), (v * gv).detach()
    if rescale:
        for i in range(a.shape[0]):  # per sample
            sa, sb, sr = a[i].sum(), b[i].sum(), R[i].sum()
            fa = ref_sdiv(sa.abs(), sa.abs() + sb.abs()) * sr
            fb = ref_sdiv(sb.abs(), sa.abs() + sb.abs()) * sr
            a[i] = a[i] * ref_sdiv(fa, sa)
            b[i] = b[i] * ref_sdiv(fb, sb)
    return a, b


def ref_clone(x, branches, exact=True):
    """Residual fork: relevances of the copies meet at ``x`` (reference ``Clone.relprop``)."""
    if not exact:
        return sum(branches)
    xl = _leaf(x)
    copies = [xl * 1 for _ in branches]  # the reference's Clone: every output is x itself
    g = torch.autograd.grad(copies, xl, [ref_sdiv(r, z) for r, z in zip(branches, copies)])[0]
    return (xl * g).detach()


def ref_select(x, R, exact=True):
    """CLS select ``x[:, 0]`` of B x N x D (reference ``IndexSelect.relprop``)."""
    if not exact:
        out = torch.zeros_like(x)
        out[:, 0] = R
        return out
    xl = _leaf(x)
    z = torch.index_select(xl, 1, torch.tensor(0)).squeeze(1)
    return (xl * torch.autograd.grad(z, xl, ref_sdiv(R, z))[0]).detach()


def ref_matmul(x, y, R):
    x, y = _leaf(x), _leaf(y)
    z = torch.einsum("bhij,bhjd->bhid", x, y)
    gx, gy = torch.autograd.grad(z, [x, y], ref_sdiv(R, z))
    return (x * gx).detach() / 2, (y * gy).detach() / 2


def ref_conv_zb(conv, X, R):
    w = conv.weight
    wp, wn = w.clamp(min=0), w.clamp(max=0)
    low = torch.full_like(X, X.min().item())
    high = torch.full_like(X, X.max().item())
    Xl, Ll, Hl = _leaf(X), _leaf(low), _leaf(high)
    kw = dict(stride=conv.stride, padding=conv.padding)
    zx, zl, zh = F.conv2d(Xl, w, **kw), F.conv2d(Ll, wp, **kw), F.conv2d(Hl, wn, **kw)
    s = R / (zx - zl - zh + 1e-9)
    gx, gl, gh = (torch.autograd.grad(z, leaf, s)[0] for z, leaf in ((zx, Xl), (zl, Ll), (zh, Hl)))
    return (X * gx - low * gl - high * gh).detach()


class TimmReference:
    """Attention maps, gradients and relevance of one image from a timm ViT."""

    def __init__(self, model):
        self.m = model.eval()
        for blk in model.blocks:
            blk.attn.fused_attn = False

    def run(self, x, target):
        m, acts = self.m, {}

        def keep(name, grad=False):
            def hook(mod, inp, out):
                if grad:
                    out.retain_grad()
                acts[name] = (inp[0], out)
            return hook

        handles = [m.patch_embed.register_forward_hook(keep("patch_embed"))]
        for i, blk in enumerate(m.blocks):
            handles += [
                blk.register_forward_hook(keep(f"{i}.block")),
                blk.norm1.register_forward_hook(keep(f"{i}.norm1")),
                blk.attn.qkv.register_forward_hook(keep(f"{i}.qkv")),
                blk.attn.attn_drop.register_forward_hook(keep(f"{i}.A", grad=True)),
                blk.attn.proj.register_forward_hook(keep(f"{i}.proj")),
                blk.norm2.register_forward_hook(keep(f"{i}.norm2")),
                blk.mlp.fc1.register_forward_hook(keep(f"{i}.fc1")),
                blk.mlp.fc2.register_forward_hook(keep(f"{i}.fc2")),
            ]
        handles.append(m.norm.register_forward_hook(keep("norm")))
        try:
            logits = m(x)
        finally:
            for h in handles:
                h.remove()
        logits[0, target].backward()
        self.x, self.acts, self.logits = x, acts, logits.detach()
        self.A = [acts[f"{i}.A"][1].detach() for i in range(len(m.blocks))]
        self.dA = [acts[f"{i}.A"][1].grad.detach() for i in range(len(m.blocks))]
        return self

    def relevance(self, target, rules, exact=True):
        """R^A of every block and the pixel relevance (Chefer et al.'s relprop order).

        ``exact=False``: Clone and CLS select without their stabilisers (plain sums)."""
        m, acts = self.m, self.acts
        separate, rescale = rules == "orig", rules == "ours"
        nc = m.head.weight.shape[0]
        R = F.one_hot(torch.tensor([target]), nc).to(self.x.dtype)
        normed = acts["norm"][1].detach()
        r_cls = ref_linear(normed[:, 0], m.head.weight.detach(), R, separate)
        N, D = normed.shape[1:]
        R = ref_select(normed, r_cls, exact)  # final norm: identity
        r_attn = {}
        H = m.blocks[0].attn.num_heads
        for i in reversed(range(len(m.blocks))):
            blk = m.blocks[i]
            x_in = acts[f"{i}.block"][0].detach()
            attn_out = acts[f"{i}.proj"][1].detach()
            x_mid = x_in + attn_out
            mlp_out = acts[f"{i}.fc2"][1].detach()
            r_res, r_mlp = ref_add(x_mid, mlp_out, R, rescale)
            r_mlp = ref_linear(acts[f"{i}.fc2"][0].detach(), blk.mlp.fc2.weight.detach(), r_mlp, separate)
            r_mlp = ref_linear(acts[f"{i}.fc1"][0].detach(), blk.mlp.fc1.weight.detach(), r_mlp, separate)
            R = ref_clone(x_mid, [r_res, r_mlp], exact)  # norm2: identity
            r_res, r_a = ref_add(x_in, attn_out, R, rescale)
            r_a = ref_linear(acts[f"{i}.proj"][0].detach(), blk.attn.proj.weight.detach(), r_a, separate)
            r_a = r_a.reshape(1, N, H, -1).permute(0, 2, 1, 3)
            qkv = acts[f"{i}.qkv"][1].detach().reshape(1, N, 3, H, -1).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            ra, rv = ref_matmul(self.A[i], v, r_a)
            r_attn[i] = ra
            rq, rk = ref_matmul(q, k.transpose(-1, -2), ra)
            r_qkv = torch.stack([rq, rk.transpose(-1, -2), rv]).permute(1, 3, 0, 2, 4).reshape(1, N, -1)
            r_in = ref_linear(acts[f"{i}.norm1"][1].detach(), blk.attn.qkv.weight.detach(), r_qkv, separate)
            R = ref_clone(x_in, [r_res, r_in], exact)  # norm1: identity
        tokens = torch.cat([m.cls_token.detach(), acts["patch_embed"][1].detach()], 1)
        r_tok, _ = ref_add(tokens, m.pos_embed.detach().expand_as(tokens), R, rescale)
        g = m.patch_embed.grid_size
        r_patch = r_tok[:, 1:].transpose(1, 2).reshape(1, D, *g)
        pixels = ref_conv_zb(m.patch_embed.proj, self.x, r_patch).sum(1)
        return r_attn, pixels


def ref_maps(timm_model, x, targets, start_layer=1, exact=True):
    """Every method's map for each image separately (batch of one), by the definitions."""
    out = {k: [] for k in ALL_METHODS}
    L = len(timm_model.blocks)
    g = timm_model.patch_embed.grid_size
    for i in range(x.shape[0]):
        ref = TimmReference(timm_model).run(x[i : i + 1], int(targets[i]))
        r_ours, _ = ref.relevance(int(targets[i]), "ours", exact)
        r_orig, pixels = ref.relevance(int(targets[i]), "orig", exact)
        N = ref.A[0].shape[-1]
        eye = torch.eye(N, dtype=x.dtype)

        def product(mats):
            C = eye.clone()
            for M in mats:  # R = R + Abar R, i.e. C = (I + Abar_L) ... (I + Abar_s)
                C = C + M @ C
            return C[0, 1:].reshape(*g)

        abar = {b: (ref.dA[b][0] * r_ours[b][0]).clamp(min=0).mean(0) for b in range(L)}
        out["transformer_attribution"].append(product([abar[b] for b in range(start_layer, L)]))
        out["ta_no_grad"].append(product([r_ours[b][0].clamp(min=0).mean(0) for b in range(start_layer, L)]))
        out["ta_last_block"].append(abar[L - 1][0, 1:].reshape(*g))
        out["ta_block_minus_1"].append(abar[L - 2][0, 1:].reshape(*g))
        out["ta_second_block"].append(abar[1][0, 1:].reshape(*g))
        C = eye.clone()
        for b in range(start_layer, L):
            Ah = ref.A[b][0].mean(0) + eye
            C = (Ah / Ah.sum(-1, keepdim=True)) @ C
        out["rollout"].append(C[0, 1:].reshape(*g))
        out["raw_attention"].append(ref.A[-1][0].mean(0)[0, 1:].reshape(*g))
        w = ref.dA[-1][0, :, 0, 1:].mean(-1)
        cam = (w[:, None] * ref.A[-1][0, :, 0, 1:]).mean(0).clamp(min=0)
        out["attn_gradcam"].append(cam.reshape(*g))
        out["partial_lrp"].append(r_orig[L - 1][0].clamp(min=0).mean(0)[0, 1:].reshape(*g))
        out["lrp"].append(pixels[0])
    return {k: torch.stack(v) for k, v in out.items()}


# ----------------------------------------------------------------------------------------------
# Fixtures
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pair64():
    """(timm model, vitaff model) with the same random fp64 weights."""
    torch.manual_seed(0)
    tm = timm.create_model("vit_tiny_patch16_224", pretrained=False, **TINY).double().eval()
    with torch.no_grad():  # non-zero biases / LN affine so that every rule sees generic inputs
        for name, p in tm.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    vm = create_model("vit_tiny_patch16_224", **TINY).double().eval()
    vm.load_state_dict(tm.state_dict(), strict=True)
    return tm, vm


@pytest.fixture(scope="module")
def batch64():
    torch.manual_seed(1)
    return torch.randn(3, 3, 32, 32, dtype=torch.float64), torch.tensor([2, 5, 0])


@pytest.fixture(scope="module")
def reference(pair64, batch64):
    x, t = batch64
    return ref_maps(pair64[0], x, t)


# ----------------------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------------------


#: vitaff equals the reference in fp64 to this, relative to the map's largest entry
REL_TOL = 1e-9
#: the relevance-based methods (the others read attention maps and gradients only)
RELEVANCE_METHODS = ("transformer_attribution", "lrp", "partial_lrp", "ta_no_grad", "ta_last_block",
                     "ta_block_minus_1", "ta_second_block")


def assert_equal_to_reference(got, want):
    assert got.shape == want.shape
    scale = float(want.abs().max())
    assert scale > 0
    torch.testing.assert_close(got, want, rtol=0, atol=REL_TOL * scale)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_method_equals_reference(pair64, batch64, reference, method):
    """Batched vitaff maps (per-sample targets) equal the per-image reference computation."""
    _, vm = pair64
    x, t = batch64
    got = explain(vm, x, t, method=method)
    assert got.dtype == torch.float64
    assert_equal_to_reference(got, reference[method])


def test_all_methods_from_one_pass_equal_single_calls(pair64, batch64, reference):
    _, vm = pair64
    x, t = batch64
    maps = explain_all(vm, x, t, ALL_METHODS)
    for m in ALL_METHODS:
        assert_equal_to_reference(maps[m], reference[m])


def test_explain_classes_equals_reference(pair64, batch64, reference):
    """The per-class sweep (several classes per image, one forward) against the reference."""
    tm, vm = pair64
    x, t = batch64
    other = (t + 3) % 7
    got = explain_classes(vm, x, [[int(a), int(b)] for a, b in zip(t, other)])
    second = ref_maps(tm, x, other)["transformer_attribution"]
    for i in range(x.shape[0]):
        assert_equal_to_reference(got[i][0], reference["transformer_attribution"][i])
        assert_equal_to_reference(got[i][1], second[i])


def test_reference_is_sensitive_to_where_the_stabiliser_sits(pair64, batch64, reference):
    """Without the Clone / CLS-select stabilisers the reference moves by far more than REL_TOL,
    and so does vitaff: a stabiliser that moves fails the comparison above."""
    tm, vm = pair64
    x, t = batch64
    plain = ref_maps(tm, x, t, exact=False)
    for m in RELEVANCE_METHODS:
        scale = float(reference[m].abs().max())
        assert float((plain[m] - reference[m]).abs().max()) > 10 * REL_TOL * scale, m
    from vitaff.models import vit

    with pytest.MonkeyPatch.context() as mp:  # the forks as plain sums: vitaff leaves the reference
        mp.setattr(vit, "fork_relprop", lambda x, R: R)
        moved = explain_all(vm, x, t, ["transformer_attribution", "lrp"])
    for m, v in moved.items():
        scale = float(reference[m].abs().max())
        assert float((v - reference[m]).abs().max()) > 10 * REL_TOL * scale, m


def test_target_none_explains_predicted_class(pair64, batch64):
    _, vm = pair64
    x, _ = batch64
    pred = vm(x).argmax(1)
    torch.testing.assert_close(explain(vm, x, None), explain(vm, x, pred))
    other = (pred + 1) % 7
    assert not torch.allclose(explain(vm, x, None), explain(vm, x, other))


def test_int_target_broadcasts(pair64, batch64):
    _, vm = pair64
    x, _ = batch64
    torch.testing.assert_close(explain(vm, x, 3, "attn_gradcam"), explain(vm, x, torch.tensor([3, 3, 3]), "attn_gradcam"))


def test_start_layer_0_equals_reference(pair64, batch64):
    """The seeds' ``start_layer: 0`` (products over every block, the real run's value) against the
    reference, for the methods whose product starts there and for the per-class sweep."""
    tm, vm = pair64
    x, t = batch64
    want = ref_maps(tm, x, t, start_layer=0)
    for method in ("transformer_attribution", "ta_no_grad", "rollout"):
        assert_equal_to_reference(explain(vm, x, t, method=method, start_layer=0), want[method])
    got = explain_classes(vm, x, [[int(c)] for c in t], start_layer=0)
    for i in range(x.shape[0]):
        assert_equal_to_reference(got[i][0], want["transformer_attribution"][i])


def test_start_layer_changes_the_product(pair64, batch64):
    _, vm = pair64
    x, t = batch64
    a = explain(vm, x, t, start_layer=0)
    b = explain(vm, x, t, start_layer=1)
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError):
        explain(vm, x, t, start_layer=3)


@pytest.mark.parametrize("method", METHODS)
def test_batch_invariance_fp32(method):
    torch.manual_seed(2)
    model = create_model("vit_tiny_patch16_224", **TINY).eval()
    x = torch.randn(4, 3, 32, 32)
    t = torch.tensor([1, 6, 6, 3])
    batched = explain(model, x, t, method=method)
    for i in range(4):
        single = explain(model, x[i : i + 1], t[i : i + 1], method=method)
        scale = float(single.abs().max())
        torch.testing.assert_close(batched[i : i + 1], single, rtol=1e-4, atol=1e-5 * scale)


def test_fp32_close_to_fp64(pair64, batch64):
    _, vm = pair64
    x, t = batch64
    vm32 = create_model("vit_tiny_patch16_224", **TINY).eval()
    vm32.load_state_dict({k: v.float() for k, v in vm.state_dict().items()})
    for m in ("transformer_attribution", "rollout", "partial_lrp"):
        a = explain(vm32, x.float(), t, m)
        b = explain(vm, x, t, m)
        assert a.dtype == torch.float32
        np.testing.assert_allclose(a.double().numpy(), b.numpy(), rtol=1e-3, atol=1e-4 * float(b.abs().max()))


@pytest.mark.parametrize("size", [224, 448])
def test_shapes(size):
    model = create_model("vit_tiny_patch16_224", img_size=size, depth=2, embed_dim=48, num_heads=3, num_classes=5)
    x = torch.randn(2, 3, size, size)
    maps = explain_all(model, x, None, METHODS)
    g = size // 16
    for m in METHODS:
        assert maps[m].shape == ((2, size, size) if m == "lrp" else (2, g, g)), m
        assert not maps[m].requires_grad
        assert torch.isfinite(maps[m]).all()


def test_explain_classes_equals_separate_calls(pair64, batch64):
    _, vm = pair64
    x, _ = batch64
    classes = [[2, 5], [0], [6, 1, 3]]
    for method, start_layer in [("transformer_attribution", 1), ("lrp", 1), ("rollout", 1), ("rollout", 0),
                                ("raw_attention", 1)]:
        got = explain_classes(vm, x, classes, method=method, start_layer=start_layer)
        assert [g.shape[0] for g in got] == [2, 1, 3]
        for i, cls in enumerate(classes):
            for j, c in enumerate(cls):
                want = explain(vm, x[i : i + 1], torch.tensor([c]), method=method, start_layer=start_layer)[0]
                torch.testing.assert_close(got[i][j], want, rtol=1e-7, atol=1e-12)
    empty = explain_classes(vm, x, [[], [1], []])
    assert empty[0].shape == (0, 4, 4) and empty[1].shape == (1, 4, 4)


def test_attention_only_methods_skip_the_traced_session(pair64, batch64, monkeypatch):
    """rollout and raw_attention for seeds keep one block's activations at a time (psa's scale 2.0
    on the hybrid: a session's record of every block took 23 GB for two images)."""
    _, vm = pair64
    x, _ = batch64
    classes = [[1], [2, 4], []]
    want = {m: explain_classes(vm, x, classes, method=m) for m in ("rollout", "raw_attention")}

    def no_session(*args, **kwargs):
        raise AssertionError("a traced session was built for an attention-only method")

    monkeypatch.setattr(type(vm), "forward_trace", no_session)
    for method, maps in want.items():
        got = explain_classes(vm, x, classes, method=method)
        assert all(torch.equal(g, w) for g, w in zip(got, maps)) and got[2].shape == (0, 4, 4)
        torch.testing.assert_close(got[1][0], got[1][1])  # class-independent
        with pytest.raises(ValueError, match="target classes"):
            explain_classes(vm, x, [[1], [99], []], method=method)
    with pytest.raises(AssertionError):
        explain_classes(vm, x, classes, method="attn_gradcam")


def test_frozen_model_and_mode_restored():
    torch.manual_seed(3)
    model = create_model("vit_tiny_patch16_224", **TINY)
    model.train()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.randn(2, 3, 32, 32)
    maps = explain(model, x, [0, 1])
    assert model.training
    assert maps.abs().sum() > 0


def test_hybrid_explain_and_token_level_lrp():
    torch.manual_seed(4)
    model = create_model("vit_hybrid_synth", num_classes=4, img_size=64, depth=2).eval()
    x = torch.randn(2, 3, 64, 64)
    maps = explain_all(model, x, [0, 3], ["transformer_attribution", "rollout", "partial_lrp", "attn_gradcam"])
    for v in maps.values():
        assert v.shape == (2, 8, 8)
    per_class = explain_classes(model, x, [[0, 1], [2]])
    torch.testing.assert_close(per_class[0][0], maps["transformer_attribution"][0], rtol=1e-4, atol=1e-7)
    # the CNN stem has no rules: full LRP ends at the patch tokens, one value per token
    from vitaff.models.relevance import ORIG, add_relprop

    lrp = explain(model, x, [0, 3], method="lrp")
    assert lrp.shape == (2, 8, 8) and torch.isfinite(lrp).all()
    logits, rec = model.forward_trace(x)
    tokens = model.relprop(rec, torch.nn.functional.one_hot(torch.tensor([0, 3]), 4).float(), ORIG).tokens
    r_tok, _ = add_relprop(rec["tokens"], rec["pos"], tokens, ORIG)
    torch.testing.assert_close(lrp, r_tok[:, 1:].sum(-1).reshape(2, 8, 8).detach(), rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match="relevance stops at the tokens"):
        model.relprop(rec, torch.ones(2, 4), ORIG, to_pixels=True)


def test_unknown_method_lists_valid_ones(pair64, batch64):
    with pytest.raises(UnknownMethodError) as err:
        explain(pair64[1], batch64[0], method="gradcam++")
    assert "transformer_attribution" in str(err.value) and "partial_lrp" in str(err.value)
    assert isinstance(err.value, ValueError)


def test_bad_targets(pair64, batch64):
    _, vm = pair64
    x, _ = batch64
    with pytest.raises(ValueError):
        explain(vm, x, [1, 2])
    with pytest.raises(ValueError):
        explain(vm, x, 7)


def test_upsample_and_normalise():
    maps = torch.zeros(3, 14, 14)
    maps[0, 3, 4] = 5.0
    maps[1] = torch.arange(196.0).reshape(14, 14) - 50
    out = upsample_and_normalise(maps, scale=16)
    assert out.shape == (3, 224, 224)
    assert out[0].max() == 1 and out[0].min() == 0
    assert out[1].max() == 1 and out[1].min() == 0
    assert (out[2] == 0).all()  # constant map
    ref = F.interpolate(maps[:1, None], size=(224, 224), mode="bilinear", align_corners=False)[0, 0]
    torch.testing.assert_close(out[0], (ref - ref.min()) / (ref.max() - ref.min()))
    assert upsample_and_normalise(maps[1], size=(20, 30)).shape == (20, 30)


def test_cli_writes_overlay(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    img = tmp_path / "a.jpg"
    Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(img)
    out = tmp_path / "map.png"
    assert main(["--model", "vit_synth_tiny", "--num-classes", "5", "--img-size", "64", "--image", str(img),
                 "--method", "all", "--target", "2", "--out", str(out)]) == 0
    png = Image.open(out)
    assert png.size == (64 * len(METHODS), 64)
    out1 = tmp_path / "one.png"
    main(["--model", "vit_synth_tiny", "--num-classes", "5", "--img-size", "64", "--image", str(img),
          "--out", str(out1)])
    assert Image.open(out1).size == (64, 64)


def test_works_inside_no_grad_and_inference_mode(pair64, batch64):
    _, vm = pair64
    x, t = batch64
    want = explain_all(vm, x, t, ["transformer_attribution", "attn_gradcam"])
    with torch.no_grad():
        got = explain_all(vm, x, t, ["transformer_attribution", "attn_gradcam"])
    with torch.inference_mode():
        x_inf = x.clone()
        got_inf = explain_all(vm, x_inf, t, ["transformer_attribution", "attn_gradcam"])
    for m in want:
        torch.testing.assert_close(got[m], want[m])
        torch.testing.assert_close(got_inf[m].clone(), want[m])
