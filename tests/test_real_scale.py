"""The real run at real scale: the study's configuration on VOC-sized images, end to end.

What a user with PASCAL VOC 2012 + SBD and an offline timm checkpoint runs, shrunk only in the
number of images and epochs: the repository's config.yaml with ``dataset.root`` set (so every
real-run default applies: the hybrid ``vit_base_r50_s16_384`` at 448 px = 785 tokens, train_aug
with labels from the XML annotations, cube-root seeds over all blocks, AffinityNet on the whole
image resized to 448, the walk on 56 x 56 in float64), a checkpoint file written by timm itself
with random weights (384 px position embedding, resampled to 448 at load), images of 500 x 375,
1 epoch per training stage, 2 iterations of the segmentation network (torchvision's DeepLab-v3
ResNet-101 from a torchvision-layout ImageNet checkpoint with random weights). Checks the rule graph, the scores' protocol (train scored on its
1,464-style subset of train_aug with the official masks) and the pseudo-label PNGs.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from pipeline_helpers import ROOT, run_snakemake, score_rows
from vitaff.data.synthetic import SyntheticConfig, generate_voc
from vitaff.data.voc import load_mask

pytestmark = pytest.mark.slow

N_TRAIN, N_VAL = 3, 2  # train_aug = 3 ids, of which the first 2 form "train"; val = 2 ids


def make_voc_with_sbd(root):
    """A VOCdevkit at VOC sizes with SBD's layout: one train_aug id has its mask only in
    SegmentationClassAug/ (as SBD's 9,118 extra ids), the split list in psa's line form."""
    summary = generate_voc(root, SyntheticConfig(seed=3, n_train=N_TRAIN, n_val=N_VAL, image_size=(375, 500)))
    voc = root / "VOCdevkit" / "VOC2012"
    train_aug = summary["ids"]["train"]
    (voc / "ImageSets/Segmentation/train.txt").write_text("".join(f"{i}\n" for i in train_aug[:2]))
    (voc / "ImageSets/SegmentationAug").mkdir()
    (voc / "ImageSets/SegmentationAug/train_aug.txt").write_text(
        "".join(f"/JPEGImages/{i}.jpg /SegmentationClassAug/{i}.png\n" for i in train_aug))
    (voc / "SegmentationClassAug").mkdir()
    for i in train_aug:
        shutil.copy(voc / "SegmentationClass" / f"{i}.png", voc / "SegmentationClassAug" / f"{i}.png")
    (voc / "SegmentationClass" / f"{train_aug[2]}.png").unlink()  # an SBD-only id: no official mask
    (voc / "SegmentationObject" / f"{train_aug[2]}.png").unlink()
    return voc, train_aug, summary["ids"]["val"]


def write_resnet101_checkpoint(path):
    """An ImageNet ResNet-101 as torchvision saves it (random weights): the step-3 network's backbone."""
    import torch
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.resnet101().state_dict(), path)


def write_timm_checkpoint(path):
    """What `timm.create_model(name, pretrained=True)` would have saved, with random weights."""
    import timm
    import torch

    torch.manual_seed(0)
    model = timm.create_model("vit_base_r50_s16_384", pretrained=False)
    assert model.pos_embed.shape[1] == 24 * 24 + 1  # the 384 px grid: resampled to 28 x 28 at load
    torch.save(model.state_dict(), path)


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("real_scale")
    voc, train_aug, val = make_voc_with_sbd(work / "data")
    write_timm_checkpoint(work / "vit_base_r50_s16_384.pth")
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["dataset"]["root"] = str(voc)  # the one change for the real run (+ device: cuda on a GPU node)
    cfg["classifier"].update(checkpoint=str(work / "vit_base_r50_s16_384.pth"), pretrained=False,
                             epochs=1, batch_size=2)
    cfg["affinity"].update(epochs=1, batch_size=2)
    cfg["seeds"]["previews"] = 1
    # step 3: the real network (DeepLab-v3 ResNet-101, output stride 8) from an ImageNet checkpoint,
    # crops of 321, 2 iterations of 4 images as 2 x 2 accumulated, the default multi-scale + flip + CRF
    write_resnet101_checkpoint(work / "resnet101.pth")
    cfg["segmentation"].update(checkpoint=str(work / "resnet101.pth"), iterations=2, batch_size=4,
                               accumulation_steps=2, checkpoint_every=1, num_workers=0)
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    run_snakemake(work, target="all", timeout=3000)
    return work, train_aug, val


