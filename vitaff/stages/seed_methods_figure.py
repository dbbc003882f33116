"""Rule ``seed_methods_figure``: the same eval images seeded by every method of
``seed_methods.methods`` (SPEC 8), one row per image: the image, its ground truth, then per method
the seeds' argmax over [``seeds.bg_threshold``, M_c] blended over the image and the maximum of its
class maps as a heat map."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vitaff.data.index import read_index
from vitaff.data.voc import load_image, load_mask
from vitaff.errors import VitaffError
from vitaff.seeds import seed_labels
from vitaff.stages import _cli
from vitaff.store import open_shards, save_png
from vitaff.viz import blend_labels, colorize, overlay, panel_row, stack_rows


def parse_stores(items: list[str]) -> dict[str, list[str]]:
    """``method:store,store`` items -> {method: [stores]} in the given order."""
    out = {}
    for item in items:
        method, _, paths = item.partition(":")
        if not paths:
            raise VitaffError(f"--stores item {item!r} is not method:store,store,...")
        out[method] = paths.split(",")
    return out


def main(args, params) -> None:
    voc = Path(params["voc_root"])
    n, bg = params["seed_methods"]["figure_images"], params["seeds"]["bg_threshold"]
    ids = sorted(read_index(args.index)["id"])[:n]
    where = {method: open_shards(paths)[1] for method, paths in parse_stores(args.stores).items()}
    rows = []
    for image_id in ids:
        image = load_image(voc / "JPEGImages" / f"{image_id}.jpg")
        panels, titles = [image, colorize(load_mask(voc / params["dataset"]["mask_dir"] / f"{image_id}.png",
                                                    image.shape[:2]))], ["image", "ground truth"]
        for method, lookup in where.items():
            reader, k = lookup[image_id]
            maps = reader.read_present(k, "maps").astype(np.float32)
            panels += [blend_labels(image, seed_labels(maps, reader.classes[k], bg)), overlay(image, maps.max(0))]
            titles += [method, f"{method} max"]
        rows.append(panel_row(panels, titles))
    save_png(stack_rows(rows), args.out)


if __name__ == "__main__":
    p = _cli.parser(__doc__)
    p.add_argument("--index", required=True)
    p.add_argument("--stores", nargs="+", required=True, help="method:store,store,... per method, in column order")
    p.add_argument("--out", required=True)
    _cli.run(main, p)
