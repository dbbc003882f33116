"""Background maps and the dense-CRF wrapper (pydensecrf)."""

from __future__ import annotations

import numpy as np
import pytest

from vitaff.crf import (
    background_map,
    crf_argmax_labels,
    crf_confident_labels,
    dense_crf,
    select_present_maps,
)


def test_background_map_values_and_fixed_points():
    maps = np.array([[[0.0, 0.5]], [[0.2, 0.25]]], np.float32)  # C=2, 1 x 2
    np.testing.assert_allclose(background_map(maps, 4), [[0.8**4, 0.5**4]], rtol=1e-6)
    assert background_map(np.zeros((0, 3, 4)), 32).shape == (3, 4)
    assert (background_map(np.zeros((0, 3, 4)), 32) == 1).all()
    assert background_map(np.zeros((0, 3, 4)), 32).dtype == np.float32
    # SPEC: foreground wins without CRF above m* = 0.276 (alpha 4) and 0.077 (alpha 32)
    for alpha, m_star in [(4, 0.276), (32, 0.077)]:
        assert background_map(np.full((1, 1, 1), m_star - 0.002), alpha)[0, 0] > m_star - 0.002
        assert background_map(np.full((1, 1, 1), m_star + 0.002), alpha)[0, 0] < m_star + 0.002


