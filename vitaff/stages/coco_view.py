"""Rule ``coco_view``: the VOC-layout view of an MS COCO 2014 root (paper step 0).

Links the images, renders the semantic masks once with pycocotools, writes the image-level labels
as VOC XML and the split lists (:func:`vitaff.data.coco.write_view`; conventions there and in the
README, "MS COCO 2014"). The view is written whole or not at all.
"""

from __future__ import annotations

from pathlib import Path

from vitaff.data.coco import write_view
from vitaff.stages import _cli


def main(args, params) -> None:
    indexes = dict(item.split(":", 1) for item in args.indexes)
    write_view(params["root"], indexes, Path(args.out).parent, params.get("id_lists") or {}, args.threads or 1)


if __name__ == "__main__":
    p = _cli.parser(__doc__)
    p.add_argument("--indexes", nargs="+", required=True, help="split:annotation index pickle")
    p.add_argument("--out", required=True, help="<view>/prepared.json (the view is its directory)")
    _cli.run(main, p)
