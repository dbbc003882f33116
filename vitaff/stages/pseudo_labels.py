"""Rule ``pseudo_labels``: the random walk's labels of a split as VOC palette PNGs (the pipeline's product).

``results/pseudo_labels/<split>/<id>.png``: one PNG per image of the split at the image's own size,
palette mode with the standard VOC colour map, pixel values = VOC class indices 0..20 (the walk
labels every pixel, so 255 does not occur). This is the layout of VOC's ``SegmentationClass/``, so
a segmentation toolkit (mmsegmentation, torchvision's references, psa's segmentation step) trains
on it by pointing its annotation directory here. The directory is written under ``.partial`` and
renamed when every image is in, so a killed job never leaves a directory a later run would trust.
"""

from __future__ import annotations

from tqdm import tqdm

from vitaff.data.voc import save_label_png
from vitaff.stages import _cli
from vitaff.store import open_shards, writing_dir


def main(args, params) -> None:
    readers, _ = open_shards(args.walk)
    with writing_dir(args.out) as out:
        for reader in readers:
            for k, image_id in enumerate(tqdm(reader.ids, desc=f"pseudo labels {args.out}", mininterval=10)):
                labels = reader.read(k, "labels")
                if tuple(labels.shape) != tuple(reader.sizes[k]):
                    raise ValueError(f"random-walk labels of {image_id} are {labels.shape}, image is {reader.sizes[k]}")
                save_label_png(labels, out / f"{image_id}.png")


if __name__ == "__main__":
    p = _cli.parser(__doc__)
    p.add_argument("--walk", nargs="+", required=True, help="random-walk shard stores of one split")
    p.add_argument("--out", required=True, help="output directory of PNGs")
    _cli.run(main, p)
