"""Throughput and memory of the relevance engine (vitaff.explain) against a plain forward pass.

Measures, for one model (default ViT-B/16 at 224, random init) and each batch size:
  * a batched forward pass (``torch.no_grad``, the ordinary ``model(x)``);
  * ``transformer_attribution`` (one traced forward + one gradient call + one relevance pass);
  * all six methods of SPEC section 2 together (``explain_all``: one forward, one gradient
    call, the section-1 relevance pass and the "orig" pass down to the pixels);
and prints images/s, peak memory (each row runs in a fresh process: its max RSS, or
``torch.cuda.max_memory_allocated`` on CUDA; the model itself is ~330 MiB of it) and the ratios
``time per map / time per image of the batched forward`` (goals: <= 3 for
transformer_attribution, <= 4 for the six methods together).

    python bench/explain.py                       # CPU, ViT-B/16, batches 1 and 8
    python bench/explain.py --device cuda --batch 1 8 32 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vitaff.explain import METHODS, explain_all  # noqa: E402
from vitaff.models import create_model  # noqa: E402


def _child(args) -> None:
    """Measure one (batch, phase) in this fresh process and print one JSON line."""
    device = torch.device(args.device)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    model = create_model(args.model, img_size=args.img_size).to(device=device, dtype=dtype).eval()
    size = model.patch_embed.img_size
    b = args.child_batch
    x = torch.randn(b, 3, *size, device=device, dtype=dtype)

    def run():
        if args.child_phase == "forward":
            with torch.no_grad():
                model(x)
        elif args.child_phase == "transformer_attribution":
            explain_all(model, x, None, ["transformer_attribution"])
        else:
            explain_all(model, x, None, METHODS)

    run()  # warm-up (allocator, kernels); its memory counts towards the peak like the timed runs
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    best = float("inf")
    for _ in range(args.repeats):
        t = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:  # Linux reports ru_maxrss in KiB
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(dict(seconds=best, peak_mib=peak, params_m=sum(p.numel() for p in model.parameters()) / 1e6,
                          size=list(size), threads=torch.get_num_threads())))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="vit_base_patch16_224")
    ap.add_argument("--img-size", type=int, default=None)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--repeats", type=int, default=1, help="timed runs per measurement (best is kept)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: 1 on CPU -- on a shared 2-core machine OpenMP with "
                         "2 threads stalls badly; pass 0 to keep torch's default)")
    ap.add_argument("--child-batch", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-phase", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.threads is None:
        args.threads = 1 if args.device == "cpu" else 0
    if args.child_phase is not None:
        _child(args)
        return 0

    print(f"model {args.model}, {args.dtype}, device {args.device}, torch {torch.__version__}, "
          f"threads {args.threads or 'default'}; each row is a fresh process (warm-up run, then best of "
          f"{args.repeats}); peak = {'max CUDA memory allocated' if args.device.startswith('cuda') else 'process max RSS'}")
    header = f"{'batch':>5} {'phase':<24} {'s/batch':>9} {'img/s':>8} {'peak MiB':>9} {'x forward':>10}"
    print(header)
    print("-" * len(header))
    rows = {}
    base = [sys.executable, str(Path(__file__).resolve()), "--model", args.model, "--device", args.device,
            "--dtype", args.dtype, "--repeats", str(args.repeats), "--threads", str(args.threads)]
    if args.img_size:
        base += ["--img-size", str(args.img_size)]
    for b in args.batch:
        for name in ("forward", "transformer_attribution", "six methods"):
            out = subprocess.run(base + ["--child-batch", str(b), "--child-phase", name],
                                 capture_output=True, text=True, check=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            t = rows[(b, name)] = r["seconds"]
            ratio = t / rows[(b, "forward")]
            print(f"{b:>5} {name:<24} {t:>9.3f} {b / t:>8.2f} {r['peak_mib']:>9.0f} {ratio:>10.2f}", flush=True)
    print()
    for b in args.batch:
        f = rows[(b, "forward")] / b
        ta = rows[(b, "transformer_attribution")] / b
        six = rows[(b, "six methods")] / b
        print(f"batch {b}: time per TA map / forward time per image = {ta / f:.2f} (goal <= 3); "
              f"six methods / forward = {six / f:.2f} (goal <= 4)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
