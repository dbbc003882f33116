# Explainability tests of Chefer et al. (SPEC 3-4): ImageNet-segmentation and perturbation tests
# of every explanation method, sharded by image ranges. With explain.imagenet_val and
# explain.gtsegs null they run on generated single-object sets and a small ViT trained on them.


include: "explain_common.smk"


rule explain_embedded_data:
    """Generated gtsegs-layout HDF5 set and single-label classification set (embedded default)."""
    output:
        f"{EXPLAIN_DIR}/explain_sets.json",
    params:
        args=to_json({"explain": {"embedded": EXPLAIN["embedded"]}}),
        code=stage_code("vitaff.stages.explain_embedded_data"),
    threads: 1
    log:
        "results/logs/explain/embedded_data.log",
    benchmark:
        "results/benchmarks/explain/embedded_data.tsv"
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.explain_embedded_data --params {params.args:q} --threads {threads} > {log} 2>&1"


rule train_explain_model:
    """The embedded default's small ViT (single label, cross-entropy); resumable per epoch."""
    input:
        f"{EXPLAIN_DIR}/explain_sets.json",
    output:
        model="results/models/explain_vit.pt",
        history="results/models/explain_vit_log.csv",
    params:
        args=to_json({"seed": CFG["seed"], "device": CFG["device"], "explain": {"embedded": EXPLAIN["embedded"]}}),
        code=stage_code("vitaff.stages.train_explain_model"),
    threads: job_threads()
    log:
        "results/logs/explain/train_explain_model.log",
    benchmark:
        "results/benchmarks/explain/train_explain_model.tsv"
    resources:
        gpu=1 if CFG["device"].startswith("cuda") else 0,
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.train_explain_model --params {params.args:q} --threads {threads} --out {output.model}"
        " --history {output.history} --resume-dir results/checkpoints > {log} 2>&1"


rule explain_eval_shard:
    """One image range of the segmentation or perturbation test: per-image rows (CSV)."""
    input:
        data=explain_data_input,
        model=explain_model_input,
    output:
        "results/explain/{test}/shard_{shard}.csv",
    params:
        args=explain_params("figure_images"),
        code=stage_code("vitaff.stages.explain_eval_shard"),
        shards=len(EXPLAIN_SHARDS),
        model=lambda wc, input: f"--model {input.model[0]}" if input.model else "",
    threads: job_threads(len(EXPLAIN_SHARDS))
    log:
        "results/logs/explain/{test}_{shard}.log",
    benchmark:
        "results/benchmarks/explain/{test}_{shard}.tsv"
    resources:
        gpu=1 if CFG["device"].startswith("cuda") else 0,
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.explain_eval_shard --params {params.args:q} --threads {threads} --test {wildcards.test} {params.model}"
        " --shard {wildcards.shard} --shards {params.shards} --out {output} > {log} 2>&1"


rule explain_gather:
    """results/explain_{segmentation,perturbation}.csv from all shards (exact combination)."""
    input:
        expand("results/explain/{{test}}/shard_{shard}.csv", shard=EXPLAIN_SHARDS),
    output:
        report("results/explain_{test}.csv", category="Explainability", caption="../report/explain_eval.rst"),
    params:
        args=to_json({}),
        code=stage_code("vitaff.stages.explain_gather"),
    threads: 1
    log:
        "results/logs/explain/gather_{test}.log",
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.explain_gather --params {params.args:q} --threads {threads} --test {wildcards.test}"
        " --inputs {input} --out {output} > {log} 2>&1"


rule explain_figure:
    """Heat-map overlays of every method for the first images of the segmentation set."""
    input:
        data=explain_data("segmentation"),
        model=explain_model_input,
    output:
        report("results/figures/explain_methods.png", category="Explainability", caption="../report/explain_methods.rst"),
    params:
        args=explain_params(),
        code=stage_code("vitaff.stages.explain_figure"),
        model=lambda wc, input: f"--model {input.model[0]}" if input.model else "",
    threads: job_threads()
    log:
        "results/logs/explain/figure.log",
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.explain_figure --params {params.args:q} --threads {threads} {params.model} --out {output} > {log} 2>&1"
