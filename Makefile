# podnet. On a fresh Debian machine:
#   make demo    set up, bring a cluster up and show its control plane working
#   make test    set up, then lint, type-check, unit tests and (as root) integration tests
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV    := .venv
BIN     := $(VENV)/bin
PODNET  := $(BIN)/podnet
KUBECTL := $(BIN)/kubectl
PYTEST  := $(BIN)/pytest

.PHONY: help install demo test lint unit integration clean

help:
	@echo "make install      system packages and $(VENV) (idempotent)"
	@echo "make demo         install, podnet up, apply examples/, show it with podnet and kubectl"
	@echo "make test         install, lint, unit tests, then integration tests as root"
	@echo "make lint         ruff, mypy, lint-imports"
	@echo "make clean        remove caches and build leftovers (not $(VENV), not clusters)"

install:
	@scripts/install.sh

demo: install
	@$(PODNET) up
	@echo
	@echo '$$ podnet apply -f examples/'
	@$(PODNET) apply -f examples/
	@echo
	@echo '$$ podnet get namespaces'
	@$(PODNET) get namespaces
	@echo
	@echo '$$ podnet get pods -n demo -o wide'
	@$(PODNET) get pods -n demo -o wide
	@echo
	@echo '$$ podnet get services -n demo -o wide'
	@$(PODNET) get services -n demo -o wide
	@echo
	@echo '$$ kubectl --kubeconfig $$(podnet kubeconfig) get pods,services -A'
	@$(KUBECTL) --kubeconfig "$$($(PODNET) kubeconfig)" get pods,services -A
	@echo
	@echo "The control plane is up and serving the objects above. The pod stays Pending and the"
	@echo "services carry no traffic yet: nodes, the pod network and the services data plane"
	@echo "are not there yet."
	@echo
	@echo "Use it:   export KUBECONFIG=$$($(PODNET) kubeconfig)"
	@echo "          $(KUBECTL) get services -A"
	@echo "          $(PODNET) status"
	@echo "Stop it:  $(PODNET) down"

lint: install
	@$(BIN)/ruff check .
	@$(BIN)/mypy
	@$(BIN)/lint-imports --no-logo | tail -n 1

unit: install
	@$(PYTEST) -q tests/unit

# Integration tests start API servers (and later network namespaces): they need root. Not
# root and no password-less sudo: pytest runs them anyway and reports them skipped, with why.
integration: install
	@if [ "$$(id -u)" -eq 0 ]; then \
		$(PYTEST) -q -m integration tests/integration; \
	elif sudo -n true 2>/dev/null; then \
		sudo -E $(PYTEST) -q -m integration tests/integration; \
	else \
		$(PYTEST) -q -rs -m integration tests/integration; \
	fi

test: install lint unit integration

clean:
	@rm -rf .pytest_cache .mypy_cache .ruff_cache .benchmarks build ./*.egg-info
	@find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
