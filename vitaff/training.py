"""Shared pieces of the seeded, resumable training loops (classifier, AffinityNet, explain ViT).

After every epoch the model, optimiser, data-order generator and the global RNG states (torch's
CPU generator, every CUDA device's generator when CUDA is available, numpy's and Python's) go to
one checkpoint written atomically outside the rule's declared output; a killed run continues from
the last finished epoch and ends with the same weights as an uninterrupted one, on a GPU too
(dropout and augmentation on the device draw from the CUDA generators).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import torch

from vitaff.store import save_torch

log = logging.getLogger(__name__)


def resume_path(resume_dir, name: str, params: dict) -> Path:
    """Per-epoch checkpoint of a training stage, keyed by its params (a config change starts afresh)."""
    import hashlib

    from vitaff.config import to_json

    return Path(resume_dir) / f"{name}-{hashlib.sha256(to_json(params).encode()).hexdigest()[:12]}.pt"


def build_optimizer(params, name: str, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    """SGD with momentum (the papers' choice) or AdamW (small models trained from scratch)."""
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be adamw or sgd, got {name!r}")


def rng_state() -> dict:
    """The global random states a training epoch draws from: torch (CPU), CUDA (one state per
    device, ``None`` without CUDA), numpy and Python's ``random``."""
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(state: dict) -> None:
    """Restore :func:`rng_state`'s dict. CUDA states are restored when both the checkpoint and
    this process have CUDA (a run resumed on another kind of machine cannot continue the same
    device stream; it is logged)."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        if len(cuda) != torch.cuda.device_count():
            log.warning("checkpoint has CUDA RNG states of %d devices, this process sees %d: restoring the first %d",
                        len(cuda), torch.cuda.device_count(), min(len(cuda), torch.cuda.device_count()))
        for device, s in enumerate(cuda[:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s, device)
    elif cuda is not None or torch.cuda.is_available():
        log.warning("checkpoint %s CUDA RNG states but CUDA is %s: the resumed run's device random stream differs "
                    "from an uninterrupted run's", "has" if cuda is not None else "has no",
                    "available" if torch.cuda.is_available() else "absent")
    if state.get("numpy") is not None:
        np.random.set_state(state["numpy"])
    if state.get("python") is not None:
        random.setstate(state["python"])


def restore(resume_path, model, optimizer, generator: torch.Generator | None) -> tuple[list[dict], int]:
    """Load the last saved state if ``resume_path`` exists; returns (history, epochs (or iterations) done).

    ``generator``: the data-order generator, or None for a loop that derives its randomness from the
    step number (the segmentation network's, :mod:`vitaff.segmentation`)."""
    if resume_path is None or not Path(resume_path).is_file():
        return [], 0
    state = torch.load(resume_path, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if generator is not None:
        generator.set_state(state["generator"])
    set_rng_state(state["rng"] if "rng" in state else {"torch": state["torch_rng"]})  # older checkpoints: CPU only
    log.info("resuming from %s after step %d", resume_path, state["epoch"])
    return state["history"], state["epoch"]


def checkpoint(resume_path, model, optimizer, generator: torch.Generator | None, history: list[dict],
               epoch: int) -> None:
    """Save the state after ``epoch`` epochs (or iterations; no-op without a resume path)."""
    if resume_path is not None:
        save_torch({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "generator": None if generator is None else generator.get_state(),
                    "rng": rng_state(), "history": history, "epoch": epoch}, resume_path)
