"""Seed sources at real scale: the seed-source table (results/seed_methods.csv) with the real run's
model names on VOC-sized images (SPEC 8).

The repository's config.yaml with ``dataset.root`` set (the hybrid ``vit_base_r50_s16_384`` at
448 px; the CNN baseline timm ``resnet50`` at output stride 16, 448 px), both from checkpoint files
written by timm itself with random weights, 500 x 375 images, 1 epoch per training stage. Two
sources: ``rollout`` as ``seeds.method`` (its rows come from the main job's artifacts) and ``cam``
(its own subtree), with two scales and flips for the seeds.
"""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from pipeline_helpers import ROOT, run_snakemake
from test_real_scale import N_VAL, make_voc_with_sbd, write_timm_checkpoint

pytestmark = pytest.mark.slow


def write_resnet50_checkpoint(path):
    """What timm's resnet50 (ImageNet head included) saves, with random weights."""
    import timm
    import torch

    torch.manual_seed(0)
    torch.save(timm.create_model("resnet50", pretrained=False).state_dict(), path)


@pytest.fixture(scope="module")
def methods_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("real_scale_methods")
    voc, train_aug, val = make_voc_with_sbd(work / "data")
    write_timm_checkpoint(work / "vit_base_r50_s16_384.pth")
    write_resnet50_checkpoint(work / "resnet50.pth")
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["dataset"]["root"] = str(voc)
    cfg["classifier"].update(checkpoint=str(work / "vit_base_r50_s16_384.pth"), pretrained=False,
                             epochs=1, batch_size=2)
    cfg["cam"].update(checkpoint=str(work / "resnet50.pth"), pretrained=False, epochs=1, batch_size=2)
    # two scales with flips: psa's four (1.0, 0.5, 1.5, 2.0) cost the rollout 135 CPU-s per image
    # at 2.7 GB (`python bench/seeds.py --method rollout --scales 1.0 0.5 1.5 2.0`), too slow here
    cfg["seeds"].update(method="rollout", scales=[1.0, 0.5], previews=1, batch_size=2)
    cfg["affinity"].update(epochs=1, batch_size=2)
    cfg["random_walk"]["logt"] = 3
    cfg["seed_methods"].update(methods=["rollout", "cam"], figure_images=1)
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    run_snakemake(work, target=("results/seed_methods.csv", "results/figures/seed_methods.png",
                                "results/seed_threshold_curve.csv"), timeout=3000)
    return work, train_aug, val


def test_the_table_has_every_method_stage_and_split(methods_run):
    work, _, _ = methods_run
    table = pd.read_csv(work / "results/seed_methods.csv")
    assert list(table.columns[:4]) == ["method", "stage", "split", "n_images"]
    assert sorted(zip(table.method, table.stage, table.split)) == sorted(
        (m, stage, split) for m in ("rollout", "cam") for stage in ("seeds", "crf", "random_walk")
        for split in ("train", "val"))
    assert dict(zip(table.split, table.n_images)) == {"train": 2, "val": N_VAL}
    assert table["mIoU"].between(0, 100).all()


def test_the_main_method_reuses_the_main_jobs_artifacts(methods_run):
    work, _, _ = methods_run
    assert (work / "results/seeds/train_aug/shard_0.zarr").is_dir()
    assert (work / "results/models/affinitynet.pt").is_file()
    assert not (work / "results/methods/rollout").exists()
    main_rows = pd.read_csv(work / "results/voc_miou.csv")
    table = pd.read_csv(work / "results/seed_methods.csv")
    pd.testing.assert_frame_equal(table[table.method == "rollout"].drop(columns="method").reset_index(drop=True),
                                  main_rows)
    assert (work / "results/methods/cam/affinitynet.pt").is_file()


def test_cam_seeds_at_real_sizes(methods_run):
    import torch

    from vitaff.store import ImageShardReader

    work, _, _ = methods_run
    state = torch.load(work / "results/models/cam.pt", map_location="cpu", weights_only=False)
    assert state["model"] == "resnet50" and state["img_size"] == 448 and state["output_stride"] == 16
    assert state["state_dict"]["classifier.weight"].shape == (20, 2048, 1, 1)
    seeds = ImageShardReader(work / "results/methods/cam/seeds/train_aug/shard_0.zarr")
    assert seeds.sizes[0] == (375, 500)
    maps = seeds.read_present(0, "maps").astype("float32")
    assert len(maps) == len(seeds.classes[0])
    for m in maps:  # every present class's map peaks at 1 (psa's max normalisation), less psa's
        # +1e-5 in the denominator, which shows at random weights: raw CAM peaks of about 3e-3
        # give M / (M + 1e-5) = 0.996
        assert 0.99 <= m.max() <= 1.0 + 1e-3
    curve = pd.read_csv(work / "results/seed_threshold_curve.csv")
    assert len(curve) == 61 and curve.best.sum() == 1 and curve.fixed.sum() == 1
    assert (work / "results/figures/seed_methods.png").is_file()
