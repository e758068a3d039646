"""NetworkPolicy benchmarks: 1,000 policies over 300 pods programmed, one policy change from the
API until enforced, and connection latency with 1,000 policies against none, side by side in
one run.

    .venv/bin/python -m bench.policy_bench [--policies 1000] [--pods 300] [--json FILE]

The world (the same for both parts of figure 1): 13 namespaces, 300 pods, 1,000 policies.

    pb-0 .. pb-9   294 pods (`sleep`, declared ports http 8080, metrics 9090, grpc 50051 on
                   the backend tier, dns 5353/UDP on the caches), labels app (12 values), tier
                   (3), track; namespace labels team (4), env (3). 997 generated policies, 10
                   shapes in turn, seeded: pod selectors by app, by tier, `In` expressions and
                   {}; peers by pod, by namespace, pod AND namespace, ipBlocks with except;
                   named ports, port ranges (endPort), UDP; ingress, egress, both, deny-all
    pb-0           also bench-client (node-1) and bench-server (node-2, podnet's echo on 8080),
                   and two policies that allow bench-client -> bench-server:http (egress on
                   the client, ingress on the server): the pair of figure 3, isolated and
                   allowed, among the generated policies of pb-0
    pb-open        open-client (node-1), open-server (node-2, echo): no policy selects them
    pb-flip        flip-client (node-1), flip-server (node-2, echo) and the policy `flip`
                   (the 1,000th) selecting flip-server: figure 2 patches it

Figures, each with its baseline from the same run:

  1a  programmed, offline   compile_model + node_rules(node-1) + full_body + one nft transaction
                            (libnftables in-process, through podnet.proxy.nft.apply, as the
                            agent) into a scratch namespace of the run's own; the median of
                            --rounds rounds; goal <= 2 s
                            vs one bare transaction loading the same number of elements into a
                            plain named set (the floor of any layout)
  1b  programmed, live      a 3-node lab with the 300 pods; the policies POSTed (8 keep-alive
                            connections); the time from the last create's answer until every
                            node's policy-sync.json shows its resourceVersion; then node-1's
                            agent killed (SIGKILL) and restarted as the tests do
                            (lifecycle.up): took_ms of its first sync, read from its
                            policy-sync.json, and the proxy's full sync (which carries the
                            policy objects) from its log
                            vs the API's own time for the 1,000 creates
  2   one change            a probe in flip-client starts a non-blocking TCP connect to
                            flip-server every --probe-interval (2 ms); `flip`'s ingress rule
                            is patched between role=probe (allowed) and role=nobody (denied),
                            --flips times each way; latency = the start of the first probe
                            that sees the new state minus the moment just before the PATCH
                            (both CLOCK_MONOTONIC); goal p99 <= 100 ms
                            vs the PATCH's own round trip
  3   connection latency    connect() of fresh TCP connections, bench-client -> bench-server
                            (isolated by policies on both ends: every SYN goes through both
                            nodes' vmaps and sets) and open-client -> open-server (no policy),
                            interleaved one by one from one process, as service_bench does;
                            p50 and p99 ratio isolated/open; goal <= 1.1. The same two pairs
                            are measured before the policies exist: that ratio is what the two
                            pairs differ by without policy (placement, the machine)

Everything is removed whatever happens (errors, Ctrl-C, SIGTERM; a second Ctrl-C waits for the
teardown), and the run checks that no namespace or process of it is left. Needs root. Not a
test: nothing asserts on timings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import queue
import random
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: import this checkout's podnet
    sys.path.insert(0, str(REPO))

from bench.api_bench import (  # noqa: E402
    SIGNALS,
    Api,
    _terminate,
    busy_cpu_seconds,
    interruptible,
    log,
    machine,
    percentile,
    table,
    verdict,
    wait_quiet,
)
from bench.proxy_bench import tool_version  # noqa: E402
from bench.service_bench import CONNECT, run_json  # noqa: E402
from podnet.api.resources import Resource, lookup  # noqa: E402
from podnet.client.http import Client  # noqa: E402
from podnet.cluster import lifecycle  # noqa: E402
from podnet.cluster.state import ClusterState, ephemeral_port  # noqa: E402
from podnet.kernel import netns  # noqa: E402
from podnet.lab import names  # noqa: E402
from podnet.policy import model, render  # noqa: E402
from podnet.proxy import nft, proxier  # noqa: E402
from podnet.proxy.render import Table  # noqa: E402

GOAL_PROGRAMMED_S = 2.0
GOAL_CHANGE_P99_MS = 100.0
GOAL_CONNECT_RATIO = 1.1
Obj = dict[str, Any]

NODES = 3
APPS = ("web", "api", "db", "cache", "queue", "worker", "auth", "search", "billing", "mail",
        "report", "gateway")
TIERS = ("frontend", "backend", "data")
TEAMS = ("red", "blue", "green", "gold")
ENVS = ("prod", "staging", "dev")
SPREAD = 10  # namespaces pb-0 .. pb-9
MEASURED_NS, OPEN_NS, FLIP_NS = "pb-0", "pb-open", "pb-flip"
HTTP_PORT = 8080
FIXED_POLICIES = 3  # bench-server-ingress, bench-client-egress (pb-0) and flip (pb-flip)
STATUS_FILE = "policy-sync.json"
SET_CONNECT_PORTS = 10_000  # the connect client's first source port


# -- the world ------------------------------------------------------------------------------------


def spread_ns(i: int) -> str:
    return f"pb-{i % SPREAD}"


def namespaces() -> dict[str, dict[str, str]]:
    """Name -> labels, as the run creates them (kubernetes.io/metadata.name is the API's)."""
    out = {f"pb-{i}": {"team": TEAMS[i % len(TEAMS)], "env": ENVS[i % len(ENVS)],
                       "bench": "policy"} for i in range(SPREAD)}
    out[OPEN_NS] = {"bench": "policy", "env": "dev"}
    out[FLIP_NS] = {"bench": "policy", "env": "dev"}
    return out


def _port(name: str, number: int, protocol: str = "TCP") -> Obj:
    return {"name": name, "containerPort": number, "protocol": protocol}


def pod(ns: str, name: str, node: int, labels: dict[str, str], ports: list[Obj], *,
        echo: bool = False) -> Obj:
    """A pod bound to node-<node>: podnet's echo server (on every declared port) or `sleep`."""
    container: Obj = {"name": "main", "image": "podnet/echo" if echo else "debian",
                      "ports": ports}
    if not echo:
        container["command"] = ["sleep", "infinity"]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"namespace": ns, "name": name, "labels": labels},
            "spec": {"nodeName": names.node_name(node), "containers": [container],
                     "terminationGracePeriodSeconds": 0}}


def sleeper(k: int) -> Obj:
    app = APPS[k % len(APPS)]
    tier = TIERS[APPS.index(app) % len(TIERS)]
    ports = [_port("http", HTTP_PORT), _port("metrics", 9090)]
    if tier == "backend":
        ports.append(_port("grpc", 50051))
    if app == "cache":
        ports.append(_port("dns", 5353, "UDP"))
    return pod(spread_ns(k), f"p{k:03d}-{app}", k % NODES + 1,
               {"app": app, "tier": tier, "track": "canary" if k % 7 == 0 else "stable"}, ports)


SPECIAL = [
    pod(MEASURED_NS, "bench-client", 1, {"app": "bench-client", "tier": "frontend",
                                         "track": "stable"}, [_port("http", HTTP_PORT)]),
    pod(MEASURED_NS, "bench-server", 2, {"app": "bench-server", "tier": "backend",
                                         "track": "stable"}, [_port("http", HTTP_PORT)],
        echo=True),
    pod(OPEN_NS, "open-client", 1, {"app": "open-client"}, []),
    pod(OPEN_NS, "open-server", 2, {"app": "open-server"}, [_port("http", HTTP_PORT)], echo=True),
    pod(FLIP_NS, "flip-client", 1, {"app": "flip-client", "role": "probe"}, []),
    pod(FLIP_NS, "flip-server", 2, {"app": "flip-server"}, [_port("http", HTTP_PORT)], echo=True),
]


def pods(count: int) -> list[Obj]:
    """`count` pods: the six of the measured pairs and count - 6 sleepers."""
    return [*SPECIAL, *(sleeper(k) for k in range(count - len(SPECIAL)))]


def _labels(key: str, value: str) -> Obj:
    return {"matchLabels": {key: value}}


def _ns_named(name: str) -> Obj:
    return _labels("kubernetes.io/metadata.name", name)


