"""Input pipelines of the stages that feed a model (classifier and AffinityNet training, seeds,
AffinityNet inference in the random walk): parallel, seeded DataLoaders and cheap augmentation.

Not a paper step: plumbing that keeps the model busy. The split of the work is

* worker processes: JPEG decoding (draft mode when the target is at most half the source), part
  hiding, resizing to the network input, and drawing each sample's augmentation parameters
  (:func:`draw_augment`, the same random calls in the same order as torchvision's
  ``ColorJitter``, so ``workers: 0`` consumes the RNG exactly as the per-image pipeline did);
* the training step, on the batch on the model's device: horizontal flip, colour jitter
  (:func:`augment_batch`, vectorised over the batch, each image with its own parameters and
  order of the four adjustments), normalisation.

Workers are seeded by the loader's generator (``base_seed + worker id``, torch's rule), which the
training checkpoints, so a fixed seed and worker count gives the same samples and a resumed run
the same epochs. Workers are started per epoch (not persistent) for that reason; forking two costs
well under a second per epoch (``bench/throughput.py``).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vitaff.data.voc import load_image

MEAN = STD = 0.5
PRECISIONS = ("fp32", "bf16")
# augmentation vector of one sample: [flip, order_0..order_3, brightness, contrast, saturation, hue];
# an adjustment left out of the jitter (range None, or hue 0) is NaN and skipped
AUG_LEN = 9


def resolve_workers(setting: int | None, threads: int | None, device) -> int:
    """DataLoader worker processes of a job: ``setting`` when given, else (``null``) 0 on a CPU
    device and the job's threads minus one (the main process drives the GPU) on an accelerator.

    Why 0 on a CPU: torch's intra-op threads already use the job's cores for the model step, which
    costs 100-1000x the loading of an image there (``bench/throughput.py``), so workers only move
    decoding onto the same cores and add their start-up to every epoch. On a GPU the step is fast and
    decoding on the main thread would starve it.
    """
    if setting is not None:
        return max(0, int(setting))
    if torch.device(device).type == "cpu":
        return 0
    n = threads or len(os.sched_getaffinity(0))
    return max(1, int(n) - 1)


def _seed_worker(worker_id: int) -> None:
    """numpy and random in each worker from the worker's torch seed (torch seeds only itself)."""
    seed = torch.initial_seed() % 2 ** 32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(dataset: Dataset, batch_size: int, *, workers: int = 0, device="cpu", shuffle: bool = False,
                generator: torch.Generator | None = None, collate_fn=None) -> DataLoader:
    """A DataLoader with ``workers`` seeded processes and pinned memory on CUDA."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=workers,
                      pin_memory=torch.device(device).type == "cuda", worker_init_fn=_seed_worker if workers else None,
                      collate_fn=collate_fn, prefetch_factor=4 if workers else None)


def to_device(x: torch.Tensor, device) -> torch.Tensor:
    """Copy to ``device``; asynchronous from pinned memory on CUDA."""
    device = torch.device(device)
    return x.to(device, non_blocking=device.type == "cuda")


def autocast(device, precision: str):
    """``torch.autocast`` for ``precision`` (``bf16``) on the device's type; a no-op for ``fp32``.
    The weights stay fp32 (the optimiser updates fp32 master weights)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")


def draw_augment(flip: bool, jitter: Sequence[float] | None, generator: torch.Generator | None = None) -> torch.Tensor:
    """One sample's augmentation parameters, drawn in the order of the per-image pipeline: the flip
    (``rand < 0.5``), then torchvision ``ColorJitter``'s ``randperm(4)`` and a uniform factor per
    adjustment in brightness, contrast, saturation, hue (ranges ``1 -+ v`` clipped at 0, hue
    ``-+ v``; a zero hue is not drawn, as in torchvision)."""
    aug = torch.full((AUG_LEN,), float("nan"))
    aug[0] = float(torch.rand((), generator=generator) < 0.5) if flip else 0.0
    aug[1:5] = torch.arange(4)
    if jitter is None:
        return aug
    aug[1:5] = torch.randperm(4, generator=generator).float()
    b, c, s, h = (float(v) for v in jitter)
    ranges = [(max(1 - b, 0.0), 1 + b), (max(1 - c, 0.0), 1 + c), (max(1 - s, 0.0), 1 + s), (-h, h)]
    centres = (1.0, 1.0, 1.0, 0.0)
    for k, ((lo, hi), centre) in enumerate(zip(ranges, centres)):
        if not lo == hi == centre:
            aug[5 + k] = float(torch.empty(1).uniform_(lo, hi, generator=generator).item())
    return aug


def _grey(x: torch.Tensor) -> torch.Tensor:
    """B x 1 x H x W luma (ITU-R 601-2, torchvision's weights and operation order)."""
    r, g, b = x.unbind(dim=-3)
    return r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(-3)