def _halves(h=32, w=40, seed=0, noise=0.15):
    """Black left half, white right half; a noisy class seed that is higher on the right."""
    rng = np.random.default_rng(seed)
    image = np.zeros((h, w, 3), np.uint8)
    image[:, w // 2 :] = 255
    seed_map = np.where(np.arange(w)[None, :] >= w // 2, 0.36, 0.2).astype(np.float32)
    seed_map = np.clip(seed_map + rng.uniform(-noise, noise, (h, w)), 0, 1).astype(np.float32)
    truth = np.zeros((h, w), np.uint8)
    truth[:, w // 2 :] = 1
    return image, seed_map, truth


def test_dense_crf_shapes_normalisation_and_separable_image():
    image, seed_map, truth = _halves()
    probs = np.stack([background_map(seed_map[None], 4), seed_map])
    before = probs.argmax(0)
    assert (before != truth).mean() > 0.1  # the seed alone is noisy at alpha 4
    q = dense_crf(image, probs)
    assert q.shape == probs.shape and q.dtype == np.float32
    np.testing.assert_allclose(q.sum(0), 1.0, atol=1e-4)
    assert (q.argmax(0) == truth).all()  # the CRF follows the image edge
    # fewer iterations / no pairwise terms leave the noise in
    weak = dense_crf(image, probs, n_iter=1, gaussian_compat=0, bilateral_compat=0)
    assert (weak.argmax(0) != truth).mean() > 0.1


def test_dense_crf_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="10x10"):
        dense_crf(np.zeros((10, 10, 3), np.uint8), np.full((2, 10, 12), 0.5, np.float32))
    with pytest.raises(ValueError):
        dense_crf(np.zeros((10, 10), np.uint8), np.full((2, 10, 10), 0.5, np.float32))
    with pytest.raises(ValueError):
        dense_crf(np.zeros((10, 10, 3), np.uint8), np.full((10, 10), 0.5, np.float32))
    with pytest.raises(ValueError):
        dense_crf(np.full((4, 4, 3), 300.0), np.full((2, 4, 4), 0.5, np.float32))


def _three_regions(h=24, w=36):
    image = np.zeros((h, w, 3), np.uint8)
    image[:, 12:24] = (200, 30, 30)
    image[:, 24:] = (30, 30, 200)
    maps = np.zeros((2, h, w), np.float32)  # present classes [15, 2] in this order
    maps[0, :, 12:24] = 0.9
    maps[1, :, 24:] = 0.5
    maps[1, :, 22:24] = 0.05  # a little overlap into the red region
    return image, maps


def test_crf_confident_labels_conventions():
    image, maps = _three_regions()
    present = [15, 2]
    fg, bg, p_lo, p_hi = crf_confident_labels(image, maps, present, alpha_low=4, alpha_high=32)
    assert fg.shape == bg.shape == (24, 36) and fg.dtype == bg.dtype == np.uint8
    assert p_lo.shape == p_hi.shape == (3, 24, 36)
    np.testing.assert_allclose(p_lo.sum(0), 1, atol=1e-4)
    np.testing.assert_allclose(p_hi.sum(0), 1, atol=1e-4)
    assert set(np.unique(fg)) == {0, 15, 2}  # VOC indices, in the order of present_classes
    assert (fg[:, :12] == 0).all() and (fg[:, 12:24] == 15).all() and (fg[:, 24:] == 2).all()
    assert set(np.unique(bg)) <= {0, 15, 2}
    assert (bg == 0).sum() <= (fg == 0).sum()  # a larger alpha shrinks the background
    # a 20-channel stack indexed by class - 1 gives the same result
    full = np.zeros((20, 24, 36), np.float32)
    full[14], full[1] = maps[0], maps[1]
    full[6] = 1.0  # an absent class (7) with a strong map must never appear
    fg20, bg20, _, _ = crf_confident_labels(image, full, present)
    np.testing.assert_array_equal(fg20, fg)
    np.testing.assert_array_equal(bg20, bg)
    base = crf_argmax_labels(image, maps, present, alpha=4)
    np.testing.assert_array_equal(base, fg)


def test_crf_no_present_classes_and_bad_inputs():
    image = np.zeros((8, 8, 3), np.uint8)
    fg, bg, p_lo, _ = crf_confident_labels(image, np.zeros((0, 8, 8)), [])
    assert (fg == 0).all() and (bg == 0).all() and p_lo.shape == (1, 8, 8)
    with pytest.raises(ValueError):
        crf_confident_labels(image, np.zeros((3, 8, 8)), [1, 5])  # 3 maps: neither 2 present nor 5 in all
    with pytest.raises(ValueError):
        crf_confident_labels(image, np.zeros((1, 8, 8)), [255])  # 255 is void, never a class
    with pytest.raises(ValueError):
        crf_argmax_labels(image, np.zeros((1, 8, 9)), [4])  # image 8x8, maps 8x9
    assert select_present_maps(np.zeros((20, 2, 2)), [3, 1]).shape == (2, 2, 2)


def test_select_present_maps_checks_and_messages():
    """float32 out whatever comes in; label indices 1..254 (255 is void); a full stack indexed by
    class - 1 must reach the largest present index; the errors name the shape or channel count and
    what was expected."""
    from vitaff.crf import select_present_maps

    full = np.random.default_rng(0).random((20, 3, 4))  # float64 in
    out = select_present_maps(full, [20, 1])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, full[[19, 0]].astype(np.float32))
    with pytest.raises(ValueError, match=r"distinct label indices in 1\.\.254, got \[255\]"):
        select_present_maps(full, [255])
    with pytest.raises(ValueError, match=r"class_maps has 20 channels; expected len\(present_classes\) = 1 "
                                         r"\(present classes only\) or a full stack of at least 21"):
        select_present_maps(full, [21])
    with pytest.raises(ValueError, match=r"C x H x W, got shape \(20, 12\)"):
        select_present_maps(full.reshape(20, 12), [1])
    with pytest.raises(ValueError, match=r"class_maps has 3 channels; expected len\(present_classes\) = 2 "
                                         r"\(present classes only\) or a full stack of at least 5"):
        select_present_maps(full[:3], [1, 5])
    with pytest.raises(ValueError, match=r"class_maps has 5 channels"):  # the channel count, not the height
        select_present_maps(full[:5], [1, 7])


def test_crf_probabilities_passes_its_parameters_and_skips_an_empty_image(monkeypatch):
    """The stack [M_bg, M_c...] with the caller's CRF parameters over the defaults reaches dense_crf;
    with no class present the result is background everywhere (float32) without a CRF."""
    from vitaff import crf as crf_mod

    calls = []
    monkeypatch.setattr(crf_mod, "dense_crf", lambda image, stack, **kw: calls.append((stack, kw)) or stack)
    image = np.zeros((3, 4, 3), np.uint8)
    maps = np.random.default_rng(0).random((1, 3, 4)).astype(np.float32)
    crf_mod.crf_probabilities(image, maps, [7], alpha=2.0, n_iter=3, bilateral_srgb=5.0)
    stack, kw = calls[0]
    assert kw == {**crf_mod.CRF_DEFAULTS, "n_iter": 3, "bilateral_srgb": 5.0}
    np.testing.assert_allclose(stack, np.stack([(1 - maps[0]) ** 2, maps[0]]), rtol=1e-6)
    empty = crf_mod.crf_probabilities(image, np.zeros((0, 3, 4)), [], alpha=2.0)
    assert len(calls) == 1 and empty.shape == (1, 3, 4) and empty.dtype == np.float32 and (empty == 1).all()
    with pytest.raises(ValueError, match=r"image is \(3, 4\) but class maps are \(5, 4\)"):
        crf_mod.crf_probabilities(image, np.zeros((0, 5, 4)), [], alpha=2.0)


def test_confident_and_argmax_labels_pass_alphas_and_crf_parameters(monkeypatch):
    """Both CRFs of the confident labels (alpha_low, alpha_high) and the baseline's CRF get the
    caller's CRF parameters; the default alphas are the study's 4 and 32."""
    import inspect

    from vitaff import crf as crf_mod

    calls = []
    monkeypatch.setattr(crf_mod, "dense_crf", lambda image, stack, **kw: calls.append((stack, kw)) or stack)
    image = np.zeros((3, 4, 3), np.uint8)
    maps = np.random.default_rng(1).random((1, 3, 4)).astype(np.float32) * 0.9
    crf_mod.crf_confident_labels(image, maps, [7], alpha_low=2.0, alpha_high=8.0, n_iter=3)
    crf_mod.crf_argmax_labels(image, maps, [7], alpha=5.0, gaussian_sxy=1.5)
    assert [kw["n_iter"] for _, kw in calls] == [3, 3, 10]
    assert calls[2][1]["gaussian_sxy"] == 1.5
    for (stack, _), alpha in zip(calls, (2.0, 8.0, 5.0)):
        np.testing.assert_allclose(stack[0], (1 - maps[0]) ** alpha, rtol=1e-5)
    confident = inspect.signature(crf_mod.crf_confident_labels).parameters
    assert (confident["alpha_low"].default, confident["alpha_high"].default) == (4.0, 32.0)
    assert inspect.signature(crf_mod.crf_argmax_labels).parameters["alpha"].default == 4.0


def test_dense_crf_defaults_are_the_crf_defaults():
    """dense_crf called alone uses the same constants (psa's) as the pipeline's CRF_DEFAULTS."""
    import inspect

    from vitaff.crf import CRF_DEFAULTS, dense_crf

    params = inspect.signature(dense_crf).parameters.values()
    assert {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY} == CRF_DEFAULTS


def test_dense_crf_input_checks():
    """A float image in 0..255 (ends included) equals its uint8 version; out-of-range values,
    no channel and mismatched sizes are refused with messages naming them."""
    from vitaff.crf import dense_crf

    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (6, 7, 3)).astype(np.uint8)
    img[0, 0], img[0, 1] = 0, 255
    probs = rng.random((2, 6, 7)).astype(np.float32)
    np.testing.assert_array_equal(dense_crf(img.astype(np.float64), probs, n_iter=2), dense_crf(img, probs, n_iter=2))
    with pytest.raises(ValueError, match=r"image values must lie in 0\.\.255 \(uint8 RGB\)"):
        dense_crf(img.astype(np.float64) + 0.5, probs)
    with pytest.raises(ValueError, match=r"image values must lie"):
        dense_crf(img.astype(np.float64) - 1, probs)
    with pytest.raises(ValueError, match="probs must have at least one channel"):
        dense_crf(img, probs[:0])
    with pytest.raises(ValueError, match=r"image is 6x7 but probs are 6x5"):
        dense_crf(img, probs[:, :, :5])


