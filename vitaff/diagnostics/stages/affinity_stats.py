"""Rule ``affinity_stats`` (embedded dataset only): AffinityNet's mean affinity per pair kind.

Reads the seeds shards of every scored split (for the ids and sizes), the trained AffinityNet and
the generator's instance and part masks, and writes one row per (split, pair kind) -- see
:mod:`vitaff.diagnostics.affinity_stats`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from vitaff.diagnostics.affinity_stats import PairAffinityAccumulator
from vitaff.affinity_training import image_affinity, load_affinity_model
from vitaff.config import resolve_device
from vitaff.data.voc import INSTANCE_DIR, PART_DIR, load_image, load_mask, require_part_masks
from vitaff.scoring import parse_inputs
from vitaff.stages import _cli
from vitaff.store import open_shards, write_csv


def split_rows(split: str, seed_paths, model, voc_root: Path, radius: int, stride: int, device) -> list[dict]:
    require_part_masks(voc_root)
    readers, _ = open_shards(seed_paths)
    acc = PairAffinityAccumulator(radius)
    for reader in readers:
        for k, image_id in enumerate(tqdm(reader.ids, desc=f"affinity stats {split}", mininterval=10)):
            size = reader.sizes[k]
            image = load_image(voc_root / "JPEGImages" / f"{image_id}.jpg")
            with torch.no_grad():
                aff = image_affinity(model, image, radius, device)
            acc.update(aff, load_mask(voc_root / INSTANCE_DIR / f"{image_id}.png", size),
                       load_mask(voc_root / PART_DIR / f"{image_id}.png", size), stride)
    return acc.rows(split)


def main(args, params) -> None:
    device = resolve_device(params["device"])
    model = load_affinity_model(args.affinitynet, args.classifier, device)
    aff = params["affinity"]
    rows = []
    for split, stage, paths in parse_inputs(args.inputs):
        if stage == "seeds":
            rows += split_rows(split, paths, model, Path(params["voc_root"]), aff["radius"], model.stride, device)
    write_csv(pd.DataFrame(rows).round(4), args.out)


if __name__ == "__main__":
    p = _cli.split_stores_parser(__doc__)
    p.add_argument("--classifier", required=True)
    p.add_argument("--affinitynet", required=True)
    _cli.run(main, p)
