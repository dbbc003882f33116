# SPEC 8: every seed source through the same refinement, one table (results/seed_methods.csv).
# Each method of seed_methods.methods runs the stage modules of the main job (seeds, crf,
# affinity_labels, train_affinitynet, random_walk, score) on its own paths, results/methods/<method>/,
# so each resumes and reruns on its own; seeds.method is the main job's own method and reads the
# main job's artifacts (results/seeds, results/crf, results/random_walk) and rows (the main score
# file) instead: nothing of it is computed twice, and results/methods/<seeds.method>/ is never
# made. AffinityNet is the main job's network (initialised from the ViT classifier's CNN stem) for
# every method: only the seeds differ. The CNN baseline (cam) trains its own classifier, results/models/cam.pt.

MAIN_METHOD = CFG["seeds"]["method"]
SEED_METHODS = CFG["seed_methods"]["methods"]
METHOD_CLASSIFIER = {"cam": "results/models/cam.pt"}


wildcard_constraints:
    method="|".join(sorted({m for m in SEED_METHODS} | {MAIN_METHOD, "cam"})),


def method_dir(method, stage):
    """Directory of a method's ``stage`` stores (seeds, crf, affinity_labels, random_walk)."""
    return f"results/{stage}" if method == MAIN_METHOD else f"results/methods/{method}/{stage}"


def method_model(method):
    return "results/models/affinitynet.pt" if method == MAIN_METHOD else f"results/methods/{method}/affinitynet.pt"


def method_seeds_params(wildcards):
    return stage_params(seeds={**CFG["seeds"], "method": wildcards.method})


rule train_cam:
    input:
        classes=CLASSES,
        train=f"results/data/{TRAIN_SPLIT}.csv",
        eval=f"results/data/{EVAL_SPLIT}.csv",
    output:
        model="results/models/cam.pt",
        history=report("results/models/cam_log.csv", category="Training", caption="../report/cam_log.rst"),
    params:
        args=stage_params("cam"),
        code=stage_code("vitaff.stages.train_cam"),
    threads: job_threads()
    log:
        "results/logs/train_cam.log",
    benchmark:
        "results/benchmarks/train_cam.tsv"
    resources:
        gpu=1 if CFG["device"].startswith("cuda") else 0,
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.train_cam --params {params.args:q} --threads {threads} --train-index {input.train}"
        " --eval-index {input.eval} --classes {input.classes} --out {output.model} --history {output.history}"
        " --resume-dir results/checkpoints > {log} 2>&1"


rule method_seeds:
    input:
        index="results/data/{split}.csv",
        classifier=lambda wildcards: METHOD_CLASSIFIER.get(wildcards.method, "results/models/classifier.pt"),
    output:
        store=directory("results/methods/{method}/seeds/{split}/shard_{shard}.zarr"),
        previews=directory("results/methods/{method}/seeds/{split}/previews_{shard}"),
    params:
        args=method_seeds_params,
        code=stage_code("vitaff.stages.seeds"),
        shards=len(SHARDS),
    threads: job_threads(len(SHARDS))
    log:
        "results/logs/methods/{method}/seeds_{split}_{shard}.log",
    benchmark:
        "results/benchmarks/methods/{method}/seeds_{split}_{shard}.tsv"
    resources:
        gpu=1 if CFG["device"].startswith("cuda") else 0,
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.seeds --params {params.args:q} --threads {threads} --index {input.index} --classifier {input.classifier}"
        " --shard {wildcards.shard} --shards {params.shards} --out {output.store} --previews {output.previews}"
        " > {log} 2>&1"


rule method_crf:
    input:
        seeds="results/methods/{method}/seeds/{split}/shard_{shard}.zarr",
    output:
        directory("results/methods/{method}/crf/{split}/shard_{shard}.zarr"),
    params:
        args=stage_params("crf"),
        code=stage_code("vitaff.stages.crf"),
    threads: 1
    log:
        "results/logs/methods/{method}/crf_{split}_{shard}.log",
    benchmark:
        "results/benchmarks/methods/{method}/crf_{split}_{shard}.tsv"
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.crf --params {params.args:q} --threads {threads} --seeds {input.seeds} --out {output} > {log} 2>&1"


rule method_affinity_labels:
    input:
        crf="results/methods/{method}/crf/{split}/shard_{shard}.zarr",
    output:
        directory("results/methods/{method}/affinity_labels/{split}/shard_{shard}.zarr"),
    params:
        args=stage_params(affinity={k: CFG["affinity"][k] for k in ("feature_stride", "input", "crop_size")}),
        code=stage_code("vitaff.stages.affinity_labels"),
    threads: 1
    log:
        "results/logs/methods/{method}/affinity_labels_{split}_{shard}.log",
    benchmark:
        "results/benchmarks/methods/{method}/affinity_labels_{split}_{shard}.tsv"
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.affinity_labels --params {params.args:q} --threads {threads} --crf {input.crf} --out {output} > {log} 2>&1"


rule method_train_affinitynet:
    input:
        labels=expand("results/methods/{{method}}/affinity_labels/{split}/shard_{shard}.zarr", split=TRAIN_SPLIT,
                      shard=SHARDS),
        classifier="results/models/classifier.pt",
    output:
        model="results/methods/{method}/affinitynet.pt",
        history="results/methods/{method}/affinitynet_log.csv",
    params:
        args=stage_params("affinity"),
        code=stage_code("vitaff.stages.train_affinitynet"),
    threads: job_threads()
    log:
        "results/logs/methods/{method}/train_affinitynet.log",
    benchmark:
        "results/benchmarks/methods/{method}/train_affinitynet.tsv"
    resources:
        gpu=1 if CFG["device"].startswith("cuda") else 0,
    conda:
        "../../envs/vitaff.yaml"
    shell:
        # the resume checkpoint is keyed by the params, equal for every method: one folder per method
        "python -m vitaff.stages.train_affinitynet --params {params.args:q} --threads {threads} --labels {input.labels}"
        " --classifier {input.classifier} --out {output.model} --history {output.history}"
        " --resume-dir results/methods/{wildcards.method}/checkpoints > {log} 2>&1"


