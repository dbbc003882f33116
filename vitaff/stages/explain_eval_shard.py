"""Rule ``explain_eval_shard``: one image range of the segmentation or perturbation test (``{test}``).

Writes one CSV row per image (and method; for the perturbation test also mode and class kind),
atomically, so a finished shard is never recomputed and the gather rule combines shards exactly.
"""

from __future__ import annotations

import pandas as pd

from vitaff import explain_eval as ev
from vitaff.config import resolve_device
from vitaff.stages import _cli
from vitaff.store import write_csv


def main(args, params) -> None:
    _cli.seed_everything(params["seed"])
    device = resolve_device(params["device"])
    explain = params["explain"]
    methods = ev.check_methods(explain["methods"])
    model, img_size = ev.load_eval_model(explain, args.model, device)
    if args.test == "segmentation":
        data = ev.segmentation_data(explain)
        idx = ev.shard_indices(len(data), explain["limit"], args.shard, args.shards)
        rows = ev.run_segmentation(model, img_size, data, idx, methods, explain["start_layer"], explain["batch_size"],
                                   device, explain["forward_batch_size"])
        columns = ["index", "method", "bg_bg", "bg_fg", "fg_bg", "fg_fg", "ap"]
    else:
        if explain["random_baseline"]:
            methods = methods + [ev.RANDOM]
        paths, labels = ev.perturbation_data(explain)
        idx = ev.shard_indices(len(paths), explain["limit"], args.shard, args.shards)
        rows = ev.run_perturbation(model, img_size, paths, labels, idx, methods, explain["start_layer"],
                                   explain["batch_size"], explain["forward_batch_size"], params["seed"], device)
        columns = ["index", "method", "mode", "kind", "label", "predicted"] + [f"s{j}" for j in range(len(ev.STEPS))]
    _cli.log.info("shard %d/%d: images %s", args.shard, args.shards, f"{idx[0]}..{idx[-1]}" if idx else "none")
    write_csv(pd.DataFrame(rows, columns=columns), args.out)


if __name__ == "__main__":
    p = _cli.parser(__doc__)
    p.add_argument("--test", choices=("segmentation", "perturbation"), required=True)
    p.add_argument("--model", default=None, help="embedded model checkpoint (ignored for the real model)")
    p.add_argument("--shard", type=int, required=True)
    p.add_argument("--shards", type=int, required=True)
    p.add_argument("--out", required=True)
    _cli.run(main, p)
