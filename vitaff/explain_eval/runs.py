"""The explainability rules' data sources and loops: the configured real data or the embedded
default, the explained model, shard ranges, and the batched runs of both tests."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import torch

from vitaff.config import ConfigError
from vitaff.explain_eval.maps import classify, explanation_maps
from vitaff.explain_eval.perturbation import perturbation_rows
from vitaff.explain_eval.segmentation import segmentation_rows
from vitaff.explain_eval.transforms import resize_mask, to_unit_tensor

log = logging.getLogger(__name__)


def is_embedded(explain: dict) -> bool:
    """Embedded default iff neither real data set is configured."""
    return not explain.get("imagenet_val") and not explain.get("gtsegs")


def embedded_sets(explain: dict):
    from vitaff.data.imagenet_seg import EmbeddedSets

    e = explain["embedded"]
    keys = ("seed", "n_train", "n_val", "n_seg", "image_size", "seg_size_range", "classes", "object_scale",
            "part_area", "part_tint")
    return EmbeddedSets(**{k: tuple(e[k]) if isinstance(e[k], list) else e[k] for k in keys})


def load_eval_model(explain: dict, model_path: str | None, device) -> tuple[torch.nn.Module, int]:
    """The explained classifier in eval mode and its input size: the embedded checkpoint, or the
    configured real model (local checkpoint or timm's weights)."""
    from vitaff.classifier import load_classifier
    from vitaff.models import create_model

    if is_embedded(explain):
        model = load_classifier(model_path, device)
        return model, int(model.img_size)
    source = explain.get("checkpoint") or (True if explain.get("pretrained") else None)
    if source is None:
        raise ConfigError("explain.checkpoint is null and explain.pretrained is false: no weights for the real model")
    model = create_model(explain["model"], num_classes=explain["num_classes"], pretrained=source,
                         img_size=explain["img_size"], weights_key="explain.checkpoint")
    return model.to(device).eval(), int(explain["img_size"])


def segmentation_data(explain: dict):
    """The gtsegs reader of the configured (or embedded) segmentation set."""
    from vitaff.data.imagenet_seg import GtSegs

    if is_embedded(explain):
        return GtSegs(Path(explain["embedded"]["dir"]) / "gtsegs.mat")
    if not explain.get("gtsegs"):
        raise ConfigError("explain.gtsegs is null but explain.imagenet_val is set: give gtsegs_ijcv.mat to run "
                         "the segmentation test on real data")
    return GtSegs(explain["gtsegs"])


def perturbation_data(explain: dict) -> tuple[list[Path], list[int]]:
    """Image paths and labels of the configured (or embedded) perturbation set."""
    from vitaff.data.imagenet_seg import read_imagenet_val

    if is_embedded(explain):
        return read_imagenet_val(Path(explain["embedded"]["dir"]) / "classification" / "val")
    if not explain.get("imagenet_val"):
        raise ConfigError("explain.imagenet_val is null but explain.gtsegs is set: give the ImageNet validation "
                         "folder to run the perturbation test on real data")
    return read_imagenet_val(explain["imagenet_val"], explain.get("imagenet_labels"))


def shard_indices(n: int, limit: int | None, shard: int, shards: int) -> list[int]:
    """Image indices of one shard: a contiguous slice of the first ``limit`` (or all ``n``)."""
    from vitaff.store import shard_slice

    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} outside 0..{shards - 1}")
    total = n if limit is None else min(n, limit)
    return shard_slice(range(total), shard, shards)


def run_segmentation(model, img_size: int, data, indices: Sequence[int], methods: Sequence[str], start_layer: int,
                     batch_size: int, device, forward_batch: int = 128) -> list[dict]:
    """Segmentation rows of the images ``indices`` of a gtsegs reader, in batches."""
    rows = []
    for start in range(0, len(indices), batch_size):
        idx = list(indices[start:start + batch_size])
        images, masks = zip(*(data[i] for i in idx))
        x = torch.stack([to_unit_tensor(im, img_size) for im in images]).to(device)
        gt = torch.stack([resize_mask(m, img_size) for m in masks])
        pred = classify(model, x, forward_batch)
        maps = explanation_maps(model, x, pred, methods, start_layer, idx)
        rows += segmentation_rows(maps, gt, idx)
        log.info("segmentation: %d / %d images", start + len(idx), len(indices))
    return rows


def run_perturbation(model, img_size: int, paths: Sequence[Path], labels: Sequence[int], indices: Sequence[int],
                     methods: Sequence[str], start_layer: int, batch_size: int, forward_batch: int, seed: int,
                     device) -> list[dict]:
    """Perturbation rows of the images ``indices`` of an ImageNet-style list, in batches."""
    from vitaff.data.imagenet_seg import load_rgb

    rows = []
    for start in range(0, len(indices), batch_size):
        idx = list(indices[start:start + batch_size])
        x = torch.stack([to_unit_tensor(load_rgb(paths[i]), img_size) for i in idx]).to(device)
        y = torch.tensor([labels[i] for i in idx])
        rows += perturbation_rows(model, x, y, idx, methods, start_layer, forward_batch, seed)
        log.info("perturbation: %d / %d images", start + len(idx), len(indices))
    return rows
