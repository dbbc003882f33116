"""Step 3 of weakly-supervised segmentation: a fully-supervised network trained on the pseudo labels,
scored on val (SPEC section 9).

Network: DeepLab-v3 (Chen, Papandreou, Schroff & Adam, "Rethinking Atrous Convolution for Semantic
Image Segmentation", arXiv:1706.05587) as torchvision builds it: a ResNet whose last two stages are
dilated (output stride 8) under an ASPP head, the logits upsampled bilinearly to the input. The
field's comparison network is DeepLab-v2 (Chen et al., TPAMI 2018, ResNet-101, ASPP rates
6/12/18/24); no maintained library installable from PyPI ships v2, v3 scores slightly above v2 on the
same labels (SPEC 9), and torchvision is already a dependency, so vitaff uses torchvision's v3 and
writes no network of its own. The one network written here is the embedded default's backbone: the
project's own classifier's CNN stem (trained on image labels only) under the same torchvision ASPP
head (:class:`ClassifierStemBackbone`), because no library has that stem.

Training recipe (the common DeepLab WSSS step, kazuto1011/deeplab-pytorch's VOC config): random
scale 0.5-1.5, random crop 321 (padded with the mean colour and label 255), horizontal flip, batch 10
accumulated as 5 x 2, SGD momentum 0.9, weight decay 5e-4, lr 2.5e-4 with the ASPP head at 10x, poly
0.9 per iteration, 20,000 iterations, per-pixel cross entropy ignoring label 255, backbone batch
norm frozen. Every constant is a ``segmentation.*`` config key.

Inference (:func:`segment_image`): the whole image at scale 1 (``single_scale``); the softmax
averaged over scales 0.5-1.5 and their flips (``multi_scale_flip``); and that average refined by the
dense CRF with DeepLab's constants (``multi_scale_flip_crf``; :func:`vitaff.crf.dense_crf`, 10
iterations, Gaussian sxy 1 compat 3, bilateral sxy 67 srgb 3 compat 4).

Initialisation, so that no pixel supervision leaks in by accident (:func:`build_network`):
``imagenet`` (an ImageNet classification ResNet from a local checkpoint in torchvision or timm
layout, or torchvision's download), ``classifier`` (the project's classifier's CNN stem),
``scratch``, or ``mask_pretrained`` (weights trained on segmentation masks: torchvision's default
DeepLab weights are trained with VOC's own labels, the common DeepLab-v2 config starts from
COCO-trained DeepLab). The last is refused unless ``segmentation.allow_mask_pretrained`` is true, and
a checkpoint with a segmentation head is refused under any other init (:func:`mask_trained_keys`).

Training (:func:`train_network`) is iteration-based and resumable: every ``checkpoint_every``
iterations the model, optimiser and history go to one checkpoint; the data order and every random
draw derive from (seed, iteration), so a killed and resumed run ends with the same weights as an
uninterrupted one.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from vitaff.config import ConfigError, segmentation_problems
from vitaff.errors import InputError, MissingFileError
from vitaff.data.classes import VOC
from vitaff.data.voc import IGNORE_INDEX, load_image, load_mask
from vitaff.metrics import ConfusionAccumulator
from vitaff.models.checkpoint import CheckpointError, adapt_state_dict, read_state_dict
from vitaff.store import save_torch
from vitaff.training import checkpoint, restore

log = logging.getLogger(__name__)

#: inference modes, one score row each
MODES = ("single_scale", "multi_scale_flip", "multi_scale_flip_crf")
#: the ``result`` column of results/segmentation_miou.csv: the labels scored themselves, and a
#: network by the labels it was trained on (ground truth = the fully-supervised upper bound)
PSEUDO_LABELS_RESULT = "pseudo_labels"
RESULT_NAMES = {"pseudo_labels": "network_on_pseudo_labels",
                "ground_truth": "upper_bound_network_on_ground_truth"}
#: torchvision's ImageNet normalisation (its ResNets and their checkpoints, timm's resnet101 too)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
#: the project's classifier normalises with mean = std = 0.5 (vitaff.classifier)
CLASSIFIER_MEAN, CLASSIFIER_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
RESNET_NETWORKS = {"deeplabv3_resnet101": "resnet101", "deeplabv3_resnet50": "resnet50"}
STEM_NETWORK = "deeplabv3_classifier_stem"
# Key prefixes of a segmentation head: torchvision's DeepLab / FCN (classifier, aux_classifier),
# mmsegmentation (decode_head, auxiliary_head), segmentation_models_pytorch (decoder,
# segmentation_head), DeepLab-v2 ports (aspp, ASPP). A ResNet trained on ImageNet has none of them.
MASK_HEAD_PREFIXES = ("classifier.", "aux_classifier.", "decode_head.", "auxiliary_head.", "decoder.",
                      "segmentation_head.", "aspp.", "ASPP.")
# Wrappers of a backbone's keys in other libraries' checkpoints (mmpretrain, timm features, smp).
BACKBONE_PREFIXES = ("backbone.", "model.", "encoder.", "body.")


# ------------------------------------------------------------------------------------------ network

class ClassifierStemBackbone(nn.Module):
    """The hybrid classifier's ResNetV2 stem as a torchvision segmentation backbone: images ->
    ``{"out": last stage}`` (stride 8 on the embedded ``vit_hybrid_synth``). Written here because no
    library has this stem; everything above it is torchvision's."""

    def __init__(self, stem: nn.Module):
        super().__init__()
        self.stem = stem
        self.out_channels = int(stem.feature_info[-1]["num_chs"])

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        return OrderedDict(out=self.stem.forward_features(x))


