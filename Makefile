# podnet. On a fresh Debian machine:
#   make demo    set up, bring a 3-node cluster up and show the network model with real packets
#   make test    set up, then lint, type-check, unit tests and (as root) integration tests
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV    := .venv
BIN     := $(VENV)/bin
PODNET  := $(BIN)/podnet
KUBECTL := $(BIN)/kubectl
PYTEST  := $(BIN)/pytest

.PHONY: help install demo test lint unit integration bench bench-cni bench-pods bench-up bench-net bench-proxy bench-nft bench-services bench-dns bench-policy bench-ingress bench-proxy-tail clean

help:
	@echo "make install      system packages and $(VENV) (idempotent)"
	@echo "make demo         install, bring a 3-node cluster up, show pods talking across nodes"
	@echo "make test         install, lint, unit tests, then integration tests as root"
	@echo "make lint         ruff, mypy, lint-imports"
	@echo "make bench        the control-plane benchmark (bench/README.md)"
	@echo "make bench-net    the pod network's benchmarks: CNI, pods/s, podnet up (root)"
	@echo "make bench-proxy  the service proxy's benchmark: 10,000 Services (root)"
	@echo "make bench-nft    one nft transaction: in-process (libnftables) vs an nft process (root)"
	@echo "make bench-services  Services on a live 2-node lab: 10 vs 10,000, ClusterIP vs pod IP (root)"
	@echo "make bench-dns    the cluster DNS on one core against Knot DNS, and its programming latency (root)"
	@echo "make bench-policy NetworkPolicy: 1,000 policies over 300 pods, one change, connects with vs without (root)"
	@echo "make bench-ingress the ingress: requests/s vs the pod, p99 added at half load, new Ingress to first 200 (root)"
	@echo "make bench-proxy-tail any reverse proxy's p99 on this machine: nginx alone vs HAProxy and nginx in front (root)"
	@echo "make clean        remove caches and build leftovers (not $(VENV), not clusters)"

install:
	@scripts/install.sh

demo: install
	@scripts/demo.sh

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

# Benchmarks are not tests: they print figures against baselines from the same run.
bench: install
	@$(BIN)/python -m bench.api_bench --wait-quiet 10 --json .benchmarks/api_bench.json $(BENCH_ARGS)

# The pod network's benchmarks (bench/README.md); they need root (network namespaces).
bench-cni: install
	@$(BIN)/python -m bench.cni_bench --wait-quiet 10 --json .benchmarks/cni_bench.json $(BENCH_ARGS)
bench-pods: install
	@$(BIN)/python -m bench.pods_bench --wait-quiet 10 --json .benchmarks/pods_bench.json $(BENCH_ARGS)
bench-up: install
	@bench/up_bench.sh --wait-quiet 10 --json .benchmarks/up_bench.json $(BENCH_ARGS)
bench-net: bench-cni bench-pods bench-up

# The service proxy's benchmark (bench/README.md): full sync and one change at 10,000 Services.
bench-proxy: install
	@$(BIN)/python -m bench.proxy_bench --wait-quiet 10 --json .benchmarks/proxy_bench.json $(BENCH_ARGS)

# One nft transaction's latency, in-process against `ip netns exec … nft -f -` (bench/README.md).
bench-nft: install
	@$(BIN)/python -m bench.nft_apply_bench --wait-quiet 10 --json .benchmarks/nft_apply_bench.json $(BENCH_ARGS)

# Services on a live lab (bench/README.md): first-connect latency at 10 vs 10,000 Services, and
# connection rate and throughput through a ClusterIP vs the pod IP. Needs iperf3 and wrk, which
# bench/install-tools.sh installs (benchmark-only: not part of `make install`).
bench-services: install
	@bench/install-tools.sh
	@$(BIN)/python -m bench.service_bench --wait-quiet 10 --json .benchmarks/service_bench.json $(BENCH_ARGS)

# The cluster DNS (bench/README.md): queries/s on one core against Knot DNS on the same core,
# p99 latency at half that load, and the DNS programming latency. Needs dnsperf and knot, which
# bench/install-tools.sh installs (benchmark-only: not part of `make install`).
bench-dns: install
	@bench/install-tools.sh
	@$(BIN)/python -m bench.dns_bench --wait-quiet 10 --json .benchmarks/dns_bench.json $(BENCH_ARGS)

# NetworkPolicy (bench/README.md): 1,000 policies over 300 pods programmed (offline and on a
# live 3-node lab), one policy change from the API until enforced, and connect() latency with
# 1,000 policies against none.
bench-policy: install
	@$(BIN)/python -m bench.policy_bench --wait-quiet 10 --json .benchmarks/policy_bench.json $(BENCH_ARGS)

# The ingress (bench/README.md): requests/s through HAProxy against straight to an nginx pod,
# the p99 latency it adds at half its peak, and a new Ingress until its first 200, under load.
# Needs wrk and nginx, which bench/install-tools.sh installs (benchmark-only).
bench-ingress: install
	@bench/install-tools.sh
	@$(BIN)/python -m bench.ingress_bench --wait-quiet 10 --json .benchmarks/ingress_bench.json $(BENCH_ARGS)

# What any reverse proxy adds to the tail on this machine, on one loopback, without the lab
# (bench/README.md): nginx alone against HAProxy and nginx as proxies in front of it.
bench-proxy-tail: install
	@bench/install-tools.sh
	@$(BIN)/python -m bench.proxy_tail_bench --wait-quiet 10 --json .benchmarks/proxy_tail_bench.json $(BENCH_ARGS)

clean:
	@rm -rf .pytest_cache .mypy_cache .ruff_cache .benchmarks build ./*.egg-info
	@find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
