# Two commands from a fresh clone (README "Quick start"):
#   make demo   set up .venv and run the main job on the embedded demo prior
#   make test   set up .venv, check format and lint (ruff), run the test suite (what CI runs)
# torch is chosen explicitly: the CPU wheel by default; for a CUDA build, e.g.
#   make test TORCH=torch TORCH_INDEX=https://download.pytorch.org/whl/cu121

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
PYTEST_ARGS ?=
# test processes (pytest-xdist): auto = one per CPU core; 0 runs the suite in this process
TEST_WORKERS ?= auto
BIN := $(VENV)/bin

.PHONY: install demo test format

$(VENV)/.installed: setup.cfg setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH)"
	$(BIN)/pip install -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/python -m sphinx.run +experiment=ood_faces

test: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

# ruff's formatting and safe lint fixes (configured in pyproject.toml), as make test checks them
format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
