"""Pods per second: from creating 200 pods until all are Running with IPs, on a 3-node cluster.

    .venv/bin/python -m bench.pods_bench [--pods 200] [--via apply,post] [--json FILE]

A run brings up a throw-away cluster (state root under /tmp, a random name, a port the kernel
chooses) with 3 nodes and podnet-cni (`--cni ptp`: Debian's reference plugins), then, for each
way of creating pods (`--via`):

  apply   `podnet apply -n NS -f pods.yaml`, one multi-document file of all the pods (the CLI
          process is started by the clock: its start-up counts)
  post    one POST per pod from this process, over --connections keep-alive connections

it creates the pods in a fresh namespace, and notes from a watch on them (opened before the
first create) when each pod is Running with a podIP. The rate is pods / (time until the last
one is). Then it deletes them (`podnet delete -f pods.yaml`, or one DELETE per pod) and notes
when each is gone from the API and when the last pod namespace is gone from the kernel.

Each pod has one container running `sleep 3600` (`--echo`: podnet's echo server on port 8080
instead, a Python process per pod), so what is measured is the pod pipeline: scheduling, the
agent, the sandbox, CNI and the status reports.

Baselines, measured in the same run:

  API alone     the same pods created the same way in a cluster with no nodes (control plane
                only): how fast the API takes them, a ceiling for pods/s
  the kernel    the plumbing of the same number of pods with `ip` alone, --floor-workers at a
                time: `ip netns add`, then one `ip -batch` in the node namespace (veth into the
                pod, the node's /32 route and address) and one in the pod (lo, eth0, address,
                routes), then `ip netns del` each: the part of a pod that no network set up by
                processes can skip, another ceiling

It always tears everything down (also on errors, Ctrl-C and SIGTERM) and checks that no
namespace or process of its clusters is left. Not a test: nothing asserts on timings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from functools import partial
from operator import contains
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import orjson

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: import this checkout's podnet
    sys.path.insert(0, str(REPO))

from bench.api_bench import (  # noqa: E402
    SIGNALS,
    Api,
    Profiler,
    _terminate,
    background_cpu_pct,
    busy_cpu_seconds,
    create_namespace,
    hot_spots,
    interruptible,
    log,
    machine,
    ms_summary,
    percentile,
    table,
    wait_quiet,
)
from podnet.cluster import lifecycle  # noqa: E402
from podnet.cluster.state import ClusterState, ephemeral_port  # noqa: E402
from podnet.kernel import netns  # noqa: E402
from podnet.lab import names  # noqa: E402

GOAL_PODS_PER_S = 50.0
MAX_PODS = 1000
NETNS_DIR = Path("/run/netns")
PODNET_CLI = Path(sys.executable).parent / "podnet"
Obj = dict[str, Any]
T = TypeVar("T")


# -- objects ------------------------------------------------------------------------------------


def pod_object(i: int, echo: bool) -> Obj:
    container: Obj = {"name": "main", "image": "podnet/bench"}
    if echo:
        container["ports"] = [{"containerPort": 8080}]
    else:
        container["command"] = ["sleep", "3600"]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"p{i:04d}", "labels": {"app": "bench"}},
            "spec": {"containers": [container]}}


def manifest(pods: Iterable[Obj]) -> str:
    return "".join("---\n" + json.dumps(p) + "\n" for p in pods)  # JSON is YAML


def podnet_cli(root: Path, name: str, *args: str) -> list[str]:
    exe = [str(PODNET_CLI)] if PODNET_CLI.exists() else [sys.executable, "-m",
                                                         "podnet.cli.main"]
    return [*exe, "--name", name, *args]


def cli_env(root: Path) -> dict[str, str]:
    return {**os.environ, "PODNET_STATE_ROOT": str(root)}


# -- CPU of the cluster's processes -------------------------------------------------------------


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and of its children it has waited for (the
    agents' CNI plugins, ip, nsenter...)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    f = stat.rsplit(")", 1)[1].split()
    return sum(int(x) for x in f[11:15]) / os.sysconf("SC_CLK_TCK")


@dataclass
class Meter:
    """CPU over a phase in % of one core: the server, the agents (with what they ran), this
    process (with its children), and the rest of the machine, which includes the pods' own
    processes and other people's work."""

    server: int
    agents: list[int]
    wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)

    def _read(self) -> tuple[float, float, float, float, int]:
        t = os.times()
        return (proc_cpu(self.server), sum(proc_cpu(p) for p in self.agents),
                t.user + t.system + t.children_user + t.children_system, busy_cpu_seconds(),
                forks())

    @contextlib.contextmanager
    def measure(self) -> Any:
        w, (s0, a0, b0, m0, f0) = time.monotonic(), self._read()
        try:
            yield self
        finally:
            self.wall = time.monotonic() - w
            s1, a1, b1, m1, f1 = self._read()
            wall = self.wall or 1e-9
            server, agents, bench = s1 - s0, a1 - a0, b1 - b0
            self.cpu = {"server_pct": round(100 * server / wall, 1),
                        "agents_pct": round(100 * agents / wall, 1),
                        "bench_pct": round(100 * bench / wall, 1),
                        "rest_pct": round(100 * max(0.0, (m1 - m0) - server - agents - bench)
                                          / wall, 1),
                        "machine_pct": round(100 * (m1 - m0) / wall, 1),
                        "cpu_s": round(m1 - m0, 2), "agents_cpu_s": round(agents, 2),
                        "forks": f1 - f0}