def test_effective_config_is_the_studys(real_run):
    from vitaff.config import load_config

    work, _, _ = real_run
    cfg = load_config(work / "config.yaml")
    assert cfg["classifier"]["model"] == "vit_base_r50_s16_384" and cfg["classifier"]["img_size"] == 448
    assert cfg["dataset"]["train_split"] == "train_aug" and cfg["dataset"]["label_source"] == "annotations"
    assert cfg["seeds"]["cube_root"] and cfg["seeds"]["start_layer"] == 0
    assert cfg["affinity"]["input"] == "resize" and cfg["affinity"]["backbone_lr_mult"] == 1.0
    assert (cfg["random_walk"]["bg_power"], cfg["random_walk"]["beta"], cfg["random_walk"]["logt"]) == (4, 16, 8)


def test_scores_follow_the_protocol(real_run):
    work, train_aug, val = real_run
    table = pd.read_csv(work / "results/voc_miou.csv")
    assert sorted(zip(table.stage, table.split)) == score_rows()
    # train: the ids of train.txt with an official mask (the SBD-only id is not scored); val: all
    for stage in ("seeds", "crf", "random_walk"):
        rows = table[table.stage == stage]
        assert dict(zip(rows.split, rows.n_images)) == {"train": 2, "val": N_VAL}
    assert table["mIoU"].between(0, 100).all()
    index = pd.read_csv(work / "results/data/train_aug.csv", dtype={"id": str})
    assert list(index["id"]) == train_aug and index["has_mask"].all()  # the SBD-only id: SegmentationClassAug


def test_pseudo_labels_are_voc_pngs_at_image_size(real_run):
    """What holds at random weights: one palette PNG per image, at that image's size, with
    background and the image's own labels only (the walk chooses among the present classes)."""
    from vitaff.data.index import read_index

    work, train_aug, val = real_run
    for split, ids in (("train_aug", train_aug), ("val", val)):
        out = work / "results/pseudo_labels" / split
        assert sorted(p.stem for p in out.glob("*.png")) == sorted(ids)
        index = read_index(work / f"results/data/{split}.csv").set_index("id")
        for image_id in ids:
            with Image.open(out / f"{image_id}.png") as im:
                assert im.mode == "P" and im.size == (500, 375)
            row = index.loc[image_id]
            with Image.open(work / "data/VOCdevkit/VOC2012/JPEGImages" / f"{image_id}.jpg") as im:
                assert im.size == (row.width, row.height)
            labels = load_mask(out / f"{image_id}.png")
            assert labels.shape == (row.height, row.width)
            assert set(np.unique(labels).tolist()) <= {0, *row.labels}, (image_id, row.labels)


def test_seeds_and_walk_at_real_sizes(real_run):
    from vitaff.store import ImageShardReader

    work, _, _ = real_run
    seeds = ImageShardReader(work / "results/seeds/train_aug/shard_0.zarr")
    assert seeds.sizes[0] == (375, 500)
    labels = ImageShardReader(work / "results/affinity_labels/train_aug/shard_0.zarr")
    assert labels.read(0, "labels").shape == (56, 56)  # the 448 x 448 resized image at stride 8
    assert (work / "results/models/affinitynet.pt").is_file()


def test_segmentation_network_at_real_sizes(real_run):
    work, _, val = real_run
    table = pd.read_csv(work / "results/segmentation_miou.csv")
    assert list(zip(table.result, table["mode"])) == [("pseudo_labels", "labels")] + [
        ("network_on_pseudo_labels", m) for m in ("single_scale", "multi_scale_flip", "multi_scale_flip_crf")]
    assert set(table["init"].dropna()) == {"imagenet"} and set(table.n_images) == {N_VAL}
    out = work / "results/segmentation/val"
    assert sorted(p.stem for p in out.glob("*.png")) == sorted(val)
    with Image.open(out / f"{val[0]}.png") as im:
        assert im.mode == "P" and im.size == (500, 375)
    history = pd.read_csv(work / "results/models/segmentation_log.csv")
    assert list(history.iteration) == [1, 2]
    import torch

    state = torch.load(work / "results/models/segmentation.pt", map_location="cpu", weights_only=False)
    assert state["segmentation"]["network"] == "deeplabv3_resnet101"
    assert state["state_dict"]["network.backbone.layer3.22.conv3.weight"].shape == (1024, 256, 1, 1)  # 23 blocks: R101
