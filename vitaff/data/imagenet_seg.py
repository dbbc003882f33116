"""Data of the explainability tests: ImageNet-segmentation (``gtsegs_ijcv.mat``) and ImageNet val.

Chefer, Gur & Wolf, "Transformer Interpretability Beyond Attention Visualization", CVPR 2021
(https://arxiv.org/abs/2012.09838), section 4: the segmentation test runs on the 4,276 images of
Guillaumin, Kuettel & Ferrari, "ImageNet Auto-annotation with Segmentation Propagation", IJCV 2014,
distributed as ``gtsegs_ijcv.mat``; the perturbation test on the ImageNet validation set.

``gtsegs_ijcv.mat`` is a MATLAB v7.3 file, i.e. HDF5 (SPEC section 4). Cell arrays are datasets of
HDF5 object references whose targets live in the ``#refs#`` group; MATLAB writes arrays
column-major, so an H x W x 3 image is stored as 3 x W x H and read back with ``transpose(2, 1, 0)``::

    /value/img   N x 1 references -> image i: f[f['/value/img'][i, 0]]        (3 x W x H uint8)
    /value/gt    N x 1 references -> f[f['/value/gt'][i, 0]]                  (1 x 1 references)
                                  -> mask i: f[f[f['/value/gt'][i, 0]][0, 0]]  (W x H, binary)

:func:`write_gtsegs` writes exactly this layout with h5py (the embedded default), so
:class:`GtSegs` reads the generated set through the same code path as the real file.

ImageNet validation (:func:`read_imagenet_val`): either a folder of class sub-directories (class
index = rank of the sub-directory name, as torchvision's ``ImageFolder``: for WordNet ids this is
the standard 0..999 order) or a folder of images plus a labels file with lines ``filename label``.

:func:`make_embedded_sets` generates the embedded default of both tests from the synthetic scene
renderer (:func:`vitaff.data.synthetic.render_scene`, one object per image): a gtsegs-layout HDF5
file and a single-label classification set in the class-sub-directory layout.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from vitaff.errors import VitaffError

__all__ = [
    "ImageNetSegError",
    "GtSegs",
    "write_gtsegs",
    "read_imagenet_val",
    "load_rgb",
    "EmbeddedSets",
    "make_embedded_sets",
    "read_embedded_info",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".JPEG", ".JPG", ".PNG")
EMBEDDED_INFO = "explain_sets.json"
# Bump when the embedded sets' pixels or files change, so stale sets are regenerated.
EMBEDDED_VERSION = 1


class ImageNetSegError(VitaffError, ValueError):
    """Missing or malformed explainability-test data; the message names the file."""


# ------------------------------------------------------------------------------------------------
# gtsegs_ijcv.mat (MATLAB v7.3 / HDF5)
# ------------------------------------------------------------------------------------------------


class GtSegs:
    """Reader of ``gtsegs_ijcv.mat``: ``len()`` images, ``seg[i] -> (H x W x 3 uint8, H x W uint8 in {0, 1})``.

    The HDF5 file is opened lazily (and reopened after pickling), so a reader can be handed to
    worker processes.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise ImageNetSegError(f"ImageNet-segmentation file {self.path} not found "
                                   "(expected gtsegs_ijcv.mat, MATLAB v7.3 HDF5)")
        self._file = None
        f = self._open()
        for key in ("/value/img", "/value/gt"):
            if key not in f:
                raise ImageNetSegError(f"{self.path}: no dataset {key}; not a gtsegs_ijcv.mat layout")
        n_img, n_gt = f["/value/img"].shape[0], f["/value/gt"].shape[0]
        if n_img != n_gt:
            raise ImageNetSegError(f"{self.path}: {n_img} images but {n_gt} masks")
        self._len = int(n_img)

    def _open(self):
        import h5py

        if self._file is None:
            try:
                self._file = h5py.File(self.path, "r")
            except OSError as err:
                raise ImageNetSegError(f"{self.path} is not an HDF5 (MATLAB v7.3) file: {err}") from None
        return self._file

    def __getstate__(self):
        return {"path": self.path, "_len": self._len, "_file": None}

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= i < self._len:
            raise IndexError(f"image index {i} outside 0..{self._len - 1}")
        f = self._open()
        image = np.array(f[f["/value/img"][i, 0]]).transpose(2, 1, 0)
        mask = np.array(f[f[f["/value/gt"][i, 0]][0, 0]]).transpose(1, 0)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ImageNetSegError(f"{self.path}: image {i} has shape {image.shape} after transposition, "
                                   "expected H x W x 3")
        if mask.shape != image.shape[:2]:
            raise ImageNetSegError(f"{self.path}: mask {i} is {mask.shape}, image {image.shape[:2]}")
        return image.astype(np.uint8), (mask > 0).astype(np.uint8)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def write_gtsegs(path: str | Path, images: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> None:
    """Write images (H x W x 3 uint8) and binary masks (H x W) as MATLAB v7.3 stores the cell arrays
    of ``gtsegs_ijcv.mat`` (see the module docstring), atomically (temporary name, then rename)."""
    import h5py

    from vitaff.store import atomic_path

    if len(images) != len(masks):
        raise ValueError(f"{len(images)} images but {len(masks)} masks")
    ref = h5py.special_dtype(ref=h5py.Reference)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", userblock_size=512) as f:
            refs = f.create_group("#refs#")
            img_refs = np.empty((len(images), 1), dtype=object)
            gt_refs = np.empty((len(images), 1), dtype=object)
            for i, (image, mask) in enumerate(zip(images, masks)):
                image = np.asarray(image, dtype=np.uint8)
                mask = np.asarray(mask)
                if image.ndim != 3 or image.shape[2] != 3 or mask.shape != image.shape[:2]:
                    raise ValueError(f"image {i} {image.shape} / mask {mask.shape}: need H x W x 3 and H x W")
                d_img = refs.create_dataset(f"img_{i}", data=image.transpose(2, 1, 0))
                d_img.attrs["MATLAB_class"] = np.bytes_("uint8")
                d_mask = refs.create_dataset(f"gt_{i}", data=(mask > 0).astype(np.uint8).transpose(1, 0))
                d_mask.attrs["MATLAB_class"] = np.bytes_("uint8")
                inner = refs.create_dataset(f"gtcell_{i}", data=np.array([[d_mask.ref]], dtype=object), dtype=ref)
                inner.attrs["MATLAB_class"] = np.bytes_("cell")
                img_refs[i, 0] = d_img.ref
                gt_refs[i, 0] = inner.ref
            value = f.create_group("value")
            value.attrs["MATLAB_class"] = np.bytes_("struct")
            for name, data in (("img", img_refs), ("gt", gt_refs)):
                d = value.create_dataset(name, data=data, dtype=ref)
                d.attrs["MATLAB_class"] = np.bytes_("cell")
        # MATLAB's v7.3 header in the 512-byte user block (lets MATLAB's load() recognise the file)
        with open(tmp, "r+b") as fh:
            fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created by: vitaff".ljust(116)
                     + b"\x00" * 8 + b"\x00\x02IM")


