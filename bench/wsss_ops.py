"""Timing of the per-image refinement operators (SPEC section 6): dense CRF and random walk.

Setting of the study: a 448 x 448 image with 3 present classes, feature stride 8 (56 x 56 grid),
radius 5 (34 pair offsets), beta 16, logt 8 (256 steps). The CRF runs on the CPU (pydensecrf);
the random walk on ``--device`` for batch sizes 1 and 4.

    python bench/wsss_ops.py                 # CPU
    python bench/wsss_ops.py --device cuda   # random walk on the GPU (CRF stays on the CPU)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from vitaff.affinity import pair_offsets
from vitaff.crf import crf_confident_labels
from vitaff.random_walk import random_walk


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _smooth_noise(rng: np.random.Generator, c: int, size: int, cells: int = 7) -> np.ndarray:
    coarse = torch.from_numpy(rng.random((1, c, cells, cells), dtype=np.float32))
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)[0].numpy()


def bench_crf(size: int, n_classes: int, repeats: int, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    image = (255 * _smooth_noise(rng, 3, size).transpose(1, 2, 0)).astype(np.uint8)
    maps = _smooth_noise(rng, n_classes, size)
    present = list(range(1, n_classes + 1))
    crf_confident_labels(image, maps, present)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        crf_confident_labels(image, maps, present)
    # crf_confident_labels runs two CRFs (alpha 4 and 32): report one CRF per image
    return (time.perf_counter() - start) / repeats / 2


def bench_random_walk(grid: int, batch: int, radius: int, beta: float, logt: int, method: str,
                      device: torch.device, repeats: int, seed: int = 0) -> float:
    gen = torch.Generator().manual_seed(seed)
    k = pair_offsets(radius).shape[0]
    aff = torch.rand(batch, k, grid, grid, generator=gen).to(device)
    scores = torch.rand(batch, 21, grid, grid, generator=gen).to(device)
    random_walk(aff, scores, radius=radius, beta=beta, logt=logt, method=method)  # warm-up
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        random_walk(aff, scores, radius=radius, beta=beta, logt=logt, method=method)
    _sync(device)
    return (time.perf_counter() - start) / repeats / batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="device of the random walk (cpu, cuda, cuda:N)")
    parser.add_argument("--size", type=int, default=448)
    parser.add_argument("--stride", type=int, default=8)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--radius", type=int, default=5)
    parser.add_argument("--beta", type=float, default=16.0)
    parser.add_argument("--logt", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", default="auto,banded,sparse", help="comma list of random-walk methods")
    parser.add_argument("--dense", action="store_true", help="also time psa's dense matrix squaring")
    parser.add_argument("--no-crf", action="store_true")
    args = parser.parse_args()

    device = torch.device(args.device)
    grid = -(-args.size // args.stride)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, random walk on {device}")
    if not args.no_crf:
        t = bench_crf(args.size, args.classes, args.repeats)
        print(f"dense CRF  {args.size}x{args.size}, {args.classes} classes + bg, 10 iterations: "
              f"{1000 * t:8.1f} ms / image (CPU, one alpha)")
    methods = [m for m in args.methods.split(",") if m]
    if args.dense:
        methods.append("dense")
    for method in methods:
        for batch in (1, 4):
            t = bench_random_walk(grid, batch, args.radius, args.beta, args.logt, method, device, args.repeats)
            print(f"random walk {grid}x{grid}, radius {args.radius}, beta {args.beta:g}, "
                  f"{2 ** args.logt} steps, {method:6s} batch {batch}: {1000 * t:8.1f} ms / image")


if __name__ == "__main__":
    main()
