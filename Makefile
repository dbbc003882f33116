# Two entry points for a fresh Linux machine with Python 3.11:
#   make run   -> virtualenv + install + the main job on the embedded dataset
#   make test  -> virtualenv + install + the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
CORES ?= all
# make run SEED=1: the main job with config `seed` 1 (training, crops, jitter; the dataset stays synthetic.seed's)
SEED ?=
export PATH := $(BIN):$(PATH)

.PHONY: install run test test-slow lint bench bench-pipeline clean mutation

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

run: install
	snakemake --cores $(CORES) $(if $(SEED),--config seed=$(SEED) --) results/voc_miou.csv

test: install
	python -m pytest -q --durations=15

lint: install
	snakemake --lint

bench: install
	python bench/explain.py
	python bench/reference_diff.py
	python bench/seeds.py
	python bench/wsss_ops.py

# wall and CPU seconds per rule of the last run, from results/benchmarks/ (bench/pipeline_times.py)
bench-pipeline:
	python bench/pipeline_times.py

clean:
	rm -rf results/* .snakemake data/synthetic mutants

# Mutation score of the core maths (not part of `make test`): metrics, affinity, random walk, CRF,
# seeds and the relevance rules (vitaff/models/relevance.py and the layers' relprop methods in
# vitaff/models/vit.py, not the model's construction). Each mutant runs only the fast tests that reach its function
# ([tool.mutmut] in pyproject.toml). Survivors that are equivalent mutants: docs/mutation.md.
MUTANTS := 'vitaff.metrics.*' 'vitaff.crf.*' 'vitaff.affinity.*' 'vitaff.random_walk.*' \
	'vitaff.seeds.x_seed_chain*' 'vitaff.seeds.x_class_seeds*' 'vitaff.seeds.x_to_full_stack*' 'vitaff.seeds.x_seed_labels*' \
	'vitaff.models.relevance.*' 'vitaff.models.vit.*relprop*'
mutation: install
	python -m pip install --quiet -e '.[test,mutation]'
	nice -n 10 mutmut run $(MUTANTS)
	python tools/mutation_score.py $(MUTANTS)

# Opt-in: a throw-away one-node SLURM cluster on this machine (Debian, root), the tiny pipeline
# through profiles/slurm, then every daemon stopped again. Not part of `make test`.
.PHONY: test-slurm
test-slurm: install
	python -m pip install --quiet -e '.[test,cluster]'
	tests/slurm/setup_cluster.sh && VITAFF_SLURM_TESTS=1 python -m pytest -q -m slurm tests/test_slurm.py; \
	rc=$$?; tests/slurm/teardown_cluster.sh; exit $$rc
