"""Rule ``train_affinitynet``: train AffinityNet on the affinity label grids (paper step 5, SPEC 6)."""

from __future__ import annotations


import pandas as pd

from vitaff.affinity_training import AffinityModel, affinity_dataset, save_affinity_model, train_affinity
from vitaff.classifier import load_classifier
from vitaff.data.loading import resolve_workers
from vitaff.config import resolve_device
from vitaff.stages import _cli
from vitaff.training import resume_path
from vitaff.store import open_shards, write_csv


def main(args, params) -> None:
    _cli.seed_everything(params["seed"])
    device = resolve_device(params["device"])
    aff = params["affinity"]
    readers, _ = open_shards(args.labels)
    ids, grids = [], []
    for r in readers:
        for k, image_id in enumerate(r.ids):
            ids.append(image_id)
            grids.append(r.read(k, "labels"))
    model = AffinityModel(load_classifier(args.classifier, "cpu"), stride=aff["feature_stride"],
                          features=aff["features"])
    dataset = affinity_dataset(params["voc_root"], ids, grids, aff, augment=True)
    resume = resume_path(args.resume_dir, "affinitynet", params)
    history = train_affinity(model, dataset, epochs=aff["epochs"], batch_size=aff["batch_size"], lr=aff["lr"],
                             backbone_lr_mult=aff["backbone_lr_mult"], momentum=aff["momentum"],
                             weight_decay=aff["weight_decay"], poly_power=aff["poly_power"], radius=aff["radius"],
                             seed=params["seed"], device=device, resume_path=resume,
                             workers=resolve_workers(aff["workers"], args.threads, device), precision=aff["precision"])
    write_csv(pd.DataFrame(history), args.history)
    save_affinity_model(model, args.classifier, args.out)
    resume.unlink(missing_ok=True)


if __name__ == "__main__":
    p = _cli.parser(__doc__)
    p.add_argument("--labels", nargs="+", required=True, help="affinity label shard stores")
    p.add_argument("--classifier", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--history", required=True)
    p.add_argument("--resume-dir", required=True)
    _cli.run(main, p)
