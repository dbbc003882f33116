"""Cost of indexing COCO instance annotations at the real size (README, "MS COCO 2014").

Writes an ``instances_train2014.json`` of COCO train2014's size (82,783 images, 604,907
annotations, 80 categories with COCO's gapped ids; polygons of 8-40 vertices, 1 % crowd RLE,
about 330 MB as the real file) into a temporary directory, then measures the one-time parse
(:func:`vitaff.data.coco.build_annotation_index`), the save and the reload of the compact index,
in CPU seconds (the machine may be shared) and wall seconds, and the file sizes. Deletes the files.

    python bench/coco_index.py [--images 82783 --annotations 604907]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

# COCO 2014's 80 category ids (1..90 with gaps).
COCO_IDS = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]


def write_json(path: Path, n_images: int, n_anns: int, seed: int = 0) -> None:
    """Streamed out (the object would not need to fit in memory twice)."""
    rng = np.random.default_rng(seed)
    owner = np.sort(rng.integers(0, n_images, n_anns))
    with open(path, "w") as f:
        f.write('{"info": {"year": 2014}, "licenses": [], "images": [')
        f.write(",".join(json.dumps({"id": int(9 + 7 * k), "file_name": f"COCO_train2014_{9 + 7 * k:012d}.jpg",
                                     "height": 480, "width": 640, "license": 1}) for k in range(n_images)))
        f.write('], "annotations": [')
        for n in range(n_anns):
            crowd = rng.random() < 0.01
            if crowd:
                counts = rng.integers(1, 400, int(rng.integers(40, 400))).tolist()
                segm = {"counts": counts, "size": [480, 640]}
            else:
                k = int(rng.integers(8, 40))
                cx, cy, r = rng.uniform(50, 590), rng.uniform(50, 430), rng.uniform(5, 50)
                t = np.sort(rng.uniform(0, 2 * np.pi, k))
                pts = np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1).round(2).reshape(-1).tolist()
                segm = [pts]
            ann = {"segmentation": segm, "area": float(rng.uniform(10, 5000)), "iscrowd": int(crowd),
                   "image_id": int(9 + 7 * owner[n]), "bbox": [1.0, 2.0, 3.0, 4.0],
                   "category_id": int(COCO_IDS[int(rng.integers(0, 80))]), "id": n + 1}
            f.write(("," if n else "") + json.dumps(ann))
        f.write('], "categories": [')
        f.write(",".join(json.dumps({"id": c, "name": f"class{c}", "supercategory": "s"}) for c in COCO_IDS))
        f.write("]}")


def timed(fn, *args):
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn(*args)
    return out, time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    from vitaff.data.coco import build_annotation_index, load_annotation_index, save_annotation_index

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--images", type=int, default=82783)
    p.add_argument("--annotations", type=int, default=604907)
    p.add_argument("--dir", default=None, help="where to write the temporary files (default: the system's)")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="coco-index-", dir=args.dir))
    try:
        path = tmp / "instances_train2014.json"
        _, cpu, wall = timed(write_json, path, args.images, args.annotations)
        print(f"generated {path.stat().st_size / 1e6:.0f} MB JSON in {cpu:.0f} CPU-s")
        index, cpu, wall = timed(build_annotation_index, path)
        print(f"parse + index: {cpu:.1f} CPU-s, {wall:.1f} s wall ({len(index.image_ids)} images, "
              f"{len(index.ann_category)} annotations)")
        _, cpu, wall = timed(save_annotation_index, index, tmp / "index.pkl")
        print(f"save index: {cpu:.1f} CPU-s, {wall:.1f} s wall, {(tmp / 'index.pkl').stat().st_size / 1e6:.0f} MB")
        del index
        _, cpu, wall = timed(load_annotation_index, tmp / "index.pkl")
        print(f"reload index: {cpu:.1f} CPU-s, {wall:.1f} s wall")
        print(f"peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.1f} GB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
