#!/usr/bin/env bash
# Prepare this machine for podnet: the system packages it uses, then .venv with podnet and its
# test tools. Idempotent and quiet: it only installs what is missing, says what it does, and
# stops with an error message when something fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PACKAGES=(iproute2 nftables sqlite3 ca-certificates iputils-ping util-linux
          containernetworking-plugins gcc libc6-dev procps curl conntrack
          iputils-arping bind9-dnsutils haproxy)
VENV=.venv
STAMP="$VENV/.podnet-installed"   # newer than pyproject.toml once the install is done

say() { printf 'install: %s\n' "$*"; }
die() { printf 'install: error: %s\n' "$*" >&2; exit 1; }
trap 'die "failed at line $LINENO: $BASH_COMMAND"' ERR

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $*"
    fi
}

# Run a command with its output kept back; show the output only when it fails.
quietly() {
    local log
    log=$(mktemp)
    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        die "failed: $*"
    fi
    rm -f "$log"
}

installed() {
    dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed'
}

# -- system packages ------------------------------------------------------------------------

command -v dpkg >/dev/null 2>&1 || die "this script expects a Debian-like system (no dpkg)"

# A venv needs python3 (3.11 or later) with its venv module; Debian ships that separately.
if [ ! -x "$VENV/bin/python" ]; then
    command -v python3 >/dev/null 2>&1 || PACKAGES+=(python3)
    if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import ensurepip, venv' 2>/dev/null
    then
        PACKAGES+=(python3-venv)
    fi
fi

missing=()
for p in "${PACKAGES[@]}"; do
    installed "$p" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    quietly as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    quietly as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}"
fi

# -- the virtualenv -------------------------------------------------------------------------

if [ ! -x "$VENV/bin/python" ]; then
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "podnet needs Python 3.11 or later; python3 is $(python3 -V 2>&1)"
    say "creating $VENV"
    python3 -m venv "$VENV"
fi

if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
    say "installing podnet and its test tools into $VENV"
    quietly "$VENV/bin/python" -m pip install --disable-pip-version-check -e '.[test]'
    touch "$STAMP"
fi

# podnet-cni's fast path: the small C client a container runtime execs as podnet-cni; it hands
# the call to the node agent's CNI server (podnet/cni/server.py) and falls back to the Python
# plugin when no server answers.
if command -v cc >/dev/null 2>&1; then
    if [ ! -x "$VENV/bin/podnet-cni-shim" ] || [ tools/podnet-cni-shim.c -nt "$VENV/bin/podnet-cni-shim" ]; then
        say "compiling the podnet-cni shim"
        quietly cc -O2 -Wall -o "$VENV/bin/podnet-cni-shim" tools/podnet-cni-shim.c
    fi
fi
