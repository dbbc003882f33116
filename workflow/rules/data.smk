# Data: generate the embedded VOC-layout dataset (only when dataset.root is null), or turn a COCO
# root into a VOC-layout view (dataset.format: coco); the class list; index splits.


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


rule coco_annotation_index:
    """Parse a COCO instances JSON once into a compact index (reloads in seconds)."""
    output:
        f"{COCO_VIEW_DIR}/index/instances_{{split}}.pkl",
    params:
        args=to_json({"root": CFG["dataset"]["root"]}),
        code=stage_code("vitaff.stages.coco_annotation_index"),
    threads: 1
    log:
        "results/logs/coco_annotation_index/{split}.log",
    benchmark:
        "results/benchmarks/coco_annotation_index/{split}.tsv"
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.coco_annotation_index --params {params.args:q} --threads {threads} --split {wildcards.split}"
        " --out {output} > {log} 2>&1"


rule coco_view:
    """The VOC-layout view of a COCO root: image links, masks rendered once, labels, split lists."""
    input:
        **{s: f"{COCO_VIEW_DIR}/index/instances_{s}.pkl" for s in SPLITS},
    output:
        f"{VOC_ROOT}/prepared.json",
    params:
        args=to_json({"root": CFG["dataset"]["root"], "id_lists": CFG["dataset"]["id_lists"]}),
        code=stage_code("vitaff.stages.coco_view"),
        indexes=lambda wc, input: " ".join(f"{k}:{v}" for k, v in input.items()),
    threads: job_threads()
    log:
        "results/logs/coco_view.log",
    benchmark:
        "results/benchmarks/coco_view.tsv"
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.coco_view --params {params.args:q} --threads {threads} --indexes {params.indexes}"
        " --out {output} > {log} 2>&1"


rule dataset_classes:
    """The dataset's class list (label index, name, category id): results/data/classes.csv."""
    input:
        dataset_marker(),
    output:
        CLASSES,
    params:
        args=to_json({"root": VOC_ROOT, "classes": CFG["dataset"]["classes"]}),
        code=stage_code("vitaff.stages.dataset_classes"),
    threads: 1
    log:
        "results/logs/dataset_classes.log",
    benchmark:
        "results/benchmarks/dataset_classes.tsv"
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.dataset_classes --params {params.args:q} --threads {threads} --out {output} > {log} 2>&1"


rule dataset_index:
    """Read every image and mask of a split once: sizes, image-level labels, and early errors."""
    input:
        dataset_marker(),
        classes=CLASSES,
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
        "python -m vitaff.stages.dataset_index --params {params.args:q} --threads {threads} --classes {input.classes}"
        " --out {output} > {log} 2>&1"
