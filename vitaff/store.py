"""Artifacts on disk: zarr stores with completion marks, and atomic file writes.

A half-written zarr store opens fine and reads missing chunks as the fill value, so a store is
written under ``<name>.partial``, marked complete by an attribute written last, and renamed into
place; readers refuse a store without the mark. Files (checkpoints, CSVs, PNGs) are written to a
temporary name in the same directory and renamed, so a killed job never leaves an artifact that a
later run would trust.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

COMPLETE_ATTR = "vitaff_complete"


class IncompleteArtifactError(RuntimeError):
    """An artifact is missing or was not completely written."""


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def save_torch(obj, path: str | Path) -> None:
    """torch.save to a temporary name, then rename (a killed write leaves no checkpoint)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_csv(frame, path: str | Path, **kwargs) -> None:
    """pandas DataFrame -> CSV, atomically."""
    kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, **kwargs)


def save_png(image, path: str | Path) -> None:
    """PIL image -> PNG, atomically."""
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


@contextlib.contextmanager
def writing_store(path: str | Path) -> Iterator["zarr.Group"]:
    """Create a zarr group at ``<path>.partial``; mark it complete and rename it to ``path`` on success."""
    import zarr

    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    _remove(partial)
    path.parent.mkdir(parents=True, exist_ok=True)
    group = zarr.open_group(str(partial), mode="w")
    try:
        yield group
        group.attrs[COMPLETE_ATTR] = True  # written last: its presence means every chunk landed
        _remove(path)
        os.replace(partial, path)
    except BaseException:
        _remove(partial)
        raise


def open_store(path: str | Path) -> "zarr.Group":
    """Open a completed zarr store for reading; refuse a missing or unfinished one."""
    import zarr

    path = Path(path)
    if not path.exists():
        raise IncompleteArtifactError(f"artifact {path} does not exist; run the Snakemake rule that makes it.")
    group = zarr.open_group(str(path), mode="r")
    if not group.attrs.get(COMPLETE_ATTR, False):
        raise IncompleteArtifactError(
            f"zarr store {path} has no completion mark: it was not completely written. "
            f"Delete it and rerun the pipeline (snakemake --rerun-incomplete ...)."
        )
    return group
