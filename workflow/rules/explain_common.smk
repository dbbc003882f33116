# Helpers of the explainability-test rules (explain_eval.smk): config, shard list, rule inputs.

EXPLAIN = CFG["explain"]
EXPLAIN_EMBEDDED = not EXPLAIN["imagenet_val"] and not EXPLAIN["gtsegs"]
EXPLAIN_DIR = EXPLAIN["embedded"]["dir"]
EXPLAIN_SHARDS = list(range(EXPLAIN["shards"] or CFG["dataset"]["shards"]))
EXPLAIN_TESTS = ("segmentation", "perturbation")
EXPLAIN_CODE = ("vitaff/explain_eval.py", "vitaff/explain.py", "vitaff/metrics.py", "vitaff/models",
                "vitaff/classifier.py", "vitaff/training.py", "vitaff/viz.py", "vitaff/data/imagenet_seg.py",
                "vitaff/data/synthetic", "vitaff/data/voc.py", "vitaff/data/loading.py")


wildcard_constraints:
    test="|".join(EXPLAIN_TESTS),


def explain_params(*drop):
    """JSON params of an explain stage; keys in ``drop`` (not affecting its output) left out."""
    return to_json({"seed": CFG["seed"], "device": CFG["device"],
                    "explain": {k: v for k, v in EXPLAIN.items() if k not in drop}})


def explain_model_input(wildcards=None):
    """The explained model's file: the trained embedded ViT, or a local checkpoint if given."""
    if EXPLAIN_EMBEDDED:
        return ["results/models/explain_vit.pt"]
    return [EXPLAIN["checkpoint"]] if EXPLAIN["checkpoint"] else []


def explain_data_input(wildcards):
    return explain_data(wildcards.test)


def explain_data(test):
    """The data of one test: the embedded sets' completion file, or the configured real data."""
    if EXPLAIN_EMBEDDED:
        return [f"{EXPLAIN_DIR}/explain_sets.json"]
    key = "gtsegs" if test == "segmentation" else "imagenet_val"
    if not EXPLAIN[key]:
        raise ValueError(f"config explain.{key} is null while the other real data set is given: "
                         f"set it to run the {test} test on real data")
    return [EXPLAIN[key]] + ([EXPLAIN["imagenet_labels"]] if key == "imagenet_val" and EXPLAIN["imagenet_labels"] else [])
