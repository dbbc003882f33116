"""Seed sources and the evaluation protocol (SPEC 8): multi-scale ViT seeds, CAM seeds of the CNN
baseline, the per-method table and the background-threshold curve."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from vitaff.cam import CAMNet, cam_seeds, scaled_size
from vitaff.explain import METHODS, explain_classes
from vitaff.models import create_model
from vitaff.seeds import class_seeds, seed_chain, token_stride
from vitaff.stages.seed_methods import gather
from vitaff.stages.seed_threshold_curve import curve, curve_table, thresholds

torch.set_num_threads(1)

PSA_SCALES = [1.0, 0.5, 1.5, 2.0]


def _images(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (40, 56, 3), dtype=np.uint8), rng.integers(0, 255, (33, 30, 3), dtype=np.uint8)]


def _single_scale_before(model, images, classes, img_size, method, cube_root):
    """The seeds as computed before seeds.scales existed (commit 6a14f83): one input size, the
    image and its flip, each through the chain, averaged."""
    from vitaff.classifier import normalise, resize, to_tensor

    x = torch.stack([normalise(resize(to_tensor(im), img_size)) for im in images])
    x = torch.cat([x, x.flip(-1)])
    targets = [[c - 1 for c in cls] for cls in classes] * 2
    grids = explain_classes(model, x, targets, method=method, start_layer=0)
    out = []
    for i, image in enumerate(images):
        size = image.shape[:2]
        a = seed_chain(grids[i], tuple(x.shape[-2:]), size, cube_root)
        b = seed_chain(grids[i + len(images)], tuple(x.shape[-2:]), size, cube_root)
        out.append((a + b.flip(-1)) / 2)
    return out


@pytest.mark.parametrize("method", ["transformer_attribution", "rollout"])
def test_scale_one_is_bit_identical_to_the_single_scale_seeds(method):
    torch.manual_seed(0)
    model = create_model("vit_hybrid_synth", num_classes=20, img_size=64).eval()
    images, classes = _images(), [[2, 7], [11]]
    got = class_seeds(model, images, classes, 64, "cpu", method=method, start_layer=0, flip=True, cube_root=True,
                      scales=[1.0])
    want = _single_scale_before(model, images, classes, 64, method, True)
    for g, w in zip(got, want):
        assert torch.equal(g, w)


@pytest.mark.parametrize("name", ["vit_hybrid_synth", "vit_synth_tiny"])
def test_multi_scale_seeds_run_and_resample_the_position_embedding(name, monkeypatch):
    """psa's scales with flips: every pass at its own token grid (the position embedding resampled
    by timm's resample_abs_pos_embed), maps in [0, 1] at image size, the model left as it was."""
    import timm.layers

    torch.manual_seed(0)
    model = create_model(name, num_classes=20, img_size=64).eval()
    grids = []
    real = timm.layers.resample_abs_pos_embed

    def spy(pos, new_size, old_size, **kw):
        grids.append(tuple(new_size))
        return real(pos, new_size, old_size, **kw)

    monkeypatch.setattr(timm.layers, "resample_abs_pos_embed", spy)
    images, classes = _images(1), [[3], [4, 9]]
    got = class_seeds(model, images, classes, 64, "cpu", start_layer=0, flip=True, cube_root=True, scales=PSA_SCALES)
    stride = token_stride(model)
    assert stride == 8  # both embedded models: 8 px per token
    # scale 1.0 needs no resampling; the others at 32, 96 and 128 px
    assert sorted(set(grids)) == sorted({(s // stride, s // stride) for s in (32, 96, 128)})
    assert not model.dynamic_img_size
    for g, image, cls in zip(got, images, classes):
        assert g.shape == (len(cls), *image.shape[:2])
        assert torch.isfinite(g).all() and g.min() >= 0 and g.max() <= 1
    one = class_seeds(model, images, classes, 64, "cpu", start_layer=0, flip=True, cube_root=True)
    assert not all(torch.equal(a, b) for a, b in zip(got, one))  # the other scales count


def test_scaled_size():
    assert scaled_size(448, 1.0, 16) == 448
    assert scaled_size(448, 0.5, 16) == 224
    assert scaled_size(448, 1.5, 16) == 672
    assert scaled_size(100, 0.3, 16) == 32  # rounded to the token stride
    assert scaled_size(20, 0.25, 16) == 16  # never below one token


def test_cam_logits_are_the_pooled_class_activation_maps():
    """GAP then the 1x1 classifier = the classifier on every cell, then GAP (the CAM identity)."""
    torch.manual_seed(0)
    model = CAMNet("resnet10t").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits = model(x)
        per_cell = model.classifier(model.backbone(x))
    assert per_cell.shape[-2:] == (4, 4)  # output stride 16
    torch.testing.assert_close(logits, per_cell.mean((2, 3)), rtol=1e-5, atol=1e-5)
    assert (model.cam(x) >= 0).all()


def test_cam_seeds_are_max_normalised_sums_over_passes():
    torch.manual_seed(0)
    model = CAMNet("resnet10t").eval()
    images, classes = _images(2), [[1, 6], []]
    one = cam_seeds(model, images, classes, 64, "cpu", scales=[1.0], flip=True)
    assert one[0].shape == (2, 40, 56) and one[1].shape == (0, 33, 30)
    peak = one[0].flatten(1).amax(1)
    assert torch.all((peak > 0.99) & (peak <= 1))
    # summing the same pass twice and normalising is the same map: normalisation after the sum
    # (up to psa's 1e-5 in the denominator, relative to this random network's small peak)
    twice = cam_seeds(model, images, classes, 64, "cpu", scales=[1.0, 1.0], flip=True)
    torch.testing.assert_close(twice[0], one[0], rtol=1e-3, atol=1e-5)
    # the flip pass is flipped back: a mirrored image gives the mirrored seeds
    mirrored = cam_seeds(model, [images[0][:, ::-1]], classes[:1], 64, "cpu", scales=[1.0], flip=True)
    torch.testing.assert_close(mirrored[0], one[0].flip(-1), rtol=1e-4, atol=1e-5)
    multi = cam_seeds(model, images, classes, 64, "cpu", scales=PSA_SCALES, flip=True)
    assert multi[0].shape == one[0].shape and not torch.equal(multi[0], one[0])


def test_every_seed_method_is_accepted_by_the_schema():
    from vitaff.config import load_schema

    schema = load_schema()["definitions"]
    assert set(schema["seeds"]["properties"]["method"]["enum"]) == set(METHODS) | {"cam"}


def test_gather_puts_the_method_first_in_the_given_order():
    a = pd.DataFrame({"stage": ["seeds", "crf"], "split": ["val", "val"], "mIoU": [1.0, 2.0]})
    b = a.assign(mIoU=[3.0, 4.0])
    out = gather(["rollout", "cam"], [a, b])
    assert list(out.columns) == ["method", "stage", "split", "mIoU"]
    assert list(out["method"]) == ["rollout", "rollout", "cam", "cam"]
    assert list(out["mIoU"]) == [1.0, 2.0, 3.0, 4.0]


def test_thresholds_cover_the_range_and_the_fixed_value():
    t = thresholds(0.6, 0.01, 0.2)
    assert len(t) == 61 and t[0] == 0 and t[-1] == pytest.approx(0.6)
    t = thresholds(0.6, 0.05, 0.23)
    assert 0.23 in t and len(t) == 14


class _Reader:
    def __init__(self, maps, classes):
        self.ids, self.sizes, self.classes = ["a"], [maps.shape[-2:]], [classes]
        self._maps = maps

    def read(self, k, name):
        return self._maps

    def read_present(self, k, name):  # the stores hold the image's present classes, in its order
        return self._maps[: len(self.classes[k])]


def test_curve_scores_each_threshold_and_marks_the_best(tmp_path):
    """One foreground class with seed values 0.1 (background pixels) and 0.5 (object): thresholds
    in [0.1, 0.5) are perfect, others are not; the best is one of them."""
    from PIL import Image

    gt = np.zeros((4, 4), np.uint8)
    gt[:, 2:] = 3
    (tmp_path / "SegmentationClass").mkdir()
    Image.fromarray(gt).save(tmp_path / "SegmentationClass" / "a.png")
    maps = np.zeros((2, 4, 4), np.float32)  # class 3's map, then a padding channel the curve must not read
    maps[0] = np.where(gt == 3, 0.5, 0.1)
    maps[1] = 1.0
    values = thresholds(0.6, 0.05, 0.2)
    accs = curve([_Reader(maps, [3])], {"a"}, tmp_path, "SegmentationClass", values)
    miou = [100 * float(np.nanmean(a.iou())) for a in accs]
    table = curve_table(values, miou, 0.2)
    perfect = table[(table.bg_threshold >= 0.1) & (table.bg_threshold < 0.5)]
    assert (perfect.mIoU == 100).all()
    assert (table[table.bg_threshold < 0.1].mIoU < 100).all() and (table[table.bg_threshold >= 0.5].mIoU < 100).all()
    assert table.best.sum() == 1 and table.loc[table.best, "mIoU"].item() == 100
    assert table.fixed.sum() == 1 and table.loc[table.fixed, "bg_threshold"].item() == pytest.approx(0.2)
