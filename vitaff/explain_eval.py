"""Explainability evaluation: the perturbation and ImageNet-segmentation tests (SPEC sections 3-4).

Chefer, Gur & Wolf, "Transformer Interpretability Beyond Attention Visualization", CVPR 2021
(https://arxiv.org/abs/2012.09838), section 4 and Tables 1-3:

* **Segmentation test** (Table 2; SPEC 4): explain the predicted class, upsample the map to the
  input and min-max it to [0, 1]; foreground = map > mean(map). Pixel accuracy and the IoU of
  background and foreground come from one 2-class confusion matrix summed over the dataset
  (:mod:`vitaff.metrics`, the one IoU implementation); mAP is the mean over images of the average
  precision of the flattened pair ``[1 - map, map]`` against the one-hot ``[bg, fg]`` (NaN -> 0).
* **Perturbation test** (Table 1; SPEC 3): for s = 0, 0.1, ..., 0.9 set the ``int(H W s)`` most
  (positive) or least (negative) relevant pixels to 0 in the [0, 1] image, normalise, classify,
  and record top-1 accuracy against the ground truth; AUC = 100 * trapz(acc, s). The explained
  class is the predicted one ("predicted") or the ground truth ("target").

Both loops are batched (one :func:`vitaff.explain.explain_all` call per batch for every method,
perturbed images classified in batches) and return one row per image (and method, mode, class
kind), so shards of an image range are gathered exactly by concatenation (:func:`summarise_segmentation`,
:func:`summarise_perturbation`). The embedded default's small classifier is trained here too
(:func:`train_single_label`): single-label cross-entropy, seeded, resumable per epoch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from vitaff.classifier import normalise, poly_lr
from vitaff.config import ConfigError
from vitaff.explain import ALL_METHODS, explain_all, upsample_and_normalise
from vitaff.metrics import average_precision, confusion_matrix, iou_per_class, pixel_accuracy
from vitaff.errors import InputError
from vitaff.training import build_optimizer, checkpoint, restore

log = logging.getLogger(__name__)

__all__ = [
    "STEPS",
    "RANDOM",
    "DEFAULT_METHODS",
    "foreground",
    "image_average_precision",
    "segmentation_rows",
    "summarise_segmentation",
    "remove_pixels",
    "auc",
    "perturbation_rows",
    "summarise_perturbation",
    "explanation_maps",
    "to_unit_tensor",
    "TrainSettings",
    "train_single_label",
    "accuracy",
    "classify",
]

#: removal fractions of the perturbation test (exact decimals: 0.3 is 3 / 10, not 0.1 * 3)
STEPS: tuple[float, ...] = tuple(i / 10 for i in range(10))
#: name of the random-map baseline (a uniform random pixel map, seeded per image)
RANDOM = "random"
#: the six methods and the three ablations of Chefer et al. Table 3. "B-1" is the reference
#: code's ``blocks[1]`` (blocks counted from the output: (1) = last block, (B-1) = second block)
DEFAULT_METHODS = ("transformer_attribution", "rollout", "raw_attention", "attn_gradcam", "lrp", "partial_lrp",
                   "ta_no_grad", "ta_last_block", "ta_second_block")
MODES = ("positive", "negative")
KINDS = ("predicted", "target")


# ------------------------------------------------------------------------------------------------
# Segmentation test
# ------------------------------------------------------------------------------------------------


def foreground(maps: torch.Tensor) -> torch.Tensor:
    """Binary foreground of [0, 1] maps (B x H x W or H x W): map > mean of its own image."""
    flat = maps.reshape(-1, maps.shape[-2] * maps.shape[-1]) if maps.dim() == 3 else maps.reshape(1, -1)
    mean = flat.mean(1)
    out = flat > mean[:, None]
    return out.reshape(maps.shape)


def image_average_precision(map01: np.ndarray, mask: np.ndarray) -> float:
    """AP of the flattened pair ``[1 - map, map]`` against one-hot ``[bg, fg]``; NaN -> 0."""
    m = np.asarray(map01, dtype=np.float64).reshape(-1)
    fg = (np.asarray(mask).reshape(-1) > 0).astype(np.int64)
    ap = average_precision(np.concatenate([1.0 - m, m]), np.concatenate([1 - fg, fg]))
    return 0.0 if np.isnan(ap) else ap


def segmentation_rows(maps01: dict[str, torch.Tensor], masks: torch.Tensor, indices: Sequence[int]) -> list[dict]:
    """Per image and method: the 2-class confusion counts and the image's AP.

    ``maps01``: method -> B x H x W maps in [0, 1]; ``masks``: B x H x W binary ground truth.
    """
    rows = []
    gt = masks.cpu().numpy().astype(np.int64)
    for method, maps in maps01.items():
        maps = maps.detach().float().cpu()
        pred = foreground(maps).numpy().astype(np.int64)
        values = maps.numpy()
        for b, index in enumerate(indices):
            cm = confusion_matrix(gt[b], pred[b], num_classes=2)
            rows.append({"index": int(index), "method": method, "bg_bg": int(cm[0, 0]), "bg_fg": int(cm[0, 1]),
                         "fg_bg": int(cm[1, 0]), "fg_fg": int(cm[1, 1]),
                         "ap": image_average_precision(values[b], gt[b])})
    return rows


def summarise_segmentation(frame) -> "pd.DataFrame":
    """Per-image rows (of any number of shards) -> one row per method: pixel_accuracy, mAP,
    mIoU in percent and n_images. Methods keep their first-appearance order."""
    import pandas as pd

    _check_unique(frame, ["index", "method"])
    out = []
    for method, group in frame.groupby("method", sort=False):
        cm = np.array([[group.bg_bg.sum(), group.bg_fg.sum()], [group.fg_bg.sum(), group.fg_fg.sum()]], dtype=np.int64)
        iou = iou_per_class(cm)
        out.append({"method": method, "pixel_accuracy": 100 * pixel_accuracy(cm),
                    "mAP": 100 * float(group.sort_values("index").ap.mean()),
                    "mIoU": 100 * float(np.nanmean(iou)), "iou_bg": 100 * iou[0], "iou_fg": 100 * iou[1],
                    "n_images": int(group["index"].nunique())})
    return pd.DataFrame(out)


# ------------------------------------------------------------------------------------------------
# Perturbation test
# ------------------------------------------------------------------------------------------------


def remove_pixels(images01: torch.Tensor, maps: torch.Tensor, fraction: float, positive: bool) -> torch.Tensor:
    """Copy of ``images01`` (B x C x H x W, values in [0, 1]) with the ``int(H * W * fraction)``
    most relevant (``positive``) or least relevant pixels of ``maps`` (B x H x W) set to 0 in every
    channel. Ties keep raster order (stable sort)."""
    B, C, H, W = images01.shape
    if maps.shape != (B, H, W):
        raise ValueError(f"maps {tuple(maps.shape)} do not match images {tuple(images01.shape)}")
    k = int(H * W * fraction)
    out = images01.clone()
    if k <= 0:
        return out
    flat = maps.reshape(B, -1).float()
    order = torch.argsort(-flat if positive else flat, dim=1, stable=True)[:, :k]
    keep = torch.ones(B, H * W, dtype=images01.dtype, device=images01.device)
    keep.scatter_(1, order.to(images01.device), 0.0)
    return out * keep.reshape(B, 1, H, W)


def auc(accuracy: Sequence[float], steps: Sequence[float] = STEPS) -> float:
    """100 * trapezoid area under accuracy (fractions) over the removal fractions ``steps``."""
    acc = np.asarray(accuracy, dtype=np.float64)
    x = np.asarray(steps, dtype=np.float64)
    return float(100 * np.sum((x[1:] - x[:-1]) * (acc[1:] + acc[:-1]) / 2))


@torch.no_grad()
def classify(model: torch.nn.Module, images01: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Top-1 classes (on the CPU) of [0, 1] images, normalised here, in batches."""
    preds = [model(normalise(chunk)).argmax(1).cpu() for chunk in images01.split(batch_size)]
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)


