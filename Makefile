# Everything sets itself up from nothing: a venv in .venv, the package (and its Cython kernel)
# installed editable with the test tools.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is installed first, pinned for a fast CPU setup; on a GPU cluster pass e.g.
#   make setup TORCH_SPEC='torch==2.7.1'   (pyproject.toml only asks for torch>=2.4,<3)
TORCH_SPEC ?= torch==2.13.0
CORES ?= 2
SNAKEMAKE := PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake

.PHONY: setup test lint demo demo-gpu report bench bench-scale clean

$(VENV)/.installed: pyproject.toml setup.py src/intervene/_docinfo.pyx src/intervene/_escapes.pyx
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[test]"
	# OLMo's code for the differential tests, without its declared dependencies (numpy<2, wandb,
	# ...); cached-path without its own (it would downgrade huggingface-hub): see pyproject's [test]
	$(BIN)/pip install -q --no-deps ai2-olmo==0.6.0 cached-path==1.8.10
	touch $@

setup: $(VENV)/.installed

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/snakefmt --check Snakefile workflow
	$(SNAKEMAKE) --lint

test: lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest

# The whole experiment on the toy world; Snakemake's "N of M steps" lines are the progress display.
# Interrupted (Ctrl-C, a kill, kill -9), `make demo` again resumes: finished outputs are kept,
# training restarts from its last checkpoint, a killed run's lock is removed first (refused while a
# snakemake or intervene process still works in this folder: intervene.locks) and temporaries of
# killed jobs are swept when the workflow starts.
demo: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m intervene.locks
	$(SNAKEMAKE) --cores $(CORES) --rerun-incomplete --quiet rules host reason
	@echo "Outputs: results/world (toy world), results/data (data order, batches, doc info),"
	@echo "  results/train (original run; replay check: $$(grep -o '"passed": [a-z]*' results/train/replay_check.json)),"
	@echo "  results/eval (original run and re-runs), results/search, results/interventions, results/reruns."
	@echo "Report: results/report/summary.html (also summary.md, effects.png); snakemake's: make report"
	@echo "Headline (accuracy at the checkpoint after the rewritten window, 95% bootstrap CIs):"
	@sed 's/^/  /' results/report/headline.txt

# The GPU demo (config/gpu-demo.yaml): a larger toy world and a ~36M-parameter OLMo 2-shaped model,
# trained and evaluated on one CUDA GPU (make setup with a CUDA torch). On a machine without a
# package index: bash benchmarks/device_demo.sh OUTDIR (carried wheels; benchmarks/device_setup.sh).
GPU_JOBS ?= 6
demo-gpu: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m intervene.locks
	$(SNAKEMAKE) --configfile config/gpu-demo.yaml --cores $(CORES) --resources gpu=$(GPU_JOBS) --rerun-incomplete --quiet rules host reason
	PATH="$(CURDIR)/$(BIN):$$PATH" PYTHONPATH=. $(BIN)/python -m benchmarks.gpu_demo_summary --results results

report: setup
	$(SNAKEMAKE) --cores $(CORES) --report results/report/snakemake_report.html

# The search, matrices and BM25 benches read the real ParaRel from PARAREL (skipped without it).
bench: $(VENV)/.bench
	PATH="$(CURDIR)/$(BIN):$$PATH" INTERVENE_PARAREL="$(PARAREL)" $(BIN)/python -m benchmarks

# The scale benchmark (never part of `make test`; minutes to hours): OLMo-shaped data (the real dolma2
# tokenizer, fetched from the ai2-olmo wheel into benchmarks/out/), the real ParaRel from PARAREL,
# every CPU stage through Snakemake at each of SCALE_BATCHES batches of SCALE_GBS x SCALE_L tokens;
# prints SCALE lines, writes benchmarks/results/scale_*.md, scale.json and the resource fit the
# rules read (src/intervene/resources_fit.json). SCALE_COMMIT=rev measures that commit instead.
PARAREL ?= resources/pararel
SCALE_BATCHES ?= 3 10 30
SCALE_GBS ?= 1024
SCALE_L ?= 4096
SCALE_COMMIT ?=

$(VENV)/.bench: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install -q -e ".[bench]"
	touch $@

bench-scale: $(VENV)/.bench
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m benchmarks.scale --pararel "$(PARAREL)" \
		--batches $(SCALE_BATCHES) --gbs $(SCALE_GBS) --seq-len $(SCALE_L) \
		$(if $(SCALE_COMMIT),--commit $(SCALE_COMMIT)) --write-fit src/intervene/resources_fit.json

clean:
	rm -rf results/world results/data results/train results/olmo results/benchmarks results/eval \
		results/search results/interventions results/reruns results/report logs .snakemake
