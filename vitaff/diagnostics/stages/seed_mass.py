"""Rule ``seed_mass`` (embedded dataset only): seed mass and CRF labels on part, body and background.

Reads the seeds and CRF shards of every scored split plus the generator's ``SegmentationPart/``
masks and writes one row per (split, region) -- see :mod:`vitaff.diagnostics.seed_mass`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from vitaff.data.voc import PART_DIR, load_mask, require_part_masks
from vitaff.diagnostics.seed_mass import SeedMassAccumulator
from vitaff.scoring import parse_inputs
from vitaff.stages import _cli
from vitaff.store import open_shards, write_csv


def split_rows(split: str, seed_paths, crf_paths, voc_root: Path, mask_dir: str) -> list[dict]:
    require_part_masks(voc_root)
    seed_readers, _ = open_shards(seed_paths)
    _, crf_where = open_shards(crf_paths) if crf_paths else (None, {})
    acc = SeedMassAccumulator()
    for reader in seed_readers:
        for k, image_id in enumerate(tqdm(reader.ids, desc=f"seed mass {split}", mininterval=10)):
            size = reader.sizes[k]
            gt = load_mask(voc_root / mask_dir / f"{image_id}.png", size)
            parts = load_mask(voc_root / PART_DIR / f"{image_id}.png", size)
            confident = None
            if image_id in crf_where:
                crf_reader, j = crf_where[image_id]
                confident = crf_reader.read(j, "confident")
            acc.update(gt, parts, reader.read_present(k, "maps").astype(np.float32), reader.classes[k], confident)
    return acc.rows(split)


def main(args, params) -> None:
    by_split: dict[str, dict[str, list[str]]] = {}
    for split, stage, paths in parse_inputs(args.inputs):
        by_split.setdefault(split, {})[stage] = paths
    rows = []
    for split in sorted(by_split):
        stages = by_split[split]
        rows += split_rows(split, stages["seeds"], stages.get("crf", []), Path(params["voc_root"]),
                           params["dataset"]["mask_dir"])
    write_csv(pd.DataFrame(rows).round(4), args.out)


if __name__ == "__main__":
    p = _cli.split_stores_parser(__doc__)
    _cli.run(main, p)
