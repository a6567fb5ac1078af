# The two commands a new user runs: `make corpus` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= configs/corpus.yaml
# The CPU build of torch (a plain `torch` requirement pulls a multi-GB CUDA build). GPU machines:
# make install TORCH="torch --index-url https://download.pytorch.org/whl/cu126"
TORCH ?= torch==2.13.0
OUT ?= out
TRAIN_CONFIG ?= configs/train/tiny.yaml
# Runs a part's command and records it (command, wall time, versions) in $(OUT)/logs/runs.jsonl for report.html.
RECORD = $(PY) -m pipelines.report.record --out $(OUT)

.PHONY: install corpus test test-fast lint bench sample quality-model perplexity-model train finetune ablate report clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

corpus: install  ## run the corpus pipeline on the embedded sample corpus, then train the tokenizer and write token shards
	@$(RECORD) corpus -- $(PY) -m pipelines.corpus --config $(CONFIG) --out $(OUT)
	@$(RECORD) shards -- $(PY) -m pipelines.shards --config configs/shards.yaml --out $(OUT)
	@$(PY) -m pipelines.report --out $(OUT)

ablate: install  ## did each stage help? proxy models on corpus variants of data/ablate (CPU, ~23 min on 2 cores); writes $(OUT)/ablate
	$(PY) -m pipelines.ablate --config configs/ablate.yaml --set out=$(OUT)/ablate

report: install  ## rebuild $(OUT)/report.html from what $(OUT) holds
	$(PY) -m pipelines.report --out $(OUT)

test: install  ## the full suite, end-to-end tests included
	$(PY) -m pytest -q

lint: install  ## ruff check and ruff format --check (config in pyproject.toml; CI runs it before the tests)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test-fast: install  ## skip the slow end-to-end tests
	$(PY) -m pytest -q -m "not slow"

bench: install  ## throughput and accuracy benchmarks; writes docs/BENCHMARKS.md
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m bench.run_all

quality-model: install  ## retrain models/quality/ (the classifier quality filter) from configs/quality_model.yaml
	$(PY) -m pipelines.quality_model --config configs/quality_model.yaml

perplexity-model: install  ## retrain models/perplexity/ (the perplexity filter's n-gram models) from configs/perplexity_model.yaml
	$(PY) -m pipelines.perplexity_model --config configs/perplexity_model.yaml

sample: install  ## rebuild data/sample and tests/fixtures from ../shared/data
	$(PY) scripts/build_sample.py

train: install  ## pretrain the tiny model on out/shards (CPU, minutes); writes out/model and out/model/hf
	@test -f $(OUT)/shards/manifest.json || { echo "make train: no $(OUT)/shards yet; run 'make corpus' first"; exit 1; }
	@$(RECORD) pretrain -- $(PY) -m train.pretrain --config $(TRAIN_CONFIG) --set data.shards=$(OUT)/shards --set checkpoint.dir=$(OUT)/model
	@$(PY) -m pipelines.report --out $(OUT)

finetune: install  ## SFT (full) on data/finetune's Alpaca slices, then DPO (LoRA) on its preference pairs; writes out/finetune/hf
	@test -f $(OUT)/model/hf/tokenizer_config.json || { echo "make finetune: no $(OUT)/model yet; run 'make train' first"; exit 1; }
	rm -rf $(OUT)/finetune
	@$(RECORD) sft -- $(PY) -m train.finetune --config configs/finetune/sft.yaml --set base=$(OUT)/model --set checkpoint.dir=$(OUT)/finetune/sft
	@$(RECORD) dpo -- $(PY) -m train.finetune --config configs/finetune/dpo.yaml --set base=$(OUT)/finetune/sft --set checkpoint.dir=$(OUT)/finetune
	@$(PY) -m pipelines.report --out $(OUT)

clean:
	rm -rf $(OUT) .pytest_cache
