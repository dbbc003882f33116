"""MS COCO 2014 (Lin et al., ECCV 2014) as a weakly-supervised segmentation dataset (paper step 0).

Layout read (SPEC section 7, "Datasets beyond VOC")::

    <root>/train2014/COCO_train2014_<12-digit id>.jpg    (val2014/ alike)
    <root>/annotations/instances_{train,val}2014.json   instance annotations (polygons, RLE, iscrowd)

The pipeline's stages read VOC layout, so a COCO root is turned once into a VOC-layout *view*
(:func:`write_view`): ``JPEGImages/<id>.jpg`` links to the COCO images (ids are the file stems,
``COCO_val2014_000000000042``, as in the field's id lists), ``Annotations/<id>.xml`` with one
``<object><name>`` per category present (the image-level labels), ``SegmentationClass/<id>.png``
semantic masks rendered with pycocotools, ``ImageSets/Segmentation/<split>.txt`` and the class list
``classes.txt`` / ``classes.csv``.

Conventions (README, "MS COCO 2014"):

* **Labels.** Category ids (1..90 with gaps) map to label indices 1..80 in ascending id order
  (ToCo's mapping; WeakTr keeps the raw ids); 0 background, 255 void. The mapping is written to
  ``classes.csv`` here and to ``results/data/classes.csv``.
* **Image-level labels.** Every category with at least one annotation in the image, crowd
  annotations included (the category is there; only its outline is vague).
* **Overlaps.** Non-crowd instances are painted in descending area, so a smaller object lying on a
  larger one stays visible (the larger one would hide it entirely otherwise); ties keep the
  annotation order.
* **Crowd.** ``iscrowd`` regions not covered by a non-crowd instance are void (255): they hold
  objects of their class, but which pixels is not known.
* **Images without annotations** are left out of the split, listed in ``unannotated_<split>.txt``
  and counted in the log.

The annotation JSON (about 330 MB for train2014) is parsed once into a compact pickle
(:func:`build_annotation_index`, the ``coco_annotation_index`` rule); reloading that takes
seconds (README gives the measured times).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from vitaff.data.classes import CATEGORIES_FILE, CLASSES_FILE, ClassList, write_classes
from vitaff.errors import VitaffError

log = logging.getLogger("vitaff")

SPLITS = ("train2014", "val2014")
IGNORE_INDEX = 255
INDEX_VERSION = 1


class COCODataError(VitaffError, ValueError):
    """A COCO file is missing or inconsistent; the message names the file, the record and the fix."""


def annotation_path(root: str | Path, split: str) -> Path:
    return Path(root) / "annotations" / f"instances_{split}.json"


def image_dir(root: str | Path, split: str) -> Path:
    return Path(root) / split


@dataclass
class AnnotationIndex:
    """The parts of one ``instances_<split>.json`` the pipeline uses, in compact arrays.

    Images: ``image_ids``, ``file_names``, ``heights``, ``widths`` (json order). Annotations, sorted
    by image (CSR layout: image k owns ``ann_start[k]:ann_start[k+1]``): ``ann_category``,
    ``ann_crowd``, ``ann_area``, ``ann_segmentation`` (polygons or RLE, as in the JSON).
    Categories: ``category_ids`` ascending, ``category_names``.
    """

    source: str
    image_ids: np.ndarray
    file_names: list[str]
    heights: np.ndarray
    widths: np.ndarray
    ann_start: np.ndarray
    ann_category: np.ndarray
    ann_crowd: np.ndarray
    ann_area: np.ndarray
    ann_segmentation: list
    category_ids: np.ndarray
    category_names: list[str]
    version: int = INDEX_VERSION

    def classes(self) -> ClassList:
        return ClassList(tuple(self.category_names), tuple(int(i) for i in self.category_ids),
                         source=f"the categories of {self.source}")

    def annotations(self, k: int) -> slice:
        return slice(int(self.ann_start[k]), int(self.ann_start[k + 1]))


def build_annotation_index(json_path: str | Path) -> AnnotationIndex:
    """Parse an ``instances_*.json`` once; check that every annotation names a listed image and a
    listed category (:class:`COCODataError` naming the annotation otherwise)."""
    json_path = Path(json_path)
    if not json_path.is_file():
        raise COCODataError(f"COCO annotation file {json_path} not found; dataset.root must hold "
                            "annotations/instances_<split>.json (split names train2014 / val2014)")
    try:
        with open(json_path, "rb") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise COCODataError(f"cannot parse {json_path}: {err}; re-extract it from annotations_trainval2014.zip") from err
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise COCODataError(f"{json_path} has no {key!r} list; is it an instances_*.json file?")
    images, anns, cats = data["images"], data["annotations"], data["categories"]
    image_ids = np.array([im["id"] for im in images], dtype=np.int64)
    row_of = {int(i): k for k, i in enumerate(image_ids)}
    cats = sorted(cats, key=lambda c: c["id"])
    cat_ids = np.array([c["id"] for c in cats], dtype=np.int64)
    label_of = {int(c): k + 1 for k, c in enumerate(cat_ids)}
    rows = np.empty(len(anns), dtype=np.int64)
    category = np.empty(len(anns), dtype=np.uint8 if len(cats) < 255 else np.int32)
    for n, ann in enumerate(anns):
        row = row_of.get(int(ann["image_id"]))
        if row is None:
            raise COCODataError(f"{json_path}: annotation {ann.get('id')} is for image id {ann['image_id']}, which "
                                "the file's images list lacks; restore the image record or drop the annotation")
        label = label_of.get(int(ann["category_id"]))
        if label is None:
            raise COCODataError(f"{json_path}: annotation {ann.get('id')} has category_id {ann['category_id']}, which "
                                f"the file's categories list lacks (ids {cat_ids.min()}..{cat_ids.max()}); "
                                "add the category or drop the annotation")
        rows[n], category[n] = row, label
    order = np.argsort(rows, kind="stable")
    counts = np.bincount(rows, minlength=len(images))
    return AnnotationIndex(
        source=str(json_path),
        image_ids=image_ids,
        file_names=[im["file_name"] for im in images],
        heights=np.array([im["height"] for im in images], dtype=np.int32),
        widths=np.array([im["width"] for im in images], dtype=np.int32),
        ann_start=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        ann_category=category[order],
        ann_crowd=np.array([anns[n].get("iscrowd", 0) for n in order], dtype=bool),
        ann_area=np.array([anns[n].get("area", 0.0) for n in order], dtype=np.float64),
        ann_segmentation=[anns[n]["segmentation"] for n in order],
        category_ids=cat_ids,
        category_names=[c["name"] for c in cats],
    )


def save_annotation_index(index: AnnotationIndex, path: str | Path) -> None:
    from vitaff.store import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        pickle.dump(index, f, protocol=pickle.HIGHEST_PROTOCOL)


def load_annotation_index(path: str | Path) -> AnnotationIndex:
    path = Path(path)
    with open(path, "rb") as f:
        index = pickle.load(f)
    if not isinstance(index, AnnotationIndex) or index.version != INDEX_VERSION:
        raise COCODataError(f"{path} is not a current annotation index; delete it and rerun (the "
                            "coco_annotation_index rule rebuilds it)")
    return index


def render_mask(index: AnnotationIndex, k: int) -> np.ndarray:
    """Semantic mask of image row ``k``: H x W uint8, label indices, 255 on uncovered crowd regions.

    pycocotools turns every polygon / RLE into a binary mask (``frPyObjects`` + ``merge`` +
    ``decode``, what ``COCO.annToMask`` does); painting order and crowd rule: module docstring.
    """
    from pycocotools import mask as mask_utils

    h, w = int(index.heights[k]), int(index.widths[k])
    out = np.zeros((h, w), dtype=np.uint8)
    span = index.annotations(k)
    crowd = np.zeros((h, w), dtype=bool)
    objects = [(float(a), j) for j, a in enumerate(index.ann_area[span], start=span.start)]
    for _, j in sorted(objects, key=lambda item: -item[0]):  # stable: ties keep annotation order
        segm = index.ann_segmentation[j]
        if isinstance(segm, list):  # polygons
            rle = mask_utils.merge(mask_utils.frPyObjects(segm, h, w)) if segm else None
        elif isinstance(segm.get("counts"), list):  # uncompressed RLE (crowd annotations)
            rle = mask_utils.frPyObjects(segm, h, w)
        else:
            rle = segm
        if rle is None:
            continue
        binary = mask_utils.decode(rle).astype(bool)
        if binary.shape != (h, w):
            raise COCODataError(f"{index.source}: an annotation of {index.file_names[k]} is "
                                f"{binary.shape[1]}x{binary.shape[0]}, its image {w}x{h}")
        if index.ann_crowd[j]:
            crowd |= binary
        else:
            out[binary] = index.ann_category[j]
    out[crowd & (out == 0)] = IGNORE_INDEX
    return out


_ID_LINE = re.compile(r"^(?:.*?(\d+))(?:\.jpg)?$")


def read_id_list(path: str | Path) -> list[int]:
    """Image ids of an id-list file: one per line, as a number (``42``) or a file stem / name
    (``COCO_val2014_000000000042[.jpg]``); blank lines and ``#`` comments skipped."""
    path = Path(path)
    if not path.is_file():
        raise COCODataError(f"id list {path} not found (config key dataset.id_lists)")
    ids = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip().split()[0] if line.strip() else ""
        if not line or line.startswith("#"):
            continue
        match = _ID_LINE.match(Path(line).name)
        if not match:
            raise COCODataError(f"{path}:{n}: {line!r} is not a COCO image id or file name")
        ids.append(int(match.group(1)))
    if not ids:
        raise COCODataError(f"id list {path} lists no image ids")
    return list(dict.fromkeys(ids))


