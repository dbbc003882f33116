"""Cost and memory of the ``seeds`` stage: class-wise transformer-attribution seeds, flip-averaged.

Three measurements of :func:`vitaff.seeds.class_seeds` (one forward + one gradient and relevance
sweep per present class, for the image and its horizontal flip), each in a fresh process:

* ``memory``: peak memory per input image above the loaded model, for batch 1, 2 and 8 (images of
  500 x 375, 2 classes each, flip on). CPU: the process's peak RSS (``VmHWM``, reset through
  ``/proc/self/clear_refs`` after the model is loaded, else a 2 ms RSS poll) minus the RSS after
  loading; CUDA: ``max_memory_allocated`` minus the allocation after loading. Goal: <= 1 GiB per
  image at every batch size. The same runs give the time per image (batch 8 <= batch 1 is the goal).
* ``classes``: one image with 1, 2 and 4 present classes, time relative to a batched
  ``no_grad`` forward of the same two inputs (image + flip); goal: each extra class costs no more
  than ~3 forwards.

Default model: the paper's hybrid (``vit_base_r50_s16_384`` at 448 px, random weights, 20 classes).

    python bench/seeds.py                      # CPU, memory at batch 1 2 8 and the class costs
    python bench/seeds.py --batch 1 2 --classes 1 2 --model vit_hybrid_synth --img-size 128
    python bench/seeds.py --device cuda --precision bf16
    python bench/seeds.py --method rollout --scales 1.0 0.5 1.5 2.0 --batch 1 2 --classes   # psa's scales
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vitaff.models import create_model  # noqa: E402
from vitaff.seeds import class_seeds  # noqa: E402

MIB = 2.0 ** 20


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _hwm() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class PeakMemory:
    """Peak memory above the level at entry (bytes): RSS on CPU, allocated memory on CUDA."""

    def __init__(self, device: torch.device):
        self.device = device

    def __enter__(self):
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            return self
        self.base = _rss()
        self.reset = False
        try:  # "5" resets the peak RSS (VmHWM) to the current RSS (Linux >= 4.0)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.reset = _hwm() is not None and _hwm() <= self.base + 64 * MIB
        except OSError:
            pass
        self.polled, self.stop = self.base, threading.Event()
        if not self.reset:
            def poll():
                while not self.stop.is_set():
                    self.polled = max(self.polled, _rss())
                    time.sleep(0.002)
            self.thread = threading.Thread(target=poll, daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.base
            return False
        if self.reset:
            self.peak = _hwm() - self.base
        else:
            self.stop.set()
            self.thread.join()
            self.peak = max(self.polled, _rss()) - self.base
        return False


def _setup(args):
    if args.heap == "mmap":
        from vitaff.seeds import release_large_blocks

        release_large_blocks()  # as the seeds stage does
    device = torch.device(args.device)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    kw = {} if args.img_size is None else {"img_size": args.img_size}
    model = create_model(args.model, num_classes=20, **kw).to(device).eval()
    img_size = model.patch_embed.img_size[0]
    return device, model, img_size


def _seeds(model, images, classes, img_size, device, args):
    kw = {"start_layer": args.start_layer, "flip": True, "cube_root": True, "method": args.method,
          "scales": args.scales}
    if args.precision != "fp32":
        kw["precision"] = args.precision
    return class_seeds(model, images, classes, img_size, device, **kw)


def _child_memory(args) -> dict:
    device, model, img_size = _setup(args)
    rng = np.random.default_rng(0)
    b = args.child_batch
    images = [rng.integers(0, 255, (375, 500, 3), dtype=np.uint8) for _ in range(b)]
    classes = [[1 + i % 20, 1 + (i + 7) % 20] for i in range(b)]
    with PeakMemory(device) as mem:
        t, c = time.perf_counter(), time.process_time()
        _seeds(model, images, classes, img_size, device, args)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds, cpu = time.perf_counter() - t, time.process_time() - c
    return dict(batch=b, peak_mib=mem.peak / MIB, seconds=seconds, cpu=cpu,
                exact_peak=device.type == "cuda" or mem.reset)


def _child_classes(args) -> dict:
    device, model, img_size = _setup(args)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (375, 500, 3), dtype=np.uint8)]
    x = torch.randn(2, 3, img_size, img_size, device=device)  # image + flip

    def timed(fn) -> float:
        if device.type == "cuda":
            fn()  # warm-up (kernels, allocator); on CPU the first run is representative
        best = float("inf")
        for _ in range(args.repeats):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t, c = time.perf_counter(), time.process_time()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            # CPU: process time (1 thread) is robust to other jobs on a shared machine
            best = min(best, time.process_time() - c if device.type == "cpu" else time.perf_counter() - t)
        return best

    def forward():
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            model(x)

    out = {"forward": timed(forward)}
    for k in args.classes:
        out[str(k)] = timed(lambda: _seeds(model, images, [list(range(1, k + 1))], img_size, device, args))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="vit_base_r50_s16_384")
    ap.add_argument("--img-size", type=int, default=448)
    ap.add_argument("--batch", type=int, nargs="*", default=[1, 2, 8])
    ap.add_argument("--classes", type=int, nargs="*", default=[1, 2, 4])
    ap.add_argument("--start-layer", type=int, default=0)
    ap.add_argument("--method", default="transformer_attribution", help="seeds.method (an explanation method)")
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0],
                    help="seeds.scales, e.g. psa's 1.0 0.5 1.5 2.0 (memory is that of the largest)")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--heap", default="mmap", choices=["mmap", "default"],
                    help="mmap: large blocks mapped separately (vitaff.seeds.release_large_blocks, as the "
                         "stage does); default: glibc's dynamic threshold")
    ap.add_argument("--repeats", type=int, default=1, help="timed runs per class count (best is kept)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default 1 on CPU: a shared 2-core machine; 0 keeps torch's default)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-batch", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.threads is None:
        args.threads = 1 if args.device == "cpu" else 0
    if args.child == "memory":
        print(json.dumps(_child_memory(args)))
        return 0
    if args.child == "classes":
        print(json.dumps(_child_classes(args)))
        return 0

    base = [sys.executable, str(Path(__file__).resolve()), "--model", args.model, "--img-size", str(args.img_size),
            "--device", args.device, "--threads", str(args.threads), "--precision", args.precision,
            "--start-layer", str(args.start_layer), "--repeats", str(args.repeats), "--heap", args.heap,
            "--method", args.method, "--scales", *map(str, args.scales)]

    def child(*extra) -> dict:
        out = subprocess.run(base + list(extra), capture_output=True, text=True)
        if out.returncode:
            sys.stderr.write(out.stderr)
            raise SystemExit(f"child {extra} failed")
        return json.loads(out.stdout.strip().splitlines()[-1])

    print(f"{args.model} @ {args.img_size}px, {args.precision}, device {args.device}, torch {torch.__version__}, "
          f"threads {args.threads or 'default'}, start_layer {args.start_layer}, heap {args.heap}, "
          f"method {args.method}, scales {args.scales}, flip on, "
          "cube root on; "
          "each row a fresh process")
    per_image = {}
    if args.batch:
        print(f"\nmemory: images 500x375, 2 classes each; peak above the loaded model "
              f"({'CUDA max allocated' if args.device.startswith('cuda') else 'peak RSS'})")
        print(f"{'batch':>5} {'peak MiB':>9} {'MiB/image':>10} {'s/image':>8} {'CPU s/image':>12}")
        for b in args.batch:
            r = child("--child", "memory", "--child-batch", str(b))
            per_image[b] = (r["cpu"] if args.device == "cpu" else r["seconds"]) / b
            note = "" if r["exact_peak"] else "  (polled RSS)"
            print(f"{b:>5} {r['peak_mib']:>9.0f} {r['peak_mib'] / b:>10.0f} {r['seconds'] / b:>8.2f} "
                  f"{r['cpu'] / b:>12.2f}{note}", flush=True)
        if 1 in per_image:
            for b in args.batch:
                if b != 1:
                    print(f"{'CPU ' if args.device == 'cpu' else ''}time per image, batch {b} / batch 1: "
                          f"{per_image[b] / per_image[1]:.2f} (goal <= 1)")
    if args.classes:
        r = child("--child", "classes")
        f = r["forward"]
        print(f"\nclasses: one 500x375 image (+ flip), {'CPU ' if args.device == 'cpu' else ''}time / batched "
              f"no_grad forward of the same 2 inputs ({f:.2f} s)")
        prev = None
        for k in args.classes:
            t = r[str(k)]
            extra = "" if prev is None else f", per extra class {(t - r[str(prev)]) / f / (k - prev):.2f} forwards"
            print(f"{k} classes: {t:.2f} s = {t / f:.2f} forwards{extra}", flush=True)
            prev = k
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
