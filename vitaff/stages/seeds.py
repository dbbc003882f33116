"""Rule ``seeds``: class-wise seeds of one shard of a split -> zarr (+ PNG previews).

``seeds.method``: one of the ViT explanation methods (:data:`vitaff.explain.METHODS`, the
classifier's maps through :func:`vitaff.seeds.class_seeds`) or ``cam`` (the CNN baseline's class
activation maps, :func:`vitaff.cam.cam_seeds`; ``--classifier`` is then the CAM network).

Store layout: ``maps`` N x 20 x Hmax x Wmax float16 (class c at index c-1, zero for absent classes),
``sizes`` N x 2, attributes ``ids`` and ``classes`` (VOC indices present per image).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from vitaff.cam import cam_seeds, load_cam
from vitaff.classifier import load_classifier
from vitaff.config import resolve_device
from vitaff.data.loading import image_batches, resolve_workers
from vitaff.data.voc import NUM_FG_CLASSES
from vitaff.seeds import class_seeds, release_large_blocks, seed_labels, to_full_stack
from vitaff.stages import _cli
from vitaff.data.index import read_index
from vitaff.store import ImageShardWriter, save_png, shard_slice, writing_store
from vitaff.viz import blend_labels, overlay, panel_row


def preview(image: np.ndarray, full: np.ndarray, classes, bg_threshold: float) -> Image.Image:
    panels = [image, blend_labels(image, seed_labels(full, classes, bg_threshold))]
    panels += [overlay(image, full[c - 1]) for c in classes]
    return panel_row(panels, ["image", "seed argmax"] + [f"class {c}" for c in classes])


def main(args, params) -> None:
    _cli.seed_everything(params["seed"])
    release_large_blocks()
    device = resolve_device(params["device"])
    sp = params["seeds"]
    index = read_index(args.index).set_index("id")
    ids = shard_slice(index.index, args.shard, args.shards)
    preview_ids = set(sorted(index.index)[: sp["previews"]])
    if sp["method"] == "cam":
        model = load_cam(args.classifier, device)
    else:
        model = load_classifier(args.classifier, device)
    voc = Path(params["voc_root"])
    sizes = [(index.at[i, "height"], index.at[i, "width"]) for i in ids]
    classes = [index.at[i, "labels"] for i in ids]
    preview_dir = Path(args.previews)
    preview_dir.mkdir(parents=True, exist_ok=True)
    with writing_store(args.out) as group:
        writer = ImageShardWriter(group, ids, sizes, {"maps": (NUM_FG_CLASSES, "float16")}, classes=classes)
        paths = [voc / "JPEGImages" / f"{image_id}.jpg" for image_id in ids]
        reader = image_batches(paths, sp["batch_size"], resolve_workers(sp["workers"], args.threads, device))
        starts = range(0, len(ids), sp["batch_size"])
        for start, images in zip(tqdm(starts, desc=f"seeds shard {args.shard}", mininterval=10), reader):
            batch = list(range(start, min(start + sp["batch_size"], len(ids))))
            if sp["method"] == "cam":
                seeds = cam_seeds(model, images, [classes[k] for k in batch], model.img_size, device,
                                  scales=sp["scales"], flip=sp["flip"])
            else:
                seeds = class_seeds(model, images, [classes[k] for k in batch], model.img_size, device,
                                    method=sp["method"], start_layer=sp["start_layer"], flip=sp["flip"],
                                    cube_root=sp["cube_root"], precision=sp.get("precision", "fp32"),
                                    scales=sp["scales"])
            for k, image, maps in zip(batch, images, seeds):
                full = to_full_stack(maps, classes[k])
                writer.write(k, "maps", full.astype(np.float16))
                if ids[k] in preview_ids:
                    save_png(preview(image, full, classes[k], sp["bg_threshold"]), preview_dir / f"{ids[k]}.png")


if __name__ == "__main__":
    p = _cli.parser(__doc__)
    p.add_argument("--index", required=True)
    p.add_argument("--classifier", required=True)
    p.add_argument("--shard", type=int, required=True)
    p.add_argument("--shards", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--previews", required=True)
    _cli.run(main, p)
