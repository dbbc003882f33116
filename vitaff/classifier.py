"""Paper step 1: the hybrid ViT multi-label classifier on image-level labels (SPEC 5).

Multilabel soft-margin loss, SGD (momentum 0.9, weight decay 1e-4; AdamW for the embedded model
trained from scratch) with poly learning-rate decay,
horizontal flip + colour jitter (and, for the embedded data only, part hiding: see
:func:`hide_parts`), inputs resized to a square ``img_size`` and normalised with
mean = std = 0.5. Training is seeded and resumable: a checkpoint of model, optimiser, RNG states
and history is written atomically after every epoch, outside the rule's declared output.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from vitaff.data.loading import augment_batch, autocast, draw_augment, make_loader, resolve_workers, to_device
from vitaff.data.synthetic import PART_HIDDEN_DIR
from vitaff.data.classes import VOC
from vitaff.data.voc import PART_DIR, VOCDataError, load_image, load_mask
from vitaff.errors import MissingFileError
from vitaff.metrics import mean_average_precision
from vitaff.store import save_torch
from vitaff.training import build_optimizer, checkpoint, restore

log = logging.getLogger(__name__)

MEAN = STD = 0.5


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 -> 3 x H x W float in [0, 1]."""
    return torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div_(255.0)


def normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - MEAN) / STD


def resize(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a 3 x H x W (or B x 3 x H x W) tensor."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    batched = x.dim() == 4
    out = F.interpolate(x if batched else x[None], size=size, mode="bilinear", align_corners=False)
    return out if batched else out[0]


def multi_hot(labels: Sequence[int], num_fg: int) -> torch.Tensor:
    """Label indices (1..num_fg) -> num_fg-dim multi-hot float vector."""
    vec = torch.zeros(num_fg)
    for c in labels:
        vec[int(c) - 1] = 1.0
    return vec


def hide_parts(image: np.ndarray, hidden: np.ndarray, parts: np.ndarray, p: float,
               generator: torch.Generator | None = None) -> np.ndarray:
    """Part hiding (in the spirit of Hide-and-Seek, Singh & Lee, ICCV 2017): with probability ``p``
    per object, its discriminative part (``parts == k``, grown by one pixel to cover the part's
    anti-aliased rim) is replaced by the same pixels of ``hidden``, the scene rendered with the part
    painted over by the object's own body. Returns a new image; objects without a part are untouched.

    Why (embedded data only): the generated class is readable from the small part alone, so a
    classifier trained from scratch reads only the part and its relevance seeds never reach the
    body; with the part often hidden it must also learn the class from the body's texture.
    """
    out = np.array(image, copy=True)
    for k in np.unique(parts):
        if k == 0 or k == 255:
            continue
        if float(torch.rand((), generator=generator)) >= p:
            continue
        m = np.pad(parts == k, 1)
        grown = np.zeros_like(m)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                grown |= np.roll(np.roll(m, dy, 0), dx, 1)
        grown = grown[1:-1, 1:-1]
        out[grown] = hidden[grown]
    return out


class ClassificationSet(Dataset):
    """Images of a split with their image-level labels, resized to a square input.

    ``part_hiding`` > 0 (training on the embedded data only) hides each object's discriminative
    part with that probability (:func:`hide_parts`); it needs the generator's ``SegmentationPart/``
    and ``JPEGImagesPartHidden/``.

    With ``augment`` an item is ``(image in [0, 1], labels, augmentation parameters)``: the flip and
    colour jitter are drawn here (the loader's workers) and applied by
    :func:`vitaff.data.loading.augment_batch`, on the batch on the model's device, or here when
    ``augment_here`` (a CPU device: the workers do it in parallel). Without, ``(normalised image, labels)``.
    """

    def __init__(self, voc_root: str | Path, ids: Sequence[str], labels: Sequence[Sequence[int]],
                 img_size: int, augment: bool = False, color_jitter=(0.3, 0.3, 0.3, 0.1),
                 part_hiding: float = 0.0, num_fg: int = VOC.num_fg):
        self.root = Path(voc_root)
        self.ids = list(ids)
        self.labels = [multi_hot(lab, num_fg) for lab in labels]
        self.img_size = img_size
        self.augment = augment
        if not 0.0 <= part_hiding <= 1.0:
            raise ValueError(f"part_hiding must be a probability in [0, 1], got {part_hiding}")
        self.part_hiding = float(part_hiding) if augment else 0.0
        if self.part_hiding > 0:
            missing = [d for d in (PART_DIR, PART_HIDDEN_DIR) if not (self.root / d).is_dir()]
            if missing:
                raise VOCDataError(
                    f"classifier.part_hiding needs {', '.join(str(self.root / d) for d in missing)}: they exist "
                    "only in the embedded synthetic dataset (vitaff.data.synthetic, write_parts=True); "
                    "set classifier.part_hiding: 0 for real VOC")
        self.color_jitter = tuple(color_jitter)
        self.augment_here = True

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int):
        image = load_image(self.root / "JPEGImages" / f"{self.ids[i]}.jpg",
                           draft=None if self.part_hiding > 0 else self.img_size)
        if self.part_hiding > 0:
            parts = load_mask(self.root / PART_DIR / f"{self.ids[i]}.png", image.shape[:2])
            hidden = load_image(self.root / PART_HIDDEN_DIR / f"{self.ids[i]}.jpg")
            image = hide_parts(image, hidden, parts, self.part_hiding)
        x = resize(to_tensor(image), self.img_size)
        if self.augment:
            aug = draw_augment(True, self.color_jitter)
            if self.augment_here:
                x = augment_batch(x[None], aug[None])[0]
            return x, self.labels[i], aug
        return normalise(x), self.labels[i]


