"""Helpers for tests that run the Snakemake pipeline on a tiny embedded config in a temp directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def tiny_config(**overrides) -> dict:
    """The shipped config shrunk so the whole rule graph runs in about a minute on 2 cores."""
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["dataset"]["shards"] = 2
    cfg["synthetic"].update({"n_train": 16, "n_val": 8, "size_range": [64, 80]})
    cfg["embedded"]["classifier"].update({"epochs": 2, "img_size": 64, "batch_size": 8})
    cfg["embedded"]["affinity"] = {"epochs": 1, "crop_size": 64, "batch_size": 8}
    cfg["embedded"]["seeds"] = {"batch_size": 8, "previews": 2}
    cfg["random_walk"]["logt"] = 3
    cfg["figures"]["n_images"] = 2
    for key, value in overrides.items():
        node = cfg
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return cfg


def snakemake_cmd(workdir: Path, *targets: str, extra=()) -> list[str]:
    snakemake = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
    return [snakemake, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(workdir / "config.yaml"), "--cores", "2", *extra, *targets]


def env() -> dict:
    e = dict(os.environ)
    e["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{e.get('PATH', '')}"
    e["OMP_NUM_THREADS"] = "1"
    return e


def run_pipeline(workdir: Path, *targets: str, extra=(), config: dict | None = None, timeout=900):
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config or tiny_config()))
    return subprocess.run(snakemake_cmd(workdir, *targets, extra=extra), cwd=workdir, env=env(),
                          capture_output=True, text=True, timeout=timeout)