def _annotation_xml(image_id: str, names: list[str], h: int, w: int) -> str:
    objects = "".join(f"\t<object>\n\t\t<name>{escape(n)}</name>\n\t</object>\n" for n in names)
    return (f"<annotation>\n\t<filename>{image_id}.jpg</filename>\n\t<size>\n\t\t<width>{w}</width>\n"
            f"\t\t<height>{h}</height>\n\t\t<depth>3</depth>\n\t</size>\n{objects}</annotation>\n")


def select_rows(index: AnnotationIndex, split: str, id_list: str | None) -> tuple[list[int], list[str]]:
    """Rows of the split's images to use (in id order) and the stems of the images left out for
    having no annotation. ``id_list`` restricts the split; an id it names that the split's
    annotation file lacks is an error."""
    rows = np.argsort(index.image_ids, kind="stable")
    if id_list:
        wanted = read_id_list(id_list)
        row_of = {int(i): k for k, i in enumerate(index.image_ids)}
        missing = [i for i in wanted if i not in row_of]
        if missing:
            raise COCODataError(f"id list {id_list} names image id {missing[0]} ({len(missing)} in all), which "
                                f"{index.source} lacks; is it a list of {split} ids?")
        rows = np.array(sorted(row_of[i] for i in wanted), dtype=np.int64)
    counts = np.diff(index.ann_start)
    keep = [int(k) for k in rows if counts[k] > 0]
    empty = [Path(index.file_names[k]).stem for k in rows if counts[k] == 0]
    return keep, empty


