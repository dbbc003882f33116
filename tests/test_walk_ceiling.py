"""The walk-ceiling diagnostic: ideal affinities from instance masks, and the walk they give."""

import numpy as np
import pytest
import torch

from vitaff.affinity import pair_offsets
from vitaff.random_walk import refine_seeds
from vitaff.diagnostics.walk_ceiling import cell_instances, instance_affinity


def test_cell_majority_ignores_void_and_pads_with_background():
    inst = np.zeros((10, 12), dtype=np.uint8)
    inst[:4, :4] = 1            # cell (0, 0): all instance 1
    inst[:4, 4:8] = 255         # cell (0, 1): all void -> background
    inst[4:8, :4] = 255
    inst[4, 0] = 2              # cell (1, 0): one pixel of 2, the rest void -> 2
    inst[8:, 8:] = 3            # cell (2, 2): 4 pixels of 3 inside the image, the rest padding
    cells = cell_instances(inst, stride=4)
    assert cells.shape == (3, 3)
    assert cells[0, 0] == 1 and cells[0, 1] == 0 and cells[1, 0] == 2 and cells[2, 2] == 3
    assert cells[0, 2] == 0 and cells[2, 0] == 0


def test_ideal_affinity_is_one_inside_an_instance_and_zero_across_or_outside():
    inst = np.zeros((8, 24), dtype=np.uint8)
    inst[:, 8:16] = 1           # 1 x 3 grid at stride 8: background | object | background
    aff = instance_affinity(inst, stride=8, radius=3)
    offsets = pair_offsets(3).tolist()
    assert aff.shape == (len(offsets), 1, 3)
    right = offsets.index([0, 1])
    right2 = offsets.index([0, 2])
    # (0,0)->(0,1): bg vs object = 0; (0,1)->(0,2): object vs bg = 0; (0,0)->(0,2): bg vs bg = 1
    assert aff[right, 0].tolist() == [0.0, 0.0, 0.0]
    assert aff[right2, 0].tolist() == [1.0, 0.0, 0.0]
    # every pair leaving the 1-row grid downwards is 0
    down = [k for k, (dy, _) in enumerate(offsets) if dy > 0]
    assert aff[down].sum() == 0


def test_walk_with_ideal_affinity_fills_the_object_when_the_seed_covers_enough_of_it():
    # 32 x 32 image, object = left half; the seed is 1 on its top half and 0.3 on the rest
    inst = np.zeros((32, 32), dtype=np.uint8)
    inst[:, :16] = 1
    seed = np.zeros((1, 32, 32), dtype=np.float32)
    seed[0, :16, :16] = 1.0
    seed[0, 16:, :16] = 0.3
    aff = instance_affinity(inst, stride=8, radius=5)
    labels = refine_seeds(seed, [8], aff, stride=8, radius=5, beta=16, logt=8, bg_power=16)
    # (the last column before the edge is where the bilinear upsampling of the grid blends)
    assert (labels[:, :14] == 8).all() and (labels[:, 18:] == 0).all()
    # a seed that is 0 off a small part cannot win the body: the background channel is ~1 there
    seed[0, 16:, :16] = 0.0
    seed[0, 4:16, :16] = 0.0
    labels = refine_seeds(seed, [8], aff, stride=8, radius=5, beta=16, logt=8, bg_power=16)
    assert (labels[:, :16] == 0).mean() > 0.9


def test_bad_instance_map_shape():
    with pytest.raises(ValueError, match="H x W"):
        cell_instances(np.zeros((2, 3, 4), dtype=np.uint8), 8)
    assert torch.is_tensor(instance_affinity(np.zeros((9, 9), dtype=np.uint8), 8, 5))


def test_ceiling_powers_and_best_power_on_train():
    import pandas as pd

    from vitaff.diagnostics.stages.walk_ceiling import best_bg_power, ceiling_powers

    assert ceiling_powers({"bg_power": 12, "ceiling_bg_powers": [32, 4, 16, 4]}) == [4.0, 12.0, 16.0, 32.0]
    assert ceiling_powers({"bg_power": 16}) == [16.0]
    table = pd.DataFrame([
        {"stage": "seeds", "split": "train", "bg_power": np.nan, "mIoU": 40.0},
        {"stage": "random_walk_gt_affinity", "split": "train", "bg_power": 4.0, "mIoU": 30.0},
        {"stage": "random_walk_gt_affinity", "split": "train", "bg_power": 16.0, "mIoU": 50.0},
        {"stage": "random_walk_gt_affinity", "split": "train", "bg_power": 32.0, "mIoU": 50.0},
        {"stage": "random_walk_gt_affinity", "split": "val", "bg_power": 4.0, "mIoU": 90.0},
    ])
    assert best_bg_power(table) == 16.0          # val is never looked at; ties go to the smaller power
    assert best_bg_power(table, "val") == 4.0
    table.loc[2, "mIoU"] = 48.5                  # within 2 points of the best: the smaller power
    assert best_bg_power(table) == 16.0
    assert best_bg_power(table, tolerance=1.0) == 32.0
    with pytest.raises(ValueError, match="no random_walk_gt_affinity"):
        best_bg_power(table, "test")


def test_split_rows_scores_every_image_of_a_shard_over_the_dataset_classes(tmp_path):
    """Two images with different present classes in one shard: the ceiling rows count both, with
    the dataset's class list (a 3-class list here) for the columns, and a seed that covers the
    object exactly gives a perfect seed row and a perfect ideal walk."""
    from PIL import Image

    from vitaff.data.classes import ClassList
    from vitaff.data.voc import INSTANCE_DIR
    from vitaff.diagnostics.stages.walk_ceiling import split_rows
    from vitaff.store import ImageShardWriter, present_channels, writing_store

    classes = ClassList(["cat", "dog", "kite"])
    (tmp_path / "SegmentationClass").mkdir()
    (tmp_path / INSTANCE_DIR).mkdir(parents=True)
    present, sizes, maps = [[1], [2, 3]], [(24, 32), (24, 32)], []
    for i, cls in enumerate(present):
        gt = np.zeros(sizes[i], np.uint8)
        gt[:, 16:] = cls[0]
        Image.fromarray(gt).save(tmp_path / "SegmentationClass" / f"im{i}.png")
        Image.fromarray((gt > 0).astype(np.uint8)).save(tmp_path / INSTANCE_DIR / f"im{i}.png")
        stack = np.zeros((len(cls),) + sizes[i], np.float32)
        stack[0] = gt > 0
        maps.append(stack)
    with writing_store(tmp_path / "seeds.zarr") as group:
        writer = ImageShardWriter(group, ["im0", "im1"], sizes, {"maps": (present_channels(present), "float16")},
                                  classes=present)
        for i, stack in enumerate(maps):
            writer.write(i, "maps", stack.astype(np.float16))
    params = {"affinity": {"feature_stride": 8, "radius": 5}, "seeds": {"bg_threshold": 0.2},
              "random_walk": {"beta": 16, "logt": 3, "bg_power": 32, "ceiling_bg_powers": [32]}}
    rows = split_rows("train", [tmp_path / "seeds.zarr"], tmp_path, "SegmentationClass", params, classes)
    seeds = rows[0]
    assert seeds["n_images"] == 2 and seeds["stage"] == "seeds"
    assert seeds["cat"] == seeds["dog"] == seeds["background"] == 100.0 and np.isnan(seeds["kite"])
    assert [r["stage"] for r in rows[1:]] == ["random_walk_gt_affinity"] and rows[1]["mIoU"] == 100.0
