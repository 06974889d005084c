# Two entry points for a fresh machine: `make search` and `make test`.
# Both create .venv and install the project into it first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install search test lint typecheck bench gpu-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip >/dev/null
	$(BIN)/pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The default search within a time budget: under 5 minutes in all (docs/benchmarks.md).
search: $(STAMP)
	$(BIN)/vidtune search --time-budget 4m30s $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check .
	$(MAKE) --no-print-directory typecheck
	$(BIN)/python -m pytest $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

# mypy on the public API, data/, and the core and tune layers. The packages map into `vidtune` through setuptools'
# package-dir, which mypy cannot follow, so it reads them through a tree of symlinks.
MYPY_TREE := .mypy_tree
typecheck: $(STAMP)
	rm -rf $(MYPY_TREE) && mkdir -p $(MYPY_TREE)/vidtune
	ln -s ../../vidtune/__init__.py ../../vidtune/_lazy.py $(MYPY_TREE)/vidtune/
	for d in data search_spaces trainable analysis scripts; do ln -s ../../$$d $(MYPY_TREE)/vidtune/$$d; done
	cd $(MYPY_TREE) && ../$(BIN)/mypy --config-file ../pyproject.toml --cache-dir ../.mypy_cache \
		-m vidtune -m vidtune._lazy -p vidtune.data -p vidtune.trainable.core -p vidtune.trainable.tune

bench: $(STAMP)
	$(BIN)/python scripts/bench_data.py
	$(BIN)/python scripts/bench_search.py
	$(BIN)/python scripts/bench_race.py
	$(BIN)/python scripts/bench_race.py --budget 8m --spaces default,wide
	$(BIN)/python scripts/bench_rules.py
	$(BIN)/python scripts/bench_warm_start.py --uses all,full --jobs 2
	$(BIN)/python scripts/bench_warm_start.py --benchmark default --uses all,full --jobs 2
	$(BIN)/python scripts/bench_decode.py
	$(BIN)/python scripts/bench_scale.py

# On a CUDA machine: the CUDA tests, the memory probe, the data path's share and packed
# searches at 1-8 trials per GPU, in at most 8 minutes (docs/benchmarks.md, gpu_check).
gpu-check: $(STAMP)
	$(BIN)/python scripts/gpu_check.py $(ARGS)

clean:
	rm -rf $(VENV) results .cache $(MYPY_TREE) .mypy_cache