DNS_RULE: Obj = {"to": [{"namespaceSelector": _ns_named("kube-system")}],
                 "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}


def _shape(kind: int, rng: random.Random) -> Obj:
    """The spec of a generated policy, podSelector aside; `kind` picks one of ten shapes."""
    app, other = rng.choice(APPS), rng.choice(APPS)
    team, n = rng.choice(TEAMS), rng.randrange(SPREAD)
    if kind == 0:  # from pods of one app, on the named port http
        return {"ingress": [{"from": [{"podSelector": _labels("app", app)}],
                             "ports": [{"port": "http"}]}]}
    if kind == 1:  # from every pod of a team's namespaces, on 9090
        return {"ingress": [{"from": [{"namespaceSelector": _labels("team", team)}],
                             "ports": [{"protocol": "TCP", "port": 9090}]}]}
    if kind == 2:  # pod AND namespace in one peer, a port range
        return {"ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "staging"]}]},
            "podSelector": _labels("tier", "frontend")}],
            "ports": [{"protocol": "TCP", "port": 8080, "endPort": 8090}]}]}
    if kind == 3:  # ipBlocks with except, a named port
        return {"ingress": [{"from": [
            {"ipBlock": {"cidr": "10.244.0.0/16", "except": [f"10.244.{n % NODES + 1}.0/24"]}},
            {"ipBlock": {"cidr": f"192.168.{rng.randrange(256)}.0/24"}}],
            "ports": [{"port": "metrics"}]}]}
    if kind == 4:  # deny all ingress
        return {"policyTypes": ["Ingress"]}
    if kind == 5:  # egress to pods of one app on a named and a numbered port, and DNS
        return {"policyTypes": ["Egress"],
                "egress": [{"to": [{"podSelector": _labels("app", other)}],
                            "ports": [{"port": "grpc"}, {"port": 8080}]}, DNS_RULE]}
    if kind == 6:  # egress to the internet on 443, not to private ranges
        return {"policyTypes": ["Egress"],
                "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [
                    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]}}],
                    "ports": [{"protocol": "TCP", "port": 443}]}, DNS_RULE]}
    if kind == 7:  # both: from the same namespace on any port, to a team's data tier
        return {"policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [{"podSelector": {}}]}],
                "egress": [{"to": [{"namespaceSelector": _labels("team", team),
                                    "podSelector": _labels("tier", "data")}],
                            "ports": [{"protocol": "TCP", "port": 5432},
                                      {"protocol": "TCP", "port": 6379}]}]}
    if kind == 8:  # UDP: a range and a named port, from every namespace
        return {"ingress": [{"from": [{"namespaceSelector": {}}],
                             "ports": [{"protocol": "UDP", "port": 5000, "endPort": 5100},
                                       {"protocol": "UDP", "port": "dns"}]}]}
    # from one other namespace, every port
    return {"ingress": [{"from": [{"namespaceSelector": _ns_named(f"pb-{n}")}]}]}


SHAPES = ("from-app", "from-team", "and-peer", "ipblock", "deny", "egress-app",
          "egress-web", "both", "udp", "from-ns")


def _pod_selector(rng: random.Random) -> Obj:
    r = rng.random()
    if r < 0.1:
        return {}
    if r < 0.4:
        return _labels("tier", rng.choice(TIERS))
    if r < 0.8:
        return _labels("app", rng.choice(APPS))
    return {"matchExpressions": [{"key": "app", "operator": "In",
                                  "values": sorted(rng.sample(APPS, 2))}]}


def policy(ns: str, name: str, spec: Obj) -> Obj:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"namespace": ns, "name": name}, "spec": spec}


def flip_rule(role: str) -> list[Obj]:
    """`flip`'s ingress: from pods labelled role=<role> in pb-flip, on 8080."""
    return [{"from": [{"podSelector": _labels("role", role)}],
             "ports": [{"protocol": "TCP", "port": HTTP_PORT}]}]


