"""Kill-and-resume, end to end: the tiny pipeline killed with SIGKILL (the whole process group, as a
lost node or an OOM kill would) inside the classifier's training, inside a sharded rule, inside
AffinityNet's training and inside scoring, resumed each time with the documented commands

    snakemake --unlock ...
    snakemake --rerun-incomplete ... results/voc_miou.csv

must end with a results/voc_miou.csv (and training logs) byte-identical to an uninterrupted run.
Training resumes from its per-epoch checkpoint in results/checkpoints/, which restores the model,
optimiser and RNG states.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pipeline_helpers import TARGET, pipeline_env, read_miou, run_snakemake, snakemake_cmd, write_tiny_config

pytestmark = pytest.mark.slow

# Two epochs each, so that a kill inside training finds one epoch's checkpoint to resume from.
EPOCHS = {"classifier_epochs": 2, "affinity_epochs": 2}
COMPARED = [TARGET, "results/models/classifier_log.csv", "results/models/affinitynet_log.csv"]

# (name, glob that appears while the stage runs, glob of its finished output). The checkpoint
# globs match only the renamed file (the in-progress temporary name starts with a dot).
KILL_POINTS = [
    ("train_classifier", "results/checkpoints/classifier-*.pt", "results/models/classifier.pt"),
    ("crf", "results/crf/*/shard_*.zarr.partial", "results/crf/*/shard_*.zarr"),
    ("train_affinitynet", "results/checkpoints/affinitynet-*.pt", "results/models/affinitynet.pt"),
    ("score", "results/logs/score.log", TARGET),
]


def _session_pids(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid:  # fields after the command: state ppid pgrp session ...
            pids.append(int(entry.name))
    return pids


def kill_everything(proc: subprocess.Popen) -> None:
    """SIGKILL Snakemake and every job it started (its session, in case a job made its own group)."""
    sid = proc.pid
    os.killpg(sid, signal.SIGKILL)
    for pid in _session_pids(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=60)
    deadline = time.time() + 30
    while _session_pids(sid) and time.time() < deadline:
        time.sleep(0.1)
    assert not _session_pids(sid), "processes of the killed run survive"


def run_until(workdir: Path, extra: list[str], watch: str, timeout: float = 600) -> bool:
    """Start Snakemake in its own session; SIGKILL it all as soon as ``watch`` matches a path.
    Returns False when the run finished (or failed) before that."""
    log = open(workdir / f"snakemake-{time.time():.0f}.out", "w")
    proc = subprocess.Popen(snakemake_cmd(workdir, *extra), cwd=workdir, env=pipeline_env(),
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            if any(workdir.glob(watch)):
                kill_everything(proc)
                return True
            if proc.poll() is not None:
                assert proc.returncode == 0, f"run failed before {watch}: see {log.name}"
                return False
            time.sleep(0.05)
        kill_everything(proc)
        raise AssertionError(f"{watch} did not appear within {timeout} s")
    finally:
        log.close()


def test_killed_runs_resume_to_identical_results(tmp_path):
    ref = tmp_path / "reference"
    write_tiny_config(ref, **EPOCHS)
    run_snakemake(ref)
    read_miou(ref / TARGET)

    work = tmp_path / "resumed"
    write_tiny_config(work, **EPOCHS)
    extra: list[str] = []
    interrupted = []
    for name, watch, finished in KILL_POINTS:
        if run_until(work, extra, watch):
            # was the stage still running when killed (its output not yet there)?
            interrupted.append((name, not any(work.glob(finished))))
        # the documented resume: drop the stale lock, then rerun what is missing or incomplete
        run_snakemake(work, "--unlock", target=None)
        extra = ["--rerun-incomplete"]
    run_snakemake(work, *extra)

    names = [n for n, _ in interrupted]
    assert names == [n for n, _, _ in KILL_POINTS], f"runs finished before some kill points: {interrupted}"
    assert all(running for name, running in interrupted if name != "score"), f"stage done before its kill: {interrupted}"
    # training really resumed from a checkpoint (rather than starting over)
    for log in ("train_classifier.log", "train_affinitynet.log"):
        text = (work / "results" / "logs" / log).read_text()
        assert "resuming from" in text, f"{log} shows no resume:\n{text[-2000:]}"
    assert not list((work / "results" / "checkpoints").glob("*.pt")), "resume checkpoints left behind"
    for rel in COMPARED:
        assert (work / rel).read_bytes() == (ref / rel).read_bytes(), f"{rel} differs from the uninterrupted run"
