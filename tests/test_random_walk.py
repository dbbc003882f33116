"""Random walk against an explicit dense matrix power built with loops, and seed refinement."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vitaff.affinity import pair_offsets
from vitaff.random_walk import (
    dense_affinity_matrix,
    random_walk,
    refine_seeds,
    scores_to_labels,
    seed_score_grid,
)

METHODS = ["banded", "sparse", "dense", "auto"]


def _loop_affinity_matrix(aff: np.ndarray, radius: int, beta: float) -> np.ndarray:
    """Independent reference: A[i, j] = A[j, i] = a^beta per pair, diag 1, built pixel by pixel."""
    k, h, w = aff.shape
    offs = pair_offsets(radius).tolist()
    mat = np.zeros((h * w, h * w))
    for y in range(h):
        for x in range(w):
            i = y * w + x
            mat[i, i] = 1.0
            for kk, (dy, dx) in enumerate(offs):
                y2, x2 = y + dy, x + dx
                if 0 <= y2 < h and 0 <= x2 < w:
                    j = y2 * w + x2
                    mat[i, j] = mat[j, i] = aff[kk, y, x] ** beta
    return mat


def _loop_walk(aff: np.ndarray, scores: np.ndarray, radius: int, beta: float, steps: int) -> np.ndarray:
    mat = _loop_affinity_matrix(aff, radius, beta)
    trans = mat / mat.sum(axis=0, keepdims=True)  # columns sum to 1
    c, h, w = scores.shape
    return (scores.reshape(c, -1) @ np.linalg.matrix_power(trans, steps)).reshape(c, h, w)


def _graphs(b, k, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, k, h, w, generator=g, dtype=torch.float64)


def test_dense_affinity_matrix_matches_loops():
    aff = _graphs(2, pair_offsets(3).shape[0], 4, 5)
    got = dense_affinity_matrix(aff, radius=3, beta=2.0)
    for b in range(2):
        np.testing.assert_allclose(got[b].numpy(), _loop_affinity_matrix(aff[b].numpy(), 3, 2.0), rtol=1e-12)
    np.testing.assert_allclose(dense_affinity_matrix(aff[1], 3, 2.0).numpy(), got[1].numpy())


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("radius, h, w, beta, logt, n_steps", [(3, 5, 6, 2.0, 3, None), (5, 6, 7, 4.0, None, 5)])
def test_random_walk_matches_dense_matrix_power(method, radius, h, w, beta, logt, n_steps):
    k = pair_offsets(radius).shape[0]
    aff = _graphs(2, k, h, w, seed=1)  # two different graphs in one batch
    aff[1] = aff[1] ** 3
    scores = _graphs(2, 4, h, w, seed=2)
    got = random_walk(aff, scores, radius=radius, beta=beta, logt=logt, n_steps=n_steps, method=method)
    steps = n_steps if n_steps is not None else 2**logt
    assert got.shape == scores.shape
    for b in range(2):
        ref = _loop_walk(aff[b].numpy(), scores[b].numpy(), radius, beta, steps)
        np.testing.assert_allclose(got[b].numpy(), ref, rtol=1e-9, atol=1e-12)


def test_random_walk_float32_default_constants_and_invariants():
    torch.manual_seed(0)
    aff = torch.rand(2, 34, 9, 11)
    ones = torch.ones(2, 3, 9, 11)
    for method in ("banded", "sparse"):
        # the constant vector is a fixed point of v <- v T when T's columns sum to 1
        out = random_walk(aff, ones, method=method)  # beta 16, 256 steps
        torch.testing.assert_close(out, ones, rtol=1e-4, atol=1e-4)
    scores = torch.rand(2, 3, 9, 11)
    a = random_walk(aff, scores, beta=16, logt=4, method="banded")
    b = random_walk(aff, scores, beta=16, logt=4, method="sparse")
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(a, scores)  # it does propagate


def test_random_walk_zero_steps_and_errors():
    aff = torch.rand(1, 34, 4, 4)
    s = torch.rand(1, 2, 4, 4)
    torch.testing.assert_close(random_walk(aff, s, n_steps=0), s)
    with pytest.raises(ValueError):
        random_walk(aff, torch.rand(1, 2, 4, 5))
    with pytest.raises(ValueError):
        random_walk(torch.rand(1, 12, 4, 4), s, radius=5)
    with pytest.raises(ValueError):
        random_walk(aff, s, method="nope")


def _two_region_affinity(h, w, split, radius=5):
    """Affinity 1 inside the columns [0, split) and [split, w), 0 across the split."""
    offs = pair_offsets(radius)
    xs = torch.arange(w).view(1, 1, w)
    left_i = xs < split
    left_j = (xs + offs[:, 1].view(-1, 1, 1)) < split
    return (left_i == left_j).expand(len(offs), h, w).float()


def test_refine_seeds_spreads_within_regions_and_excludes_absent_classes():
    stride, hh, ww = 4, 14, 32  # grid 4 x 8 (image height not a multiple of the stride)
    aff = _two_region_affinity(4, 8, split=4)
    maps = np.zeros((20, hh, ww), np.float32)
    maps[3 - 1, :, 4:16] = 1.0  # class 3 covers 3/4 of the left region
    maps[5 - 1] = 1.0  # class 5 is absent from the image: its map must be ignored
    label = refine_seeds(maps, [3], aff, stride=stride, radius=5, beta=16, logt=6)
    assert label.shape == (hh, ww) and label.dtype == np.uint8
    assert set(np.unique(label)) == {0, 3}
    assert (label[:, :14] == 3).all()  # includes the uncovered columns 0..3
    assert (label[:, 18:] == 0).all()
    # without the walk the uncovered columns stay background
    no_walk = refine_seeds(maps, [3], aff, stride=stride, logt=None, n_steps=0)
    assert (no_walk[:, :3] == 0).all()
    # present-only input gives the same answer
    np.testing.assert_array_equal(refine_seeds(maps[[2]], [3], aff, stride=stride, logt=6), label)


def test_seed_score_grid_and_absent_class_masking():
    maps = np.zeros((2, 6, 8), np.float32)
    maps[0, :, :4] = 1.0
    maps[1, :, 4:] = 0.5
    grid = seed_score_grid(maps, [9, 2], grid_size=(2, 2), stride=4)
    # background, then the present classes in the order given: no channel for an absent class
    assert grid.shape == (3, 2, 2)
    # top-left cell: class 9 at 1, bg 0; bottom row cells average 2 image rows + 2 zero padding rows
    assert grid[1, 0, 0].item() == pytest.approx(1.0)
    assert grid[0, 0, 0].item() == pytest.approx(0.0)
    assert grid[2, 1, 1].item() == pytest.approx(0.25)
    assert grid[0, 1, 1].item() == pytest.approx(0.5**16 / 2)
    scores = torch.zeros(3, 2, 2)
    scores[0] = 0.1
    scores[2] = 5.0  # class 130 (a large dataset's index) wins everywhere but the top-left cell
    scores[1, 0, 0] = 9.0
    lab = scores_to_labels(scores, [9, 130], (8, 8), stride=4)
    assert lab.dtype == np.uint8 and set(np.unique(lab)) == {9, 130}
    assert lab[0, 0] == 9 and lab[7, 7] == 130
    with pytest.raises(ValueError, match="1 \\+ 1 present"):
        scores_to_labels(scores, [9], (8, 8), stride=4)


def test_refine_seeds_on_the_resized_image_returns_image_size_labels():
    """The study's walk: seeds resized to the square the affinity grid covers, walked there,
    scores upsampled straight back to the image (not padded): 56 x 56 grid <- 448 <- 375 x 500."""
    stride, side = 8, 448
    aff = _two_region_affinity(side // stride, side // stride, split=28)
    hh, ww = 375, 500
    maps = np.zeros((20, hh, ww), np.float32)
    maps[3 - 1, :, 50:200] = 1.0  # class 3 on part of the left half only
    for dtype in (torch.float32, torch.float64):
        label = refine_seeds(maps, [3], aff, stride=stride, radius=5, beta=16, logt=6, bg_power=4,
                             resized=True, dtype=dtype)
        assert label.shape == (hh, ww)
        assert (label[:, :240] == 3).all() and (label[:, 260:] == 0).all()  # the left half, image columns
    # the same seeds on the padded layout need a grid covering the image, not a square
    with pytest.raises(ValueError, match="does not cover"):
        refine_seeds(maps, [3], aff[:, :40, :40], stride=stride)


def test_seed_score_grid_default_stride_and_score_shape_message():
    """The default stride is the feature stride 8; a score grid without 1 + (present classes)
    channels is refused with its shape."""
    from vitaff.random_walk import scores_to_labels, seed_score_grid

    maps = np.random.default_rng(7).random((1, 17, 24)).astype(np.float32)
    grid = seed_score_grid(maps, [3], (3, 3))
    assert grid.shape == (2, 3, 3)
    torch.testing.assert_close(grid, seed_score_grid(maps, [3], (3, 3), 8))
    with pytest.raises(ValueError, match=r"scores must be \(1 \+ 1 present classes\) x h x w, got shape \(20, 3, 4\)"):
        scores_to_labels(torch.zeros(20, 3, 4), [1], (20, 30))
    with pytest.raises(ValueError, match=r"^n_steps must be >= 0$"):
        random_walk(torch.zeros(1, len(pair_offsets(5)), 3, 4), torch.zeros(1, 21, 3, 4), n_steps=-1)


def test_tensors_are_made_on_the_requested_device():
    """Every tensor a step creates goes to the caller's device (CUDA in the real run). Checked on
    PyTorch's "meta" device, which a CPU machine has: a tensor made without ``device=`` lands on
    the CPU, and the output's device says so."""
    maps = np.random.default_rng(0).random((2, 20, 24)).astype(np.float32)
    grid = seed_score_grid(maps, [3, 5], grid_size=(3, 3), stride=8, device="meta")
    assert grid.device.type == "meta" and grid.shape == (3, 3, 3)
    aff = torch.rand(1, 34, 4, 4, device="meta")
    walked = random_walk(aff, torch.rand(1, 3, 4, 4), radius=5, logt=1, method="banded")
    assert walked.device.type == "meta" and walked.shape == (1, 3, 4, 4)