class SegmentationModel(nn.Module):
    """A torchvision DeepLab-v3 with its input normalisation: images in [0, 1] -> 21 logits per pixel
    at the input size. ``network.backbone`` learns at lr, ``network.classifier`` (ASPP) at lr x
    ``head_lr_mult``."""

    def __init__(self, network: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.network = network
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network((x - self.mean) / self.std)["out"]

    def backbone_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.network.backbone.parameters() if p.requires_grad]

    def head_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.network.classifier.parameters() if p.requires_grad]


def _deeplabv3(backbone: nn.Module, in_channels: int, atrous_rates: Sequence[int], aspp_channels: int = 256,
               num_labels: int = VOC.num_labels) -> nn.Module:
    """torchvision's DeepLabV3 with its DeepLabHead (ASPP of 256 channels); another width builds the
    same layers (torchvision's ASPP, 3x3 conv, BN, ReLU, 1x1 classifier: the same parameter names).
    ``num_labels``: the dataset's classes with background (vitaff.data.classes)."""
    from torchvision.models.segmentation.deeplabv3 import ASPP, DeepLabHead, DeepLabV3

    rates = tuple(atrous_rates)
    if aspp_channels == 256:
        head = DeepLabHead(in_channels, num_labels, atrous_rates=rates)
    else:
        c = aspp_channels
        head = nn.Sequential(ASPP(in_channels, rates, c), nn.Conv2d(c, c, 3, padding=1, bias=False),
                             nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, num_labels, 1))
    return DeepLabV3(backbone, head, None)


def _resnet_deeplab(name: str, seg: dict, backbone_weights=None, num_labels: int = VOC.num_labels) -> nn.Module:
    """torchvision's DeepLab-v3 ResNet (output stride 8, no auxiliary head) with our ASPP rates."""
    from torchvision.models import resnet50, resnet101
    from torchvision.models._utils import IntermediateLayerGetter

    resnet = {"resnet101": resnet101, "resnet50": resnet50}[RESNET_NETWORKS[name]](
        weights=backbone_weights, replace_stride_with_dilation=[False, True, True])
    return _deeplabv3(IntermediateLayerGetter(resnet, return_layers={"layer4": "out"}), 2048, seg["atrous_rates"],
                      seg["aspp_channels"], num_labels)


def mask_trained_keys(state: dict) -> list[str]:
    """The keys of ``state`` that belong to a segmentation head (empty for a classification backbone)."""
    return sorted(k for k in state if k.startswith(MASK_HEAD_PREFIXES))


