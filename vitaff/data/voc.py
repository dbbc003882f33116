"""PASCAL VOC 2012 reader (Everingham et al., IJCV 2010), for the real devkit and the embedded one.

Layout (SPEC section 7)::

    VOC2012/JPEGImages/<id>.jpg            RGB (grey and CMYK JPEGs are converted)
    VOC2012/SegmentationClass/<id>.png     palette PNG, indices 0..20, 255 = void (read as indices)
    VOC2012/SegmentationClassAug/<id>.png  optional, single-channel index PNGs
    VOC2012/Annotations/<id>.xml           object <name> tags give image-level labels
    VOC2012/ImageSets/Segmentation/{train,val,trainval}.txt

Image-level labels are derived either from the segmentation masks or from the XML annotations, as
psa's ``cls_labels.npy`` does. Every malformed input raises :class:`VOCDataError` naming the file
and what to do about it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from vitaff.data.classes import VOC, ClassList
from vitaff.errors import VitaffError

# PASCAL VOC's own classes: the default class list (vitaff.data.classes has any other).
VOC_CLASSES: tuple[str, ...] = VOC.labels
NUM_CLASSES = len(VOC_CLASSES)  # 21, background included
NUM_FG_CLASSES = NUM_CLASSES - 1
IGNORE_INDEX = 255
CLASS_INDEX = {name: i for i, name in enumerate(VOC_CLASSES)}
LABEL_SOURCES = ("segmentation", "annotations")
# Instance masks: palette PNGs, instance index 1..n (VOC2012's, also written by the embedded generator).
INSTANCE_DIR = "SegmentationObject"
# Not part of VOC, written only by the embedded generator (vitaff.data.synthetic, ``write_parts``):
# the instance index on each object's discriminative part.
PART_DIR = "SegmentationPart"


def voc_colormap(n: int = 256) -> np.ndarray:
    """The standard VOC bit-interleaved colour map: ``n x 3`` uint8.

    Entry 0 = (0,0,0), 1 = (128,0,0), 15 = (192,128,128), 255 = (224,224,192).
    """
    cmap = np.zeros((n, 3), dtype=np.int64)
    c = np.arange(n, dtype=np.int64)
    for j in range(8):
        for ch in range(3):
            cmap[:, ch] |= ((c >> ch) & 1) << (7 - j)
        c = c >> 3
    return cmap.astype(np.uint8)


class VOCDataError(VitaffError, ValueError):
    """A dataset file or directory is missing or malformed; the message names it and the fix."""


def require_part_masks(voc_root: Path) -> None:
    """The part masks the embedded-data diagnostics need, or a clear error."""
    if not (Path(voc_root) / PART_DIR).is_dir():
        raise VOCDataError(f"{Path(voc_root) / PART_DIR} not found: part masks exist only in the embedded synthetic "
                           "dataset (vitaff.data.synthetic, write_parts=True); this diagnostic cannot run on real VOC")


def load_image(path: str | Path, draft: int | tuple[int, int] | None = None) -> np.ndarray:
    """Read an image as H x W x 3 uint8 RGB. Grey, palette and CMYK JPEGs are converted.

    ``draft`` (a side or H x W the image will be resized to): a JPEG at least twice that size in
    both sides is decoded at the largest of 1/2, 1/4, 1/8 scale that stays at least that size
    (``PIL.Image.draft``, DCT-domain scaling), much cheaper than decoding it whole.
    """
    path = Path(path)
    if not path.is_file():
        raise VOCDataError(f"image file missing: {path} (check the split file and JPEGImages/)")
    try:
        with Image.open(path) as im:
            if draft is not None and im.format == "JPEG":
                th, tw = (draft, draft) if isinstance(draft, int) else draft
                if im.height >= 2 * th and im.width >= 2 * tw:
                    im.draft("RGB", (tw, th))
            im.load()  # forces full decoding so truncated files fail here, not later
            rgb = im.convert("RGB")
    except (OSError, UnidentifiedImageError, SyntaxError) as err:
        raise VOCDataError(
            f"cannot read image {path}: {err}. The file is truncated or not an image; "
            "re-extract it from the dataset archive or remove its id from the split file."
        ) from err
    return np.array(rgb, dtype=np.uint8)  # writable: pydensecrf and torch refuse read-only buffers


def load_mask(path: str | Path, expected_hw: tuple[int, int] | None = None,
              num_fg: int | None = NUM_FG_CLASSES) -> np.ndarray:
    """Read a VOC label PNG as H x W uint8 class indices (0..num_fg, 255 void), never via RGB.

    ``num_fg``: the class list's length (VOC's 20 by default); None accepts every index."""
    path = Path(path)
    if not path.is_file():
        raise VOCDataError(f"segmentation mask missing: {path} (is this id in the right split?)")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("P", "L"):
                raise VOCDataError(
                    f"mask {path} has mode {im.mode!r}; VOC masks are palette ('P') or single-channel "
                    "('L') index PNGs. Do not convert masks to RGB."
                )
            mask = np.asarray(im, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, SyntaxError) as err:
        raise VOCDataError(f"cannot read mask {path}: {err}; re-extract it from the dataset archive.") from err
    if expected_hw is not None and mask.shape != tuple(expected_hw):
        raise VOCDataError(
            f"mask {path} is {mask.shape[1]}x{mask.shape[0]} (WxH) but its image is "
            f"{expected_hw[1]}x{expected_hw[0]}; the mask must have its image's size."
        )
    bad = (mask > num_fg) & (mask != IGNORE_INDEX) if num_fg is not None else None
    if bad is not None and bad.any():
        values = sorted(set(np.unique(mask[bad]).tolist()))
        raise VOCDataError(
            f"mask {path} holds class ids {values[:10]} beyond the class list's {num_fg} classes "
            f"(1..{num_fg}, 0 background, {IGNORE_INDEX} void); masks store class indices, not colours: "
            "add the missing classes to dataset.classes (or classes.txt at the dataset root)."
        )
    return mask


def save_label_png(labels: np.ndarray, path: str | Path) -> None:
    """Write an H x W index map (0..20, 255 void) as a VOC palette PNG, the layout of
    ``SegmentationClass/`` (indices read back unchanged by :func:`load_mask`, colours for people)."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise ValueError(f"labels must be an H x W uint8 index map, got {labels.dtype} {labels.shape}")
    image = Image.fromarray(labels, mode="P")
    image.putpalette(voc_colormap().reshape(-1).tolist())
    image.save(path, format="PNG")


