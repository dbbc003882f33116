# Paper step 1: hybrid ViT multi-label classifier on image-level labels (SPEC 5).


rule train_classifier:
    input:
        train=f"results/data/{TRAIN_SPLIT}.csv",
        eval=f"results/data/{EVAL_SPLIT}.csv",
        classes=CLASSES,
    output:
        model="results/models/classifier.pt",
        history=report("results/models/classifier_log.csv", category="Training", caption="../report/classifier_log.rst"),
    params:
        args=stage_params("classifier"),
        code=stage_code("vitaff.stages.train_classifier"),
    threads: job_threads()
    log:
        "results/logs/train_classifier.log",
    benchmark:
        "results/benchmarks/train_classifier.tsv"
    resources:
        gpu=1 if CFG["device"].startswith("cuda") else 0,
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.train_classifier --params {params.args:q} --threads {threads} --train-index {input.train}"
        " --eval-index {input.eval} --classes {input.classes} --out {output.model} --history {output.history}"
        " --resume-dir results/checkpoints > {log} 2>&1"
