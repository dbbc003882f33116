"""End to end on datasets beyond VOC: an MS COCO 2014 root and a VOC-layout folder with 3 classes of
its own, both generated, each run through its score table and the pseudo-label PNGs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline_helpers import generate_small_set, run_snakemake, write_dataset_config
from vitaff.data.index import read_index
from vitaff.data.voc import load_mask

pytestmark = pytest.mark.slow

SCORE_KEYS = ["stage", "split", "n_images"]


def check_pseudo_labels(workdir, split: str, num_fg: int) -> int:
    """Every image of the split has its PNG at its size, holding only background and its labels."""
    index = read_index(workdir / f"results/data/{split}.csv").set_index("id")
    pngs = sorted((workdir / "results/pseudo_labels" / split).glob("*.png"))
    assert sorted(p.stem for p in pngs) == sorted(index.index)
    for png in pngs:
        row = index.loc[png.stem]
        labels = load_mask(png, num_fg=num_fg)
        assert labels.shape == (row.height, row.width)
        assert set(np.unique(labels).tolist()) <= {0, *row.labels}
    return len(pngs)


def test_coco_layout_runs_end_to_end(tmp_path):
    from vitaff.data.synthetic.layouts import write_coco_layout

    voc = generate_small_set(tmp_path / "gen")
    sizes = write_coco_layout(voc, tmp_path / "coco")
    workdir = tmp_path / "run"
    write_dataset_config(workdir, {"root": str(tmp_path / "coco"), "format": "coco", "train_split": "train2014",
                                   "eval_split": "val2014", "train_score_split": "train2014",
                                   "view_dir": str(tmp_path / "view")})
    run_snakemake(workdir, target=("results/coco_miou.csv", "results/pseudo_labels/train2014"))

    # the mapping: category ids ascending (gaps: 1, 3, 16, 17, 18, 90) -> label indices 1..C
    classes = pd.read_csv(workdir / "results/data/classes.csv", keep_default_na=False)
    ids = [int(i) for i in classes["category_id"][1:]]
    assert ids == sorted(ids) and ids[-1] == 90 and classes["name"][0] == "background"
    assert list(classes["index"]) == list(range(len(classes)))
    table = pd.read_csv(workdir / "results/coco_miou.csv")
    assert list(table.columns) == [*SCORE_KEYS, *classes["name"], "mIoU"]
    assert sorted(zip(table.stage, table.split)) == sorted(
        (s, p) for s in ("seeds", "crf", "random_walk") for p in ("train2014", "val2014"))
    # one image per split has no annotation: listed and skipped
    prepared = json.loads((tmp_path / "view/VOC/prepared.json").read_text())
    for split, n_voc in (("train2014", 24), ("val2014", 12)):
        assert sizes[split]["images"] == n_voc + 1
        assert prepared["splits"][split] == {"images": n_voc, "unannotated": 1, "id_list": None}
        assert dict(zip(table.split, table.n_images))[split] == n_voc
    assert "1 without any annotation skipped" in (workdir / "results/logs/coco_view.log").read_text()
    assert table["mIoU"].between(0, 100).all() and table["toothbrush"].isna().all()
    assert check_pseudo_labels(workdir, "train2014", len(classes) - 1) == 24
    # crowd regions are void in the rendered ground truth
    masks = [load_mask(p, num_fg=None) for p in (tmp_path / "view/VOC/SegmentationClass").glob("*.png")]
    assert any((m == 255).any() for m in masks)


def test_voc_layout_with_three_classes_of_its_own_runs_end_to_end(tmp_path):
    from vitaff.data.synthetic.layouts import write_custom_voc_layout

    names = ("cat", "dog", "person")
    voc = generate_small_set(tmp_path / "gen", classes=names)
    root = write_custom_voc_layout(voc, tmp_path / "custom", names)
    workdir = tmp_path / "run"
    write_dataset_config(workdir, {"root": str(root), "train_split": "train", "eval_split": "val",
                                   "train_score_split": "train"})
    run_snakemake(workdir, target=("results/miou.csv", "results/pseudo_labels/train"))

    table = pd.read_csv(workdir / "results/miou.csv")
    assert list(table.columns) == [*SCORE_KEYS, "background", *names, "mIoU"]
    assert table["mIoU"].between(0, 100).all()
    assert dict(zip(table.split, table.n_images)) == {"train": 24, "val": 12}
    assert check_pseudo_labels(workdir, "train", 3) == 24
    assert not (workdir / "results/voc_miou.csv").exists()
