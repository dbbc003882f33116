"""Stage logic: seed post-processing, CRF label conventions, crops aligned to the affinity grid,
shard stores with completion marks, sharding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vitaff.explain import upsample_and_normalise
from vitaff.seeds import seed_labels, to_full_stack
from vitaff.stages.crf import confident_labels
from vitaff.store import (ImageShardReader, ImageShardWriter, IncompleteArtifactError, open_store, shard_slice,
                          writing_store)


def test_seed_maps_are_min_max_normalised_per_class():
    maps = torch.tensor([[[1.0, 3.0], [2.0, 5.0]], [[4.0, 4.0], [4.0, 4.0]]])
    out = upsample_and_normalise(maps)
    torch.testing.assert_close(out[0], torch.tensor([[0.0, 0.5], [0.25, 1.0]]))
    assert torch.all(out[1] == 0)  # a constant map carries no location


def test_full_stack_and_seed_argmax_exclude_absent_classes():
    maps = np.array([[[0.9, 0.1, 0.3]], [[0.2, 0.05, 0.6]]], np.float32)  # classes 8 and 15
    full = to_full_stack(maps, [8, 15])
    assert full.shape == (20, 1, 3)
    assert np.all(full[7] == maps[0]) and np.all(full[14] == maps[1])
    assert np.all(np.delete(full, [7, 14], axis=0) == 0)
    labels = seed_labels(full, [8, 15], bg_threshold=0.2)
    assert labels.tolist() == [[8, 0, 15]]  # 0.1 and 0.05 lose to the 0.2 background
    # an image without classes is all background
    assert np.all(seed_labels(np.zeros((20, 2, 2), np.float32), [], 0.2) == 0)


def test_confident_labels_conventions():
    fg = np.array([[0, 3, 3, 0]], np.uint8)   # low-alpha CRF: foreground where trusted
    bg = np.array([[0, 0, 3, 3]], np.uint8)   # high-alpha CRF: background where trusted
    assert confident_labels(fg, bg).tolist() == [[0, 0, 3, 255]]


def test_seed_argmax_on_present_stacks_equals_the_full_stack_and_maps_to_label_indices():
    """The stores keep the present classes only: the argmax must give the full stack's labels,
    including ties (the lower label index wins in both) and class indices far beyond VOC's 20."""
    rng = np.random.default_rng(0)
    maps = rng.random((3, 5, 6)).astype(np.float32)
    maps[1, 0, 0] = maps[2, 0, 0] = 0.9  # tie between classes 40 and 77
    classes = [3, 40, 77]
    present = seed_labels(maps, classes, 0.2)
    full = seed_labels(to_full_stack(maps, classes, num_fg=80), classes, 0.2)
    np.testing.assert_array_equal(present, full)
    assert present[0, 0] == 40 and set(np.unique(present)) <= {0, 3, 40, 77}


def test_class_stacks_store_present_channels_only(tmp_path):
    """A shard's class-stack array is as deep as the most classes one of its images holds, whatever
    the dataset's class count; read_present gives back each image's own stack."""
    from vitaff.store import present_channels

    classes = [[5], [], [7, 60, 79]]
    assert present_channels(classes) == 3 and present_channels(classes, background=True) == 4
    assert present_channels([[], []]) == 1
    path = tmp_path / "s.zarr"
    with writing_store(path) as group:
        w = ImageShardWriter(group, ["a", "b", "c"], [(2, 2)] * 3, {"maps": (present_channels(classes), "float16")},
                             classes=classes)
        w.write(0, "maps", np.full((1, 2, 2), 0.25))
        w.write(1, "maps", np.zeros((0, 2, 2)))
        w.write(2, "maps", np.stack([np.full((2, 2), v) for v in (0.1, 0.2, 0.3)]))
        with pytest.raises(ValueError, match="holds"):
            w.write(2, "maps", np.zeros((4, 2, 2)))
    r = ImageShardReader(path)
    assert r.group["maps"].shape == (3, 3, 2, 2)
    assert r.read_present(0, "maps").shape == (1, 2, 2) and r.read_present(1, "maps").shape == (0, 2, 2)
    np.testing.assert_allclose(r.read_present(2, "maps")[:, 0, 0], [0.1, 0.2, 0.3], atol=1e-3)


