"""Paper step 2: class-wise relevance seeds (SPEC 5 and 6, "Seeds").

For every class present in an image, in the study's order (SPEC 5), separately for the image and
for its horizontal flip: the transformer-attribution map of that class on the token grid
(28 x 28 for the hybrid at 448), bilinear x16 (``align_corners=False``) to the network input
(448 x 448), clamped at 0, raised to 1/3 (``cube_root``), min-max normalised to [0, 1] per class,
bilinear to the image size; the flipped map is flipped back and the two are averaged (no
renormalisation after). Without flip the single-pass chain is the seed.
One forward per batch, then one gradient and relevance sweep per class rank
(:func:`vitaff.explain.explain_classes`), whose memory does not grow with the number of classes.
"""

from __future__ import annotations

import contextlib
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from vitaff.classifier import normalise, resize, to_tensor
from vitaff.data.voc import NUM_FG_CLASSES

PRECISIONS = ("fp32", "bf16")


def release_large_blocks(threshold: int = 1 << 20) -> bool:
    """Serve allocations above ``threshold`` bytes with their own mappings (glibc ``mallopt``
    ``M_MMAP_THRESHOLD``), so that freed activation-sized tensors go back to the system.

    glibc raises its mmap threshold to 32 MiB once a large block is freed; attention-sized
    tensors (12 x 785^2 x 4 B = 30 MB at 448 px) then come from the heap, and the heap
    fragments: without this the seeds' peak above the model was 742 instead of 496 MiB per
    image (hybrid at 448, batch 1, ``bench/seeds.py --heap default``). Returns whether it was
    applied (False off glibc).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(-3, int(threshold)))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def seed_chain(grid: torch.Tensor, input_size: tuple[int, int], image_size: tuple[int, int],
               cube_root: bool) -> torch.Tensor:
    """One pass of the seed post-processing: K x h x w token-grid maps -> K x H x W in [0, 1].

    Bilinear to ``input_size`` (the network input: x16 of the token grid), clamp >= 0, cube root
    if ``cube_root``, min-max per map (a constant map gives 0), bilinear to ``image_size``.
    """
    from vitaff.explain import upsample_and_normalise

    m = F.interpolate(grid[:, None].float(), size=tuple(input_size), mode="bilinear", align_corners=False)[:, 0]
    m = m.clamp_min(0)
    if cube_root:
        m = m.pow(1 / 3)
    m = upsample_and_normalise(m)
    return F.interpolate(m[:, None], size=tuple(image_size), mode="bilinear", align_corners=False)[:, 0]


def class_seeds(model: torch.nn.Module, images: Sequence[np.ndarray], classes: Sequence[Sequence[int]], img_size: int,
                device, *, method: str = "transformer_attribution", start_layer: int = 1, flip: bool = True,
                cube_root: bool = False, precision: str = "fp32", scales: Sequence[float] = (1.0,)) -> list[torch.Tensor]:
    """Seeds for a batch: per image a len(classes_i) x H_i x W_i float tensor in [0, 1] (CPU).

    ``classes`` are VOC indices (1..20); the classifier's outputs are indexed by class - 1.
    ``precision``: ``"fp32"``, or ``"bf16"`` for the forward, gradient and relevance passes under
    ``torch.autocast`` (the post-processing runs in fp32).
    ``scales``: the network input is ``img_size x scale`` (a multiple of the token stride) per
    scale, with the position embedding resampled to that grid (timm's ``resample_abs_pos_embed``,
    SPEC 8); every pass (scale, and flip) goes through :func:`seed_chain` and the passes are
    averaged. Scales run one after the other: memory is that of the largest scale's batch.
    ``scales=(1.0,)`` is the study's single-scale seed, bit for bit.
    """
    from vitaff.cam import scaled_size
    from vitaff.explain import explain_classes

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if not scales:
        raise ValueError("scales must name at least one scale (1.0: the study's)")
    device = torch.device(device)
    stride = token_stride(model) if any(scale != 1.0 for scale in scales) else 1
    targets = [[int(c) - 1 for c in cls] for cls in classes]
    if flip:
        targets = targets + targets
    totals: list[torch.Tensor | None] = [None] * len(images)
    for scale in scales:
        size = scaled_size(img_size, scale, stride)
        x = torch.stack([normalise(resize(to_tensor(im), size)) for im in images]).to(device)
        if flip:
            x = torch.cat([x, x.flip(-1)])
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"), \
                resampled_position_embedding(model, size != img_size):
            grids = explain_classes(model, x, targets, method=method, start_layer=start_layer)
        input_size = tuple(x.shape[-2:])
        del x
        for i, (image, cls) in enumerate(zip(images, classes)):
            if len(cls) == 0:
                continue
            size_hw = tuple(image.shape[:2])
            maps = seed_chain(grids[i], input_size, size_hw, cube_root)
            if flip:
                maps = maps + seed_chain(grids[i + len(images)], input_size, size_hw, cube_root).flip(-1)
            totals[i] = maps if totals[i] is None else totals[i] + maps
        del grids
    passes = len(scales) * (2 if flip else 1)
    return [torch.zeros(0, *image.shape[:2]) if total is None else (total / passes).cpu()
            for total, image in zip(totals, images)]


@contextlib.contextmanager
def resampled_position_embedding(model: torch.nn.Module, enabled: bool):
    """Let the ViT take another input size for the duration: its position embedding is then resampled
    to the input's token grid on every forward (timm's ``resample_abs_pos_embed``, bicubic; see
    :meth:`vitaff.models.vit.VisionTransformer._pos_embed`)."""
    if not enabled:
        yield
        return
    before = model.dynamic_img_size
    model.dynamic_img_size = True
    try:
        yield
    finally:
        model.dynamic_img_size = before


def token_stride(model: torch.nn.Module) -> int:
    """Pixels per token of a ViT (the patch size) or a hybrid (its CNN stem's reduction)."""
    pe = model.patch_embed
    return int(getattr(pe, "reduction", None) or pe.patch_size[0])


def to_full_stack(maps: torch.Tensor | np.ndarray, classes: Sequence[int], num_fg: int = NUM_FG_CLASSES) -> np.ndarray:
    """len(classes) x H x W -> num_fg x H x W with each map at its class position (index class - 1).
    The stores keep the present classes' maps only (disk grows with the classes present)."""
    maps = np.asarray(maps)
    full = np.zeros((num_fg, *maps.shape[-2:]), dtype=np.float32)
    for k, c in enumerate(classes):
        full[int(c) - 1] = maps[k]
    return full


def seed_labels(maps: np.ndarray, classes: Sequence[int], bg_threshold: float) -> np.ndarray:
    """Seed-only prediction: argmax over [bg_threshold, M_c for present c]; absent classes excluded.

    ``maps``: the present classes' maps in the order of ``classes`` (the stores' layout), or a full
    stack indexed by class - 1. Returns label indices (uint8); ties go to the lower label index."""
    classes = [int(c) for c in classes]
    if maps.shape[0] != len(classes):
        maps = maps[[c - 1 for c in classes]]
    h, w = maps.shape[-2:]
    scores = np.empty((len(classes) + 1, h, w), dtype=np.float32)
    scores[0] = bg_threshold
    scores[1:] = maps
    return np.array([0, *classes], dtype=np.uint8)[scores.argmax(0)]