def _render_rows(job) -> list[tuple[str, list[int]]]:
    """Worker: masks + XML of some rows of one split (module-level so a process pool can run it)."""
    from PIL import Image

    from vitaff.data.voc import voc_colormap

    index_path, rows, out = job
    index = _worker_index(index_path)
    out = Path(out)
    palette = voc_colormap().reshape(-1).tolist()
    done = []
    for k in rows:
        stem = Path(index.file_names[k]).stem
        mask = render_mask(index, k)
        image = Image.fromarray(mask, mode="P")
        image.putpalette(palette)
        image.save(out / "SegmentationClass" / f"{stem}.png", format="PNG")
        labels = sorted({int(c) for c in index.ann_category[index.annotations(k)]})
        done.append((stem, labels))
    return done


_WORKER_CACHE: dict = {}


def _worker_index(path: str) -> AnnotationIndex:
    if path not in _WORKER_CACHE:
        _WORKER_CACHE.clear()
        _WORKER_CACHE[path] = load_annotation_index(path)
    return _WORKER_CACHE[path]


def write_view(root: str | Path, indexes: dict[str, str | Path], out: str | Path,
               id_lists: dict[str, str] | None = None, threads: int = 1) -> dict:
    """Write the VOC-layout view of the COCO root at ``out`` (whole, or nothing: it is filled under
    ``<out>.partial`` and renamed). ``indexes``: split -> annotation index pickle. Returns the
    summary written to ``<out>/prepared.json``."""
    from vitaff.store import writing_dir

    id_lists = id_lists or {}
    unknown = sorted(set(id_lists) - set(indexes))
    if unknown:
        raise COCODataError(f"config key dataset.id_lists names split {unknown[0]!r}, which is not one of the "
                            f"splits the run uses ({', '.join(sorted(indexes))})")
    root = Path(root).resolve()
    loaded = {split: load_annotation_index(path) for split, path in indexes.items()}
    classes = None
    for split, index in loaded.items():
        split_classes = index.classes()
        if classes is not None and (split_classes.names, split_classes.category_ids) != (
                classes.names, classes.category_ids):
            raise COCODataError(f"{index.source} lists other categories than the other split's; both "
                                "annotation files must come from the same COCO release")
        classes = classes or split_classes
    summary = {"root": str(root), "classes": classes.num_fg, "splits": {}}
    with writing_dir(out) as tmp:
        for sub in ("JPEGImages", "Annotations", "SegmentationClass", "ImageSets/Segmentation"):
            (tmp / sub).mkdir(parents=True)
        (tmp / CLASSES_FILE).write_text("".join(f"{n}\n" for n in classes.names))
        write_classes(classes, tmp / CATEGORIES_FILE)
        for split, index in loaded.items():
            rows, empty = select_rows(index, split, id_lists.get(split))
            images = image_dir(root, split)
            present = set(os.listdir(images)) if images.is_dir() else set()
            for k in rows:
                if index.file_names[k] not in present:
                    raise COCODataError(f"image {images / index.file_names[k]} (id {index.image_ids[k]} of "
                                        f"{index.source}) not found; extract {split}.zip into {root}")
            chunks = [rows[i:i + 256] for i in range(0, len(rows), 256)]
            jobs = [(str(Path(indexes[split]).resolve()), chunk, str(tmp)) for chunk in chunks]
            if threads > 1 and len(jobs) > 1:
                from concurrent.futures import ProcessPoolExecutor

                with ProcessPoolExecutor(threads) as pool:
                    results = [r for part in pool.map(_render_rows, jobs) for r in part]
            else:
                results = [r for job in jobs for r in _render_rows(job)]
            for k, (stem, labels) in zip(rows, results):
                os.symlink(images / index.file_names[k], tmp / "JPEGImages" / f"{stem}.jpg")
                names = [classes.names[c - 1] for c in labels]
                (tmp / "Annotations" / f"{stem}.xml").write_text(
                    _annotation_xml(stem, names, int(index.heights[k]), int(index.widths[k])))
            ids = sorted(stem for stem, _ in results)
            (tmp / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
            (tmp / f"unannotated_{split}.txt").write_text("".join(f"{i}\n" for i in empty))
            log.info("%s: %d images with annotations in the view, %d without any annotation skipped (listed in "
                     "unannotated_%s.txt)%s", split, len(ids), len(empty), split,
                     f"; restricted by {id_lists[split]}" if split in id_lists else "")
            summary["splits"][split] = {"images": len(ids), "unannotated": len(empty),
                                        "id_list": id_lists.get(split)}
        (tmp / "prepared.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return summary
