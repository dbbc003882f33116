"""Time and memory of the step-3 network's real configuration (SPEC 9): torchvision's DeepLab-v3
ResNet-101 (output stride 8, random weights), one SGD iteration on crops of 321 and 513 px, and the
multi-scale + flip inference (+ dense CRF) of one 500 x 375 image.

Each measurement runs in its own process, so its peak resident memory (model, torch and the
measurement, as ``results/benchmarks/`` reports a job's) is its own. One micro-batch of ``--images``
crops is timed; the default iteration (10 images as 5 x 2 accumulated) costs about 10 / images
times as much, its memory is that of a micro-batch of 5.

    python bench/segmentation.py                          # CPU, a micro-batch of 2
    python bench/segmentation.py --device cuda --images 5 # the default micro-batch on a GPU
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(kind: str, size: int, images: int, device: str, threads: int) -> dict:
    import numpy as np
    import torch
    import torch.nn.functional as F

    from vitaff import segmentation as sg
    from vitaff.config import effective_config

    torch.set_num_threads(threads)
    seg = effective_config({"dataset": {"root": "/x"}, "segmentation": {"init": "scratch"}})["segmentation"]
    torch.manual_seed(0)
    model = sg.build_network(seg).to(device)
    sg.freeze_batchnorm(model.network.backbone)
    rng = np.random.default_rng(0)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    start, cpu = time.perf_counter(), time.process_time()
    if kind == "train":
        model.train()
        sg.freeze_batchnorm(model.network.backbone)
        optimizer = torch.optim.SGD([{"params": model.backbone_parameters()}, {"params": model.head_parameters()}],
                                    lr=seg["lr"], momentum=0.9, weight_decay=5e-4)
        x = torch.rand(images, 3, size, size, device=device)
        y = torch.from_numpy(rng.integers(0, 21, (images, size, size))).to(device)
        loss = F.cross_entropy(model(x), y, ignore_index=255)
        loss.backward()
        optimizer.step()
    else:
        image = rng.integers(0, 255, (375, 500, 3), dtype=np.uint8)
        if kind == "infer_single":
            sg.class_probabilities(model, image, (1.0,), False, device)
        else:
            sg.segment_image(model, image, seg["test_scales"], seg["test_flip"], seg["crf"], device)
    sync()
    out = {"kind": kind, "size": size, "images": images, "wall_s": time.perf_counter() - start,
           "cpu_s": time.process_time() - cpu,
           "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    if device.startswith("cuda"):
        out["peak_gpu_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--images", type=int, nargs="+", default=[2],
                   help="micro-batch sizes to time (at least 2: the ASPP's image-pooling branch has batch norm)")
    p.add_argument("--sizes", type=int, nargs="+", default=[321, 513])
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        kind, size, images = args.one.split(":")
        print(json.dumps(measure(kind, int(size), int(images), args.device, args.threads)))
        return
    runs = [f"train:{s}:{n}" for s in args.sizes for n in args.images] + ["infer_single:0:1", "infer_multi_crf:0:1"]
    for run in runs:
        proc = subprocess.run([sys.executable, __file__, "--device", args.device, "--threads", str(args.threads),
                               "--one", run], capture_output=True, text=True)
        if proc.returncode:
            print(run, "failed:", proc.stderr[-2000:])
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        what = (f"train one micro-batch of {r['images']} x {r['size']} px" if r["kind"] == "train"
                else f"{r['kind']} of one 500 x 375 image")
        gpu = f", GPU peak {r['peak_gpu_gb']:.2f} GB" if "peak_gpu_gb" in r else ""
        print(f"{what}: wall {r['wall_s']:.1f} s, CPU {r['cpu_s']:.1f} s, peak RSS {r['peak_rss_gb']:.2f} GB{gpu}",
              flush=True)


if __name__ == "__main__":
    main()
