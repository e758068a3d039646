"""The cluster DNS on one core, against Knot DNS on the same core, both measured from a pod
through their ClusterIPs, and the DNS programming latency.

    .venv/bin/python -m bench.dns_bench [--services 2000] [--seconds 10] [--rounds 3] [--json FILE]

One throw-away 1-node lab with the cluster DNS (`podnet.cluster.lifecycle.up(nodes=1,
dns=True)`: state root under /tmp, name `db<hex>`, a port the kernel chooses) gets --services
ClusterIP Services in --namespaces namespaces (`bench-0`, ...), created through the API. The
DNS pods' upstream is port 53 of the lab's external host (172.18.0.2), where nothing listens:
every query is a cluster name, and nothing can leave the machine. Then, in namespace
`dnsbench`, all on node-1:

    podnet's DNS server   the real DNS pod, kube-system/podnet-dns-1, behind kube-dns
                          (10.96.0.10); its process (found by the pid the runtime records for
                          the pod's container, `<pod dir>/dns.pid`) is pinned, all threads,
                          to core 0 with `taskset -a -p`
    Knot DNS (knotd)      pod `knot`, container command `taskset -c 0 knotd -c <conf>`, 1 UDP
                          worker, authoritative for a cluster.local zone file written from the
                          same Services (the same names, the same A records); conf and zone
                          under the run's scratch directory; behind Service `dnsbench/knot`
                          (53/UDP), as kube-dns is
    dnsperf               run inside pod `client` (`sleep infinity`) through
                          podnet.runtime.exec_argv, pinned to core 1, against each server's
                          ClusterIP: the path pods use (DNAT and conntrack in node-1's
                          namespace, two veths) is the same for both; the same query file
                          (one A query per Service name, in random order), --clients clients

Before anything is measured, every name is asked of both servers (from the client pod's
network namespace, through the ClusterIPs) and must get the Service's ClusterIP (a run with a
wrong answer stops there).

  throughput   dnsperf -l --seconds against each server, --rounds rounds, the order turning
               each round (podnet, Knot; Knot, podnet; ...), 100 queries in flight. The
               figure: the median of the rounds' podnet/Knot ratios. Goal: >= 0.6. One
               dnsperf on one core cannot always saturate Knot: the server's CPU use is
               printed, and so is the rate per second of the server's own CPU time (what
               each would do with the core to itself), and its ratio
  latency      dnsperf -Q at half of podnet's best round (the same rate for Knot), -q 20
               (see --latency-outstanding), -v (each query's latency), --latency-rounds
               rounds, alternating. The figure: podnet's p99 at that rate; Knot's at the
               same rate is its baseline. Goal: p99 <= 1 ms
  programming  --changes times: a new Service is created through the API (a fresh name in
               `bench-0`) while a small UDP client in the client pod (pinned to core 1) asks
               kube-dns for its name every --poll-interval ms until the A record appears;
               then the same for deleting those Services, until NXDOMAIN. The latency is
               from just before the API write to the first answer with the change, both on
               the same monotonic clock. Baseline: how long the API write took to return.
               Goal: p99 <= 100 ms

The output has the machine (CPU model, nproc, kernel), the tools' versions, `uptime` before
the run, the share of a core other processes used before measuring, and per run the CPU
used by the server under test, by dnsperf, by softirqs, by other processes (and, of those,
on the servers' core: they delay the server whenever they hold it as a query comes in), and
the rate dnsperf kept: a latency round that fell below 97% of the asked rate was disturbed,
and its p99 is also shown apart.

The lab (its namespaces, agents, pods and API server) is removed at the end whatever happens
(errors, Ctrl-C, SIGTERM; a second Ctrl-C waits for the teardown), and the run checks that
none of it is left, the pods' processes included. --knot-only leaves podnet's server out of
the measurements (to prove the harness). Needs root, dnsperf and knotd
(bench/install-tools.sh installs them). Not a test: nothing asserts on timings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import functools
import io
import json
import os
import random
import re
import resource
import secrets
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
    cpu_seconds,
    create_namespace,
    interruptible,
    log,
    machine,
    percentile,
    verdict,
    wait_quiet,
)
from bench.proxy_bench import tool_version  # noqa: E402
from podnet import runtime  # noqa: E402
from podnet.api.resources import Resource, lookup  # noqa: E402
from podnet.client.http import Client, ClientError  # noqa: E402
from podnet.cluster import addons, lifecycle  # noqa: E402
from podnet.cluster.state import ClusterState, ephemeral_port  # noqa: E402
from podnet.dns import wire  # noqa: E402
from podnet.kernel import netns  # noqa: E402
from podnet.lab import names, topology  # noqa: E402
from podnet.runtime import containers  # noqa: E402

GOAL_QPS_RATIO = 0.6
GOAL_P99_MS = 1.0
GOAL_PROGRAMMING_P99_MS = 100.0
RATE_KEPT = 0.97  # a latency round whose achieved rate fell below this share was disturbed
ZONE = addons.CLUSTER_DOMAIN
DNS_PORT = 53
# The DNS pods' upstream: the lab's external host, where nothing listens on 53. Every query is
# a cluster name, so it is never asked (only the start-up loop probe goes there, unanswered).
DEAD_UPSTREAM = topology.external_address(topology.DEFAULT_LAN_CIDR)
BENCH_NS = "dnsbench"  # the Knot pod, its Service and the client pod
KNOT, CLIENT = "knot", "client"
KNOT_LABELS = {"app": "dnsbench-knot"}
PROG_NS = "bench-0"
A_TYPE = 1
CLONE_NEWNET = 0x40000000
Obj = dict[str, Any]


def res(kind: str) -> Resource:
    r = lookup(kind)
    assert r is not None, kind
    return r


def service(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}


def fqdn(name: str, ns: str) -> str:
    return f"{name}.{ns}.svc.{ZONE}"


def bench_pod(name: str, node: str, command: list[str], labels: dict[str, str] | None = None,
              ports: list[Obj] | None = None) -> Obj:
    container: Obj = {"name": name, "image": "debian", "command": command}
    if ports:
        container["ports"] = ports
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {"app": f"dnsbench-{name}"}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [container]}}


def knot_service() -> Obj:
    """Knot's ClusterIP Service: 53/UDP to the Knot pod, as kube-dns is to the DNS pod."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": KNOT},
            "spec": {"selector": KNOT_LABELS,
                     "ports": [{"name": "dns", "port": DNS_PORT, "protocol": "UDP",
                                "targetPort": DNS_PORT}]}}


