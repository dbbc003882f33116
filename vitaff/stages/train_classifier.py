"""Rule ``train_classifier``: train the hybrid ViT multi-label classifier (paper step 1, SPEC 5).

Writes the classifier checkpoint and a CSV with loss, learning rate and eval mAP per epoch. The
per-epoch resume checkpoint lives in ``--resume-dir`` (outside the declared output, which
Snakemake wipes before a job), keyed by a hash of the params so a config change starts afresh.
"""

from __future__ import annotations


import pandas as pd

from vitaff.classifier import build_classifier, save_classifier, train_on_image_labels
from vitaff.config import resolve_device
from vitaff.stages import _cli
from vitaff.training import resume_path
from vitaff.data.classes import read_classes
from vitaff.data.index import read_index
from vitaff.store import write_csv


def main(args, params) -> None:
    _cli.seed_everything(params["seed"])
    device = resolve_device(params["device"])
    cls = params["classifier"]
    num_fg = read_classes(args.classes).num_fg
    model = build_classifier(cls, num_fg)
    history = train_on_image_labels(model, cls, params["voc_root"], read_index(args.train_index),
                                    read_index(args.eval_index), num_fg, params["seed"], args.threads, device,
                                    resume_path(args.resume_dir, "classifier", params))
    write_csv(pd.DataFrame(history), args.history)
    save_classifier(model, cls, args.out)
    resume_path(args.resume_dir, "classifier", params).unlink(missing_ok=True)


if __name__ == "__main__":
    p = _cli.parser(__doc__)
    p.add_argument("--train-index", required=True)
    p.add_argument("--eval-index", required=True)
    p.add_argument("--classes", required=True, help="results/data/classes.csv")
    p.add_argument("--out", required=True)
    p.add_argument("--history", required=True)
    p.add_argument("--resume-dir", required=True)
    _cli.run(main, p)
