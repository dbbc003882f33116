# Data: generate the embedded VOC-layout dataset (only when dataset.root is null) and index splits.


rule make_synthetic_dataset:
    output:
        f"{VOC_ROOT}/synthetic.json",
    params:
        args=to_json(CFG["synthetic"]),
        code=stage_code("vitaff.stages.make_synthetic_dataset"),
    threads: 1
    log:
        "results/logs/make_synthetic_dataset.log",
    benchmark:
        "results/benchmarks/make_synthetic_dataset.tsv"
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.make_synthetic_dataset --params {params.args:q} --threads {threads} --out {output} > {log} 2>&1"


rule dataset_index:
    """Read every image and mask of a split once: sizes, image-level labels, and early errors."""
    input:
        dataset_marker(),
    output:
        "results/data/{split}.csv",
    params:
        args=lambda wc: to_json({**CFG["dataset"], "root": VOC_ROOT, "split": wc.split}),
        code=stage_code("vitaff.stages.dataset_index"),
    threads: 1
    log:
        "results/logs/dataset_index/{split}.log",
    benchmark:
        "results/benchmarks/dataset_index/{split}.tsv"
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.dataset_index --params {params.args:q} --threads {threads} --out {output} > {log} 2>&1"
