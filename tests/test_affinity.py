"""Affinity labels, pair extraction, pairwise affinities, the AffinityNet loss and head."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vitaff.affinity import (
    IGNORE,
    affinity_label_map,
    affinity_loss,
    extract_pairs,
    pair_in_grid,
    pair_offsets,
    pairwise_affinity,
)
from vitaff.models.affinitynet import AffinityNet


# ---------------------------------------------------------------- offsets
def test_pair_offsets_radius5_is_psa_half_plane():
    offs = [tuple(o) for o in pair_offsets(5).tolist()]
    assert len(offs) == 34
    assert len(set(offs)) == 34
    expected = {
        (dy, dx)
        for dy in range(-5, 6)
        for dx in range(-5, 6)
        if 0 < dy * dy + dx * dx < 25 and (dy > 0 or (dy == 0 and dx > 0))
    }
    assert set(offs) == expected
    assert not any((-dy, -dx) in offs for dy, dx in offs)  # never an offset and its negation
    assert offs[:4] == [(0, 1), (0, 2), (0, 3), (0, 4)]  # psa order
    for excluded in [(0, 5), (3, 4), (4, 3), (5, 0)]:  # distance exactly 5
        assert excluded not in offs
    for included in [(0, 4), (4, 0), (4, 2), (2, 4), (4, -2), (3, 3), (3, -3)]:
        assert included in offs


def test_pair_offsets_small_radii():
    assert pair_offsets(1).shape == (0, 2)
    assert [tuple(o) for o in pair_offsets(2).tolist()] == [(0, 1), (1, -1), (1, 0), (1, 1)]


# ---------------------------------------------------------------- pairs
def test_extract_pairs_hand_counts_one_row():
    # indices    0  1  2  3  4    5
    label = torch.tensor([[0, 0, 1, 1, IGNORE, 2]])
    pairs = extract_pairs(label, radius=5)
    # valid pairs (j - i in 1..4, no 255): (0,1) bg+; (2,3) fg+;
    # (0,2) (0,3) (1,2) (1,3) (1,5) (2,5) (3,5) neg; (0,5) is at distance 5 -> excluded
    assert int(pairs["bg_pos"].sum()) == 1
    assert int(pairs["fg_pos"].sum()) == 1
    assert int(pairs["neg"].sum()) == 7
    k14 = [tuple(o) for o in pair_offsets(5).tolist()].index((0, 4))
    assert bool(pairs["neg"][k14, 0, 1])  # (1, 5) at distance 4 is a pair
    assert not pairs["neg"][k14, 0, 0]  # (0, 4) touches 255
    for m in pairs.values():
        assert m.shape == (34, 1, 6) and m.dtype == torch.bool


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ((0, 0), (4, 2), 1),  # d^2 = 20
        ((0, 0), (2, 4), 1),
        ((0, 0), (4, 0), 1),  # d = 4
        ((0, 0), (3, 4), 0),  # d = 5 exactly
        ((0, 0), (4, 3), 0),
        ((0, 0), (0, 5), 0),
        ((0, 4), (2, 0), 1),  # offset (2, -4)
        ((0, 4), (3, 0), 0),  # offset (3, -4), d = 5
        ((3, 3), (0, 0), 1),  # d^2 = 18, the pair is stored at the upper pixel
    ],
)
def test_extract_pairs_radius_is_strict(a, b, expected):
    label = torch.full((6, 6), IGNORE)
    label[a] = 4
    label[b] = 4
    pairs = extract_pairs(label, radius=5)
    assert int(pairs["fg_pos"].sum()) == expected
    assert int(pairs["neg"].sum()) == 0 and int(pairs["bg_pos"].sum()) == 0


def _pairs_by_loops(label: np.ndarray, radius: int):
    h, w = label.shape
    counts = {"bg_pos": 0, "fg_pos": 0, "neg": 0}
    seen = set()
    for y in range(h):
        for x in range(w):
            for y2 in range(h):
                for x2 in range(w):
                    d2 = (y - y2) ** 2 + (x - x2) ** 2
                    if not 0 < d2 < radius * radius:
                        continue
                    key = frozenset([(y, x), (y2, x2)])
                    if key in seen:
                        continue
                    seen.add(key)
                    la, lb = label[y, x], label[y2, x2]
                    if la == IGNORE or lb == IGNORE:
                        continue
                    if la != lb:
                        counts["neg"] += 1
                    elif la == 0:
                        counts["bg_pos"] += 1
                    else:
                        counts["fg_pos"] += 1
    return counts


def test_extract_pairs_matches_unordered_pair_enumeration_batched():
    rng = np.random.default_rng(1)
    labels = rng.choice([0, 3, 7, IGNORE], size=(2, 7, 9), p=[0.4, 0.25, 0.2, 0.15])
    pairs = extract_pairs(torch.as_tensor(labels), radius=4)
    assert pairs["neg"].shape == (2, pair_offsets(4).shape[0], 7, 9)
    for b in range(2):
        ref = _pairs_by_loops(labels[b], 4)
        got = {k: int(v[b].sum()) for k, v in pairs.items()}
        assert got == ref
        single = extract_pairs(torch.as_tensor(labels[b]), radius=4)
        for k in pairs:
            assert torch.equal(single[k], pairs[k][b])


# ---------------------------------------------------------------- affinity label map
def test_affinity_label_map_conventions():
    present = [7, 12]  # channels: 0 bg, 1 -> class 7, 2 -> class 12
    stride, h, w = 2, 3, 5  # grid 2 x 3; last row and column are partial cells
    lo = np.zeros((3, h, w), np.float32)
    hi = np.zeros((3, h, w), np.float32)

    def cell(arr, cy, cx, p):
        arr[:, cy * stride : (cy + 1) * stride, cx * stride : (cx + 1) * stride] = np.asarray(p, np.float32)[:, None, None]

    cell(lo, 0, 0, [0, 1, 0]); cell(hi, 0, 0, [0, 1, 0])  # class 7 both -> 7
    cell(lo, 0, 1, [1, 0, 0]); cell(hi, 0, 1, [0, 0, 1])  # low says bg, high says fg -> 255
    cell(lo, 0, 2, [1, 0, 0]); cell(hi, 0, 2, [1, 0, 0])  # bg both -> 0
    cell(lo, 1, 0, [0, 0, 1]); cell(hi, 1, 0, [1, 0, 0])  # high says bg -> 0 (wins)
    cell(lo, 1, 1, [0, 0, 1]); cell(hi, 1, 1, [0, 0, 1])  # -> 12
    cell(lo, 1, 2, [0, 1, 0]); cell(hi, 1, 2, [0, 1, 0])  # partial cell -> 7
    # mean pooling, neither majority vote nor max pooling: in cell (0, 0) three of four pixels
    # lean to background and the largest single score is background's, but the mean favours 7
    lo[:, 0, 0] = lo[:, 0, 1] = lo[:, 1, 0] = [0.52, 0.48, 0.0]
    lo[:, 1, 1] = [0.3, 0.5, 0.2]

    label = affinity_label_map(lo, hi, present, stride)
    assert label.dtype == np.uint8
    np.testing.assert_array_equal(label, [[7, IGNORE, 0], [0, 12, 7]])

    padded = affinity_label_map(torch.as_tensor(lo), torch.as_tensor(hi), present, stride, padded_size=(6, 8))
    assert padded.shape == (3, 4)
    np.testing.assert_array_equal(padded[:2, :3], label)
    assert (padded[2] == IGNORE).all() and (padded[:, 3] == IGNORE).all()


def test_cell_means_average_the_pixels_inside_the_image():
    """Cells cut by the image border average their inside pixels only; empty cells are flagged."""
    from vitaff.affinity import _cell_means

    probs = np.arange(2 * 3 * 5, dtype=np.float32).reshape(2, 3, 5)
    means, inside = _cell_means(probs, 2, (3, 3))
    assert means.dtype == np.float64 and means.shape == (2, 3, 3)
    for k in range(2):
        for cy in range(2):
            for cx in range(3):
                block = probs[k, 2 * cy : 2 * cy + 2, 2 * cx : 2 * cx + 2]
                assert means[k, cy, cx] == pytest.approx(block.mean()), (k, cy, cx)
    np.testing.assert_array_equal(means[:, 2], 0)
    np.testing.assert_array_equal(inside, [[True] * 3, [True] * 3, [False] * 3])


def test_affinity_label_map_default_stride_and_exact_padding():
    """The default stride is the feature stride 8; a padded size equal to the image is allowed and
    changes nothing."""
    rng = np.random.default_rng(5)
    lo = rng.random((3, 17, 24)).astype(np.float32)
    hi = rng.random((3, 17, 24)).astype(np.float32)
    label = affinity_label_map(lo, hi, [2, 9])
    assert label.shape == (3, 3)
    np.testing.assert_array_equal(label, affinity_label_map(lo, hi, [2, 9], 8))
    np.testing.assert_array_equal(affinity_label_map(lo, hi, [2, 9], 8, padded_size=(17, 24)), label)


def test_radius_one_has_no_pairs_and_tensors_with_gradients_are_read():
    """Radius 1 forms no pair: empty bool masks under the usual keys and no affinities; CRF stacks
    that carry gradients are read like arrays."""
    from vitaff.affinity import pairwise_affinity

    with pytest.raises(ValueError, match=r"radius must be >= 1, got 0"):
        pair_offsets(0)
    pairs = extract_pairs(np.zeros((2, 3, 4), np.uint8), radius=1)
    assert sorted(pairs) == ["bg_pos", "fg_pos", "neg"]
    for mask in pairs.values():
        assert mask.dtype == torch.bool and mask.shape == (2, 0, 3, 4)
    assert pairwise_affinity(torch.rand(2, 5, 3, 4), radius=1).shape == (2, 0, 3, 4)
    rng = np.random.default_rng(6)
    lo = rng.random((2, 9, 10)).astype(np.float32)
    hi = rng.random((2, 9, 10)).astype(np.float32)
    want = affinity_label_map(lo, hi, [4], 4)
    got = affinity_label_map(torch.tensor(lo, requires_grad=True), torch.tensor(hi, requires_grad=True), [4], 4)
    np.testing.assert_array_equal(got, want)


def test_affinity_label_map_rejects_bad_shapes():
    with pytest.raises(ValueError):
        affinity_label_map(np.zeros((3, 4, 4)), np.zeros((3, 4, 5)), [1, 2], 2)
    with pytest.raises(ValueError):
        affinity_label_map(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)), [1, 2], 2)
    with pytest.raises(ValueError):
        affinity_label_map(np.zeros((3, 4, 4)), np.zeros((3, 4, 4)), [1, 2], 2, padded_size=(2, 8))


# ---------------------------------------------------------------- pairwise affinity
def test_pairwise_affinity_hand_value_and_layout():
    feats = torch.zeros(1, 2, 3, 4)
    feats[0, :, 1, 2] = torch.tensor([1.0, 3.0])
    aff = pairwise_affinity(feats, radius=3)
    offs = [tuple(o) for o in pair_offsets(3).tolist()]
    assert aff.shape == (1, len(offs), 3, 4)
    # pair (0, 1) -> (1, 2) has offset (1, 1): mean |f_i - f_j| = 2
    assert aff[0, offs.index((1, 1)), 0, 1].item() == pytest.approx(math.exp(-2.0))
    assert aff[0, offs.index((0, 1)), 1, 1].item() == pytest.approx(math.exp(-2.0))
    assert aff[0, offs.index((0, 1)), 0, 0].item() == pytest.approx(1.0)
    # pairs leaving the grid are 0; all others are positive
    inside = pair_in_grid(3, 4, 3)
    assert (aff[0][~inside] == 0).all() and (aff[0][inside] > 0).all()


def test_pairwise_affinity_matches_loops():
    torch.manual_seed(0)
    feats = torch.randn(2, 5, 4, 6, dtype=torch.float64)
    aff = pairwise_affinity(feats, radius=3)
    for k, (dy, dx) in enumerate(pair_offsets(3).tolist()):
        for y in range(4):
            for x in range(6):
                y2, x2 = y + dy, x + dx
                if 0 <= y2 < 4 and 0 <= x2 < 6:
                    ref = torch.exp(-(feats[:, :, y, x] - feats[:, :, y2, x2]).abs().mean(1))
                else:
                    ref = torch.zeros(2, dtype=torch.float64)
                torch.testing.assert_close(aff[:, k, y, x], ref)


# ---------------------------------------------------------------- loss
def test_affinity_loss_hand_values():
    aff = torch.tensor([0.5, 0.9, 0.2, 0.7, 0.1], requires_grad=True)
    pairs = {
        "bg_pos": torch.tensor([1, 0, 0, 0, 0], dtype=torch.bool),
        "fg_pos": torch.tensor([0, 1, 0, 0, 0], dtype=torch.bool),
        "neg": torch.tensor([0, 0, 1, 1, 0], dtype=torch.bool),
    }
    total, terms = affinity_loss(aff, pairs)
    bg = -math.log(0.5 + 1e-5) / (1 + 1e-5)  # 0.69313
    fg = -math.log(0.9 + 1e-5) / (1 + 1e-5)  # 0.10535
    neg = (-math.log(0.8 + 1e-5) - math.log(0.3 + 1e-5)) / (2 + 1e-5)  # (0.22313 + 1.20394) / 2
    assert terms["bg_pos"].item() == pytest.approx(bg, rel=1e-5)
    assert terms["fg_pos"].item() == pytest.approx(fg, rel=1e-5)
    assert terms["neg"].item() == pytest.approx(neg, rel=1e-5)
    assert total.item() == pytest.approx(bg / 4 + fg / 4 + neg / 2, rel=1e-5)
    assert total.item() == pytest.approx(0.5564, abs=1e-4)
    assert terms["neg_count"].item() == 2
    total.backward()
    g = aff.grad
    assert g[0] < 0 and g[1] < 0  # positives pull affinity up
    assert g[2] > 0 and g[3] > 0  # negatives push it down
    assert g[4] == 0  # unpaired entries do not count


def test_affinity_loss_empty_terms_are_zero():
    aff = torch.full((1, 34, 2, 2), 0.3)
    pairs = extract_pairs(torch.full((1, 2, 2), IGNORE), radius=5)
    total, terms = affinity_loss(aff, pairs)
    assert total.item() == 0.0 and terms["bg_pos_count"].item() == 0


# ---------------------------------------------------------------- AffinityNet head
def _stage_features(b, size, chans=(8, 16, 32), strides=(4, 8, 16)):
    return [torch.randn(b, c, -(-size // s), -(-size // s)) for c, s in zip(chans, strides)]


def test_affinitynet_grid_and_gradients():
    torch.manual_seed(0)
    net = AffinityNet([8, 16, 32], [4, 8, 12], strides=[4, 8, 16], out_stride=8, out_dim=20)
    feats = [f.requires_grad_() for f in _stage_features(2, 64)]
    out = net(feats)
    assert out.shape == (2, 20, 8, 8)
    aff = net.affinity(feats, radius=5)
    assert aff.shape == (2, 34, 8, 8)
    label = torch.zeros(2, 8, 8, dtype=torch.long)
    label[:, :, 4:] = 3
    loss, _ = affinity_loss(aff, extract_pairs(label, radius=5))
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(f.grad.abs().sum() > 0 for f in feats)


def test_affinitynet_single_stem_stage_and_odd_sizes():
    net = AffinityNet([32], [16], strides=[16], out_stride=16)
    assert net(_stage_features(1, 48, chans=(32,), strides=(16,)))[0].shape == (16, 3, 3)
    coarse_only = AffinityNet([8, 32], [4, 4], strides=[4, 16], out_stride=8)
    feats = [torch.randn(1, 8, 15, 13), torch.randn(1, 32, 4, 4)]  # a 60 x 52 image
    assert coarse_only(feats).shape == (1, 8, 8, 7)
    with pytest.raises(ValueError):
        net([torch.randn(1, 31, 3, 3)])
