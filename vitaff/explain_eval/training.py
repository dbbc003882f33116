"""The embedded default's explained classifier: a small ViT trained single-label (cross-entropy,
flips, poly learning rate), seeded and resumable per epoch, on [0, 1] images held in memory.
The settings are the classifier's (:class:`vitaff.classifier.TrainSettings`), filled from
``explain.embedded`` by the ``train_explain_model`` rule."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F

from vitaff.classifier import TrainSettings, normalise, poly_lr
from vitaff.explain_eval.maps import classify
from vitaff.training import build_optimizer, checkpoint, restore

log = logging.getLogger(__name__)

__all__ = ["TrainSettings", "accuracy", "train_single_label"]


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
