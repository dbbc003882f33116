"""Shared plumbing of the stage entry points: argument parsing, logging, errors, seeding."""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
from typing import Callable

log = logging.getLogger("vitaff")


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", required=True, help="the rule's parameters as one JSON object")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads of this job (the rule's {threads}): torch's intra-op threads")
    return p


def split_stores_parser(description: str) -> argparse.ArgumentParser:
    """:func:`parser` plus the per-split store list of the scoring rules and their output CSV."""
    p = parser(description)
    p.add_argument("--inputs", nargs="+", required=True, type=str,
                   help="split:stage:shard,shard,... (the stores of one stage of one split)")
    p.add_argument("--out", required=True, help="output CSV")
    return p


def run(main: Callable[[argparse.Namespace, dict], None], p: argparse.ArgumentParser, argv=None) -> None:
    """Parse, log to stderr (the rule's log file), run ``main``.

    An expected error (:class:`vitaff.errors.VitaffError`: bad input, missing file, bad config) is
    one clear line and exit 1. Anything else is a bug: its full traceback goes to the log, and the
    last line names the exception and says the traceback is in the job's log (Snakemake prints
    the log's path under ``Error in rule ...``).
    """
    from vitaff.errors import VitaffError

    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    params = json.loads(args.params)
    if args.threads:
        set_threads(args.threads)
    start = time.time()
    try:
        main(args, params)
    except VitaffError as err:
        log.error("%s", err)
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    except Exception as err:
        log.exception("unexpected error")
        print(f"error: unexpected {type(err).__name__}: {err} (a bug, not bad input; "
              "the full traceback is above in this job's log)", file=sys.stderr)
        raise SystemExit(1) from None
    log.info("done in %.1f s", time.time() - start)


THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def set_threads(n: int) -> None:
    """Use ``n`` CPU threads: torch's intra-op pool and the OpenMP/BLAS variables of what loads later.

    Every stage but the single-threaded ones (dataset, index, CRF: ``n`` = 1, which the variables
    alone give torch) imports torch anyway, so importing it here costs nothing extra.
    """
    n = max(1, int(n))
    for var in THREAD_VARS:
        os.environ[var] = str(n)
    if "torch" in sys.modules or n > 1:
        import torch

        torch.set_num_threads(n)
    log.info("using %d threads", n)


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
