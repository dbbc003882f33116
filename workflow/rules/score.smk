# Paper step 7: mIoU of seeds, CRF baseline and random walk on the eval and train splits (SPEC 6),
# with the walk ceiling (the walk with ground-truth affinity, diagnostics.smk) beside them.
rule score:
    input:
        **{key: paths for key, paths in score_inputs().items() if not key.endswith(":random_walk")},
        **pseudo_label_dirs(),
        **scored_indexes(),
        ceiling="results/walk_ceiling.csv",
    output:
        report("results/voc_miou.csv", category="Results", caption="../report/voc_miou.rst"),
    params:
        args=stage_params("dataset", "seeds"),
        inputs=score_args,
        indexes=lambda wildcards, input: " ".join(
            f"{key.split(':', 1)[1]}:{value}" for key, value in input.items() if key.startswith("index:")),
        code=stage_code("vitaff.stages.score"),
    threads: 1
    log:
        "results/logs/score.log",
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.score --params {params.args:q} --threads {threads} --inputs {params.inputs}"
        " --indexes {params.indexes} --ceiling {input.ceiling} --out {output} > {log} 2>&1"
