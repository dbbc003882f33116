"""Rule ``explain_figure``: heat-map overlays of every method for the first images of the
segmentation set (columns: image, ground truth, one per method; the predicted class is explained)."""

from __future__ import annotations

import numpy as np

from vitaff import explain_eval as ev
from vitaff.config import resolve_device
from vitaff.stages import _cli
from vitaff.store import save_png
from vitaff.viz import overlay, panel_row, stack_rows

SHORT = {"transformer_attribution": "ours (TA)", "raw_attention": "raw attn", "attn_gradcam": "GradCAM",
         "partial_lrp": "partial LRP", "ta_no_grad": "TA no grad", "ta_last_block": "TA last blk",
         "ta_second_block": "TA blocks[1]", "ta_block_minus_1": "TA blk B-2"}


def main(args, params) -> None:
    import torch

    device = resolve_device(params["device"])
    explain = params["explain"]
    methods = ev.check_methods(explain["methods"])
    model, img_size = ev.load_eval_model(explain, args.model, device)
    data = ev.segmentation_data(explain)
    idx = list(range(min(explain["figure_images"], len(data))))
    images, masks = zip(*(data[i] for i in idx))
    x = torch.stack([ev.to_unit_tensor(im, img_size) for im in images]).to(device)
    pred = ev.classify(model, x, explain["forward_batch_size"])
    maps = ev.explanation_maps(model, x, pred, methods, explain["start_layer"], idx)
    height = max(img_size, 112)
    rows = []
    for b in range(len(idx)):
        rgb = (x[b].permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
        gt = ev.resize_mask(masks[b], img_size).numpy().astype(np.float32)
        panels = [rgb, overlay(rgb, gt, 0.45)] + [overlay(rgb, maps[m][b].numpy()) for m in methods]
        titles = [f"image (pred {int(pred[b])})", "ground truth"] + [SHORT.get(m, m) for m in methods]
        rows.append(panel_row(panels, titles, height=height))
    save_png(stack_rows(rows), args.out)


if __name__ == "__main__":
    p = _cli.parser(__doc__)
    p.add_argument("--model", default=None, help="embedded model checkpoint (ignored for the real model)")
    p.add_argument("--out", required=True)
    _cli.run(main, p)
