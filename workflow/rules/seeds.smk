# Paper step 2: class-wise transformer-attribution seeds, sharded by image ranges (SPEC 5).


rule seeds:
    input:
        index="results/data/{split}.csv",
        classifier="results/models/classifier.pt",
    output:
        store=directory("results/seeds/{split}/shard_{shard}.zarr"),
        previews=report(directory("results/seeds/{split}/previews_{shard}"), patterns=["{name}.png"],
                        category="Seeds", subcategory="{split}", caption="../report/seed_previews.rst"),
    params:
        args=stage_params("seeds"),
        code=stage_code("vitaff.stages.seeds"),
        shards=len(SHARDS),
    threads: job_threads(len(SHARDS))
    log:
        "results/logs/seeds/{split}_{shard}.log",
    benchmark:
        "results/benchmarks/seeds/{split}_{shard}.tsv"
    resources:
        gpu=1 if CFG["device"].startswith("cuda") else 0,
    conda:
        "../../envs/vitaff.yaml"
    shell:
        "python -m vitaff.stages.seeds --params {params.args:q} --threads {threads} --index {input.index} --classifier {input.classifier}"
        " --shard {wildcards.shard} --shards {params.shards} --out {output.store} --previews {output.previews}"
        " > {log} 2>&1"
