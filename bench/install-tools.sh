#!/usr/bin/env bash
# The benchmark-only tools, from Debian: iperf3 (throughput) and wrk (HTTP, new connections
# per request) for bench/service_bench.py; dnsperf (the DNS load generator) and knot (Knot DNS,
# the C authoritative server measured for the ratio) for bench/dns_bench.py; nginx (the fast
# backend pod behind the ingress) for bench/ingress_bench.py. Not part of scripts/install.sh:
# `make test` and the cluster itself never need them. Idempotent and quiet; installs only what
# is missing. The benchmarks run knotd and nginx themselves, with configurations of their own,
# in namespaces of their own: if installing knot or nginx started the package's own service,
# that service is stopped and disabled again.
set -euo pipefail

PACKAGES=(iperf3 wrk dnsperf knot nginx)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$p")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}
echo "install-tools: installing ${missing[*]}" >&2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >"$log" 2>&1; then
    # The package lists may be missing or stale: update them once and try again.
    if ! { as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
           && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
              --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
        cat "$log" >&2
        echo "install-tools: error: could not install ${missing[*]}" >&2
        exit 1
    fi
fi
for service in knot nginx; do
    [[ " ${missing[*]} " == *" $service "* ]] || continue
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        if systemctl is-enabled --quiet "$service.service" 2>/dev/null; then
            as_root systemctl disable --now --quiet "$service.service" || true
        fi
    elif [ -x "/etc/init.d/$service" ] && command -v update-rc.d >/dev/null; then
        # No systemd: the package's postinst may have started it with its init script.
        as_root "/etc/init.d/$service" stop >/dev/null 2>&1 || true
        as_root update-rc.d "$service" disable >/dev/null 2>&1 || true
    fi
done
