"""Rule ``score``: mIoU over the dataset's classes of every stage's labels on every scored split (paper step 7, SPEC 6).

Stages: ``seeds`` (argmax over [bg_threshold, M_c]), ``crf`` (low-alpha dense CRF argmax, the CRF
baseline), ``random_walk`` (AffinityNet refinement, read from the pseudo-label PNGs users train on,
or from the walk's stores when given those: the per-method tables of ``results/seed_methods.csv``).
The eval split is the study's Table 4; the train-score split is the pseudo-label quality that psa
reports (the 1,464 train ids with the official masks, read from the train_aug stores on the real
run). One row per (stage, split), one column per class plus mIoU, all in percent. Confusion
matrices are summed over shards (exact gathering).

The walk with ground-truth affinity (the ``walk_ceiling`` diagnostic) is not scored here: its rows
are in its own ``results/walk_ceiling.csv`` (``used`` marks the configured background power), so the
main result does not wait for it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from vitaff.data.classes import VOC, ClassList, read_classes
from vitaff.data.voc import load_mask
from vitaff.config import ConfigError
from vitaff.data.index import read_index
from vitaff.metrics import ConfusionAccumulator
from vitaff.scoring import STAGES, parse_inputs, score_row
from vitaff.seeds import seed_labels
from vitaff.stages import _cli
from vitaff.store import open_shards, write_csv


def stage_prediction(stage: str, reader, k: int, bg_threshold: float) -> np.ndarray:
    if stage == "seeds":
        return seed_labels(reader.read_present(k, "maps").astype(np.float32), reader.classes[k], bg_threshold)
    if stage == "crf":
        return reader.read(k, "fg")
    return reader.read(k, "labels")


def _predictions(stage: str, paths, ids: list[str], bg_threshold: float, num_fg: int | None = None):
    """(id, size, prediction) for ``ids`` from a stage's shard stores or, for ``random_walk``, a
    pseudo-label PNG directory (the main job) or the walk's own stores (``results/seed_methods.csv``)."""
    if stage == "random_walk" and not str(paths[0]).endswith(".zarr"):
        directory = Path(paths[0])
        for image_id in ids:
            labels = load_mask(directory / f"{image_id}.png", num_fg=num_fg)
            yield image_id, labels.shape, labels
        return
    wanted = set(ids)
    readers, _ = open_shards(paths)
    missing = wanted - {i for r in readers for i in r.ids}
    if missing:
        raise ConfigError(
            f"{len(missing)} ids to score (e.g. {sorted(missing)[0]}) are not in the {stage} stores {paths[0]}...; "
            "dataset.train_score_split must be part of dataset.train_split (train is part of train_aug).")
    for reader in readers:
        for k, image_id in enumerate(reader.ids):
            if image_id in wanted:
                yield image_id, tuple(reader.sizes[k]), stage_prediction(stage, reader, k, bg_threshold)


def score_stage(stage: str, paths, voc_root: Path, mask_dir: str, bg_threshold: float,
                ids: list[str] | None = None, classes: ClassList = VOC) -> tuple[ConfusionAccumulator, int]:
    """Confusion matrix (over ``classes`` and background) of a stage over ``ids`` (default: every id
    in the stores) with a ground-truth mask."""
    if ids is None:
        readers, _ = open_shards(paths)
        ids = [i for r in readers for i in r.ids]
    ids = [i for i in ids if (voc_root / mask_dir / f"{i}.png").is_file()]  # e.g. SBD-only ids are not scored
    acc, n = ConfusionAccumulator(classes.num_labels), 0
    for image_id, size, pred in tqdm(_predictions(stage, paths, ids, bg_threshold, classes.num_fg), total=len(ids),
                                     desc=f"score {stage}", mininterval=10):
        acc.update(load_mask(voc_root / mask_dir / f"{image_id}.png", size, classes.num_fg), pred)
        n += 1
    return acc, n


def main(args, params) -> None:
    rows = []
    voc = Path(params["voc_root"])
    classes = read_classes(args.classes)
    indexes = dict(item.split(":", 1) for item in (args.indexes or []))
    for split, stage, paths in parse_inputs(args.inputs):
        ids = list(read_index(indexes[split])["id"]) if split in indexes else None
        acc, n = score_stage(stage, paths, voc, params["dataset"]["mask_dir"], params["seeds"]["bg_threshold"], ids,
                             classes)
        rows.append(score_row(stage, split, acc, n, classes.labels))
    frame = pd.DataFrame(rows)
    order = {s: i for i, s in enumerate(STAGES)}
    frame = frame.sort_values(["split", "stage"], key=lambda col: col.map(order) if col.name == "stage" else col)
    write_csv(frame.round(2), args.out)



if __name__ == "__main__":
    p = _cli.split_stores_parser(__doc__)
    p.add_argument("--classes", required=True, help="results/data/classes.csv")
    p.add_argument("--indexes", nargs="*", help="split:index.csv of the scored splits (the ids each score counts)")
    _cli.run(main, p)
