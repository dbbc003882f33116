# Diagnostics, not paper steps: measurements that explain the scores (vitaff/diagnostics/).


# Diagnostic (embedded dataset only: it needs the generator's part masks): how much seed mass lies
# on the discriminative part, the rest of the object and the background, and how the CRF labels them.
rule seed_mass:
    input:
        **{key: paths for key, paths in score_inputs().items() if not key.endswith(":random_walk")},
    output:
        report("results/seed_mass.csv", category="Results", caption="../report/seed_mass.rst"),
    params:
        args=stage_params("dataset"),
        inputs=score_args,
        code=stage_code("vitaff.diagnostics.stages.seed_mass"),
    threads: 1
    log:
        "results/logs/seed_mass.log",
    benchmark:
        "results/benchmarks/seed_mass.tsv"
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.diagnostics.stages.seed_mass --params {params.args:q} --threads {threads} --inputs {params.inputs} --out {output} > {log} 2>&1"


# Diagnostic: the random walk with ground-truth instance affinity on the same seeds, i.e. the most any
# affinity network could add under these walk constants (needs SegmentationObject/ masks).
rule walk_ceiling:
    input:
        **{key: paths for key, paths in score_inputs().items() if key.endswith(":seeds")},
        classes=CLASSES,
    output:
        report("results/walk_ceiling.csv", category="Results", caption="../report/walk_ceiling.rst"),
    params:
        # only the grid keys of affinity: retraining AffinityNet does not change the ceiling
        args=stage_params("dataset", "seeds", "random_walk",
                          affinity={k: CFG["affinity"][k] for k in ("feature_stride", "radius")}),
        inputs=score_args,
        code=stage_code("vitaff.diagnostics.stages.walk_ceiling"),
    threads: job_threads()
    log:
        "results/logs/walk_ceiling.log",
    benchmark:
        "results/benchmarks/walk_ceiling.tsv"
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.diagnostics.stages.walk_ceiling --params {params.args:q} --threads {threads} --inputs {params.inputs}"
        " --classes {input.classes} --out {output} > {log} 2>&1"


# Diagnostic (embedded dataset only: it needs the generator's part masks): AffinityNet's mean affinity
# per kind of neighbour pair (background, body, part; same or different object).
rule affinity_stats:
    input:
        **{key: paths for key, paths in score_inputs().items() if key.endswith(":seeds")},
        classifier="results/models/classifier.pt",
        affinitynet="results/models/affinitynet.pt",
    output:
        report("results/affinity_stats.csv", category="Results", caption="../report/affinity_stats.rst"),
    params:
        args=stage_params("affinity"),
        inputs=lambda wildcards, input: " ".join(
            f"{key}:{','.join(paths)}" for key, paths in input.items() if key.endswith(":seeds")),
        code=stage_code("vitaff.diagnostics.stages.affinity_stats"),
    threads: job_threads()
    log:
        "results/logs/affinity_stats.log",
    benchmark:
        "results/benchmarks/affinity_stats.tsv"
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.diagnostics.stages.affinity_stats --params {params.args:q} --threads {threads} --inputs {params.inputs}"
        " --classifier {input.classifier} --affinitynet {input.affinitynet} --out {output} > {log} 2>&1"