def zombie_children(parents: list[int]) -> int:
    """Processes that have exited but were never waited for by their parent, one of
    `parents` (their slots in the process table are held until the parent reaps them)."""
    count = 0
    want = {str(p) for p in parents}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and fields[1] in want:
            count += 1
    return count


def forks() -> int:
    """Processes (and threads) created on the whole machine since boot (/proc/stat)."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("processes "):
            return int(line.split()[1])
    return 0


# -- watching the pods --------------------------------------------------------------------------


class PodWatch:
    """A watch on the pods of one namespace: when each was first seen bound, Running with a
    podIP, and deleted (time.monotonic())."""

    def __init__(self) -> None:
        self.bound: dict[str, float] = {}
        self.running: dict[str, float] = {}
        self.deleted: dict[str, float] = {}
        self.ip: dict[str, str] = {}
        self.node: dict[str, str] = {}
        self.changed = asyncio.Event()
        self.error: BaseException | None = None

    def on_event(self, ev: Obj) -> None:
        obj = ev.get("object") or {}
        name = (obj.get("metadata") or {}).get("name")
        if not name:
            return
        now = time.monotonic()
        if ev.get("type") == "DELETED":
            self.deleted.setdefault(name, now)
        else:
            node = (obj.get("spec") or {}).get("nodeName")
            if node:
                self.bound.setdefault(name, now)
                self.node[name] = node
            status = obj.get("status") or {}
            if status.get("phase") == "Running" and status.get("podIP"):
                self.running.setdefault(name, now)
                self.ip.setdefault(name, status["podIP"])
        self.changed.set()

    async def run(self, api: Api, ns: str, rv: str) -> None:
        url = f"{api.base}/api/v1/namespaces/{ns}/pods"
        params = {"watch": "1", "resourceVersion": rv, "timeoutSeconds": "1800"}
        try:
            async with api.session(1) as s, s.get(
                    url, params=params,
                    timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as r:
                if r.status != 200:
                    raise RuntimeError(f"watch {url}: {r.status} {(await r.read())[:300]!r}")
                while line := await r.content.readline():
                    self.on_event(orjson.loads(line))
        except asyncio.CancelledError:
            raise
        except BaseException as e:
            self.error = e
            self.changed.set()
            raise

    async def until(self, done: Callable[[], bool], deadline: float) -> bool:
        while not done():
            if self.error is not None:
                raise RuntimeError(f"the watch failed: {self.error!r}")
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 1.0))
        return True


async def list_rv(api: Api, ns: str) -> str:
    async with api.session(1) as s, s.get(f"{api.base}/api/v1/namespaces/{ns}/pods") as r:
        return str((await r.json())["metadata"]["resourceVersion"])


# -- creating and deleting ----------------------------------------------------------------------


async def post_pods(api: Api, ns: str, pods: list[Obj], connections: int) -> dict[str, int]:
    """POST every pod over `connections` keep-alive connections; counts of answers by status."""
    url = f"{api.base}/api/v1/namespaces/{ns}/pods"
    todo = iter(pods)
    answers: dict[str, int] = {}

    async def worker(s: aiohttp.ClientSession) -> None:
        for p in todo:
            try:
                async with s.post(url, data=orjson.dumps(p),
                                  headers={"Content-Type": "application/json"}) as r:
                    await r.read()
                    key = str(r.status)
            except (aiohttp.ClientError, TimeoutError) as e:
                key = type(e).__name__
            answers[key] = answers.get(key, 0) + 1

    async with api.session(connections) as s:
        await asyncio.gather(*(worker(s) for _ in range(connections)))
    return answers


async def delete_pods(api: Api, ns: str, pod_names: list[str],
                      connections: int) -> dict[str, int]:
    url = f"{api.base}/api/v1/namespaces/{ns}/pods"
    todo = iter(pod_names)
    answers: dict[str, int] = {}

    async def worker(s: aiohttp.ClientSession) -> None:
        for name in todo:
            try:
                async with s.delete(f"{url}/{name}") as r:
                    await r.read()
                    key = str(r.status)
            except (aiohttp.ClientError, TimeoutError) as e:
                key = type(e).__name__
            answers[key] = answers.get(key, 0) + 1

    async with api.session(connections) as s:
        await asyncio.gather(*(worker(s) for _ in range(connections)))
    return answers


async def run_cli(argv: list[str], env: dict[str, str], timeout: float) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env=env, cwd=REPO)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except (TimeoutError, asyncio.CancelledError):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(errors="replace")


@dataclass
class Ctx:
    """What a phase needs to know about its cluster."""

    api: Api
    root: Path
    name: str
    file: Path  # the manifest of all the pods
    pods: list[Obj]
    args: argparse.Namespace

    @property
    def pod_names(self) -> list[str]:
        return [p["metadata"]["name"] for p in self.pods]


async def create(ctx: Ctx, ns: str, via: str) -> tuple[float, dict[str, Any]]:
    """Create the pods; (seconds until the last create was answered, details)."""
    t0 = time.monotonic()
    if via == "apply":
        rc, out = await run_cli(podnet_cli(ctx.root, ctx.name, "-n", ns, "apply", "-f",
                                           str(ctx.file)), cli_env(ctx.root),
                                ctx.args.timeout)
        detail: dict[str, Any] = {"exit": rc, "created": out.count(" created")}
        if rc != 0:
            detail["output"] = out[-2000:]
    else:
        detail = {"answers": await post_pods(ctx.api, ns, ctx.pods, ctx.args.connections)}
    return time.monotonic() - t0, detail


async def delete(ctx: Ctx, ns: str, via: str) -> tuple[float, dict[str, Any]]:
    t0 = time.monotonic()
    if via == "apply":
        rc, out = await run_cli(podnet_cli(ctx.root, ctx.name, "-n", ns, "delete", "-f",
                                           str(ctx.file), "--timeout",
                                           str(int(ctx.args.timeout))), cli_env(ctx.root),
                                ctx.args.timeout + 30)
        detail: dict[str, Any] = {"exit": rc}
        if rc != 0:
            detail["output"] = out[-2000:]
    else:
        detail = {"answers": await delete_pods(ctx.api, ns, ctx.pod_names,
                                               ctx.args.connections)}
    return time.monotonic() - t0, detail


# -- the phases ---------------------------------------------------------------------------------


def pod_namespaces(cluster: str) -> list[str]:
    prefix = names.pod_netns(cluster, "")
    try:
        return [n for n in os.listdir(NETNS_DIR) if n.startswith(prefix)]
    except FileNotFoundError:
        return []


def rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else 0.0


def timeline(times: dict[str, float], t0: float) -> dict[str, float]:
    """Seconds from t0 until 10%, 50%, 90% and all of the events."""
    s = sorted(t - t0 for t in times.values())
    if not s:
        return {}
    return {q: round(percentile(s, p), 3) for q, p in
            (("p10_s", 10), ("p50_s", 50), ("p90_s", 90), ("all_s", 100))}


async def pods_round(ctx: Ctx, via: str, server: int, agents: list[int],
                     prof: list[Profiler]) -> dict[str, Any]:
    """One round on the cluster with nodes: create, wait for Running, delete, wait for gone."""
    ns = f"bench-{via}"
    n = len(ctx.pods)
    await create_namespace(ctx.api, ns)
    watch = PodWatch()
    task = asyncio.create_task(watch.run(ctx.api, ns, await list_rv(ctx.api, ns)))
    out: dict[str, Any] = {"via": via, "pods": n, "namespace": ns}
    try:
        # Other people's load right before the round, the cluster idle (its agents' heartbeats
        # are noise): the machine is shared and the figures move with it.
        out["background_cpu_pct"] = await asyncio.to_thread(background_cpu_pct)
        meter = Meter(server, agents)
        log(f"[{via}] creating {n} pods")
        async with contextlib.AsyncExitStack() as stack:
            for p in prof:
                await stack.enter_async_context(p.phase(f"{via}-create"))
            with meter.measure():
                t0 = time.monotonic()
                created_s, detail = await create(ctx, ns, via)
                ok = await watch.until(lambda: len(watch.running) >= n,
                                       t0 + ctx.args.timeout)
                t_up = time.monotonic() - t0
        ips = list(watch.ip.values())
        out["create"] = {
            "seconds_to_created": round(created_s, 3), **detail,
            "all_running": ok, "running": len(watch.running),
            "seconds_to_all_running": round(t_up, 3) if ok else None,
            "pods_per_s": rate(len(watch.running), t_up),
            "bound": timeline(watch.bound, t0), "running_at": timeline(watch.running, t0),
            "unique_ips": len(set(ips)), "ips": len(ips),
            "per_node": {k: list(watch.node.values()).count(k)
                         for k in sorted(set(watch.node.values()))},
            "cpu": meter.cpu}
        log(f"[{via}]   {len(watch.running)}/{n} Running in {t_up:.2f}s "
            f"({out['create']['pods_per_s']}/s); {len(set(ips))} distinct IPs")
        meter = Meter(server, agents)
        log(f"[{via}] deleting {n} pods")
        async with contextlib.AsyncExitStack() as stack:
            for p in prof:
                await stack.enter_async_context(p.phase(f"{via}-delete"))
            with meter.measure():
                t0 = time.monotonic()
                deleted_s, detail = await delete(ctx, ns, via)
                ok = await watch.until(lambda: len(watch.deleted) >= n,
                                       t0 + ctx.args.timeout)
                t_gone = time.monotonic() - t0
                deadline = time.monotonic() + ctx.args.timeout
                while pod_namespaces(ctx.name) and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                t_kernel = time.monotonic() - t0
        await asyncio.sleep(1.5)  # podnet-cni's delayed veth deletions (deleteDelay 1 s)
        out["delete_zombies_under_agents"] = zombie_children(agents)
        out["delete"] = {
            "seconds_to_answered": round(deleted_s, 3), **detail, "all_gone": ok,
            "gone": len(watch.deleted), "seconds_to_all_gone": round(t_gone, 3),
            "pods_per_s": rate(len(watch.deleted), t_gone),
            "gone_at": timeline(watch.deleted, t0),
            "seconds_to_no_pod_netns": round(t_kernel, 3),
            "pod_netns_left": len(pod_namespaces(ctx.name)), "cpu": meter.cpu}
        log(f"[{via}]   {len(watch.deleted)}/{n} gone from the API in {t_gone:.2f}s "
            f"({out['delete']['pods_per_s']}/s); no pod namespace left after {t_kernel:.2f}s")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    return out


async def single_pods(ctx: Ctx, count: int) -> dict[str, Any]:
    """One pod at a time, `count` times: POST until Running with an IP, DELETE until gone
    from the API. The latency of the pipeline with nothing else in it."""
    ns = "bench-single"
    await create_namespace(ctx.api, ns)
    watch = PodWatch()
    task = asyncio.create_task(watch.run(ctx.api, ns, await list_rv(ctx.api, ns)))
    up: list[float] = []
    down: list[float] = []
    try:
        await asyncio.sleep(0.3)
        for i in range(count):
            pod = pod_object(i, ctx.args.echo)
            name = pod["metadata"]["name"]
            t0 = time.monotonic()
            answers = await post_pods(ctx.api, ns, [pod], 1)
            if answers != {"201": 1}:
                raise RuntimeError(f"creating {name}: {answers}")
            if not await watch.until(partial(contains, watch.running, name),
                                     t0 + ctx.args.timeout):
                raise RuntimeError(f"{name} was not Running within {ctx.args.timeout:g}s")
            up.append(watch.running[name] - t0)
            t0 = time.monotonic()
            await delete_pods(ctx.api, ns, [name], 1)
            if not await watch.until(partial(contains, watch.deleted, name),
                                     t0 + ctx.args.timeout):
                raise RuntimeError(f"{name} was not gone within {ctx.args.timeout:g}s")
            down.append(watch.deleted[name] - t0)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    return {"count": count, "running": ms_summary(up), "gone": ms_summary(down)}


async def api_only_round(ctx: Ctx, via: str) -> dict[str, Any]:
    """The same creates and deletes with no nodes: the API's own cost."""
    ns = f"bench-{via}"
    n = len(ctx.pods)
    await create_namespace(ctx.api, ns)
    created_s, cdetail = await create(ctx, ns, via)
    deleted_s, ddetail = await delete(ctx, ns, via)
    return {"via": via, "pods": n, "seconds_to_created": round(created_s, 3),
            "creates_per_s": rate(n, created_s), "create": cdetail,
            "seconds_to_deleted": round(deleted_s, 3), "deletes_per_s": rate(n, deleted_s),
            "delete": ddetail}