def backbone_state(state: dict, source: str) -> dict:
    """An ImageNet classification checkpoint's keys as torchvision's ResNet names them: drop the
    classification head (``fc.*``, timm and torchvision) and one wrapper prefix shared by every key
    (``backbone.`` of mmpretrain, ``model.``, ``encoder.``, ``body.``). timm's ``resnet101``/``resnet50``
    use torchvision's names already. Refuses a checkpoint with a segmentation head (trained on masks)."""
    mask_keys = mask_trained_keys(state)
    if mask_keys:
        raise ConfigError(
            f"segmentation.checkpoint {source} holds a segmentation head ({len(mask_keys)} keys, e.g. "
            f"{mask_keys[0]!r}): weights trained on segmentation masks, pixel supervision the weakly-supervised "
            "protocol excludes. Give an ImageNet classification checkpoint, or set segmentation.init: mask_pretrained "
            "and segmentation.allow_mask_pretrained: true to start from it (every score row then says so)")
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    for prefix in BACKBONE_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items() if not k[len(prefix):].startswith("fc.")}
            break
    return state


def _load_imagenet_backbone(network: nn.Module, path, source: str) -> None:
    state = backbone_state(read_state_dict(path), source)
    backbone = network.backbone
    backbone.load_state_dict(adapt_state_dict(state, backbone, source), strict=True)


def _load_mask_pretrained(network: nn.Module, name: str, path) -> None:
    """A whole DeepLab-v3 trained on masks: a torchvision-layout checkpoint file, or (no file)
    torchvision's own COCO-with-VOC-labels weights (downloads). Its auxiliary head is dropped."""
    if path:
        state = read_state_dict(path)
        source = str(path)
    else:
        from torchvision.models.segmentation import DeepLabV3_ResNet50_Weights, DeepLabV3_ResNet101_Weights

        weights = {"deeplabv3_resnet101": DeepLabV3_ResNet101_Weights,
                   "deeplabv3_resnet50": DeepLabV3_ResNet50_Weights}[name].COCO_WITH_VOC_LABELS_V1
        state = weights.get_state_dict(progress=False)
        source = f"torchvision {weights}"
    state = {k: v for k, v in state.items() if not k.startswith("aux_classifier.")}
    network.load_state_dict(adapt_state_dict(state, network, source), strict=True)


def build_network(seg: dict, classifier_path=None, classifier_model: str | None = None,
                  load_weights: bool = True, num_labels: int = VOC.num_labels) -> SegmentationModel:
    """The network of ``segmentation.network``, initialised as ``segmentation.init`` says.

    ``classifier_path``: the project's classifier checkpoint (``deeplabv3_classifier_stem``: its CNN
    stem is the backbone, its weights with init ``classifier``); ``classifier_model``: the stem's
    architecture without a checkpoint (init ``scratch``). ``load_weights=False`` builds the
    architecture only (to load a trained model into). ``num_labels``: output channels, the dataset's
    classes with background.
    """
    problems = segmentation_problems(seg)
    if problems:
        raise ConfigError("; ".join(problems))
    name, init = seg["network"], seg["init"]
    if name == STEM_NETWORK:
        from vitaff.models import model_config
        from vitaff.models.hybrid import make_resnetv2_stem

        if init == "classifier" and load_weights:
            from vitaff.classifier import load_classifier

            if classifier_path is None:
                raise ConfigError("segmentation.init: classifier needs the classifier checkpoint "
                                  "(results/models/classifier.pt)")
            stem = load_classifier(classifier_path, "cpu").patch_embed.backbone
        else:
            if classifier_model is None and classifier_path is not None:
                classifier_model = torch.load(classifier_path, map_location="cpu", weights_only=False)["model"]
            backbone_cfg = model_config(classifier_model).get("backbone") if classifier_model else None
            if backbone_cfg is None:
                raise ConfigError(f"segmentation.network {STEM_NETWORK} needs a hybrid classifier "
                                  f"(classifier.model with a CNN stem), got {classifier_model!r}")
            stem = make_resnetv2_stem(**backbone_cfg)
        backbone = ClassifierStemBackbone(stem)
        network = _deeplabv3(backbone, backbone.out_channels, seg["atrous_rates"], seg["aspp_channels"], num_labels)
        return SegmentationModel(network, CLASSIFIER_MEAN, CLASSIFIER_STD)
    if not load_weights or init == "scratch":
        return SegmentationModel(_resnet_deeplab(name, seg, num_labels=num_labels), IMAGENET_MEAN, IMAGENET_STD)
    if init == "imagenet":
        if seg["checkpoint"]:
            network = _resnet_deeplab(name, seg, num_labels=num_labels)
            _load_imagenet_backbone(network, seg["checkpoint"], str(seg["checkpoint"]))
        else:  # torchvision's ImageNet classification weights (downloads; no masks involved)
            from torchvision.models import ResNet50_Weights, ResNet101_Weights

            weights = {"resnet101": ResNet101_Weights, "resnet50": ResNet50_Weights}[RESNET_NETWORKS[name]].IMAGENET1K_V1
            network = _resnet_deeplab(name, seg, backbone_weights=weights, num_labels=num_labels)
        return SegmentationModel(network, IMAGENET_MEAN, IMAGENET_STD)
    if init == "mask_pretrained":
        network = _resnet_deeplab(name, seg, num_labels=num_labels)
        _load_mask_pretrained(network, name, seg["checkpoint"])
        log.warning("segmentation network initialised from weights trained on segmentation masks "
                    "(segmentation.allow_mask_pretrained: true); every score row says init=mask_pretrained")
        return SegmentationModel(network, IMAGENET_MEAN, IMAGENET_STD)
    raise ConfigError(f"segmentation.init {init!r} does not apply to segmentation.network {name!r}")


