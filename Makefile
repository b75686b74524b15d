# ragreel: `make demo` renders sample videos, `make test` runs the test suite.
# Both create .venv and install what they need on first use.

PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Questions per language that `make eval` answers with the LLM (each takes 1-1.5 min on 2 cores).
ANSWER_EVAL_LIMIT ?= 10

# llama.cpp's native build picks the CPU's AMX and AVX-512 kernels, which crash (SIGSEGV on the
# first prompt longer than a token) where the kernel or sandbox does not grant AMX. ragreel builds
# it for AVX2 instead, once per machine, into a wheel folder pip then installs from.
LLAMA_VERSION := 0.3.36
LLAMA_WHEELS  ?= $(HOME)/.cache/ragreel/wheels/llama-cpp-$(shell uname -m)
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF
endif

export HF_HUB_OFFLINE = 1
export DO_NOT_TRACK = 1

.PHONY: install demo test lint bench eval clean up down

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed (set PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	@echo "Installing ragreel and its models (first time: several minutes; llama.cpp compiles once)..."
	@ls $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1 || { \
		echo "Building llama.cpp $(LLAMA_VERSION) for this machine (once, about 4 minutes)..."; \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip wheel --quiet --no-deps --no-cache-dir \
			-w $(LLAMA_WHEELS) llama-cpp-python==$(LLAMA_VERSION); }
	$(PY) -m pip install --progress-bar off --find-links $(LLAMA_WHEELS) -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) -m flows.demo

# The whole stack on 127.0.0.1 (Prefect server, pool and deployments, a worker, the API and its web
# page) under supervisord; it prints the page's URL. `make down` stops all of it.
up: install
	bash deployments/up.sh

down:
	bash deployments/down.sh

# The deployment round trip also runs on PostgreSQL, and the web page test in Debian's chromium;
# installing them needs root (apt-get). Without it those cases are skipped, with the reason in
# pytest's summary.
test: install
	@if ! bash .ci/install-postgres.sh; then \
		echo "PostgreSQL is not available: the PostgreSQL round-trip case will be skipped."; \
		export RAGREEL_SKIP_POSTGRES=1; fi; \
	if ! bash .ci/install-browser.sh; then \
		echo "No browser: the web page test will be skipped."; \
		export RAGREEL_SKIP_BROWSER=1; fi; \
	$(PY) -m pytest || [ $$? -eq 5 ]

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

eval: install
	$(PY) -m bench.retrieval_eval
	$(PY) -m bench.answer_eval --limit $(ANSWER_EVAL_LIMIT)

bench: install
	$(PY) -m bench

clean:
	rm -rf .ragreel .pytest_cache
