"""Rule ``seeds``: class-wise seeds of one shard of a split -> zarr (+ PNG previews).

``seeds.method``: one of the ViT explanation methods (:data:`vitaff.explain.METHODS`, the
classifier's maps through :func:`vitaff.seeds.class_seeds`) or ``cam`` (the CNN baseline's class
activation maps, :func:`vitaff.cam.cam_seeds`; ``--classifier`` is then the CAM network).

Store layout: ``maps`` N x K x Hmax x Wmax float16, image i's present classes at channels
0..len(classes[i]) - 1 in the order of ``classes[i]`` (K: the most any image of the shard holds,
zero padding after), ``sizes`` N x 2, attributes ``ids`` and ``classes`` (label indices present per
image, :mod:`vitaff.data.classes`).
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
from vitaff.seeds import class_seeds, release_large_blocks, seed_labels
from vitaff.stages import _cli
from vitaff.data.index import read_index
from vitaff.store import ImageShardWriter, present_channels, save_png, shard_slice, writing_store
from vitaff.viz import blend_labels, overlay, panel_row


def preview(image: np.ndarray, maps: np.ndarray, classes, bg_threshold: float) -> Image.Image:
    panels = [image, blend_labels(image, seed_labels(maps, classes, bg_threshold))]
    panels += [overlay(image, m) for m in maps]
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
        writer = ImageShardWriter(group, ids, sizes, {"maps": (present_channels(classes), "float16")}, classes=classes)
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
                maps = np.asarray(maps, dtype=np.float32)
                writer.write(k, "maps", maps.astype(np.float16))
                if ids[k] in preview_ids:
                    save_png(preview(image, maps, classes[k], sp["bg_threshold"]), preview_dir / f"{ids[k]}.png")


if __name__ == "__main__":
    p = _cli.parser(__doc__)
    p.add_argument("--index", required=True)
    p.add_argument("--classifier", required=True)
    p.add_argument("--shard", type=int, required=True)
    p.add_argument("--shards", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--previews", required=True)
    _cli.run(main, p)
