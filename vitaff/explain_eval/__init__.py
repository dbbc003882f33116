"""Explainability evaluation: the perturbation and ImageNet-segmentation tests (SPEC sections 3-4).

Chefer, Gur & Wolf, "Transformer Interpretability Beyond Attention Visualization", CVPR 2021
(https://arxiv.org/abs/2012.09838), section 4 and Tables 1-3:

* **Segmentation test** (Table 2; SPEC 4): explain the predicted class, upsample the map to the
  input and min-max it to [0, 1]; foreground = map > mean(map). Pixel accuracy and the IoU of
  background and foreground come from one 2-class confusion matrix summed over the dataset
  (:mod:`vitaff.metrics`, the one IoU implementation); mAP is the mean over images of the average
  precision of the flattened pair ``[1 - map, map]`` against the one-hot ``[bg, fg]`` (NaN -> 0).
* **Perturbation test** (Table 1; SPEC 3): for s = 0, 0.1, ..., 0.9 set the ``int(H W s)`` most
  (positive) or least (negative) relevant pixels to 0 in the [0, 1] image, normalise, classify,
  and record top-1 accuracy against the ground truth; AUC = 100 * trapz(acc, s). The explained
  class is the predicted one ("predicted") or the ground truth ("target").

Both loops are batched (one :func:`vitaff.explain.explain_all` call per batch for every method,
perturbed images classified in batches) and return one row per image (and method, mode, class
kind), so shards of an image range are gathered exactly by concatenation (:func:`summarise_segmentation`,
:func:`summarise_perturbation`). The embedded default's small classifier is trained here too
(:func:`train_single_label`): single-label cross-entropy, seeded, resumable per epoch.

Modules: :mod:`~vitaff.explain_eval.segmentation` and :mod:`~vitaff.explain_eval.perturbation`
(the two tests), :mod:`~vitaff.explain_eval.metrics` (AP, AUC, gathering checks),
:mod:`~vitaff.explain_eval.maps` (maps and classification), :mod:`~vitaff.explain_eval.transforms`,
:mod:`~vitaff.explain_eval.training` (the embedded classifier) and :mod:`~vitaff.explain_eval.runs`
(data sources and loops of the rules). Every public name is importable from this package.
"""

from __future__ import annotations

from vitaff.explain_eval.maps import DEFAULT_METHODS, RANDOM, check_methods, classify, explanation_maps, random_maps
from vitaff.explain_eval.metrics import STEPS, auc, check_gathered, image_average_precision
from vitaff.explain_eval.perturbation import KINDS, MODES, perturbation_rows, remove_pixels, summarise_perturbation
from vitaff.explain_eval.runs import (
    embedded_sets,
    is_embedded,
    load_eval_model,
    perturbation_data,
    run_perturbation,
    run_segmentation,
    segmentation_data,
    shard_indices,
)
from vitaff.explain_eval.segmentation import foreground, segmentation_rows, summarise_segmentation
from vitaff.explain_eval.training import TrainSettings, accuracy, train_single_label
from vitaff.explain_eval.transforms import resize_mask, to_unit_tensor

__all__ = [
    "STEPS",
    "RANDOM",
    "DEFAULT_METHODS",
    "MODES",
    "KINDS",
    "foreground",
    "image_average_precision",
    "segmentation_rows",
    "summarise_segmentation",
    "remove_pixels",
    "auc",
    "perturbation_rows",
    "summarise_perturbation",
    "explanation_maps",
    "random_maps",
    "check_methods",
    "check_gathered",
    "to_unit_tensor",
    "resize_mask",
    "TrainSettings",
    "train_single_label",
    "accuracy",
    "classify",
    "is_embedded",
    "embedded_sets",
    "load_eval_model",
    "segmentation_data",
    "perturbation_data",
    "shard_indices",
    "run_segmentation",
    "run_perturbation",
]