# -- a socket in a pod's network namespace, and the small DNS client -----------------------------


_libc = ctypes.CDLL(None, use_errno=True)


def socket_in(ns: str, kind: int = socket.SOCK_DGRAM) -> socket.socket:
    """A socket made inside namespace `ns` (a socket keeps the namespace it was made in). The
    setns happens in a short-lived thread, so this process stays where it is."""
    box: dict[str, Any] = {}

    def body() -> None:
        fd = os.open(netns.path(ns), os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns {ns}")
            box["sock"] = socket.socket(socket.AF_INET, kind)
        except BaseException as e:  # handed to the caller
            box["error"] = e
        finally:
            os.close(fd)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["sock"]  # type: ignore[no-any-return]


def query_packet(qid: int, name: str, qtype: int = A_TYPE) -> bytes:
    """A plain query (RD set, no EDNS: what dnsperf sends by default)."""
    out = bytearray(struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0))
    for label in name.split("."):
        out += bytes([len(label)]) + label.encode()
    return bytes(out) + b"\0" + struct.pack("!HH", qtype, 1)


def ask(sock: socket.socket, addr: str, name: str, timeout: float = 1.0) -> tuple[Any, int]:
    """One A query to addr:53; (the parsed response, its size in bytes)."""
    qid = random.randrange(65536)
    sock.sendto(query_packet(qid, name), (addr, DNS_PORT))
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            raise TimeoutError(f"no answer for {name} from {addr}:{DNS_PORT}")
        data = sock.recv(65535)
        r = wire.parse_response(data)
        if r.id == qid:
            return r, len(data)


def check_answers(ns: str, addr: str, expected: dict[str, str], what: str) -> Obj:
    """Ask for every name once; every one must get exactly its ClusterIP."""
    sock = socket_in(ns)
    try:
        wrong: list[str] = []
        sizes: set[int] = set()
        for name, ip in expected.items():
            r, size = ask(sock, addr, name)
            sizes.add(size)
            got = sorted(str(rec.rdata) for rec in r.answer if rec.rtype == A_TYPE)
            if r.rcode != 0 or got != [ip]:
                wrong.append(f"{name}: rcode {r.rcode}, A {got}, want {ip}")
        if wrong:
            raise RuntimeError(f"{what} answered {len(wrong)} of {len(expected)} names wrongly, "
                               f"e.g. {wrong[:3]}")
        return {"names": len(expected), "response_bytes": sorted(sizes)}
    finally:
        sock.close()


def answers_ok(ns: str, addr: str, name: str, ip: str) -> bool:
    try:
        sock = socket_in(ns)
    except OSError:
        return False
    try:
        r, _ = ask(sock, addr, name, timeout=0.5)
        return r.rcode == 0 and [str(x.rdata) for x in r.answer if x.rtype == A_TYPE] == [ip]
    except (OSError, wire.WireError):
        return False
    finally:
        sock.close()


# The programming-latency poller, run in the client pod, pinned to core 1. Reads lines
# `POLL <name> A|NX` on stdin; asks ADDR:PORT for <name> (A) every INTERVAL seconds until the
# answer is the wanted one: an A record (A) or NXDOMAIN (NX). It prints `ready` after the
# first answer (which must not yet be the wanted one), then `seen <monotonic> <rdata> <polls>`
# at the first wanted answer (or `timeout` after TIMEOUT seconds).
POLLER = r'''
import random, select, socket, struct, sys, time
from podnet.dns import wire
addr, port = sys.argv[1], int(sys.argv[2])
interval, timeout = float(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((addr, port))
mono = time.monotonic

def packet(qid, name):
    out = bytearray(struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0))
    for label in name.split("."):
        out += bytes([len(label)]) + label.encode()
    return bytes(out) + b"\0" + struct.pack("!HH", 1, 1)

def once(name):
    qid = random.randrange(65536)
    s.send(packet(qid, name))
    end = mono() + 0.5
    while True:
        left = end - mono()
        if left <= 0 or not select.select([s], [], [], left)[0]:
            return None, None
        data = s.recv(4096)
        t = mono()
        r = wire.parse_response(data)
        if r.id != qid:
            continue
        if r.rcode == 3:
            return t, "NX"
        a = [str(x.rdata) for x in r.answer if x.rtype == 1]
        return t, (a[0] if a else "NODATA:%d" % r.rcode)

for line in sys.stdin:
    _, name, want = line.split()
    polls, start, said = 0, mono(), False
    while True:
        t, got = once(name)
        polls += 1
        hit = got is not None and ((want == "NX") == (got == "NX")) and not got.startswith("NODATA")
        if not said:
            print("ready" if not hit else "early %s" % got, flush=True)
            said = True
            if hit:
                break
        elif hit:
            print("seen %.9f %s %d" % (t, got, polls), flush=True)
            break
        if mono() - start > timeout:
            print("timeout", flush=True)
            break
        time.sleep(interval)
'''


# -- the pods' processes --------------------------------------------------------------------------


@dataclass
class PodProc:
    """A pod of the run and its container's process, as the runtime records them: the pid in
    `<pod dir>/<container>.pid` (the shim's `setsid nsenter ... -- <command>` execs into the
    command, so the container's process group is its process), with its start time, so that a
    recycled pid is never taken for it."""

    label: str
    namespace: str
    name: str
    uid: str
    node: str
    netns: str
    pid: int
    start: int

    def alive(self) -> bool:
        return runtime.alive(self.pid, self.start)


