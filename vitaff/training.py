"""Shared pieces of the seeded, resumable training loops (classifier, AffinityNet, explain ViT).

After every epoch the model, optimiser, data-order generator and torch RNG states go to one
checkpoint written atomically outside the rule's declared output; a killed run continues from
the last finished epoch and ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import logging
from pathlib import Path

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
    torch.set_rng_state(state["torch_rng"])
    log.info("resuming from %s after step %d", resume_path, state["epoch"])
    return state["history"], state["epoch"]


def checkpoint(resume_path, model, optimizer, generator: torch.Generator | None, history: list[dict],
               epoch: int) -> None:
    """Save the state after ``epoch`` epochs (or iterations; no-op without a resume path)."""
    if resume_path is not None:
        save_torch({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "generator": None if generator is None else generator.get_state(),
                    "torch_rng": torch.get_rng_state(), "history": history, "epoch": epoch}, resume_path)
