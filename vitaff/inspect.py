"""Look at one image through every stage: ``python -m vitaff.inspect IMAGE_ID [--out PNG]``.

Panels: image, ground truth, seeds (max over present classes), seed argmax, CRF confident labels
(foreground classes, background 0, neutral 255 in cream), AffinityNet boundary map (mean affinity
of each grid cell to its neighbours; dark = boundary), random-walk labels. Stages not computed yet
are skipped, so it also works on a partial run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch.nn.functional as F
from PIL import Image

from vitaff.data.voc import load_image, load_mask
from vitaff.seeds import seed_labels
from vitaff.store import IncompleteArtifactError, ImageShardReader
from vitaff.viz import blend_labels, colorize, overlay, panel_row


def _find(stage_dir: Path, image_id: str):
    """(reader, index) of the image in any completed shard store under ``stage_dir``, or None."""
    for store in sorted(stage_dir.glob("*/shard_*.zarr")):
        try:
            reader = ImageShardReader(store)
        except IncompleteArtifactError:
            continue
        if image_id in reader.ids:
            return reader, reader.ids.index(image_id)
    return None


def boundary_map(affinity, size) -> np.ndarray:
    """K x h x w affinities -> H x W mean affinity to the neighbours in [0, 1]."""
    valid = (affinity > 0).float().sum(0).clamp_min(1)
    mean = affinity.sum(0) / valid
    up = F.interpolate(mean[None, None], scale_factor=size[2], mode="bilinear", align_corners=False)[0, 0]
    return up[: size[0], : size[1]].cpu().numpy()


def inspect_image(image_id: str, voc_root: Path, results: Path = Path("results"), bg_threshold: float = 0.2,
                  radius: int = 5, device: str = "cpu") -> Image.Image:
    image = load_image(voc_root / "JPEGImages" / f"{image_id}.jpg")
    panels, titles = [image], [image_id]
    mask_path = voc_root / "SegmentationClass" / f"{image_id}.png"
    if mask_path.is_file():
        panels.append(colorize(load_mask(mask_path, num_fg=None)))
        titles.append("ground truth")
    found = _find(results / "seeds", image_id)
    if found:
        reader, k = found
        maps, classes = reader.read_present(k, "maps").astype(np.float32), reader.classes[k]
        top = maps.max(0) if len(maps) else np.zeros(image.shape[:2], np.float32)
        panels += [overlay(image, top), blend_labels(image, seed_labels(maps, classes, bg_threshold))]
        titles += ["seeds (max)", f"seeds argmax (bg {bg_threshold})"]
    found = _find(results / "crf", image_id)
    if found:
        reader, k = found
        panels.append(blend_labels(image, reader.read(k, "confident")))
        titles.append("CRF confident fg/bg")
    model_path, cls_path = results / "models" / "affinitynet.pt", results / "models" / "classifier.pt"
    if model_path.is_file() and cls_path.is_file():
        from vitaff.affinity_training import image_affinity, load_affinity_model

        model = load_affinity_model(model_path, cls_path, device)
        aff = image_affinity(model, image, radius, device)
        panels.append((np.stack([boundary_map(aff, (*image.shape[:2], model.stride))] * 3, -1) * 255).astype(np.uint8))
        titles.append("affinity (mean to neighbours)")
    found = _find(results / "random_walk", image_id)
    if found:
        reader, k = found
        panels.append(blend_labels(image, reader.read(k, "labels")))
        titles.append("random walk")
    return panel_row(panels, titles, height=max(160, image.shape[0]))


def main(argv=None) -> int:
    from vitaff.config import load_config, voc_root

    p = argparse.ArgumentParser(prog="python -m vitaff.inspect", description=__doc__.splitlines()[0])
    p.add_argument("image_id")
    p.add_argument("--config", default="config.yaml")
    p.add_argument("--results", default="results")
    p.add_argument("--out", default=None, help="PNG path (default results/inspect/<id>.png)")
    args = p.parse_args(argv)
    cfg = load_config(args.config)
    root = voc_root(cfg)
    if not (root / "JPEGImages" / f"{args.image_id}.jpg").is_file():
        print(f"error: no image {args.image_id}.jpg under {root / 'JPEGImages'}", file=sys.stderr)
        return 1
    out = Path(args.out or Path(args.results) / "inspect" / f"{args.image_id}.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    inspect_image(args.image_id, root, Path(args.results), cfg["seeds"]["bg_threshold"], cfg["affinity"]["radius"],
                  "cpu").save(out)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
