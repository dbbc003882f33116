"""MS COCO 2014 reader: annotation index, label mapping, mask rendering rules, the VOC-layout view
and its bad inputs (one clear line each, nothing half-written)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitaff.data.coco import (COCODataError, build_annotation_index, load_annotation_index, read_id_list,
                              render_mask, save_annotation_index, write_view)
from vitaff.data.synthetic.layouts import convex_hull, uncompressed_rle
from vitaff.data.voc import load_mask

ROOT = Path(__file__).resolve().parents[1]


def square(x0, y0, x1, y1):
    return [[float(x0), float(y0), float(x1), float(y0), float(x1), float(y1), float(x0), float(y1)]]


def make_coco(root: Path, split: str = "val2014", anns=None, images=None, categories=None) -> Path:
    """A hand-made COCO root: images 42 and 7 (12 x 10), one without annotations (99)."""
    (root / split).mkdir(parents=True)
    (root / "annotations").mkdir()
    images = images or [{"id": 42, "file_name": f"COCO_{split}_000000000042.jpg", "height": 10, "width": 12},
                        {"id": 7, "file_name": f"COCO_{split}_000000000007.jpg", "height": 10, "width": 12},
                        {"id": 99, "file_name": f"COCO_{split}_000000000099.jpg", "height": 10, "width": 12}]
    for im in images:
        Image.fromarray(np.zeros((im["height"], im["width"], 3), np.uint8)).save(root / split / im["file_name"])
    crowd = np.zeros((10, 12), np.uint8)
    crowd[6:10, 0:4] = 1
    anns = anns if anns is not None else [
        # image 42: a large person (id 1) with a small dog (id 18) on it; a crowd of people bottom-left
        {"id": 1, "image_id": 42, "category_id": 1, "iscrowd": 0, "area": 80.0, "segmentation": square(0, 0, 10, 8)},
        {"id": 2, "image_id": 42, "category_id": 18, "iscrowd": 0, "area": 4.0, "segmentation": square(2, 2, 4, 4)},
        {"id": 3, "image_id": 42, "category_id": 1, "iscrowd": 1, "area": 16.0, "segmentation": uncompressed_rle(crowd)},
        {"id": 4, "image_id": 7, "category_id": 3, "iscrowd": 0, "area": 9.0, "segmentation": square(1, 1, 4, 4)},
    ]
    categories = categories or [{"id": 18, "name": "dog"}, {"id": 1, "name": "person"}, {"id": 3, "name": "car"},
                                {"id": 90, "name": "toothbrush"}]
    data = {"images": images, "annotations": anns, "categories": categories}
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))
    return root


def test_category_ids_map_to_labels_in_ascending_id_order(tmp_path):
    index = build_annotation_index(make_coco(tmp_path / "coco") / "annotations/instances_val2014.json")
    classes = index.classes()
    assert classes.names == ("person", "car", "dog", "toothbrush")  # ids 1, 3, 18, 90
    assert classes.category_ids == (1, 3, 18, 90)
    row = {int(i): k for k, i in enumerate(index.image_ids)}
    assert sorted(index.ann_category[index.annotations(row[42])].tolist()) == [1, 1, 3]
    assert index.ann_category[index.annotations(row[99])].size == 0


def test_smaller_instances_on_top_and_uncovered_crowd_is_void(tmp_path):
    index = build_annotation_index(make_coco(tmp_path / "coco") / "annotations/instances_val2014.json")
    mask = render_mask(index, [int(i) for i in index.image_ids].index(42))
    assert mask.shape == (10, 12) and mask.dtype == np.uint8
    assert mask[3, 3] == 3        # the dog (label 3) painted over the larger person
    assert mask[1, 8] == 1        # person
    assert mask[7, 1] == 1        # crowd under the person stays person
    assert mask[9, 1] == 255      # crowd elsewhere: void
    assert mask[9, 11] == 0


def test_annotation_index_roundtrip(tmp_path):
    index = build_annotation_index(make_coco(tmp_path / "coco") / "annotations/instances_val2014.json")
    save_annotation_index(index, tmp_path / "idx.pkl")
    again = load_annotation_index(tmp_path / "idx.pkl")
    np.testing.assert_array_equal(again.ann_start, index.ann_start)
    assert again.classes() == index.classes()


def test_view_skips_unannotated_images_and_restricts_by_id_list(tmp_path):
    root = make_coco(tmp_path / "coco")
    save_annotation_index(build_annotation_index(root / "annotations/instances_val2014.json"), tmp_path / "v.pkl")
    summary = write_view(root, {"val2014": tmp_path / "v.pkl"}, tmp_path / "view")
    assert summary["splits"]["val2014"] == {"images": 2, "unannotated": 1, "id_list": None}
    view = tmp_path / "view"
    assert (view / "ImageSets/Segmentation/val2014.txt").read_text().split() == [
        "COCO_val2014_000000000007", "COCO_val2014_000000000042"]
    assert (view / "unannotated_val2014.txt").read_text().split() == ["COCO_val2014_000000000099"]
    assert (view / "JPEGImages/COCO_val2014_000000000042.jpg").resolve() == (root / "val2014/COCO_val2014_000000000042.jpg").resolve()
    assert "<name>person</name>" in (view / "Annotations/COCO_val2014_000000000042.xml").read_text()
    assert load_mask(view / "SegmentationClass/COCO_val2014_000000000007.png", num_fg=4)[2, 2] == 2  # car
    assert (view / "classes.txt").read_text().split() == ["person", "car", "dog", "toothbrush"]
    # an id list (numbers or file names) restricts the split
    (tmp_path / "ids.txt").write_text("COCO_val2014_000000000042.jpg\n# comment\n99\n")
    assert read_id_list(tmp_path / "ids.txt") == [42, 99]
    summary = write_view(root, {"val2014": tmp_path / "v.pkl"}, tmp_path / "view2", {"val2014": str(tmp_path / "ids.txt")})
    assert summary["splits"]["val2014"]["images"] == 1


def _stage(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, "--params", json.dumps({"root": args[0]}), *args[1:]],
                          capture_output=True, text=True, cwd=ROOT)


@pytest.mark.parametrize("case, expected", [
    ("missing_image", r"annotation 5 is for image id 1234, which the file's images list lacks"),
    ("unknown_category", r"annotation 5 has category_id 91, which the file's categories list lacks"),
])
def test_bad_annotations_are_one_clear_line_and_no_index(tmp_path, case, expected):
    bad = {"id": 5, "image_id": 1234 if case == "missing_image" else 42,
           "category_id": 91 if case == "unknown_category" else 1, "iscrowd": 0, "area": 1.0,
           "segmentation": square(0, 0, 1, 1)}
    root = make_coco(tmp_path / "coco", anns=[bad])
    out = tmp_path / "index" / "instances_val2014.pkl"
    proc = _stage("vitaff.stages.coco_annotation_index", str(root), "--split", "val2014", "--out", str(out))
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "instances_val2014.json" in errors[0], proc.stderr
    assert re.search(expected, errors[0])
    assert not out.parent.exists() or not any(out.parent.iterdir())  # no index, no temporary file


def test_id_list_naming_a_missing_id_is_one_clear_line_and_no_view(tmp_path):
    root = make_coco(tmp_path / "coco")
    save_annotation_index(build_annotation_index(root / "annotations/instances_val2014.json"), tmp_path / "v.pkl")
    (tmp_path / "ids.txt").write_text("42\n555\n")
    with pytest.raises(COCODataError, match=r"ids\.txt names image id 555 \(1 in all\), which .*instances_val2014\.json lacks"):
        write_view(root, {"val2014": tmp_path / "v.pkl"}, tmp_path / "view", {"val2014": str(tmp_path / "ids.txt")})
    assert not (tmp_path / "view").exists() and not (tmp_path / "view.partial").exists()
    # through the stage: one line
    cmd = [sys.executable, "-m", "vitaff.stages.coco_view", "--params",
           json.dumps({"root": str(root), "id_lists": {"val2014": str(tmp_path / "ids.txt")}}),
           "--indexes", f"val2014:{tmp_path / 'v.pkl'}", "--out", str(tmp_path / "view" / "prepared.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1
    assert len([line for line in proc.stderr.splitlines() if line.startswith("error:")]) == 1
    assert not (tmp_path / "view" / "prepared.json").exists()


def test_missing_image_file_is_a_clear_error(tmp_path):
    root = make_coco(tmp_path / "coco")
    (root / "val2014/COCO_val2014_000000000007.jpg").unlink()
    save_annotation_index(build_annotation_index(root / "annotations/instances_val2014.json"), tmp_path / "v.pkl")
    with pytest.raises(COCODataError, match=r"COCO_val2014_000000000007\.jpg \(id 7 of .*\) not found"):
        write_view(root, {"val2014": tmp_path / "v.pkl"}, tmp_path / "view")
    assert not (tmp_path / "view").exists()


def test_generated_polygons_and_rle_roundtrip_through_pycocotools():
    from pycocotools import mask as mask_utils

    m = np.zeros((9, 7), np.uint8)
    m[2:6, 1:4] = 1
    rle = uncompressed_rle(m)
    np.testing.assert_array_equal(mask_utils.decode(mask_utils.frPyObjects(rle, 9, 7)), m)
    hull = convex_hull(np.array([[0, 0], [2, 0], [2, 2], [0, 2], [1, 1]]))
    assert len(hull) == 4 and [1, 1] not in hull.tolist()
