# Paper steps 4-5: affinity labels from the two CRFs, then AffinityNet training (SPEC 6).


rule affinity_labels:
    input:
        crf="results/crf/{split}/shard_{shard}.zarr",
    output:
        directory("results/affinity_labels/{split}/shard_{shard}.zarr"),
    params:
        # the grid keys only: retraining AffinityNet does not rerun the labels
        args=stage_params(affinity={k: CFG["affinity"][k] for k in ("feature_stride", "input", "crop_size")}),
        code=stage_code("vitaff.stages.affinity_labels"),
    threads: 1
    log:
        "results/logs/affinity_labels/{split}_{shard}.log",
    benchmark:
        "results/benchmarks/affinity_labels/{split}_{shard}.tsv"
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.affinity_labels --params {params.args:q} --threads {threads} --crf {input.crf} --out {output} > {log} 2>&1"


rule train_affinitynet:
    input:
        labels=expand("results/affinity_labels/{split}/shard_{shard}.zarr", split=TRAIN_SPLIT, shard=SHARDS),
        classifier="results/models/classifier.pt",
    output:
        model="results/models/affinitynet.pt",
        history=report("results/models/affinitynet_log.csv", category="Training", caption="../report/affinitynet_log.rst"),
    params:
        args=stage_params("affinity"),
        code=stage_code("vitaff.stages.train_affinitynet"),
    threads: job_threads()
    log:
        "results/logs/train_affinitynet.log",
    benchmark:
        "results/benchmarks/train_affinitynet.tsv"
    resources:
        gpu=1 if CFG["device"].startswith("cuda") else 0,
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.train_affinitynet --params {params.args:q} --threads {threads} --labels {input.labels}"
        " --classifier {input.classifier} --out {output.model} --history {output.history}"
        " --resume-dir results/checkpoints > {log} 2>&1"
