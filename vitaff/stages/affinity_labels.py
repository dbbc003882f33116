"""Rule ``affinity_labels``: class-agnostic affinity label grids from the two CRFs (SPEC 6).

Per image: both CRF probability stacks mean-pooled to the feature grid of the image padded to a
multiple of the feature stride, argmax each: the low-alpha class where it says foreground, 0
where the high-alpha CRF says background, 255 (neutral) otherwise and on padding. Pairs within
the radius are formed from these grids at training time (:func:`vitaff.affinity.extract_pairs`).
Stored as ``labels`` N x ceil(Hmax/stride) x ceil(Wmax/stride) uint8 with per-image grid sizes.

With ``affinity.input: resize`` (the study's code) both stacks are first resized bilinearly to the
network's square input (``crop_size``, 448), so every grid is ``crop_size/stride`` square (56 x 56)
and lines up with the resized image AffinityNet sees.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from vitaff.affinity import affinity_label_map
from vitaff.stages import _cli
from vitaff.store import ImageShardReader, ImageShardWriter, writing_store


def resized_probs(probs: np.ndarray, size: int) -> np.ndarray:
    """K x H x W probabilities -> K x size x size, bilinear (align_corners False)."""
    x = torch.from_numpy(np.ascontiguousarray(probs, dtype=np.float32))[None]
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)[0].numpy()


def main(args, params) -> None:
    aff = params["affinity"]
    stride = aff["feature_stride"]
    resize = aff["input"] == "resize"
    crf = ImageShardReader(args.crf)
    if resize:
        grids = [(aff["crop_size"] // stride, aff["crop_size"] // stride)] * len(crf)
    else:
        grids = [(math.ceil(h / stride), math.ceil(w / stride)) for h, w in crf.sizes]
    with writing_store(args.out) as group:
        group.attrs["stride"] = stride
        group.attrs["input"] = aff["input"]
        group.attrs["image_sizes"] = [list(s) for s in crf.sizes]
        writer = ImageShardWriter(group, crf.ids, grids, {"labels": (None, "uint8")}, classes=crf.classes)
        for k in tqdm(range(len(crf)), desc="affinity labels", mininterval=10):
            lo = crf.read_present(k, "probs_low", background=True).astype(np.float32)
            hi = crf.read_present(k, "probs_high", background=True).astype(np.float32)
            if resize:
                lo, hi = resized_probs(lo, aff["crop_size"]), resized_probs(hi, aff["crop_size"])
            padded = (grids[k][0] * stride, grids[k][1] * stride)
            writer.write(k, "labels", affinity_label_map(lo, hi, crf.classes[k], stride, padded_size=padded))


if __name__ == "__main__":
    p = _cli.parser(__doc__)
    p.add_argument("--crf", required=True)
    p.add_argument("--out", required=True)
    _cli.run(main, p)
