# Paper step 7: mIoU of seeds, CRF baseline and random walk on the eval and train splits (SPEC 6),
# with the walk ceiling (the walk with ground-truth affinity, diagnostics.smk) beside them.
rule score:
    input:
        **score_inputs(),
        ceiling="results/walk_ceiling.csv",
    output:
        report("results/voc_miou.csv", category="Results", caption="../report/voc_miou.rst"),
    params:
        args=stage_params("dataset", "seeds"),
        inputs=lambda wildcards, input: " ".join(
            f"{key}:{','.join(paths)}" for key, paths in input.items() if key != "ceiling"),
        code=code_hash("vitaff/metrics.py", "vitaff/seeds.py", "vitaff/stages/score.py", "vitaff/data/voc.py", *COMMON_CODE),
    log:
        "results/logs/score.log",
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.score --params {params.args:q} --inputs {params.inputs} --ceiling {input.ceiling}"
        " --out {output} > {log} 2>&1"
