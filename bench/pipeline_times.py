"""Wall and CPU time of a pipeline run, per rule, from Snakemake's benchmark files.

Every computing rule writes ``results/benchmarks/<rule>.tsv`` (one job) or
``results/benchmarks/<rule>/<wildcards>.tsv`` (one file per job) with the job's wall seconds
(``s``), CPU seconds of its processes (``cpu_time``: user + system) and peak memory (``max_rss``,
MB). This prints, per rule: jobs, wall seconds summed, CPU seconds summed and the largest RSS; then
the totals of the main job (the rules ``results/voc_miou.csv`` needs) and of every rule found; and
the run's elapsed wall: from the first job's start (file time minus its ``s``) to the last job's end
(file time), which is the run's wall when all the jobs ran in one invocation.

    make run && make bench-pipeline          # or: python bench/pipeline_times.py [results/benchmarks]

CPU seconds are the figure to compare on a shared machine (other processes stretch wall, not them).
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass, field
from pathlib import Path

# The rules of the main job (`snakemake results/voc_miou.csv`); tests/test_bench.py checks this
# against a dry run, so a rule added to the main job fails that test until it is listed here.
MAIN_JOB_RULES = ("make_synthetic_dataset", "dataset_classes", "dataset_index", "train_classifier", "seeds", "crf",
                  "affinity_labels", "train_affinitynet", "random_walk", "pseudo_labels", "score")


@dataclass
class RuleTimes:
    jobs: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    max_rss_mb: float = 0.0
    starts: list = field(default_factory=list)
    ends: list = field(default_factory=list)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:  # "NA" where psutil could not measure (e.g. a job shorter than its poll)
        return 0.0


def rule_of(path: Path, root: Path) -> str:
    """``<rule>.tsv`` -> rule; ``<rule>/<wildcards>.tsv`` -> rule (its first directory)."""
    rel = path.relative_to(root)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def read_benchmarks(root: Path) -> dict[str, RuleTimes]:
    """Rule -> summed times of its jobs (the last row of a file: Snakemake repeats a job with --benchmark-repeats)."""
    rules: dict[str, RuleTimes] = {}
    for path in sorted(root.rglob("*.tsv")):
        with path.open() as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        if not rows or "s" not in rows[-1]:
            continue
        row = rows[-1]
        t = rules.setdefault(rule_of(path, root), RuleTimes())
        wall = _number(row["s"])
        end = path.stat().st_mtime
        t.jobs += 1
        t.wall_s += wall
        t.cpu_s += _number(row.get("cpu_time", "0"))
        t.max_rss_mb = max(t.max_rss_mb, _number(row.get("max_rss", "0")))
        t.starts.append(end - wall)
        t.ends.append(end)
    return rules


def _line(name: str, jobs, wall: float, cpu: float, rss) -> str:
    rss = f"{rss:9.0f}" if isinstance(rss, float) else f"{rss:>9}"
    return f"{name:<24}{jobs:>5}{wall:>10.1f}{cpu:>10.1f}{rss}"


def _elapsed(times: list[RuleTimes]) -> float:
    starts = [s for t in times for s in t.starts]
    ends = [e for t in times for e in t.ends]
    return max(ends) - min(starts) if starts else 0.0


def report(rules: dict[str, RuleTimes]) -> str:
    """The per-rule table, the main job's and all rules' totals and their elapsed wall."""
    order = [r for r in MAIN_JOB_RULES if r in rules] + sorted(r for r in rules if r not in MAIN_JOB_RULES)
    out = [f"{'rule':<24}{'jobs':>5}{'wall_s':>10}{'cpu_s':>10}{'rss_mb':>9}"]
    for name in order:
        t = rules[name]
        out.append(_line(name + ("" if name in MAIN_JOB_RULES else " *"), t.jobs, t.wall_s, t.cpu_s, t.max_rss_mb))
    for label, names in (("main job", [r for r in order if r in MAIN_JOB_RULES]), ("all rules", order)):
        picked = [rules[r] for r in names]
        out.append(_line(f"total {label}", sum(t.jobs for t in picked), sum(t.wall_s for t in picked),
                         sum(t.cpu_s for t in picked), max((t.max_rss_mb for t in picked), default=0.0)))
    main = [rules[r] for r in order if r in MAIN_JOB_RULES]
    out.append(f"elapsed wall, first job start to last job end: main job {_elapsed(main):.0f} s, "
               f"all rules {_elapsed(list(rules.values())):.0f} s")
    missing = [r for r in MAIN_JOB_RULES if r not in rules]
    if missing:
        out.append(f"(no benchmark of {', '.join(missing)}: not run, or run by code without their benchmark files)")
    out.append("* not part of the main job (results/voc_miou.csv): diagnostics, figures, explanation tests")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root", nargs="?", default="results/benchmarks", help="benchmark directory (default: %(default)s)")
    args = p.parse_args(argv)
    root = Path(args.root)
    rules = read_benchmarks(root) if root.is_dir() else {}
    if not rules:
        print(f"error: no benchmark files under {root}: run the pipeline first (make run)", file=sys.stderr)
        return 1
    print(report(rules))
    return 0


if __name__ == "__main__":
    sys.exit(main())
