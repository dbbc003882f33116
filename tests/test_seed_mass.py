"""The seed-mass diagnostic: regions, pixel-weighted means and CRF label shares on a hand case."""

import numpy as np
import pytest

from vitaff.diagnostics.seed_mass import SeedMassAccumulator
from vitaff.diagnostics.stages.seed_mass import split_rows


def _hand_case():
    # 3 x 4 image: class 3 on the left 2 columns (part = top-left pixel), class 8 at (2, 3),
    # background elsewhere, one void pixel
    gt = np.array([[3, 3, 0, 0],
                   [3, 3, 0, 255],
                   [3, 3, 0, 8]], dtype=np.uint8)
    parts = np.zeros_like(gt)
    parts[0, 0] = 1
    maps = np.zeros((2, 3, 4), dtype=np.float32)  # the store's layout: classes 3 and 8 only
    maps[0] = [[1.0, 0.5, 0.2, 0.0],
               [0.5, 0.0, 0.0, 0.9],
               [0.0, 0.0, 0.1, 0.0]]
    maps[1] = [[0.0, 0.0, 0.3, 0.3],
               [0.0, 0.0, 0.0, 0.0],
               [0.0, 0.0, 0.0, 0.6]]
    confident = np.array([[3, 3, 0, 0],
                          [255, 0, 0, 255],
                          [0, 0, 255, 8]], dtype=np.uint8)
    return gt, parts, maps, confident


def test_hand_case_means_and_shares():
    acc = SeedMassAccumulator()
    acc.update(*_hand_case()[:3], classes=[3, 8], confident=_hand_case()[3])
    rows = {r["region"]: r for r in acc.rows("val")}
    assert rows["part"]["seed_pixels"] == 1 and rows["part"]["seed_mean"] == pytest.approx(1.0)
    # body: class 3 off the part (5 px: 0.5 + 0.5 + 0 + 0 + 0) and class 8's one pixel (0.6)
    assert rows["body"]["seed_pixels"] == 6 and rows["body"]["seed_mean"] == pytest.approx(1.6 / 6)
    # background (4 px, the void pixel excluded) under both present classes' maps: (0.2+0.1) + (0.3+0.3)
    assert rows["background"]["seed_pixels"] == 8
    assert rows["background"]["seed_mean"] == pytest.approx(0.9 / 8)
    # CRF labels: part (0,0) fg; body 6 px: fg (0,1), neutral (1,0), bg (1,1), (2,0), (2,1), fg (2,3)
    assert [rows["part"][k] for k in ("crf_confident_bg", "crf_confident_fg", "crf_neutral")] == [0, 1, 0]
    assert rows["body"]["crf_confident_bg"] == pytest.approx(3 / 6)
    assert rows["body"]["crf_confident_fg"] == pytest.approx(2 / 6)
    assert rows["body"]["crf_neutral"] == pytest.approx(1 / 6)
    # background 4 px: bg at (0,2), (0,3), (1,2); neutral at (2,2)
    assert rows["background"]["crf_confident_bg"] == pytest.approx(3 / 4)
    assert rows["background"]["crf_neutral"] == pytest.approx(1 / 4)


def test_without_crf_labels_shares_are_nan_and_shapes_are_checked():
    gt, parts, maps, _ = _hand_case()
    acc = SeedMassAccumulator()
    acc.update(gt, parts, maps, [3, 8])
    assert all(np.isnan(r["crf_neutral"]) for r in acc.rows("val"))
    with pytest.raises(ValueError, match="shapes differ"):
        acc.update(gt, parts[:, :3], maps, [3])


def test_real_voc_without_part_masks_is_a_clear_error(tmp_path):
    (tmp_path / "SegmentationClass").mkdir()
    with pytest.raises(Exception, match="SegmentationPart.*embedded synthetic"):
        split_rows("val", [], [], tmp_path, "SegmentationClass")