rule method_random_walk:
    input:
        seeds="results/methods/{method}/seeds/{split}/shard_{shard}.zarr",
        classifier="results/models/classifier.pt",
        affinitynet="results/methods/{method}/affinitynet.pt",
    output:
        directory("results/methods/{method}/random_walk/{split}/shard_{shard}.zarr"),
    params:
        args=stage_params("affinity", "random_walk"),
        code=stage_code("vitaff.stages.random_walk"),
    threads: job_threads(len(SHARDS))
    log:
        "results/logs/methods/{method}/random_walk_{split}_{shard}.log",
    benchmark:
        "results/benchmarks/methods/{method}/random_walk_{split}_{shard}.tsv"
    resources:
        gpu=1 if CFG["device"].startswith("cuda") else 0,
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.random_walk --params {params.args:q} --threads {threads} --seeds {input.seeds} --classifier {input.classifier}"
        " --affinitynet {input.affinitynet} --out {output} > {log} 2>&1"


def method_score_inputs(wildcards):
    """``<scored split>:<stage>`` -> the method's shard stores (the walk's zarr labels: the same
    labels as the main job's pseudo-label PNGs)."""
    return {f"{scored}:{stage}": expand(f"{method_dir(wildcards.method, stage)}/{source}/shard_{{shard}}.zarr",
                                        shard=SHARDS)
            for scored, source in sorted(SCORED_FROM.items()) for stage in STAGE_DIRS}


rule method_score:
    input:
        unpack(method_score_inputs),
        **scored_indexes(),
        classes=CLASSES,
    output:
        "results/methods/{method}/miou.csv",
    params:
        args=stage_params("dataset", "seeds"),
        inputs=score_args,
        indexes=lambda wildcards, input: " ".join(
            f"{key.split(':', 1)[1]}:{value}" for key, value in input.items() if key.startswith("index:")),
        code=stage_code("vitaff.stages.score"),
    threads: 1
    log:
        "results/logs/methods/{method}/score.log",
    benchmark:
        "results/benchmarks/methods/{method}/score.tsv"
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.score --params {params.args:q} --threads {threads} --inputs {params.inputs}"
        " --indexes {params.indexes} --classes {input.classes} --out {output} > {log} 2>&1"


def method_scores():
    """Each method's score table in seed_methods.methods order; the main method's is the main job's."""
    return [MIOU_CSV if m == MAIN_METHOD else f"results/methods/{m}/miou.csv" for m in SEED_METHODS]


rule seed_methods:
    input:
        method_scores(),
    output:
        report("results/seed_methods.csv", category="Results", caption="../report/seed_methods.rst"),
    params:
        args=stage_params(),
        methods=SEED_METHODS,
        code=stage_code("vitaff.stages.seed_methods"),
    threads: 1
    log:
        "results/logs/seed_methods.log",
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.seed_methods --params {params.args:q} --threads {threads} --methods {params.methods}"
        " --scores {input} --out {output} > {log} 2>&1"


rule seed_methods_figure:
    input:
        index=f"results/data/{EVAL_SPLIT}.csv",
        seeds=lambda wildcards: [f"{method_dir(m, 'seeds')}/{EVAL_SPLIT}/shard_{s}.zarr" for m in SEED_METHODS
                                 for s in SHARDS],
    output:
        report("results/figures/seed_methods.png", category="Figures", caption="../report/seed_methods_figure.rst"),
    params:
        args=stage_params("dataset", "seeds", "seed_methods"),
        stores=lambda wildcards: " ".join(
            f"{m}:" + ",".join(f"{method_dir(m, 'seeds')}/{EVAL_SPLIT}/shard_{s}.zarr" for s in SHARDS)
            for m in SEED_METHODS),
        code=stage_code("vitaff.stages.seed_methods_figure"),
    threads: 1
    log:
        "results/logs/seed_methods_figure.log",
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.seed_methods_figure --params {params.args:q} --threads {threads} --index {input.index}"
        " --stores {params.stores} --out {output} > {log} 2>&1"


# The field's protocol (MCTformer's --curve, psa, WeakTr): seed mIoU on the train score split for a
# range of background thresholds. The best is chosen on ground truth: a diagnostic beside the fixed
# seeds.bg_threshold, which every score keeps. Built by `all` and as its own target.
rule seed_threshold_curve:
    input:
        seeds=expand(f"results/seeds/{SCORED_FROM[TRAIN_SCORE_SPLIT]}/shard_{{shard}}.zarr", shard=SHARDS),
        index=f"results/data/{TRAIN_SCORE_SPLIT}.csv",
        classes=CLASSES,
    output:
        report("results/seed_threshold_curve.csv", category="Results", caption="../report/seed_threshold_curve.rst"),
    params:
        args=stage_params("dataset", "seeds", "seed_methods"),
        code=stage_code("vitaff.stages.seed_threshold_curve"),
    threads: 1
    log:
        "results/logs/seed_threshold_curve.log",
    benchmark:
        "results/benchmarks/seed_threshold_curve.tsv"
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.seed_threshold_curve --params {params.args:q} --threads {threads} --seeds {input.seeds}"
        " --index {input.index} --classes {input.classes} --out {output} > {log} 2>&1"
