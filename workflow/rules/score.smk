# Paper step 7: mIoU of seeds, CRF baseline and random walk on the eval and train splits (SPEC 6).
STAGE_DIRS = {"seeds": "results/seeds", "crf": "results/crf", "random_walk": "results/random_walk"}


def score_inputs():
    return {f"{split}:{stage}": expand(f"{d}/{split}/shard_{{shard}}.zarr", shard=SHARDS)
            for split in SPLITS for stage, d in STAGE_DIRS.items()}


def score_args(wildcards, input):
    return " ".join(f"{key}:{','.join(paths)}" for key, paths in input.items())


rule score:
    input:
        **score_inputs(),
    output:
        report("results/voc_miou.csv", category="Results", caption="../report/voc_miou.rst"),
    params:
        args=stage_params("dataset", "seeds"),
        inputs=score_args,
        code=code_hash("vitaff/metrics.py", "vitaff/seeds.py", "vitaff/stages/score.py", "vitaff/data/voc.py", *COMMON_CODE),
    log:
        "results/logs/score.log",
    shell:
        "{PY} vitaff.stages.score --params {params.args:q} --inputs {params.inputs} --out {output} > {log} 2>&1"
