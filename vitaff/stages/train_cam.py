"""Rule ``train_cam``: train the CNN baseline's GAP + 1x1 classifier on the image-level labels (SPEC 8).

The same labels, input pipeline, loss and resumable loop as the ViT classifier
(:func:`vitaff.classifier.train` over :class:`vitaff.classifier.ClassificationSet`), with the
``cam`` section's network and constants. Writes the network and a CSV of loss, learning rate and
eval mAP per epoch; the per-epoch resume checkpoint lives in ``--resume-dir``, keyed by the params.
"""

from __future__ import annotations

import pandas as pd

from vitaff.cam import build_cam, save_cam
from vitaff.classifier import train_on_image_labels
from vitaff.config import resolve_device
from vitaff.data.classes import read_classes
from vitaff.data.index import read_index
from vitaff.stages import _cli
from vitaff.store import write_csv
from vitaff.training import resume_path


def main(args, params) -> None:
    _cli.seed_everything(params["seed"])
    device = resolve_device(params["device"])
    cfg = params["cam"]
    num_fg = read_classes(args.classes).num_fg
    model = build_cam(cfg, num_classes=num_fg)
    history = train_on_image_labels(model, cfg, params["voc_root"], read_index(args.train_index),
                                    read_index(args.eval_index), num_fg, params["seed"], args.threads, device,
                                    resume_path(args.resume_dir, "cam", params))
    write_csv(pd.DataFrame(history), args.history)
    save_cam(model, cfg, args.out)
    resume_path(args.resume_dir, "cam", params).unlink(missing_ok=True)


if __name__ == "__main__":
    p = _cli.parser(__doc__)
    p.add_argument("--train-index", required=True)
    p.add_argument("--classes", required=True, help="results/data/classes.csv")
    p.add_argument("--eval-index", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--history", required=True)
    p.add_argument("--resume-dir", required=True)
    _cli.run(main, p)
