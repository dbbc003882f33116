# Step 3 (SPEC 9): a fully-supervised segmentation network (torchvision's DeepLab-v3) trained on the
# training split's pseudo labels and scored on the eval split in three inference modes; with
# segmentation.gt_reference the same network on the ground-truth masks (the upper bound) beside it.
# results/voc_miou.csv does not wait for any of this.

SEG = CFG["segmentation"]
# network -> the labels it trains on: the pseudo labels (the product), or the ground truth
SEG_NETWORKS = {"segmentation": f"results/pseudo_labels/{TRAIN_SPLIT}",
                **({"segmentation_gt": "ground_truth"} if SEG["gt_reference"] else {})}
# inference-only keys: changing them reruns `segment`, not the training
SEG_INFERENCE_KEYS = ("test_scales", "test_flip", "crf", "gt_reference")
# the embedded network's backbone is the classifier's CNN stem (trained on image labels only)
SEG_CLASSIFIER = ["results/models/classifier.pt"] if SEG["network"] == "deeplabv3_classifier_stem" else []


rule train_segmentation:
    input:
        index=f"results/data/{TRAIN_SPLIT}.csv",
        labels=lambda wc: [SEG_NETWORKS[wc.network]] if wc.network == "segmentation" else dataset_marker(),
        classifier=SEG_CLASSIFIER,
        classes=CLASSES,
    output:
        model="results/models/{network}.pt",
        history=report("results/models/{network}_log.csv", category="Training", caption="../report/segmentation_log.rst"),
    wildcard_constraints:
        network="|".join(SEG_NETWORKS),
    params:
        args=stage_params("dataset", segmentation={k: v for k, v in SEG.items() if k not in SEG_INFERENCE_KEYS},
                          classifier={"model": CFG["classifier"]["model"]}),
        labels=lambda wc: SEG_NETWORKS[wc.network],
        split=TRAIN_SPLIT,
        classifier=" ".join(f"--classifier {path}" for path in SEG_CLASSIFIER),
        code=stage_code("vitaff.stages.train_segmentation"),
    threads: job_threads()
    log:
        "results/logs/train_{network}.log",
    benchmark:
        "results/benchmarks/train_{network}.tsv"
    resources:
        gpu=1 if CFG["device"].startswith("cuda") else 0,
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.train_segmentation --params {params.args:q} --threads {threads} --index {input.index}"
        " --classes {input.classes}"
        " --split {params.split} --labels {params.labels} {params.classifier} --out {output.model}"
        " --history {output.history} --resume-dir results/checkpoints > {log} 2>&1"


rule segment:
    input:
        dataset_marker(),
        model="results/models/{network}.pt",
        index="results/data/{split}.csv",
        classes=CLASSES,
    output:
        predictions=directory("results/{network}/{split}"),
        scores="results/{network}/{split}_miou.csv",
    wildcard_constraints:
        network="|".join(SEG_NETWORKS),
    params:
        args=stage_params("dataset", segmentation={k: SEG[k] for k in SEG_INFERENCE_KEYS}),
        code=stage_code("vitaff.stages.segment"),
    threads: job_threads()
    log:
        "results/logs/segment/{network}_{split}.log",
    benchmark:
        "results/benchmarks/segment/{network}_{split}.tsv"
    resources:
        gpu=1 if CFG["device"].startswith("cuda") else 0,
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.segment --params {params.args:q} --threads {threads} --model {input.model}"
        " --index {input.index} --classes {input.classes} --split {wildcards.split} --out {output.predictions} --scores {output.scores} > {log} 2>&1"


rule score_segmentation:
    input:
        index=f"results/data/{EVAL_SPLIT}.csv",
        pseudo_labels=f"results/pseudo_labels/{EVAL_SPLIT}",
        networks=expand("results/{network}/{split}_miou.csv", network=SEG_NETWORKS, split=EVAL_SPLIT),
        classes=CLASSES,
    output:
        report("results/segmentation_miou.csv", category="Results", caption="../report/segmentation_miou.rst"),
    params:
        args=stage_params("dataset"),
        split=EVAL_SPLIT,
        code=stage_code("vitaff.stages.score_segmentation"),
    threads: 1
    log:
        "results/logs/score_segmentation.log",
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.score_segmentation --params {params.args:q} --threads {threads} --index {input.index}"
        " --classes {input.classes}"
        " --split {params.split} --pseudo-labels {input.pseudo_labels} --networks {input.networks} --out {output} > {log} 2>&1"
