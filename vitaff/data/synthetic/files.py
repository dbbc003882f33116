"""File writing of the embedded dataset: JPEG / palette PNG / VOC XML encoders and the atomic,
idempotent :func:`generate_voc`."""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from vitaff.data.voc import INSTANCE_DIR, PART_DIR, VOC_CLASSES, voc_colormap
from vitaff.data.synthetic.config import (
    GENERATOR_VERSION,
    PART_HIDDEN_DIR,
    PART_PATTERNS,
    SPLITS,
    SyntheticConfig,
    _TMP_PREFIX,
    make_id,
)
from vitaff.data.synthetic.scene import render_scene


def _encode_jpeg(img: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    # No EXIF / comments / timestamps; fixed quality and 4:2:0 subsampling -> deterministic bytes.
    Image.fromarray(img, "RGB").save(buf, format="JPEG", quality=quality, subsampling=2, optimize=False)
    return buf.getvalue()


_PALETTE_BYTES = voc_colormap(256).tobytes()


def _encode_palette_png(mask: np.ndarray) -> bytes:
    im = Image.frombytes("P", (mask.shape[1], mask.shape[0]), np.ascontiguousarray(mask).tobytes())
    im.putpalette(_PALETTE_BYTES)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False)  # Pillow writes no tIME chunk
    return buf.getvalue()


def _annotation_xml(image_id: str, h: int, w: int, objects, truncated) -> str:
    lines = [
        "<annotation>",
        "\t<folder>VOC2012</folder>",
        f"\t<filename>{image_id}.jpg</filename>",
        "\t<source>",
        "\t\t<database>vitaff synthetic VOC</database>",
        "\t\t<annotation>vitaff.data.synthetic</annotation>",
        "\t\t<image>synthetic</image>",
        "\t</source>",
        "\t<size>",
        f"\t\t<width>{w}</width>",
        f"\t\t<height>{h}</height>",
        "\t\t<depth>3</depth>",
        "\t</size>",
        "\t<segmented>1</segmented>",
    ]
    for (cid, (x0, y0, x1, y1)), trunc in zip(objects, truncated):
        lines += [
            "\t<object>",
            f"\t\t<name>{VOC_CLASSES[cid]}</name>",
            "\t\t<pose>Unspecified</pose>",
            f"\t\t<truncated>{int(trunc)}</truncated>",
            "\t\t<difficult>0</difficult>",
            "\t\t<bndbox>",
            f"\t\t\t<xmin>{x0}</xmin>",
            f"\t\t\t<ymin>{y0}</ymin>",
            f"\t\t\t<xmax>{x1}</xmax>",
            f"\t\t\t<ymax>{y1}</ymax>",
            "\t\t</bndbox>",
            "\t</object>",
        ]
    lines.append("</annotation>")
    return "\n".join(lines) + "\n"


def _json_dumps(obj) -> str:
    return json.dumps(obj, indent=1, sort_keys=True) + "\n"


def is_complete(root: str | os.PathLike) -> bool:
    """Whether ``<root>/VOCdevkit/VOC2012/synthetic.json`` exists (written last, inside the
    temporary directory, before the atomic rename). Temporary ``.VOCdevkit.tmp-*`` directories
    left by interrupted runs never count."""
    return (Path(root) / "VOCdevkit" / "VOC2012" / "synthetic.json").is_file()


def _existing(root: Path, cfg: SyntheticConfig) -> dict:
    """Summary of an existing complete dataset generated with ``cfg``; raise if it differs."""
    meta_path = root / "VOCdevkit" / "VOC2012" / "synthetic.json"
    if not meta_path.is_file():
        raise FileExistsError(
            f"{root / 'VOCdevkit'} exists but is not a complete synthetic dataset (no {meta_path.name}); "
            "it may be real VOC data or a foreign directory. Choose another root or delete it.")
    meta = json.loads(meta_path.read_text())
    if meta.get("version") != GENERATOR_VERSION or meta.get("config") != cfg.to_dict():
        raise FileExistsError(
            f"{meta_path} was generated with a different config or generator version "
            f"(version {meta.get('version')}, ours {GENERATOR_VERSION}); delete {root / 'VOCdevkit'} "
            "to regenerate, or generate into another root.")
    return {"root": str(root / "VOCdevkit" / "VOC2012"), **meta["summary"]}


