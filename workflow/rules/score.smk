# Paper step 7: mIoU of seeds, CRF baseline and random walk on the eval and train splits (SPEC 6).
rule score:
    input:
        **score_inputs(),
    output:
        report("results/voc_miou.csv", category="Results", caption="../report/voc_miou.rst"),
    params:
        args=stage_params("dataset", "seeds"),
        inputs=score_args,
        code=code_hash("vitaff/metrics.py", "vitaff/seeds.py", "vitaff/stages/score.py", "vitaff/data/voc.py", *COMMON_CODE),
    threads: 1
    log:
        "results/logs/score.log",
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.score --params {params.args:q} --threads {threads} --inputs {params.inputs} --out {output} > {log} 2>&1"
