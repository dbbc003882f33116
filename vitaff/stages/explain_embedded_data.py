"""Rule ``explain_embedded_data``: generate the embedded sets of the explainability tests.

Writes ``<explain.embedded.dir>/gtsegs.mat`` (the MATLAB v7.3 layout of ``gtsegs_ijcv.mat``) and a
single-label classification set in the ImageNet class-sub-directory layout
(:func:`vitaff.data.imagenet_seg.make_embedded_sets`); ``explain_sets.json`` is written last.
"""

from __future__ import annotations

from vitaff.explain_eval import embedded_sets
from vitaff.data.imagenet_seg import make_embedded_sets
from vitaff.stages import _cli


def main(args, params) -> None:
    explain = params["explain"]
    info = make_embedded_sets(explain["embedded"]["dir"], embedded_sets(explain))
    _cli.log.info("embedded explainability sets: %s", info)


if __name__ == "__main__":
    _cli.run(main, _cli.parser(__doc__))
