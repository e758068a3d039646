#!/usr/bin/env bash
# `podnet up --nodes 3` timed with hyperfine, against `podnet up --nodes 0` (the control plane
# alone: state, certificates, the API server until it answers) measured in the same run.
#
#   bench/up_bench.sh [--runs N] [--json FILE] [--wait-quiet PCT]
#
# --wait-quiet PCT first waits (at most 300 s) until other processes use at most PCT% of a core.
#
# Each timed run starts from nothing: hyperfine's --prepare runs `podnet down` of the cluster
# before every run (untimed), and --cleanup downs both after each command's last run (hyperfine
# 1.15 has no per-run --conclude). The clusters live in
# a state root of their own under /tmp, with names and API ports of this run. Whatever happens
# (a failure, Ctrl-C, SIGTERM), the script's trap takes both clusters down, removes the state
# root and checks that no namespace or process of them is left.
#
# Needs root (podnet up --nodes creates network namespaces) and hyperfine; when hyperfine is
# missing it is installed with apt-get (Debian's package; a benchmark-only need).
set -euo pipefail

RUNS=10
JSON=""
QUIET=""
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS="$2"; shift 2 ;;
        --json) JSON="$2"; shift 2 ;;
        --wait-quiet) QUIET="$2"; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "up_bench: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$RUNS" in ''|*[!0-9]*) echo "up_bench: --runs wants a number" >&2; exit 2 ;; esac
if [ "$RUNS" -lt 2 ] || [ "$RUNS" -gt 50 ]; then
    echo "up_bench: --runs 2..50" >&2; exit 2
fi

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PY="$REPO/.venv/bin/python"
PODNET="$REPO/.venv/bin/podnet"
GOAL_S=3

if [ "$(id -u)" -ne 0 ]; then
    echo "up_bench: run it as root (podnet up --nodes creates network namespaces)" >&2
    exit 2
fi
if ! command -v hyperfine >/dev/null; then
    echo "up_bench: installing hyperfine (apt-get)" >&2
    apt-get install -y hyperfine >/dev/null 2>&1 \
        || { apt-get update >/dev/null && apt-get install -y hyperfine >/dev/null; }
fi

ROOT="$(mktemp -d /tmp/podnet-upbench-XXXXXX)"
TAG="$(head -c 3 /dev/urandom | od -An -tx1 | tr -d ' \n')"
N3="ub${TAG}n3"   # the 3-node cluster
N0="ub${TAG}n0"   # the control plane alone
export PODNET_STATE_ROOT="$ROOT"
# Ports below the kernel's source-port range, free now (podnet.cluster.state.ephemeral_port).
read -r P3 P0 < <("$PY" -c '
import sys; sys.path.insert(0, sys.argv[1])
from podnet.cluster.state import ephemeral_port
print(ephemeral_port("127.0.0.1"), ephemeral_port("127.0.0.1"))' "$REPO")
OUT_JSON="${JSON:-$ROOT/up_bench.json}"
mkdir -p "$(dirname "$OUT_JSON")"

cleanup() {
    local rc=$?
    trap '' INT TERM  # a second Ctrl-C must not cut the teardown short
    "$PODNET" --name "$N3" down >/dev/null 2>&1 || true
    "$PODNET" --name "$N0" down >/dev/null 2>&1 || true
    local left
    left="$(ip netns list | awk '{print $1}' | grep -E "^podnet-(${N3}|${N0})-" || true)"
    if [ -n "$left" ]; then
        echo "up_bench: namespaces left behind:" $left >&2
        rc=1
    fi
    if pgrep -f -- "--state-dir $ROOT/" >/dev/null; then
        echo "up_bench: processes left behind: $(pgrep -f -- "--state-dir $ROOT/" | tr '\n' ' ')" >&2
        rc=1
    fi
    rm -rf "$ROOT"
    exit "$rc"
}
HF=""  # hyperfine's pid, which is also its process group's (it runs under setsid)
stop_hyperfine() {
    if [ -n "$HF" ] && kill -0 "$HF" 2>/dev/null; then
        kill -TERM -- "-$HF" 2>/dev/null || true  # hyperfine and the podnet it runs
        wait "$HF" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'stop_hyperfine; exit 130' INT TERM

background() {  # % of a core other processes use, over 2 s (bench.api_bench's reading);
    # with a threshold, after waiting (at most 300 s) until it is at most that
    "$PY" -c 'import sys; sys.path.insert(0, sys.argv[1])
from bench.api_bench import wait_quiet
print(wait_quiet(float(sys.argv[2]) if sys.argv[2] else None, 300.0))' "$REPO" "${1:-}"
}

BG_BEFORE="$(background "$QUIET")"
echo "== podnet up benchmark: --nodes 3 vs --nodes 0, $RUNS runs each (hyperfine) =="
echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)); kernel $(uname -r); $("$PY" -V); $(hyperfine --version)"
echo "Other processes used ${BG_BEFORE}% of a core just before the run."
echo

# In a session of its own, in the background: a signal to this script is handled at once (bash
# runs traps only between foreground commands), and stops hyperfine and what it runs.
setsid hyperfine --runs "$RUNS" --warmup 1 --style basic \
    --export-json "$OUT_JSON" \
    --command-name "podnet up --nodes 3" \
    --cleanup "$PODNET --name $N3 down; $PODNET --name $N0 down" \
    --prepare "$PODNET --name $N3 down" \
    "$PODNET --name $N3 up --nodes 3 --port $P3" \
    --command-name "podnet up --nodes 0" \
    --prepare "$PODNET --name $N0 down" \
    "$PODNET --name $N0 up --nodes 0 --port $P0" &
HF=$!
wait "$HF"
HF=""

BG_AFTER="$(background)"
echo
"$PY" - "$OUT_JSON" "$GOAL_S" "$BG_BEFORE" "$BG_AFTER" <<'EOF'
import json, statistics, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
goal, before, after = float(sys.argv[2]), sys.argv[3], sys.argv[4]
n3, n0 = results["podnet up --nodes 3"], results["podnet up --nodes 0"]

def row(r):
    t = r["times"]
    return (f"median {statistics.median(t):.3f}s  mean {r['mean']:.3f}s ± {r['stddev']:.3f}  "
            f"min {r['min']:.3f}s  max {r['max']:.3f}s  ({len(t)} runs)")

m3, m0 = statistics.median(n3["times"]), statistics.median(n0["times"])
print(f"podnet up --nodes 3:  {row(n3)}")
print(f"podnet up --nodes 0:  {row(n0)}   (baseline: the control plane alone)")
print(f"ratio, medians:       {m3 / m0:.2f}x the control plane alone; the lab, 3 agents and "
      f"their Nodes Ready add {m3 - m0:.3f}s")
over = sum(t > goal for t in n3["times"])
print(f"goal <= {goal:g}s:         {'met' if m3 <= goal else 'MISSED'} at the median; "
      f"{over} of {len(n3['times'])} runs over (slowest {max(n3['times']):.3f}s). Anchors: k3d "
      f"~20s, kind ~33s until DNS answers (podnet has no cluster DNS yet)")
print(f"other processes: {before}% of a core before the run, {after}% after")
EOF
if [ -n "$JSON" ]; then
    echo "hyperfine's results: $OUT_JSON"
fi
