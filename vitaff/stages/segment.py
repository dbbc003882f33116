"""Rule ``segment``: the step-3 network (SPEC 9) on every image of a split, in every inference mode.

Writes the multi-scale + flip + CRF labels (the network's final output) as VOC palette PNGs,
``<out>/<id>.png`` at each image's size (what a user submits to the evaluation server), under a
``.partial`` name renamed when complete; and ``--scores``: one row per inference mode with the
per-class IoU and mIoU over the split's images that have a ground-truth mask (the metrics code of
every score), named after the labels the network was trained on (:data:`vitaff.segmentation.RESULT_NAMES`),
with its init.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from vitaff.config import resolve_device
from vitaff.data.classes import read_classes
from vitaff.data.voc import load_image, load_mask, save_label_png
from vitaff.metrics import ConfusionAccumulator
from vitaff.segmentation import MODES, RESULT_NAMES, load_segmentation_model, segment_image
from vitaff.stages import _cli
from vitaff.data.index import read_index
from vitaff.store import write_csv, writing_dir


def main(args, params) -> None:
    device = resolve_device(params["device"])
    seg = params["segmentation"]
    model, meta = load_segmentation_model(args.model, device)
    voc = Path(params["voc_root"])
    mask_dir = voc / params["dataset"]["mask_dir"]
    index = read_index(args.index)
    classes = read_classes(args.classes)
    scores = {mode: ConfusionAccumulator(classes.num_labels) for mode in MODES}
    n = 0
    with writing_dir(args.out) as out:
        for image_id in tqdm(index["id"], desc=f"segment {args.out}", mininterval=10):
            image = load_image(voc / "JPEGImages" / f"{image_id}.jpg")
            labels = segment_image(model, image, seg["test_scales"], seg["test_flip"], seg["crf"], device)
            save_label_png(labels[MODES[-1]], out / f"{image_id}.png")
            if (mask_dir / f"{image_id}.png").is_file():
                gt = load_mask(mask_dir / f"{image_id}.png", image.shape[:2], classes.num_fg)
                for mode in MODES:
                    scores[mode].update(gt, labels[mode])
                n += 1
    init = meta["segmentation"]["init"]
    rows = [{"result": RESULT_NAMES[meta["labels"]], "mode": mode, "init": init, "split": args.split, "n_images": n,
             **dict(zip(classes.labels, acc.iou() * 100)), "mIoU": np.nanmean(acc.iou()) * 100 if n else np.nan}
            for mode, acc in scores.items()]
    write_csv(pd.DataFrame(rows).round(2), args.scores)


if __name__ == "__main__":
    p = _cli.parser(__doc__)
    p.add_argument("--model", required=True, help="segmentation model (train_segmentation)")
    p.add_argument("--index", required=True, help="index CSV of the split")
    p.add_argument("--classes", required=True, help="results/data/classes.csv")
    p.add_argument("--split", required=True)
    p.add_argument("--out", required=True, help="directory of the final-mode label PNGs")
    p.add_argument("--scores", required=True, help="CSV: one row per inference mode")
    _cli.run(main, p)
