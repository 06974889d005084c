# Two entry points for a fresh machine: `make search` and `make test`.
# Both create .venv and install the project into it first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install search test test-fast lint typecheck bench gpu-check gpu-fold gpu-wheels clean

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
	$(MAKE) --no-print-directory docs

# The suite without the real end-to-end runs (@pytest.mark.slow): the rules, the renders and the
# small real parts, in under 2 minutes on 2 cores. `make test` runs everything.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(ARGS)

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

# The user guide (mkdocs.yml, docs/) into site/: --strict fails on a broken link, anchor or
# nav entry. Phony: docs/ is also a folder.
.PHONY: docs
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The benchmarks (benchmarks/, beside the package): each writes its section of docs/benchmarks.md.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench_data
	$(BIN)/python -m benchmarks.bench_search
	$(BIN)/python -m benchmarks.bench_race
	$(BIN)/python -m benchmarks.bench_race --budget 8m --spaces default,wide
	$(BIN)/python -m benchmarks.bench_rules
	$(BIN)/python -m benchmarks.bench_warm_start --uses all,full --jobs 2
	$(BIN)/python -m benchmarks.bench_warm_start --benchmark default --uses all,full --jobs 2
	$(BIN)/python -m benchmarks.bench_decode
	$(BIN)/python -m benchmarks.bench_scale
	$(BIN)/python -m benchmarks.bench_throughput

# On a CUDA machine: the CUDA tests, the dtypes, the memory probe, the data path's share and
# packed trials at 1-8 per GPU, in at most 8 minutes (docs/benchmarks.md, part 6). It needs no
# .venv and no install: the device machine has python3 with torch but no Ray, PyAV or registry,
# so it runs this tree's code through a shim (.gpu_tree) and optuna from .whl/. Outputs go to
# $OUT (the device's return folder), else results/gpu_check; `make gpu-fold DIR=...` then
# writes them into docs/benchmarks.md. ARGS=--cpu runs the parts on the CPU at smoke sizes.
GPU_PYTHON := $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
gpu-check:
	PYTHONUNBUFFERED=1 $(GPU_PYTHON) benchmarks/gpu_check.py $(ARGS)

gpu-fold:
	@test -n "$(DIR)" || { echo "give the folder a device run wrote: make gpu-fold DIR=path/to/it"; exit 2; }
	$(GPU_PYTHON) benchmarks/gpu_check.py --fold $(DIR)

# The wheels gpu-check carries to the device machine (pure Python, 0.5 MB): optuna and what
# it imports that the machine lacks (docs/benchmarks.md, part 6).
gpu-wheels:
	$(GPU_PYTHON) -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
		--implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
		-d .whl optuna==5.0.0 colorlog==6.12.0

clean:
	rm -rf $(VENV) results .cache $(MYPY_TREE) .mypy_cache .gpu_tree
