"""Maps of vitaff against the slow, independent reference-rule computation of the tests, in fp64.

Prints, per method, ``max |vitaff - reference| / max |reference|`` for a random-weight model
(default ViT-B/16 at 224, a batch of 2 with per-sample targets) against the reference with
its exact rules (``tests/test_explain.py``: every 1e-9 stabiliser where Chefer et al.'s code has
it) and against the same reference with the Clone / CLS-select stabilisers removed.

    python bench/reference_diff.py [--model vit_base_patch16_224] [--batch 2] [--noise 0.1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.test_explain import ref_maps  # noqa: E402
from vitaff.explain import ALL_METHODS, explain_all  # noqa: E402
from vitaff.models import create_model  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="vit_base_patch16_224")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--noise", type=float, default=0.0, help="random perturbation of biases and LN affine")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import timm

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tm = timm.create_model(args.model, pretrained=False).double().eval()
    with torch.no_grad():
        for name, p in tm.named_parameters():
            if args.noise and (name.endswith("bias") or "norm" in name):
                p.add_(args.noise * torch.randn_like(p))
    vm = create_model(args.model).double().eval()
    vm.load_state_dict(tm.state_dict(), strict=True)
    size = vm.patch_embed.img_size
    x = torch.randn(args.batch, 3, *size, dtype=torch.float64)
    t = torch.arange(args.batch) * 7 % tm.head.weight.shape[0]
    got = explain_all(vm, x, t, ALL_METHODS)
    single = [explain_all(vm, x[i : i + 1], t[i : i + 1], ALL_METHODS) for i in range(args.batch)]
    single = {m: torch.cat([s[m] for s in single]) for m in ALL_METHODS}
    nudged = explain_all(vm, x * (1 + 1e-15), t, ALL_METHODS)
    exact = ref_maps(tm, x, t, exact=True)
    plain = ref_maps(tm, x, t, exact=False)
    print(f"{args.model}, fp64, batch {args.batch}, targets {t.tolist()}, noise {args.noise}; "
          "max |a - b| / max |b| of the maps")
    print("columns: vitaff batched vs exact reference | vitaff one image at a time vs exact reference | "
          "vitaff batched vs the reference without the Clone / CLS-select stabilisers | "
          "conditioning: vitaff with the input scaled by (1 + 1e-15) vs vitaff")
    print(f"{'method':<26} {'batched':>9} {'per image':>10} {'no-eps ref':>11} {'input*(1+1e-15)':>16}")
    for m in ALL_METHODS:
        def rel(a, b):
            return float((a - b).abs().max() / b.abs().max())
        print(f"{m:<26} {rel(got[m], exact[m]):>9.2e} {rel(single[m], exact[m]):>10.2e} "
              f"{rel(got[m], plain[m]):>11.2e} {rel(nudged[m], got[m]):>16.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