def find_pod_proc(r: Run, label: str, namespace: str, name: str, container: str,
                  program: str) -> PodProc | None:
    """The running pod `namespace/name` and its container's process (whose command line must
    hold `program`), or None while it is not there yet."""
    assert r.client is not None
    try:
        p = r.client.get(res("pods"), namespace, name)
    except ClientError:  # not created yet: asked again
        return None
    node = (p.get("spec") or {}).get("nodeName")
    if not node or (p.get("status") or {}).get("phase") != "Running":
        return None
    uid = p["metadata"]["uid"]
    pid = containers.read_pgid(runtime.pod_dir(r.state.node_dir(node), uid), container)
    if pid is None or not any(program in a for a in lifecycle.cmdline(pid)):
        return None
    start = runtime.proc_start_time(pid)
    if start is None:
        return None
    return PodProc(label, namespace, name, uid, node, names.pod_netns(r.name, uid), pid, start)


def pin_all_threads(pid: int, core: int) -> str:
    """`taskset -a -p`: every thread of `pid` on `core`; returns the affinity read back."""
    out = subprocess.run(["taskset", "-a", "-c", "-p", str(core), str(pid)],
                         capture_output=True, text=True, timeout=10)
    if out.returncode != 0:
        raise RuntimeError(f"taskset -a -p {core} {pid}: {out.stderr.strip()}")
    cpus = {tid.name: os.sched_getaffinity(int(tid.name))
            for tid in Path(f"/proc/{pid}/task").iterdir()}
    wrong = {t: c for t, c in cpus.items() if c != {core}}
    if wrong:
        raise RuntimeError(f"threads of {pid} not on core {core}: {wrong}")
    return f"{len(cpus)} thread(s) on core {core}"


def knot_files(where: Path, records: dict[str, str], core: int) -> tuple[Path, list[str]]:
    """knot.conf and the cluster.local zone file (the same names and A records); returns the
    configuration's path and the Knot pod's command."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "db").mkdir(exist_ok=True)
    lines = [f"$ORIGIN {ZONE}.", "$TTL 30",
             f"@ IN SOA ns.dns.{ZONE}. hostmaster.{ZONE}. 1 7200 1800 86400 30",
             f"@ IN NS ns.dns.{ZONE}.", "ns.dns IN A 10.96.0.10"]
    lines += [f"{name}. 30 IN A {ip}" for name, ip in sorted(records.items())]
    (where / f"{ZONE}.zone").write_text("\n".join(lines) + "\n")
    conf = where / "knot.conf"
    conf.write_text(f"""server:
    rundir: "{where}"
    listen: 0.0.0.0@{DNS_PORT}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: warning
database:
    storage: "{where / 'db'}"
template:
  - id: default
    storage: "{where}"
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    semantic-checks: off
zone:
  - domain: {ZONE}
