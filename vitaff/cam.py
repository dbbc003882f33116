"""The CNN baseline of the seeds (SPEC 8): class activation maps of a GAP + 1x1 classifier.

Zhou et al., "Learning Deep Features for Discriminative Localization", CVPR 2016; the seed source of
psa (Ahn & Kwak, CVPR 2018) and IRN (Ahn et al., CVPR 2019), which the study's Table 4 sets its ViT
seeds against. A timm CNN backbone (ResNet-50 at output stride 16 for the real run, as IRN) gives a
feature map ``f``; the image's class scores are ``W GAP(f)`` with a bias-free 1x1 convolution
``W`` (psa's and IRN's ``fc8`` / ``classifier``), trained with the multi-label soft-margin loss on
the same image-level labels as the ViT (the training loop is :func:`vitaff.classifier.train`).

Seeds: ``CAM_c = relu(W_c f)`` per scale and per horizontal flip, each bilinearly upsampled to the
image size (the flipped one flipped back), summed over every pass, then divided by its maximum
per class (psa's ``infer_cls.py``, IRN's ``make_cam.py``). The maps of absent classes are not
computed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from vitaff.classifier import normalise, resize, to_tensor
from vitaff.data.voc import NUM_FG_CLASSES
from vitaff.errors import MissingFileError
from vitaff.store import save_torch

# psa's norm_cam: sum_cam / (max + 1e-5), so a map that is zero everywhere stays zero
MAX_NORM_EPS = 1e-5


class CAMNet(nn.Module):
    """timm CNN features -> (GAP -> bias-free 1x1 conv) logits, or the same conv per cell: the CAMs."""

    def __init__(self, model: str, num_classes: int = NUM_FG_CLASSES, output_stride: int = 16,
                 checkpoint: str | None = None, pretrained: bool = False) -> None:
        import timm

        super().__init__()
        kwargs = dict(num_classes=0, global_pool="", output_stride=output_stride)
        if checkpoint:
            if not Path(checkpoint).is_file():
                raise MissingFileError(f"cam.checkpoint {checkpoint} not found; set it to a local timm checkpoint "
                                       "of cam.model, or null (with cam.pretrained) to start otherwise")
            # timm reads a local file through its own pretrained loader (the 1000-class fc is dropped)
            kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(file=str(checkpoint)))
        else:
            kwargs.update(pretrained=bool(pretrained))
        self.backbone = timm.create_model(model, **kwargs)
        self.classifier = nn.Conv2d(self.backbone.num_features, num_classes, kernel_size=1, bias=False)
        nn.init.xavier_uniform_(self.classifier.weight)  # psa's and IRN's init of the new layer
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.backbone(x)
        return self.classifier(f.mean((2, 3), keepdim=True)).flatten(1)

    def cam(self, x: torch.Tensor) -> torch.Tensor:
        """B x classes x h x w rectified class activation maps on the feature grid."""
        return F.relu(self.classifier(self.backbone(x)))


def build_cam(cfg: dict, num_classes: int = NUM_FG_CLASSES) -> CAMNet:
    """The ``cam`` config section's network (random init, a local checkpoint or timm's download)
    with one output per foreground class of the dataset."""
    return CAMNet(cfg["model"], num_classes=num_classes, output_stride=cfg["output_stride"], checkpoint=cfg.get("checkpoint"),
                  pretrained=cfg.get("pretrained", False))


def save_cam(model: CAMNet, cfg: dict, path: str | Path) -> None:
    save_torch({"kind": "cam", "model": cfg["model"], "img_size": cfg["img_size"],
                "output_stride": cfg["output_stride"], "num_classes": model.num_classes,
                "state_dict": model.state_dict()}, path)


def is_cam_checkpoint(path: str | Path) -> bool:
    state = torch.load(path, map_location="cpu", weights_only=False)
    return isinstance(state, dict) and state.get("kind") == "cam"


def load_cam(path: str | Path, device="cpu") -> CAMNet:
    """Rebuild a network saved by :func:`save_cam`, in eval mode on ``device``."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"CAM network {path} missing; run the train_cam rule first")
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = CAMNet(state["model"], num_classes=state["num_classes"], output_stride=state["output_stride"])
    model.load_state_dict(state["state_dict"])
    model.img_size = state["img_size"]
    return model.to(device).eval()


def scaled_size(img_size: int, scale: float, multiple: int = 1) -> int:
    """Side of the square input at ``scale`` (1.0 gives ``img_size`` itself), rounded to ``multiple``."""
    if scale == 1.0:
        return int(img_size)
    return max(multiple, int(round(img_size * scale / multiple)) * multiple)


@torch.no_grad()
def cam_seeds(model: CAMNet, images: Sequence[np.ndarray], classes: Sequence[Sequence[int]], img_size: int, device,
              *, scales: Sequence[float] = (1.0,), flip: bool = True) -> list[torch.Tensor]:
    """CAM seeds of a batch: per image a len(classes_i) x H_i x W_i float tensor in [0, 1] (CPU).

    One pass per scale (the square input ``img_size x scale``) and, with ``flip``, per flipped
    image; each pass's CAMs are upsampled to the image size and summed; the sum is divided by its
    maximum per class. Passes run one scale at a time, so memory is that of the largest scale.
    """
    device = torch.device(device)
    model.eval()
    totals: list[torch.Tensor | None] = [None] * len(images)
    for scale in scales:
        size = scaled_size(img_size, scale)
        x = torch.stack([normalise(resize(to_tensor(im), size)) for im in images]).to(device)
        batch = torch.cat([x, x.flip(-1)]) if flip else x
        cams = model.cam(batch).float()
        for i, (image, cls) in enumerate(zip(images, classes)):
            idx = [int(c) - 1 for c in cls]
            if not idx:
                continue
            hw = tuple(image.shape[:2])
            passes = [cams[i, idx]] + ([cams[i + len(images), idx].flip(-1)] if flip else [])
            for p in passes:
                up = F.interpolate(p[None], size=hw, mode="bilinear", align_corners=False)[0].cpu()
                totals[i] = up if totals[i] is None else totals[i] + up
    out = []
    for total, image in zip(totals, images):
        if total is None or total.shape[0] == 0:
            out.append(torch.zeros(0, *image.shape[:2]))
            continue
        peak = total.flatten(1).amax(1)[:, None, None]
        out.append(total / (peak + MAX_NORM_EPS))
    return out