def _blend(x: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor | float) -> torch.Tensor:
    """``ratio x + (1 - ratio) other`` clamped to [0, 1], rounded as torchvision's ``_blend`` (1 - ratio
    in double, a fused multiply-add), so a batch equals its images adjusted one by one."""
    if isinstance(ratio, float):  # one image: torchvision's scalar form (a broadcast addcmul is 10x slower on a CPU)
        return x.mul(ratio).add_(other, alpha=1.0 - ratio).clamp_(0, 1)
    return torch.addcmul(x.mul(ratio), other, (1.0 - ratio.double()).to(x.dtype)).clamp_(0, 1)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the HSV hue of B x 3 x H x W images in [0, 1] by ``shift`` (B x 1 x 1 x 1, in turns).

    The map of torchvision's ``adjust_hue`` (RGB -> HSV, hue + shift mod 1, HSV -> RGB), with the
    inverse written as ``v - c * clamp(min(k, 4 - k), 0, 1)``, ``k = (n + 6 h) mod 6`` for
    ``n = 5, 3, 1`` (R, G, B; v = max, c = max - min): half the operations, the same result to
    float rounding (``tests/test_loading.py``).
    """
    r, g, b = x.unbind(dim=-3)
    maxc = torch.maximum(torch.maximum(r, g), b)
    chroma = maxc - torch.minimum(torch.minimum(r, g), b)
    inv = torch.where(chroma > 0, chroma, 1.0).reciprocal_()
    # hue in sextants: red max (g - b) / c, green max 2 + (b - r) / c, blue max 4 + (r - g) / c
    h = (r - g).add_(chroma, alpha=4.0).mul_(inv)
    h = torch.where(maxc == g, (b - r).add_(chroma, alpha=2.0).mul_(inv), h)
    h = torch.where(maxc == r, (g - b).mul_(inv), h)
    n = torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    k = h.add_(6.0 * shift[:, 0] + 6.0).unsqueeze(-3) + n  # positive: floor below is the mod 6
    k = k.sub_(torch.floor(k / 6.0).mul_(6.0))
    return maxc.unsqueeze(-3) - chroma.unsqueeze(-3) * torch.minimum(k, 4.0 - k).clamp_(0, 1)


def _adjust(x: torch.Tensor, op: int, factor: torch.Tensor | float) -> torch.Tensor:
    """Adjustment ``op`` (0 brightness, 1 contrast, 2 saturation, 3 hue) with per-image factors
    (a float for a batch of one)."""
    if isinstance(factor, float):
        f = factor if op < 3 else torch.tensor([factor], dtype=x.dtype, device=x.device).view(1, 1, 1, 1)
    else:
        f = factor.view(-1, 1, 1, 1).to(x.dtype)
    if op == 0:
        return x.mul(f).clamp_(0, 1)
    if op == 1:
        return _blend(x, _grey(x).mean(dim=(-3, -2, -1), keepdim=True), f)
    if op == 2:
        return _blend(x, _grey(x), f)
    return adjust_hue(x, f)


def augment_batch(x: torch.Tensor, aug: torch.Tensor, normalise: bool = True) -> torch.Tensor:
    """Flip and colour-jitter a B x 3 x H x W batch in [0, 1] with the parameters of
    :func:`draw_augment` (B x 9, any device), then normalise with mean = std = 0.5.

    Each image gets its adjustments in its own order. On an accelerator the batch is adjusted at
    once: at each of the four positions the images whose adjustment there is ``op`` are adjusted
    together (at most 16 vectorised calls per batch); on a CPU image by image. Both give the same
    numbers as torchvision's per-image ``ColorJitter`` (bit for bit without hue).
    """
    if len(x) == 1:
        return _augment_one(x, aug[0].tolist(), normalise)
    if x.device.type == "cpu":
        # image by image on a CPU: a 448 px image and its temporaries fit the cache, a batch does not
        # (hue: 6 ms per image alone, 12 ms in a batch of 8)
        return torch.cat([_augment_one(x[i:i + 1], a, normalise) for i, a in enumerate(aug.tolist())])
    return _augment_vectorised(x, aug.to(x.device), normalise)


def _augment_vectorised(x: torch.Tensor, aug: torch.Tensor, normalise: bool) -> torch.Tensor:
    """:func:`augment_batch` on the whole batch at once (an accelerator's path)."""
    x = x.clone()
    flip = aug[:, 0] > 0.5
    if flip.any():
        x[flip] = x[flip].flip(-1)
    order = aug[:, 1:5].long()
    for pos in range(4):
        for op in range(4):
            sel = (order[:, pos] == op) & ~torch.isnan(aug[:, 5 + op])
            if sel.all():
                x = _adjust(x, op, aug[:, 5 + op])
            elif sel.any():
                idx = sel.nonzero()[:, 0]
                x[idx] = _adjust(x[idx], op, aug[idx, 5 + op])
    return (x - MEAN) / STD if normalise else x


def _augment_one(x: torch.Tensor, aug: list[float], normalise: bool) -> torch.Tensor:
    """:func:`augment_batch` of one image, its parameters as Python numbers (no per-call tensor
    bookkeeping: on a 128 px image that bookkeeping cost more than the adjustments)."""
    if aug[0] > 0.5:
        x = x.flip(-1)
    for op in aug[1:5]:
        factor = aug[5 + int(op)]
        if factor == factor:  # NaN: adjustment not drawn
            x = _adjust(x, int(op), factor)
    return (x - MEAN) / STD if normalise else x


class ImageList(Dataset):
    """Decoded images of a list of paths (H x W x 3 uint8 tensors), for the inference stages."""

    def __init__(self, paths: Sequence[str | Path]):
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        # a tensor: a worker hands it over in shared memory instead of pickling the pixels
        return torch.from_numpy(load_image(self.paths[i]))


def _as_list(batch):
    return list(batch)


def image_batches(paths: Sequence[str | Path], batch_size: int, workers: int = 0):
    """Yield lists of decoded images in order, ``batch_size`` at a time, read by ``workers`` processes
    ahead of the model (0: read in this process, one batch at a time)."""
    for batch in make_loader(ImageList(paths), batch_size, workers=workers, collate_fn=_as_list):
        yield [image.numpy() for image in batch]
