# Paper step 3: background maps (alpha low / high) and dense CRF -> confident fg / bg (SPEC 6).


rule crf:
    input:
        seeds="results/seeds/{split}/shard_{shard}.zarr",
    output:
        directory("results/crf/{split}/shard_{shard}.zarr"),
    params:
        args=stage_params("crf"),
        code=stage_code("vitaff.stages.crf"),
    threads: 1
    log:
        "results/logs/crf/{split}_{shard}.log",
    benchmark:
        "results/benchmarks/crf/{split}_{shard}.tsv"
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.crf --params {params.args:q} --threads {threads} --seeds {input.seeds} --out {output} > {log} 2>&1"