def test_default_constants_act_as_the_explicit_ones():
    """Called without them, dense_crf and the label functions compute exactly what the explicit
    study constants give (the signature alone is not enough: a changed default in the body would
    not show in it), and each constant changes the result, so a different default would show."""
    from vitaff.crf import CRF_DEFAULTS, crf_probabilities

    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (40, 50, 3)).astype(np.uint8)
    stack = rng.uniform(0.45, 0.55, (3, 40, 50)).astype(np.float32)  # close scores: far from a fixed point
    explicit = dense_crf(image, stack, **CRF_DEFAULTS)
    np.testing.assert_array_equal(dense_crf(image, stack), explicit)
    for key, value in CRF_DEFAULTS.items():
        assert not np.array_equal(dense_crf(image, stack, **{**CRF_DEFAULTS, key: value + 1}), explicit), key
    # a constant seed of 0.25 on a uniform image: (1 - 0.25)^4 = 0.32 > 0.25 > (1 - 0.25)^5 = 0.24,
    # so alpha 4 labels it background and alpha 5 labels it the class
    flat = np.full((6, 8, 3), 90, np.uint8)
    seed = np.full((1, 6, 8), 0.25, np.float32)
    assert (crf_argmax_labels(flat, seed, [3]) == 0).all()
    assert (crf_argmax_labels(flat, seed, [3], alpha=5.0) == 3).all()
    image, seed_map = _halves(h=12, w=16, noise=0.3)[:2]
    probs = seed_map[None]
    _, _, low, high = got = crf_confident_labels(image, probs, [2])
    for a, b in zip(got, crf_confident_labels(image, probs, [2], alpha_low=4.0, alpha_high=32.0)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(low, crf_probabilities(image, probs, [2], 4.0))
    np.testing.assert_array_equal(high, crf_probabilities(image, probs, [2], 32.0))
    assert not np.array_equal(high, crf_probabilities(image, probs, [2], 33.0))
    assert not np.array_equal(low, crf_probabilities(image, probs, [2], 5.0))


def test_dense_crf_zero_probabilities_and_torch_inputs():
    """An exact 0 is clipped to 1e-5 (a finite unary), and torch tensors give what numpy arrays give."""
    import torch

    image, seed_map = _halves(h=10, w=12)[:2]
    probs = seed_map[None]
    stack = np.concatenate([1 - probs, probs], axis=0)
    stack[:, :2] = 0.0
    stack[0, 5:, :] = 1.0
    got = dense_crf(image, stack, n_iter=3)
    assert np.isfinite(got).all()
    np.testing.assert_array_equal(got, dense_crf(image, np.clip(stack, 1e-5, 1.0), n_iter=3))
    np.testing.assert_array_equal(dense_crf(torch.from_numpy(image), torch.from_numpy(stack), n_iter=3), got)
    maps = torch.tensor(probs, requires_grad=True)  # read through detach()
    np.testing.assert_array_equal(background_map(maps, 4), background_map(probs, 4))
    np.testing.assert_array_equal(select_present_maps(maps, [5]), probs)


def test_crf_error_messages_name_the_shapes():
    image = np.zeros((6, 7, 3), np.uint8)
    with pytest.raises(ValueError, match=r"class_maps must be C x H x W, got shape \(6, 7\)"):
        background_map(np.zeros((6, 7)), 4)
    with pytest.raises(ValueError, match=r"image must be H x W x 3, got shape \(6, 7, 4\)"):
        dense_crf(np.zeros((6, 7, 4), np.uint8), np.zeros((2, 6, 7), np.float32))
    with pytest.raises(ValueError, match=r"probs must be K x H x W, got shape \(6, 7\)"):
        dense_crf(image, np.zeros((6, 7), np.float32))
