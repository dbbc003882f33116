"""VOC reader: real layout conventions and a clear error for each kind of bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import write_palette_png
from vitaff.data.voc import (
    VOC_CLASSES, VOCDataError, VOCDataset, labels_from_mask, load_image, parse_split_line, read_split,
    voc_colormap,
)


def test_colormap_matches_voc():
    cmap = voc_colormap()
    assert cmap.shape == (256, 3)
    assert tuple(cmap[0]) == (0, 0, 0)
    assert tuple(cmap[1]) == (128, 0, 0)
    assert tuple(cmap[15]) == (192, 128, 128)
    assert tuple(cmap[255]) == (224, 224, 192)
    assert len(VOC_CLASSES) == 21 and VOC_CLASSES[15] == "person"


def test_reads_images_masks_and_labels(tiny_voc):
    ds = VOCDataset(tiny_voc, "train")
    assert ds.ids == ("a", "b", "c")
    item = ds[1]
    assert item["image"].shape == (24, 32, 3) and item["image"].dtype == np.uint8
    assert item["mask"].shape == (24, 32)
    assert set(np.unique(item["mask"])) == {0, 9, 255}
    assert np.flatnonzero(item["labels"]).tolist() == [8]  # chair = 9 -> position 8


def test_labels_from_annotations_match_masks(tiny_voc):
    seg = VOCDataset(tiny_voc, "train")
    xml = VOCDataset(tiny_voc, "train", label_source="annotations")
    for i in range(len(seg)):
        np.testing.assert_array_equal(seg[i]["labels"], xml[i]["labels"])


def test_labels_from_mask_ignores_void_and_background():
    mask = np.array([[0, 255, 15], [15, 3, 0]], np.uint8)
    assert np.flatnonzero(labels_from_mask(mask)).tolist() == [2, 14]


def test_split_forms(tiny_voc, tmp_path):
    aug = tmp_path / "train_aug.txt"
    aug.write_text("/JPEGImages/a.jpg /SegmentationClassAug/a.png\nb\n\nb\n")
    assert read_split(tiny_voc, str(aug)) == ("a", "b")
    assert parse_split_line("2007_000032") == "2007_000032"


def test_grey_and_cmyk_jpegs_are_converted(tmp_path):
    grey = tmp_path / "grey.jpg"
    Image.fromarray(np.full((8, 9), 100, np.uint8), mode="L").save(grey)
    cmyk = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (9, 8), (0, 255, 255, 0)).save(cmyk)
    g = load_image(grey)
    c = load_image(cmyk)
    assert g.shape == c.shape == (8, 9, 3)
    assert abs(int(g[0, 0, 0]) - 100) <= 2
    assert c[0, 0, 0] > 200 and c[0, 0, 1] < 60  # CMYK (0,255,255,0) is red


def test_missing_root(tmp_path):
    with pytest.raises(VOCDataError, match="does not exist.*dataset.root"):
        VOCDataset(tmp_path / "nowhere", "train")


def test_root_without_jpegimages(tmp_path):
    with pytest.raises(VOCDataError, match="JPEGImages"):
        VOCDataset(tmp_path, "train")


def test_missing_split_file(tiny_voc):
    with pytest.raises(VOCDataError, match=r"split file for 'val' not found.*val\.txt"):
        VOCDataset(tiny_voc, "val")


def test_empty_split(tiny_voc):
    (tiny_voc / "ImageSets/Segmentation/val.txt").write_text("\n\n")
    with pytest.raises(VOCDataError, match="val.txt is empty"):
        VOCDataset(tiny_voc, "val")


def test_id_without_image(tiny_voc):
    (tiny_voc / "ImageSets/Segmentation/val.txt").write_text("a\nghost\n")
    ds = VOCDataset(tiny_voc, "val")
    with pytest.raises(VOCDataError, match="ghost.jpg"):
        ds[1]


def test_truncated_jpeg(tiny_voc):
    path = tiny_voc / "JPEGImages" / "b.jpg"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VOCDataError, match=r"b\.jpg.*truncated"):
        VOCDataset(tiny_voc, "train")[1]


def test_not_an_image(tiny_voc):
    (tiny_voc / "JPEGImages" / "c.jpg").write_text("hello")
    with pytest.raises(VOCDataError, match=r"c\.jpg"):
        VOCDataset(tiny_voc, "train")[2]


def test_mask_size_mismatch(tiny_voc):
    write_palette_png(np.zeros((10, 10), np.uint8), tiny_voc / "SegmentationClass" / "a.png")
    with pytest.raises(VOCDataError, match=r"a\.png is 10x10 .* image is 32x24"):
        VOCDataset(tiny_voc, "train")[0]


def test_mask_values_outside_palette(tiny_voc):
    mask = np.zeros((24, 32), np.uint8)
    mask[0, 0] = 42
    write_palette_png(mask, tiny_voc / "SegmentationClass" / "a.png")
    with pytest.raises(VOCDataError, match=r"a\.png holds class ids \[42\] beyond the class list's 20 classes"):
        VOCDataset(tiny_voc, "train")[0]


def test_rgb_mask_rejected(tiny_voc):
    Image.new("RGB", (32, 24), (128, 0, 0)).save(tiny_voc / "SegmentationClass" / "a.png")
    with pytest.raises(VOCDataError, match="mode 'RGB'"):
        VOCDataset(tiny_voc, "train")[0]


def test_unknown_class_in_annotation(tiny_voc):
    (tiny_voc / "Annotations" / "a.xml").write_text("<annotation><object><name>unicorn</name></object></annotation>")
    with pytest.raises(VOCDataError, match="unicorn"):
        VOCDataset(tiny_voc, "train", label_source="annotations")[0]


# --- train_aug (SBD) layout -------------------------------------------------------------------

def _with_train_aug(voc, ids=("a", "b", "c"), aug_only=("c",), psa_form=True):
    (voc / "ImageSets/SegmentationAug").mkdir(parents=True, exist_ok=True)
    lines = [f"/JPEGImages/{i}.jpg /SegmentationClassAug/{i}.png" if psa_form else i for i in ids]
    (voc / "ImageSets/SegmentationAug/train_aug.txt").write_text("\n".join(lines) + "\n")
    (voc / "SegmentationClassAug").mkdir(exist_ok=True)
    for i in aug_only:
        (voc / "SegmentationClass" / f"{i}.png").rename(voc / "SegmentationClassAug" / f"{i}.png")
    return voc


def test_train_aug_reads_sbd_masks_where_the_official_one_is_missing(tiny_voc):
    from vitaff.data.voc import VOCDataset

    voc = _with_train_aug(tiny_voc)
    ds = VOCDataset(voc, "train_aug", "segmentation", "SegmentationClass", "SegmentationClassAug")
    assert ds.ids == ("a", "b", "c")
    assert ds.mask_path("a").parent.name == "SegmentationClass"
    assert ds.mask_path("c").parent.name == "SegmentationClassAug"
    assert ds[2]["labels"].nonzero()[0].tolist() == [9]  # cow (VOC 10) from the SBD mask


def test_missing_train_aug_list_says_where_to_get_it(tiny_voc):
    from vitaff.data.voc import VOCDataError, VOCDataset

    with pytest.raises(VOCDataError, match=r"train_aug\.txt.*SBD.*dataset\.train_split: train"):
        VOCDataset(tiny_voc, "train_aug", "annotations")


def test_missing_sbd_masks_say_where_to_get_them_and_the_fallbacks(tiny_voc):
    from vitaff.data.voc import VOCDataError, VOCDataset
    from vitaff.stages.dataset_index import build_index

    voc = _with_train_aug(tiny_voc)
    import shutil
    shutil.rmtree(voc / "SegmentationClassAug")
    ds = VOCDataset(voc, "train_aug", "segmentation", "SegmentationClass", "SegmentationClassAug")
    with pytest.raises(VOCDataError, match=r"SegmentationClassAug.*SBD.*label_source: annotations.*train_split: train"):
        build_index(ds)
    # labels from the annotations need no SBD masks: the id is indexed without one
    index = build_index(VOCDataset(voc, "train_aug", "annotations", "SegmentationClass", "SegmentationClassAug"))
    assert index["has_mask"].tolist() == [True, True, False]


def test_label_png_roundtrip_is_a_voc_palette_png(tmp_path):
    from vitaff.data.voc import load_mask, save_label_png

    labels = np.array([[0, 1, 15], [20, 7, 0]], np.uint8)
    save_label_png(labels, tmp_path / "x.png")
    with Image.open(tmp_path / "x.png") as im:
        assert im.mode == "P"
        assert im.getpalette()[15 * 3:16 * 3] == [192, 128, 128]
    assert np.array_equal(load_mask(tmp_path / "x.png"), labels)
