"""Command line of the generator: ``python -m vitaff.data.synthetic --root DIR ...``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from vitaff.data.synthetic.config import PART_PATTERNS, SPLITS, SyntheticConfig
from vitaff.data.synthetic.files import generate_voc


def main(argv: list[str] | None = None) -> int:
    d = SyntheticConfig()
    p = argparse.ArgumentParser(
        prog="python -m vitaff.data.synthetic",
        description="Generate the embedded synthetic dataset in PASCAL VOC 2012 layout under "
                    "ROOT/VOCdevkit/VOC2012 (atomic; a no-op if it exists with the same config).")
    p.add_argument("--root", required=True, type=Path, help="directory that will contain VOCdevkit/")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--n-train", type=int, default=d.n_train)
    p.add_argument("--n-val", type=int, default=d.n_val)
    p.add_argument("--classes", default=",".join(d.classes),
                   help=f"comma-separated VOC class names (1..{len(PART_PATTERNS)})")
    p.add_argument("--max-objects", type=int, default=d.max_objects)
    p.add_argument("--size-range", type=int, nargs=2, default=d.size_range, metavar=("LO", "HI"))
    p.add_argument("--image-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="fixed size instead of --size-range")
    p.add_argument("--jpeg-quality", type=int, default=d.jpeg_quality)
    p.add_argument("--config-json", type=Path, default=None,
                   help="JSON file of further SyntheticConfig fields (command-line flags win)")
    a = p.parse_args(argv)
    extra = json.loads(a.config_json.read_text()) if a.config_json else {}
    fields = dict(extra)
    fields.update(seed=a.seed, n_train=a.n_train, n_val=a.n_val,
                  classes=[c.strip() for c in a.classes.split(",") if c.strip()],
                  max_objects=a.max_objects, size_range=list(a.size_range),
                  image_size=list(a.image_size) if a.image_size else None, jpeg_quality=a.jpeg_quality)
    try:
        cfg = SyntheticConfig.from_dict(fields)
    except (TypeError, ValueError) as err:
        p.error(str(err))
    t0 = time.perf_counter()
    try:
        summary = generate_voc(a.root, cfg, verbose=True)
    except FileExistsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    counts = {s: len(summary["ids"][s]) for s in SPLITS}
    print(f"{summary['root']}: {counts} images, class counts {summary['class_counts']} "
          f"({time.perf_counter() - t0:.1f} s)")
    return 0