async def plumbing_floor(cluster: str, n: int, workers: int) -> dict[str, Any]:
    """`ip` alone: create and plumb n pod namespaces, `workers` at a time (one node namespace
    per worker), then delete them. The namespaces carry the name of a cluster of this run."""
    nodes = [names.node_netns(cluster, names.node_name(i + 1)) for i in range(workers)]
    pods = [names.pod_netns(cluster, str(uuid.uuid4())) for _ in range(n)]
    for node in nodes:
        await netns.arun(["ip", "netns", "add", node])
    todo = iter(enumerate(pods))

    async def plumb(w: int) -> None:
        node = nodes[w]
        for i, pod in todo:
            ip, gw = f"10.{90 + w}.{i // 250}.{i % 250 + 2}", f"10.{90 + w}.255.1"
            veth = f"pf{i:05d}"
            await netns.arun(["ip", "netns", "add", pod])
            await netns.aip_batch(node, [
                f"link add {veth} type veth peer name eth0 netns {pod}",
                f"link set {veth} up", f"address add {gw}/32 dev {veth}",
                f"route add {ip}/32 dev {veth} scope link"])
            await netns.aip_batch(pod, [
                "link set lo up", "link set eth0 up", f"address add {ip}/32 dev eth0",
                f"route add {gw}/32 dev eth0 scope link",
                f"route add default via {gw} dev eth0"])

    todo_del = iter(pods)

    async def unplumb() -> None:
        for pod in todo_del:
            await netns.arun(["ip", "netns", "del", pod])

    t0, c0, f0 = time.monotonic(), busy_cpu_seconds(), forks()
    await asyncio.gather(*(plumb(w) for w in range(workers)))
    up_s, up_cpu, up_forks = time.monotonic() - t0, busy_cpu_seconds() - c0, forks() - f0
    t0 = time.monotonic()
    await asyncio.gather(*(unplumb() for _ in range(workers)))
    down_s = time.monotonic() - t0
    for node in nodes:
        await netns.arun(["ip", "netns", "del", node])
    return {"pods": n, "workers": workers, "seconds_up": round(up_s, 3),
            "pods_per_s": rate(n, up_s), "cpu_ms_per_pod": round(1000 * up_cpu / n, 1),
            "forks_per_pod": round(up_forks / n, 1), "seconds_down": round(down_s, 3),
            "deletes_per_s": rate(n, down_s)}


