"""Throughput of every stage that feeds a model, and the real run's projected wall time on this device.

Per stage (classifier training, seeds, AffinityNet training, random walk with AffinityNet inference):

* **input**: images per second the stage's input pipeline delivers with 0 (this process), 1, 2, 4
  ... worker processes (up to the CPUs), and images per CPU-second (this process and its workers:
  the per-core efficiency). The classifier's row ``today`` is the per-image pipeline this package
  used before 2026-12-03 (decode, float resize, flip and torchvision ``ColorJitter`` per image, one
  process), measured in the same run: the before figure beside the after.
* **model**: images per second of the model step on ``--device`` (the real hybrid
  ``vit_base_r50_s16_384`` at 448, random weights, ``--steps`` timed steps of ``--batch`` images):
  the classifier's training step and eval forward, AffinityNet's training step, its inference plus
  the 56 x 56 walk; seeds measured with one image of one class (``--seeds measure``, the default on
  CUDA) or, on a CPU where that costs a minute, estimated from one forward as
  ``(5.7 + 2.75 (c - 1))`` forwards of image + flip for ``c`` classes (the ratios ``bench/seeds.py``
  measured) with VOC's ``c = 1.5``.
* **projection**: the real run (10,582 train_aug + 1,449 val images; 20 classifier epochs with a val
  pass each, 7 AffinityNet epochs; seeds and walk over 12,031 images) at the slower of input and
  model rate per stage.

The JPEGs are generated (500 x 375, smooth noise, quality 90) in a temporary directory.

    python bench/throughput.py                                  # CPU, < 3 min on 2 cores
    python bench/throughput.py --device cuda --batch 8 --steps 10 --images 512
    python bench/throughput.py --device cuda --precision bf16
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Subset
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vitaff.affinity import affinity_loss, extract_pairs  # noqa: E402
from vitaff.affinity_training import AffinityModel, AffinityResizedSet, image_affinity  # noqa: E402
from vitaff.classifier import ClassificationSet, normalise, resize, to_tensor, training_step  # noqa: E402
from vitaff.data.loading import augment_batch, autocast, image_batches, make_loader, to_device  # noqa: E402
from vitaff.data.voc import load_image  # noqa: E402
from vitaff.models import create_model  # noqa: E402
from vitaff.random_walk import refine_seeds  # noqa: E402

TRAIN, VAL = 10_582, 1_449
CLS_EPOCHS, AFF_EPOCHS = 20, 7
JITTER = (0.3, 0.3, 0.3, 0.1)
SIZE = 448


def make_jpegs(root: Path, n: int) -> list[str]:
    (root / "JPEGImages").mkdir(parents=True)
    rng = np.random.default_rng(0)
    ids = []
    for i in range(n):
        noise = rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)
        image = Image.fromarray(noise).filter(ImageFilter.GaussianBlur(3))
        image.save(root / "JPEGImages" / f"img_{i:04d}.jpg", quality=90)
        ids.append(f"img_{i:04d}")
    return ids


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the loader's workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn, n_images: int, device) -> tuple[float, float]:
    """(images per second, images per CPU-second) of ``fn()`` handling ``n_images``."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    return n_images / wall, n_images / max(cpu, 1e-9)


def today_classifier_sample(root: Path, image_id: str, generator_jitter) -> torch.Tensor:
    """The classifier's training sample as built before 2026-12-03, one image in one process."""
    x = resize(to_tensor(load_image(root / "JPEGImages" / f"{image_id}.jpg")), SIZE)
    if torch.rand(()) < 0.5:
        x = x.flip(-1)
    return normalise(generator_jitter(x).clamp_(0, 1))


def steady(epoch, n_images: int, n_first: int, device) -> tuple[float, float, float]:
    """(images per second, images per CPU-second, start-up seconds) of an input pipeline in steady
    state: an epoch of ``n_images`` less an epoch of its first ``n_first`` (worker start-up and the
    first batches, paid once per epoch: 10,582 images amortise it in the real run)."""
    wall0, cpu0 = time.perf_counter(), cpu_seconds()
    epoch(n_first)
    wall1, cpu1 = time.perf_counter(), cpu_seconds()
    epoch(n_images)
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall2, cpu2 = time.perf_counter(), cpu_seconds()
    n = n_images - n_first
    return n / max(wall2 - wall1 - (wall1 - wall0), 1e-9), n / max(cpu2 - cpu1 - (cpu1 - cpu0), 1e-9), wall1 - wall0


