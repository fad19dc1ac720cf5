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

.PHONY: setup test lint demo bench clean

$(VENV)/.installed: pyproject.toml setup.py src/intervene/_docinfo.pyx
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[test]"
	touch $@

setup: $(VENV)/.installed

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/snakefmt --check Snakefile workflow
	$(SNAKEMAKE) --lint

test: lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest

demo: setup
	$(SNAKEMAKE) --cores $(CORES)
	@echo "Demo outputs: results/world (toy world), results/data (data order, batches, doc info),"
	@echo "  results/train (original run checkpoints, replay_check.json: $$(grep -o '"passed": [a-z]*' results/train/replay_check.json))"
	@echo "  results/eval/original (predictions per checkpoint, labels.npz, learned.json, figures)"
	@echo "  results/search (term occurrences, term/pair matrices, BM25), results/interventions (selections)"

bench: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m benchmarks

clean:
	rm -rf results/world results/data results/train results/olmo results/benchmarks logs .snakemake
