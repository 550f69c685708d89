# Two entry points for a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-all lint bench glyphs clean

setup: $(VENV)/.installed

# torch is pinned only where it is missing: an unpinned torch pulls CUDA wheels.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: setup
	$(VENV)/bin/qaconv demo

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -q -m "not slow"

test-all: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) -m benchmarks.run_all

# The glyph benchmark (docs/reproduction.md): its typefaces first, as root: apt-get install $(cat benchmarks/glyphs/packages.txt)
glyphs: setup
	$(PY) -m benchmarks.glyphs.build --out data/glyphs

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