def input_rates(args, root: Path, ids: list[str], device) -> dict[str, dict]:
    from torchvision.transforms import v2

    rates = {"classifier": {}, "affinitynet": {}, "images": {}}
    jitter = v2.ColorJitter(*JITTER)
    rates["classifier"]["today"] = timed(lambda: [today_classifier_sample(root, i, jitter) for i in ids], len(ids),
                                         torch.device("cpu")) + (0.0,)
    labels = [[1]] * len(ids)
    grids = [np.zeros((SIZE // 8, SIZE // 8), dtype=np.uint8)] * len(ids)
    cls_set = ClassificationSet(root, ids, labels, SIZE, augment=True, color_jitter=JITTER)
    cls_set.augment_here = device.type == "cpu"
    aff_set = AffinityResizedSet(root, ids, grids, SIZE, 8, augment=True, color_jitter=JITTER)
    paths = [root / "JPEGImages" / f"{i}.jpg" for i in ids]
    for w in args.workers:
        def classifier_epoch(n):
            loader = make_loader(Subset(cls_set, range(n)), args.loader_batch, workers=w, device=device,
                                 shuffle=True, generator=torch.Generator().manual_seed(0))
            for x, _, aug in loader:
                x = to_device(x, device)
                if not cls_set.augment_here:
                    augment_batch(x, aug)

        def affinity_epoch(n):
            for x, grid in make_loader(Subset(aff_set, range(n)), args.loader_batch, workers=w, device=device,
                                       shuffle=True, generator=torch.Generator().manual_seed(0)):
                to_device(x, device), to_device(grid, device)

        def image_epoch(n):
            for _ in image_batches(paths[:n], args.loader_batch, w):
                pass

        first = args.loader_batch * max(w, 1)
        rates["classifier"][w] = steady(classifier_epoch, len(ids), first, device)
        rates["affinitynet"][w] = steady(affinity_epoch, len(ids), first, device)
        rates["images"][w] = steady(image_epoch, len(ids), first, device)
    return rates


def model_rates(args, device) -> dict[str, float]:
    """Images per second of each stage's model step (threads: all of this process's)."""
    b = args.batch
    model = create_model("vit_base_r50_s16_384", num_classes=20, img_size=SIZE).to(device)
    x = torch.randn(b, 3, SIZE, SIZE, device=device)
    y = (torch.rand(b, 20, device=device) > 0.9).float()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def steps(fn, n):
        for _ in range(args.warmup):
            fn()
        return timed(lambda: [fn() for _ in range(n)], n * b, device)[0]

    def cls_step():
        training_step(model, opt, x, y, device, args.precision)

    @torch.no_grad()
    def forward():
        with autocast(device, args.precision):
            model(x)

    out = {}
    model.train()
    out["classifier train"] = steps(cls_step, args.steps)
    model.eval()
    out["classifier eval"] = steps(forward, args.steps)
    model.img_size = SIZE
    if args.seeds == "measure":
        from vitaff.seeds import class_seeds

        image = [np.zeros((375, 500, 3), dtype=np.uint8)]
        out["seeds"] = timed(lambda: class_seeds(model, image, [[1]], SIZE, device, start_layer=0, flip=True,
                                                 cube_root=True, precision=args.precision), 1, device)[0]
        out["seeds"] /= 1 + 2.75 / 5.7 * (args.classes - 1)  # one class measured; VOC's mean count
    else:
        per_forward = out["classifier eval"]  # images per second of one forward
        out["seeds"] = per_forward / (2 * (5.7 + 2.75 * (args.classes - 1)))
    aff = AffinityModel(model).to(device)
    aff_opt = torch.optim.SGD(aff.parameters(), lr=1e-3, momentum=0.9)
    grid = torch.randint(0, 3, (b, SIZE // 8, SIZE // 8), device=device)

    def aff_step():
        with autocast(device, args.precision):
            a = aff.affinity(x, 5)
        loss, _ = affinity_loss(a.float(), extract_pairs(grid, 5))
        aff_opt.zero_grad(set_to_none=True)
        loss.backward()
        aff_opt.step()

    aff.train()
    out["affinitynet train"] = steps(aff_step, args.steps)
    aff.eval()
    image = np.random.default_rng(0).integers(0, 256, (375, 500, 3), dtype=np.uint8)
    maps = np.random.default_rng(1).random((1, 375, 500)).astype(np.float32)

    def walk_one():
        a = image_affinity(aff, image, 5, device, resize_to=SIZE)
        refine_seeds(maps, [1], a, stride=8, radius=5, beta=16, logt=8, bg_power=4, resized=True,
                     dtype=torch.float64)

    for _ in range(args.warmup):
        walk_one()
    out["random walk"] = timed(lambda: [walk_one() for _ in range(max(1, args.steps // b))], max(1, args.steps // b),
                               device)[0]
    return out


def hours(n_images: float, rate: float) -> str:
    s = n_images / rate
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.1f} min"


def main() -> None:
    cpus = len(os.sched_getaffinity(0))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    p.add_argument("--images", type=int, default=64, help="generated JPEGs per input measurement")
    p.add_argument("--workers", type=int, nargs="+", default=None, help="worker counts (default 0, 1, 2, 4 .. CPUs)")
    p.add_argument("--loader-batch", type=int, default=8)
    p.add_argument("--batch", type=int, default=None, help="model batch (default 2 on CPU, 8 on CUDA)")
    p.add_argument("--steps", type=int, default=None, help="timed model steps (default 1 on CPU, 10 on CUDA)")
    p.add_argument("--classes", type=float, default=1.5, help="mean classes per image for the seeds")
    p.add_argument("--seeds", choices=("measure", "estimate"), default=None)
    p.add_argument("--skip-model", action="store_true", help="input pipelines only")
    args = p.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    args.batch = args.batch or (8 if cuda else 2)
    args.steps = args.steps or (10 if cuda else 1)
    args.warmup = 2 if cuda else 0
    args.seeds = args.seeds or ("measure" if cuda else "estimate")
    args.workers = args.workers or [0] + [w for w in (1, 2, 4, 8, 16) if w <= cpus]
    torch.set_num_threads(1)  # input measurements: the main process on one core, as a worker
    print(f"# bench/throughput.py on {device} ({torch.cuda.get_device_name(device) if cuda else f'{cpus} CPUs'}), "
          f"{args.precision}, torch {torch.__version__}, {args.images} JPEGs of 500 x 375 -> {SIZE}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ids = make_jpegs(root, args.images)
        rates = input_rates(args, root, ids, device)
    print("\n## input pipelines in steady state (images/s | images per CPU-second | start-up s per epoch)\n")
    print("| stage | " + " | ".join(f"{w} workers" for w in args.workers) + " |")
    print("|---" * (len(args.workers) + 1) + "|")
    today = rates["classifier"]["today"]
    print(f"| classifier, per image as before 2026-12-03 (1 process) | {today[0]:.0f} \\| {today[1]:.0f} \\| 0 |"
          + " |" * (len(args.workers) - 1))
    names = {"classifier": "classifier (decode, resize, flip, jitter)",
             "affinitynet": "AffinityNet (decode, resize, jitter, flip)", "images": "seeds / walk (decode)"}
    for stage, name in names.items():
        print(f"| {name} | " + " | ".join(f"{rates[stage][w][0]:.0f} \\| {rates[stage][w][1]:.0f} \\| {rates[stage][w][2]:.2f}"
                                           for w in args.workers) + " |")
    best_w = max(args.workers, key=lambda w: rates["classifier"][w][0])
    two = 2 if 2 in args.workers else best_w
    print(f"\nclassifier input: {rates['classifier'][two][0] / today[0]:.2f}x today's images/s with {two} workers; "
          f"per CPU-second (per core) {rates['classifier'][0][1] / today[1]:.2f}x with 0 workers, "
          f"{rates['classifier'][two][1] / today[1]:.2f}x with {two}; on {two} free cores {two} workers would deliver "
          f"{two * rates['classifier'][two][1]:.0f} images/s = {two * rates['classifier'][two][1] / today[1]:.2f}x "
          f"today's one-core rate (wall-clock rates above are those of this machine's load now: "
          f"load average {os.getloadavg()[0]:.1f} on {cpus} CPUs)")
    if args.skip_model:
        return
    torch.set_num_threads(cpus)
    model = model_rates(args, device)
    best = {stage: max(r[w][0] for w in args.workers) for stage, r in rates.items()}
    plan = [("classifier training", TRAIN * CLS_EPOCHS, best["classifier"], model["classifier train"]),
            ("classifier val pass", VAL * CLS_EPOCHS, best["classifier"], model["classifier eval"]),
            ("seeds", TRAIN + VAL, best["images"], model["seeds"]),
            ("AffinityNet training", TRAIN * AFF_EPOCHS, best["affinitynet"], model["affinitynet train"]),
            ("random walk + AffinityNet inference", TRAIN + VAL, best["images"], model["random walk"])]
    print(f"\n## model steps and the real run on this device (batch {args.batch}, {args.steps} steps, "
          f"seeds {args.seeds}d)\n")
    print("| stage | images | input images/s (best) | model images/s | bound | projected wall time |")
    print("|---|---|---|---|---|---|")
    total = 0.0
    for name, n, inp, mod in plan:
        rate = min(inp, mod)
        total += n / rate
        print(f"| {name} | {n:,} | {inp:.0f} | {mod:.3g} | {'input' if inp < mod else 'model'} | {hours(n, rate)} |")
    print(f"| total (CRF and affinity labels: CPU stages, not included) | | | | | {hours(total, 1.0)} |")


if __name__ == "__main__":
    main()