def policies(count: int, seed: int) -> list[Obj]:
    """`count` policies: count - 3 generated (seeded), then the three of the measured pairs."""
    rng = random.Random(seed)
    out = []
    for i in range(count - FIXED_POLICIES):
        kind = (i // SPREAD) % len(SHAPES)
        spec = {"podSelector": _pod_selector(rng), **_shape(kind, rng)}
        out.append(policy(spread_ns(i), f"p{i:04d}-{SHAPES[kind]}", spec))
    out.append(policy(MEASURED_NS, "bench-server-ingress", {
        "podSelector": _labels("app", "bench-server"),
        "ingress": [{"from": [{"podSelector": _labels("app", "bench-client")}],
                     "ports": [{"port": "http"}]}]}))
    out.append(policy(MEASURED_NS, "bench-client-egress", {
        "podSelector": _labels("app", "bench-client"), "policyTypes": ["Egress"],
        "egress": [{"to": [{"podSelector": _labels("app", "bench-server")}],
                    "ports": [{"protocol": "TCP", "port": HTTP_PORT}]}, DNS_RULE]}))
    out.append(policy(FLIP_NS, "flip", {"podSelector": _labels("app", "flip-server"),
                                        "ingress": flip_rule("probe")}))
    return out


def offline_pods(bodies: Sequence[Obj]) -> list[model.Pod]:
    """The pods as the enforcer holds them, with IPs from each node's podCIDR (10.244.<n>.0/24,
    in order of creation)."""
    out: list[model.Pod] = []
    used: dict[str, int] = {}
    for body in bodies:
        node = body["spec"]["nodeName"]
        used[node] = used.get(node, 1) + 1
        ip = f"10.244.{int(node.rsplit('-', 1)[1])}.{used[node]}"
        slim = model.pod_from_api({**body, "status": {"phase": "Running", "podIP": ip}})
        assert slim is not None
        out.append(slim)
    return out


# -- figure 1a: offline ---------------------------------------------------------------------------


def total_elements(rules: render.NodeRules) -> int:
    sets = [s for pods_ in (rules.ingress, rules.egress) for s in pods_.values()]
    return len(rules.ingress) + len(rules.egress) + sum(len(s.any) + len(s.ports) for s in sets)


def bare_set_script(ref: str, count: int) -> str:
    """One transaction: a table with one plain named set holding `count` addresses."""
    keys = [f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}" for i in range(count)]
    lines = [f"table {ref}", f"delete table {ref}",
             f"table {ref} {{\n\tset s {{\n\t\ttype ipv4_addr\n\t}}\n}}"]
    for i in range(0, count, 1000):
        lines.append(f"add element {ref} s {{ {', '.join(keys[i:i + 1000])} }}")
    return "\n".join(lines) + "\n"


def kernel_objects(ns: str, table_name: str) -> Obj:
    """Sets, maps and chains of the table as the kernel lists them, with element counts."""
    out = netns.run(netns.exec_argv(ns, ["nft", "-j", "list", "table", "ip", table_name]),
                    timeout=120).stdout
    sets: dict[str, int] = {}
    chains = 0
    for item in json.loads(out)["nftables"]:
        for kind in ("set", "map"):
            if kind in item:
                sets[item[kind]["name"]] = len(item[kind].get("elem", []))
        chains += "chain" in item
    return {"sets": sets, "chains": chains}


async def offline_phase(ns: str, cluster: str, world_pods: list[model.Pod],
                        spaces: dict[str, dict[str, str]], pols: list[Obj],
                        rounds: int, changes_n: int) -> Obj:
    """`rounds` full programs of node-1's policy objects and as many bare loads, alternating
    which goes first; the table is deleted (untimed) before each."""
    t = Table(f"podnet-{cluster}", "10.96.0.0/12", "10.244.0.0/16")
    floor_ref = f"ip podnet-{cluster}-floor"
    node = names.node_name(1)
    busy = Busy()
    ours: list[Obj] = []
    floor: list[float] = []
    rules = render.NodeRules({}, {})
    bare = ""
    for r in range(rounds):
        for which in ((0, 1) if r % 2 == 0 else (1, 0)):
            if which == 0:
                await nft.apply(ns, render_delete(t))
                t0 = time.perf_counter()
                with proxier.gc_paused():  # as the proxy's full sync, which carries ours
                    compiled = model.compile_model(world_pods, spaces, pols)
                    t1 = time.perf_counter()
                    rules = render.node_rules(compiled, node)
                    t2 = time.perf_counter()
                    script = render_delete(t) + render.full_body(t, rules)
                    t3 = time.perf_counter()
                await nft.apply(ns, script)
                t4 = time.perf_counter()
                ours.append({"compile_s": t1 - t0, "node_rules_s": t2 - t1,
                             "full_body_s": t3 - t2, "nft_s": t4 - t3, "total_s": t4 - t0,
                             "script_bytes": len(script)})
            else:
                if not bare:  # round 0 runs ours first: `rules` is there
                    bare = bare_set_script(floor_ref, total_elements(rules))
                t0 = time.perf_counter()
                await nft.apply(ns, bare)
                floor.append(time.perf_counter() - t0)
                await nft.apply(ns, f"delete table {floor_ref}\n")
        log(f"offline round {r + 1}/{rounds}: {ours[-1]['total_s']:.3f} s "
            f"(bare set {floor[-1]:.3f} s)")
    catch_up = await offline_catch_up(ns, t, world_pods, spaces, pols)
    changes = await offline_changes(ns, t, world_pods, spaces, pols, rules, changes_n)
    kernel = kernel_objects(ns, t.name)
    want_sets = {"pol-ingress": len(rules.ingress), "pol-egress": len(rules.egress)}
    for prefix, pods_ in (("pol-in", rules.ingress), ("pol-eg", rules.egress)):
        for ip, s in pods_.items():
            want_sets[f"{prefix}-{render.hex8(ip)}-any"] = len(s.any)
            want_sets[f"{prefix}-{render.hex8(ip)}-ports"] = len(s.ports)
    return {"rounds": ours, "bare_set_s": floor, "elements": total_elements(rules),
            "isolated": {"ingress": len(rules.ingress), "egress": len(rules.egress)},
            "any_elements": sum(len(s.any) for p in (rules.ingress, rules.egress)
                                for s in p.values()),
            "ports_elements": sum(len(s.ports) for p in (rules.ingress, rules.egress)
                                  for s in p.values()),
            "kernel_equal": kernel["sets"] == want_sets,
            "kernel_chains": kernel["chains"], "in_process": nft.in_process(),
            "machine_busy_pct": busy.pct(), "changes": changes, "catch_up": catch_up}


async def offline_catch_up(ns: str, t: Table, world_pods: list[model.Pod],
                           spaces: dict[str, dict[str, str]], pols: list[Obj]) -> Obj:
    """The table loaded with the first half of the policies (untimed), then the incremental
    transaction to all of them, as an agent's sync does when half of the creates came after
    its last one: render.incremental and nft timed apart. Leaves the table with them all."""
    node = names.node_name(1)
    half = render.node_rules(model.compile_model(world_pods, spaces, pols[:len(pols) // 2]),
                             node)
    await nft.apply(ns, render_delete(t) + render.full_body(t, half))
    new = render.node_rules(model.compile_model(world_pods, spaces, pols), node)
    t0 = time.perf_counter()
    script = render.incremental(t, half, new)
    t1 = time.perf_counter()
    await nft.apply(ns, script)
    t2 = time.perf_counter()
    return {"render_s": t1 - t0, "nft_s": t2 - t1, "script_bytes": len(script),
            "from_elements": total_elements(half), "to_elements": total_elements(new)}


async def offline_changes(ns: str, t: Table, world_pods: list[model.Pod],
                          spaces: dict[str, dict[str, str]], pols: list[Obj],
                          applied: render.NodeRules, n: int) -> Obj:
    """`n` changes of one policy that selects a pod of node-1 (bench-client-egress: its port
    8080 <-> 8081), each as the enforcer's sync does it: compile_model + node_rules of
    everything, render.incremental against what was applied, one nft transaction into the
    loaded table. The split says where a change's time goes without the API and the agents."""
    i = next(k for k, p in enumerate(pols) if p["metadata"]["name"] == "bench-client-egress")
    parts: dict[str, list[float]] = {"compile_s": [], "render_s": [], "nft_s": []}
    sizes = []
    node = names.node_name(1)
    for k in range(n):
        changed = json.loads(json.dumps(pols[i]))
        changed["spec"]["egress"][0]["ports"][0]["port"] = HTTP_PORT + (k + 1) % 2
        world = [*pols[:i], changed, *pols[i + 1:]]
        t0 = time.perf_counter()
        new = render.node_rules(model.compile_model(world_pods, spaces, world), node)
        t1 = time.perf_counter()
        script = render.incremental(t, applied, new)
        t2 = time.perf_counter()
        await nft.apply(ns, script)
        t3 = time.perf_counter()
        applied = new
        parts["compile_s"].append(t1 - t0)
        parts["render_s"].append(t2 - t1)
        parts["nft_s"].append(t3 - t2)
        sizes.append(len(script))
    return {**parts, "script_bytes": sizes}


def render_delete(t: Table) -> str:
    return f"table {t.ref}\ndelete table {t.ref}\n"


class Busy:
    """The whole machine's CPU use over a span, in % of one core."""

    def __init__(self) -> None:
        self.t0, self.b0 = time.monotonic(), busy_cpu_seconds()

    def pct(self) -> float:
        wall = time.monotonic() - self.t0
        return round(100 * (busy_cpu_seconds() - self.b0) / wall, 1) if wall else 0.0


# -- programs run inside pods ---------------------------------------------------------------------

# `probe IP PORT INTERVAL SECONDS`: a non-blocking TCP connect to IP:PORT every INTERVAL seconds
# for SECONDS; a connected one is closed with RST (no TIME_WAIT), a refused one is judged by its
# errno: EHOSTUNREACH is a policy's ICMP admin-prohibited. Prints a JSON line when it starts
# ({"ready": t}), one whenever the outcome differs from the last one ({"t": start of that
# probe, "state": allowed | denied | timeout | ERRNO, "at": when it was known}), and the counts
# at the end. Times are time.monotonic(), the clock the benchmark reads too.
PROBE = r'''
import errno, json, select, signal, socket, sys, time
ip, port, interval, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
linger = (1).to_bytes(4, "little") + (0).to_bytes(4, "little")
poll = select.poll()
pending = {}
mono = time.monotonic
last = None
counts = {}
def seen(t0, err):
    global last
    state = "allowed" if err == 0 else "denied" if err == errno.EHOSTUNREACH else \
        "timeout" if err is None else errno.errorcode.get(err, str(err))
    counts[state] = counts.get(state, 0) + 1
    if state != last:
        last = state
        print(json.dumps({"t": t0, "state": state, "at": mono()}), flush=True)
start = mono()
print(json.dumps({"ready": start}), flush=True)
end, nxt = start + seconds, start
try:
    while True:
        now = mono()
        if now >= end:
            break
        if now >= nxt:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            s.setblocking(False)
            t0 = mono()
            rc = s.connect_ex((ip, port))
            if rc == errno.EINPROGRESS:
                pending[s.fileno()] = (s, t0)
                poll.register(s, select.POLLOUT)
            else:
                seen(t0, rc)
                s.close()
            nxt += interval
            if nxt < now:
                nxt = now + interval
        for fd, _ in poll.poll(max(0.0, (nxt - mono()) * 1000)):
            s, t0 = pending.pop(fd)
            poll.unregister(fd)
            seen(t0, s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
            s.close()
        now = mono()
        for fd in [fd for fd, (_, t0) in pending.items() if now - t0 > 1.0]:
            s, t0 = pending.pop(fd)
            poll.unregister(fd)
            seen(t0, None)
            s.close()
finally:
    print(json.dumps({"done": counts, "seconds": mono() - start}), flush=True)
'''


# -- the lab --------------------------------------------------------------------------------------


class Lab:
    """A 3-node cluster of this run, and what the run made in it."""

    def __init__(self, name: str, root: Path) -> None:
        self.name, self.root = name, root
        self.state = ClusterState.locate(name, root)
        self.client: Client | None = None
        self.pods: dict[str, Obj] = {}  # "ns/name" -> the pod as the API has it, running
        self.next_port = SET_CONNECT_PORTS

    def res(self, kind: str) -> Resource:
        r = lookup(kind)
        assert r is not None
        return r

    def up(self) -> None:
        lifecycle.up(self.name, self.root, wait=120.0, port=ephemeral_port("127.0.0.1"),
                     nodes=NODES, out=io.StringIO())
        self.client = Client.from_state(self.state)

    def api(self) -> Api:
        return Api.from_state(self.state)

    def ip(self, key: str) -> str:
        return str(self.pods[key]["status"]["podIP"])

    def netns(self, key: str) -> str:
        return names.pod_netns(self.name, self.pods[key]["metadata"]["uid"])

    def status_path(self, node: str) -> Path:
        return self.state.node_dir(node) / STATUS_FILE

    def status(self, node: str) -> Obj | None:
        """The node's policy-sync.json, or None when there is none (yet)."""
        try:
            data = json.loads(self.status_path(node).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def ports(self, count: int) -> int:
        """The first of `count` source ports used by no connect of this run yet."""
        first, self.next_port = self.next_port, self.next_port + count
        if self.next_port > 65_000:
            raise RuntimeError("out of source ports for the connects")
        return first

    def down(self) -> list[str]:
        """Tear down; what is left of it (namespaces, processes)."""
        if self.client is not None:
            self.client.close()
        try:
            lifecycle.down(self.name, self.root, out=io.StringIO())
        finally:
            for p in lifecycle.find_servers(self.state):
                lifecycle.stop_process(p)
            for ps in lifecycle.find_agents(self.state).values():
                lifecycle.stop_processes(ps)
        left = [n for n in netns.names() if names.owns_netns(self.name, n)]
        left += [f"server pid {p}" for p in lifecycle.find_servers(self.state)]
        left += [f"agent pid {p}" for ps in lifecycle.find_agents(self.state).values()
                 for p in ps]
        return left


ICMP_RATELIMIT = "net.ipv4.icmp_ratelimit"


def lift_icmp_ratelimit(lab: Lab) -> dict[str, str]:
    """icmp_ratelimit 0 in every node's namespace; what it was.

    A node's kernel lets 6 destination-unreachables in a burst reach one host, then one a
    second (icmp_ratelimit 1000 ms, icmp_ratemask includes type 3). A probe that connects every
    2 ms from one client gets its first 6 denials as ICMP admin-prohibited and then, silently
    dropped, SYNs that look like timeouts: measured here, a change to "denied" was seen 0.7 s
    late. The policy tests' own lab sets the same (tests/integration/test_policy_nft.py)."""
    was = {}
    for i in range(NODES):
        ns = names.node_netns(lab.name, names.node_name(i + 1))
        was[ns] = netns.run(netns.exec_argv(ns, ["sysctl", "-n", ICMP_RATELIMIT])).stdout.strip()
        netns.sysctl(ns, ICMP_RATELIMIT, "0")
    return was


def key(obj: Obj) -> str:
    return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"


def wait_for(what: str, fn: Callable[[], Any], timeout: float, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


def collection(api: Api, obj: Obj) -> str:
    kind, ns = obj["kind"], obj["metadata"].get("namespace")
    if kind == "Namespace":
        return f"{api.base}/api/v1/namespaces"
    if kind == "Pod":
        return f"{api.base}/api/v1/namespaces/{ns}/pods"
    return f"{api.base}/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"


async def post_all(api: Api, bodies: Sequence[Obj], concurrency: int) -> Obj:
    """POST every body, `concurrency` keep-alive connections; the highest resourceVersion of
    the answers, and when the first was sent and the last answered (time.monotonic())."""
    todo = iter(bodies)
    errors: list[str] = []
    rvs: list[int] = []
    done_at: list[float] = []

    async def worker(s: aiohttp.ClientSession) -> None:
        for body in todo:
            async with s.post(collection(api, body), data=orjson.dumps(body),
                              headers={"Content-Type": "application/json"}) as r:
                raw = await r.read()
                done_at.append(time.monotonic())
                if r.status != 201:
                    errors.append(f"{key(body) if body['kind'] != 'Namespace' else ''}: "
                                  f"{r.status} {raw[:300]!r}")
                    continue
                rvs.append(int(orjson.loads(raw)["metadata"]["resourceVersion"]))

    async def all_of_them() -> None:
        async with api.session(concurrency) as s:
            await asyncio.gather(*(worker(s) for _ in range(concurrency)))

    t0 = time.monotonic()
    await interruptible(all_of_them())
    if errors:
        raise RuntimeError(f"{len(errors)} creates failed, e.g. {errors[:3]}")
    return {"count": len(bodies), "first_sent": t0, "last_done": max(done_at),
            "seconds": round(max(done_at) - t0, 3), "max_rv": max(rvs)}


def create_world(lab: Lab, world_pods: list[Obj], spaces: dict[str, dict[str, str]],
                 concurrency: int, timeout: float) -> Obj:
    """Namespaces, then the pods, until every pod runs with an IP."""
    ns_bodies = [{"apiVersion": "v1", "kind": "Namespace",
                  "metadata": {"name": n, "labels": labels}} for n, labels in spaces.items()]
    asyncio.run(post_all(lab.api(), ns_bodies, 4))
    made = asyncio.run(post_all(lab.api(), world_pods, concurrency))
    wanted = {key(p) for p in world_pods}
    assert lab.client is not None
    client = lab.client

    def running() -> dict[str, Obj] | None:
        have = {key(p): p for p in client.list(lab.res("Pod"))["items"] if key(p) in wanted}
        ok = [k for k, p in have.items() if (p.get("status") or {}).get("podIP")
              and p["status"].get("phase") == "Running"]
        if len(ok) == len(wanted):
            return have
        log(f"{len(ok)} of {len(wanted)} pods running")
        return None

    lab.pods = wait_for("the pods to run", running, timeout, every=2.0)
    return {"created_s": made["seconds"],
            "running_s": round(time.monotonic() - made["first_sent"], 1)}


def wait_synced(lab: Lab, rv: int, timeout: float, every: float = 0.005) -> dict[str, float]:
    """When (time.monotonic()) each node's policy-sync.json first showed resourceVersion >= rv."""
    seen: dict[str, float] = {}
    nodes = [names.node_name(i + 1) for i in range(NODES)]
    deadline = time.monotonic() + timeout
    while len(seen) < len(nodes):
        for node in nodes:
            if node not in seen:
                st = lab.status(node)
                if st is not None and int(st.get("resourceVersion") or 0) >= rv:
                    seen[node] = time.monotonic()
        if time.monotonic() > deadline:
            raise RuntimeError(f"after {timeout:g}s only {sorted(seen)} show resourceVersion "
                               f"{rv}: {[lab.status(n) for n in nodes]}")
        time.sleep(every)
    return seen


def agent_rss_mb(lab: Lab) -> dict[str, float]:
    out = {}
    for node, pids in lifecycle.find_agents(lab.state).items():
        out[node] = round(sum(status_kb(p) for p in pids) / 1024, 1)
    return out


def status_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def mem_available_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return 0


# -- figure 1b: the policies created, and an agent restarted -------------------------------------


FULL_SYNC_LINE = re.compile(r"proxy: full sync, (\d+) services in ([\d.]+) ms")
POLICY_LINE = re.compile(r"policy: (\d+) policies over (\d+) pods compiled in ([\d.]+) ms, "
                         r"applied in ([\d.]+) ms")
# the same line's breakdown of "applied": lock wait, render, nft, of which libnftables
POLICY_PARTS = re.compile(r"applied in [\d.]+ ms \(lock wait ([\d.]+), render ([\d.]+), "
                          r"nft ([\d.]+) of which libnftables ([\d.]+)")


def log_offsets(lab: Lab) -> dict[str, int]:
    return {names.node_name(i + 1): lab.state.agent_log(names.node_name(i + 1)).stat().st_size
            for i in range(NODES)}


def logged_since(lab: Lab, offsets: dict[str, int]) -> dict[str, str]:
    """What each node's agent logged since `offsets`."""
    out = {}
    for node, offset in offsets.items():
        with open(lab.state.agent_log(node), "rb") as f:
            f.seek(offset)
            out[node] = f.read().decode(errors="replace")
    return out


def policy_syncs(lab: Lab, offsets: dict[str, int]) -> dict[str, list[tuple[float, float]]]:
    """(compile ms, the rest ms) of each policy sync the agents logged since `offsets`."""
    return {node: [(float(c), float(a)) for _, _, c, a in POLICY_LINE.findall(text)]
            for node, text in logged_since(lab, offsets).items()}


def policy_sync_parts(lab: Lab, offsets: dict[str, int]) -> dict[str, list[list[float]]]:
    """[lock wait, render, nft, libnftables] ms of each policy sync logged since `offsets`."""
    return {node: [[float(x) for x in m] for m in POLICY_PARTS.findall(text)]
            for node, text in logged_since(lab, offsets).items()}


def create_policies(lab: Lab, pols: list[Obj], concurrency: int, timeout: float) -> Obj:
    busy = Busy()
    offsets = log_offsets(lab)
    made = asyncio.run(post_all(lab.api(), pols, concurrency))
    synced = wait_synced(lab, made["max_rv"], timeout)
    last = max(synced.values())
    time.sleep(0.2)  # the log line follows the status file
    syncs = policy_syncs(lab, offsets)
    return {"count": made["count"], "api_s": made["seconds"], "max_rv": made["max_rv"],
            "after_last_create_s": {n: round(t - made["last_done"], 3)
                                    for n, t in sorted(synced.items())},
            "all_after_last_create_s": round(last - made["last_done"], 3),
            "all_after_first_create_s": round(last - made["first_sent"], 3),
            "status": {n: lab.status(n) for n in sorted(synced)},
            "agent_syncs": syncs, "machine_busy_pct": busy.pct()}


def gone(pids: list[int]) -> bool:
    """Every one of `pids` has exited (reaped when it is this run's child)."""
    for pid in pids:
        lifecycle.reap(pid)
    return not any(lifecycle.pid_alive(p) for p in pids)


def restart_agent(lab: Lab, node: str, rv: int, timeout: float) -> Obj:
    """Kill the node's agent (SIGKILL: its pods and table stay), start it again as the tests
    do (lifecycle.up), and follow its policy-sync.json until the first sync after the restart
    has landed and the node has caught up with `rv`."""
    path = lab.status_path(node)
    before = path.stat()
    log_path = lab.state.agent_log(node)
    offset = log_path.stat().st_size
    pids = lifecycle.find_agents(lab.state).get(node, [])
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    wait_for(f"agent {pids} gone", lambda: gone(pids), 10, every=0.01)
    seen: dict[str, Any] = {}
    stop = threading.Event()

    def follow() -> None:
        last = (before.st_ino, before.st_mtime_ns)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                st = path.stat()
                if (st.st_ino, st.st_mtime_ns) != last:
                    last = (st.st_ino, st.st_mtime_ns)
                    data = lab.status(node)
                    if data is not None:
                        now = time.monotonic()
                        seen.setdefault("first", (now, data))
                        if int(data.get("resourceVersion") or 0) >= rv:
                            seen["caught_up"] = (now, data)
                            return
            time.sleep(0.002)

    watcher = threading.Thread(target=follow, daemon=True)
    watcher.start()
    t0 = time.monotonic()
    lifecycle.up(lab.name, lab.root, wait=120.0, out=io.StringIO())
    t_up = time.monotonic()
    watcher.join(timeout)
    stop.set()
    if "caught_up" not in seen:
        raise RuntimeError(f"{node}'s agent did not catch up within {timeout:g}s: "
                           f"{lab.status(node)}")
    # The status file is written inside the full sync, the proxy's log line right after it.
    text = ""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = logged_since(lab, {node: offset})[node]
        if FULL_SYNC_LINE.search(text):
            break
        time.sleep(0.05)
    full = FULL_SYNC_LINE.search(text)
    first_t, first = seen["first"]
    return {"log_head": "" if full else text[:3000],
            "node": node, "killed": pids, "up_returned_s": round(t_up - t0, 3),
            "first_status_s": round(first_t - t0, 3), "first_status": first,
            "caught_up_s": round(seen["caught_up"][0] - t0, 3),
            "proxy_full_sync_ms": float(full.group(2)) if full else None,
            "policy_lines": POLICY_LINE.findall(text)[:5]}


# -- figure 3: connection latency -----------------------------------------------------------------

PAIRS = {"isolated": (f"{MEASURED_NS}/bench-client", f"{MEASURED_NS}/bench-server"),
         "open": (f"{OPEN_NS}/open-client", f"{OPEN_NS}/open-server")}


def connect_targets(lab: Lab) -> dict[str, str]:
    out = {name: f"{netns.path(lab.netns(c))},{lab.ip(s)}:{HTTP_PORT}"
           for name, (c, s) in PAIRS.items()}
    out["loopback"] = f"{netns.path(lab.netns(PAIRS['open'][0]))},lo"
    return out


def connect_latency(lab: Lab, n: int) -> Obj:
    """connect() times of the two pairs and a loopback listener, interleaved one by one."""
    targets = connect_targets(lab)
    argv = [sys.executable, "-I", "-S", "-c", CONNECT]
    k = len(targets)
    run_json([*argv, "50", str(lab.ports(50 * k)), *targets.values()], 120)  # warm-up
    busy = Busy()
    got = run_json([*argv, str(n), str(lab.ports(n * k)), *targets.values()], 900)
    return {"times": {name: got["times"][t] for name, t in targets.items()},
            "errors": {name: got["errors"][t] for name, t in targets.items()
                       if got["errors"][t]},
            "machine_busy_pct": busy.pct()}


def live_model(lab: Lab) -> model.PolicyModel:
    """The model compiled from the objects as the API has them now (what every agent does)."""
    assert lab.client is not None
    c = lab.client
    slim = [p for p in (model.pod_from_api(o) for o in c.list(lab.res("Pod"))["items"]) if p]
    spaces = {o["metadata"]["name"]: dict(o["metadata"].get("labels") or {})
              for o in c.list(lab.res("Namespace"))["items"]}
    return model.compile_model(slim, spaces, c.list(lab.res("NetworkPolicy"))["items"])


CHECKS = [(f"{MEASURED_NS}/bench-client", f"{MEASURED_NS}/bench-server"),
          (f"{OPEN_NS}/open-client", f"{OPEN_NS}/open-server"),
          (f"{OPEN_NS}/open-client", f"{MEASURED_NS}/bench-server"),
          (f"{MEASURED_NS}/bench-client", f"{OPEN_NS}/open-server"),
          (f"{FLIP_NS}/flip-client", f"{FLIP_NS}/flip-server")]


def check_enforced(lab: Lab) -> list[Obj]:
    """A few pairs: the analyzer's verdict (model.decide) against one real connect each."""
    m = live_model(lab)
    targets = [f"{netns.path(lab.netns(c))},{lab.ip(s)}:{HTTP_PORT}" for c, s in CHECKS]
    got = run_json([sys.executable, "-I", "-S", "-c", CONNECT, "1",
                    str(lab.ports(len(targets))), *targets], 60)
    out = []
    for (c, s), t in zip(CHECKS, targets, strict=True):
        real = "allowed" if got["times"][t] else \
            ("denied" if "EHOSTUNREACH" in got["errors"][t] else str(got["errors"][t]))
        want = "allowed" if model.decide(m, c, s, "TCP", HTTP_PORT).allowed else "denied"
        out.append({"from": c, "to": s, "model": want, "kernel": real, "agree": want == real})
    return out


def measured_path(lab: Lab) -> Obj:
    """What the isolated pair's SYN meets in the nodes' tables, from the model."""
    m = live_model(lab)
    c, s = PAIRS["isolated"]
    cip, sip = m.pods[c].pod.ip, m.pods[s].pod.ip
    assert cip is not None and sip is not None
    eg = render.node_rules(m, m.pods[c].pod.node).egress.get(cip)
    ing = render.node_rules(m, m.pods[s].pod.node).ingress.get(sip)

    def where(sets: render.PodSets | None, remote: int) -> str:
        if sets is None:
            return "not isolated"
        if any(r.lo <= remote <= r.hi for r in sets.any):
            return "hit in -any"
        return "miss in -any, then -ports"

    rules_1 = render.node_rules(m, m.pods[c].pod.node)
    rules_2 = render.node_rules(m, m.pods[s].pod.node)
    return {"client_egress_isolated_by": len(m.pods[c].egress_isolated_by),
            "server_ingress_isolated_by": len(m.pods[s].ingress_isolated_by),
            "client_egress_sets": [len(eg.any), len(eg.ports)] if eg else None,
            "server_ingress_sets": [len(ing.any), len(ing.ports)] if ing else None,
            "client_side": where(eg, sip), "server_side": where(ing, cip),
            "vmaps_client_node": [len(rules_1.ingress), len(rules_1.egress)],
            "vmaps_server_node": [len(rules_2.ingress), len(rules_2.egress)]}


# -- figure 2: one change, API until enforced -----------------------------------------------------


class Probe:
    """The probe program running in a pod, its lines read into a queue by a thread."""

    def __init__(self, ns: str, ip: str, interval: float, seconds: float) -> None:
        argv = netns.exec_argv(ns, [sys.executable, "-I", "-S", "-c", PROBE, ip,
                                    str(HTTP_PORT), str(interval), str(seconds)])
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.lines: queue.Queue[Obj] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.lines.put(json.loads(line))

    def next(self, deadline: float) -> Obj:
        try:
            return self.lines.get(timeout=max(0.001, deadline - time.monotonic()))
        except queue.Empty:
            raise RuntimeError(f"the probe said nothing in time (exit {self.proc.poll()}, "
                               f"stderr {self._stderr()!r})") from None

    def until(self, state: str, deadline: float) -> tuple[Obj, list[Obj]]:
        """The first line reporting `state`, and the lines before it."""
        before: list[Obj] = []
        while True:
            line = self.next(deadline)
            if line.get("state") == state:
                return line, before
            before.append(line)

    def drain(self) -> list[Obj]:
        out = []
        with contextlib.suppress(queue.Empty):
            while True:
                out.append(self.lines.get_nowait())
        return out

    def _stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read()[-500:]

    def stop(self) -> Obj:
        """End the probe (it is this run's child); its final counts, when it printed them."""
        if self.proc.poll() is None:
            self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(5)
        return next((x for x in self.drain() if "done" in x), {})


def flips(lab: Lab, n: int, interval: float, pause: float, seed: int) -> Obj:
    """`n` times allowed -> denied -> allowed, patching `flip`'s ingress rule."""
    assert lab.client is not None
    client, res = lab.client, lab.res("NetworkPolicy")
    server_node = lab.pods[f"{FLIP_NS}/flip-server"]["spec"]["nodeName"]
    rng = random.Random(seed)
    probe = Probe(lab.netns(f"{FLIP_NS}/flip-client"), lab.ip(f"{FLIP_NS}/flip-server"),
                  interval, seconds=60 + 2 * n * (pause * 2 + 10))
    busy = Busy()
    offsets = log_offsets(lab)
    changes: list[Obj] = []
    flaps = 0
    try:
        ready = probe.next(time.monotonic() + 30)
        if "ready" not in ready:
            raise RuntimeError(f"the probe did not start: {ready}")
        probe.until("allowed", time.monotonic() + 10)
        time.sleep(0.2)
        for i in range(2 * n):
            want = "denied" if i % 2 == 0 else "allowed"
            flaps += sum(1 for x in probe.drain() if "state" in x)
            t_write = time.monotonic()
            out = client.patch(res, FLIP_NS, "flip",
                               {"spec": {"ingress": flip_rule(
                                   "nobody" if want == "denied" else "probe")}})
            t_api = time.monotonic() - t_write
            rv = int(out["metadata"]["resourceVersion"])
            line, before = probe.until(want, t_write + 30)
            synced = wait_synced(lab, rv, 60, every=0.002)
            st = lab.status(server_node) or {}
            changes.append({"to": want, "latency_s": line["t"] - t_write, "api_s": t_api,
                            "known_s": line["at"] - t_write,
                            "all_synced_s": max(synced.values()) - t_write,
                            "server_node_took_ms": st.get("took_ms"),
                            "odd_lines": before})
            time.sleep(pause * (0.5 + rng.random()))
    finally:
        counts = probe.stop()
    time.sleep(0.2)  # the last log line follows the status file
    return {"changes": changes, "flaps": flaps, "probe": counts, "interval_s": interval,
            "server_node": server_node, "machine_busy_pct": busy.pct(),
            "server_node_syncs": policy_syncs(lab, offsets)[server_node],
            "server_node_sync_parts": policy_sync_parts(lab, offsets)[server_node]}


# -- the run --------------------------------------------------------------------------------------


def uptime() -> str:
    return tool_version(["uptime"])


def live(lab: Lab, args: argparse.Namespace, world_pods: list[Obj],
         spaces: dict[str, dict[str, str]], pols: list[Obj], run: Obj) -> None:
    run["mem_available_mb"] = {"before": mem_available_mb()}
    log(f"bringing up {lab.name} ({NODES} nodes) under {lab.root}")
    t0 = time.monotonic()
    lab.up()
    run["lab_up_s"] = round(time.monotonic() - t0, 1)
    if not args.keep_icmp_ratelimit:
        run["icmp_ratelimit_was"] = lift_icmp_ratelimit(lab)
    log(f"creating {len(spaces)} namespaces and {len(world_pods)} pods")
    run["pods"] = create_world(lab, world_pods, spaces, args.concurrency, args.timeout)
    run["mem_available_mb"]["pods_running"] = mem_available_mb()
    log(f"{len(world_pods)} pods running after {run['pods']['running_s']} s")

    time.sleep(args.settle)
    run["load_before_connects_1"] = {"uptime": uptime(),
                                     "other_pct": wait_quiet(args.wait_quiet_lab,
                                                             args.wait_quiet_max)}
    log(f"connect latency, no policy yet: {args.connects} x 3, interleaved")
    run["connect_before"] = connect_latency(lab, args.connects)

    log(f"creating {len(pols)} policies through the API ({args.concurrency} connections)")
    run["policies"] = create_policies(lab, pols, args.concurrency, args.timeout)
    run["mem_available_mb"]["policies"] = mem_available_mb()
    run["agent_rss_mb"] = agent_rss_mb(lab)
    log(f"every node enforces them {run['policies']['all_after_last_create_s']} s after the "
        "last create")
    run["checks"] = check_enforced(lab)
    run["path"] = measured_path(lab)

    time.sleep(args.settle)
    run["load_before_restart"] = {"uptime": uptime(),
                                  "other_pct": wait_quiet(args.wait_quiet_lab,
                                                          args.wait_quiet_max)}
    node = names.node_name(1)
    log(f"restarting {node}'s agent")
    run["restart"] = restart_agent(lab, node, run["policies"]["max_rv"], args.timeout)

    time.sleep(args.settle)
    run["load_before_connects_2"] = {"uptime": uptime(),
                                     "other_pct": wait_quiet(args.wait_quiet_lab,
                                                             args.wait_quiet_max)}
    log(f"connect latency with {len(pols)} policies: {args.connects} x 3, interleaved")
    run["connect_after"] = connect_latency(lab, args.connects)

    if args.flips:
        run["load_before_flips"] = {"uptime": uptime(),
                                    "other_pct": wait_quiet(args.wait_quiet_lab,
                                                            args.wait_quiet_max)}
        log(f"{args.flips} x allowed -> denied -> allowed, probing every "
            f"{args.probe_interval * 1000:g} ms")
        run["flips"] = flips(lab, args.flips, args.probe_interval, args.pause, args.seed)


# -- the report -----------------------------------------------------------------------------------


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else 0.0


def ms(seconds: Sequence[float]) -> Obj:
    s = sorted(seconds)
    return {"n": len(s), "p50_ms": round(percentile(s, 50) * 1000, 3),
            "p90_ms": round(percentile(s, 90) * 1000, 3),
            "p99_ms": round(percentile(s, 99) * 1000, 3),
            "max_ms": round((s[-1] if s else 0.0) * 1000, 3)}


def summarize(run: Obj) -> Obj:
    out: Obj = {}
    off = run.get("offline")
    if off:
        total = statistics.median(r["total_s"] for r in off["rounds"])
        floor = statistics.median(off["bare_set_s"])
        out["offline"] = {
            "median_s": round(total, 3), "worst_s": round(max(r["total_s"]
                                                              for r in off["rounds"]), 3),
            "bare_median_s": round(floor, 3), "ratio": ratio(total, floor),
            "met": total <= GOAL_PROGRAMMED_S,
            "parts_median_s": {p: round(statistics.median(r[p] for r in off["rounds"]), 3)
                               for p in ("compile_s", "node_rules_s", "full_body_s", "nft_s")}}
        out["offline"]["nft_ratio"] = ratio(out["offline"]["parts_median_s"]["nft_s"], floor)
    for phase in ("connect_before", "connect_after"):
        if phase in run:
            times = run[phase]["times"]
            st = {t: ms(v) for t, v in times.items()}
            iso, opn = st["isolated"], st["open"]
            out[phase] = {"stats": st, "p50_ratio": ratio(iso["p50_ms"], opn["p50_ms"]),
                          "p99_ratio": ratio(iso["p99_ms"], opn["p99_ms"])}
    if "connect_after" in out:
        a = out["connect_after"]
        a["met"] = max(a["p50_ratio"], a["p99_ratio"]) <= GOAL_CONNECT_RATIO
        if "connect_before" in out:
            b = out["connect_before"]["stats"]["isolated"]
            i = a["stats"]["isolated"]
            out["connect_isolated_after_vs_before"] = {
                "p50_ratio": ratio(i["p50_ms"], b["p50_ms"]),
                "p99_ratio": ratio(i["p99_ms"], b["p99_ms"])}
    fl = run.get("flips")
    if fl and fl["changes"]:
        ch = fl["changes"]
        lat = ms([c["latency_s"] for c in ch])
        api = ms([c["api_s"] for c in ch])
        took = sorted(c["server_node_took_ms"] or 0.0 for c in ch)
        out["flips"] = {
            "latency": lat, "api": api,
            "to_denied": ms([c["latency_s"] for c in ch if c["to"] == "denied"]),
            "to_allowed": ms([c["latency_s"] for c in ch if c["to"] == "allowed"]),
            "all_nodes_synced": ms([c["all_synced_s"] for c in ch]),
            "server_node_took_ms": {"p50": percentile(took, 50), "p99": percentile(took, 99),
                                    "max": took[-1]},
            "p50_ratio": ratio(lat["p50_ms"], api["p50_ms"]),
            "p99_ratio": ratio(lat["p99_ms"], api["p99_ms"]),
            "met": lat["p99_ms"] <= GOAL_CHANGE_P99_MS}
    return out


def _load(run: Obj, phase: str) -> str:
    x = run.get(phase) or {}
    return f"other {x.get('other_pct', '-')}%, {x.get('uptime', '').split('load ')[-1]}"


def report(run: Obj, info: Obj) -> str:
    s = run["summary"]
    lines = [f"== podnet NetworkPolicy benchmark ({run['policy_count']} policies over "
             f"{run['pod_count']} pods; lab {run.get('lab', '-')}, {NODES} nodes) ==",
             f"{info['date']}; {info['nproc']} CPUs ({info['cpu']}); kernel {info['kernel']}; "
             f"Python {info['python']}; {info['nft']}; nft in-process: "
             f"{(run.get('offline') or {}).get('in_process', nft.in_process())}",
             f"load: `uptime` before the run: {info['uptime']}; other processes "
             f"{run['background_cpu_pct']}% of a core before the run", ""]
    rows = [["figure", "measured", "goal", "baseline (same run)", "ratio", ""]]
    off = s.get("offline")
    if off:
        rows.append([f"1a programmed offline, median of {len(run['offline']['rounds'])}",
                     f"{off['median_s']:.3f} s (worst {off['worst_s']:.3f})",
                     f"<= {GOAL_PROGRAMMED_S:g} s",
                     f"bare set, {run['offline']['elements']} elements: "
                     f"{off['bare_median_s']:.3f} s", f"{off['ratio']:.2f}x",
                     verdict(off["met"])])
    pol, rs = run.get("policies"), run.get("restart")
    if pol:
        rows.append(["1b live: last create -> every node enforces",
                     f"{pol['all_after_last_create_s']:.3f} s", "",
                     f"the API's {pol['count']} creates: {pol['api_s']:.3f} s",
                     f"{ratio(pol['all_after_last_create_s'], pol['api_s']):.2f}x", ""])
    if rs:
        full = rs["proxy_full_sync_ms"]
        rows.append([f"1b live: {rs['node']}'s agent restarted, first full sync",
                     f"{full:.0f} ms (took_ms {rs['first_status']['took_ms']})"
                     if full is not None else f"took_ms {rs['first_status']['took_ms']}",
                     f"<= {GOAL_PROGRAMMED_S:g} s", "", "",
                     verdict(full / 1000 <= GOAL_PROGRAMMED_S) if full is not None else ""])
    fl = s.get("flips")
    if fl:
        rows.append([f"2 one change, p50 (n={fl['latency']['n']})",
                     f"{fl['latency']['p50_ms']:.1f} ms", "",
                     f"PATCH p50 {fl['api']['p50_ms']:.1f} ms", f"{fl['p50_ratio']:.1f}x", ""])
        rows.append([f"2 one change, p99 (n={fl['latency']['n']})",
                     f"{fl['latency']['p99_ms']:.1f} ms", f"<= {GOAL_CHANGE_P99_MS:g} ms",
                     f"PATCH p99 {fl['api']['p99_ms']:.1f} ms", f"{fl['p99_ratio']:.1f}x",
                     verdict(fl["met"])])
    ca = s.get("connect_after")
    if ca:
        iso, opn = ca["stats"]["isolated"], ca["stats"]["open"]
        rows.append([f"3 connect, {run['policy_count']} policies vs none, p50",
                     f"{iso['p50_ms'] * 1000:.1f} us", f"<= {GOAL_CONNECT_RATIO}",
                     f"no policy: {opn['p50_ms'] * 1000:.1f} us", f"{ca['p50_ratio']:.3f}",
                     verdict(ca["p50_ratio"] <= GOAL_CONNECT_RATIO)])
        rows.append([f"3 connect, {run['policy_count']} policies vs none, p99",
                     f"{iso['p99_ms'] * 1000:.1f} us", f"<= {GOAL_CONNECT_RATIO}",
                     f"no policy: {opn['p99_ms'] * 1000:.1f} us", f"{ca['p99_ratio']:.3f}",
                     verdict(ca["p99_ratio"] <= GOAL_CONNECT_RATIO)])
    lines += [table(rows), ""]
    if off:
        o = run["offline"]
        p = off["parts_median_s"]
        lines.append(f"1a: medians compile_model {p['compile_s']:.3f} s, node_rules "
                     f"{p['node_rules_s']:.3f} s, full_body {p['full_body_s']:.3f} s "
                     f"({o['rounds'][0]['script_bytes'] / 1e6:.2f} MB), nft "
                     f"{p['nft_s']:.3f} s ({off['nft_ratio']:.2f}x the bare set); node-1: "
                     f"{o['isolated']['ingress']} pods isolated for ingress, "
                     f"{o['isolated']['egress']} for egress, {o['any_elements']} -any and "
                     f"{o['ports_elements']} -ports elements, {o['kernel_chains']} chains; "
                     f"kernel sets == rendered: {'yes' if o['kernel_equal'] else 'NO'}; "
                     f"machine busy {o['machine_busy_pct']}%")
        ch = o.get("changes") or {}
        if ch.get("nft_s"):
            def p50_99(v: list[float]) -> str:
                v = sorted(v)
                return f"{percentile(v, 50) * 1000:.1f} / {percentile(v, 99) * 1000:.1f} ms"
            lines.append(f"1a, one policy changed offline ({len(ch['nft_s'])} times; p50 / p99): "
                         f"compile_model + node_rules {p50_99(ch['compile_s'])}, "
                         f"render.incremental {p50_99(ch['render_s'])}, nft "
                         f"{p50_99(ch['nft_s'])}; script {max(ch['script_bytes'])} bytes")
        cu = o.get("catch_up")
        if cu:
            lines.append(f"1a, catching up from the first half of the policies to all "
                         f"({cu['from_elements']} -> {cu['to_elements']} elements, one "
                         f"incremental transaction of {cu['script_bytes'] / 1e6:.2f} MB): "
                         f"render.incremental {cu['render_s']:.3f} s, nft {cu['nft_s']:.3f} s")
        lines.append("    rounds (s): " + ", ".join(
            f"{r['total_s']:.3f} (bare {b:.3f})"
            for r, b in zip(o["rounds"], o["bare_set_s"], strict=True)))
    if "pods" in run:
        mem = run["mem_available_mb"]
        lines.append(f"lab: up in {run['lab_up_s']} s; {run['pod_count']} pods created in "
                     f"{run['pods']['created_s']} s, all running after "
                     f"{run['pods']['running_s']} s; MemAvailable {mem.get('before')} MB -> "
                     f"{mem.get('pods_running')} MB (pods) -> {mem.get('policies', '-')} MB "
                     f"(policies); agents' RSS {run.get('agent_rss_mb', {})} MB")
    if "icmp_ratelimit_was" in run:
        lines.append(f"the nodes' {ICMP_RATELIMIT} set to 0 for the run (it was "
                     f"{sorted(set(run['icmp_ratelimit_was'].values()))}): see "
                     "lift_icmp_ratelimit")
    if pol:
        lines.append(f"1b: {pol['count']} creates in {pol['api_s']:.3f} s; each node "
                     f"enforced them (policy-sync.json resourceVersion >= {pol['max_rv']}) "
                     f"after the last create: {pol['after_last_create_s']} s; after the first: "
                     f"{pol['all_after_first_create_s']} s; machine busy "
                     f"{pol['machine_busy_pct']}%")
        lines.append("    status: " + "; ".join(
            f"{n}: syncs {st.get('syncs')}, isolated {st.get('isolated')}, took_ms "
            f"{st.get('took_ms')}" for n, st in pol["status"].items() if st))
        for n, sy in pol.get("agent_syncs", {}).items():
            if sy:
                lines.append(f"    {n}'s agent logged {len(sy)} policy syncs: compile "
                             f"{sum(c for c, _ in sy) / 1000:.2f} s and render + apply "
                             f"{sum(a for _, a in sy) / 1000:.2f} s in all; the last "
                             + ", ".join(f"{c:.0f} + {a:.0f} ms" for c, a in sy[-3:]))
    if rs:
        lines.append(f"1b restart ({_load(run, 'load_before_restart')}): agent killed "
                     f"(SIGKILL) and started again by lifecycle.up, which returned after "
                     f"{rs['up_returned_s']} s; first policy-sync.json after "
                     f"{rs['first_status_s']} s {rs['first_status']}; caught up after "
                     f"{rs['caught_up_s']} s; the proxy's full sync (policy objects included) "
                     f"{rs['proxy_full_sync_ms']} ms; policy log lines "
                     f"{rs['policy_lines']}")
    if "checks" in run:
        bad = [c for c in run["checks"] if not c["agree"]]
        lines.append("checks, model.decide vs one real connect: " + "; ".join(
            f"{c['from']} -> {c['to']}: {c['kernel']}" + ("" if c["agree"] else
                                                          f" (model: {c['model']})")
            for c in run["checks"]) + ("" if not bad else f"  {len(bad)} DISAGREE"))
    if "path" in run:
        p = run["path"]
        lines.append(f"3: the isolated pair: client isolated for egress by "
                     f"{p['client_egress_isolated_by']} policies (sets -any/-ports "
                     f"{p['client_egress_sets']}: {p['client_side']}), server for ingress by "
                     f"{p['server_ingress_isolated_by']} ({p['server_ingress_sets']}: "
                     f"{p['server_side']}); vmap elements (ingress, egress) on the client's "
                     f"node {p['vmaps_client_node']}, on the server's {p['vmaps_server_node']}")
    for phase, label in (("connect_before", "before the policies"),
                         ("connect_after", f"with {run['policy_count']} policies")):
        if phase not in s:
            continue
        lp = "load_before_connects_1" if phase == "connect_before" else "load_before_connects_2"
        lines.append(f"connect() {label} ({run['connects']} each, interleaved; "
                     f"{_load(run, lp)}; machine busy {run[phase]['machine_busy_pct']}%), us:")
        for t, st in s[phase]["stats"].items():
            lines.append(f"    {t:9} n {st['n']:5}  p50 {st['p50_ms'] * 1000:7.1f}  p90 "
                         f"{st['p90_ms'] * 1000:7.1f}  p99 {st['p99_ms'] * 1000:7.1f}"
                         + (f"  errors {run[phase]['errors'][t]}"
                            if t in run[phase]["errors"] else ""))
        lines.append(f"    isolated / open: p50 {s[phase]['p50_ratio']}, p99 "
                     f"{s[phase]['p99_ratio']}")
    if "connect_isolated_after_vs_before" in s:
        x = s["connect_isolated_after_vs_before"]
        lines.append(f"    the isolated pair, with policies / before (sequential, 2 phases): "
                     f"p50 {x['p50_ratio']}, p99 {x['p99_ratio']}")
    if fl:
        f = run["flips"]
        lines.append(f"2 ({_load(run, 'load_before_flips')}; machine busy "
                     f"{f['machine_busy_pct']}%): probe every {f['interval_s'] * 1000:g} ms "
                     f"from flip-client to flip-server on {f['server_node']}; probe counts "
                     f"{f['probe'].get('done')}; lines of another state between changes: "
                     f"{f['flaps']}")
        for what in ("to_denied", "to_allowed", "latency", "all_nodes_synced", "api"):
            st = fl[what]
            lines.append(f"    {what:17} n {st['n']:4}  p50 {st['p50_ms']:8.1f}  p90 "
                         f"{st['p90_ms']:8.1f}  p99 {st['p99_ms']:8.1f}  max "
                         f"{st['max_ms']:8.1f} ms")
        t = fl["server_node_took_ms"]
        lines.append(f"    the server node's enforcer, took_ms (compile + apply): p50 "
                     f"{t['p50']}  p99 {t['p99']}  max {t['max']}")
        sy = f.get("server_node_syncs") or []
        if sy:
            comp, rest = sorted(c for c, _ in sy), sorted(a for _, a in sy)
            lines.append(f"    ... its {len(sy)} logged syncs: compile (compile_model + "
                         f"node_rules) p50 {percentile(comp, 50):.0f} p99 "
                         f"{percentile(comp, 99):.0f} ms; render + nft p50 "
                         f"{percentile(rest, 50):.1f} p99 {percentile(rest, 99):.1f} ms")
        parts = f.get("server_node_sync_parts") or []
        if parts:
            cols = list(zip(*parts, strict=True))
            lines.append("    ... of the rest, p50 / p99 ms: " + ", ".join(
                f"{name} {percentile(sorted(col), 50):.1f} / {percentile(sorted(col), 99):.1f}"
                for name, col in zip(("lock wait", "render", "nft", "in libnftables"), cols,
                                     strict=True)))
        odd = [c["odd_lines"] for c in f["changes"] if c["odd_lines"]]
        if odd:
            lines.append(f"    other lines before the expected state: {odd[:5]}")
    if run.get("left") is not None:
        lines.append(f"left after teardown: {run['left'] or 'nothing'}")
    return "\n".join(lines)


# -- the command ----------------------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.policy_bench",
                                description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--policies", type=int, default=1000)
    p.add_argument("--pods", type=int, default=300)
    p.add_argument("--seed", type=int, default=1, help="of the generated policies")
    p.add_argument("--rounds", type=int, default=5, help="offline rounds (and bare loads)")
    p.add_argument("--offline-changes", type=int, default=20,
                   help="one-policy changes timed offline after the rounds")
    p.add_argument("--connects", type=int, default=5000, help="connects to each target")
    p.add_argument("--flips", type=int, default=50,
                   help="allowed -> denied -> allowed cycles (0: skip figure 2)")
    p.add_argument("--probe-interval", type=float, default=0.002, metavar="SECONDS")
    p.add_argument("--pause", type=float, default=0.1, metavar="SECONDS",
                   help="between two changes, once every node has the last (x 0.5..1.5)")
    p.add_argument("--concurrency", type=int, default=8, help="API connections for creates")
    p.add_argument("--keep-icmp-ratelimit", action="store_true",
                   help="leave the nodes' icmp_ratelimit as it is (see lift_icmp_ratelimit)")
    p.add_argument("--offline-only", action="store_true", help="figure 1a only: no lab")
    p.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                   help="for pods to run, and for every node to enforce the policies")
    p.add_argument("--settle", type=float, default=3.0, metavar="SECONDS")
    p.add_argument("--json", type=Path, help="also write the results to this file")
    p.add_argument("--wait-quiet", type=float, metavar="PCT",
                   help="before the run: wait until other processes use at most PCT%% of a "
                        "core")
    p.add_argument("--wait-quiet-lab", type=float, default=30.0, metavar="PCT",
                   help="before each live phase: the same, the lab's own processes included")
    p.add_argument("--wait-quiet-max", type=float, default=300.0, metavar="SECONDS")
    args = p.parse_args(argv)
    if not 10 <= args.pods <= 600 or not FIXED_POLICIES < args.policies <= 5000 or \
            not 1 <= args.rounds <= 20 or not 10 <= args.connects <= 10_000 or \
            not 0 <= args.flips <= 500 or not 0.0005 <= args.probe_interval <= 0.1:
        p.error("--pods 10..600, --policies 4..5000, --rounds 1..20, --connects 10..10000, "
                "--flips 0..500, --probe-interval 0.0005..0.1")
    if os.geteuid() != 0:
        p.error("this benchmark makes network namespaces and a lab: run it as root")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    for sig in SIGNALS:
        signal.signal(sig, _terminate)
    info = machine()
    info["nft"] = tool_version(["nft", "--version"])
    info["uptime"] = uptime()
    world_pods = pods(args.pods)
    spaces = namespaces()
    pols = policies(args.policies, args.seed)
    tag = "pb" + secrets.token_hex(4)
    scratch = names.node_netns(tag + "x", names.node_name(1))
    root = Path(tempfile.mkdtemp(prefix="podnet-polbench-", dir="/tmp"))
    lab = Lab(tag, root)
    run: Obj = {"policy_count": len(pols), "pod_count": len(world_pods), "seed": args.seed,
                "connects": args.connects, "scratch_netns": scratch}
    try:
        try:
            run["background_cpu_pct"] = wait_quiet(args.wait_quiet, args.wait_quiet_max)
            netns.add(scratch)
            log(f"offline: {len(pols)} policies over {len(world_pods)} pods, node-1's objects "
                f"into {scratch}, {args.rounds} rounds")
            offline_spaces = {**spaces, "kube-system": {}}
            run["offline"] = asyncio.run(interruptible_value(offline_phase(
                scratch, tag + "x", offline_pods(world_pods), offline_spaces, pols,
                args.rounds, args.offline_changes)))
            netns.delete(scratch)
            if not args.offline_only:
                run["lab"] = lab.name
                live(lab, args, world_pods, spaces, pols, run)
        finally:
            # A second Ctrl-C must not cut the teardown short: it is held until the end.
            signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
            try:
                log(f"tearing down {scratch} and {lab.name}")
                with contextlib.suppress(Exception):
                    netns.delete(scratch)
                run["left"] = lab.down() if not args.offline_only or lab.state.dir.exists() \
                    else []
                run["left"] += [n for n in netns.names() if names.owns_netns(tag + "x", n)]
                shutil.rmtree(root, ignore_errors=True)
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
    except KeyboardInterrupt:
        log(f"interrupted; {lab.name} and {scratch} removed")
        return 130
    run["summary"] = summarize(run)
    print(report(run, info), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": info, "run": run}, indent=2) + "\n")
        log(f"results written to {args.json}")
    return 1 if run["left"] else 0


async def interruptible_value(coro: Any) -> Any:
    """interruptible() for a coroutine whose value is wanted."""
    box: list[Any] = []

    async def keep() -> None:
        box.append(await coro)

    await interruptible(keep())
    return box[0]


if __name__ == "__main__":
    sys.exit(main())
