"""Rule ``make_synthetic_dataset``: generate the embedded VOC-layout dataset (``dataset.root: null``).

Generation happens in a staging directory and is swapped in whole, so an interrupted run never
leaves a dataset that looks complete. A previous embedded dataset (recognised by its
``synthetic.json`` or ``SegmentationPart/``) is replaced; any other directory is never touched.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from vitaff.config import ConfigError
from vitaff.data.synthetic import SyntheticConfig, generate_voc
from vitaff.data.voc import PART_DIR
from vitaff.errors import MissingFileError
from vitaff.stages import _cli


def _is_ours_or_empty(voc_dir: Path) -> bool:
    if not voc_dir.exists():
        return True
    voc = voc_dir / "VOC2012"
    if (voc / "synthetic.json").is_file() or (voc / PART_DIR).is_dir():
        return True
    return not any(p.is_file() for p in voc_dir.rglob("*"))


def main(args, params) -> None:
    knobs = {k: v for k, v in params.items() if k != "dir"}
    try:
        cfg = SyntheticConfig.from_dict({**SyntheticConfig().to_dict(), **knobs})
    except (TypeError, ValueError) as err:
        raise ConfigError(f"config section synthetic: {err}") from err
    root = Path(params["dir"])
    final = root / "VOCdevkit"
    if not _is_ours_or_empty(final):
        raise ConfigError(f"{final} exists and is not a generated dataset; set synthetic.dir to another directory")
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        summary = generate_voc(staging, cfg, verbose=True)
        if final.exists():
            shutil.rmtree(final)
        (staging / "VOCdevkit").rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for split, ids in summary["ids"].items():
        print(f"{split}: {len(ids)} images")
    if not Path(args.out).is_file():
        raise MissingFileError(f"generation finished but {args.out} is missing; synthetic.dir and the output disagree")


if __name__ == "__main__":
    p = _cli.parser(__doc__)
    p.add_argument("--out", required=True, help="the dataset's synthetic.json (Snakemake's output)")
    _cli.run(main, p)