def labels_from_mask(mask: np.ndarray, num_fg: int = NUM_FG_CLASSES) -> np.ndarray:
    """num_fg-dim multi-hot image-level label vector (background excluded) from an index mask."""
    present = np.unique(mask)
    present = present[(present > 0) & (present <= num_fg)]
    vec = np.zeros(num_fg, dtype=np.float32)
    vec[present.astype(int) - 1] = 1.0
    return vec


def labels_from_xml(path: str | Path, classes: ClassList = VOC) -> np.ndarray:
    """Multi-hot label vector (one entry per class of ``classes``) from the object <name> tags of a
    VOC annotation XML."""
    path = Path(path)
    if not path.is_file():
        raise VOCDataError(f"annotation missing: {path} (use label_source: segmentation, or restore Annotations/)")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise VOCDataError(f"cannot parse annotation {path}: {err}") from err
    vec = np.zeros(classes.num_fg, dtype=np.float32)
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        index = classes.index(name)
        if index is None:
            shown = classes.names if classes.num_fg <= 25 else (*classes.names[:25], "...")
            raise VOCDataError(f"annotation {path} names class {name!r}, which {classes.source} lacks "
                               f"({', '.join(shown)}); add it to the list or fix the annotation")
        vec[index - 1] = 1.0
    return vec


def parse_split_line(line: str) -> str:
    """An id from a split-file line: a bare id, or psa's ``/JPEGImages/X.jpg /SegmentationClassAug/X.png``."""
    first = line.split()[0]
    return Path(first).stem if ("/" in first or first.endswith(".jpg")) else first


