"""SPEC section 1: with Chefer et al.'s rules the total relevance stays 1 through the network.

Random weights in fp64. The only deviation from exact conservation is the stabiliser of the
safe division ``a / (b + 1e-9)``: it loses ``R * 1e-9 / z`` wherever a denominator ``z`` is tiny
(every rule has it, as in the reference: the residual forks ``x * R / (x + 1e-9)`` and the CLS
select included; adding it to those two left every tolerance here unchanged).
With timm's default init (trunc-normal 0.02, zero biases) that stays ~1e-7 (fixed-seed tests
at the default 1e-9, tolerance 1e-6). Random perturbations of biases and LayerNorm affine
parameters occasionally produce a ``q.k`` logit of ~1e-7 and deviations of ~1e-5, so the
property test over random models sets the stabiliser to 0 (division by exact zeros still gives
0) and then requires conservation to fp64 rounding (1e-9).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from vitaff.models import ORIG, OURS, create_model, relevance, vit

torch.set_num_threads(1)

CFG = dict(img_size=32, patch_size=8, depth=3, embed_dim=32, num_heads=4, num_classes=6)


def _model(seed: int, noise: float = 0.0):
    torch.manual_seed(seed)
    model = create_model("vit_synth_tiny", **CFG).double().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if noise and (name.endswith("bias") or "norm" in name):
                p.add_(noise * torch.randn_like(p))
    return model


def _sums(model, x, target, rules):
    logits, rec = model.forward_trace(x)
    R = F.one_hot(target, logits.shape[1]).double()
    return model.relprop(rec, R, rules, to_pixels=True).sums


def test_stages_recorded_in_order():
    model = _model(0)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    names = [n for n, _ in _sums(model, x, torch.tensor([0, 1]), OURS)]
    assert names == ["logits", "head", "block2", "block1", "block0", "tokens+pos", "pixels"]


def _check(model, x, target, atol):
    for name, total in _sums(model, x, target, OURS):
        if name == "pixels":  # the pixels get only the patch tokens' share (no CLS, no pos_embed)
            continue
        torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=atol, msg=name)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), noise=st.sampled_from([0.0, 0.1, 0.5]), batch=st.integers(1, 3))
def test_conservation_ours_exact_division(seed, noise, batch):
    model = _model(seed, noise)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, 32, 32, generator=g, dtype=torch.float64)
    target = torch.randint(0, 6, (batch,), generator=g)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(relevance, "EPS", 0.0)  # the rules' stabiliser
        mp.setattr(vit, "EPS", 0.0)  # the z^B rule's, in the patch embedding
        _check(model, x, target, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_conservation_ours_default_stabiliser(seed):
    model = _model(seed)
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    _check(model, x, torch.tensor([0, 3, 5]), atol=1e-6)


def test_orig_rules_do_not_conserve():
    """Sanity check that the property is not trivially true: plain LRP ("orig") does not conserve."""
    model = _model(1, 0.1)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    sums = dict(_sums(model, x, torch.tensor([1, 2]), ORIG))
    assert (sums["block0"] - 1).abs().max() > 1e-3
    ours = dict(_sums(model, x, torch.tensor([1, 2]), OURS))
    torch.testing.assert_close(ours["block0"], torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-6)


def test_conservation_per_sample_in_a_batch():
    """Each sample's relevance sums to 1 on its own (sums are per sample, not over the batch)."""
    model = _model(2, 0.1)
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    x[1] *= 5  # a sample with a very different scale
    sums = dict(_sums(model, x, torch.tensor([0, 5, 5, 3]), OURS))
    assert sums["block0"].shape == (4,)
    torch.testing.assert_close(sums["block0"], torch.ones(4, dtype=torch.float64), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["vit_hybrid_synth"])
def test_conservation_hybrid_to_tokens(name):
    torch.manual_seed(5)
    model = create_model(name, num_classes=3, img_size=32, depth=2, embed_dim=32, num_heads=4).double().eval()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    logits, rec = model.forward_trace(x)
    res = model.relprop(rec, F.one_hot(torch.tensor([0, 2]), 3).double(), OURS)
    assert res.tokens.shape == (2, 1 + 4 * 4, 32)
    torch.testing.assert_close(res.tokens.sum((1, 2)), torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-6)


def _linear_case(seed: int):
    g = torch.Generator().manual_seed(seed)
    lin = torch.nn.Linear(24, 10).double()
    with torch.no_grad():
        lin.weight.copy_(torch.randn(10, 24, generator=g, dtype=torch.float64))
        lin.bias.copy_(torch.randn(10, generator=g, dtype=torch.float64))
    x = torch.randn(2, 7, 24, generator=g, dtype=torch.float64)
    R = torch.randn(2, 7, 10, generator=g, dtype=torch.float64)
    return lin, x, R


def test_linear_rule_from_forward_output_equals_two_part_form():
    """"ours" Linear rule: the one-GEMM identity (Z from the forward's x W^T) equals the
    two-part products x+ W+^T + x- W-^T to rounding; conserves with the same Z."""
    lin, x, R = _linear_case(0)
    with torch.no_grad():
        y = lin(x)
        fast = relevance.linear_relprop(x, lin, R, OURS, y=y)
        exact = relevance.linear_relprop(x, lin, R, OURS)
        cached = relevance.linear_relprop(x, lin, R, OURS, y=y, cache=relevance.ProductCache())
    torch.testing.assert_close(fast, exact, rtol=1e-11, atol=1e-13)
    torch.testing.assert_close(cached, fast, rtol=0, atol=0)


def test_linear_rule_falls_back_where_identity_cancels():
    """An output whose Z is ~1e-12 of |x| |W|^T (all but one x_i W_ji <= 0) makes the identity
    cancel: the rule must then use the two-part products (bitwise the same as without ``y``)."""
    lin, x, R = _linear_case(1)
    with torch.no_grad():
        lin.weight[3] = -x[0, 2].sign() * lin.weight[3].abs()
        lin.weight[3, 0] = 1e-12 * x[0, 2, 0].sign()  # Z[0, 2, 3] = 1e-12 |x_0|
        y = lin(x)
        fast = relevance.linear_relprop(x, lin, R, OURS, y=y)
        exact = relevance.linear_relprop(x, lin, R, OURS)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(relevance, "IDENTITY_TOL", 0.0)  # without the check: visibly wrong
            unchecked = relevance.linear_relprop(x, lin, R, OURS, y=y)
    assert torch.equal(fast, exact)
    assert (unchecked - exact).abs().max() > 1e-9 * exact.abs().max()  # fp64 rounding: ~1e-16


def test_safe_divide_into_writes_into_its_denominator_unless_it_cannot_hold_the_quotient():
    """The same values as ``safe_divide``; in place in full precision (no extra tensors), a new
    float32 tensor when the denominator is bf16 (autocast), never a bf16 quotient."""
    torch.manual_seed(0)
    a, b = torch.randn(4, 5), torch.randn(4, 5)
    b[0, 0] = 0
    want = relevance.safe_divide(a, b)
    out = relevance._safe_divide_into(a, b)
    assert out is b and torch.equal(out, want) and out[0, 0] == 0
    b16 = torch.randn(4, 5).to(torch.bfloat16)
    want16 = relevance.safe_divide(a, b16)
    out16 = relevance._safe_divide_into(a, b16)
    assert out16.dtype == torch.float32 and torch.equal(out16, want16)


def test_record_child_is_created_once_and_then_found():
    rec = relevance.Record()
    child = rec.child("attn")
    child["x"] = torch.ones(1)
    assert rec.child("attn") is child and "x" in rec.child("attn")
    assert rec.child("mlp") is not child