def poly_lr(base_lr: float, step: int, max_steps: int, power: float) -> float:
    return base_lr * (1 - step / max_steps) ** power


@dataclass
class TrainSettings:
    epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.9
    weight_decay: float = 1e-4
    poly_power: float = 0.9
    seed: int = 0
    optimizer: str = "sgd"
    workers: int | None = None  # None: resolve_workers (0 on a CPU device)
    precision: str = "fp32"


def training_step(model: torch.nn.Module, optimizer, x: torch.Tensor, y: torch.Tensor, device,
                  precision: str = "fp32") -> torch.Tensor:
    """One multi-label step (paper step 1): forward under ``precision``'s autocast, the soft-margin
    loss in fp32, one optimizer update; returns the loss (the benchmark times exactly this)."""
    with autocast(device, precision):
        logits = model(x)
    loss = F.multilabel_soft_margin_loss(logits.float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


@torch.no_grad()
def predict_scores(model: torch.nn.Module, dataset: Dataset, batch_size: int, device) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    scores, targets = [], []
    for x, y in DataLoader(dataset, batch_size=batch_size):
        scores.append(model(x.to(device)).float().cpu())
        targets.append(y)
    return torch.cat(scores).numpy(), torch.cat(targets).numpy()


def train(model: torch.nn.Module, train_set: Dataset, eval_set: Dataset | None, settings: TrainSettings,
          device, resume_path: str | Path | None = None) -> list[dict]:
    """Train in place; returns one history row per epoch (loss, lr, train/eval mAP).

    With ``resume_path`` the state after each epoch is saved there and, if present at start,
    training continues from it, so a killed run resumes at its last finished epoch and ends with
    the same weights as an uninterrupted run.
    """
    device = torch.device(device)
    model.to(device)
    optimizer = build_optimizer(model.parameters(), settings.optimizer, settings.lr, settings.momentum,
                                settings.weight_decay)
    generator = torch.Generator().manual_seed(settings.seed)
    torch.manual_seed(settings.seed)
    # flip + jitter in the workers on a CPU (parallel), on the batch on an accelerator
    if hasattr(train_set, "augment_here"):
        train_set.augment_here = device.type == "cpu"
    loader = make_loader(train_set, settings.batch_size, workers=resolve_workers(settings.workers, None, device), device=device, shuffle=True,
                         generator=generator)
    max_steps = settings.epochs * len(loader)
    history, start_epoch = restore(resume_path, model, optimizer, generator)
    for epoch in range(start_epoch, settings.epochs):
        model.train()
        total, count = 0.0, 0
        # a dataset without augmentation (an evaluation set, a test's) yields (image, labels) only
        for step, (x, y, *aug) in enumerate(tqdm(loader, desc=f"epoch {epoch + 1}/{settings.epochs}", mininterval=10)):
            lr = poly_lr(settings.lr, epoch * len(loader) + step, max_steps, settings.poly_power)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = to_device(x, device), to_device(y, device)
            if aug and not getattr(train_set, "augment_here", True):
                x = augment_batch(x, aug[0])
            loss = training_step(model, optimizer, x, y, device, settings.precision)
            total += loss.item() * len(x)
            count += len(x)
        row = {"epoch": epoch + 1, "loss": total / count, "lr": lr}
        if eval_set is not None:
            row["eval_mAP"] = 100 * mean_average_precision(*predict_scores(model, eval_set, settings.batch_size, device))
        history.append(row)
        log.info("epoch %d: %s", epoch + 1, row)
        checkpoint(resume_path, model, optimizer, generator, history, epoch + 1)
    return history


def train_on_image_labels(model: torch.nn.Module, section: dict, voc_root, train_index, eval_index, num_fg: int,
                          seed: int, threads: int, device, resume: Path) -> list[dict]:
    """Train ``model`` on the image-level labels of two index tables with a config section's
    constants (``classifier`` or ``cam``: the same loop, loss and input pipeline for the ViT and
    the CNN baseline). Returns the per-epoch history; resumes from and checkpoints to ``resume``."""
    train_set = ClassificationSet(voc_root, train_index["id"], train_index["labels"], section["img_size"],
                                  augment=True, color_jitter=section["color_jitter"],
                                  part_hiding=section["part_hiding"], num_fg=num_fg)
    eval_set = ClassificationSet(voc_root, eval_index["id"], eval_index["labels"], section["img_size"], num_fg=num_fg)
    settings = TrainSettings(epochs=section["epochs"], batch_size=section["batch_size"], lr=section["lr"],
                             momentum=section["momentum"], weight_decay=section["weight_decay"],
                             poly_power=section["poly_power"], seed=seed, optimizer=section["optimizer"],
                             workers=resolve_workers(section["workers"], threads, device),
                             precision=section["precision"])
    return train(model, train_set, eval_set, settings, device, resume_path=resume)


def build_classifier(cls: dict, num_fg: int = VOC.num_fg) -> torch.nn.Module:
    """The classifier of the config: a head of ``num_fg`` outputs (the dataset's foreground classes)
    on the named model, optionally initialised from a local checkpoint or timm's pretrained
    weights (their 1000-class head is skipped)."""
    from vitaff.models import create_model

    source = cls.get("checkpoint") or (True if cls.get("pretrained") else None)
    return create_model(cls["model"], num_classes=num_fg, pretrained=source, img_size=cls["img_size"],
                        weights_key="classifier.checkpoint")


def save_classifier(model: torch.nn.Module, cls: dict, path: str | Path) -> None:
    save_torch({"model": cls["model"], "img_size": cls["img_size"], "num_classes": int(model.num_classes),
                "state_dict": model.state_dict()}, path)


def load_classifier(path: str | Path, device="cpu") -> torch.nn.Module:
    """Rebuild a classifier saved by :func:`save_classifier`, in eval mode on ``device``."""
    from vitaff.models import create_model

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"classifier checkpoint {path} missing; run the train_classifier rule first")
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = create_model(state["model"], num_classes=state["num_classes"], img_size=state["img_size"])
    model.load_state_dict(state["state_dict"])
    model.img_size = state["img_size"]
    return model.to(device).eval()
