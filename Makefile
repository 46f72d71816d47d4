# make demo: set up .venv and run a real search on the embedded default data.
# make test: set up .venv if missing and run the whole test suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXTRAS ?= ray,nb201,nni,nlp,dev
# CPU torch pinned on machines without CUDA; with CUDA the range in pyproject.toml applies.
CONSTRAINTS := $(shell command -v nvidia-smi >/dev/null 2>&1 || echo "-c constraints-cpu.txt")
DEMO_OUT ?= runs/demo

.PHONY: demo test test-fast bench venv clean

$(BIN)/searchkd: pyproject.toml constraints-cpu.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(CONSTRAINTS) -e ".[$(EXTRAS)]"
	@touch $@

venv: $(BIN)/searchkd

demo: venv
	$(BIN)/searchkd search --space nb201 --proxy kd --strategy evolution --budget 100 --out $(DEMO_OUT) --resume
	@echo "searchkd is installed in $(VENV), not on PATH: run $(BIN)/searchkd --help, or . $(BIN)/activate first"

test: venv
	$(BIN)/python -m pytest -q

test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow and not ray"

clean:
	rm -rf $(VENV) runs .pytest_cache
