# Paper step 7: mIoU of seeds, CRF baseline and random walk on the eval and train splits (SPEC 6),
# over the dataset's classes: results/voc_miou.csv on PASCAL VOC (and the embedded set),
# results/coco_miou.csv on COCO, results/miou.csv on a VOC-layout set with its own classes.
# The walk ceiling (the walk with ground-truth affinity, diagnostics.smk) has its own table,
# results/walk_ceiling.csv (built by `all`): the main result does not wait for that diagnostic.
rule score:
    input:
        **{key: paths for key, paths in score_inputs().items() if not key.endswith(":random_walk")},
        **pseudo_label_dirs(),
        **scored_indexes(),
        classes=CLASSES,
    output:
        report(MIOU_CSV, category="Results", caption="../report/voc_miou.rst"),
    params:
        args=stage_params("dataset", "seeds"),
        inputs=score_args,
        indexes=lambda wildcards, input: " ".join(
            f"{key.split(':', 1)[1]}:{value}" for key, value in input.items() if key.startswith("index:")),
        code=stage_code("vitaff.stages.score"),
    threads: 1
    log:
        "results/logs/score.log",
    benchmark:
        "results/benchmarks/score.tsv"
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.score --params {params.args:q} --threads {threads} --inputs {params.inputs}"
        " --indexes {params.indexes} --classes {input.classes} --out {output} > {log} 2>&1"
