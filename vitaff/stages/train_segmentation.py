"""Rule ``train_segmentation``: train the segmentation network of step 3 (SPEC 9) on the training
split's pseudo labels (``--labels <pseudo-label dir>``), or, for the fully-supervised reference, on
its ground-truth masks (``--labels ground_truth``: ``dataset.mask_dir``, then ``aug_mask_dir``).

Writes the model and a CSV with the mean loss and learning rate every ``checkpoint_every``
iterations. The resume checkpoint lives in ``--resume-dir`` (outside the declared output, which
Snakemake wipes before a job), keyed by a hash of the params so a config change starts afresh.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from vitaff.config import resolve_device
from vitaff.data.voc import VOCDataset
from vitaff.segmentation import SegmentationTrainSet, build_network, save_segmentation_model, train_network
from vitaff.stages import _cli
from vitaff.data.classes import read_classes
from vitaff.data.index import read_index
from vitaff.store import write_csv
from vitaff.training import resume_path

GROUND_TRUTH = "ground_truth"


def label_paths(params: dict, split: str, ids, labels: str, classes_path) -> list[Path]:
    """The label PNG of every id: ``labels/<id>.png`` (pseudo labels), or the split's ground truth."""
    if labels != GROUND_TRUTH:
        return [Path(labels) / f"{i}.png" for i in ids]
    data = params["dataset"]
    voc = VOCDataset(params["voc_root"], split, data["label_source"], data["mask_dir"], data["aug_mask_dir"],
                     read_classes(classes_path))
    return [voc.mask_path(i) for i in ids]


def main(args, params) -> None:
    _cli.seed_everything(params["seed"])
    device = resolve_device(params["device"])
    seg = params["segmentation"]
    ids = list(read_index(args.index)["id"])
    classes = read_classes(args.classes)
    model = build_network(seg, classifier_path=args.classifier, classifier_model=params["classifier"]["model"],
                          num_labels=classes.num_labels)
    dataset = SegmentationTrainSet(params["voc_root"], ids, label_paths(params, args.split, ids, args.labels, args.classes),
                                   seg["crop_size"], seg["scale_range"], seg["flip"], fill=model.mean.view(3).tolist())
    resume = resume_path(args.resume_dir, Path(args.out).stem, {**params, "labels": args.labels})
    history = train_network(model, dataset, iterations=seg["iterations"], batch_size=seg["batch_size"],
                            accumulation_steps=seg["accumulation_steps"], lr=seg["lr"],
                            head_lr_mult=seg["head_lr_mult"], momentum=seg["momentum"],
                            weight_decay=seg["weight_decay"], poly_power=seg["poly_power"], seed=params["seed"],
                            device=device, checkpoint_every=seg["checkpoint_every"],
                            freeze_backbone_bn=seg["freeze_backbone_bn"], num_workers=seg["num_workers"],
                            resume_path=resume)
    write_csv(pd.DataFrame(history), args.history)
    labels = GROUND_TRUTH if args.labels == GROUND_TRUTH else "pseudo_labels"
    save_segmentation_model(model.cpu(), seg, labels, args.out, classifier_model=params["classifier"]["model"])
    resume.unlink(missing_ok=True)


if __name__ == "__main__":
    p = _cli.parser(__doc__)
    p.add_argument("--index", required=True, help="index CSV of the training split")
    p.add_argument("--classes", required=True, help="results/data/classes.csv")
    p.add_argument("--split", required=True, help="name of the training split (its ground truth for --labels ground_truth)")
    p.add_argument("--labels", required=True, help=f"pseudo-label directory of the split, or {GROUND_TRUTH}")
    p.add_argument("--classifier", default=None, help="classifier checkpoint (network deeplabv3_classifier_stem)")
    p.add_argument("--out", required=True)
    p.add_argument("--history", required=True)
    p.add_argument("--resume-dir", required=True)
    _cli.run(main, p)
