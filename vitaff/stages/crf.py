"""Rule ``crf``: background maps at alpha_low / alpha_high and the dense CRF over each (SPEC 6).

Per image of the shard: ``fg`` = low-alpha CRF argmax (its foreground is trusted; also the ``crf``
baseline prediction), ``bg`` = high-alpha CRF argmax (its background is trusted), ``confident`` =
fg classes where the low-alpha CRF says foreground, 0 where the high-alpha CRF says background,
255 (neutral) elsewhere, and both probability stacks (float16: channel 0 background, then the
image's present classes in the order of ``classes``, zero padding after) for the affinity labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from vitaff.crf import crf_confident_labels
from vitaff.data.voc import load_image
from vitaff.stages import _cli
from vitaff.store import ImageShardReader, ImageShardWriter, present_channels, writing_store

CRF_KEYS = {"iterations": "n_iter", "gaussian_sxy": "gaussian_sxy", "gaussian_compat": "gaussian_compat",
            "bilateral_sxy": "bilateral_sxy", "bilateral_srgb": "bilateral_srgb", "bilateral_compat": "bilateral_compat"}


def crf_kwargs(crf: dict) -> dict:
    return {new: crf[old] for old, new in CRF_KEYS.items()}


def confident_labels(fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Pixel-level confident labels: fg class where the low-alpha CRF says foreground, 0 where the
    high-alpha CRF says background, 255 where neither is confident."""
    out = np.full(fg.shape, 255, np.uint8)
    out[fg > 0] = fg[fg > 0]
    out[bg == 0] = 0
    return out


def main(args, params) -> None:
    crf = params["crf"]
    seeds = ImageShardReader(args.seeds)
    voc = Path(params["voc_root"])
    with writing_store(args.out) as group:
        writer = ImageShardWriter(group, seeds.ids, seeds.sizes, {
            "fg": (None, "uint8"), "bg": (None, "uint8"), "confident": (None, "uint8"),
            "probs_low": (present_channels(seeds.classes, background=True), "float16"),
            "probs_high": (present_channels(seeds.classes, background=True), "float16"),
        }, classes=seeds.classes)
        for k, image_id in enumerate(tqdm(seeds.ids, desc=f"crf {Path(args.out).name}", mininterval=10)):
            image = load_image(voc / "JPEGImages" / f"{image_id}.jpg")
            classes = seeds.classes[k]
            maps = seeds.read_present(k, "maps").astype(np.float32)
            fg, bg, probs_low, probs_high = crf_confident_labels(
                image, maps, classes, crf["alpha_low"], crf["alpha_high"], **crf_kwargs(crf))
            writer.write(k, "fg", fg)
            writer.write(k, "bg", bg)
            writer.write(k, "confident", confident_labels(fg, bg))
            writer.write(k, "probs_low", probs_low.astype(np.float16))
            writer.write(k, "probs_high", probs_high.astype(np.float16))


if __name__ == "__main__":
    p = _cli.parser(__doc__)
    p.add_argument("--seeds", required=True)
    p.add_argument("--out", required=True)
    _cli.run(main, p)
