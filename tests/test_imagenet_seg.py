"""gtsegs_ijcv.mat layout (MATLAB v7.3 / HDF5) reader and writer, ImageNet-val readers, embedded sets."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from PIL import Image

from vitaff.data.imagenet_seg import (EmbeddedSets, GtSegs, ImageNetSegError, make_embedded_sets,
                                      read_embedded_info, read_imagenet_val, write_gtsegs)


def _scene(h, w, seed):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[1:h // 2, 2:w - 1] = 1
    return image, mask


def _write_matlab_by_hand(path, images, masks):
    """What MATLAB writes for a 1 x N cell struct: reference datasets, column-major arrays."""
    ref = h5py.special_dtype(ref=h5py.Reference)
    with h5py.File(path, "w") as f:
        g = f.create_group("#refs#")
        img_refs, gt_refs = [], []
        for i, (im, m) in enumerate(zip(images, masks)):
            d = g.create_dataset(f"i{i}", data=np.transpose(im, (2, 1, 0)))
            dm = g.create_dataset(f"m{i}", data=m.T.astype(np.uint8) * 1)
            cell = g.create_dataset(f"c{i}", (1, 1), dtype=ref)
            cell[0, 0] = dm.ref
            img_refs.append(d.ref)
            gt_refs.append(cell.ref)
        img = f.create_dataset("value/img", (len(images), 1), dtype=ref)
        gt = f.create_dataset("value/gt", (len(images), 1), dtype=ref)
        for i in range(len(images)):
            img[i, 0] = img_refs[i]
            gt[i, 0] = gt_refs[i]


def test_reader_on_hand_written_matlab_layout(tmp_path):
    scenes = [_scene(5, 7, 0), _scene(9, 4, 1)]  # non-square: a wrong transposition fails
    path = tmp_path / "gtsegs_ijcv.mat"
    _write_matlab_by_hand(path, *zip(*scenes))
    seg = GtSegs(path)
    assert len(seg) == 2
    for i, (im, m) in enumerate(scenes):
        got_im, got_m = seg[i]
        assert got_im.shape == im.shape and got_im.dtype == np.uint8
        np.testing.assert_array_equal(got_im, im)
        np.testing.assert_array_equal(got_m, m)
    with pytest.raises(IndexError):
        seg[2]


def test_writer_produces_the_matlab_layout_and_round_trips(tmp_path):
    scenes = [_scene(6, 11, 2), _scene(8, 8, 3), _scene(12, 5, 4)]
    images, masks = zip(*scenes)
    masks = [m * 255 for m in masks]  # any nonzero value is foreground
    path = tmp_path / "gt.mat"
    write_gtsegs(path, images, masks)
    with h5py.File(path, "r") as f:
        assert f["/value/img"].shape == (3, 1) and f["/value/gt"].shape == (3, 1)
        assert h5py.check_dtype(ref=f["/value/img"].dtype) is h5py.Reference
        assert f[f["/value/img"][0, 0]].shape == (3, 11, 6)  # 3 x W x H, as MATLAB stores H x W x 3
        inner = f[f["/value/gt"][0, 0]]
        assert inner.shape == (1, 1) and h5py.check_dtype(ref=inner.dtype) is h5py.Reference
        assert f[inner[0, 0]].shape == (11, 6)
    assert path.read_bytes()[:10] == b"MATLAB 7.3"
    seg = GtSegs(path)
    for i, (im, m) in enumerate(scenes):
        got_im, got_m = seg[i]
        np.testing.assert_array_equal(got_im, im)
        np.testing.assert_array_equal(got_m, m)
    assert set(np.unique(seg[0][1])) <= {0, 1}


def test_reader_errors(tmp_path):
    with pytest.raises(ImageNetSegError, match="not found"):
        GtSegs(tmp_path / "missing.mat")
    (tmp_path / "bad.mat").write_bytes(b"not hdf5")
    with pytest.raises(ImageNetSegError, match="HDF5"):
        GtSegs(tmp_path / "bad.mat")
    with h5py.File(tmp_path / "other.mat", "w") as f:
        f.create_dataset("x", data=[1])
    with pytest.raises(ImageNetSegError, match="/value/img"):
        GtSegs(tmp_path / "other.mat")
    with pytest.raises(ValueError):
        write_gtsegs(tmp_path / "x.mat", [np.zeros((4, 4, 3), np.uint8)], [np.zeros((4, 5))])


def _png(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 4, 3), value, np.uint8)).save(path)


def test_imagenet_val_class_folders(tmp_path):
    for wnid, name in (("n02", "b.JPEG"), ("n01", "a.JPEG"), ("n01", "c.png"), ("n03", "d.jpg")):
        _png(tmp_path / wnid / name, 10)
    (tmp_path / "n03" / "notes.txt").write_text("ignored")
    paths, labels = read_imagenet_val(tmp_path)
    assert [p.name for p in paths] == ["a.JPEG", "c.png", "b.JPEG", "d.jpg"]
    assert labels == [0, 0, 1, 2]  # rank of the sorted sub-directory name


def test_imagenet_val_labels_file(tmp_path):
    for name in ("ILSVRC2012_val_00000002.JPEG", "ILSVRC2012_val_00000001.JPEG"):
        _png(tmp_path / "val" / name, 0)
    labels_file = tmp_path / "val.txt"
    labels_file.write_text("# file label\nILSVRC2012_val_00000002.JPEG 65\n\nILSVRC2012_val_00000001.JPEG 970\n")
    paths, labels = read_imagenet_val(tmp_path / "val", labels_file)
    assert [p.name for p in paths] == ["ILSVRC2012_val_00000001.JPEG", "ILSVRC2012_val_00000002.JPEG"]
    assert labels == [970, 65]
    labels_file.write_text("ILSVRC2012_val_00000001.JPEG\n")
    with pytest.raises(ImageNetSegError, match="val.txt:1"):
        read_imagenet_val(tmp_path / "val", labels_file)
    labels_file.write_text("missing.JPEG 3\n")
    with pytest.raises(ImageNetSegError, match="not found"):
        read_imagenet_val(tmp_path / "val", labels_file)
    with pytest.raises(ImageNetSegError, match="class sub-directories"):
        read_imagenet_val(tmp_path / "val")


def test_embedded_sets(tmp_path):
    sets = EmbeddedSets(n_train=6, n_val=5, n_seg=3, image_size=40, seg_size_range=(36, 44),
                        classes=("bird", "car", "cat"))
    with pytest.raises(ImageNetSegError):
        read_embedded_info(tmp_path)
    info = make_embedded_sets(tmp_path, sets)
    assert read_embedded_info(tmp_path) == json.loads(json.dumps(info))
    paths, labels = read_imagenet_val(tmp_path / info["train"])
    assert len(paths) == 6 and sorted(labels) == [0, 0, 1, 1, 2, 2]
    assert Image.open(paths[0]).size == (40, 40)
    assert info["classes"] == ["0_bird", "1_car", "2_cat"]
    seg = GtSegs(tmp_path / "gtsegs.mat")
    assert len(seg) == 3
    for i in range(3):
        image, mask = seg[i]
        assert 36 <= image.shape[0] <= 44 and 36 <= image.shape[1] <= 44
        assert 0.05 < mask.mean() < 0.8  # one visible object
    # deterministic: same config, same pixels
    again = make_embedded_sets(tmp_path / "again", sets)
    np.testing.assert_array_equal(GtSegs(tmp_path / "again" / "gtsegs.mat")[1][0], seg[1][0])
    assert again["fg_fraction"] == info["fg_fraction"]
