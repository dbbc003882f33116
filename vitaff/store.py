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
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from vitaff.errors import VitaffError


COMPLETE_ATTR = "vitaff_complete"


class IncompleteArtifactError(VitaffError, RuntimeError):
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


@contextlib.contextmanager
def writing_dir(path: str | Path) -> Iterator[Path]:
    """Yield ``<path>.partial`` to fill with files; rename it to ``path`` on success, delete it on error."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    _remove(partial)
    partial.mkdir(parents=True)
    try:
        yield partial
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
        # Snakemake trusts an existing output (--rerun-incomplete only covers jobs it saw fail):
        # deleting the store is what makes it rerun the rule that writes it.
        raise IncompleteArtifactError(
            f"zarr store {path} has no completion mark: it was not completely written, or was changed since. "
            f"Delete it, then rerun the command you ran (Snakemake remakes it): rm -r {shlex.quote(str(path))}"
        )
    return group


class ImageShardWriter:
    """Per-image arrays of one shard in a zarr group, padded to the shard's largest image.

    Each named array has shape N x [C x] Hmax x Wmax with one chunk per image, so each image is
    written once, whole. Ids, sizes and per-image class lists are stored beside the arrays.
    Use inside :func:`writing_store`.
    """

    def __init__(self, group, ids, sizes, arrays: dict[str, tuple[int | None, str]], classes=None):
        import numpy as np

        self.group = group
        self.sizes = [tuple(int(v) for v in hw) for hw in sizes]
        n = len(ids)
        hmax = max((h for h, _ in self.sizes), default=1)
        wmax = max((w for _, w in self.sizes), default=1)
        group.attrs["ids"] = list(ids)
        group.attrs["classes"] = [list(map(int, c)) for c in classes] if classes is not None else None
        group.create_array("sizes", data=np.asarray(self.sizes, dtype=np.int32).reshape(n, 2))
        self.arrays = {}
        for name, (channels, dtype) in arrays.items():
            lead = (channels,) if channels else ()
            self.arrays[name] = group.create_array(
                name, shape=(max(n, 1), *lead, hmax, wmax), chunks=(1, *lead, hmax, wmax), dtype=dtype, fill_value=0)

    def write(self, index: int, name: str, value) -> None:
        """Write one image's array; a channel stack may have fewer channels than the array (the
        present classes of this image: the rest stay zero and compress to almost nothing)."""
        h, w = self.sizes[index]
        if tuple(value.shape[-2:]) != (h, w):
            raise ValueError(f"{name} for image {index} is {tuple(value.shape[-2:])}, expected {(h, w)}")
        arr = self.arrays[name]
        if value.ndim != arr.ndim - 1 or (value.ndim == 3 and value.shape[0] > arr.shape[1]):
            raise ValueError(f"{name} for image {index} has shape {tuple(value.shape)}; the array holds {arr.shape[1:]}")
        full = __import__("numpy").zeros(arr.shape[1:], dtype=arr.dtype)
        full[tuple(slice(0, n) for n in value.shape)] = value
        arr[index] = full


class ImageShardReader:
    """Reads what :class:`ImageShardWriter` wrote, each image cropped back to its own size."""

    def __init__(self, path):
        self.path = path
        self.group = open_store(path)
        self.ids = list(self.group.attrs["ids"])
        self.classes = self.group.attrs.get("classes")
        self.sizes = [tuple(hw) for hw in self.group["sizes"][:].tolist()]

    def __len__(self) -> int:
        return len(self.ids)

    def read(self, index: int, name: str):
        h, w = self.sizes[index]
        return self.group[name][index][..., :h, :w]

    def read_present(self, index: int, name: str, background: bool = False):
        """A class stack stored as the image's present classes (``classes[index]`` order), after a
        background channel when ``background``: the stored channels past those are padding."""
        return self.read(index, name)[: len(self.classes[index]) + int(background)]


def present_channels(classes, background: bool = False) -> int:
    """Channels of a shard's class-stack array: the most classes any of its images holds (at least
    one), plus the background channel. Disk then grows with the classes present in the images,
    not with the dataset's class count."""
    return max([1, *(len(c) for c in classes)]) + int(background)


def open_shards(paths) -> tuple[list, dict]:
    """Readers of several shards plus an id -> (reader, index) lookup."""
    readers = [ImageShardReader(p) for p in paths]
    where = {image_id: (r, i) for r in readers for i, image_id in enumerate(r.ids)}
    return readers, where


def shard_slice(ids, shard: int, shards: int):
    """The ids of one shard: a contiguous slice of the sorted ids (shard = unit of cluster work)."""
    ids = sorted(ids)
    per = -(-len(ids) // shards)
    return ids[shard * per:(shard + 1) * per]
