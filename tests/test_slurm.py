"""The tiny embedded pipeline through SLURM with the repository's profile (opt-in, `make test-slurm`).

Needs a running SLURM cluster with accounting (tests/slurm/setup_cluster.sh makes a one-node one)
and snakemake-executor-plugin-slurm (pip install -e '.[cluster]'); runs only with
VITAFF_SLURM_TESTS=1. profiles/slurm is used unchanged apart from faster status polling.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import datetime

import pytest

from pipeline_helpers import (ROOT, TARGET, log_tails, pipeline_env, read_miou, score_rows, snakemake_cmd,
                              write_tiny_config)

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(os.environ.get("VITAFF_SLURM_TESTS") != "1",
                       reason="SLURM tests are opt-in: VITAFF_SLURM_TESTS=1 (make test-slurm)"),
]

PROFILE = ROOT / "profiles" / "slurm"


def test_tiny_pipeline_through_slurm(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install -e '.[cluster]'")
    if shutil.which("sbatch") is None or shutil.which("sacct") is None:
        pytest.fail("VITAFF_SLURM_TESTS=1 but sbatch/sacct are missing: run tests/slurm/setup_cluster.sh")
    write_tiny_config(tmp_path)
    # --cores is not used by the slurm executor (the profile's `jobs` is); poll every 5 s on a test cluster
    cmd = snakemake_cmd(tmp_path, "--workflow-profile", str(PROFILE), "--slurm-init-seconds-before-status-checks", "5",
                        "--seconds-between-status-checks", "5", cores=None)
    start = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    proc = subprocess.run(cmd, cwd=tmp_path, env=pipeline_env(), capture_output=True, text=True, timeout=1500)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"snakemake via SLURM failed:\n{out[-8000:]}\n{log_tails(tmp_path)}"
    frame = read_miou(tmp_path / TARGET)
    assert len(frame) == len(score_rows())  # read_miou checked which rows
    # the jobs really went through SLURM: accounting knows one completed job per pipeline job
    # (20 with the tiny config: dataset, 2 x index, classifier, 4 x seeds, 4 x crf, 2 x affinity
    # labels, AffinityNet, 4 x random walk, score), all named by the plugin with the run's UUID
    rows = subprocess.run(["sacct", "-X", "-n", "-P", "-S", start, "-o", "JobID,JobName,State"],
                          capture_output=True, text=True, check=True).stdout.splitlines()
    run_jobs = [r.split("|") for r in rows if "|wrap|" not in r]
    assert len(run_jobs) >= 15 and len({name for _, name, _ in run_jobs}) == 1, rows
    assert {state for _, _, state in run_jobs} == {"COMPLETED"}, rows
