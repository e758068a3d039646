"""CNI benchmark: ADD and ADD+DEL of podnet-cni against Debian's ptp + host-local, in one run.

    .venv/bin/python -m bench.cni_bench [--iterations 100] [--json FILE] [--wait-quiet PCT]

Each plugin is exec'd as a container runtime execs it: from inside a node-like network
namespace that this run creates (the "host" the plugin plumbs), with the CNI_* environment and
the configuration on stdin, for a fresh pod namespace each iteration. DEL gets the ADD's result
as prevResult (libcni does the same), and the pod namespace is deleted after DEL, as a runtime
does. The same two networks are then driven through podnet's own CniRuntime (the conflist
executor the agent uses: nsenter into the node namespace, version negotiation, the result
cache written and fsynced), with the conflists the agent writes. Cases are interleaved: every
iteration runs each case once, in a rotating order, so that load from other processes falls on
all of them alike.

  case                       what runs
  ptp + host-local           /usr/lib/cni/ptp (which execs host-local), cniVersion 1.0.0
  podnet-cni                 what the agent installs as podnet-cni (podnet.cni.server.
                             install_shim): the C shim, which hands the call to a CNI server
                             (podnet.cni.server.CniServer; here its worker threads run in this
                             process, as they run in the agent's); cniVersion 1.1.0, the agent's
                             configuration (deleteDelay 1 s)
  podnet-cni.py exec'd       the shim's fallback with no server: the `python -I -S` launcher
  podnet-cni, deleteDelay 0  the shim again, deleting the node-side veth inside DEL (as ptp does)
  CniRuntime + ptp           podnet.cni.runtime.CniRuntime over the agent's `--cni ptp` conflist,
                             on uvloop (the agent's event loop, podnet.daemon)
  CniRuntime + podnet-cni    the same over the agent's default conflist
  ..., asyncio loop          the same on the standard library's event loop

Floors measured in the same loop: exec of /bin/true, `python -I -S -c pass` (the interpreter's
start-up, which podnet-cni.py pays on every call) and that plus `import podnet.cni.plugin`.

It tears down what it made, always (also on errors, Ctrl-C and SIGTERM): the pod namespaces,
the node namespace and the scratch directory, and it waits for the detached shells that
podnet-cni's DEL leaves to delete a veth later. Not a test: nothing asserts on timings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: import this checkout's podnet
    sys.path.insert(0, str(REPO))

from bench.api_bench import (  # noqa: E402
    SIGNALS,
    _terminate,
    busy_cpu_seconds,
    log,
    machine,
    percentile,
    table,
    wait_quiet,
)
from podnet.agent.agent import conflist  # noqa: E402
from podnet.cni import netlink, spec  # noqa: E402
from podnet.cni.plugin import RETIRED_ALIAS, host_veth_name  # noqa: E402
from podnet.cni.runtime import CniRuntime  # noqa: E402
from podnet.cni.server import LAUNCHER_NAME, CniServer, install_shim  # noqa: E402
from podnet.kernel import netns  # noqa: E402
from podnet.lab import names  # noqa: E402

GOAL_RATIO = 0.5  # podnet-cni / ptp, ADD and ADD+DEL
ANCHOR_PTP_ADD_MS = 11.0  # measured earlier on this kind of machine (the anchor)
ANCHOR_PTP_ADD_DEL_MS = 44.0
REFERENCE_PLUGINS = Path("/usr/lib/cni")
NETWORK = "podnet"  # the agent's network name
Obj = dict[str, Any]


# -- what is measured ---------------------------------------------------------------------------


@dataclass
class Samples:
    add: list[float] = field(default_factory=list)  # ms
    delete: list[float] = field(default_factory=list)
    netns_del: list[float] = field(default_factory=list)  # the runtime's `ip netns del` after

    def both(self) -> list[float]:
        return [a + d for a, d in zip(self.add, self.delete, strict=True)]


@dataclass
class Case:
    key: str
    label: str
    subnet: str
    add: Callable[[str, str], Obj]  # (container id, netns path) -> result
    delete: Callable[[str, str, Obj], None]  # (container id, netns path, ADD result)
    samples: Samples = field(default_factory=Samples)


def stats(ms: Sequence[float]) -> dict[str, float]:
    s = sorted(ms)
    if not s:
        return {"n": 0, "p50": 0.0, "p90": 0.0, "p10": 0.0, "mean": 0.0, "max": 0.0}
    return {"n": len(s), "p10": round(percentile(s, 10), 2), "p50": round(percentile(s, 50), 2),
            "p90": round(percentile(s, 90), 2), "mean": round(sum(s) / len(s), 2),
            "max": round(s[-1], 2)}


# -- running plugins the way a runtime does -------------------------------------------------------


def exec_plugin(path: Path, command: str, conf: Obj, container_id: str, netns_path: str,
                cni_path: Sequence[Path]) -> tuple[float, Any]:
    """Exec one plugin from this thread's network namespace; (milliseconds, decoded stdout).
    The environment is what a runtime passes: PATH and the CNI_* variables."""
    env = spec.cni_env(command, container_id=container_id, netns=netns_path, ifname="eth0",
                       path=[str(p) for p in cni_path],
                       base={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    data = json.dumps(conf).encode()
    t0 = time.perf_counter()
    proc = subprocess.run([str(path)], input=data, env=env, capture_output=True, check=False)
    ms = (time.perf_counter() - t0) * 1000
    if proc.returncode != 0:
        raise RuntimeError(f"{path.name} {command} {container_id}: exit {proc.returncode}: "
                           f"{(proc.stdout or proc.stderr).decode(errors='replace')[:500]}")
    out = proc.stdout.decode().strip()
    return ms, (json.loads(out) if out else None)


def time_argv(argv: Sequence[str]) -> float:
    """Milliseconds to exec `argv` and wait for it (a floor: process start-up)."""
    t0 = time.perf_counter()
    subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - t0) * 1000


class Bench:
    """The scratch directory, the node namespace, and the cases."""

    def __init__(self, scratch: Path, cluster: str) -> None:
        self.scratch = scratch
        self.cluster = cluster
        self.node = names.node_netns(cluster, "node-1")
        self.bin_dir = scratch / "bin"
        # What the agent installs: podnet-cni = the C shim, podnet-cni.py = the Python launcher
        # (the shim's fallback), cni.sock -> the CNI server's socket.
        self.shim = self.bin_dir / "podnet-cni"
        self.launcher = self.bin_dir / LAUNCHER_NAME
        self.server = CniServer(scratch / "cni.sock", netns=str(netns.path(self.node)))
        self.pods: set[str] = set()  # pod namespaces that may exist
        self.veths: set[str] = set()  # node-side veth names podnet-cni made (for the shells)
        # The agent runs on uvloop (podnet.daemon); the standard loop is there to compare.
        self.loops = {"uvloop": uvloop.new_event_loop(), "asyncio": asyncio.new_event_loop()}
        self.cases: list[Case] = []

    # The agent's configuration for each plugin, on a subnet of its own per case.
    def plugin_conf(self, cni: str, subnet: str, key: str) -> Obj:
        plugin: Obj = conflist(cni, subnet, 1500, self.scratch / key)["plugins"][0]
        return plugin

    def direct_case(self, key: str, label: str, cni: str, subnet: str, version: str,
                    path: Path, **extra: Any) -> Case:
        plugin = {**self.plugin_conf(cni, subnet, key), **extra}
        cni_path = [self.bin_dir, REFERENCE_PLUGINS]

        def add(cid: str, ns_path: str) -> Obj:
            ms, result = exec_plugin(path, "ADD", spec.plugin_config(plugin, NETWORK, version),
                                     cid, ns_path, cni_path)
            case.samples.add.append(ms)
            return dict(result)

        def delete(cid: str, ns_path: str, result: Obj) -> None:
            conf = spec.plugin_config(plugin, NETWORK, version, prev_result=result)
            ms, _ = exec_plugin(path, "DEL", conf, cid, ns_path, cni_path)
            case.samples.delete.append(ms)

        case = Case(key, label, subnet, add, delete)
        return case

    def runtime_case(self, key: str, label: str, cni: str, subnet: str, loop: str) -> Case:
        conf_dir = self.scratch / key / "net.d"
        conf_dir.mkdir(parents=True)
        (conf_dir / "10-podnet.conflist").write_text(
            json.dumps(conflist(cni, subnet, 1500, self.scratch / key)))
        rt = CniRuntime(conf_dir, [self.bin_dir, REFERENCE_PLUGINS], self.scratch / key / "cache",
                        host_netns=self.node)

        def add(cid: str, ns_path: str) -> Obj:
            t0 = time.perf_counter()
            result = self.loops[loop].run_until_complete(rt.add(cid, ns_path))
            case.samples.add.append((time.perf_counter() - t0) * 1000)
            return result

        def delete(cid: str, ns_path: str, _result: Obj) -> None:
            t0 = time.perf_counter()
            self.loops[loop].run_until_complete(rt.delete(cid, ns_path))
            case.samples.delete.append((time.perf_counter() - t0) * 1000)

        case = Case(key, label, subnet, add, delete)
        return case

    def setup(self) -> None:
        ptp = REFERENCE_PLUGINS / "ptp"
        if not (ptp.exists() and (REFERENCE_PLUGINS / "host-local").exists()):
            raise SystemExit("Debian's reference plugins are missing: apt-get install -y "
                             "containernetworking-plugins")
        if not install_shim(self.bin_dir, self.server.path):
            raise SystemExit("no podnet-cni shim: `make install` compiles it (needs cc)")
        netns.add(self.node)
        netns.sysctl(self.node, "net.ipv4.ip_forward", "1")  # as the agent sets it on a node
        self.server.start()  # worker threads in this process, as in the agent
        self.cases = [
            self.direct_case("ptp", "ptp + host-local", "ptp", "10.77.1.0/24", "1.0.0", ptp),
            self.direct_case("podnet", "podnet-cni (shim -> CNI server)", "podnet",
                             "10.77.2.0/24", "1.1.0", self.shim),
            self.direct_case("podnet-exec", "podnet-cni.py exec'd (no server)", "podnet",
                             "10.77.7.0/24", "1.1.0", self.launcher),
            self.direct_case("podnet-del0", "podnet-cni, deleteDelay 0", "podnet",
                             "10.77.3.0/24", "1.1.0", self.shim, deleteDelay=0),
            self.runtime_case("rt-ptp", "CniRuntime + ptp + host-local", "ptp", "10.77.4.0/24",
                              "uvloop"),
            self.runtime_case("rt-podnet", "CniRuntime + podnet-cni", "podnet", "10.77.5.0/24",
                              "uvloop"),
            self.runtime_case("rt-podnet-asyncio", "CniRuntime + podnet-cni, asyncio loop",
                              "podnet", "10.77.6.0/24", "asyncio"),
        ]

    def one(self, case: Case, i: int, record: bool) -> None:
        """A fresh pod namespace, ADD, DEL, then the namespace deleted (as a runtime does)."""
        pod = names.pod_netns(self.cluster, str(uuid.uuid4()))
        self.pods.add(pod)
        netns.add(pod)
        cid = f"{self.cluster}-{case.key}-{i:04d}"
        if "podnet" in case.key:
            self.veths.add(host_veth_name(cid, "eth0"))
        n_add, n_del = len(case.samples.add), len(case.samples.delete)
        result = case.add(cid, str(netns.path(pod)))
        case.delete(cid, str(netns.path(pod)), result)
        t0 = time.perf_counter()
        netns.delete(pod)
        case.samples.netns_del.append((time.perf_counter() - t0) * 1000)
        self.pods.discard(pod)
        if not record:
            del case.samples.add[n_add:], case.samples.delete[n_del:], case.samples.netns_del[-1:]

    def run(self, iterations: int, warmup: int, pause: float) -> dict[str, list[float]]:
        floors: dict[str, list[float]] = {"true": [], "python": [], "import": []}
        py = [sys.executable, "-I", "-S", "-c"]
        imp = f"import sys; sys.path.insert(0, {str(REPO)!r}); import podnet.cni.plugin"
        own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        node_fd = os.open(netns.path(self.node), os.O_RDONLY | os.O_CLOEXEC)
        try:
            netlink.setns(node_fd)  # this thread is now "the host" of the plugins
            for i in range(warmup + iterations):
                record = i >= warmup
                if i == warmup:
                    log(f"warm-up done ({warmup}); measuring {iterations} iterations")
                elif record and (i - warmup) % 25 == 0:
                    log(f"  iteration {i - warmup}/{iterations}")
                k = i % len(self.cases)
                for case in self.cases[k:] + self.cases[:k]:
                    self.one(case, i, record)
                    time.sleep(pause)
                for key, argv in (("true", ["/bin/true"]), ("python", [*py, "pass"]),
                                  ("import", [*py, imp])):
                    ms = time_argv(argv)
                    if record:
                        floors[key].append(ms)
        finally:
            netlink.setns(own)
            os.close(own)
            os.close(node_fd)
        return floors

    def leftovers(self) -> dict[str, Any]:
        """What the cases left in the node namespace (before teardown)."""
        out = netns.run(["ip", "-n", self.node, "-o", "link", "show"], check=False).stdout
        routes = netns.run(["ip", "-n", self.node, "-4", "route", "show"], check=False).stdout
        return {"links": [ln.split(":")[1].strip().split("@")[0] for ln in out.splitlines()
                          if ": lo:" not in ln],
                "routes": [r for r in routes.splitlines() if r.strip()]}

    def delayed_shells(self) -> list[int]:
        """Processes podnet-cni's DEL started to delete one of this run's veths later."""
        found = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                args = (d / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            text = [a.decode(errors="replace") for a in args]
            if RETIRED_ALIAS in text and any(v in text for v in self.veths):
                found.append(int(d.name))
        return found

    def settle(self, wait_shells: float) -> dict[str, Any]:
        """Wait for the delayed-delete shells of podnet-cni's DELs to finish, then reap this
        process's children that nobody waited for: the shells the CNI server's threads
        spawned (they are children of the process the server runs in)."""
        report: dict[str, Any] = {}
        deadline = time.monotonic() + wait_shells
        while (shells := self.delayed_shells()) and time.monotonic() < deadline:
            time.sleep(0.1)
        report["delayed_shells_left"] = shells
        for pid in shells:  # ours (started by the plugins this run exec'd); by pid only
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        reaped = 0
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            reaped += 1
        report["unwaited_children_reaped"] = reaped
        return report

    def teardown(self, wait_shells: float) -> dict[str, Any]:
        report = self.settle(wait_shells)
        with contextlib.suppress(Exception):
            report.update(self.leftovers())
        for pod in sorted(self.pods):
            netns.delete(pod)
        # Anything of this run's cluster name (a pod namespace an interrupted iteration made).
        for ns in netns.names():
            if names.owns_netns(self.cluster, ns) and ns != self.node:
                netns.delete(ns)
        netns.delete(self.node)
        self.server.stop()
        report["server_calls"] = dict(self.server.commands)
        for loop in self.loops.values():
            loop.close()
        return report


# -- the report ---------------------------------------------------------------------------------


def summarize(cases: list[Case], floors: dict[str, list[float]]) -> dict[str, Any]:
    s: dict[str, Any] = {c.key: {"label": c.label, "add": stats(c.samples.add),
                 "del": stats(c.samples.delete), "add_del": stats(c.samples.both()),
                 "netns_del": stats(c.samples.netns_del)} for c in cases}
    base = s["ptp"]

    def ratio(key: str, what: str, q: str = "p50") -> float:
        b = base[what][q]
        return round(s[key][what][q] / b, 2) if b else 0.0

    ratios = {k: {w: {q: ratio(k, w, q) for q in ("p50", "p90")}
                  for w in ("add", "del", "add_del")} for k in s}
    return {"cases": s, "ratios_vs_ptp": ratios,
            "floors": {k: stats(v) for k, v in floors.items()},
            "goal_ratio": GOAL_RATIO,
            "met": {w: ratios["podnet"][w]["p50"] <= GOAL_RATIO for w in ("add", "add_del")}}


def report(run: dict[str, Any], info: dict[str, Any]) -> str:
    s = run["summary"]
    cs, rs, fl = s["cases"], s["ratios_vs_ptp"], s["floors"]
    head = [f"== CNI benchmark: podnet-cni vs Debian's ptp + host-local "
            f"({run['iterations']} iterations each, interleaved) ==",
            f"{info['date']}; {info['nproc']} CPUs ({info['cpu']}); kernel {info['kernel']}; "
            f"Python {info['python']}; {info['plugins']}; {info['iproute2']}",
            f"Other processes used {run['background_cpu_pct']}% of a core just before the run "
            f"and {run['other_cpu_pct']}% during it.", ""]

    def cell(st: dict[str, float]) -> str:
        return f"{st['p50']:.1f} / {st['p90']:.1f}"

    def rat(key: str, what: str) -> str:
        return f"{rs[key][what]['p50']:.2f}x / {rs[key][what]['p90']:.2f}x"

    rows = [["case (ms: median / p90)", "ADD", "DEL", "ADD+DEL", "ADD vs ptp",
             "ADD+DEL vs ptp", "then netns del"]]
    for key, c in cs.items():
        rows.append([c["label"], cell(c["add"]), cell(c["del"]), cell(c["add_del"]),
                     rat(key, "add"), rat(key, "add_del"), cell(c["netns_del"])])
    goal = [["figure", "measured", "goal", "baseline (same run)", "ratio", ""]]
    for what, name, anchor in (("add", "ADD", ANCHOR_PTP_ADD_MS),
                               ("add_del", "ADD+DEL", ANCHOR_PTP_ADD_DEL_MS)):
        goal.append([f"podnet-cni {name}, median", f"{cs['podnet'][what]['p50']:.1f} ms",
                     f"<= {GOAL_RATIO}x ptp", f"ptp + host-local {cs['ptp'][what]['p50']:.1f} ms "
                     f"(anchor ~{anchor:g} ms)", f"{rs['podnet'][what]['p50']:.2f}x",
                     "met" if s["met"][what] else "MISSED"])
    floors = [
        f"floors (same loop, median / p90): exec /bin/true {cell(fl['true'])} ms; "
        f"python -I -S -c pass {cell(fl['python'])} ms; the same importing "
        f"podnet.cni.plugin {cell(fl['import'])} ms",
        f"  the interpreter's start alone is {fl['python']['p50'] / cs['ptp']['add']['p50']:.2f}x "
        f"ptp's ADD (the goal is {GOAL_RATIO}x); podnet-cni.py exec'd: ADD minus the import "
        f"floor {cs['podnet-exec']['add']['p50'] - fl['import']['p50']:.1f} ms of work at the "
        f"median"]
    left = run["leftovers"]
    tail = [f"left in the node namespace after the run: {len(left.get('links', []))} links, "
            f"{len(left.get('routes', []))} routes; delayed-delete shells still running at "
            f"teardown: {len(left.get('delayed_shells_left', []))}",
            f"namespaces of this run left after teardown: {run['netns_left'] or 'none'}",
            f"children of this process nobody had waited for (podnet-cni's delayed-delete "
            f"shells, spawned by the CNI server's threads), reaped at the end: "
            f"{run['settled']['unwaited_children_reaped']}",
            "calls the CNI server answered (the shim's fast path): "
            + (", ".join(f"{k} {v}" for k, v in sorted(left.get("server_calls", {}).items()))
               or "none")]
    return "\n".join([*head, table(goal), "", table(rows), "", *floors, "", *tail])


# -- the command ----------------------------------------------------------------------------------


def tool_version(argv: list[str]) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
    return "unknown"


def other_cpu_pct(busy0: float, own0: float, wall: float) -> float:
    own = own_and_children() - own0
    return round(100 * max(0.0, busy_cpu_seconds() - busy0 - own) / wall, 1) if wall else 0.0


def own_and_children() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.cni_bench",
                                description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--iterations", type=int, default=100, help="measured ADD+DEL per case")
    p.add_argument("--warmup", type=int, default=5, help="unmeasured iterations first")
    p.add_argument("--pause", type=float, default=0.02,
                   help="seconds between two cases (lets the kernel finish a netns teardown)")
    p.add_argument("--json", type=Path, help="also write the results to this file")
    p.add_argument("--wait-quiet", type=float, metavar="PCT",
                   help="first wait until other processes use at most PCT%% of a core")
    p.add_argument("--wait-quiet-max", type=float, default=300.0, metavar="SECONDS")
    args = p.parse_args(argv)
    if not 1 <= args.iterations <= 1000 or not 0 <= args.warmup <= 100 or \
            not 0 <= args.pause <= 1:
        p.error("--iterations 1..1000, --warmup 0..100, --pause 0..1")
    if os.geteuid() != 0:
        p.error("this benchmark creates network namespaces: run it as root")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    for sig in SIGNALS:
        signal.signal(sig, _terminate)
    info = machine()
    info["plugins"] = "containernetworking-plugins " + tool_version(
        ["dpkg-query", "-W", "-f", "${Version}", "containernetworking-plugins"])
    info["iproute2"] = tool_version(["ip", "-V"])
    scratch = Path(tempfile.mkdtemp(prefix="podnet-cnibench-", dir="/tmp"))
    cluster = "cb" + secrets.token_hex(4)
    bench = Bench(scratch, cluster)
    run: dict[str, Any] = {"iterations": args.iterations, "cluster": cluster}
    try:
        try:
            run["background_cpu_pct"] = wait_quiet(args.wait_quiet, args.wait_quiet_max)
            log(f"node namespace {bench.node}; scratch {scratch}")
            bench.setup()
            busy0, own0, t0 = busy_cpu_seconds(), own_and_children(), time.monotonic()
            floors = bench.run(args.iterations, args.warmup, args.pause)
            run["settled"] = bench.settle(wait_shells=5.0)
            run["other_cpu_pct"] = other_cpu_pct(busy0, own0, time.monotonic() - t0)
        finally:
            # A second Ctrl-C must not cut the teardown short: it is held until the end.
            signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
            try:
                run["leftovers"] = bench.teardown(wait_shells=5.0)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
    except KeyboardInterrupt:
        log("interrupted; the namespaces were removed")
        return 130
    run["netns_left"] = [n for n in netns.names() if names.owns_netns(cluster, n)]
    run["summary"] = summarize(bench.cases, floors)
    run["samples_ms"] = {c.key: {"add": c.samples.add, "del": c.samples.delete}
                         for c in bench.cases} | {f"floor_{k}": v for k, v in floors.items()}
    print(report(run, info), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": info, "run": run}, indent=2) + "\n")
        log(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
