# Shared helpers: the effective config, split names, shard lists and code hashes for rules.
import os

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import available_cpu_count

from vitaff import codehash
from vitaff.config import coco_view_dir, effective_config, to_json, uses_embedded_dataset, voc_root

# The effective config: validated, defaults filled, `embedded` overrides applied for the generated set.
CFG = effective_config(config)
EMBEDDED = uses_embedded_dataset(CFG)
VOC_ROOT = str(voc_root(CFG))
COCO = CFG["dataset"]["format"] == "coco"
COCO_VIEW_DIR = str(coco_view_dir(CFG))
# The dataset's class list (vitaff.data.classes): every rule that counts or names classes reads it.
CLASSES = "results/data/classes.csv"


def miou_csv():
    """The main job's score table: named after the benchmark when the class list is one (VOC's
    classes keep results/voc_miou.csv), results/miou.csv for a dataset's own class list."""
    if COCO:
        return "results/coco_miou.csv"
    if CFG["dataset"]["classes"] or (not EMBEDDED and os.path.isfile(os.path.join(VOC_ROOT, "classes.txt"))):
        return "results/miou.csv"
    return "results/voc_miou.csv"


MIOU_CSV = miou_csv()
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


def stage_code(module):
    """Hash of the code a job runs (``module``'s import closure inside vitaff, vitaff/codehash.py),
    passed as a param: editing any module the stage imports, directly or not, reruns the job."""
    return codehash.stage_code(module, root=workflow.basedir)


def cap_local_cores():
    """A local run never schedules more threads at once than this machine has CPUs, whatever --cores
    says: Snakemake starts jobs while their threads sum to at most its core budget, so --cores 8 on 2
    CPUs ran two 2-thread jobs side by side and every job spun on a shared core (AffinityNet: 4x
    its CPU time alone). Cluster runs are left alone: their jobs hold their own nodes' CPUs."""
    if not workflow.local_exec:
        return
    try:
        cores = workflow.cores
    except WorkflowError:
        return
    cpus = available_cpu_count()
    if cores > cpus:
        workflow.global_resources["_cores"] = cpus  # the scheduler's budget and workflow.cores
        logger.info(f"--cores {cores} capped at this machine's {cpus} CPUs (no more threads at once than CPUs)")


cap_local_cores()

# torch's intra-op threads are OpenMP threads, which by default spin on a core while they wait for
# work. Once anything else wants the cores (another job, another user) the spinning threads take
# turns with the working ones: AffinityNet on 2 threads spent 1.72 CPU-s per iteration on a loaded
# 2-core machine, 0.118 with passive waiting (0.097 on 1 thread). The jobs inherit this variable;
# one set by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def job_threads(side_by_side=1):
    """`threads:` of a computing rule: the run's --cores (at most the CPUs this machine has,
    cap_local_cores) shared by the jobs of the rule that run side by side (the shards of a split),
    at least 1; the stage gives them to torch (--threads, vitaff/stages/_cli.py). A cluster run
    without --cores gets 1 here: profiles/slurm's set-threads sizes its jobs."""
    try:
        cores = workflow.cores
    except WorkflowError:
        return 1
    return max(1, min(cores, available_cpu_count()) // side_by_side)


def dataset_marker():
    """The embedded dataset's completion file, the COCO view's, or nothing for a real VOCdevkit."""
    if EMBEDDED:
        return [f"{VOC_ROOT}/synthetic.json"]
    return [f"{VOC_ROOT}/prepared.json"] if COCO else []


def stage_params(*sections, **extra):
    """JSON params of a stage: seed, device, VOC root and the named config sections."""
    return to_json({"seed": CFG["seed"], "device": CFG["device"], "voc_root": VOC_ROOT,
                    **{s: CFG[s] for s in sections}, **extra})


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
