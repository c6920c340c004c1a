# poolcli — `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
STAMP   = $(VENV)/.installed

.PHONY: install demo test test-fast bench fuzz clean

install: $(STAMP)

# torch: prefer a wheel already on this machine (pip's find-links) over a multi-GB download;
# `torch==2.13.0` matches a local 2.13.0+cpu wheel, and an ordinary machine falls back to PyPI.
$(STAMP): pyproject.toml setup.py poolcli/kernels/native/_pool.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "torch==2.13.0" || $(PIP) install -q torch
	$(PIP) install -q -e ".[test,ray]"
	touch $(STAMP)

demo: $(STAMP)
	mkdir -p demo_out
	$(VENV)/bin/poolcli pool sample_images/photo.jpg --kernel 2 --stride 2 -o demo_out/photo_pooled.jpg
	$(VENV)/bin/poolcli shape sample_images/photo.jpg -S "nn.MaxPool2d((2, 3), stride=(2, 3), padding=(0, 1))" -S avgpool:3,s=2,ceil=true

test: $(STAMP)
	$(PY) -m pytest -q -n 2

test-fast: $(STAMP)
	$(PY) -m pytest -q -n 2 -m "not slow and not ray"

# The long fuzz run, not part of `make test`: thousands of hypothesis examples per property and a
# corpus of thousands of mutated files (tests/corpus/make_corpus.py --mutations) through one batch.
FUZZ_EXAMPLES  ?= 5000
FUZZ_MUTATIONS ?= 60
fuzz: $(STAMP)
	POOLCLI_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) POOLCLI_FUZZ_CORPUS=$(FUZZ_MUTATIONS) \
		$(PY) -m pytest -q -n 2 tests/test_fuzz.py --timeout 3600

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache .hypothesis build *.egg-info
