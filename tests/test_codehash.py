"""Code hashes derived from imports (vitaff/codehash.py): a job reruns exactly when code it imports changes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vitaff.codehash import import_closure, imported_modules, stage_code

ROOT = Path(__file__).resolve().parents[1]
RULES = sorted((ROOT / "workflow" / "rules").glob("*.smk"))


def rule_stages() -> dict[str, tuple[str, str]]:
    """rule name -> (module its shell runs, module its code hash names), from workflow/rules/*.smk."""
    out = {}
    for path in RULES:
        for block in re.split(r"(?m)^(?=rule )", path.read_text())[1:]:
            name = re.match(r"rule (\w+):", block).group(1)
            run = re.search(r"python -m (vitaff[\w.]+)", block)
            hashed = re.search(r'code=stage_code\("([\w.]+)"\)', block)
            if run or hashed:
                out[name] = (run and run.group(1), hashed and hashed.group(1))
    return out


STAGES = sorted({run for run, _ in rule_stages().values()})


def test_every_rule_hashes_the_module_it_runs_under_its_own_name():
    rules = rule_stages()
    assert len(rules) >= 18
    for rule, (run, hashed) in rules.items():
        assert run == hashed, f"rule {rule} runs {run} but hashes {hashed}"
    # each stage module carries its rule's name (the two test-parametrised explain rules share one);
    # the method_<rule> rules of methods.smk run <rule>'s stage on a seed source's own paths
    for rule, (run, _) in rules.items():
        assert run.rsplit(".", 1)[1] == rule.removeprefix("method_"), f"rule {rule} runs {run}"


def test_stages_are_leaves():
    """No stage module imports another stage: what two stages share lives in the library."""
    stage_set = set(STAGES)
    for stage in STAGES:
        direct = imported_modules(ROOT, stage)
        assert not (direct & stage_set) - {stage}, f"{stage} imports stage(s) {sorted(direct & stage_set)}"


@pytest.fixture
def package_copy(tmp_path) -> Path:
    shutil.copytree(ROOT / "vitaff", tmp_path / "vitaff", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def hashes(root: Path) -> dict[str, str]:
    return {stage: stage_code(stage, root) for stage in STAGES}


def test_editing_a_deep_module_reruns_exactly_its_importers(package_copy):
    before = hashes(package_copy)
    assert hashes(ROOT) == before  # the hash depends on paths relative to the root and bytes only
    # vitaff/metrics.py: imported by the seeds stage only through vitaff.seeds -> vitaff.explain ... and
    # by the trainers through vitaff.classifier; never by the dataset generator or the CRF.
    with open(package_copy / "vitaff" / "metrics.py", "a") as f:
        f.write("# edited\n")
    after = hashes(package_copy)
    changed = {s for s in STAGES if before[s] != after[s]}
    importers = {s for s in STAGES if Path("vitaff/metrics.py") in import_closure(s, package_copy)}
    assert changed == importers
    for stage in ("seeds", "random_walk", "train_classifier", "train_affinitynet", "score"):
        assert f"vitaff.stages.{stage}" in changed
    assert "vitaff.diagnostics.stages.walk_ceiling" in changed
    for stage in ("make_synthetic_dataset", "dataset_index", "crf", "pseudo_labels"):
        assert f"vitaff.stages.{stage}" not in changed


def test_editing_a_package_init_reruns_its_importers(package_copy):
    before = hashes(package_copy)
    with open(package_copy / "vitaff" / "data" / "synthetic" / "__init__.py", "a") as f:
        f.write("# edited\n")
    after = hashes(package_copy)
    assert before["vitaff.stages.make_synthetic_dataset"] != after["vitaff.stages.make_synthetic_dataset"]
    assert before["vitaff.stages.crf"] == after["vitaff.stages.crf"]


def test_relative_imports_and_package_inits(tmp_path):
    pkg = tmp_path / "vitaff"
    for d in ("", "a", "a/inner", "stages", "unused"):
        (pkg / d).mkdir(parents=True, exist_ok=True)
        (pkg / d / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("from .base import thing\n")
    (pkg / "a" / "base.py").write_text("import numpy\n")
    (pkg / "a" / "inner" / "deep.py").write_text("from ..base import thing\nfrom . import sibling\n")
    (pkg / "a" / "inner" / "sibling.py").write_text("def f():\n    import vitaff.unused.lazy\n")
    (pkg / "unused" / "lazy.py").write_text("")
    (pkg / "unused" / "never.py").write_text("")
    (pkg / "stages" / "run.py").write_text("from vitaff.a.inner import deep\n")
    closure = {p.as_posix() for p in import_closure("vitaff.stages.run", tmp_path)}
    assert closure == {"vitaff/__init__.py", "vitaff/stages/__init__.py", "vitaff/stages/run.py",
                       "vitaff/a/__init__.py", "vitaff/a/base.py", "vitaff/a/inner/__init__.py",
                       "vitaff/a/inner/deep.py", "vitaff/a/inner/sibling.py",
                       "vitaff/unused/__init__.py", "vitaff/unused/lazy.py"}
    before = stage_code("vitaff.stages.run", tmp_path)
    (pkg / "unused" / "never.py").write_text("x = 1\n")
    assert stage_code("vitaff.stages.run", tmp_path) == before
    (pkg / "unused" / "lazy.py").write_text("x = 1\n")
    assert stage_code("vitaff.stages.run", tmp_path) != before


def test_closure_covers_what_importing_a_stage_loads():
    """Every vitaff module Python actually loads when a stage is imported is in its closure."""
    script = (
        "import importlib, json, sys\n"
        "out = {}\n"
        f"for stage in {STAGES!r}:\n"
        "    for name in [k for k in sys.modules if k == 'vitaff' or k.startswith('vitaff.')]:\n"
        "        del sys.modules[name]\n"
        "    importlib.import_module(stage)\n"
        "    out[stage] = sorted(k for k in sys.modules if k == 'vitaff' or k.startswith('vitaff.'))\n"
        "print(json.dumps(out))\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout.splitlines()[-1])
    for stage, modules in loaded.items():
        files = {p.as_posix() for p in import_closure(stage, ROOT)}
        for module in modules:
            path = module.replace(".", "/")
            assert f"{path}.py" in files or f"{path}/__init__.py" in files, f"{stage} loads {module}"