@dataclass(frozen=True)
class VOCDataset:
    """Read access to one split of a VOC2012 directory (``.../VOCdevkit/VOC2012``).

    ``split`` is a name looked up in ``ImageSets/Segmentation/<split>.txt`` (``train_aug`` is also
    looked for in ``ImageSets/SegmentationAug/``), or a path to a split file.
    ``mask_dir`` is ``SegmentationClass`` (default) or ``SegmentationClassAug``; ids without a mask
    there take theirs from ``aug_mask_dir`` when given (SBD's masks of the ``train_aug`` ids).
    """

    root: Path
    split: str
    label_source: str = "segmentation"
    mask_dir: str = "SegmentationClass"
    aug_mask_dir: str | None = None
    classes: ClassList = VOC

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))
        if not self.root.is_dir():
            raise VOCDataError(
                f"VOC root {self.root} does not exist. Set dataset.root in config.yaml to your "
                "VOCdevkit/VOC2012 directory, or to null for the embedded synthetic dataset."
            )
        if not (self.root / "JPEGImages").is_dir():
            raise VOCDataError(
                f"{self.root} has no JPEGImages/ directory; dataset.root must point at VOCdevkit/VOC2012."
            )
        if self.label_source not in LABEL_SOURCES:
            raise VOCDataError(f"label_source {self.label_source!r} is not one of {LABEL_SOURCES}")
        object.__setattr__(self, "ids", read_split(self.root, self.split))

    ids: tuple[str, ...] = field(init=False, default=())

    def image_path(self, image_id: str) -> Path:
        return self.root / "JPEGImages" / f"{image_id}.jpg"

    def mask_path(self, image_id: str) -> Path:
        path = self.root / self.mask_dir / f"{image_id}.png"
        if self.aug_mask_dir and not path.is_file():
            aug = self.root / self.aug_mask_dir / f"{image_id}.png"
            if aug.is_file():
                return aug
        return path

    def annotation_path(self, image_id: str) -> Path:
        return self.root / "Annotations" / f"{image_id}.xml"

    def __len__(self) -> int:
        return len(self.ids)

    def image(self, image_id: str) -> np.ndarray:
        return load_image(self.image_path(image_id))

    def mask(self, image_id: str, expected_hw: tuple[int, int] | None = None) -> np.ndarray:
        return load_mask(self.mask_path(image_id), expected_hw, self.classes.num_fg)

    def has_mask(self, image_id: str) -> bool:
        return self.mask_path(image_id).is_file()

    def labels(self, image_id: str, mask: np.ndarray | None = None) -> np.ndarray:
        if self.label_source == "annotations":
            return labels_from_xml(self.annotation_path(image_id), self.classes)
        if mask is None:
            mask = self.mask(image_id)
        return labels_from_mask(mask, self.classes.num_fg)

    def __getitem__(self, index: int) -> dict:
        image_id = self.ids[index]
        image = self.image(image_id)
        mask = self.mask(image_id, image.shape[:2]) if self.has_mask(image_id) else None
        if mask is None and self.label_source == "segmentation":
            raise self.missing_mask_error(image_id)
        return {"id": image_id, "image": image, "mask": mask, "labels": self.labels(image_id, mask)}

    def missing_mask_error(self, image_id: str) -> VOCDataError:
        """The error for an id whose labels should come from a mask that is not there."""
        if self.aug_mask_dir and not (self.root / self.aug_mask_dir).is_dir():
            return VOCDataError(
                f"no mask for {image_id} in {self.root / self.mask_dir} and no {self.root / self.aug_mask_dir}/ "
                f"directory: the ids of split {self.split!r} outside the official segmentation splits need "
                f"SBD's augmented masks ({SBD_HINT}). Either add them, set dataset.label_source: annotations "
                "(labels from Annotations/*.xml, as psa), or set dataset.train_split: train."
            )
        return VOCDataError(f"no mask {self.mask_path(image_id)} to derive labels from; "
                            "use dataset.label_source: annotations for ids without masks.")


SBD_HINT = ("SegmentationClassAug/ and the 10,582-id train_aug.txt come from SBD, Hariharan et al. 2011, "
            "http://home.bharathh.info/pubs/codes/SBD/download.html, converted to VOC index PNGs as in psa's "
            "and DeepLab's setup instructions")


def split_path(root: Path, split: str) -> Path:
    candidate = Path(split)
    if candidate.suffix == ".txt" and candidate.is_file():
        return candidate
    for sub in ("Segmentation", "SegmentationAug"):
        path = Path(root) / "ImageSets" / sub / f"{split}.txt"
        if path.is_file():
            return path
    if split == "train_aug":
        raise VOCDataError(
            f"split file train_aug.txt not found in {Path(root) / 'ImageSets/SegmentationAug'} nor "
            f"{Path(root) / 'ImageSets/Segmentation'}. {SBD_HINT}. Put the list (bare ids or psa's "
            "'/JPEGImages/X.jpg /SegmentationClassAug/X.png' lines) in ImageSets/SegmentationAug/, or set "
            "dataset.train_split: train to train on the 1,464 official ids."
        )
    raise VOCDataError(
        f"split file for {split!r} not found: looked for {Path(root) / 'ImageSets/Segmentation' / (split + '.txt')}. "
        "Check dataset.train_split / dataset.eval_split in config.yaml."
    )


def read_split(root: str | Path, split: str) -> tuple[str, ...]:
    """Image ids of a split, in file order, duplicates removed."""
    path = split_path(Path(root), split)
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    ids = tuple(dict.fromkeys(parse_split_line(ln) for ln in lines if ln))
    if not ids:
        raise VOCDataError(f"split file {path} is empty; it must list one image id per line.")
    return ids
