"""Rule ``dataset_classes``: the dataset's class list as ``results/data/classes.csv`` (paper step 0).

Columns ``index`` (label index: 0 background, 1..C), ``name``, ``category_id`` (COCO's own id of the
class; empty for VOC-layout datasets). Every stage that counts or names classes reads this file
(:func:`vitaff.data.classes.read_classes`): the classifier's head, the score tables' columns.
"""

from __future__ import annotations

import logging

from vitaff.data.classes import dataset_classes, write_classes
from vitaff.stages import _cli

log = logging.getLogger("vitaff")


def main(args, params) -> None:
    classes = dataset_classes(params["root"], params.get("classes"))
    log.info("%d classes from %s", classes.num_fg, classes.source)
    write_classes(classes, args.out)


if __name__ == "__main__":
    p = _cli.parser(__doc__)
    p.add_argument("--out", required=True)
    _cli.run(main, p)