def test_affinity_crops_align_image_and_label_grid(tmp_path):
    from PIL import Image

    from vitaff.affinity_training import AffinityCropSet

    voc = tmp_path / "VOC2012"
    (voc / "JPEGImages").mkdir(parents=True)
    img = np.zeros((20, 28, 3), np.uint8)
    img[8:16, 16:24] = 255  # a white block exactly on grid cell (1, 2) of stride 8
    Image.fromarray(img).save(voc / "JPEGImages" / "x.png")
    (voc / "JPEGImages" / "x.png").rename(voc / "JPEGImages" / "x.jpg")
    grid = np.full((3, 4), 0, np.uint8)
    grid[1, 2] = 7
    torch.manual_seed(0)
    ds = AffinityCropSet(voc, ["x"], [grid], crop=16, stride=8, augment=True, color_jitter=(0, 0, 0, 0))
    for _ in range(20):
        x, g = ds[0]
        assert x.shape == (3, 16, 16) and g.shape == (2, 2)
        for gy in range(2):
            for gx in range(2):
                bright = x[:, gy * 8:(gy + 1) * 8, gx * 8:(gx + 1) * 8].mean() > 0.5
                assert bright == (g[gy, gx] == 7)


def test_crop_must_be_multiple_of_stride(tmp_path):
    from vitaff.affinity_training import AffinityCropSet

    with pytest.raises(ValueError, match="multiple of affinity.feature_stride"):
        AffinityCropSet(tmp_path, [], [], crop=100, stride=8)


def test_shard_store_roundtrip_and_completion_mark(tmp_path):
    path = tmp_path / "s.zarr"
    with writing_store(path) as group:
        w = ImageShardWriter(group, ["a", "b"], [(2, 3), (4, 1)], {"lab": (None, "uint8"), "maps": (2, "float16")},
                             classes=[[1], [2, 5]])
        w.write(0, "lab", np.ones((2, 3), np.uint8))
        w.write(1, "maps", np.full((2, 4, 1), 0.5))
        with pytest.raises(ValueError, match="expected"):
            w.write(1, "lab", np.ones((2, 3), np.uint8))
    r = ImageShardReader(path)
    assert r.ids == ["a", "b"] and r.classes == [[1], [2, 5]]
    assert r.read(0, "lab").tolist() == [[1, 1, 1], [1, 1, 1]]
    assert r.read(1, "maps").shape == (2, 4, 1)
    assert not (tmp_path / "s.zarr.partial").exists()


def test_interrupted_store_is_not_trusted(tmp_path):
    path = tmp_path / "s.zarr"
    with pytest.raises(RuntimeError, match="boom"):
        with writing_store(path) as group:
            ImageShardWriter(group, ["a"], [(2, 2)], {"lab": (None, "uint8")})
            raise RuntimeError("boom")
    assert not path.exists() and not (tmp_path / "s.zarr.partial").exists()
    # a store written by something else without the mark (e.g. killed mid-write, then renamed)
    import zarr

    zarr.open_group(str(path), mode="w").create_array("x", shape=(1,), dtype="uint8")
    with pytest.raises(IncompleteArtifactError, match="no completion mark"):
        open_store(path)


def test_disk_full_leaves_no_artifact(tmp_path, monkeypatch):
    """A write that fails with ENOSPC deletes its temporary file and leaves no output."""
    import errno

    import pandas as pd

    from vitaff.store import write_csv

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    with pytest.raises(OSError, match="No space left"):
        write_csv(pd.DataFrame({"a": [1]}), tmp_path / "out.csv")
    assert list(tmp_path.iterdir()) == []


def test_shard_slices_cover_every_id_once():
    ids = [f"id{i}" for i in range(11)]
    parts = [shard_slice(ids, k, 4) for k in range(4)]
    assert sorted(sum(parts, [])) == sorted(ids)
    assert all(len(p) <= 3 for p in parts)
    assert shard_slice(ids, 0, 1) == sorted(ids)


def test_cuda_requested_without_cuda_is_a_clear_error():
    from vitaff.config import ConfigError, resolve_device

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ConfigError, match="device.*no CUDA device.*device: cpu"):
        resolve_device("cuda")


def test_affinity_resized_set_pairs_the_whole_image_with_its_grid(tmp_path):
    from PIL import Image

    from vitaff.affinity_training import AffinityResizedSet

    voc = tmp_path / "VOC2012"
    (voc / "JPEGImages").mkdir(parents=True)
    img = np.zeros((30, 60, 3), np.uint8)
    img[:, 30:] = 255  # right half white
    Image.fromarray(img).save(voc / "JPEGImages" / "x.jpg", quality=100)
    grid = np.zeros((4, 4), np.uint8)
    grid[:, 2:] = 7
    ds = AffinityResizedSet(voc, ["x"], [grid], 32, 8, augment=True, color_jitter=(0, 0, 0, 0))
    for _ in range(10):
        x, g = ds[0]
        assert x.shape == (3, 32, 32) and g.shape == (4, 4)
        bright = x.mean(0)[:, ::8].mean(0) > 0  # normalised: white > 0 > black, one value per cell column
        assert torch.equal(bright[[0, 3]], g[0, [0, 3]] == 7)  # flips move image and grid together
    with pytest.raises(ValueError, match="affinity.input"):
        AffinityResizedSet(voc, ["x"], [np.zeros((3, 4), np.uint8)], 32, 8)