# -- clusters -----------------------------------------------------------------------------------


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run(coro), where SIGINT and SIGTERM cancel it (every `finally` runs) and then
    raise KeyboardInterrupt (bench.api_bench.interruptible, keeping the result)."""
    box: list[T] = []

    async def keep() -> None:
        box.append(await coro)

    asyncio.run(interruptible(keep()))
    return box[0]


def agent_pids(state: ClusterState) -> list[int]:
    return sorted(p for ps in lifecycle.find_agents(state).values() for p in ps)


def bring_up(name: str, root: Path, nodes: int, cni: str) -> tuple[ClusterState, float]:
    t0 = time.monotonic()
    state = lifecycle.up(name, root, wait=60.0, port=ephemeral_port("127.0.0.1"), nodes=nodes,
                         cni=cni, out=io.StringIO())
    return state, time.monotonic() - t0


def teardown(name: str, root: Path) -> dict[str, Any]:
    """Remove the cluster whatever state it is in; what is left of it afterwards."""
    state = ClusterState.locate(name, root)
    try:
        lifecycle.down(name, root, out=io.StringIO())
    finally:
        for p in lifecycle.find_servers(state) + agent_pids(state):  # this run's, by pid
            lifecycle.stop_process(p)
    return {"netns": [n for n in netns.names() if names.owns_netns(name, n)],
            "servers": lifecycle.find_servers(state), "agents": agent_pids(state)}


def own_netns_left(cluster: str) -> list[str]:
    return [n for n in netns.names() if names.owns_netns(cluster, n)]


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"pods": args.pods, "nodes": args.nodes, "cni": args.cni,
                           "via": args.via, "echo": args.echo}
    root = Path(tempfile.mkdtemp(prefix="podnet-podsbench-", dir="/tmp"))
    tag = secrets.token_hex(3)
    floor_name, api_name, name = f"pf{tag}", f"pa{tag}", f"pb{tag}"
    out["clusters"] = [floor_name, api_name, name]
    pods = [pod_object(i, args.echo) for i in range(args.pods)]
    file = root / "pods.yaml"
    file.write_text(manifest(pods))
    left: dict[str, Any] = {}
    try:
        out["background_cpu_pct"] = wait_quiet(args.wait_quiet, args.wait_quiet_max)

        log(f"baseline: plumbing {args.pods} pod namespaces with ip alone "
            f"({args.floor_workers} at a time)")
        try:
            out["floor"] = run_async(plumbing_floor(floor_name, args.pods, args.floor_workers))
        finally:
            for ns in own_netns_left(floor_name):
                netns.delete(ns)

        log(f"baseline: the API alone (cluster {api_name}, no nodes)")
        try:
            state, _ = bring_up(api_name, root, 0, args.cni)
            ctx = Ctx(Api.from_state(state), root, api_name, file, pods, args)
            out["api_only"] = [run_async(api_only_round(ctx, via))
                               for via in args.via]
        finally:
            left[api_name] = teardown(api_name, root)

        log(f"cluster {name}: {args.nodes} nodes, cni {args.cni}")
        try:
            state, up_s = bring_up(name, root, args.nodes, args.cni)
            out["up_seconds"] = round(up_s, 3)
            server = state.read_pid()
            if server is None:
                raise RuntimeError("the server wrote no pid file")
            agents = agent_pids(state)
            ctx = Ctx(Api.from_state(state), root, name, file, pods, args)
            prof = [Profiler(args.py_spy, args.profile / who, pid) for who, pid in
                    [("server", server)] + [(f"agent{i + 1}", p) for i, p in enumerate(agents)]
                    ] if args.profile else []
            for p in prof:
                assert p.out_dir is not None
                p.out_dir.mkdir(parents=True, exist_ok=True)
            if args.single:
                log(f"one pod at a time, {args.single} times")
                out["single"] = run_async(single_pods(ctx, args.single))
            out["rounds"] = []
            for via in args.via:
                out["rounds"].append(run_async(pods_round(ctx, via, server, agents, prof)))
            if prof:
                out["profile"] = {f"{p.out_dir.name}/{phase}": {"file": f, **hot_spots(Path(f))}
                                  for p in prof if p.out_dir is not None
                                  for phase, f in p.files.items()}
        finally:
            left[name] = teardown(name, root)
    finally:
        # A second Ctrl-C must not cut the teardown short: it is held until the end.
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            for c in (floor_name, api_name, name):
                for ns in own_netns_left(c):
                    netns.delete(ns)
            shutil.rmtree(root, ignore_errors=True)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
    out["left_behind"] = left
    return out


# -- the report ---------------------------------------------------------------------------------


def per_pod(cpu: dict[str, Any], r: dict[str, Any]) -> str:
    """CPU time of the whole machine and of the agents (with their children), and processes
    started, per pod."""
    n = r["pods"] or 1
    return (f"{1000 * cpu['cpu_s'] / n:.0f} ms CPU ({1000 * cpu['agents_cpu_s'] / n:.0f} "
            f"agents), {cpu['forks'] / n:.0f} forks")


def report(run: dict[str, Any], info: dict[str, Any]) -> str:
    floor = run["floor"]
    api = {r["via"]: r for r in run["api_only"]}
    head = [f"== pods benchmark: {run['pods']} pods on {run['nodes']} nodes, cni "
            f"{run['cni']}, {'echo server' if run['echo'] else 'sleep 3600'} per pod ==",
            f"{info['date']}; {info['nproc']} CPUs ({info['cpu']}); kernel {info['kernel']}; "
            f"Python {info['python']}",
            f"Other processes used {run['background_cpu_pct']}% of a core just before the "
            f"run. `podnet up --nodes {run['nodes']}` took {run['up_seconds']}s.", ""]
    main = [["figure", "measured", "goal", "baseline (same run)", "ratio", ""]]
    detail = [["round", "other load before", "created after", "bound: 50% / all",
               "Running: 10% / 50% / 90% / all", "IPs", "per node",
               "CPU: server / agents / bench / rest", "per pod"]]
    deletes = [["round", "answered after", "gone from API: 50% / all", "no pod netns after",
                "CPU: server / agents / bench / rest", "per pod"]]
    for r in run["rounds"]:
        c, d, via = r["create"], r["delete"], r["via"]
        a = api[via]
        how = "podnet apply -f" if via == "apply" else f"POST x{run['connections']}"
        main.append([f"pods/s until all Running with IPs ({how})", f"{c['pods_per_s']:.1f}/s"
                     + ("" if c["all_running"] else f" ({c['running']}/{r['pods']} only)"),
                     f">= {GOAL_PODS_PER_S:.0f}/s", f"API alone: {a['creates_per_s']:.0f} "
                     f"creates/s", f"{c['pods_per_s'] / a['creates_per_s']:.2f}x",
                     "met" if c["all_running"] and c["pods_per_s"] >= GOAL_PODS_PER_S
                     else "MISSED"])
        main.append(["", "", "", f"ip alone: {floor['pods_per_s']:.0f} pods/s",
                     f"{c['pods_per_s'] / floor['pods_per_s']:.2f}x", ""])
        main.append([f"deletes/s until all gone ({how})", f"{d['pods_per_s']:.1f}/s", "",
                     f"API alone: {a['deletes_per_s']:.0f} deletes/s",
                     f"{d['pods_per_s'] / a['deletes_per_s']:.2f}x", ""])
        main.append(["", "", "", f"ip netns del alone: {floor['deletes_per_s']:.0f}/s",
                     f"{d['pods_per_s'] / floor['deletes_per_s']:.2f}x", ""])
        b, ru = c["bound"], c["running_at"]
        cpu = c["cpu"]
        detail.append([via, f"{r['background_cpu_pct']:.0f}%", f"{c['seconds_to_created']:.2f}s",
                       f"{b.get('p50_s', 0):.2f} / {b.get('all_s', 0):.2f}s",
                       " / ".join(f"{ru.get(k, 0):.2f}" for k in
                                  ("p10_s", "p50_s", "p90_s", "all_s")) + "s",
                       f"{c['unique_ips']} distinct of {c['ips']}",
                       " ".join(str(v) for v in c["per_node"].values()),
                       f"{cpu['server_pct']:.0f} / {cpu['agents_pct']:.0f} / "
                       f"{cpu['bench_pct']:.0f} / {cpu['rest_pct']:.0f}%", per_pod(cpu, r)])
        g, cpu = d["gone_at"], d["cpu"]
        deletes.append([via, f"{d['seconds_to_answered']:.2f}s",
                        f"{g.get('p50_s', 0):.2f} / {g.get('all_s', 0):.2f}s",
                        f"{d['seconds_to_no_pod_netns']:.2f}s ({d['pod_netns_left']} left)",
                        f"{cpu['server_pct']:.0f} / {cpu['agents_pct']:.0f} / "
                        f"{cpu['bench_pct']:.0f} / {cpu['rest_pct']:.0f}%", per_pod(cpu, r)])
    base = [f"baselines: ip alone, {floor['workers']} at a time: {floor['pods']} pods plumbed in "
            f"{floor['seconds_up']:.2f}s ({floor['pods_per_s']:.0f}/s; per pod "
            f"{floor['cpu_ms_per_pod']:.0f} ms CPU of the machine, {floor['forks_per_pod']:.0f} "
            f"forks), deleted in {floor['seconds_down']:.2f}s ({floor['deletes_per_s']:.0f}/s)"]
    for via, a in api.items():
        base.append(f"  API alone ({via}): {a['pods']} created in {a['seconds_to_created']:.2f}s "
                    f"({a['creates_per_s']:.0f}/s), deleted in {a['seconds_to_deleted']:.2f}s "
                    f"({a['deletes_per_s']:.0f}/s)")
    one = run.get("single")
    if one:
        base.append(f"  one pod at a time ({one['count']}x, POST): Running after "
                    f"{one['running']['p50_ms']:.0f} ms (median; max "
                    f"{one['running']['max_ms']:.0f}), gone after {one['gone']['p50_ms']:.0f} "
                    f"ms (max {one['gone']['max_ms']:.0f})")
    left = run["left_behind"]
    zombies = ", ".join(f"{r['via']} {r.get('delete_zombies_under_agents', 0)}"
                        for r in run["rounds"])
    base.append(f"  exited children the agents never waited for (zombies), after each round's "
                f"deletions (cumulative): {zombies}")
    tail = ["left behind: " + "; ".join(
        f"{c}: {len(v['netns'])} namespaces, {len(v['servers'])} servers, "
        f"{len(v['agents'])} agents" for c, v in left.items())]
    prof = []
    for phase, p in (run.get("profile") or {}).items():
        prof += ["", f"profile {phase} (py-spy, % of {p['samples']} samples; {p['file']}):",
                 "  self:      " + "; ".join(f"{f} {x}%" for f, x in p["self"][:10]),
                 "  podnet code, inclusive: "
                 + "; ".join(f"{f} {x}%" for f, x in p["inclusive"][:15])]
    return "\n".join([*head, table(main), "", "creating (seconds from the first create; CPU in "
                      "% of one core; 'rest' includes the pods' own processes; per pod: CPU "
                      "time of the machine (of the agents and their children), processes "
                      "started):", table(detail),
                      "", "deleting:", table(deletes), "", *base, *tail, *prof])


# -- the command ----------------------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.pods_bench",
                                description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--pods", type=int, default=200)
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--cni", default="podnet", choices=("podnet", "ptp"))
    p.add_argument("--via", default="apply,post",
                   help="how to create the pods, comma-separated: apply (podnet apply -f of "
                   "one file), post (one POST per pod); each is a round of its own")
    p.add_argument("--connections", type=int, default=4, help="keep-alive connections (post)")
    p.add_argument("--single", type=int, default=5, metavar="N",
                   help="first, one pod at a time N times: the latency with no load (0: skip)")
    p.add_argument("--echo", action="store_true",
                   help="run podnet's echo server in each pod instead of `sleep 3600`")
    p.add_argument("--floor-workers", type=int, default=3,
                   help="pods plumbed at once in the `ip` baseline (default: one per node)")
    p.add_argument("--timeout", type=float, default=180.0,
                   help="give up waiting for a phase after this many seconds")
    p.add_argument("--json", type=Path, help="also write the results to this file")
    p.add_argument("--wait-quiet", type=float, metavar="PCT",
                   help="first wait until other processes use at most PCT%% of a core")
    p.add_argument("--wait-quiet-max", type=float, default=300.0, metavar="SECONDS")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="sample the server and the agents with py-spy while pods are created "
                   "and deleted (perturbs the figures: use a separate run)")
    p.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy", metavar="BIN")
    args = p.parse_args(argv)
    args.via = [v.strip() for v in args.via.split(",") if v.strip()]
    if not args.via or any(v not in ("apply", "post") for v in args.via) or \
            len(set(args.via)) != len(args.via):
        p.error("--via: apply, post or both, comma-separated")
    if not 1 <= args.pods <= MAX_PODS or not 1 <= args.nodes <= 10 or \
            not 1 <= args.connections <= 64 or not 1 <= args.floor_workers <= 16 or \
            not 0 <= args.single <= 50:
        p.error(f"--pods 1..{MAX_PODS}, --nodes 1..10, --connections 1..64, "
                "--floor-workers 1..16, --single 0..50")
    if args.profile is not None and shutil.which(args.py_spy) is None:
        p.error(f"--profile needs py-spy ({args.py_spy} not found; pip install py-spy into a "
                "venv of its own and pass --py-spy PATH)")
    if os.geteuid() != 0:
        p.error("this benchmark creates network namespaces: run it as root")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    for sig in SIGNALS:
        signal.signal(sig, _terminate)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    info = machine()
    try:
        run = run_all(args)
    except KeyboardInterrupt:
        log("interrupted; the clusters were torn down")
        return 130
    run["connections"] = args.connections
    print(report(run, info), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": info, "run": run}, indent=2) + "\n")
        log(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
