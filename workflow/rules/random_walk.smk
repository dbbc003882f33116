# Paper step 6: random walk with AffinityNet's transition matrix refines the seeds (SPEC 6).


rule random_walk:
    input:
        seeds="results/seeds/{split}/shard_{shard}.zarr",
        classifier="results/models/classifier.pt",
        affinitynet="results/models/affinitynet.pt",
    output:
        directory("results/random_walk/{split}/shard_{shard}.zarr"),
    params:
        args=stage_params("affinity", "random_walk"),
        code=stage_code("vitaff.stages.random_walk"),
    threads: job_threads(len(SHARDS))
    log:
        "results/logs/random_walk/{split}_{shard}.log",
    benchmark:
        "results/benchmarks/random_walk/{split}_{shard}.tsv"
    resources:
        gpu=1 if CFG["device"].startswith("cuda") else 0,
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.random_walk --params {params.args:q} --threads {threads} --seeds {input.seeds} --classifier {input.classifier}"
        " --affinitynet {input.affinitynet} --out {output} > {log} 2>&1"


# The pipeline's product: the random walk's labels of a split as VOC palette PNGs at image size,
# results/pseudo_labels/<split>/<id>.png (the train split's train a segmentation network).
rule pseudo_labels:
    input:
        walk=expand("results/random_walk/{{split}}/shard_{shard}.zarr", shard=SHARDS),
    output:
        directory("results/pseudo_labels/{split}"),
    params:
        args=stage_params(),
        code=stage_code("vitaff.stages.pseudo_labels"),
    threads: 1
    log:
        "results/logs/pseudo_labels/{split}.log",
    benchmark:
        "results/benchmarks/pseudo_labels/{split}.tsv"
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.pseudo_labels --params {params.args:q} --threads {threads} --walk {input.walk} --out {output} > {log} 2>&1"