def test_affinity_labels_of_the_resized_image(tmp_path):
    """affinity.input resize: the CRF stacks are resized to the square input before pooling."""
    from vitaff.stages import affinity_labels as stage

    probs = np.zeros((2, 30, 90), np.float32)
    probs[0, :, :45], probs[1, :, 45:] = 1.0, 1.0
    out = stage.resized_probs(probs, 16)
    assert out.shape == (2, 16, 16)
    assert np.allclose(out[1, :, :7], 0) and np.allclose(out[1, :, 9:], 1)


def test_pseudo_label_pngs_and_scores_from_them(tmp_path):
    """The pseudo_labels stage writes one palette PNG per image; the score reads them and counts
    only the ids of the scored split that have a ground-truth mask."""
    import argparse

    import pandas as pd

    from conftest import write_palette_png
    from vitaff.data.voc import load_mask
    from vitaff.stages import pseudo_labels, score

    sizes = [(4, 6), (5, 3), (2, 2)]
    labels = [np.full(s, c, np.uint8) for s, c in zip(sizes, (3, 0, 15))]
    with writing_store(tmp_path / "rw.zarr") as g:
        w = ImageShardWriter(g, ["a", "b", "c"], sizes, {"labels": (None, "uint8")}, classes=[[3], [], [15]])
        for k, lab in enumerate(labels):
            w.write(k, "labels", lab)
    out = tmp_path / "pseudo_labels" / "train_aug"
    pseudo_labels.main(argparse.Namespace(walk=[str(tmp_path / "rw.zarr")], out=str(out)), {})
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png"]
    assert not (tmp_path / "pseudo_labels" / "train_aug.partial").exists()
    assert np.array_equal(load_mask(out / "a.png"), labels[0])
    # ground truth: a right, b wrong; c is an SBD-only id (no official mask) and "d" is not scored
    voc = tmp_path / "VOC2012"
    (voc / "SegmentationClass").mkdir(parents=True)
    write_palette_png(labels[0], voc / "SegmentationClass" / "a.png")
    write_palette_png(np.full(sizes[1], 8, np.uint8), voc / "SegmentationClass" / "b.png")
    acc, n = score.score_stage("random_walk", [str(out)], voc, "SegmentationClass", 0.2, ids=["a", "b", "c"])
    assert n == 2
    iou = acc.iou()
    assert iou[3] == 1.0 and iou[8] == 0.0
    with pytest.raises(ValueError, match="train_score_split must be part of"):
        list(score._predictions("seeds", [str(tmp_path / "rw.zarr")], ["a", "zz"], 0.2))


def test_crf_kwargs_map_every_config_key_to_its_crf_parameter():
    """config.yaml's crf keys reach dense_crf under the parameter of the same meaning (distinct
    values, so a swapped pair fails), and every parameter dense_crf has is set from the config."""
    import inspect

    from vitaff.crf import dense_crf
    from vitaff.stages.crf import crf_kwargs

    cfg = {"alpha_low": 4, "alpha_high": 32, "iterations": 7, "gaussian_sxy": 2.0, "gaussian_compat": 3.0,
           "bilateral_sxy": 81.0, "bilateral_srgb": 12.0, "bilateral_compat": 9.0}
    assert crf_kwargs(cfg) == {"n_iter": 7, "gaussian_sxy": 2.0, "gaussian_compat": 3.0, "bilateral_sxy": 81.0,
                               "bilateral_srgb": 12.0, "bilateral_compat": 9.0}
    keyword_only = {n for n, p in inspect.signature(dense_crf).parameters.items() if p.kind is p.KEYWORD_ONLY}
    assert set(crf_kwargs(cfg)) == keyword_only


def test_read_index_keeps_ids_as_text_and_reads_empty_labels(tmp_path):
    from vitaff.data.index import read_index

    path = tmp_path / "split.csv"
    path.write_text("id,height,width,labels,has_mask\n"
                    "2007_000032,281,500,1 15,True\n"
                    "000123,10,20,,False\n"  # no object in the image (no label), id with leading zeros
                    "NA,12,13,7,True\n")     # an id pandas would read as missing
    frame = read_index(path)
    assert list(frame["id"]) == ["2007_000032", "000123", "NA"]
    assert list(frame["labels"]) == [[1, 15], [], [7]]
    assert list(frame["height"]) == [281, 10, 12] and list(frame["has_mask"]) == [True, False, True]