def random_maps(shape: tuple[int, int], indices: Sequence[int], seed: int) -> torch.Tensor:
    """Uniform random pixel maps, one generator per image index (independent of batching and sharding)."""
    return torch.stack([torch.from_numpy(np.random.default_rng([seed, 11, int(i)]).random(shape)).float()
                        for i in indices])


def explanation_maps(model: torch.nn.Module, images01: torch.Tensor, target: torch.Tensor, methods: Sequence[str],
                     start_layer: int = 1, indices: Sequence[int] | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    """Maps at input resolution, min-max normalised per image: method -> B x H x W in [0, 1].

    One :func:`explain_all` forward for all relevance methods; token maps are upsampled bilinearly
    (``align_corners=False``, SPEC 2), ``lrp`` is already on the pixels; ``random`` is a seeded
    uniform map per image index.
    """
    H, W = images01.shape[-2:]
    relevance = [m for m in methods if m != RANDOM]
    out: dict[str, torch.Tensor] = {}
    if relevance:
        raw = explain_all(model, normalise(images01), target, relevance, start_layer)
        for m in relevance:
            r = raw[m].detach().float()
            out[m] = upsample_and_normalise(r, size=None if tuple(r.shape[-2:]) == (H, W) else (H, W)).cpu()
    if RANDOM in methods:
        idx = list(indices) if indices is not None else list(range(images01.shape[0]))
        out[RANDOM] = random_maps((H, W), idx, seed)
    return {m: out[m] for m in methods}


def perturbation_rows(model: torch.nn.Module, images01: torch.Tensor, labels: torch.Tensor, indices: Sequence[int],
                      methods: Sequence[str], start_layer: int = 1, forward_batch: int = 128,
                      seed: int = 0) -> list[dict]:
    """Per image, method, mode (positive/negative) and kind (predicted/target): 0/1 correctness of
    the top-1 prediction after removing each fraction of :data:`STEPS` (columns ``s0`` .. ``s9``).

    Where the prediction equals the label, the "target" map is the "predicted" map, so its rows
    are copied instead of recomputed.
    """
    labels = labels.to(torch.long).cpu()
    pred = classify(model, images01, forward_batch)
    base = (pred == labels).numpy()  # step 0 removes nothing
    wrong = torch.nonzero(pred != labels).flatten()
    maps = {"predicted": explanation_maps(model, images01, pred, methods, start_layer, indices, seed)}
    if len(wrong):
        sub = explanation_maps(model, images01[wrong], labels[wrong], methods, start_layer,
                               [indices[i] for i in wrong.tolist()], seed)
        maps["target"] = {m: maps["predicted"][m].clone().index_copy_(0, wrong, sub[m]) for m in methods}
    rows = []
    for method in methods:
        for mode in MODES:
            predicted = _correct_after_removal(model, images01, labels, maps["predicted"][method], base,
                                               torch.arange(images01.shape[0]), mode == "positive", forward_batch)
            target = predicted.copy()
            if len(wrong):
                target[wrong.numpy()] = _correct_after_removal(model, images01, labels, maps["target"][method], base,
                                                               wrong, mode == "positive", forward_batch)[wrong.numpy()]
            for kind, correct in (("predicted", predicted), ("target", target)):
                for b, index in enumerate(indices):
                    row = {"index": int(index), "method": method, "mode": mode, "kind": kind,
                           "label": int(labels[b]), "predicted": int(pred[b])}
                    row.update({f"s{j}": int(correct[b, j]) for j in range(len(STEPS))})
                    rows.append(row)
    return rows


def _correct_after_removal(model, images01, labels, maps, base, todo, positive, forward_batch) -> np.ndarray:
    """B x len(STEPS) 0/1 correctness; rows outside ``todo`` keep the unperturbed result."""
    correct = np.repeat(base[:, None], len(STEPS), axis=1).astype(np.int64)
    if len(todo):
        x, m = images01[todo], maps[todo]
        stack = torch.cat([remove_pixels(x, m, s, positive) for s in STEPS[1:]])
        ok = classify(model, stack, forward_batch).reshape(len(STEPS) - 1, len(todo)) == labels[todo][None]
        correct[todo.numpy(), 1:] = ok.numpy().T
    return correct


def summarise_perturbation(frame) -> "pd.DataFrame":
    """Per-image rows -> one row per method x mode x kind: AUC (percent), accuracy per step, n_images."""
    import pandas as pd

    _check_unique(frame, ["index", "method", "mode", "kind"])
    cols = [f"s{j}" for j in range(len(STEPS))]
    out = []
    for (method, mode, kind), group in frame.groupby(["method", "mode", "kind"], sort=False):
        acc = group[cols].mean().to_numpy(dtype=np.float64)
        row = {"method": method, "mode": mode, "kind": kind, "AUC": auc(acc)}
        row.update({f"acc_{s:.1f}": 100 * a for s, a in zip(STEPS, acc)})
        row["n_images"] = int(group["index"].nunique())
        out.append(row)
    return pd.DataFrame(out)


def _check_unique(frame, keys: list[str]) -> None:
    dup = frame.duplicated(keys)
    if dup.any():
        raise InputError(f"{int(dup.sum())} duplicated rows over {keys}: overlapping shards?")
    idx = np.sort(frame["index"].unique())
    if len(idx) and not np.array_equal(idx, np.arange(len(idx))):
        missing = sorted(set(range(int(idx.max()) + 1)) - set(idx.tolist()))[:10]
        raise InputError(f"image indices are not contiguous from 0 (missing e.g. {missing}): a shard is missing")


# ------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------


def to_unit_tensor(image: np.ndarray, size: int | None = None) -> torch.Tensor:
    """H x W x 3 uint8 -> 3 x size x size float in [0, 1] (bilinear resize, ``align_corners=False``)."""
    x = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div_(255.0)
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False)[0].clamp_(0, 1)
    return x