""")
    return conf, ["taskset", "-c", str(core), "knotd", "-c", str(conf)]


def wait_until(what: str, fn: Callable[[], Any], timeout: float, every: float = 0.2,
               tail: Callable[[], str] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f":\n{tail()}" if tail is not None else ""
            raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}{extra}")
        time.sleep(every)


def proc_stat(core: int) -> dict[str, float]:
    """The machine's irq, softirq and steal time so far, and the tasks' (user + system) and
    irq + softirq time of one core, in seconds (/proc/stat)."""
    lines = Path("/proc/stat").read_text().splitlines()
    tick = os.sysconf("SC_CLK_TCK")
    fields = lines[0].split()[1:]
    mine = next(line.split()[1:] for line in lines if line.startswith(f"cpu{core} "))
    return {"irq": int(fields[5]) / tick, "softirq": int(fields[6]) / tick,
            "steal": int(fields[7]) / tick,
            "core_tasks": (int(mine[0]) + int(mine[1]) + int(mine[2])) / tick,
            "core_irq": (int(mine[5]) + int(mine[6])) / tick}


def children_cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


# -- dnsperf --------------------------------------------------------------------------------------

DNSPERF_FIELD = re.compile(r"^[ \t]*([A-Za-z ]+?)(?: \(s\))?:[ \t]+(.*)$", re.M)
VERBOSE_LINE = re.compile(r"^> (\S+) .* ([\d.]+)$", re.M)


def dnsperf(r: Run, core: int, addr: str, qfile: Path, args: argparse.Namespace,
            pid: int | None, rate: float | None = None) -> Obj:
    """One dnsperf run in the client pod against addr:53; its summary, the server's CPU use
    (% of a core) and, with a rate, each query's latency (from -v)."""
    outfile = qfile.with_name("dnsperf.out")
    argv = ["taskset", "-c", str(core), "dnsperf", "-s", addr, "-p", str(DNS_PORT), "-d",
            str(qfile), "-c", str(args.clients), "-l", f"{args.seconds:g}", "-t", "2"]
    if rate is not None:
        argv += ["-Q", str(int(rate)), "-q", str(args.latency_outstanding), "-v"]
    c0 = cpu_seconds(pid) if pid else 0.0
    b0, t0, k0 = busy_cpu_seconds(), time.monotonic(), children_cpu_seconds()
    st0 = proc_stat(args.server_core)
    # stdout to a file, not a pipe: with -v dnsperf writes a line per query, and a full pipe
    # would stall it and show up as latency.
    with outfile.open("w+") as f:
        proc = subprocess.run([*r.exec_in(CLIENT), *argv], stdout=f, stderr=subprocess.PIPE,
                              text=True, timeout=args.seconds + 60)
        f.seek(0)
        stdout = f.read()
    outfile.unlink()
    wall = time.monotonic() - t0
    server = cpu_seconds(pid) - c0 if pid else 0.0
    client = children_cpu_seconds() - k0  # dnsperf's own (nsenter and taskset exec into it)
    busy = busy_cpu_seconds() - b0
    st = {k: v - st0[k] for k, v in proc_stat(args.server_core).items()}
    if proc.returncode != 0:
        raise RuntimeError(f"dnsperf: exit {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    fields = dict(DNSPERF_FIELD.findall(stdout))
    out: Obj = {
        "qps": float(fields["Queries per second"]),
        "sent": int(fields["Queries sent"].split()[0]),
        "completed": int(fields["Queries completed"].split()[0]),
        "lost": int(fields["Queries lost"].split()[0]),
        "rcodes": fields.get("Response codes", ""),
        "avg_latency_ms": round(float(fields["Average Latency"].split()[0]) * 1000, 4),
        "server_cpu_pct": round(100 * server / wall, 1) if pid else None,
        "dnsperf_cpu_pct": round(100 * client / wall, 1),
        "machine_busy_pct": round(100 * busy / wall, 1),
        # The kernel charges the veths' and netfilter's softirqs to no process (this kernel
        # accounts IRQ time apart), and steal is the hypervisor's: both counted apart.
        "softirq_pct": round(100 * (st["irq"] + st["softirq"]) / wall, 1),
        "steal_pct": round(100 * st["steal"] / wall, 1),
        # everything else: other people's work, the API server, the agent, this script
        "other_cpu_pct": round(100 * max(0.0, busy - server - client - st["irq"]
                                         - st["softirq"] - st["steal"]) / wall, 1),
        # on the server's own core: other tasks (they delay the server whenever they hold
        # the core as a query arrives) and the irq + softirq time (the packets' path)
        "core_other_pct": round(100 * max(0.0, st["core_tasks"] - server) / wall, 1),
        "core_softirq_pct": round(100 * st["core_irq"] / wall, 1),
    }
    if rate is not None:
        lat = sorted(float(m[1]) for m in VERBOSE_LINE.findall(stdout))
        out["rate"] = int(rate)
        out["latency_ms"] = {"n": len(lat), **{f"p{q:g}": round(percentile(lat, q) * 1000, 4)
                                                 for q in (50, 90, 99, 99.9)},
                             "max": round(lat[-1] * 1000, 4) if lat else 0.0}
    return out


# -- the cluster ---------------------------------------------------------------------------------


async def create_services(api: Api, namespaces: list[str], count: int,
                          concurrency: int) -> tuple[dict[str, str], Obj]:
    """count Services spread over the namespaces; {fqdn: ClusterIP} and the create rate."""
    for ns in namespaces:
        await create_namespace(api, ns)
    todo = iter([(f"svc-{i}", namespaces[i % len(namespaces)]) for i in range(count)])
    made: dict[str, str] = {}
    errors: dict[str, int] = {}

    async def worker(s: aiohttp.ClientSession) -> None:
        for name, ns in todo:
            async with s.post(api.collection("services", ns), data=orjson.dumps(service(name)),
                              headers={"Content-Type": "application/json"}) as r:
                body = await r.read()
                if r.status != 201:
                    key = f"{r.status} {body[:120]!r}"
                    errors[key] = errors.get(key, 0) + 1
                    continue
                made[fqdn(name, ns)] = orjson.loads(body)["spec"]["clusterIP"]

    async def all_of_them() -> None:
        async with api.session(concurrency) as s:
            await asyncio.gather(*(worker(s) for _ in range(concurrency)))

    t0 = time.monotonic()
    await interruptible(all_of_them())
    seconds = time.monotonic() - t0
    if errors:
        raise RuntimeError(f"creating Services failed: {errors}")
    return made, {"count": count, "seconds": round(seconds, 2),
                  "per_s": round(count / seconds, 1)}


def programming(r: Run, dns_ip: str, args: argparse.Namespace, scratch: Path) -> Obj:
    """--changes creates, then the same deletes, each polled from the client pod until it shows
    in kube-dns's answers."""
    assert r.client is not None
    client = r.client
    argv = [*r.exec_in(CLIENT), "taskset", "-c", str(args.client_core), sys.executable, "-c",
            POLLER, dns_ip, str(DNS_PORT), str(args.poll_interval / 1000), "5"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # the poller imports podnet.dns.wire
    with (scratch / "poller.log").open("w") as errlog:
        poller = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=errlog, text=True, env=env, cwd=REPO,
                                  start_new_session=True)
    assert poller.stdin is not None and poller.stdout is not None
    svc = res("services")
    out: Obj = {"create": {"latency": [], "write": [], "polls": []},
                "delete": {"latency": [], "write": [], "polls": []}, "missed": [],
                "wrong": []}

    def one(kind: str, name: str) -> None:
        assert poller.stdin is not None and poller.stdout is not None
        poller.stdin.write(f"POLL {fqdn(name, PROG_NS)} {'A' if kind == 'create' else 'NX'}\n")
        poller.stdin.flush()
        first = poller.stdout.readline().strip()
        if first != "ready":
            raise RuntimeError(f"the poller said {first!r} before the {kind} of {name}:\n"
                               + (scratch / "poller.log").read_text()[-2000:])
        t0 = time.monotonic()
        if kind == "create":
            ip = client.create(svc, PROG_NS, service(name))["spec"]["clusterIP"]
        else:
            client.delete(svc, PROG_NS, name)
            ip = "NX"
        t1 = time.monotonic()
        seen = poller.stdout.readline().split()
        if not seen or seen[0] != "seen":
            out["missed"].append(f"{kind} {name}: {seen}")
            return
        if seen[2] != ip:
            out["wrong"].append(f"{kind} {name}: got {seen[2]}, want {ip}")
        out[kind]["latency"].append(float(seen[1]) - t0)
        out[kind]["write"].append(t1 - t0)
        out[kind]["polls"].append(int(seen[3]))

    try:
        for kind in ("create", "delete"):
            for i in range(args.changes):
                one(kind, f"prog-{i}")
                time.sleep(args.change_gap / 1000)
    finally:
        poller.stdin.close()
        try:
            poller.wait(10)
        except subprocess.TimeoutExpired:
            poller.kill()
            poller.wait(5)
    return out


# -- the run --------------------------------------------------------------------------------------


class Run:
    """Everything the run made, so that teardown finds it."""

    def __init__(self, root: Path, name: str) -> None:
        self.root, self.name = root, name
        self.state = ClusterState.locate(name, root)
        self.client: Client | None = None
        self.pods: dict[str, PodProc] = {}  # label -> the pod and its container's process

    def exec_in(self, label: str) -> list[str]:
        """The prefix that runs a command in pod `label` (podnet.runtime.exec_argv)."""
        p = self.pods[label]
        return runtime.exec_argv(self.state.node_dir(p.node), p.uid)

    def teardown(self) -> list[str]:
        if self.client is not None:
            self.client.close()
        try:
            lifecycle.down(self.name, self.root, out=io.StringIO())
        finally:
            for pid in lifecycle.find_servers(self.state):
                lifecycle.stop_process(pid)
        left = [n for n in netns.names() if names.owns_netns(self.name, n)]
        left += [f"server pid {p}" for p in lifecycle.find_servers(self.state)]
        left += [f"agent pid {p}" for ps in lifecycle.find_agents(self.state).values()
                 for p in ps]
        for p in self.pods.values():  # the lab's teardown kills what is in its namespaces
            if p.alive():
                left.append(f"{p.label} pid {p.pid}")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
        return left


def start_pods(r: Run, args: argparse.Namespace, conf: Path, knot_cmd: list[str]) -> str:
    """The Knot pod and its Service, and the client pod, in BENCH_NS on the lab's node;
    returns Knot's ClusterIP once both pods run."""
    assert r.client is not None
    c = r.client
    node = r.state.load().lab_plan().nodes[0].name
    c.create(res("namespaces"), None, {"apiVersion": "v1", "kind": "Namespace",
                                        "metadata": {"name": BENCH_NS}})
    c.create(res("pods"), BENCH_NS, bench_pod(
        KNOT, node, knot_cmd, KNOT_LABELS,
        [{"name": "dns", "containerPort": DNS_PORT, "protocol": "UDP"}]))
    c.create(res("pods"), BENCH_NS, bench_pod(CLIENT, node, ["sleep", "infinity"]))
    vip: str = c.create(res("services"), BENCH_NS, knot_service())["spec"]["clusterIP"]

    def knot_tail() -> str:  # the Knot container's log, on a timeout
        with contextlib.suppress(Exception):
            uid = c.get(res("pods"), BENCH_NS, KNOT)["metadata"]["uid"]
            return runtime.log_path(r.state.node_dir(node), uid, KNOT).read_text()[-2000:]
        return ""

    r.pods["knot"] = wait_until(
        "the Knot pod to run", lambda: find_pod_proc(r, "knot", BENCH_NS, KNOT, KNOT, "knotd"),
        args.ready_timeout, tail=knot_tail)
    r.pods[CLIENT] = wait_until(
        "the client pod to run",
        lambda: find_pod_proc(r, CLIENT, BENCH_NS, CLIENT, CLIENT, "sleep"), args.ready_timeout)
    log(f"Knot: pod {BENCH_NS}/{KNOT} (pid {r.pods['knot'].pid}, {conf}), Service {vip}:53/UDP")
    return vip


def measure(r: Run, args: argparse.Namespace, out: Obj) -> None:
    log(f"bringing up {r.name} (1 node, the cluster DNS) under {r.root}")
    t0 = time.monotonic()
    lifecycle.up(r.name, r.root, wait=args.ready_timeout, port=ephemeral_port("127.0.0.1"),
                 nodes=1, dns=True, dns_upstreams=[DEAD_UPSTREAM], out=io.StringIO())
    r.client = Client.from_state(r.state)
    out["up_s"] = round(time.monotonic() - t0, 1)
    namespaces = [f"bench-{i}" for i in range(args.namespaces)]
    log(f"creating {args.services} Services in {len(namespaces)} namespaces through the API")
    records, out["create"] = asyncio.run(
        create_services(Api.from_state(r.state), namespaces, args.services, args.concurrency))
    log(f"created in {out['create']['seconds']} s ({out['create']['per_s']}/s)")

    scratch = r.root / "dnsbench"
    scratch.mkdir()
    qfile = scratch / "queries.txt"
    qnames = list(records)
    random.Random(1).shuffle(qnames)
    qfile.write_text("".join(f"{n} A\n" for n in qnames))
    conf, knot_cmd = knot_files(scratch / "knot", records, args.server_core)
    knot_ip = start_pods(r, args, conf, knot_cmd)
    dns_pod = addons.pod_name(1)
    r.pods["podnet"] = wait_until(
        f"{addons.DNS_NAMESPACE}/{dns_pod}'s server",
        lambda: find_pod_proc(r, "podnet", addons.DNS_NAMESPACE, dns_pod, addons.DNS_CONTAINER,
                              addons.DNS_SERVER_MODULE), args.ready_timeout)
    dns_ip = r.state.load().cluster_dns
    out["pinned"] = pin_all_threads(r.pods["podnet"].pid, args.server_core)
    log(f"podnet's DNS: pod {addons.DNS_NAMESPACE}/{dns_pod} (pid {r.pods['podnet'].pid}, "
        f"{out['pinned']}), Service {dns_ip}:53")

    client_ns = r.pods[CLIENT].netns
    vips = {"podnet": dns_ip, "knot": knot_ip}
    servers = [label for label in ("podnet", "knot") if label != "podnet" or not args.knot_only]
    out["servers"] = servers
    out["vips"] = {label: vips[label] for label in servers}
    last = fqdn(f"svc-{args.services - 1}", namespaces[(args.services - 1) % len(namespaces)])
    out["ready_s"] = {}
    for label in servers:
        t0, vip = time.monotonic(), vips[label]
        wait_until(f"{label} to answer for {last} at {vip}",
                   functools.partial(answers_ok, client_ns, vip, last, records[last]),
                   args.ready_timeout)
        out["ready_s"][label] = round(time.monotonic() - t0, 2)
    out["check"] = {}
    for label in servers:
        log(f"checking all {len(records)} names against {label} ({vips[label]})")
        out["check"][label] = check_answers(client_ns, vips[label], records, label)

    # Both servers stay up all along; the one not measured must be idle.
    pids = {label: r.pods[label].pid for label in servers}
    idle0 = {label: cpu_seconds(pid) for label, pid in pids.items()}
    time.sleep(args.settle)
    out["idle_cpu_pct"] = {label: round(100 * (cpu_seconds(pid) - idle0[label]) / args.settle, 2)
                           for label, pid in pids.items()}
    out["background_before_pct"] = wait_quiet(args.wait_quiet_lab, args.wait_quiet_max)
    out["throughput"] = {label: [] for label in servers}
    log(f"throughput: {args.rounds} rounds of {args.seconds:g} s x {len(servers)}")
    for rnd in range(args.rounds):
        order = servers if rnd % 2 == 0 else servers[::-1]
        for label in order:
            got = dnsperf(r, args.client_core, vips[label], qfile, args, pids[label])
            log(f"  round {rnd + 1} {label}: {got['qps']:.0f} q/s, avg {got['avg_latency_ms']}"
                f" ms, lost {got['lost']}, server CPU {got['server_cpu_pct']}%")
            out["throughput"][label].append(got)

    # Half of the best round: other work on the machine only ever lowers a round's rate, so
    # the best one is the nearest to what the server does with its core.
    base = servers[0]
    rate = max(t["qps"] for t in out["throughput"][base]) / 2
    out["latency_rate"] = int(rate)
    out["latency"] = {label: [] for label in servers}
    log(f"latency at {int(rate)} q/s (half of {base}'s best round): {args.latency_rounds} "
        "rounds")
    for rnd in range(args.latency_rounds):
        order = servers if rnd % 2 == 0 else servers[::-1]
        for label in order:
            got = dnsperf(r, args.client_core, vips[label], qfile, args, pids[label], rate)
            log(f"  round {rnd + 1} {label}: p50 {got['latency_ms']['p50']} ms, p99 "
                f"{got['latency_ms']['p99']} ms, lost {got['lost']}, other CPU "
                f"{got['other_cpu_pct']}%, other tasks on core {args.server_core} "
                f"{got['core_other_pct']}%")
            out["latency"][label].append(got)

    if "podnet" in servers and args.changes:
        log(f"programming latency: {args.changes} creates, then {args.changes} deletes")
        out["programming"] = programming(r, dns_ip, args, scratch)
    for p in r.pods.values():
        if not p.alive():
            out.setdefault("died", []).append(f"{p.label} (pid {p.pid}) is gone: restarted?")


# -- the report -----------------------------------------------------------------------------------


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else 0.0


def lat_ms(values: Sequence[float]) -> Obj:
    s = sorted(values)
    return {"n": len(s), "p50": round(percentile(s, 50) * 1000, 3),
            "p90": round(percentile(s, 90) * 1000, 3), "p99": round(percentile(s, 99) * 1000, 3),
            "max": round(s[-1] * 1000, 3) if s else 0.0}


def per_cpu(x: Obj) -> float:
    """Queries answered per second of the server's own CPU time: what one core would do if
    the server had it all (when the client, not the server, is the limit)."""
    cpu = x.get("server_cpu_pct") or 0.0
    return round(x["qps"] / (cpu / 100)) if cpu else 0.0


def summarize(run: Obj) -> Obj:
    out: Obj = {}
    tp = run.get("throughput", {})
    for label, rounds in tp.items():
        out[f"qps {label}"] = {"median": statistics.median(x["qps"] for x in rounds),
                               "rounds": [round(x["qps"]) for x in rounds],
                               "per_cpu": [per_cpu(x) for x in rounds]}
    if "podnet" in tp and "knot" in tp:
        pairs = [ratio(a["qps"], b["qps"]) for a, b in zip(tp["podnet"], tp["knot"],
                                                           strict=True)]
        med = statistics.median(pairs)
        cpu_pairs = [ratio(per_cpu(a), per_cpu(b))
                     for a, b in zip(tp["podnet"], tp["knot"], strict=True)]
        out["qps ratio"] = {"round_ratios": pairs, "ratio": round(med, 3),
                            "met": med >= GOAL_QPS_RATIO,
                            "per_cpu_round_ratios": cpu_pairs,
                            "per_cpu_ratio": round(statistics.median(cpu_pairs), 3)}
    for label, rounds in run.get("latency", {}).items():
        p99s = [x["latency_ms"]["p99"] for x in rounds]
        # A round whose client could not keep the rate was disturbed (the machine slowed
        # down, or other work held a core): shown apart, the verdict still counts it.
        steady = [x["latency_ms"]["p99"] for x in rounds if x["qps"] >= RATE_KEPT * x["rate"]]
        out[f"latency {label}"] = {
            "p50": round(statistics.median(x["latency_ms"]["p50"] for x in rounds), 4),
            "p99": round(statistics.median(p99s), 4), "p99_rounds": p99s,
            "rates": [round(x["qps"]) for x in rounds],
            "p99_rate_kept": round(statistics.median(steady), 4) if steady else None,
            "rounds_rate_kept": len(steady),
            "lost": sum(x["lost"] for x in rounds),
            "met": statistics.median(p99s) <= GOAL_P99_MS if label == "podnet" else None}
    prog = run.get("programming")
    if prog:
        for kind in ("create", "delete"):
            lat, wr = lat_ms(prog[kind]["latency"]), lat_ms(prog[kind]["write"])
            out[f"programming {kind}"] = {
                "latency": lat, "write": wr, "p50_ratio": ratio(lat["p50"], wr["p50"]),
                "p99_ratio": ratio(lat["p99"], wr["p99"]),
                "polls_median": statistics.median(prog[kind]["polls"]) if prog[kind]["polls"]
                else 0,
                "met": (lat["p99"] <= GOAL_PROGRAMMING_P99_MS and not prog["missed"])
                if lat["n"] else False}
    return out


def report(run: Obj, info: Obj) -> str:
    s = run["summary"]
    lines = [f"== podnet cluster DNS vs Knot DNS, one core each ({run['cluster']}, "
             f"{run['services']} Services in {run['namespaces']} namespaces) ==",
             f"{info['date']}; {info['nproc']} CPUs ({info['cpu']}); kernel {info['kernel']}; "
             f"Python {info['python']}, uvloop {info['uvloop']}; {info['dnsperf']}; "
             f"{info['knotd']}",
             f"load: `uptime` before the run: {info['uptime']}",
             f"other processes: {run['background_cpu_pct']}% of a core before the cluster, "
             f"{run.get('background_before_pct', '-')}% (the cluster's own included) before "
             "measuring",
             f"lab up (1 node, the DNS pod Ready) in {run.get('up_s', '-')} s; Services "
             f"created in {run['create']['seconds']} s ({run['create']['per_s']}/s); the "
             "servers answered the last one "
             + ", ".join(f"{k} {v} s" for k, v in run.get("ready_s", {}).items())
             + " later; their CPU while idle: "
             + ", ".join(f"{k} {v}%" for k, v in run.get("idle_cpu_pct", {}).items()),
             f"servers: podnet's DNS pod ({run.get('pinned', '-')}, taskset -a -p) and the Knot "
             "pod (taskset -c), each behind its ClusterIP ("
             + ", ".join(f"{k} {v}" for k, v in run.get("vips", {}).items())
             + "); dnsperf in a third pod on the same node",
             "every name checked against each server first: "
             + ", ".join(f"{k} {v['names']} names OK (response {v['response_bytes']} bytes)"
                         for k, v in run.get("check", {}).items())]
    if "podnet" not in run.get("servers", []):
        lines.append("PODNET'S SERVER WAS NOT MEASURED (--knot-only): Knot alone, to prove "
                     "the harness")
    lines += ["", f"throughput: dnsperf -c {run['clients']} -l {run['seconds']:g} (100 "
              f"queries in flight), {run['rounds']} rounds alternating, servers on core "
              f"{run['server_core']}, dnsperf on core {run['client_core']}:"]
    for label, rounds in run.get("throughput", {}).items():
        lines.append(f"  {label:7} q/s: median {s[f'qps {label}']['median']:.0f}, rounds "
                     f"{s[f'qps {label}']['rounds']}; avg latency "
                     f"{[x['avg_latency_ms'] for x in rounds]} ms; server CPU "
                     f"{[x['server_cpu_pct'] for x in rounds]}%; dnsperf CPU "
                     f"{[x['dnsperf_cpu_pct'] for x in rounds]}%; softirq "
                     f"{[x['softirq_pct'] for x in rounds]}%; steal "
                     f"{[x['steal_pct'] for x in rounds]}%; other CPU "
                     f"{[x['other_cpu_pct'] for x in rounds]}% (on the servers' core "
                     f"{[x['core_other_pct'] for x in rounds]}%); lost "
                     f"{sum(x['lost'] for x in rounds)}; {rounds[0]['rcodes']}")
    if "qps ratio" in s:
        q = s["qps ratio"]
        lines.append(f"  podnet / Knot: {q['ratio']}x (median of the rounds' ratios "
                     f"{q['round_ratios']}); goal >= {GOAL_QPS_RATIO}: {verdict(q['met'])}")
        lines.append(f"  queries per second of the server's own CPU: podnet "
                     f"{s['qps podnet']['per_cpu']}, Knot {s['qps knot']['per_cpu']}; "
                     f"podnet / Knot {q['per_cpu_ratio']}x (rounds "
                     f"{q['per_cpu_round_ratios']}; what each would do with a core to itself)")
    if run.get("latency"):
        lines += ["", f"latency at {run['latency_rate']} q/s (dnsperf -Q, half of the best "
                  f"round above, -q {run['latency_outstanding']}; each query's latency from -v),"
                  " ms:"]
        for label in run["latency"]:
            la = s[f"latency {label}"]
            kept = (f"; in the {la['rounds_rate_kept']} round(s) that kept the rate: "
                    f"{la['p99_rate_kept']}" if la["rounds_rate_kept"] < len(la["rates"])
                    else "")
            lines.append(f"  {label:7} p50 {la['p50']}, p99 {la['p99']} (rounds "
                         f"{la['p99_rounds']} at {la['rates']} q/s{kept}); lost {la['lost']}; "
                         "other CPU "
                         f"{[x['other_cpu_pct'] for x in run['latency'][label]]}%, of it on "
                         "the servers' core "
                         f"{[x['core_other_pct'] for x in run['latency'][label]]}%; softirq "
                         "there "
                         f"{[x['core_softirq_pct'] for x in run['latency'][label]]}%"
                         + (f"; goal p99 <= {GOAL_P99_MS}: {verdict(la['met'])}"
                            if la["met"] is not None else " (baseline)"))
    prog = run.get("programming")
    if prog:
        lines += ["", f"DNS programming latency, podnet ({run['changes']} each; poll every "
                  f"{run['poll_interval']:g} ms from core {run['client_core']}), ms:"]
        for kind in ("create", "delete"):
            p = s[f"programming {kind}"]
            lat, wr = p["latency"], p["write"]
            lines.append(f"  Service {kind} -> {'A' if kind == 'create' else 'NXDOMAIN'}: "
                         f"p50 {lat['p50']}, p90 {lat['p90']}, p99 {lat['p99']}, max "
                         f"{lat['max']} (n={lat['n']}); the API write alone p50 {wr['p50']}, "
                         f"p99 {wr['p99']}: {p['p50_ratio']}x / {p['p99_ratio']}x; goal p99 <= "
                         f"{GOAL_PROGRAMMING_P99_MS:g}: {verdict(p['met'])}")
        if prog["missed"] or prog["wrong"]:
            lines.append(f"  missed {prog['missed'][:5]}; wrong {prog['wrong'][:5]}")
    if run.get("died"):
        lines.append(f"DIED: {run['died']}")
    if run.get("left"):
        lines.append(f"LEFT BEHIND: {run['left']}")
    return "\n".join(lines)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench.dns_bench", description=__doc__.split("\n")[0])
    p.add_argument("--services", type=int, default=2000)
    p.add_argument("--namespaces", type=int, default=4)
    p.add_argument("--seconds", type=float, default=10.0, help="each dnsperf run")
    p.add_argument("--rounds", type=int, default=3, help="throughput rounds")
    p.add_argument("--latency-rounds", type=int, default=3)
    p.add_argument("--clients", type=int, default=4, help="dnsperf -c")
    p.add_argument("--latency-outstanding", type=int, default=20, metavar="N",
                   help="dnsperf -q for the latency runs: at most N queries in flight. "
                        "dnsperf -Q paces by sending bursts of up to -q queries; with its "
                        "default of 100, Knot's own p99 was 1.7 ms at 20,000/s here (a queue "
                        "of the client's making); with 20, 0.2 ms at 59,000/s. Below 20 the "
                        "rate was not reached")
    p.add_argument("--changes", type=int, default=100, help="Service creates (and deletes) "
                   "for the programming latency (0: skip)")
    p.add_argument("--poll-interval", type=float, default=0.5, metavar="MS")
    p.add_argument("--change-gap", type=float, default=20.0, metavar="MS",
                   help="pause between two changes")
    p.add_argument("--server-core", type=int, default=0)
    p.add_argument("--client-core", type=int, default=1)
    p.add_argument("--concurrency", type=int, default=8, help="API connections for creates")
    p.add_argument("--ready-timeout", type=float, default=60.0, metavar="SECONDS")
    p.add_argument("--settle", type=float, default=2.0, metavar="SECONDS")
    p.add_argument("--knot-only", action="store_true",
                   help="leave podnet's server out: Knot alone, to prove the harness")
    p.add_argument("--json", type=Path)
    p.add_argument("--wait-quiet", type=float, metavar="PCT",
                   help="before the cluster: wait until other processes use at most PCT%% "
                        "of a core")
    p.add_argument("--wait-quiet-lab", type=float, default=30.0, metavar="PCT",
                   help="before measuring: the same, the cluster's own processes included")
    p.add_argument("--wait-quiet-max", type=float, default=300.0, metavar="SECONDS")
    args = p.parse_args(argv)
    if not 10 <= args.services <= 50_000 or not 1 <= args.namespaces <= 100 or \
            not 1 <= args.seconds <= 120 or not 1 <= args.rounds <= 20 or \
            not 0 <= args.latency_rounds <= 20 or not 0 <= args.changes <= 10_000:
        p.error("--services 10..50000, --namespaces 1..100, --seconds 1..120, --rounds 1..20, "
                "--latency-rounds 0..20, --changes 0..10000")
    cores = os.sched_getaffinity(0)
    if args.server_core not in cores or args.client_core not in cores or \
            args.server_core == args.client_core:
        p.error(f"--server-core and --client-core must be two different cores of {cores}")
    if os.geteuid() != 0:
        p.error("this benchmark brings up a lab (network namespaces): run it as root")
    for tool in ("dnsperf", "knotd", "taskset"):
        if shutil.which(tool) is None:
            p.error(f"{tool} is missing: run bench/install-tools.sh (make bench-dns does)")
    if not args.knot_only and not (REPO / "podnet" / "dns" / "main.py").exists():
        p.error("podnet/dns/main.py is not there: use --knot-only to measure Knot alone")
    return args


def versions() -> Obj:
    dp = tool_version(["sh", "-c", "dnsperf -h 2>&1 | grep -m1 -i '^version'"])
    uv = "none"
    with contextlib.suppress(ImportError):
        import uvloop
        uv = str(getattr(uvloop, "__version__", "?"))
    return {"dnsperf": f"dnsperf {dp.split()[-1]}" if dp.strip() else "dnsperf ?",
            "knotd": tool_version(["knotd", "--version"]).split("\n")[0],
            "uvloop": uv, "uptime": tool_version(["uptime"])}


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    for sig in SIGNALS:
        signal.signal(sig, _terminate)
    info = {**machine(), **versions()}
    root = Path(tempfile.mkdtemp(prefix="podnet-dnsbench-", dir="/tmp"))
    r = Run(root, "db" + secrets.token_hex(4))
    run: Obj = {"cluster": r.name, "services": args.services,
                "namespaces": args.namespaces, "clients": args.clients,
                "seconds": args.seconds, "rounds": args.rounds, "changes": args.changes,
                "poll_interval": args.poll_interval, "server_core": args.server_core,
                "client_core": args.client_core,
                "latency_outstanding": args.latency_outstanding}
    try:
        try:
            run["background_cpu_pct"] = wait_quiet(args.wait_quiet, args.wait_quiet_max)
            measure(r, args, run)
        finally:
            # A second Ctrl-C must not cut the teardown short: it is held until the end.
            signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
            try:
                log(f"tearing {r.name} down")
                run["left"] = r.teardown()
                shutil.rmtree(root, ignore_errors=True)
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
    except KeyboardInterrupt:
        log(f"interrupted; {r.name} torn down")
        return 130
    run["summary"] = summarize(run)
    print(report(run, info), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": info, "run": run}, indent=2) + "\n")
        log(f"results written to {args.json}")
    return 1 if run["left"] else 0


if __name__ == "__main__":
    sys.exit(main())
