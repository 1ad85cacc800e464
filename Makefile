# One command builds the book, one passes the tests; both set up the environment first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: setup book test lab lint clean gpu-check

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[book,dev,mpi,grading]"
	touch $(STAMP)

book: $(STAMP)  ## execute every chapter (cached while unchanged) and build the HTML book into _build/html
	$(VENV)/bin/jupyter-book build . --config jupyter-book.yml --toc _toc.yml --warningiserror --keep-going
	@echo "Book: $(CURDIR)/_build/html/index.html"

# The book first, alone: its chapters time the engine against models and baselines, and other
# tests running beside them on the same cores would decide those timings. Then the rest, on two
# workers (--dist loadscope keeps each module on one worker). Both always run; either failing fails.
test: $(STAMP)  ## the whole suite: builds the book (every chapter executed), checks it in Chromium, then every other test
	MPLBACKEND=Agg OMP_NUM_THREADS=1 $(PY) -m pytest tests/test_book.py --timeout 900 -q; book=$$?; \
	MPLBACKEND=Agg OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadscope --timeout 900 -q \
	    --ignore tests/test_book.py; rest=$$?; \
	test $$book -eq 0 && test $$rest -eq 0

# Needs an NVIDIA GPU and its driver; installs CuPy (for the cuBLAS baseline) for this check only.
gpu-check: $(STAMP)  ## the CUDA kernels and the MLP step timed on a real GPU vs cuBLAS and bandwidth
	$(PY) -m mlsys.kernels.cuda.gpucheck --preflight
	$(PY) -m pip install --quiet "cupy-cuda12x>=13"
	MPLBACKEND=Agg $(PY) -m mlsys.kernels.cuda.gpucheck --out gpu-check.json

lab: $(STAMP)  ## JupyterLab on the chapters
	$(VENV)/bin/jupyter lab --notebook-dir=chapters --ServerApp.allow_root=True

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf _build .pytest_cache