def resize_mask(mask: np.ndarray, size: int) -> torch.Tensor:
    """H x W binary -> size x size (nearest)."""
    m = torch.from_numpy(np.array(mask, dtype=np.float32))[None, None]
    return F.interpolate(m, size=(size, size), mode="nearest")[0, 0].to(torch.uint8)


def check_methods(methods: Iterable[str]) -> list[str]:
    methods = list(methods)
    bad = [m for m in methods if m not in ALL_METHODS and m != RANDOM]
    if bad:
        raise ConfigError(f"unknown explanation methods {bad}; valid: {', '.join(ALL_METHODS + (RANDOM,))}")
    return methods


# ------------------------------------------------------------------------------------------------
# The embedded default's classifier (single label)
# ------------------------------------------------------------------------------------------------


@dataclass
class TrainSettings:
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.05
    momentum: float = 0.9
    poly_power: float = 0.9
    seed: int = 0


@torch.no_grad()
def accuracy(model: torch.nn.Module, images01: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> float:
    model.eval()
    return float((classify(model, images01, batch_size) == labels).float().mean())


def train_single_label(model: torch.nn.Module, train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor,
                       val_y: torch.Tensor, settings: TrainSettings, resume_path: str | Path | None = None) -> list[dict]:
    """Cross-entropy training in place on [0, 1] images held in memory (random horizontal flips);
    poly learning-rate decay; history rows (epoch, loss, lr, train/val accuracy in percent).

    With ``resume_path`` the state is saved after every epoch and training continues from it,
    ending with the same weights as an uninterrupted run.
    """
    opt = build_optimizer(model.parameters(), settings.optimizer, settings.lr, settings.momentum, settings.weight_decay)
    gen = torch.Generator().manual_seed(settings.seed)
    torch.manual_seed(settings.seed)
    n = train_x.shape[0]
    per_epoch = -(-n // settings.batch_size)
    max_steps = settings.epochs * per_epoch
    history, start = restore(resume_path, model, opt, gen)
    for epoch in range(start, settings.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        flips = torch.rand(n, generator=gen) < 0.5
        total = 0.0
        for step in range(per_epoch):
            idx = perm[step * settings.batch_size:(step + 1) * settings.batch_size]
            x = train_x[idx]
            x = torch.where(flips[idx][:, None, None, None], x.flip(-1), x)
            lr = poly_lr(settings.lr, epoch * per_epoch + step, max_steps, settings.poly_power)
            for group in opt.param_groups:
                group["lr"] = lr
            loss = F.cross_entropy(model(normalise(x)), train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        row = {"epoch": epoch + 1, "loss": total / n, "lr": lr,
               "train_acc": 100 * accuracy(model, train_x, train_y), "val_acc": 100 * accuracy(model, val_x, val_y)}
        history.append(row)
        log.info("epoch %d: %s", epoch + 1, row)
        checkpoint(resume_path, model, opt, gen, history, epoch + 1)
    model.eval()
    return history


# ------------------------------------------------------------------------------------------------
# Data sources of the pipeline stages (real data or the embedded default)
# ------------------------------------------------------------------------------------------------


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