def save_segmentation_model(model: SegmentationModel, seg: dict, labels: str, path,
                            classifier_model: str | None = None) -> None:
    """The trained network with what rebuilds it and what its scores must say (init, labels)."""
    save_torch({"segmentation": seg, "labels": labels, "classifier_model": classifier_model,
                "num_labels": int(model.network.classifier[-1].out_channels), "state_dict": model.state_dict()}, path)


def load_segmentation_model(path, device="cpu") -> tuple[SegmentationModel, dict]:
    """(model in eval mode, metadata: ``segmentation`` config, ``labels`` it was trained on)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"segmentation model {path} missing; run the train_segmentation rule first")
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = build_network(state["segmentation"], classifier_model=state["classifier_model"], load_weights=False,
                          num_labels=state.get("num_labels", VOC.num_labels))
    model.load_state_dict(state["state_dict"])
    meta = {k: v for k, v in state.items() if k != "state_dict"}
    return model.to(device).eval(), meta


# ------------------------------------------------------------------------------------------ training

def to_tensor(image: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 -> 3 x H x W float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)


# streams of random draws of a training run (sample_seed's first key)
SAMPLE, ORDER, DROPOUT = 0, 1, 2


def sample_seed(seed: int, *keys: int) -> int:
    """The seed of one random draw of the run, from (run seed, stream, iteration, ...): identical
    however the run was interrupted, on any number of data-loading workers."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1, np.uint64)[0] >> 1)


class SegmentationTrainSet(Dataset):
    """Images with their label PNGs, augmented as DeepLab: random scale, pad to the crop (image with
    ``fill``, the network's mean colour; label with 255), random crop, random horizontal flip.

    Items are indexed by ``(image index, sample seed)`` (:func:`iteration_batches`), so every
    random draw of a sample is fixed by its seed.
    """

    def __init__(self, voc_root, ids: Sequence[str], label_paths: Sequence[Path], crop: int,
                 scale_range: Sequence[float] = (0.5, 1.5), flip: bool = True,
                 fill: Sequence[float] = IMAGENET_MEAN):
        if len(ids) != len(label_paths):
            raise InputError(f"{len(ids)} ids but {len(label_paths)} label files")
        if not ids:
            raise InputError("no training images: the training split's index is empty")
        self.root = Path(voc_root)
        self.ids, self.label_paths = list(ids), [Path(p) for p in label_paths]
        missing = [p for p in self.label_paths if not p.is_file()]
        if missing:
            raise MissingFileError(f"{len(missing)} label files missing, e.g. {missing[0]}; run the pseudo_labels "
                                    "rule of the training split (or check dataset.mask_dir for ground truth)")
        self.crop, self.scale_range, self.flip = int(crop), tuple(scale_range), flip
        self.fill = torch.tensor(fill, dtype=torch.float32).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = item
        g = torch.Generator().manual_seed(int(seed))
        image = load_image(self.root / "JPEGImages" / f"{self.ids[index]}.jpg")
        label = torch.from_numpy(load_mask(self.label_paths[index], image.shape[:2], num_fg=None).astype(np.int64))
        x = to_tensor(image)
        lo, hi = self.scale_range
        scale = lo + (hi - lo) * float(torch.rand((), generator=g))
        h, w = (max(1, round(s * scale)) for s in x.shape[1:])
        x = F.interpolate(x[None], size=(h, w), mode="bilinear", align_corners=False)[0]
        label = F.interpolate(label[None, None].float(), size=(h, w), mode="nearest")[0, 0].long()
        ph, pw = max(self.crop - h, 0), max(self.crop - w, 0)
        if ph or pw:
            x = torch.cat([x, self.fill.expand(3, h, pw)], 2) if pw else x
            x = torch.cat([x, self.fill.expand(3, ph, x.shape[2])], 1) if ph else x
            label = F.pad(label, (0, pw, 0, ph), value=IGNORE_INDEX)
        top = int(torch.randint(0, x.shape[1] - self.crop + 1, (), generator=g))
        left = int(torch.randint(0, x.shape[2] - self.crop + 1, (), generator=g))
        x = x[:, top:top + self.crop, left:left + self.crop]
        label = label[top:top + self.crop, left:left + self.crop]
        if self.flip and float(torch.rand((), generator=g)) < 0.5:
            x, label = x.flip(-1), label.flip(-1)
        return x.contiguous(), label.contiguous()