def generate_voc(root: str | os.PathLike, cfg: SyntheticConfig | None = None, *, verbose: bool = False) -> dict:
    """Generate the dataset under ``root/VOCdevkit/VOC2012`` and return its summary.

    The summary is ``{"root": <VOC2012 dir>, "ids": {"train": [...], "val": [...],
    "trainval": [...]}, "class_counts": {split: {class name: images containing it}},
    "instance_counts": {split: {class name: instances}}, "objects_per_image": {split: {n: images}}}``.

    Atomic and idempotent: files go to a temporary directory ``root/.VOCdevkit.tmp-*`` that is
    renamed to ``root/VOCdevkit`` last. If ``root/VOCdevkit`` already holds a dataset generated
    with the same config and generator version, nothing is written and its summary is returned;
    any other existing ``root/VOCdevkit`` raises ``FileExistsError`` (never overwritten).
    """
    cfg = cfg or SyntheticConfig()
    root = Path(root)
    final = root / "VOCdevkit"
    if final.exists():
        return _existing(root, cfg)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=root))
    try:
        voc = tmp / "VOC2012"
        dirs = {d: voc / d for d in ("JPEGImages", "SegmentationClass", INSTANCE_DIR,
                                     "Annotations", "ImageSets/Segmentation", "ImageSets/Main")}
        if cfg.write_parts:
            dirs[PART_DIR] = voc / PART_DIR
            dirs[PART_HIDDEN_DIR] = voc / PART_HIDDEN_DIR
        for d in dirs.values():
            d.mkdir(parents=True)
        ids: dict[str, list[str]] = {}
        class_counts: dict[str, dict[str, int]] = {}
        instance_counts: dict[str, dict[str, int]] = {}
        per_image: dict[str, dict[str, int]] = {}
        t0 = time.perf_counter()
        for s, split in enumerate(SPLITS):
            n = cfg.n_train if split == "train" else cfg.n_val
            ids[split] = []
            cc = {c: 0 for c in cfg.classes}
            ic = {c: 0 for c in cfg.classes}
            pi: dict[str, int] = {}
            for i in range(n):
                image_id = make_id(split, i)
                rng = np.random.default_rng([cfg.seed, s, i])
                img, mask, objects, aux = render_scene(rng, cfg, return_aux=True)
                h, w = mask.shape
                (dirs["JPEGImages"] / f"{image_id}.jpg").write_bytes(_encode_jpeg(img, cfg.jpeg_quality))
                (dirs["SegmentationClass"] / f"{image_id}.png").write_bytes(_encode_palette_png(mask))
                (dirs[INSTANCE_DIR] / f"{image_id}.png").write_bytes(_encode_palette_png(aux["instances"]))
                if cfg.write_parts:
                    (dirs[PART_DIR] / f"{image_id}.png").write_bytes(_encode_palette_png(aux["parts"]))
                    (dirs[PART_HIDDEN_DIR] / f"{image_id}.jpg").write_bytes(
                        _encode_jpeg(aux["part_hidden"], cfg.jpeg_quality))
                (dirs["Annotations"] / f"{image_id}.xml").write_text(
                    _annotation_xml(image_id, h, w, objects, aux["truncated"]))
                ids[split].append(image_id)
                names = [VOC_CLASSES[c] for c, _ in objects]
                for name in set(names):
                    cc[name] += 1
                for name in names:
                    ic[name] += 1
                pi[str(len(objects))] = pi.get(str(len(objects)), 0) + 1
            class_counts[split], instance_counts[split] = cc, ic
            per_image[split] = dict(sorted(pi.items()))
            if verbose:
                print(f"{split}: {n} images ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
        ids["trainval"] = sorted(ids["train"] + ids["val"])
        for split, lst in ids.items():
            text = "".join(f"{i}\n" for i in lst)
            (dirs["ImageSets/Segmentation"] / f"{split}.txt").write_text(text)
            (dirs["ImageSets/Main"] / f"{split}.txt").write_text(text)
        summary = {
            "ids": ids,
            "class_counts": class_counts,
            "instance_counts": instance_counts,
            "objects_per_image": per_image,
        }
        meta = {
            "generator": "vitaff.data.synthetic",
            "version": GENERATOR_VERSION,
            "config": cfg.to_dict(),
            "part_patterns": {c: PART_PATTERNS[k] for k, c in enumerate(cfg.classes)},
            "summary": summary,
        }
        (voc / "synthetic.json").write_text(_json_dumps(meta))  # completion mark, written last
        try:
            os.rename(tmp, final)
        except OSError:
            if final.exists():  # a concurrent run finished first: accept it if it is ours
                shutil.rmtree(tmp, ignore_errors=True)
                return _existing(root, cfg)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"root": str(final / "VOC2012"), **summary}
