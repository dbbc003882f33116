"""Rule ``random_walk``: refine one shard's seeds with AffinityNet's random walk (paper step 6, SPEC 6).

Per image: affinities of the whole image (padded to the stride, psa; or resized to
``affinity.crop_size``, the study's ``affinity.input: resize``), T = D^-1 W^beta over the radius-limited
graph, 2^logt steps applied to [background (1 - max_c M_c)^bg_power, M_c at class indices],
bilinear upsampling, argmax over background + present classes -> ``labels`` (uint8 VOC indices).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vitaff.affinity_training import image_affinity, load_affinity_model
from vitaff.config import resolve_device
from vitaff.data.loading import image_batches, resolve_workers
from vitaff.random_walk import refine_seeds
from vitaff.stages import _cli
from vitaff.store import ImageShardReader, ImageShardWriter, writing_store


def main(args, params) -> None:
    device = resolve_device(params["device"])
    rw, aff = params["random_walk"], params["affinity"]
    model = load_affinity_model(args.affinitynet, args.classifier, device)
    seeds = ImageShardReader(args.seeds)
    voc = Path(params["voc_root"])
    resized = aff["input"] == "resize"  # the study: walk on the image resized to crop_size
    with writing_store(args.out) as group:
        writer = ImageShardWriter(group, seeds.ids, seeds.sizes, {"labels": (None, "uint8")}, classes=seeds.classes)
        paths = [voc / "JPEGImages" / f"{image_id}.jpg" for image_id in seeds.ids]
        reader = image_batches(paths, 1, resolve_workers(rw["workers"], args.threads, device))
        for k, (image_id, (image,)) in enumerate(zip(tqdm(seeds.ids, desc=f"random walk {Path(args.out).name}",
                                                          mininterval=10), reader)):
            affinity = image_affinity(model, image, aff["radius"], device, resize_to=aff["crop_size"] if resized else None)
            maps = seeds.read_present(k, "maps").astype(np.float32)
            labels = refine_seeds(maps, seeds.classes[k], affinity, stride=aff["feature_stride"], radius=aff["radius"],
                                  beta=rw["beta"], logt=rw["logt"], bg_power=rw["bg_power"], resized=resized,
                                  dtype=getattr(torch, rw["precision"]))
            writer.write(k, "labels", labels)


if __name__ == "__main__":
    p = _cli.parser(__doc__)
    p.add_argument("--seeds", required=True)
    p.add_argument("--classifier", required=True)
    p.add_argument("--affinitynet", required=True)
    p.add_argument("--out", required=True)
    _cli.run(main, p)
