"""The embedded synthetic dataset in the two other layouts the pipeline reads (tests, examples).

No paper step. :func:`write_coco_layout` turns a generated VOC-layout set into an MS COCO 2014
root (``train2014/``, ``val2014/``, ``annotations/instances_{train,val}2014.json``) with the real
JSON schema: one annotation per instance, polygons for ordinary instances, uncompressed RLE with
``iscrowd: 1`` for crowd regions, COCO's own category ids (gaps included: person 1, car 3, bird
16, ...) and a category no image holds, plus one image without any annotation.
:func:`write_custom_voc_layout` writes a VOC-layout folder with its own class list
(``classes.txt``, masks re-indexed 1..C) from a set generated with those classes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from vitaff.data.voc import VOC_CLASSES, load_mask, read_split, voc_colormap

# COCO 2014's category ids of the VOC classes the generator can draw (COCO names where they differ).
COCO_CATEGORIES = {"person": (1, "person"), "bicycle": (2, "bicycle"), "car": (3, "car"),
                   "motorbike": (4, "motorcycle"), "aeroplane": (5, "airplane"), "bus": (6, "bus"),
                   "train": (7, "train"), "boat": (9, "boat"), "bird": (16, "bird"), "cat": (17, "cat"),
                   "dog": (18, "dog"), "horse": (19, "horse"), "sheep": (20, "sheep"), "cow": (21, "cow"),
                   "bottle": (44, "bottle"), "chair": (62, "chair"), "sofa": (63, "couch"),
                   "pottedplant": (64, "potted plant"), "diningtable": (67, "dining table"), "tvmonitor": (72, "tv")}
# A category listed in the JSON that no image holds (its IoU column stays empty).
UNUSED_CATEGORY = (90, "toothbrush")


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Andrew's monotone chain over ``N x 2`` (x, y) points, counter-clockwise. Written here because
    no dependency traces polygons (pycocotools only rasterises them; OpenCV would be a new one)."""
    pts = sorted(set(map(tuple, points.tolist())))
    if len(pts) < 3:
        return np.array(pts, dtype=np.float64)

    def half(seq):
        out = []
        for p in seq:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (p[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(p)
        return out

    lower, upper = half(pts), half(reversed(pts))
    return np.array(lower[:-1] + upper[:-1], dtype=np.float64)


def mask_polygon(mask: np.ndarray) -> list[float]:
    """A COCO polygon ``[x1, y1, x2, y2, ...]`` around a binary mask: the convex hull of its pixels'
    corners (the generated objects are convex-ish blobs, so the hull is close to the outline)."""
    ys, xs = np.nonzero(mask)
    corners = np.concatenate([np.stack([xs + dx, ys + dy], 1) for dx in (0, 1) for dy in (0, 1)])
    hull = convex_hull(corners)
    return [round(float(v), 2) for v in hull.reshape(-1)]


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE (crowd annotations): column-major run lengths starting with zeros."""
    flat = np.asarray(mask, dtype=np.uint8).reshape(-1, order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        counts = [0] + counts
    return {"counts": counts, "size": [int(mask.shape[0]), int(mask.shape[1])]}


def write_coco_layout(voc_root: str | Path, out: str | Path, split_map: dict[str, str] | None = None,
                      crowd_every: int = 4, first_id: int = 9) -> dict:
    """Write the generated VOC-layout set at ``voc_root`` as a COCO 2014 root at ``out``.

    ``split_map``: COCO split -> VOC split (default train2014 <- train, val2014 <- val). Image ids
    count up from ``first_id`` in steps of 7 (sparse, as COCO's). Every ``crowd_every``-th image's
    first instance becomes a crowd region; the first image of each split is listed a second time
    under a new id with no annotation. Returns {split: {"images": n, "annotations": m}}.
    """
    split_map = split_map or {"train2014": "train", "val2014": "val"}
    voc_root, out = Path(voc_root), Path(out)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    image_id, ann_id = first_id, 1
    summary = {}
    for coco_split, voc_split in split_map.items():
        (out / coco_split).mkdir(parents=True, exist_ok=True)
        images, anns, used = [], [], set()
        for n, stem in enumerate(read_split(voc_root, voc_split)):
            name = f"COCO_{coco_split}_{image_id:012d}.jpg"
            shutil.copyfile(voc_root / "JPEGImages" / f"{stem}.jpg", out / coco_split / name)
            semantic = load_mask(voc_root / "SegmentationClass" / f"{stem}.png")
            instances = load_mask(voc_root / "SegmentationObject" / f"{stem}.png", num_fg=None)
            h, w = semantic.shape
            images.append({"id": image_id, "file_name": name, "height": h, "width": w, "license": 1,
                           "coco_url": "", "flickr_url": "", "date_captured": "2026-12-03 00:00:00"})
            for k, inst in enumerate(v for v in np.unique(instances) if v not in (0, 255)):
                mask = instances == inst
                values, counts = np.unique(semantic[mask], return_counts=True)
                label = int(values[np.argmax(counts)])
                cat_id = COCO_CATEGORIES[VOC_CLASSES[label]][0]
                used.add(VOC_CLASSES[label])
                ys, xs = np.nonzero(mask)
                bbox = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]
                crowd = k == 0 and n % crowd_every == crowd_every - 1
                anns.append({"id": ann_id, "image_id": image_id, "category_id": cat_id, "iscrowd": int(crowd),
                             "area": float(mask.sum()), "bbox": bbox,
                             "segmentation": uncompressed_rle(mask) if crowd else [mask_polygon(mask)]})
                ann_id += 1
            image_id += 7
            if n == 0:  # the same picture again under a new id, without annotations
                name = f"COCO_{coco_split}_{image_id:012d}.jpg"
                shutil.copyfile(voc_root / "JPEGImages" / f"{stem}.jpg", out / coco_split / name)
                images.append({**images[-1], "id": image_id, "file_name": name})
                image_id += 7
        categories = [{"id": cid, "name": cname, "supercategory": "thing"}
                      for cid, cname in sorted(COCO_CATEGORIES[c] for c in used)]
        categories.append({"id": UNUSED_CATEGORY[0], "name": UNUSED_CATEGORY[1], "supercategory": "thing"})
        data = {"info": {"description": "vitaff synthetic set in COCO 2014 layout", "year": 2026},
                "licenses": [{"id": 1, "name": "generated", "url": ""}],
                "images": images, "annotations": anns, "categories": categories}
        (out / "annotations" / f"instances_{coco_split}.json").write_text(json.dumps(data))
        summary[coco_split] = {"images": len(images), "annotations": len(anns)}
    return summary


def write_custom_voc_layout(voc_root: str | Path, out: str | Path, classes: tuple[str, ...]) -> Path:
    """Copy a VOC-layout set generated with ``classes`` (VOC names) to ``out`` as a dataset with its
    own class list: ``classes.txt`` in that order, masks re-indexed to 1..C, XML unchanged."""
    voc_root, out = Path(voc_root), Path(out)
    shutil.copytree(voc_root, out, ignore=shutil.ignore_patterns("synthetic.json"))
    lut = np.arange(256, dtype=np.uint8)
    lut[1:255] = 0
    for k, name in enumerate(classes, start=1):
        lut[VOC_CLASSES.index(name)] = k
    palette = voc_colormap().reshape(-1).tolist()
    for path in sorted((out / "SegmentationClass").glob("*.png")):
        image = Image.fromarray(lut[load_mask(path)], mode="P")
        image.putpalette(palette)
        image.save(path)
    (out / "classes.txt").write_text("".join(f"{c}\n" for c in classes))
    return out