# ------------------------------------------------------------------------------------------------
# ImageNet validation images
# ------------------------------------------------------------------------------------------------


def read_imagenet_val(root: str | Path, labels_file: str | Path | None = None) -> tuple[list[Path], list[int]]:
    """Image paths and class indices of an ImageNet-style validation set, sorted by path.

    Without ``labels_file``: ``root`` holds one sub-directory per class; the class index is the
    rank of the sub-directory's name. With ``labels_file``: lines ``filename label`` (blank lines
    and ``#`` comments skipped), filenames relative to ``root``.
    """
    root = Path(root)
    if not root.is_dir():
        raise ImageNetSegError(f"ImageNet validation folder {root} not found")
    pairs: list[tuple[Path, int]] = []
    if labels_file is not None:
        labels_file = Path(labels_file)
        if not labels_file.is_file():
            raise ImageNetSegError(f"labels file {labels_file} not found")
        for n, line in enumerate(labels_file.read_text().splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit() or int(parts[1]) < 0:
                raise ImageNetSegError(f"{labels_file}:{n}: expected 'filename label', got {line!r}")
            path = root / parts[0]
            if not path.is_file():
                raise ImageNetSegError(f"{labels_file}:{n}: image {path} not found")
            pairs.append((path, int(parts[1])))
    else:
        classes = sorted(d.name for d in root.iterdir() if d.is_dir())
        if not classes:
            raise ImageNetSegError(f"{root} has no class sub-directories; give explain.imagenet_labels "
                                   "(lines 'filename label') for a flat folder of images")
        for k, name in enumerate(classes):
            for p in sorted((root / name).iterdir()):
                if p.suffix in IMAGE_SUFFIXES and p.is_file():
                    pairs.append((p, k))
    if not pairs:
        raise ImageNetSegError(f"no images found under {root}")
    pairs.sort(key=lambda t: str(t[0]))
    return [p for p, _ in pairs], [c for _, c in pairs]


def load_rgb(path: str | Path) -> np.ndarray:
    """H x W x 3 uint8 RGB (greyscale and CMYK ImageNet files converted)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# ------------------------------------------------------------------------------------------------
# Embedded default: generated single-object sets
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbeddedSets:
    """Sizes and look of the generated sets (config ``explain.embedded``)."""

    seed: int = 0
    n_train: int = 1600
    n_val: int = 100
    n_seg: int = 100
    image_size: int = 64
    seg_size_range: tuple[int, int] = (56, 88)
    classes: tuple[str, ...] = ("bird", "car", "cat", "dog", "person")
    object_scale: tuple[float, float] = (0.5, 0.75)
    part_area: tuple[float, float] = (0.2, 0.3)
    part_tint: float = 1.5

    def synthetic_config(self):
        from vitaff.data.synthetic import SyntheticConfig

        # no void band: gtsegs masks are binary
        return SyntheticConfig(seed=self.seed, classes=tuple(self.classes), object_scale=tuple(self.object_scale),
                               part_area=tuple(self.part_area), part_tint=self.part_tint, void_radius=0,
                               max_objects=1, body_textures="shared", body_tint=0.0)


_SPLIT_CODE = {"train": 0, "val": 1, "seg": 2}


def _render(sets: EmbeddedSets, split: str, index: int, size: tuple[int, int] | None = None):
    from vitaff.data.synthetic import render_scene

    cfg = sets.synthetic_config()
    rng = np.random.default_rng([sets.seed, 7, _SPLIT_CODE[split], index])
    k = index % len(cfg.class_ids)  # balanced classes
    if size is None:
        lo, hi = sets.seg_size_range
        size = tuple(int(v) for v in rng.integers(lo, hi + 1, size=2))
    image, mask, _ = render_scene(rng, cfg, class_ids=[cfg.class_ids[k]], size=size)
    return image, (mask > 0).astype(np.uint8), k


def make_embedded_sets(out_dir: str | Path, sets: EmbeddedSets) -> dict:
    """Generate ``<out_dir>/gtsegs.mat`` (gtsegs layout) and ``<out_dir>/classification/{train,val}/
    <k>_<class>/<n>.png``; write ``<out_dir>/explain_sets.json`` last (the completion mark).

    Each image comes from its own generator ``default_rng([seed, 7, split, index])`` and image
    ``i`` shows one object of class ``i mod K``.
    """
    out = Path(out_dir)
    info_path = out / EMBEDDED_INFO
    info_path.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    names = [f"{k}_{c}" for k, c in enumerate(sets.classes)]
    for split, n in (("train", sets.n_train), ("val", sets.n_val)):
        split_dir = out / "classification" / split
        if split_dir.exists():
            import shutil

            shutil.rmtree(split_dir)
        for name in names:
            (split_dir / name).mkdir(parents=True)
        for i in range(n):
            image, _, k = _render(sets, split, i, (sets.image_size, sets.image_size))
            Image.fromarray(image).save(split_dir / names[k] / f"{i:06d}.png", optimize=False)
    images, masks = [], []
    for i in range(sets.n_seg):
        image, mask, _ = _render(sets, "seg", i)
        images.append(image)
        masks.append(mask)
    write_gtsegs(out / "gtsegs.mat", images, masks)
    info = {"version": EMBEDDED_VERSION, "config": json.loads(json.dumps(sets.__dict__)), "classes": names,
            "gtsegs": "gtsegs.mat", "train": "classification/train", "val": "classification/val",
            "fg_fraction": float(np.mean([m.mean() for m in masks])) if masks else None}
    tmp = info_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, info_path)
    return info


def read_embedded_info(out_dir: str | Path) -> dict:
    path = Path(out_dir) / EMBEDDED_INFO
    if not path.is_file():
        raise ImageNetSegError(f"{path} missing: the embedded explainability sets were not (completely) "
                               "generated; run the explain_embedded_data rule")
    return json.loads(path.read_text())
