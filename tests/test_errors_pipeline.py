"""End to end: a failed rule's own message reaches the terminal, the
unmarked-store message's fix works when followed verbatim, and each job runs with the threads
Snakemake gave it. Cheap: each run stops at the first rules that matter (tiny embedded config)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from pipeline_helpers import pipeline_env, run_snakemake, snakemake_cmd, write_tiny_config

pytestmark = pytest.mark.slow

DATASET = "data/synthetic/VOCdevkit/VOC2012"


def terminal(workdir: Path, target: str, **kw) -> subprocess.CompletedProcess:
    """Snakemake as a user runs it (the repository's profiles/default is picked up), both streams."""
    return subprocess.run(snakemake_cmd(workdir, target=target, **kw), cwd=workdir, env=pipeline_env(),
                          capture_output=True, text=True, timeout=900)


def test_failed_rule_shows_the_projects_message_on_the_terminal(tmp_path):
    write_tiny_config(tmp_path)
    run_snakemake(tmp_path, target=f"{DATASET}/synthetic.json")
    image_id = (tmp_path / DATASET / "ImageSets/Segmentation/train.txt").read_text().split()[0]
    jpeg = tmp_path / DATASET / "JPEGImages" / f"{image_id}.jpg"
    jpeg.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])  # a truncated JPEG

    proc = terminal(tmp_path, "results/data/train.csv")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    error = out.index("Error in rule dataset_index")
    sentence = out.index("The file is truncated or not an image", error)  # printed under Snakemake's error
    assert f"JPEGImages/{image_id}.jpg" in out[sentence - 300:sentence]
    assert not (tmp_path / "results/data/train.csv").exists()


def test_unmarked_store_fix_works_verbatim_and_jobs_use_their_threads(tmp_path):
    write_tiny_config(tmp_path, classifier_epochs=1)
    seeds = "results/seeds/val/shard_0.zarr"
    run_snakemake(tmp_path, target=seeds, max_threads=None)

    # --cores 2: the single classifier job gets both cores, each of the 2 shards of a split one
    logs = tmp_path / "results" / "logs"
    assert "using 2 threads" in (logs / "train_classifier.log").read_text()
    assert "using 1 threads" in (logs / "seeds" / "val_0.log").read_text()
    assert "using 1 threads" in (logs / "dataset_index" / "val.log").read_text()

    import zarr

    from vitaff.store import COMPLETE_ATTR, open_store

    del zarr.open_group(str(tmp_path / seeds), mode="r+").attrs[COMPLETE_ATTR]  # the store lost its mark

    crf = "results/crf/val/shard_0.zarr"
    proc = terminal(tmp_path, crf)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    error = out.index("Error in rule crf")
    assert out.index(f"zarr store {seeds} has no completion mark", error) > error
    assert "--rerun-incomplete" not in out[error:]
    fix = re.search(r"rm -r \S+", out[error:]).group(0)
    assert fix == f"rm -r {seeds}"

    subprocess.run(fix, shell=True, cwd=tmp_path, check=True)  # the fix, verbatim ...
    rerun = terminal(tmp_path, crf)  # ... then the same command again
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    open_store(tmp_path / seeds)
    open_store(tmp_path / crf)
