"""Shared fixtures: a tiny hand-written VOC2012 directory for reader tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitaff.data.voc import voc_colormap


def write_palette_png(mask: np.ndarray, path: Path) -> None:
    im = Image.fromarray(mask.astype(np.uint8), mode="P")
    im.putpalette(voc_colormap().reshape(-1).tolist())
    im.save(path)


def make_voc(root: Path, ids=("a", "b", "c"), size=(24, 32)) -> Path:
    """A minimal VOC2012 tree: JPEGImages, SegmentationClass, Annotations, ImageSets/Segmentation."""
    voc = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "Annotations", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    h, w = size
    for k, image_id in enumerate(ids):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(voc / "JPEGImages" / f"{image_id}.jpg")
        mask = np.zeros((h, w), np.uint8)
        mask[4:12, 4:12] = 8 + k  # cat, chair, cow ...
        mask[3, 3:13] = 255
        write_palette_png(mask, voc / "SegmentationClass" / f"{image_id}.png")
        name = ["cat", "chair", "cow", "diningtable"][k % 4]
        (voc / "Annotations" / f"{image_id}.xml").write_text(
            f"<annotation><filename>{image_id}.jpg</filename><object><name>{name}</name>"
            "<bndbox><xmin>5</xmin><ymin>5</ymin><xmax>12</xmax><ymax>12</ymax></bndbox></object></annotation>"
        )
    (voc / "ImageSets/Segmentation/train.txt").write_text("\n".join(ids) + "\n")
    return voc


@pytest.fixture
def tiny_voc(tmp_path) -> Path:
    return make_voc(tmp_path)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """OpenMP with several threads on a shared 2-core machine stalls 10-50x; tests use one."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)
