"""Rule ``dataset_index``: read every image (and mask) of a split once and write its index CSV.

Columns: see :mod:`vitaff.data.index` (which reads it back). Reading everything
up front turns a corrupt file into an error at the start of the pipeline, naming the file.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm import tqdm

from vitaff.data.classes import read_classes
from vitaff.data.voc import VOCDataset
from vitaff.stages import _cli
from vitaff.store import write_csv


def build_index(dataset: VOCDataset) -> pd.DataFrame:
    rows = []
    for image_id in tqdm(dataset.ids, desc=f"index {dataset.split}", mininterval=5):
        image = dataset.image(image_id)
        mask = dataset.mask(image_id, image.shape[:2]) if dataset.has_mask(image_id) else None
        if mask is None and dataset.label_source == "segmentation":
            raise dataset.missing_mask_error(image_id)
        labels = dataset.labels(image_id, mask)
        rows.append({
            "id": image_id,
            "height": image.shape[0],
            "width": image.shape[1],
            "labels": " ".join(str(c + 1) for c in np.flatnonzero(labels)),
            "has_mask": mask is not None,
        })
    return pd.DataFrame(rows)


def main(args, params) -> None:
    dataset = VOCDataset(params["root"], params["split"], params["label_source"], params["mask_dir"],
                         params["aug_mask_dir"], read_classes(args.classes))
    write_csv(build_index(dataset), args.out)


if __name__ == "__main__":
    p = _cli.parser(__doc__)
    p.add_argument("--classes", required=True, help="results/data/classes.csv")
    p.add_argument("--out", required=True)
    _cli.run(main, p)
