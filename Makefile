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

.PHONY: setup test lint demo demo-gpu report bench bench-scale clean graphviz plan dag docs-plan

$(VENV)/.installed: pyproject.toml setup.py src/intervene/_docinfo.pyx src/intervene/_escapes.pyx
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[test]"
	# OLMo's and OLMo-core's code for the differential tests, without their declared dependencies
	# (numpy<2, wandb, ...); cached-path without its own (it would downgrade huggingface-hub): see
	# pyproject's [test]
	$(BIN)/pip install -q --no-deps ai2-olmo==0.6.0 ai2-olmo-core==2.4.0 cached-path==1.8.10
	touch $@

setup: $(VENV)/.installed graphviz

# graphviz's dot renders the plan's graphs (make dag): Debian's package where we may install it (root,
# or passwordless sudo, with apt-get), else one line saying how.
graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=no; fi; \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$SUDO" != no ]; then \
	    $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null && \
	    $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends graphviz >/dev/null \
	    || echo "graphviz: apt-get install graphviz failed; make dag writes the .dot files only"; \
	  else echo "graphviz's dot not found: install it for make dag (Debian/Ubuntu: sudo apt-get install graphviz; conda: conda install -c conda-forge graphviz)"; fi; }

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

# The plan before it runs (CONFIG: any config; PROFILE: the Slurm profile naming each rule's
# partition): `make plan` prints jobs per rule, GPU jobs, the windows and checkpoints of each
# intervention and the download size; `make dag` also renders the rule graph with job counts
# (rulegraph.*) and every job (dag.*) under results/plan/<config name>/. Both plan the whole
# experiment from nothing (a dry run in a scratch folder); `snakemake -n` prints what is left to run.
CONFIG ?= config/config.yaml
PROFILE ?= profiles/slurm
INTERVENE := PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/intervene
plan: setup
	@$(INTERVENE) plan --configfile $(CONFIG) --profile $(PROFILE)

dag: setup
	@$(INTERVENE) plan --configfile $(CONFIG) --profile $(PROFILE) --out results/plan/$(basename $(notdir $(CONFIG)))

# The README's picture of the full-scale 1B plan (tests/test_plan.py checks it is current).
docs-plan: setup
	$(INTERVENE) plan --configfile config/olmo2-1b.yaml --profile profiles/slurm --out results/plan/olmo2-1b
	mkdir -p docs/plan
	cp results/plan/olmo2-1b/rulegraph.dot docs/plan/olmo2-1b-rulegraph.dot
	cp results/plan/olmo2-1b/rulegraph.svg docs/plan/olmo2-1b-rulegraph.svg
	cp results/plan/olmo2-1b/plan.txt docs/plan/olmo2-1b-plan.txt

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
