"""The dataset's class list: VOC's order kept, custom lists from config or classes.txt, the
classes.csv round trip, and the errors naming the class or id a list lacks."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import make_voc, write_palette_png
from vitaff.data.classes import (VOC, ClassList, ClassListError, dataset_classes, read_classes, read_names_file,
                                 write_classes)
from vitaff.data.voc import VOC_CLASSES, VOCDataError, VOCDataset


def test_voc_keeps_its_order_and_indices():
    assert VOC.labels == VOC_CLASSES and VOC.num_fg == 20 and VOC.num_labels == 21
    assert VOC.index("aeroplane") == 1 and VOC.index("person") == 15 and VOC.index("tvmonitor") == 20
    assert VOC.index("background") is None and VOC.index("giraffe") is None


@pytest.mark.parametrize("names, message", [
    ((), r"has 0 classes; 1 to 200"),
    (tuple(f"c{i}" for i in range(201)), r"has 201 classes; 1 to 200"),
    (("cat", "cat"), r"lists 'cat' twice"),
    (("background", "cat"), r"invalid class name 'background'"),
    (("a,b",), r"invalid class name 'a,b'"),
])
def test_bad_class_lists_name_the_problem(names, message):
    with pytest.raises(ClassListError, match=message):
        ClassList(names)


def test_classes_csv_roundtrip_keeps_names_and_category_ids(tmp_path):
    coco_like = ClassList(("person", "car", "toothbrush"), (1, 3, 90))
    write_classes(coco_like, tmp_path / "a.csv")
    assert (tmp_path / "a.csv").read_text().splitlines() == [
        "index,name,category_id", "0,background,", "1,person,1", "2,car,3", "3,toothbrush,90"]
    again = read_classes(tmp_path / "a.csv")
    assert (again.names, again.category_ids) == (coco_like.names, coco_like.category_ids)
    write_classes(VOC, tmp_path / "voc.csv")
    assert read_classes(tmp_path / "voc.csv").labels == VOC_CLASSES
    assert read_classes(tmp_path / "voc.csv").category_ids is None


def test_class_list_sources_config_then_file_then_voc(tmp_path):
    assert dataset_classes(tmp_path) == VOC
    (tmp_path / "classes.txt").write_text("background\n# my classes\nwidget\n\ngadget\n")
    assert read_names_file(tmp_path / "classes.txt").names == ("widget", "gadget")
    assert dataset_classes(tmp_path).names == ("widget", "gadget")
    assert dataset_classes(tmp_path, ["a", "b", "c"]).names == ("a", "b", "c")


def test_custom_classes_from_xml_and_masks_and_errors_naming_what_the_list_lacks(tmp_path):
    voc = make_voc(tmp_path, ids=("a", "b"))  # XML: cat, chair; masks: 8, 9
    classes = ClassList(("chair", "cat"), source="config key dataset.classes")
    xml = VOCDataset(voc, "train", "annotations", classes=classes)
    assert xml.labels("a").tolist() == [0, 1] and xml.labels("b").tolist() == [1, 0]
    (voc / "Annotations/b.xml").write_text("<annotation><object><name>sofa</name></object></annotation>")
    with pytest.raises(VOCDataError, match=r"b\.xml names class 'sofa', which config key dataset\.classes lacks "
                                           r"\(chair, cat\)"):
        xml.labels("b")
    # masks with the list's own indices 1..2; an id beyond it is named
    write_palette_png(np.full((24, 32), 2, np.uint8), voc / "SegmentationClass/a.png")
    masks = VOCDataset(voc, "train", "segmentation", classes=classes)
    assert masks.labels("a").tolist() == [0, 1]
    with pytest.raises(VOCDataError, match=r"b\.png holds class ids \[9\] beyond the class list's 2 classes"):
        masks.labels("b")
