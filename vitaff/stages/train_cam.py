"""Rule ``train_cam``: train the CNN baseline's GAP + 1x1 classifier on the image-level labels (SPEC 8).

The same labels, input pipeline, loss and resumable loop as the ViT classifier
(:func:`vitaff.classifier.train` over :class:`vitaff.classifier.ClassificationSet`), with the
``cam`` section's network and constants. Writes the network and a CSV of loss, learning rate and
eval mAP per epoch; the per-epoch resume checkpoint lives in ``--resume-dir``, keyed by the params.
"""

from __future__ import annotations

import pandas as pd

from vitaff.cam import build_cam, save_cam
from vitaff.classifier import ClassificationSet, TrainSettings, train
from vitaff.config import resolve_device
from vitaff.data.classes import read_classes
from vitaff.data.index import read_index
from vitaff.data.loading import resolve_workers
from vitaff.stages import _cli
from vitaff.store import write_csv
from vitaff.training import resume_path


def main(args, params) -> None:
    _cli.seed_everything(params["seed"])
    device = resolve_device(params["device"])
    cfg = params["cam"]
    num_fg = read_classes(args.classes).num_fg
    train_index, eval_index = read_index(args.train_index), read_index(args.eval_index)
    train_set = ClassificationSet(params["voc_root"], train_index["id"], train_index["labels"], cfg["img_size"],
                                  augment=True, color_jitter=cfg["color_jitter"], part_hiding=cfg["part_hiding"],
                                  num_fg=num_fg)
    eval_set = ClassificationSet(params["voc_root"], eval_index["id"], eval_index["labels"], cfg["img_size"],
                                 num_fg=num_fg)
    model = build_cam(cfg, num_classes=num_fg)
    settings = TrainSettings(epochs=cfg["epochs"], batch_size=cfg["batch_size"], lr=cfg["lr"], momentum=cfg["momentum"],
                             weight_decay=cfg["weight_decay"], poly_power=cfg["poly_power"], seed=params["seed"],
                             optimizer=cfg["optimizer"], workers=resolve_workers(cfg["workers"], args.threads, device),
                             precision=cfg["precision"])
    resume = resume_path(args.resume_dir, "cam", params)
    history = train(model, train_set, eval_set, settings, device, resume_path=resume)
    write_csv(pd.DataFrame(history), args.history)
    save_cam(model, cfg, args.out)
    resume.unlink(missing_ok=True)


if __name__ == "__main__":
    p = _cli.parser(__doc__)
    p.add_argument("--train-index", required=True)
    p.add_argument("--classes", required=True, help="results/data/classes.csv")
    p.add_argument("--eval-index", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--history", required=True)
    p.add_argument("--resume-dir", required=True)
    _cli.run(main, p)
