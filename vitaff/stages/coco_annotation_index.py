"""Rule ``coco_annotation_index``: parse one COCO ``instances_<split>.json`` once (paper step 0).

Writes the compact pickle of :func:`vitaff.data.coco.build_annotation_index` (images, annotations
grouped by image, categories), checked for annotations of unlisted images or categories. Later
rules load it in seconds instead of parsing the JSON again.
"""

from __future__ import annotations

import logging
import time

from vitaff.data.coco import annotation_path, build_annotation_index, save_annotation_index
from vitaff.stages import _cli

log = logging.getLogger("vitaff")


def main(args, params) -> None:
    start = time.process_time()
    index = build_annotation_index(annotation_path(params["root"], args.split))
    log.info("%s: %d images, %d annotations, %d categories parsed in %.1f CPU-s", index.source,
             len(index.image_ids), len(index.ann_category), len(index.category_ids), time.process_time() - start)
    save_annotation_index(index, args.out)


if __name__ == "__main__":
    p = _cli.parser(__doc__)
    p.add_argument("--split", required=True)
    p.add_argument("--out", required=True)
    _cli.run(main, p)
