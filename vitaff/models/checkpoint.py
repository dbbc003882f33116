"""Loading timm-named checkpoints into vitaff models (SPEC sections 1 and 5).

Parameter names are timm's, so a timm state dict loads with ``strict=True``. Like timm's
``checkpoint_filter_fn`` / ``resample_abs_pos_embed`` (``timm/models/vision_transformer.py``),
old checkpoints are adapted at load time instead of forking the model: the absolute position
embedding is resampled when the checkpoint's token grid differs from the model's (e.g. the
hybrid's 24 x 24 grid at 384 px -> 28 x 28 at 448 px, SPEC section 5).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Mapping

import torch
import torch.nn as nn

from vitaff.errors import VitaffError

__all__ = ["CheckpointError", "read_state_dict", "adapt_state_dict", "load_checkpoint"]

_log = logging.getLogger(__name__)
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module")
HEAD_KEYS = ("head.weight", "head.bias")


class CheckpointError(VitaffError, ValueError):
    """A checkpoint that does not fit the model (names the file and the offending keys)."""


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read ``.safetensors`` / ``.pth`` / ``.pt`` / ``.bin``; unwrap ``{"state_dict": ...}`` or
    ``{"model": ...}`` and strip a leading ``module.`` (DataParallel / DDP) from every key."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        obj: object = load_file(str(path), device="cpu")
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle with arbitrary objects: refuse rather than execute
            raise CheckpointError(
                f"cannot read {path} as a tensor checkpoint (torch.load weights_only=True failed: {exc}); "
                "save a plain state dict (torch.save(model.state_dict(), ...)) or .safetensors") from exc
    for _ in range(3):  # nested wrappers, e.g. {"model": {"state_dict": ...}}
        if isinstance(obj, Mapping):
            inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
            if inner is not None and not any(torch.is_tensor(v) for v in obj.values()):
                obj = inner
                continue
        break
    if not isinstance(obj, Mapping) or not all(torch.is_tensor(v) for v in obj.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors (top-level keys: {_short(list(obj)[:10]) if isinstance(obj, Mapping) else type(obj).__name__})")
    out = {}
    for k, v in obj.items():
        out[k[len("module."):] if k.startswith("module.") else k] = v
    return out


def adapt_state_dict(
    state: Mapping[str, torch.Tensor],
    model: nn.Module,
    source: str = "<state dict>",
    allow_head_mismatch: bool = False,
) -> dict[str, torch.Tensor]:
    """Make ``state`` fit ``model``: resample ``pos_embed``; optionally drop a head of another
    number of classes; raise :class:`CheckpointError` for missing, unexpected or misshaped keys."""
    own = model.state_dict()
    state = dict(state)
    pos = state.get("pos_embed")
    if pos is not None and "pos_embed" in own and pos.shape != own["pos_embed"].shape \
            and pos.shape[-1] == own["pos_embed"].shape[-1]:
        state["pos_embed"] = resample_pos_embed(pos, own["pos_embed"], model)
    dropped = []
    if allow_head_mismatch:
        for k in HEAD_KEYS:
            if k in state and k in own and state[k].shape != own[k].shape:
                dropped.append(k)
        if dropped:
            _log.warning("%s: head of shape %s does not fit %s; the head stays randomly initialised",
                         source, tuple(state["head.weight"].shape), tuple(own["head.weight"].shape))
            for k in HEAD_KEYS:
                state.pop(k, None)
    missing = sorted(set(own) - set(state) - set(dropped))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys {_short(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_short(unexpected)}")
        if wrong:
            parts.append("wrong shapes " + _short(
                [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in wrong]))
        raise CheckpointError(f"checkpoint {source} does not fit {type(model).__name__}: " + "; ".join(parts))
    return state


def resample_pos_embed(pos: torch.Tensor, target: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """Bicubic resampling of the patch part of a (1, 1 + h*w, D) position embedding (timm's
    ``resample_abs_pos_embed``); the CLS entry is kept. Source grid assumed square."""
    from timm.layers import resample_abs_pos_embed

    n_src = pos.shape[1] - 1
    side = math.isqrt(n_src)
    if side * side != n_src:
        raise CheckpointError(f"pos_embed with {n_src} patch tokens is not a square grid")
    grid = list(getattr(model, "grid_size", (math.isqrt(target.shape[1] - 1),) * 2))
    return resample_abs_pos_embed(pos, grid, [side, side], num_prefix_tokens=1).to(target.dtype)


def load_checkpoint(
    model: nn.Module, path: str | Path, allow_head_mismatch: bool = False
) -> nn.Module:
    """Load a checkpoint file into ``model`` with ``strict=True`` after :func:`adapt_state_dict`."""
    state = adapt_state_dict(read_state_dict(path), model, str(path), allow_head_mismatch)
    model.load_state_dict(state, strict=not allow_head_mismatch or all(k in state for k in HEAD_KEYS))
    return model


def _short(items: list, limit: int = 8) -> str:
    shown = ", ".join(str(i) for i in items[:limit])
    return f"[{shown}{', ... (%d more)' % (len(items) - limit) if len(items) > limit else ''}]"
