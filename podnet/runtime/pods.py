"""PodManager: runs the pods bound to a node, as kubelet does (shell).

The agent calls `sync(pod)` with every version of its pods it sees, `forget(uid)` when a pod is
gone from the API, and receives status (`on_status`), events (`on_event`) and "torn down"
(`on_gone`) through callbacks. Each pod has one worker task that owns it: it creates the
sandbox (network namespace and pause, CNI ADD, then the `admit` hook when the agent gives one:
NetworkPolicy programs the pod's IP before any of its containers runs), starts and restarts
containers as podnet.runtime.status plans, runs their probes (podnet.runtime.prober: a
container that fails its liveness or startup probe is killed, then restarted per the
restartPolicy), runs their lifecycle hooks (podnet.runtime.hooks: postStart before a
container counts as started, preStop before SIGTERM, within the grace period), reports status
when it changes, and terminates the pod when it is deleted. Process exits arrive through
pidfds; nothing polls.

A deleted pod terminates as kubelet terminates one: every container is stopped at once (preStop,
SIGTERM, SIGKILL at the end of the grace period); liveness and startup probes stop but readiness
probes go on, and the status keeps being reported, so the pod stays Ready (its endpoints
serving and terminating) for as long as its readiness says and its containers run. Once nothing
runs, the last status goes out (a terminal phase), then the sandbox and the pod's files go and
`on_gone` tells the agent, which deletes the pod for good.

Everything a worker knows is also in `<node state>/pods/<uid>/state.json`, written after each
change, so `start()` of a new PodManager (after the agent was killed) adopts the pods that are
running and learns how the containers that ended meanwhile exited.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import py_compile
import shutil
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from podnet.lab import names
from podnet.runtime import (
    NETNS_DIR,
    STATE_FILE,
    alive,
    containers,
    dnsconfig,
    exec_argv,
    hooks,
    known_pod_uids,
    pod_dir,
    probes,
    proc_start_time,
    sandbox,
)
from podnet.runtime import status as st
from podnet.runtime.prober import ContainerProbes, ProbeRunner

log = logging.getLogger("podnet.runtime")

STATE_VERSION = 1
SANDBOX_RETRY_MAX = 10.0
CNI_TIMEOUT = 120.0
DEFAULT_GRACE = 30
FORGOTTEN_GRACE = 1
FINAL_STATUS_WAIT = 5.0  # how long a deleted pod's last status may take before it goes
# kubelet's words for a container whose end nobody saw
LOST = {"reason": "ContainerStatusUnknown",
        "message": "The container could not be located when the pod was terminated"}
ECHO_SOURCE = Path(__file__).with_name("echo.py")


class CniLike(Protocol):
    async def add(self, container_id: str, netns_path: str, ifname: str = "eth0",
                  args: dict[str, str] | None = None) -> dict[str, Any]: ...

    async def delete(self, container_id: str, netns_path: str, ifname: str = "eth0",
                     args: dict[str, str] | None = None) -> Any: ...


StatusCallback = Callable[[dict[str, Any], dict[str, Any]], Awaitable[None]]
EventCallback = Callable[[dict[str, Any], str, str, str], Awaitable[None]]
GoneCallback = Callable[[dict[str, Any]], Awaitable[None]]
# (pod, its IPs) after CNI ADD, before any container starts; raising fails the sandbox
AdmitCallback = Callable[[dict[str, Any], list[str]], Awaitable[None]]


def _meta(pod: Mapping[str, Any]) -> dict[str, Any]:
    meta = pod.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _spec(pod: Mapping[str, Any]) -> dict[str, Any]:
    spec = pod.get("spec")
    return spec if isinstance(spec, dict) else {}


def _all_containers(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec = _spec(pod)
    return [c for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
            if isinstance(c, dict) and isinstance(c.get("name"), str)]


def _kept_pod(pod: Mapping[str, Any]) -> dict[str, Any]:
    """What the state file keeps of a pod: enough to run and tear it down without the API."""
    meta = _meta(pod)
    keep = ("name", "namespace", "uid", "generation", "labels", "annotations",
            "deletionTimestamp", "deletionGracePeriodSeconds")
    return {"metadata": {k: meta[k] for k in keep if k in meta}, "spec": _spec(pod)}


def _record_to_json(rec: st.Record) -> dict[str, Any]:
    return dataclasses.asdict(rec)


def _record_from_json(data: Mapping[str, Any]) -> st.Record:
    def run(d: object) -> st.Run | None:
        return st.Run(**d) if isinstance(d, dict) else None
    return st.Record(name=str(data["name"]), runs=int(data.get("runs", 0)),
                     current=run(data.get("current")), previous=run(data.get("previous")),
                     backoff=float(data.get("backoff", 0.0)),
                     backoff_at=float(data.get("backoff_at", 0.0)))


class PodManager:
    """Runs the pods bound to one node. See the module docstring for the contract."""

    def __init__(self, *, cluster: str, node: str, node_ip: str, state_dir: Path, cni: CniLike,
                 on_status: StatusCallback, on_event: EventCallback, on_gone: GoneCallback,
                 cluster_dns: str = "10.96.0.10", cluster_domain: str = "cluster.local",
                 host_resolv_conf: Path = Path("/etc/resolv.conf"),
                 admit: AdmitCallback | None = None) -> None:
        self.cluster, self.node, self.node_ip = cluster, node, node_ip
        self.state_dir = Path(state_dir)
        self.cni = cni
        self.cluster_dns = [cluster_dns] if cluster_dns else []
        self.cluster_domain = cluster_domain
        self.host_resolv_conf = host_resolv_conf
        self.on_status, self.on_event, self.on_gone = on_status, on_event, on_gone
        self.admit = admit
        self.echo_path = ECHO_SOURCE
        self.prober = ProbeRunner(NETNS_DIR / names.node_netns(cluster, node))
        self.workers: dict[str, PodWorker] = {}
        self.finished: set[str] = set()  # torn down here; ignored until forgotten
        self.tasks: set[asyncio.Task[Any]] = set()
        self.started = False
        self.stopped = False

    # -- the agent's calls -----------------------------------------------------------------------

    async def start(self) -> None:
        """Adopt the pods on disk and start supervising them."""
        (self.state_dir / "pods").mkdir(parents=True, exist_ok=True)
        self.echo_path = self._compile_echo()
        for uid in known_pod_uids(self.state_dir):
            worker = PodWorker.recover(self, uid)
            self.workers[uid] = worker
            worker.start()
        self.started = True

    def sync(self, pod: dict[str, Any]) -> None:
        """The latest version of a pod bound to this node."""
        uid = _meta(pod).get("uid")
        if not isinstance(uid, str) or not uid or self.stopped or uid in self.finished:
            return
        worker = self.workers.get(uid)
        if worker is None:
            worker = PodWorker(self, uid, pod)
            self.workers[uid] = worker
            worker.start()
        else:
            worker.update(pod)

    def forget(self, uid: str) -> None:
        """The pod is gone from the API: tear it down (without on_gone) if it is still here."""
        self.finished.discard(uid)
        worker = self.workers.get(uid)
        if worker is not None:
            worker.forget()

    def known_uids(self) -> set[str]:
        """The pods this manager runs or tears down, including those adopted from disk. After
        its first list, an agent forgets those the API no longer has."""
        return set(self.workers)

    async def stop(self) -> None:
        """The agent is stopping: leave every pod running, stop watching."""
        self.stopped = True
        workers = list(self.workers.values())
        tasks: list[asyncio.Future[Any]] = [*self.tasks]
        for worker in workers:
            tasks += worker.detach()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for worker in workers:
            worker.persist()
        self.prober.close()

    # -- helpers for workers ---------------------------------------------------------------------

    def _compile_echo(self) -> Path:
        """echo.py compiled once, so that each echo container skips compiling it."""
        target = self.state_dir / "echo.pyc"
        try:
            tmp = target.with_suffix(".pyc.tmp")
            py_compile.compile(str(ECHO_SOURCE), cfile=str(tmp), doraise=True)
            os.replace(tmp, target)
            return target
        except (OSError, py_compile.PyCompileError) as e:
            log.warning("cannot compile the echo server, running it from source: %s", e)
            return ECHO_SOURCE

    def spawn_task(self, coro: Awaitable[Any], what: str) -> None:
        async def run() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed", what)
        task = asyncio.ensure_future(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def host_file(self, path: Path) -> str | None:
        try:
            return path.read_text()
        except OSError:
            return None

    def gone(self, uid: str, worker: PodWorker) -> None:
        if self.workers.get(uid) is worker:
            del self.workers[uid]
            if not worker.forgotten:
                self.finished.add(uid)


class PodWorker:
    """Owns one pod: its sandbox, its containers and its status."""

    def __init__(self, manager: PodManager, uid: str, pod: Mapping[str, Any] | None) -> None:
        self.m = manager
        self.uid = uid
        self.pod: dict[str, Any] = _kept_pod(pod) if pod is not None else {"metadata": {"uid": uid}}
        self.api_status: dict[str, Any] = dict(pod.get("status") or {}) if pod else {}
        self.dir = pod_dir(manager.state_dir, uid)
        self.records: dict[str, st.Record] = {}
        self.shims: dict[str, tuple[int, int]] = {}
        self.watches: dict[str, sandbox.ExitWatch] = {}
        self.exit_events: dict[str, asyncio.Event] = {}
        self.stopping: dict[str, asyncio.Task[None]] = {}
        self.sandbox: dict[str, Any] | None = None
        self.generation = 0
        self.start_time: float | None = None
        self.forgotten = False
        self.orphan = pod is None
        self.heard_from_api = True  # False for a pod adopted from disk until sync() comes
        self.done = False
        self.sandbox_failures = 0
        self.sandbox_retry_at = 0.0
        self.announced_backoff: dict[str, float] = {}
        self.probers: dict[str, ContainerProbes] = {}
        self.probe_seeds: dict[str, Any] = {}  # probe results remembered across agent restarts
        self.stop_grace: dict[str, int] = {}  # a liveness kill's own grace period
        self.post_starts: dict[str, asyncio.Task[None]] = {}  # postStart hooks running
        self.unstarted: set[str] = set()  # running, but their postStart has not succeeded
        self.event_budget = probes.EventBudget()
        self.wanted_status: dict[str, Any] | None = None
        self.sent_status: dict[str, Any] | None = None
        self.sender: asyncio.Task[None] | None = None
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.dirty = False

    # -- identity --------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return str(_meta(self.pod).get("name", ""))

    @property
    def namespace(self) -> str:
        return str(_meta(self.pod).get("namespace", ""))

    @property
    def host_network(self) -> bool:
        return _spec(self.pod).get("hostNetwork") is True

    def hostname(self) -> str:
        """The pod's hostname; a hostNetwork pod has the node's."""
        if self.host_network:
            return self.m.node
        return dnsconfig.uts_hostname(self.pod, self.m.cluster_domain)

    def netns_name(self) -> str:
        if self.sandbox is not None and self.sandbox.get("netns"):
            return str(self.sandbox["netns"])
        if self.host_network:
            return names.node_netns(self.m.cluster, self.m.node)
        return names.pod_netns(self.m.cluster, self.uid)

    def cni_args(self) -> dict[str, str]:
        return sandbox.cni_args(self.namespace, self.name, self.uid)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self.task = asyncio.ensure_future(self.run())

    def update(self, pod: Mapping[str, Any]) -> None:
        kept = _kept_pod(pod)
        self.api_status = dict(pod.get("status") or {})
        self.heard_from_api = True
        if kept != self.pod:
            self.pod = kept
            self.orphan = False
            self.dirty = True
        self.wake.set()

    def forget(self) -> None:
        self.forgotten = True
        self.wake.set()

    def deleting(self) -> bool:
        return self.forgotten or bool(_meta(self.pod).get("deletionTimestamp"))

    def detach(self) -> list[asyncio.Future[Any]]:
        """Stop watching processes (the manager is stopping; they keep running). Returns the
        worker's tasks, for the manager to cancel."""
        for watch in self.watches.values():
            watch.close()
        self.watches.clear()
        tasks: list[asyncio.Future[Any]] = [*self.stopping.values(), *self.post_starts.values()]
        for prober in self.probers.values():
            tasks += prober.stop()
        tasks += [t for t in (self.sender, self.task) if t is not None]
        return tasks

    async def run(self) -> None:
        while not self.done:
            self.wake.clear()
            try:
                delay = await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pod %s/%s (%s): sync failed", self.namespace, self.name, self.uid)
                delay = 2.0
            if self.done:
                break
            await self._sleep(delay)

    async def _sleep(self, delay: float | None) -> None:
        handle = None
        if delay is not None:
            handle = asyncio.get_running_loop().call_later(max(delay, 0.0), self.wake.set)
        try:
            await self.wake.wait()
        finally:
            if handle is not None:
                handle.cancel()

    # -- persistence -----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "pod": self.pod,
            "startTime": self.start_time,
            "generation": self.generation,
            "sandbox": self.sandbox,
            "containers": {n: _record_to_json(r) for n, r in self.records.items()},
            "shims": {n: {"pid": p, "start": s} for n, (p, s) in self.shims.items()},
            "probes": {n: {"containerID": pr.container_id, "results": pr.results()}
                       for n, pr in self.probers.items()},
        }

    def persist(self) -> None:
        if self.done or not self.dir.is_dir():
            return
        tmp = self.dir / (STATE_FILE + ".tmp")
        try:
            tmp.write_bytes(json.dumps(self.state(), separators=(",", ":")).encode())
            os.replace(tmp, self.dir / STATE_FILE)
        except OSError as e:
            log.warning("pod %s: cannot write its state: %s", self.uid, e)
        self.dirty = False

    @classmethod
    def recover(cls, manager: PodManager, uid: str) -> PodWorker:
        """A worker for a pod found on disk, adopting its processes."""
        path = pod_dir(manager.state_dir, uid) / STATE_FILE
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("pod"), dict):
            return cls(manager, uid, None)  # half-made: waits for sync() or forget()
        worker = cls(manager, uid, data["pod"])
        worker.heard_from_api = False  # its status in the API keeps the transition times
        worker.pod = data["pod"]
        worker.start_time = data.get("startTime")
        worker.generation = int(data.get("generation") or 0)
        worker.sandbox = data.get("sandbox") if isinstance(data.get("sandbox"), dict) else None
        for name, rec in (data.get("containers") or {}).items():
            with contextlib.suppress(KeyError, TypeError, ValueError):
                worker.records[name] = _record_from_json(rec)
        if isinstance(data.get("probes"), dict):
            worker.probe_seeds = data["probes"]
        for name, shim in (data.get("shims") or {}).items():
            worker.adopt_shim(name, int(shim["pid"]), int(shim["start"]))
        for name, rec in list(worker.records.items()):
            if rec.current is not None and rec.current.running and name not in worker.shims:
                worker.records[name] = st.exited(rec, 137, time.time(), **LOST)
        sb = worker.sandbox or {}
        if sb.get("ready") and worker.pause_alive():
            worker.watch_pause(int(sb["pausePid"]), int(sb["pauseStart"]))
        log.info("pod %s/%s (%s): adopted", worker.namespace, worker.name, uid)
        return worker

    def adopt_shim(self, name: str, pid: int, start: int) -> None:
        self.shims[name] = (pid, start)
        if alive(pid, start):
            self.watch_shim(name, pid, start)
            self.start_probes(name, adopted=True)
        else:
            self.shim_exited(name, pid, start)

    # -- the sync step ---------------------------------------------------------------------------

    async def step(self) -> float | None:
        if self.deleting():
            return await self.terminate()
        if self.orphan:
            return None  # found on disk without its pod: wait for sync() or forget()
        if self.sandbox is not None and self.sandbox.get("ready") and not self.pause_alive():
            await self.lose_sandbox()
        if self.start_time is None:
            self.start_time = _start_time(self.api_status) or time.time()
            self.dirty = True
        delay = await self.ensure_sandbox()
        ready = bool(self.sandbox and self.sandbox.get("ready"))
        self.kill_unhealthy()
        plan = st.Plan()
        for _ in range(100):  # starting a sidecar can unblock the next init container
            plan = st.plan(self.pod, self.records, time.time(), sandbox_ready=ready,
                           sandbox=self.generation, health=self.health())
            for name in plan.stop:
                self.stop_container(name)
            if not plan.start or self.post_start_running():
                break  # kubelet starts nothing else while a postStart hook runs
            for name in plan.start:
                self.start_container(name)
                if self.post_start_running():
                    break
        if self.dirty:
            self.persist()
        self.announce_backoffs()
        if plan.terminal and not self.running() and ready:
            await self.release_sandbox()
        if self.dirty:
            self.persist()
        self.publish()
        waits = [t - time.time() for t in (plan.wake_at,) if t is not None]
        if delay is not None:
            waits.append(delay)
        return min(waits) if waits else None

    def running(self) -> list[str]:
        return [n for n, r in self.records.items() if r.current is not None and r.current.running]

    def grace_period(self, name: str | None = None) -> float:
        """The deletion's grace period, else the probe's for a container killed for failing
        its liveness or startup probe, else the pod's; 1 s once the pod is gone from the API
        (nobody waits for it any more)."""
        meta, spec = _meta(self.pod), _spec(self.pod)
        grace = meta.get("deletionGracePeriodSeconds")
        if not isinstance(grace, int) and name is not None:
            grace = self.stop_grace.get(name)
        if not isinstance(grace, int):
            grace = spec.get("terminationGracePeriodSeconds")
        if not isinstance(grace, int):
            grace = DEFAULT_GRACE
        if self.forgotten:
            grace = min(grace, FORGOTTEN_GRACE)
        return float(max(grace, 0))

    # -- sandbox ---------------------------------------------------------------------------------

    def pause_alive(self) -> bool:
        sb = self.sandbox or {}
        return alive(sb.get("pausePid"), sb.get("pauseStart"))

    async def ensure_sandbox(self) -> float | None:
        """Create the sandbox when the pod needs one; the delay until a retry on failure."""
        if self.sandbox is not None and (self.sandbox.get("ready") or self.sandbox.get("released")):
            return None
        if st.terminal(self.pod, self.records, self.generation) or (
                self.records and not st.may_recreate_sandbox(self.pod, self.records)):
            return None
        if self.api_status.get("phase") in ("Succeeded", "Failed") and not self.records:
            return None  # finished before this node knew it: never run again
        now = time.time()
        if now < self.sandbox_retry_at:
            return self.sandbox_retry_at - now
        try:
            await self.create_sandbox()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # SandboxError, or a namespace that would not go away
            self.sandbox_failures += 1
            delay = min(2.0 ** (self.sandbox_failures - 1), SANDBOX_RETRY_MAX)
            self.sandbox_retry_at = time.time() + delay
            log.warning("pod %s/%s: %s", self.namespace, self.name, e)
            self.event("Warning", "FailedCreatePodSandBox", f"Failed to create pod sandbox: {e}")
            return delay
        self.sandbox_failures = 0
        return None

    async def create_sandbox(self) -> None:
        m = self.m
        try:
            hostname = self.hostname()
        except ValueError as e:
            raise sandbox.SandboxError(str(e)) from None
        resolv = dnsconfig.resolv_conf(self.pod, host_resolv_conf=m.host_file(m.host_resolv_conf),
                                       cluster_dns=m.cluster_dns, cluster_domain=m.cluster_domain)
        for warning in resolv.warnings:
            self.event("Warning", warning.reason, warning.message)
        host_net = self.host_network
        ips = [m.node_ip] if host_net else []
        node_hosts = m.host_file(Path("/etc/hosts")) if host_net else None
        sandbox.write_pod_files(self.dir, resolv.text, dnsconfig.hosts_file(
            self.pod, ips, cluster_domain=m.cluster_domain, node_hosts=node_hosts))
        self.generation += 1
        netns_name = (names.node_netns(m.cluster, m.node) if host_net
                      else names.pod_netns(m.cluster, self.uid))
        netns_path = NETNS_DIR / netns_name
        self.sandbox = {"netns": netns_name, "hostNetwork": host_net,
                        "generation": self.generation, "ready": False}
        self.dirty = True
        if not host_net:
            await self.cleanup_netns(netns_name)
        try:
            pid, start = await sandbox.start_pause(netns_path, new_netns=not host_net,
                                                   hostname=hostname, pod_dir=self.dir)
        except sandbox.SandboxError:
            await self.discard_sandbox(cni=False)
            raise
        self.sandbox.update(pausePid=pid, pauseStart=start)
        self.watch_pause(pid, start)
        if not host_net:
            try:
                result = await asyncio.wait_for(
                    m.cni.add(self.uid, str(netns_path), ifname="eth0", args=self.cni_args()),
                    CNI_TIMEOUT)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                await self.discard_sandbox(cni=True)
                raise sandbox.SandboxError(
                    f'failed to set up network for sandbox "{netns_name}": {_cni_message(e)}'
                ) from None
            ips = sandbox.pod_ips(result, m.node_ip)
            self.sandbox["cniResult"] = result
            if m.admit is not None:
                try:
                    await asyncio.wait_for(m.admit(self.pod, ips), CNI_TIMEOUT)
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    await self.discard_sandbox(cni=True)
                    raise sandbox.SandboxError(
                        f'failed to admit sandbox "{netns_name}" to the network policy: '
                        f'{e or type(e).__name__}') from None
            sandbox.rewrite_in_place(self.dir / "hosts", dnsconfig.hosts_file(
                self.pod, ips, cluster_domain=m.cluster_domain))
        self.sandbox.update(ready=True, ips=ips)
        self.dirty = True  # written by step() once the containers are started too

    async def cleanup_netns(self, netns_name: str) -> None:
        """A namespace left by an earlier attempt (the agent died in the middle): undo it."""
        if not os.path.lexists(NETNS_DIR / netns_name):
            return
        stray = sandbox.stray_pause(self.dir)
        if stray is not None:
            sandbox.kill_pause(*stray)
        with contextlib.suppress(Exception):
            await self.m.cni.delete(self.uid, str(NETNS_DIR / netns_name), ifname="eth0",
                                    args=self.cni_args())
        await sandbox.delete_netns(netns_name)

    async def discard_sandbox(self, *, cni: bool) -> None:
        """Undo a sandbox that failed half-way; leaks nothing."""
        sb = self.sandbox or {}
        sandbox.kill_pause(sb.get("pausePid"), sb.get("pauseStart"))
        stray = sandbox.stray_pause(self.dir)
        if stray is not None:
            sandbox.kill_pause(*stray)
        self.silence_watch("")
        if not sb.get("hostNetwork"):
            name = str(sb.get("netns") or names.pod_netns(self.m.cluster, self.uid))
            if cni:
                try:
                    await self.m.cni.delete(self.uid, str(NETNS_DIR / name), ifname="eth0",
                                            args=self.cni_args())
                except Exception as e:
                    log.warning("pod %s: CNI DEL after a failed ADD: %s", self.uid, e)
            await sandbox.delete_netns(name)
        self.sandbox = None
        self.persist()

    async def release_sandbox(self) -> None:
        """Take the sandbox down (pause, CNI DEL, namespace), keeping the pod's files. Raises
        when CNI DEL fails, so the caller tries again later."""
        sb = self.sandbox
        if sb is None:
            return
        sandbox.kill_pause(sb.get("pausePid"), sb.get("pauseStart"))
        self.silence_watch("")
        if not sb.get("hostNetwork"):
            name = str(sb.get("netns"))
            if sb.get("ready") or sb.get("cniResult") is not None:
                await asyncio.wait_for(
                    self.m.cni.delete(self.uid, str(NETNS_DIR / name), ifname="eth0",
                                      args=self.cni_args()),
                    CNI_TIMEOUT)
            await sandbox.delete_netns(name)
        sb.update(ready=False, released=True)
        if not self.deleting():
            self.persist()

    async def lose_sandbox(self) -> None:
        """The pause process died: kill the containers, then drop the sandbox; a new one
        follows (kubelet: "Pod sandbox changed, it will be killed and re-created")."""
        self.event("Normal", "SandboxChanged", "Pod sandbox changed, it will be killed and "
                   "re-created.")
        await self.stop_all()
        await self.release_sandbox()
        if self.sandbox is not None:
            self.sandbox = None
            self.persist()

    # -- containers ------------------------------------------------------------------------------

    def container_spec(self, name: str) -> dict[str, Any]:
        for c in _all_containers(self.pod):
            if c["name"] == name:
                return c
        raise KeyError(name)

    def start_container(self, name: str) -> None:
        m = self.m
        c = self.container_spec(name)
        sb = self.sandbox or {}
        ips = [str(ip) for ip in sb.get("ips") or []]
        rec = self.records.get(name, st.Record(name))
        run = rec.runs + 1
        env = containers.container_env(
            self.pod, c, hostname=self.hostname(), pod_ips=ips, host_ip=m.node_ip)
        argv = containers.command_line(self.pod, c, env, echo_path=m.echo_path, node=m.node,
                                       pod_ip=ips[0] if ips else "")
        now = time.time()
        pid = containers.spawn(self.dir, name, int(sb["pausePid"]), argv, env,
                               str(c.get("workingDir") or "/"))
        start = proc_start_time(pid) or 0
        cid = containers.container_id(self.uid, name, run)
        self.records[name] = st.started(rec, now, cid, self.generation)
        self.shims[name] = (pid, start)
        self.dirty = True
        self.watch_shim(name, pid, start)
        self.event("Normal", "Created", f"Created container: {name}")
        self.event("Normal", "Started", f"Started container {name}")
        hook = hooks.parse(c, hooks.POST_START, ips[0] if ips else "")
        if hook is None:
            self.start_probes(name)
            return
        self.unstarted.add(name)
        task = asyncio.ensure_future(self._post_start(name, cid, hook))
        self.post_starts[name] = task
        task.add_done_callback(lambda t: self._post_start_done(name, t))

    # -- lifecycle hooks -------------------------------------------------------------------------

    def hook_env(self, c: Mapping[str, Any]) -> dict[str, str]:
        """The environment a probe's or hook's command runs with: the container's."""
        ips = [str(ip) for ip in (self.sandbox or {}).get("ips") or []]
        try:
            hostname = self.hostname()
        except ValueError:
            hostname = self.name
        return containers.container_env(self.pod, c, hostname=hostname, pod_ips=ips,
                                        host_ip=self.m.node_ip)

    async def perform_hook(self, name: str, hook: hooks.Hook) -> str | None:
        """Run a container's hook; None when it succeeded, else why it failed."""
        try:
            c = self.container_spec(name)
            return await self.m.prober.run_hook(
                hook.action, exec_prefix=lambda: exec_argv(self.m.state_dir, self.uid, name),
                env=self.hook_env(c))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            return str(e) or type(e).__name__

    def hook_failed(self, name: str, hook: hooks.Hook, error: str) -> None:
        log.warning("pod %s/%s: %s", self.namespace, self.name,
                    hooks.failure_message(hook, name, st.pod_ref(self.pod), error))
        self.event("Warning", *hooks.failed_event(hook.kind))

    def post_start_running(self) -> bool:
        return any(not t.done() for t in self.post_starts.values())

    async def _post_start(self, name: str, container_id: str, hook: hooks.Hook) -> None:
        """The container's postStart hook: once it succeeds the container counts as started
        (probes begin); if it fails, the container is killed."""
        error = await self.perform_hook(name, hook)
        rec = self.records.get(name)
        if rec is None or rec.current is None or not rec.current.running or \
                rec.current.container_id != container_id:
            return
        if error is None:
            self.unstarted.discard(name)
            self.dirty = True
            if not self.deleting():
                self.start_probes(name)
        else:
            self.hook_failed(name, hook, error)
            self.stop_container(name, hooks.POST_START_KILL_MESSAGE)
        self.wake.set()

    def _post_start_done(self, name: str, task: asyncio.Task[None]) -> None:
        if self.post_starts.get(name) is task:
            del self.post_starts[name]
        if not task.cancelled() and task.exception() is not None:
            log.error("pod %s: postStart of %s: %r", self.uid, name, task.exception())
        self.wake.set()

    def cancel_post_start(self, name: str) -> None:
        task = self.post_starts.pop(name, None)
        if task is not None and not task.done():
            task.cancel()

    async def run_pre_stop(self, name: str, hook: hooks.Hook, began: float) -> None:
        """Run the preStop hook until it ends or the grace period (looked up as it goes, so
        that a shorter one given later applies) is over, whichever comes first."""
        task = asyncio.ensure_future(self.perform_hook(name, hook))
        try:
            while not task.done():
                left = hooks.hook_deadline(began, self.grace_period(name)) - time.monotonic()
                if left <= 0:
                    log.info("pod %s/%s: preStop hook of %s not completed in the grace period",
                             self.namespace, self.name, name)
                    break
                await asyncio.wait({task}, timeout=min(left, 0.5))
        finally:
            if not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)  # kills an exec hook's processes
        if task.done() and not task.cancelled():
            error = task.result()
            if error is not None:
                self.hook_failed(name, hook, error)

    # -- probes ----------------------------------------------------------------------------------

    def start_probes(self, name: str, *, adopted: bool = False) -> None:
        """Start probing the container's current run, if it has probes."""
        self.stop_probes(name)
        rec = self.records.get(name)
        run = rec.current if rec is not None else None
        if run is None or not run.running:
            return
        try:
            c = self.container_spec(name)
        except KeyError:
            return
        if not any(isinstance(c.get(probes.SPEC_FIELD[k]), dict) for k in probes.KINDS):
            return
        sb = self.sandbox or {}
        ips = [str(ip) for ip in sb.get("ips") or []]
        seed = self.probe_seeds.pop(name, None)
        results = seed.get("results") if isinstance(seed, dict) and seed.get(
            "containerID") == run.container_id else None
        env = self.hook_env(c)
        prober = ContainerProbes(
            self.m.prober, container=c, container_id=run.container_id,
            started_at=run.started_at, pod_ip=ips[0] if ips else "",
            exec_prefix=lambda: exec_argv(self.m.state_dir, self.uid, name), env=env,
            on_change=self.probe_changed, on_unhealthy=self.unhealthy,
            seed=results if isinstance(results, dict) else None, adopted=adopted)
        self.probers[name] = prober
        prober.start()

    def stop_probes(self, name: str) -> None:
        prober = self.probers.pop(name, None)
        if prober is not None:
            prober.stop()
            self.dirty = True

    def probe_changed(self) -> None:
        self.dirty = True
        self.wake.set()

    def unhealthy(self, message: str) -> None:
        """A failed probe attempt: an Unhealthy event, within kubelet's per-pod event budget."""
        allowed, self.event_budget = probes.spend(self.event_budget, time.time())
        if allowed:
            self.event("Warning", "Unhealthy", message)

    def health(self) -> dict[str, st.Health]:
        """What the probes say; a container whose postStart hook has not succeeded has not
        started (so that a sidecar holds the next init container back meanwhile)."""
        out = {name: prober.health() for name, prober in self.probers.items()}
        for name in self.unstarted:
            rec = self.records.get(name)
            if rec is not None and rec.current is not None:
                out[name] = st.Health(rec.current.container_id, started=False, ready=False)
        return out

    def kill_unhealthy(self) -> None:
        """Kill the containers whose liveness or startup probe failed (restarted afterwards
        as plan() decides: unless the restartPolicy is Never)."""
        for name, prober in list(self.probers.items()):
            kind = prober.failed()
            if kind is None or name not in self.shims or name in self.stopping:
                continue
            rec = self.records.get(name)
            if rec is None or rec.current is None:
                continue
            try:
                c = self.container_spec(name)
            except KeyError:
                continue
            restart = st.is_sidecar(c) or st.restart_policy(self.pod) != "Never"
            self.records[name] = st.killed_by_probe(rec, kind)
            self.dirty = True
            grace = prober.probes[kind].grace
            if grace is not None:
                self.stop_grace[name] = grace
            self.stop_container(name, probes.kill_message(name, kind, restart=restart))

    def watch_shim(self, name: str, pid: int, start: int) -> None:
        self.silence_watch(name)
        self.exit_events[name] = asyncio.Event()
        self.watches[name] = sandbox.ExitWatch(pid, lambda: self.shim_exited(name, pid, start))

    def watch_pause(self, pid: int, start: int) -> None:
        self.silence_watch("")
        self.watches[""] = sandbox.ExitWatch(pid, self.wake.set)

    def silence_watch(self, key: str) -> None:
        """Stop caring about a process (it is being killed); it is still reaped."""
        watch = self.watches.pop(key, None)
        if watch is not None:
            watch.silence()

    def shim_exited(self, name: str, pid: int, start: int) -> None:
        """A container's shim ended: record how the container exited."""
        if self.shims.get(name) != (pid, start):
            return
        del self.shims[name]
        self.watches.pop(name, None)
        self.stop_probes(name)
        self.cancel_post_start(name)
        self.unstarted.discard(name)
        self.stop_grace.pop(name, None)
        event = self.exit_events.pop(name, None)
        if event is not None:
            event.set()
        rec = self.records.get(name)
        result = containers.read_exit(self.dir, name)
        if result is None:  # the shim was killed: make sure nothing of the container is left
            containers.signal_group(containers.read_pgid(self.dir, name), signal.SIGKILL)
            if rec is not None:
                self.records[name] = st.exited(rec, 137, time.time(), **LOST)
        elif rec is not None:
            self.records[name] = st.exited(rec, *result)
        self.dirty = True
        self.wake.set()

    def announce_backoffs(self) -> None:
        now = time.time()
        for name, rec in self.records.items():
            last = rec.exited
            if last is None or st.backoff_until(rec, now) is None:
                continue
            if self.announced_backoff.get(name) == last.finished_at:
                continue
            self.announced_backoff[name] = last.finished_at or 0.0
            self.event("Warning", "BackOff", f"Back-off restarting failed container {name} in pod "
                       f"{st.pod_ref(self.pod)}")

    def stop_container(self, name: str, message: str = "") -> None:
        """Start stopping a running container (the grace period is the pod's, looked up as
        it goes, so that a shorter one given later applies)."""
        if name in self.stopping or name not in self.shims:
            return
        self.event("Normal", "Killing", message or f"Stopping container {name}")
        task = asyncio.ensure_future(self._stop(name, time.monotonic()))
        self.stopping[name] = task
        task.add_done_callback(lambda t: self._stopped(name, t))

    def _stopped(self, name: str, task: asyncio.Task[None]) -> None:
        if self.stopping.get(name) is task:
            del self.stopping[name]
        self.wake.set()

    async def _stop(self, name: str, began: float) -> None:
        """The preStop hook if the container has one (and the grace period is above 0),
        then SIGTERM to the container's process group; SIGKILL once the grace period is
        over (hooks.kill_at). Only the run being stopped: a new run started once it ended is
        left alone."""
        sent_term = False
        target = self.shims.get(name)
        if target is None:
            return
        self.cancel_post_start(name)
        hook_end: float | None = None
        hook = self.hook(name, hooks.PRE_STOP)
        if hook is not None and hooks.runs_pre_stop(self.grace_period(name)) and \
                self.pause_alive():
            await self.run_pre_stop(name, hook, began)
            hook_end = time.monotonic()
        while target is not None and self.shims.get(name) == target:
            deadline = hooks.kill_at(began, self.grace_period(name), hook_end)
            pid, start = target
            if not alive(pid, start):
                self.shim_exited(name, pid, start)
                break
            pgid = containers.read_pgid(self.dir, name)
            now = time.monotonic()
            if now >= deadline:
                wait = 0.5 if containers.signal_group(pgid, signal.SIGKILL) else 0.01
            elif not sent_term:
                # no group yet (the shim is starting it) or gone already: look again soon
                sent_term = containers.signal_group(pgid, signal.SIGTERM)
                wait = deadline - now if sent_term else 0.01
            else:
                wait = deadline - now
            event = self.exit_events.get(name)
            if event is None:
                await asyncio.sleep(min(wait, 0.1))
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(max(wait, 0.001), 0.5))

    def hook(self, name: str, kind: str) -> hooks.Hook | None:
        try:
            c = self.container_spec(name)
        except KeyError:
            return None
        ips = (self.sandbox or {}).get("ips") or []
        return hooks.parse(c, kind, str(ips[0]) if ips else "")

    async def stop_all(self) -> None:
        for name in list(self.shims):
            self.stop_container(name)
        if self.stopping:
            await asyncio.gather(*self.stopping.values(), return_exceptions=True)

    # -- deletion --------------------------------------------------------------------------------

    async def terminate(self) -> float | None:
        """One step of the pod's deletion. Every running container is stopped (its preStop
        hook first); meanwhile readiness probes go on and the status is reported as it is,
        so that the pod's endpoints turn serving=<Ready>, terminating=true. Once nothing
        runs: the last status (a terminal phase), then the teardown."""
        for prober in self.probers.values():
            prober.terminating()
        for name in list(self.shims):
            self.stop_container(name)
        if self.shims or self.stopping:
            if self.dirty:
                self.persist()
            self.publish()
            return None  # woken when a container ends, a probe result changes, or an update
        await self.final_status()
        await self.teardown()
        return None

    async def final_status(self) -> None:
        """Report the status once nothing runs, and give it a moment to arrive."""
        self.publish()
        sender = self.sender
        if sender is not None:
            await asyncio.wait({sender}, timeout=FINAL_STATUS_WAIT)

    async def teardown(self) -> None:
        """Stop everything, free the sandbox and the files; then on_gone unless forgotten."""
        for name in list(self.probers):
            self.stop_probes(name)
        for name in list(self.post_starts):
            self.cancel_post_start(name)
        await self.stop_all()
        if self.sandbox is not None:
            await self.release_sandbox()
        elif not self.host_network and os.path.lexists(NETNS_DIR / self.netns_name()):
            await self.cleanup_netns(self.netns_name())
        stray = sandbox.stray_pause(self.dir)
        if stray is not None:
            sandbox.kill_pause(*stray)
        for key in list(self.watches):
            self.silence_watch(key)
        if self.sender is not None:
            self.sender.cancel()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.done = True
        self.m.gone(self.uid, self)
        if not self.forgotten and not self.orphan:
            await self.m.on_gone(self.full_pod())
        log.info("pod %s/%s (%s): torn down", self.namespace, self.name, self.uid)

    def full_pod(self) -> dict[str, Any]:
        return {**self.pod, "status": self.api_status}

    # -- status and events -----------------------------------------------------------------------

    def compute_status(self) -> dict[str, Any]:
        sb = self.sandbox or {}
        return st.pod_status(st.StatusInput(
            pod=self.pod, records=self.records,
            sandbox=st.Sandbox(ready=bool(sb.get("ready")),
                               ips=tuple(str(ip) for ip in sb.get("ips") or ()),
                               generation=self.generation),
            node_ip=self.m.node_ip, now=time.time(), start_time=self.start_time,
            old=self.wanted_status or self.sent_status or self.api_status,
            health=self.health(), terminating=self.deleting(),
            starting=frozenset(self.unstarted)))

    def publish(self) -> None:
        if self.orphan or self.forgotten or not self.heard_from_api:
            return
        status = self.compute_status()
        self.wanted_status = status
        if self.sender is None and status != self.sent_status:
            self.sender = asyncio.ensure_future(self._send())

    async def _send(self) -> None:
        try:
            while self.wanted_status is not None and self.wanted_status != self.sent_status:
                status = self.wanted_status
                try:
                    await self.m.on_status(self.full_pod(), status)
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    log.warning("pod %s/%s: status update failed: %s", self.namespace, self.name,
                                e)
                    await asyncio.sleep(1.0)
                    continue
                self.sent_status = status
        finally:
            self.sender = None

    def event(self, etype: str, reason: str, message: str) -> None:
        if self.orphan:
            return
        self.m.spawn_task(self.m.on_event(self.full_pod(), etype, reason, message),
                          f"event {reason} for pod {self.uid}")


def _start_time(status: Mapping[str, Any]) -> float | None:
    value = status.get("startTime")
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=dt.UTC).timestamp()
    except ValueError:
        return None


def _cni_message(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return text.strip()
