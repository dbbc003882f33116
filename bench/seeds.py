"""Throughput of the ``seeds`` stage: class-wise transformer-attribution seeds, flip-averaged.

Images per second of :func:`vitaff.seeds.class_seeds` (one forward + one relevance pass per present
class, original and flipped image) next to a plain batched forward of the same inputs, for the
embedded model at 128 px and the paper's hybrid (``vit_base_r50_s16_384`` at 448 px, random weights).

    python bench/seeds.py [--device cuda] [--classes 3] [--batch 4] [--paper]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from vitaff.models import create_model
from vitaff.seeds import class_seeds


def bench(name: str, img_size: int, image_size: int, n_classes: int, batch: int, device, repeats: int) -> None:
    model = create_model(name, num_classes=20, img_size=img_size).to(device).eval()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (image_size, image_size, 3), dtype=np.uint8) for _ in range(batch)]
    classes = [list(range(1, n_classes + 1))] * batch
    x = torch.randn(2 * batch, 3, img_size, img_size, device=device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    with torch.no_grad():
        model(x)
    class_seeds(model, images, classes, img_size, device)
    sync()
    t0 = time.perf_counter()
    for _ in range(repeats):
        with torch.no_grad():
            model(x)
    sync()
    forward = (time.perf_counter() - t0) / repeats
    t0 = time.perf_counter()
    for _ in range(repeats):
        class_seeds(model, images, classes, img_size, device)
    sync()
    seeds = (time.perf_counter() - t0) / repeats
    print(f"{name} @ {img_size}px, batch {batch}, {n_classes} classes, flip: "
          f"seeds {batch / seeds:.2f} img/s, forward of image+flip {batch / forward:.2f} img/s, "
          f"ratio {seeds / forward:.1f}x (ideal about 1 + 2 x classes relevance passes)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--classes", type=int, default=3)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--paper", action="store_true", help="also the paper's hybrid at 448 px (slow on CPU)")
    args = p.parse_args()
    device = torch.device(args.device)
    bench("vit_hybrid_synth", 128, 136, args.classes, args.batch, device, args.repeats)
    if args.paper:
        bench("vit_base_r50_s16_384", 448, 448, args.classes, max(1, args.batch // 4), device, 1)


if __name__ == "__main__":
    main()
