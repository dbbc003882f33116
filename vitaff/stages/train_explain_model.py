"""Rule ``train_explain_model``: train the embedded default's small ViT on the generated
single-label classification set (the explainability tests' stand-in for the ImageNet ViT-B).

Cross-entropy, AdamW (config ``explain.embedded.optimizer``) with poly decay, horizontal flips;
seeded and resumable per epoch (checkpoint in ``--resume-dir``, keyed by the params). Writes the
model (keys of :func:`vitaff.classifier.save_classifier` plus ``classes`` and ``val_accuracy``) and
a CSV of loss and train / val accuracy per epoch.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from vitaff.config import resolve_device
from vitaff.data.imagenet_seg import load_rgb, read_embedded_info, read_imagenet_val
from vitaff.explain_eval import TrainSettings, to_unit_tensor, train_single_label
from vitaff.models import create_model
from vitaff.stages import _cli
from vitaff.training import resume_path
from vitaff.store import save_torch, write_csv


def _load(folder: Path, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    paths, labels = read_imagenet_val(folder)
    return torch.stack([to_unit_tensor(load_rgb(p), size) for p in paths]), torch.tensor(labels)


def main(args, params) -> None:
    _cli.seed_everything(params["seed"])
    device = resolve_device(params["device"])
    e = params["explain"]["embedded"]
    info = read_embedded_info(e["dir"])
    root = Path(e["dir"])
    train_x, train_y = _load(root / info["train"], e["img_size"])
    val_x, val_y = _load(root / info["val"], e["img_size"])
    model = create_model(e["model"], num_classes=len(info["classes"]), img_size=e["img_size"]).to(device)
    settings = TrainSettings(epochs=e["epochs"], batch_size=e["batch_size"], optimizer=e["optimizer"], lr=e["lr"],
                             weight_decay=e["weight_decay"], momentum=e["momentum"], poly_power=e["poly_power"],
                             seed=params["seed"])
    resume = resume_path(args.resume_dir, "explain_vit", params)
    history = train_single_label(model, train_x.to(device), train_y.to(device), val_x.to(device), val_y.to(device),
                                 settings, resume_path=resume)
    write_csv(pd.DataFrame(history), args.history)
    save_torch({"model": e["model"], "img_size": e["img_size"], "num_classes": len(info["classes"]),
                "classes": info["classes"], "val_accuracy": history[-1]["val_acc"],
                "state_dict": model.state_dict()}, args.out)
    _cli.log.info("val accuracy %.1f %%", history[-1]["val_acc"])
    resume.unlink(missing_ok=True)


if __name__ == "__main__":
    p = _cli.parser(__doc__)
    p.add_argument("--out", required=True)
    p.add_argument("--history", required=True)
    p.add_argument("--resume-dir", required=True)
    _cli.run(main, p)
