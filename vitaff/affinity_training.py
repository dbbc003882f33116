"""Paper step 5: AffinityNet on the classifier's CNN features (SPEC 6, "AffinityNet").

The hybrid classifier's ResNet stages (``forward_cnn_features``) feed an :class:`AffinityNet`
head; affinities ``a_ij = exp(-mean_c |f_i - f_j|)`` within the radius are trained with
``L_bg+/4 + L_fg+/4 + L-/2`` on the affinity label grids. SGD with poly decay; the backbone
(initialised from the classifier) learns at ``lr * backbone_lr_mult``, the new head at ``lr``
(psa trains its head 10x faster than the backbone). ``features="stem_tokens"`` adds the
transformer's output tokens (the classifier's last block, on its token grid) to the stem's stages
as one more backbone feature map: still two 1x1 convolutions over backbone features and the same
loss, with features that carry what the classifier knows about the objects. Crops are aligned to the feature stride so
image crops and label-grid crops correspond exactly. Training is seeded and resumable per epoch.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset
from tqdm import tqdm

from vitaff.affinity import affinity_loss, extract_pairs, pairwise_affinity
from vitaff.classifier import normalise, poly_lr, resize, to_tensor
from vitaff.config import ConfigError
from vitaff.data.loading import augment_batch, autocast, draw_augment, make_loader, to_device
from vitaff.data.voc import load_image
from vitaff.errors import MissingFileError
from vitaff.models.affinitynet import AffinityNet
from vitaff.store import save_torch
from vitaff.training import checkpoint, restore

log = logging.getLogger(__name__)
IGNORE = 255


FEATURES = ("stem", "stem_tokens")


class AffinityModel(nn.Module):
    """Classifier CNN stem (and optionally its transformer tokens) -> AffinityNet head -> affinity
    features on the ``stride`` grid.

    ``features``: ``"stem"`` (the study: the hybrid's CNN stages) or ``"stem_tokens"`` (also the
    classifier's output tokens: the image is resized to the classifier's input size for the
    transformer and its token map is resized back onto the affinity grid).
    """

    def __init__(self, classifier: nn.Module, stride: int = 8, out_dim: int | None = None,
                 features: str = "stem"):
        super().__init__()
        if features not in FEATURES:
            raise ValueError(f"affinity features must be one of {FEATURES}, got {features!r}")
        self.backbone = classifier
        self.features = features
        info = list(classifier.cnn_feature_info)
        self.stride = stride
        self.pad_multiple = max(stride, max(int(i["reduction"]) for i in info))
        chans = [int(i["num_chs"]) for i in info]
        strides = [int(i["reduction"]) for i in info]
        if features == "stem_tokens":
            chans.append(int(classifier.embed_dim))
            strides.append(int(classifier.patch_embed.reduction))
        self.head = AffinityNet(chans, [max(16, c // 4) for c in chans], strides, out_stride=stride, out_dim=out_dim)

    def token_map(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The classifier's output tokens of ``x`` (resized to its input size) as ``B x D x size``."""
        img_size = getattr(self.backbone, "img_size", None) or self.backbone.patch_embed.img_size[0]
        img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        if tuple(x.shape[-2:]) != img_size:
            x = F.interpolate(x, size=img_size, mode="bilinear", align_corners=False)
        tokens = self.backbone.forward_features(x)[:, self.backbone.num_prefix_tokens:]
        gh, gw = self.backbone.patch_embed.grid_size
        grid = tokens.transpose(1, 2).reshape(x.shape[0], -1, gh, gw)
        return F.interpolate(grid, size=size, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = list(self.backbone.forward_cnn_features(x))
        if self.features == "stem_tokens":
            feats.append(self.token_map(x, self.head.grid_size(feats)))
        return self.head(feats)

    def affinity(self, x: torch.Tensor, radius: int) -> torch.Tensor:
        return pairwise_affinity(self(x), radius)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad (normalised value 0 = mean grey) bottom/right to a multiple of ``multiple``."""
    h, w = x.shape[-2:]
    return F.pad(x, (0, math.ceil(w / multiple) * multiple - w, 0, math.ceil(h / multiple) * multiple - h))


class _AffinityImageSet(Dataset):
    """Training images (colour-jittered when ``augment``, normalised) with their label grids."""

    def __init__(self, voc_root, ids, label_grids, size: int, stride: int, augment: bool = True,
                 color_jitter=(0.3, 0.3, 0.3, 0.1)):
        if size % stride:
            raise ConfigError(f"affinity.crop_size {size} must be a multiple of affinity.feature_stride {stride}")
        self.root = Path(voc_root)
        self.ids = list(ids)
        self.grids = label_grids
        self.size, self.stride, self.augment = size, stride, augment
        self.color_jitter = tuple(color_jitter)

    def __len__(self) -> int:
        return len(self.ids)

    def image_and_grid(self, i: int, resize_to: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x = to_tensor(load_image(self.root / "JPEGImages" / f"{self.ids[i]}.jpg", draft=resize_to))
        if resize_to:
            x = resize(x, resize_to).clamp_(0, 1)
        if self.augment:
            # jitter of the whole image before any crop (its contrast mean is the image's): here, per image
            x = augment_batch(x[None], draw_augment(False, self.color_jitter)[None], normalise=False)[0]
        return normalise(x), torch.from_numpy(np.asarray(self.grids[i], dtype=np.int64))


class AffinityCropSet(_AffinityImageSet):
    """Image crops with their affinity label-grid crops; crops start on multiples of the stride (psa)."""

    def __init__(self, voc_root, ids, label_grids, crop: int, stride: int, augment: bool = True,
                 color_jitter=(0.3, 0.3, 0.3, 0.1)):
        super().__init__(voc_root, ids, label_grids, crop, stride, augment, color_jitter)

    def __getitem__(self, i: int):
        x, grid = self.image_and_grid(i)
        gc = self.size // self.stride
        # pad image and grid to at least the crop (grid cells beyond the image are neutral)
        gh, gw = max(grid.shape[0], gc), max(grid.shape[1], gc)
        grid = F.pad(grid, (0, gw - grid.shape[1], 0, gh - grid.shape[0]), value=IGNORE)
        x = F.pad(x, (0, gw * self.stride - x.shape[2], 0, gh * self.stride - x.shape[1]))
        gy = int(torch.randint(0, gh - gc + 1, ())) if self.augment else 0
        gx = int(torch.randint(0, gw - gc + 1, ())) if self.augment else 0
        grid = grid[gy:gy + gc, gx:gx + gc]
        s = self.stride
        x = x[:, gy * s:(gy + gc) * s, gx * s:(gx + gc) * s]
        if self.augment and torch.rand(()) < 0.5:
            x, grid = x.flip(-1), grid.flip(-1)
        return x, grid


class AffinityResizedSet(_AffinityImageSet):
    """Whole images resized to ``size`` x ``size`` with their ``size/stride`` square label grids
    (the study's code: no crops, flip and colour jitter)."""

    def __init__(self, voc_root, ids, label_grids, size: int, stride: int, augment: bool = True,
                 color_jitter=(0.3, 0.3, 0.3, 0.1)):
        super().__init__(voc_root, ids, label_grids, size, stride, augment, color_jitter)
        for image_id, grid in zip(self.ids, self.grids):
            if tuple(np.shape(grid)) != (size // stride, size // stride):
                raise ConfigError(f"affinity label grid of {image_id} is {np.shape(grid)}, expected "
                                 f"{size // stride} x {size // stride}: the labels were made for another "
                                 "affinity.input / crop_size; delete results/affinity_labels and rerun")

    def __getitem__(self, i: int):
        x, grid = self.image_and_grid(i, resize_to=self.size)
        if self.augment and torch.rand(()) < 0.5:
            x, grid = x.flip(-1), grid.flip(-1)
        return x, grid


def affinity_dataset(voc_root, ids, label_grids, aff: dict, augment: bool = True) -> Dataset:
    """The training set of ``affinity.input``: resized whole images (study) or aligned crops (psa)."""
    cls = AffinityResizedSet if aff["input"] == "resize" else AffinityCropSet
    return cls(voc_root, ids, label_grids, aff["crop_size"], aff["feature_stride"], augment=augment,
               color_jitter=aff["color_jitter"])


def train_affinity(model: AffinityModel, dataset: Dataset, *, epochs: int, batch_size: int, lr: float,
                   backbone_lr_mult: float, momentum: float, weight_decay: float, poly_power: float,
                   radius: int, seed: int, device, resume_path=None, workers: int = 0,
                   precision: str = "fp32") -> list[dict]:
    """Train in place; one history row per epoch with the loss and its three terms.

    ``workers`` loader processes (:func:`vitaff.data.loading.make_loader`); ``precision`` ``bf16``
    runs the forward under ``torch.autocast`` (fp32 weights, loss in fp32)."""
    model.to(device)
    groups = [{"params": list(model.backbone.parameters()), "lr_mult": backbone_lr_mult},
              {"params": list(model.head.parameters()), "lr_mult": 1.0}]
    optimizer = torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    loader = make_loader(dataset, batch_size, workers=workers, device=device, shuffle=True, generator=generator)
    max_steps = epochs * len(loader)
    history, start = restore(resume_path, model, optimizer, generator)
    for epoch in range(start, epochs):
        model.train()
        sums = {"loss": 0.0, "bg_pos": 0.0, "fg_pos": 0.0, "neg": 0.0}
        for step, (x, grid) in enumerate(tqdm(loader, desc=f"affinity epoch {epoch + 1}/{epochs}", mininterval=10)):
            base = poly_lr(lr, epoch * len(loader) + step, max_steps, poly_power)
            for group in optimizer.param_groups:
                group["lr"] = base * group["lr_mult"]
            with autocast(device, precision):
                aff = model.affinity(to_device(x, device), radius)
            loss, terms = affinity_loss(aff.float(), extract_pairs(to_device(grid, device), radius))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sums["loss"] += loss.item()
            for k in ("bg_pos", "fg_pos", "neg"):
                sums[k] += float(terms[k])
        row = {"epoch": epoch + 1, **{k: v / len(loader) for k, v in sums.items()}, "lr": base}
        history.append(row)
        log.info("epoch %d: %s", epoch + 1, row)
        checkpoint(resume_path, model, optimizer, generator, history, epoch + 1)
    return history


@torch.no_grad()
def image_affinity(model: AffinityModel, image: np.ndarray, radius: int, device,
                   resize_to: int | None = None) -> torch.Tensor:
    """K x h x w affinities of one whole image: padded bottom/right (psa's inference), or resized
    to ``resize_to`` x ``resize_to`` (the study's)."""
    model.eval()
    x = to_tensor(image)
    x = normalise(resize(x, resize_to)) if resize_to else pad_to_multiple(normalise(x), model.pad_multiple)
    return model.affinity(x[None].to(device), radius)[0]


def save_affinity_model(model: AffinityModel, classifier_path, path) -> None:
    save_torch({"classifier": str(classifier_path), "stride": model.stride, "features": model.features,
                "state_dict": model.state_dict()}, path)


def load_affinity_model(path, classifier_path, device="cpu") -> AffinityModel:
    from vitaff.classifier import load_classifier

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"AffinityNet checkpoint {path} missing; run the train_affinitynet rule first")
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = AffinityModel(load_classifier(classifier_path, "cpu"), stride=state["stride"],
                          features=state.get("features", "stem"))
    model.load_state_dict(state["state_dict"])
    return model.to(device).eval()
