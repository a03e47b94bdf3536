# digitlab — the verbs a newcomer types.
#   make demo   create .venv, install digitlab (no extras), run the lesson's pipeline on the bundled digits
#   make install  add every extra digitlab uses to .venv: the CNN (PyTorch), the drawing page, ONNX, Captum, Dask
#   make test   install the dev extras too, run every test
#   make notebooks  add Jupyter to what make install adds, and open the notebooks in JupyterLab
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
comma := ,
# This build of PyTorch is a CPU wheel already on disk on the project's machines; any torch>=2.2 works.
TORCH_SPEC ?= torch==2.13.0
# pip installs TORCH_SPEC (the wheel on disk is found by pip's settings only) and uv; uv installs the rest, a
# minute faster than pip in a fresh venv, with TORCH_SPEC pinned so that it keeps that torch. uv reads PyPI
# only: where it cannot (a mirror in pip's settings), pip installs instead. --compile-bytecode as pip does:
# where PYTHONDONTWRITEBYTECODE is set, nothing else ever writes the .pyc files.
TORCH_STAMP := $(VENV)/.torch-$(shell printf '%s' '$(TORCH_SPEC)' | md5sum | cut -c1-8)
install_extras = $(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python "$(TORCH_SPEC)" -e ".[$(1)]" \
	|| { echo "make: uv could not install them (above); pip will, more slowly"; \
	     $(BIN)/python -m pip install -q "$(TORCH_SPEC)" -e ".[$(1)]"; }

FUZZ_SECONDS ?= 60
API_FUZZ_CASES ?= 400
# make test runs the suite in TEST_JOBS processes (pytest-xdist), each test file whole in one of them, and
# every process they start with TEST_THREADS OpenMP threads: 2 x 1 keeps two cores busy without oversubscribing
TEST_JOBS ?= 2
TEST_THREADS ?= 1

.PHONY: demo test install dev notebooks bench fuzz clean help

help:
	@echo "make demo   - set up .venv and run the whole pipeline on the bundled 8x8 digits"
	@echo "make install - add the CNN (PyTorch), the drawing page (digitlab serve), ONNX, Captum and Dask to .venv"
	@echo "make notebooks - add Jupyter to what make install adds, and open notebooks/ in JupyterLab"
	@echo "make dev    - set up .venv with every extra and the dev tools, without running the tests"
	@echo "make test   - set up .venv with the dev extras and run the test suite (about 5 minutes on 2 cores)"
	@echo "make bench  - run the benchmarks in benchmarks/"
	@echo "make fuzz   - run each fuzz target for FUZZ_SECONDS (default 60) s; crashes land in fuzz-output/"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(TORCH_STAMP): | $(BIN)/python
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)" "uv>=0.4"
	@touch $@

# make demo needs none of the extras: digitlab and its own dependencies only (no PyTorch, web server or ONNX)
$(VENV)/.installed-base: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q "uv>=0.4"
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -e . \
	|| { echo "make: uv could not install them (above); pip will, more slowly"; $(BIN)/python -m pip install -q -e .; }
	@touch $@

# make install: every extra digitlab uses (the CNN, the drawing page and its ONNX export, explanations, Dask
# sweeps), not the dev tools; make test and make fuzz add theirs to these
EXTRAS := cnn$(comma)serve$(comma)onnx$(comma)explain$(comma)cluster
$(VENV)/.installed: pyproject.toml $(TORCH_STAMP)
	$(call install_extras,$(EXTRAS))
	@touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(call install_extras,$(EXTRAS)$(comma)dev)
	@touch $@

install: $(VENV)/.installed
	@echo "Installed: the CNN, the drawing page (digitlab serve), ONNX export, explanations, Dask sweeps."
	@echo "Next: $(BIN)/digitlab data fetch mnist, then $(BIN)/digitlab run --dataset mnist --model cnn"

dev: $(VENV)/.installed-dev

$(VENV)/.installed-notebooks: pyproject.toml $(VENV)/.installed
	$(call install_extras,$(EXTRAS)$(comma)notebooks)
	@touch $@

# as root (a container), Jupyter refuses to start without --allow-root
notebooks: $(VENV)/.installed-notebooks
	$(BIN)/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

demo: $(VENV)/.installed-base
	$(BIN)/digitlab run
	@echo "Next: make install adds the CNN (PyTorch) and the drawing page (digitlab serve)."

test: $(VENV)/.installed-dev
	OMP_NUM_THREADS=$(TEST_THREADS) $(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadfile

$(VENV)/.installed-fuzz: pyproject.toml $(VENV)/.installed-dev
	$(call install_extras,$(EXTRAS)$(comma)dev$(comma)fuzz)
	@touch $@

fuzz: $(VENV)/.installed-fuzz
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(BIN)/python fuzz/run.py
	DIGITLAB_API_FUZZ_CASES=$(API_FUZZ_CASES) DIGITLAB_API_FUZZ_SEED=random $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_api_fuzz.py

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/bench_run.py

clean:
	rm -rf $(VENV) runs build dist src/*.egg-info .pytest_cache .hypothesis fuzz-output
