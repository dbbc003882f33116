# Shared helpers: the effective config, split names, shard lists and code hashes for rules.
import hashlib
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import available_cpu_count

from vitaff.config import effective_config, to_json, uses_embedded_dataset, voc_root

# The effective config: validated, defaults filled, `embedded` overrides applied for the generated set.
CFG = effective_config(config)
EMBEDDED = uses_embedded_dataset(CFG)
VOC_ROOT = str(voc_root(CFG))
SYNTH_DIR = CFG["synthetic"]["dir"]
TRAIN_SPLIT = CFG["dataset"]["train_split"]
EVAL_SPLIT = CFG["dataset"]["eval_split"]
TRAIN_SCORE_SPLIT = CFG["dataset"]["train_score_split"]
# Splits the per-image stages run on (seeds ... random walk, pseudo labels).
SPLITS = sorted({TRAIN_SPLIT, EVAL_SPLIT})
# Scored split -> split whose stores hold its images: the 1,464-id train is scored from the
# train_aug stores it is part of (psa's protocol), so no image is explained twice.
SCORED_FROM = {EVAL_SPLIT: EVAL_SPLIT, TRAIN_SCORE_SPLIT: TRAIN_SPLIT}
# Splits with an index CSV (every split above; the scored ones give the ids to score).
INDEX_SPLITS = sorted(set(SPLITS) | set(SCORED_FROM))
SHARDS = list(range(CFG["dataset"]["shards"]))


def code_hash(*paths):
    """Hash of the vitaff sources a job depends on, passed as a param: editing them reruns the job."""
    digest = hashlib.sha256()
    for top in paths:
        top = Path(workflow.basedir) / top
        files = sorted(top.rglob("*.py")) if top.is_dir() else [top]
        for f in files:
            digest.update(str(f.relative_to(workflow.basedir)).encode())
            digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


def job_threads(side_by_side=1):
    """`threads:` of a computing rule: the run's --cores (at most the CPUs this machine has) shared by
    the jobs of the rule that run side by side (the shards of a split), at least 1; the stage gives
    them to torch (--threads, vitaff/stages/_cli.py). A cluster run without --cores gets 1 here:
    profiles/slurm's set-threads sizes its jobs."""
    try:
        cores = workflow.cores
    except WorkflowError:
        return 1
    return max(1, min(cores, available_cpu_count()) // side_by_side)


COMMON_CODE = ("vitaff/__init__.py", "vitaff/config.py", "vitaff/store.py", "vitaff/stages/_cli.py")


def dataset_marker():
    """The embedded dataset's completion file, or nothing for a real VOCdevkit."""
    return [f"{VOC_ROOT}/synthetic.json"] if EMBEDDED else []


def stage_params(*sections, **extra):
    """JSON params of a stage: seed, device, VOC root and the named config sections."""
    return to_json({"seed": CFG["seed"], "device": CFG["device"], "voc_root": VOC_ROOT,
                    **{s: CFG[s] for s in sections}, **extra})


MODEL_CODE = ("vitaff/models", "vitaff/explain.py", "vitaff/classifier.py", "vitaff/training.py", "vitaff/viz.py",
              "vitaff/data/voc.py", "vitaff/data/loading.py")


# Inputs of scoring (every stage store of every scored split).
STAGE_DIRS = {"seeds": "results/seeds", "crf": "results/crf", "random_walk": "results/random_walk"}


def score_inputs():
    """``<scored split>:<stage>`` -> the stage's shard stores of the split holding its images."""
    return {f"{scored}:{stage}": expand(f"{d}/{source}/shard_{{shard}}.zarr", shard=SHARDS)
            for scored, source in sorted(SCORED_FROM.items()) for stage, d in STAGE_DIRS.items()}


def scored_indexes():
    """``index:<scored split>`` -> its index CSV (the ids a score counts)."""
    return {f"index:{scored}": f"results/data/{scored}.csv" for scored in sorted(SCORED_FROM)}


def pseudo_label_dirs():
    """``<scored split>:random_walk`` -> the pseudo-label PNG directory of the split holding its
    images (the random-walk rows score the files users train on)."""
    return {f"{scored}:random_walk": f"results/pseudo_labels/{source}" for scored, source in sorted(SCORED_FROM.items())}


def score_args(wildcards, input):
    """``split:stage:path,path`` for every ``split:stage`` input (other named inputs are left out)."""
    return " ".join(f"{key}:{value if isinstance(value, str) else ','.join(value)}"
                    for key, value in input.items() if key.split(":", 1)[-1] in STAGE_DIRS)
