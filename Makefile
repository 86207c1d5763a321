# Two commands on a fresh machine: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EDGEREC := $(VENV)/bin/edgerec
DEMO := runs/demo

.PHONY: install demo test lint clean arm64

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: the CPU build on local disk. A looser requirement pulls a CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	rm -rf $(DEMO)
	$(EDGEREC) train --config configs/demo.toml --out $(DEMO)/teacher
	for m in none de ftd htd; do \
		$(EDGEREC) distill --teacher $(DEMO)/teacher --method $$m --dim 8 --out $(DEMO)/student-$$m || exit 1; \
	done
	$(EDGEREC) compare $(DEMO)/teacher $(DEMO)/student-none $(DEMO)/student-de \
		$(DEMO)/student-ftd $(DEMO)/student-htd
	$(EDGEREC) export $(DEMO)/teacher --out $(DEMO)/exports/teacher
	$(EDGEREC) export $(DEMO)/student-htd --out $(DEMO)/exports/htd-fp32
	$(EDGEREC) export $(DEMO)/student-htd --out $(DEMO)/exports/htd-int8 --int8 --target x86-avx2
	$(EDGEREC) bench $(DEMO)/exports/teacher $(DEMO)/exports/htd-fp32 $(DEMO)/exports/htd-int8 \
		--device cpu --batch 1,64 --threads 1 --runs 200 --against-torch --out $(DEMO)/bench
	$(EDGEREC) sweep --config configs/sweeps/quick --out $(DEMO)/sweep

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check edgerec tests benchmarks
	$(VENV)/bin/ruff format --check edgerec tests benchmarks

# The emulated AArch64 environment for `edgerec bench --device arm64` (needs root, a few minutes).
arm64: install
	$(PY) -m edgerec.targets.arm64 setup

clean:
	rm -rf $(VENV) runs
