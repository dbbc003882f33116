"""Perturbation test (Chefer et al. Table 1; SPEC 3): remove the most (positive) or least
(negative) relevant pixels in steps of 10 %, classify, record top-1 correctness per image; the
summary is the accuracy per step and its AUC."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from vitaff.explain_eval.maps import classify, explanation_maps
from vitaff.explain_eval.metrics import STEPS, auc, check_gathered

MODES = ("positive", "negative")
KINDS = ("predicted", "target")


def remove_pixels(images01: torch.Tensor, maps: torch.Tensor, fraction: float, positive: bool) -> torch.Tensor:
    """Copy of ``images01`` (B x C x H x W, values in [0, 1]) with the ``int(H * W * fraction)``
    most relevant (``positive``) or least relevant pixels of ``maps`` (B x H x W) set to 0 in every
    channel. Ties keep raster order (stable sort)."""
    B, C, H, W = images01.shape
    if maps.shape != (B, H, W):
        raise ValueError(f"maps {tuple(maps.shape)} do not match images {tuple(images01.shape)}")
    k = int(H * W * fraction)
    out = images01.clone()
    if k <= 0:
        return out
    flat = maps.reshape(B, -1).float()
    order = torch.argsort(-flat if positive else flat, dim=1, stable=True)[:, :k]
    keep = torch.ones(B, H * W, dtype=images01.dtype, device=images01.device)
    keep.scatter_(1, order.to(images01.device), 0.0)
    return out * keep.reshape(B, 1, H, W)


def perturbation_rows(model: torch.nn.Module, images01: torch.Tensor, labels: torch.Tensor, indices: Sequence[int],
                      methods: Sequence[str], start_layer: int = 1, forward_batch: int = 128,
                      seed: int = 0) -> list[dict]:
    """Per image, method, mode (positive/negative) and kind (predicted/target): 0/1 correctness of
    the top-1 prediction after removing each fraction of :data:`STEPS` (columns ``s0`` .. ``s9``).

    Where the prediction equals the label, the "target" map is the "predicted" map, so its rows
    are copied instead of recomputed.
    """
    labels = labels.to(torch.long).cpu()
    pred = classify(model, images01, forward_batch)
    base = (pred == labels).numpy()  # step 0 removes nothing
    wrong = torch.nonzero(pred != labels).flatten()
    maps = {"predicted": explanation_maps(model, images01, pred, methods, start_layer, indices, seed)}
    if len(wrong):
        sub = explanation_maps(model, images01[wrong], labels[wrong], methods, start_layer,
                               [indices[i] for i in wrong.tolist()], seed)
        maps["target"] = {m: maps["predicted"][m].clone().index_copy_(0, wrong, sub[m]) for m in methods}
    rows = []
    for method in methods:
        for mode in MODES:
            predicted = _correct_after_removal(model, images01, labels, maps["predicted"][method], base,
                                               torch.arange(images01.shape[0]), mode == "positive", forward_batch)
            target = predicted.copy()
            if len(wrong):
                target[wrong.numpy()] = _correct_after_removal(model, images01, labels, maps["target"][method], base,
                                                               wrong, mode == "positive", forward_batch)[wrong.numpy()]
            for kind, correct in (("predicted", predicted), ("target", target)):
                for b, index in enumerate(indices):
                    row = {"index": int(index), "method": method, "mode": mode, "kind": kind,
                           "label": int(labels[b]), "predicted": int(pred[b])}
                    row.update({f"s{j}": int(correct[b, j]) for j in range(len(STEPS))})
                    rows.append(row)
    return rows


def _correct_after_removal(model, images01, labels, maps, base, todo, positive, forward_batch) -> np.ndarray:
    """B x len(STEPS) 0/1 correctness; rows outside ``todo`` keep the unperturbed result."""
    correct = np.repeat(base[:, None], len(STEPS), axis=1).astype(np.int64)
    if len(todo):
        x, m = images01[todo], maps[todo]
        stack = torch.cat([remove_pixels(x, m, s, positive) for s in STEPS[1:]])
        ok = classify(model, stack, forward_batch).reshape(len(STEPS) - 1, len(todo)) == labels[todo][None]
        correct[todo.numpy(), 1:] = ok.numpy().T
    return correct


def summarise_perturbation(frame) -> "pd.DataFrame":
    """Per-image rows -> one row per method x mode x kind: AUC (percent), accuracy per step, n_images."""
    import pandas as pd

    check_gathered(frame, ["index", "method", "mode", "kind"])
    cols = [f"s{j}" for j in range(len(STEPS))]
    out = []
    for (method, mode, kind), group in frame.groupby(["method", "mode", "kind"], sort=False):
        acc = group[cols].mean().to_numpy(dtype=np.float64)
        row = {"method": method, "mode": mode, "kind": kind, "AUC": auc(acc)}
        row.update({f"acc_{s:.1f}": 100 * a for s, a in zip(STEPS, acc)})
        row["n_images"] = int(group["index"].nunique())
        out.append(row)
    return pd.DataFrame(out)
