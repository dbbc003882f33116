"""Disk per image of the per-image stores (README, "Disk and time at COCO's scale").

For every ``results/<stage>/<split>/shard_<k>.zarr`` under ``--results``: bytes on disk per image,
per array, with the mean image size and number of classes present, and the bytes per stored
class-map pixel (what the projection to another dataset scales by).

    python bench/store_disk.py [--results results]
    python bench/store_disk.py --compare results/seeds/val/shard_0.zarr --classes 80

``--compare``: rewrite one seeds shard's maps as a full stack of ``--classes`` channels (the layout
before 2026-12-03, every class at index c - 1) and as the present classes only (the current one),
and print both stores' bytes per image and the CPU time to read every image back.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def compare_layouts(store: Path, num_fg: int) -> None:
    import shutil
    import tempfile
    import time

    from vitaff.store import ImageShardReader, ImageShardWriter, present_channels, writing_store

    reader = ImageShardReader(store)
    # a store written before 2026-12-03 holds full stacks (class c at channel c - 1)
    old = reader.group["maps"].shape[1] != present_channels(reader.classes)
    maps = [reader.read(k, "maps")[[c - 1 for c in reader.classes[k]]] if old else reader.read_present(k, "maps")
            for k in range(len(reader))]
    tmp = Path(tempfile.mkdtemp(prefix="layouts-"))
    try:
        for layout in ("full", "present"):
            path = tmp / f"{layout}.zarr"
            channels = num_fg if layout == "full" else present_channels(reader.classes)
            with writing_store(path) as group:
                writer = ImageShardWriter(group, reader.ids, reader.sizes, {"maps": (channels, "float16")},
                                          classes=reader.classes)
                for k, m in enumerate(maps):
                    if layout == "full":
                        full = np.zeros((num_fg, *m.shape[1:]), np.float16)
                        full[[c - 1 for c in reader.classes[k]]] = m
                        m = full
                    writer.write(k, "maps", m)
            again = ImageShardReader(path)
            cpu = time.process_time()
            for k in range(len(again)):
                again.read(k, "maps")
            cpu = time.process_time() - cpu
            print(f"{layout} ({channels} channels): {tree_bytes(path) / len(maps) / 1e3:.1f} kB per image, "
                  f"{cpu / len(maps) * 1e3:.1f} CPU-ms per image to read")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    import zarr

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--results", default="results")
    p.add_argument("--compare", default=None, help="a seeds shard store to rewrite in both layouts")
    p.add_argument("--classes", type=int, default=80, help="with --compare: the full stack's classes")
    args = p.parse_args()
    if args.compare:
        compare_layouts(Path(args.compare), args.classes)
        return
    results = Path(args.results)
    total = defaultdict(int)
    per_array = defaultdict(int)
    images = defaultdict(int)
    pixels, present = defaultdict(int), defaultdict(int)
    for stage in ("seeds", "crf", "affinity_labels", "random_walk"):
        for store in sorted(results.glob(f"{stage}/*/shard_*.zarr")):
            group = zarr.open_group(str(store), mode="r")
            sizes = np.asarray(group["sizes"][:])
            classes = group.attrs.get("classes") or [[] for _ in sizes]
            images[stage] += len(sizes)
            pixels[stage] += int(np.prod(sizes, axis=1).sum())
            present[stage] += sum(len(c) for c in classes)
            total[stage] += tree_bytes(store)
            for name in group.array_keys():
                per_array[(stage, name)] += tree_bytes(store / name)
    for stage, n in images.items():
        print(f"{stage}: {n} images, {total[stage] / n / 1e3:.1f} kB per image "
              f"(mean {pixels[stage] / n:.0f} px, {present[stage] / n:.2f} classes present)")
        for (s, name), b in sorted(per_array.items()):
            if s == stage:
                line = f"  {name}: {b / n / 1e3:.1f} kB per image"
                if name in ("maps", "probs_low", "probs_high"):
                    channels = present[stage] + (n if name != "maps" else 0)
                    line += f", {b / max(1.0, pixels[stage] / n * channels):.3f} B per stored class-map pixel"
                print(line)
    print(f"all stores: {sum(total.values()) / max(images.values()) / 1e3:.1f} kB per image")


if __name__ == "__main__":
    main()
