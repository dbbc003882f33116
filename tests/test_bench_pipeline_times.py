"""bench/pipeline_times.py: per-rule wall and CPU from Snakemake's benchmark files, and its list of
the main job's rules against the workflow's own."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

from pipeline_helpers import ROOT, pipeline_env, snakemake_cmd, write_tiny_config

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _module():
    spec = importlib.util.spec_from_file_location("pipeline_times", ROOT / "bench" / "pipeline_times.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def _bench(path, wall, cpu, rss, end):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{wall}\t0:00:00\t{rss}\t1\t1\t1\t0\t0\t50\t{cpu}\n")
    os.utime(path, (end, end))


def test_sums_per_rule_and_the_elapsed_span(tmp_path):
    times = _module()
    _bench(tmp_path / "train_classifier.tsv", 100.0, 180.0, 900.5, end=1100)
    _bench(tmp_path / "seeds" / "val_0.tsv", 20.0, 15.0, 400.0, end=1130)
    _bench(tmp_path / "seeds" / "val_1.tsv", 30.0, 25.0, 500.0, end=1140)
    _bench(tmp_path / "walk_ceiling.tsv", 50.0, "NA", 300.0, end=1200)
    rules = times.read_benchmarks(tmp_path)
    assert (rules["seeds"].jobs, rules["seeds"].wall_s, rules["seeds"].cpu_s, rules["seeds"].max_rss_mb) == (
        2, 50.0, 40.0, 500.0)
    assert rules["walk_ceiling"].cpu_s == 0.0  # "NA" (unmeasured) counts as nothing, not an error
    text = times.report(rules)
    main = next(line for line in text.splitlines() if line.startswith("total main job"))
    assert main.split()[3:7] == ["3", "150.0", "220.0", "900"]
    everything = next(line for line in text.splitlines() if line.startswith("total all rules"))
    assert everything.split()[3:6] == ["4", "200.0", "220.0"]
    # main job: classifier starts at 1000, the last seed ends at 1140; all rules: to 1200
    assert "main job 140 s, all rules 200 s" in text
    assert re.search(r"(?m)^walk_ceiling \*", text)


def test_no_benchmarks_is_one_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "pipeline_times.py"), str(tmp_path / "none")],
                          capture_output=True, text=True, env=pipeline_env(), timeout=60)
    assert proc.returncode == 1 and "no benchmark files under" in proc.stderr and "make run" in proc.stderr


def test_main_job_rules_are_the_workflows(tmp_path):
    """MAIN_JOB_RULES is what a dry run of results/voc_miou.csv schedules, and each has a benchmark file."""
    write_tiny_config(tmp_path)
    proc = subprocess.run(snakemake_cmd(tmp_path, "-n"), cwd=tmp_path, env=pipeline_env(), capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    scheduled = set(re.findall(r"(?m)^(?:local)?rule (\w+):", proc.stdout))
    assert scheduled == set(_module().MAIN_JOB_RULES)
    rules_text = "".join(p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk"))
    for rule in scheduled:
        block = re.search(rf"(?ms)^rule {rule}:\n(.*?)(?=^rule |\Z)", rules_text).group(1)
        assert f'"results/benchmarks/{rule}' in block, f"rule {rule} writes no results/benchmarks/{rule}... file"
