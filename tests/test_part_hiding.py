"""Part hiding, the classifier's training-time augmentation for the embedded data."""

import numpy as np
import pytest
import torch

from vitaff.classifier import ClassificationSet, hide_parts
from vitaff.data.synthetic import SyntheticConfig, generate_voc
from vitaff.data.voc import VOCDataError


def _scene():
    image = np.zeros((20, 20, 3), dtype=np.uint8)
    hidden = np.full((20, 20, 3), 200, dtype=np.uint8)
    parts = np.zeros((20, 20), dtype=np.uint8)
    parts[2:5, 2:5] = 1
    parts[12:16, 12:16] = 2
    parts[0, 19] = 255  # void never counts as a part
    return image, hidden, parts


def test_hide_parts_probability_0_and_1():
    image, hidden, parts = _scene()
    assert np.array_equal(hide_parts(image, hidden, parts, 0.0), image)
    out = hide_parts(image, hidden, parts, 1.0)
    changed = (out != image).any(-1)
    # every part, grown by one pixel (the anti-aliased rim), and nothing else
    expect = np.zeros((20, 20), bool)
    expect[1:6, 1:6] = True
    expect[11:17, 11:17] = True
    assert np.array_equal(changed, expect)
    assert np.array_equal(out[changed], hidden[changed])
    assert image.sum() == 0  # input untouched


def test_hide_parts_draws_once_per_object():
    image, hidden, parts = _scene()
    g = torch.Generator().manual_seed(0)
    hidden_counts = np.zeros(2)
    for _ in range(400):
        out = hide_parts(image, hidden, parts, 0.3, generator=g)
        hidden_counts += [out[3, 3, 0] > 0, out[13, 13, 0] > 0]
    assert np.allclose(hidden_counts / 400, 0.3, atol=0.07)


def test_classification_set_hides_parts_only_when_training(tmp_path):
    from PIL import Image

    from vitaff.classifier import normalise, resize, to_tensor

    generate_voc(tmp_path, SyntheticConfig(seed=1, n_train=3, n_val=1, size_range=(64, 72)))
    voc = tmp_path / "VOCdevkit" / "VOC2012"
    ids, labels = ["9000_000001", "9000_000002"], [[3], [7]]
    plain = ClassificationSet(voc, ids, labels, 64, augment=False, part_hiding=1.0)
    assert plain.part_hiding == 0.0  # eval sets never hide
    image = np.asarray(Image.open(voc / "JPEGImages" / "9000_000001.jpg"))
    hidden = np.asarray(Image.open(voc / "JPEGImagesPartHidden" / "9000_000001.jpg"))
    parts = np.asarray(Image.open(voc / "SegmentationPart" / "9000_000001.png"))
    assert np.allclose(plain[0][0], normalise(resize(to_tensor(image), 64)))
    training = ClassificationSet(voc, ids, labels, 64, augment=True, color_jitter=(0, 0, 0, 0), part_hiding=1.0)
    x = training[0][0]
    expect = normalise(resize(to_tensor(hide_parts(image, hidden, parts, 1.0)), 64))
    assert torch.allclose(x, expect, atol=1e-5) or torch.allclose(x, expect.flip(-1), atol=1e-5)
    assert not torch.allclose(expect, normalise(resize(to_tensor(image), 64)), atol=1e-2)


def test_part_hiding_needs_the_generated_part_files(tmp_path):
    with pytest.raises(VOCDataError, match="part_hiding"):
        ClassificationSet(tmp_path, ["a"], [[3]], 64, augment=True, part_hiding=0.5)
    with pytest.raises(ValueError, match="probability"):
        ClassificationSet(tmp_path, ["a"], [[3]], 64, augment=True, part_hiding=1.5)
    ClassificationSet(tmp_path, ["a"], [[3]], 64, augment=True, part_hiding=0.0)  # real VOC: fine