def iteration_batches(n: int, batch_size: int, seed: int, start: int, stop: int) -> Iterator[list[tuple[int, int]]]:
    """Batches of iterations ``start .. stop - 1``: ``(image index, sample seed)`` per sample.

    The image order is a concatenation of permutations (pass p shuffled by a generator seeded with
    (seed, p)); iteration i takes positions i*B .. i*B + B - 1 of it, so it depends on i alone.
    """
    perms: dict[int, torch.Tensor] = {}

    def position(k: int) -> int:
        p, r = divmod(k, n)
        if p not in perms:
            perms.clear()  # a pass is used by consecutive iterations only
            perms[p] = torch.randperm(n, generator=torch.Generator().manual_seed(sample_seed(seed, ORDER, p)))
        return int(perms[p][r])

    for it in range(start, stop):
        yield [(position(it * batch_size + k), sample_seed(seed, SAMPLE, it, k)) for k in range(batch_size)]


def poly_lr(base_lr: float, step: int, max_steps: int, power: float) -> float:
    return base_lr * (1 - step / max_steps) ** power


def freeze_batchnorm(module: nn.Module) -> None:
    """Batch norm in eval mode with fixed affine parameters (DeepLab-v2's backbone)."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)


def train_network(model: SegmentationModel, dataset: SegmentationTrainSet, *, iterations: int, batch_size: int,
                  accumulation_steps: int, lr: float, head_lr_mult: float, momentum: float, weight_decay: float,
                  poly_power: float, seed: int, device, checkpoint_every: int, freeze_backbone_bn: bool = True,
                  num_workers: int = 0, resume_path=None) -> list[dict]:
    """Train in place with SGD and poly decay; one history row (mean loss, lr) every
    ``checkpoint_every`` iterations and at the end, each followed by a resume checkpoint.

    A batch of ``batch_size`` is computed as ``accumulation_steps`` micro-batches (DeepLab-v2: 5 x
    2); the loss is the cross entropy averaged over the whole batch's labelled pixels (255 ignored).
    """
    if batch_size % accumulation_steps:
        raise ConfigError(f"segmentation.batch_size {batch_size} is not a multiple of accumulation_steps "
                         f"{accumulation_steps}")
    model.to(device)
    if freeze_backbone_bn:
        freeze_batchnorm(model.network.backbone)
    optimizer = torch.optim.SGD([{"params": model.backbone_parameters(), "lr_mult": 1.0},
                                 {"params": model.head_parameters(), "lr_mult": head_lr_mult}],
                                lr=lr, momentum=momentum, weight_decay=weight_decay)
    history, start = restore(resume_path, model, optimizer, None)
    micro = batch_size // accumulation_steps
    loader = DataLoader(dataset, batch_sampler=iteration_batches(len(dataset), batch_size, seed, start, iterations),
                        num_workers=num_workers, persistent_workers=False,
                        generator=torch.Generator().manual_seed(seed))  # own generator: the global RNG stays ours
    model.train()
    if freeze_backbone_bn:
        freeze_batchnorm(model.network.backbone)
    total, count, tic = 0.0, 0, time.time()
    for it, (x, y) in enumerate(loader, start=start):
        torch.manual_seed(sample_seed(seed, DROPOUT, it))  # dropout of the head: fixed by the iteration
        base = poly_lr(lr, it, iterations, poly_power)
        for group in optimizer.param_groups:
            group["lr"] = base * group["lr_mult"]
        labelled = max(int((y != IGNORE_INDEX).sum()), 1)
        optimizer.zero_grad(set_to_none=True)
        batch_loss = 0.0
        for k in range(0, batch_size, micro):
            xs, ys = x[k:k + micro].to(device), y[k:k + micro].to(device)
            loss = F.cross_entropy(model(xs), ys, ignore_index=IGNORE_INDEX, reduction="sum") / labelled
            loss.backward()
            batch_loss += loss.item()
        optimizer.step()
        total, count = total + batch_loss, count + 1
        done = it + 1
        if done % checkpoint_every == 0 or done == iterations:
            row = {"iteration": done, "loss": total / count, "lr": base}
            history.append(row)
            log.info("iteration %d: %s (%.2f s per iteration)", done, row, (time.time() - tic) / count)
            checkpoint(resume_path, model, optimizer, None, history, done)
            total, count, tic = 0.0, 0, time.time()
    model.eval()
    return history


# ----------------------------------------------------------------------------------------- inference

@torch.no_grad()
def class_probabilities(model: SegmentationModel, image: np.ndarray, scales: Sequence[float] = (1.0,),
                        flip: bool = False, device="cpu") -> torch.Tensor:
    """C x H x W softmax of one image (C: the network's labels), averaged over ``scales`` (each image resized bilinearly, its
    output resized back) and, with ``flip``, their horizontal flips."""
    model.eval()
    x = to_tensor(image)[None].to(device)
    h, w = x.shape[-2:]
    total = 0
    passes = 0
    for s in scales:
        xs = x if s == 1 else F.interpolate(x, size=(max(1, round(h * s)), max(1, round(w * s))),
                                            mode="bilinear", align_corners=False)
        batch = torch.cat([xs, xs.flip(-1)]) if flip else xs
        logits = model(batch)
        if flip:
            logits = torch.stack([logits[0], logits[1].flip(-1)])
        if logits.shape[-2:] != (h, w):
            logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
        total += logits.softmax(1).sum(0)
        passes += logits.shape[0]
    return total / passes


def segment_image(model: SegmentationModel, image: np.ndarray, scales: Sequence[float], flip: bool,
                  crf: dict, device="cpu") -> dict[str, np.ndarray]:
    """Labels (H x W uint8) of every inference mode in :data:`MODES`; ``crf``: the
    ``segmentation.crf`` section (iterations, gaussian_sxy, ...)."""
    from vitaff.crf import dense_crf

    single = class_probabilities(model, image, (1.0,), False, device)
    multi = class_probabilities(model, image, scales, flip, device).cpu().numpy()
    refined = dense_crf(image, multi, n_iter=crf["iterations"], gaussian_sxy=crf["gaussian_sxy"],
                        gaussian_compat=crf["gaussian_compat"], bilateral_sxy=crf["bilateral_sxy"],
                        bilateral_srgb=crf["bilateral_srgb"], bilateral_compat=crf["bilateral_compat"])
    return {"single_scale": single.argmax(0).to(torch.uint8).cpu().numpy(),
            "multi_scale_flip": multi.argmax(0).astype(np.uint8),
            "multi_scale_flip_crf": refined.argmax(0).astype(np.uint8)}


def score_label_dir(label_dir, ids: Sequence[str], mask_path, num_labels: int = VOC.num_labels
                    ) -> tuple[ConfusionAccumulator, int]:
    """Confusion matrix of the label PNGs ``label_dir/<id>.png`` against ``mask_path(id)`` over the
    ids that have a ground-truth mask (the metrics code of every score); ``num_labels``: the
    dataset's classes with background."""
    acc, n = ConfusionAccumulator(num_labels), 0
    for image_id in ids:
        gt_path = Path(mask_path(image_id))
        if not gt_path.is_file():
            continue
        pred = load_mask(Path(label_dir) / f"{image_id}.png", num_fg=num_labels - 1)
        acc.update(load_mask(gt_path, pred.shape, num_labels - 1), pred)
        n += 1
    return acc, n
