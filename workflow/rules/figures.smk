# Figures for people: every stage side by side for the first images of the eval split.


rule figures:
    input:
        index=f"results/data/{EVAL_SPLIT}.csv",
        score=MIOU_CSV,
        affinitynet="results/models/affinitynet.pt",
    output:
        report("results/figures/wsss_stages.png", category="Figures", caption="../report/wsss_stages.rst"),
    params:
        args=stage_params("figures", "seeds", "affinity"),
        code=stage_code("vitaff.stages.figures"),
    threads: job_threads()
    log:
        "results/logs/figures.log",
    benchmark:
        "results/benchmarks/figures.tsv"
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.figures --params {params.args:q} --threads {threads} --index {input.index} --out {output} > {log} 2>&1"
