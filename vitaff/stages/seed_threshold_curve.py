"""Rule ``seed_threshold_curve``: seed mIoU on the train score split against the background
threshold (SPEC 8, the field's evaluation protocol).

psa, MCTformer (``evaluation.py --curve``) and WeakTr sweep the constant background score of the
seeds' argmax on the train split and report the best value. That best is chosen on ground truth,
so it is written here beside the fixed ``seeds.bg_threshold`` (``fixed``), which every score of
the pipeline keeps; ``best`` marks the curve's maximum. One confusion matrix per threshold over the
same ids as ``results/voc_miou.csv``'s train rows (each image's maps are read once).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from vitaff.data.index import read_index
from vitaff.data.classes import VOC, ClassList, read_classes
from vitaff.data.voc import load_mask
from vitaff.metrics import ConfusionAccumulator
from vitaff.seeds import seed_labels
from vitaff.stages import _cli
from vitaff.store import open_shards, write_csv


def thresholds(curve_max: float, step: float, fixed: float) -> np.ndarray:
    """0, step, ..., curve_max (rounded to the step's decimals), plus the fixed threshold."""
    n = int(np.floor(curve_max / step + 1e-9))
    values = np.round(np.arange(n + 1) * step, 10)
    return np.unique(np.append(values, fixed))


def curve(readers, ids: set[str], voc_root: Path, mask_dir: str, values: np.ndarray,
          classes: ClassList = VOC) -> list[ConfusionAccumulator]:
    accs = [ConfusionAccumulator(classes.num_labels) for _ in values]
    for reader in readers:
        for k, image_id in enumerate(tqdm(reader.ids, desc="threshold curve", mininterval=10)):
            mask_path = voc_root / mask_dir / f"{image_id}.png"
            if image_id not in ids or not mask_path.is_file():
                continue
            maps = reader.read_present(k, "maps").astype(np.float32)
            gt = load_mask(mask_path, tuple(reader.sizes[k]), classes.num_fg)
            for acc, t in zip(accs, values):
                acc.update(gt, seed_labels(maps, reader.classes[k], float(t)))
    return accs


def curve_table(values: np.ndarray, miou: list[float], fixed: float) -> pd.DataFrame:
    frame = pd.DataFrame({"bg_threshold": values, "mIoU": miou})
    frame["best"] = False
    frame.loc[frame["mIoU"].idxmax(), "best"] = True
    frame["fixed"] = np.isclose(frame["bg_threshold"], fixed)
    return frame


def main(args, params) -> None:
    sm, fixed = params["seed_methods"], params["seeds"]["bg_threshold"]
    values = thresholds(sm["curve_max"], sm["curve_step"], fixed)
    readers, _ = open_shards(args.seeds)
    ids = set(read_index(args.index)["id"])
    accs = curve(readers, ids, Path(params["voc_root"]), params["dataset"]["mask_dir"], values,
                 read_classes(args.classes))
    miou = [100 * float(np.nanmean(a.iou())) for a in accs]
    write_csv(curve_table(values, miou, fixed).round({"bg_threshold": 4, "mIoU": 2}), args.out)


if __name__ == "__main__":
    p = _cli.parser(__doc__)
    p.add_argument("--seeds", nargs="+", required=True, help="seed shard stores of the split holding the scored ids")
    p.add_argument("--index", required=True, help="index CSV of the scored split (the ids counted)")
    p.add_argument("--classes", required=True, help="results/data/classes.csv")
    p.add_argument("--out", required=True)
    _cli.run(main, p)
