"""The agent's loops. Watch handlers never touch the kernel themselves: they mark work and a
loop does it (routes are recomputed from the cached Nodes; pods go to the pod runtime, which
works per pod; Services and NetworkPolicies are programmed into the node's one nft table by
the proxier and the policy enforcer, which share a lock and the proxier's full syncs)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

from podnet import daemon
from podnet.agent import routes
from podnet.agent.node import (
    VXLAN_MAC_ANNOTATION,
    internal_ip,
    node_object,
    ready_condition,
)
from podnet.api.resources import Resource, lookup
from podnet.client.aio import AsyncClient, Reflector
from podnet.client.http import ApiError, ClientError
from podnet.cluster.state import ClusterState
from podnet.kernel import netns
from podnet.lab import names

log = logging.getLogger("podnet.agent")



def _res(name: str) -> Resource:
    r = lookup(name)
    assert r is not None
    return r


NODES, PODS, EVENTS = _res("nodes"), _res("pods"), _res("events")
SERVICES, SLICES = _res("services"), _res("endpointslices")
NAMESPACES, POLICIES = _res("namespaces"), _res("networkpolicies")
HEARTBEAT = 10.0
# NetworkPolicy rejects with ICMP admin-prohibited, which the kernel rate-limits per
# destination (from the 7th quick denial on, a refused connect waited 1 s here). These limits
# are per network namespace (checked on this kernel: the host's stay as they are), and only
# the node's own namespace is changed.
NODE_ICMP_SYSCTLS = ("net.ipv4.icmp_ratelimit=0", "net.ipv4.icmp_msgs_per_sec=100000",
                     "net.ipv4.icmp_msgs_burst=10000")
Obj = dict[str, Any]


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def conflist(cni: str, pod_cidr: str, mtu: int, node_dir: Path) -> Obj:
    """The CNI network configuration the agent drives, as a container runtime reads it."""
    if cni == "ptp":  # Debian's reference plugins, in place of podnet's own
        plugin: Obj = {"type": "ptp", "ipMasq": False, "mtu": mtu,
                       "ipam": {"type": "host-local", "ranges": [[{"subnet": pod_cidr}]],
                                "routes": [{"dst": "0.0.0.0/0"}],
                                "dataDir": str(node_dir / "ipam")}}
    else:
        plugin = {"type": "podnet-cni", "mtu": mtu,
                  "ipam": {"type": "podnet", "ranges": [[{"subnet": pod_cidr}]],
                           "dataDir": str(node_dir / "ipam")}}
    return {"cniVersion": "1.1.0", "cniVersions": ["1.0.0", "1.1.0"], "name": "podnet",
            "plugins": [plugin]}


class Agent:
    def __init__(self, state: ClusterState, node: str, *, backend: str, cni: str) -> None:
        self.state = state
        self.cluster = state.name
        self.node = node
        self.backend = backend
        self.cni_mode = cni
        self.dir = state.dir / "nodes" / node
        self.ns = names.node_netns(self.cluster, node)
        self.client = AsyncClient.from_state(state)
        self.ip = ""
        self.pod_cidr = ""
        self.routes_dirty = asyncio.Event()
        self.routes_ok = False
        self.cni_ok = False
        self.status_lock = asyncio.Lock()
        self.pods: Any = None
        self.tasks: list[asyncio.Task[Any]] = []
        self.nodes: Reflector | None = None
        self.events_sent: dict[tuple[str, str, str], Obj] = {}
        self.cni_server: Any = None
        self.proxier: Any = None
        self.enforcer: Any = None  # NetworkPolicy (podnet.policy.enforcer)
        self.node_side: Any = None  # the proxy's node-side parts (health ports, speaker)

    # -- start-up ------------------------------------------------------------------------------

    async def node_ip(self) -> str:
        _, out, _ = await netns.arun(["ip", "-n", self.ns, "-j", "-4", "addr", "show", "eth0"])
        for link in json.loads(out):
            for a in link.get("addr_info") or []:
                return str(a["local"])
        raise RuntimeError(f"no IPv4 address on eth0 in {self.ns}")

    async def register(self) -> None:
        """Create the Node (or find it after a restart) and post its first status."""
        mem = 0
        with contextlib.suppress(OSError):
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1])
        obj = node_object(self.node, self.ip, backend=self.backend, cpu=os.cpu_count() or 1,
                          memory_kib=mem, kernel=platform.release(),
                          os_image=_os_image(), arch=_arch())
        try:
            await self.client.create(NODES, None, obj)
            log.info("registered node %s (%s)", self.node, self.ip)
        except ApiError as e:
            if e.status != 409:
                raise
            log.info("node %s was registered before", self.node)
        await self.post_status(ready=False, reason="NetworkNotReady",
                               message="waiting for a podCIDR and routes", base=obj)

    async def post_status(self, *, ready: bool, reason: str, message: str,
                          base: Obj | None = None) -> None:
        current = await self.client.get(NODES, None, self.node)
        status: Obj = dict((base or current).get("status") or {})
        status["conditions"] = ready_condition(
            ready, reason, message, now(), (current.get("status") or {}).get("conditions"))
        await self.client.patch(NODES, None, self.node, {"status": status},
                                subresource="status")

    async def wait_pod_cidr(self) -> str:
        while True:
            node = await self.client.get(NODES, None, self.node)
            cidr = (node.get("spec") or {}).get("podCIDR")
            if cidr:
                return str(cidr)
            await asyncio.sleep(0.1)

    def write_conflist(self) -> Path:
        mtu = 1500 - (routes.VXLAN_OVERHEAD if self.backend == "vxlan" else 0)
        conf_dir = self.dir / "net.d"
        conf_dir.mkdir(parents=True, exist_ok=True)
        path = conf_dir / "10-podnet.conflist"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(conflist(self.cni_mode, self.pod_cidr, mtu, self.dir),
                                  indent=2))
        tmp.replace(path)
        return conf_dir

    # -- loops ---------------------------------------------------------------------------------

    async def run(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ip = await self.node_ip()
        await self.register()
        self.pod_cidr = await self.wait_pod_cidr()
        await netns.arun(["ip", "netns", "exec", self.ns, "sysctl", "-q", "-w",
                          "net.ipv4.ip_forward=1", *NODE_ICMP_SYSCTLS])
        conf_dir = self.write_conflist()
        if self.backend == "vxlan":
            mac = await routes.ensure_vxlan(self.ns, self.ip, self.pod_cidr)
            await self.client.patch(NODES, None, self.node,
                                    {"metadata": {"annotations": {VXLAN_MAC_ANNOTATION: mac}}})
        self.nodes = Reflector(self.client, NODES, None, self._node_event)
        self.tasks.append(asyncio.create_task(self.nodes.run()))
        self.tasks.append(asyncio.create_task(self._routes_loop()))
        self._start_proxy()
        await self._start_pods(conf_dir)
        self.tasks.append(asyncio.create_task(self._heartbeat()))
        self.tasks.append(asyncio.create_task(daemon.collect_now_and_then()))
        await asyncio.gather(*self.tasks)

    def _start_proxy(self) -> None:
        """The service proxy and the policy enforcer, in one table: the proxy's reflectors on
        Services and EndpointSlices, the enforcer's on all Pods (peers live on every node),
        Namespaces and NetworkPolicies. The proxy's first (full) sync, which carries the
        enforcer's objects too, waits until all of them are listed."""
        from podnet.policy.enforcer import Enforcer
        from podnet.proxy import model, parts, proxier, render

        config = self.state.load()
        node = model.NodeInfo(self.node, config.service_cidr, config.cluster_cidr, self.ip)
        table = render.Table.for_node(self.cluster, node)
        lock = asyncio.Lock()  # one transaction on the table at a time
        self.node_side = parts.NodeSide(self.ns, self.ip)
        self.enforcer = Enforcer(self.ns, table, self.node, lock=lock, status_dir=self.dir)
        self.proxier = proxier.Proxier(self.ns, table, node, self.node_side,
                                       sections=(self.enforcer,), lock=lock)
        self.enforcer.request_full = self.proxier.request_full_sync
        reflectors = [Reflector(self.client, SERVICES, None, self.proxier.on_service),
                      Reflector(self.client, SLICES, None, self.proxier.on_slice),
                      Reflector(self.client, PODS, None, self.enforcer.on_pod),
                      Reflector(self.client, NAMESPACES, None, self.enforcer.on_namespace),
                      Reflector(self.client, POLICIES, None, self.enforcer.on_policy)]
        listed = asyncio.Event()

        async def all_listed() -> None:
            for r in reflectors:
                await r.synced.wait()
            if self.nodes is not None:
                await self.nodes.synced.wait()
            listed.set()

        for coro in (*(r.run() for r in reflectors), all_listed(), self.proxier.run(listed),
                     self.enforcer.run()):
            self.tasks.append(asyncio.create_task(coro))

    async def _start_pods(self, conf_dir: Path) -> None:
        from podnet.cni.runtime import CniRuntime
        from podnet.cni.server import CniServer, install_shim
        from podnet.runtime.pods import PodManager

        config = self.state.load()
        # podnet-cni as the runtime execs it: a C shim that hands the call to the CNI server in
        # this process (no interpreter start-up per call), falling back to the Python launcher
        # when the server is down; then the reference plugins where Debian puts them.
        server = CniServer(self.dir / "cni.sock", netns=str(netns.path(self.ns)))
        try:
            server.start()
            self.cni_server = server
        except OSError as e:  # the shim then finds no socket and execs the Python plugin
            log.warning("CNI server not started (podnet-cni runs exec'd): %s", e)
        launcher_dir = self.dir / "cni-bin"
        if not await asyncio.to_thread(install_shim, launcher_dir, server.path):
            log.warning("no podnet-cni shim (no prebuilt one, no C compiler): podnet-cni runs "
                        "as an exec'd Python program")
        bin_dirs = [launcher_dir, Path("/usr/lib/cni"), Path("/opt/cni/bin")]
        cni = CniRuntime(conf_dir, [d for d in bin_dirs if d.is_dir()], self.dir / "cni-cache",
                         host_netns=self.ns)
        self.pods = PodManager(cluster=self.cluster, node=self.node, node_ip=self.ip,
                               state_dir=self.dir, cni=cni, on_status=self._pod_status,
                               on_event=self._pod_event, on_gone=self._pod_gone,
                               admit=self.enforcer.admit if self.enforcer else None,
                               # kubelet without a cluster DNS: ClusterFirst pods fall back to
                               # Default, with a MissingClusterDNS event
                               cluster_dns=config.cluster_dns if config.dns else "",
                               cluster_domain=config.cluster_domain)
        await self.pods.start()
        await self._network_ready(cni)
        # Attachments left by a crash (an ADD whose pod the runtime never recorded): before any
        # new ADD starts, everything the runtime does not run is garbage.
        try:
            await cni.gc([(uid, "eth0") for uid in self.pods.known_uids()])
        except Exception as e:
            log.warning("CNI GC at start-up: %s", e)
        reflector = Reflector(self.client, PODS, None, self._pod_event_from_api,
                              field_selector=f"spec.nodeName={self.node}")
        self.tasks.append(asyncio.create_task(reflector.run()))
        self.tasks.append(asyncio.create_task(self._forget_vanished(reflector)))

    async def _network_ready(self, cni: Any) -> None:
        """Wait until the CNI network answers STATUS, keeping the Node NotReady meanwhile."""
        from podnet.cni.spec import CniError

        while True:
            try:
                await cni.status()
                self.cni_ok = True
                await self._post_readiness()
                return
            except CniError as e:
                log.warning("CNI network not ready: %s", e)
                with contextlib.suppress(ClientError):
                    async with self.status_lock:
                        await self.post_status(ready=False, reason="NetworkPluginNotReady",
                                               message=f"network plugin is not ready: {e}")
                await asyncio.sleep(2)

    def _node_event(self, kind: str, obj: Obj) -> None:
        self.routes_dirty.set()
        if self.proxier is not None:
            self.proxier.on_node(kind, obj)

    async def _routes_loop(self) -> None:
        while True:
            await self.routes_dirty.wait()
            self.routes_dirty.clear()
            assert self.nodes is not None
            peers = []
            for n in self.nodes.objects.values():
                name = n["metadata"]["name"]
                cidr = (n.get("spec") or {}).get("podCIDR")
                ip = internal_ip(n)
                if name == self.node or not cidr or not ip:
                    continue
                mac = (n["metadata"].get("annotations") or {}).get(VXLAN_MAC_ANNOTATION)
                peers.append(routes.Peer(name, ip, cidr, mac))
            try:
                await routes.sync(self.ns, self.backend, peers)
                if not self.routes_ok:
                    self.routes_ok = True
                    await self._post_readiness()
            except Exception:
                log.exception("syncing routes; retrying")
                await asyncio.sleep(1)
                self.routes_dirty.set()

    async def _post_readiness(self) -> None:
        """Ready once the CNI network answers and the routes to other nodes are in place.
        One post at a time, deciding inside the lock: otherwise a NotReady decided earlier
        can land after a Ready and hold the node NotReady until the next heartbeat."""
        async with self.status_lock:
            if self.routes_ok and self.cni_ok:
                await self.post_status(ready=True, reason="KubeletReady",
                                       message="podnet agent is posting ready status")
            else:
                await self.post_status(ready=False, reason="NetworkNotReady",
                                       message="routes are not programmed yet" if self.cni_ok
                                       else "the CNI network is not ready yet")

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            with contextlib.suppress(ClientError):
                await self._post_readiness()

    # -- pods ----------------------------------------------------------------------------------

    async def _forget_vanished(self, reflector: Reflector) -> None:
        """Pods deleted while the agent was down: the runtime still has them, the API not."""
        await reflector.synced.wait()
        for uid in self.pods.known_uids() - set(reflector.objects):
            log.info("pod %s is gone from the API; tearing it down", uid)
            self.pods.forget(uid)

    def _pod_event_from_api(self, kind: str, pod: Obj) -> None:
        if kind == "DELETED":
            self.pods.forget(pod["metadata"]["uid"])
        else:
            self.pods.sync(pod)

    async def _pod_status(self, pod: Obj, status: Obj) -> None:
        meta = pod["metadata"]
        try:
            await self.client.patch(PODS, meta["namespace"], meta["name"], {"status": status},
                                    subresource="status")
        except ApiError as e:
            if e.status != 404:
                log.warning("status of %s/%s: %s", meta["namespace"], meta["name"], e.message)

    async def _pod_gone(self, pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete(PODS, meta["namespace"], meta["name"], {
                "apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                "preconditions": {"uid": meta["uid"]}})
        except ApiError as e:
            if e.status not in (404, 409):
                log.warning("deleting %s/%s: %s", meta["namespace"], meta["name"], e.message)

    async def _pod_event(self, pod: Obj, type_: str, reason: str, message: str) -> None:
        """Record an Event on the pod, counting repeats as kubelet's recorder does."""
        meta = pod["metadata"]
        key = (meta["uid"], reason, message)
        stamp = now()
        try:
            seen = self.events_sent.get(key)
            if seen is not None:
                seen["count"] += 1
                seen["lastTimestamp"] = stamp
                await self.client.patch(EVENTS, meta["namespace"], seen["metadata"]["name"],
                                        {"count": seen["count"], "lastTimestamp": stamp})
                return
            ev = {"apiVersion": "v1", "kind": "Event",
                  # Named as kubelet names them: the object's name and a nanosecond stamp.
                  "metadata": {"name": f"{meta['name']}.{time.time_ns():x}",
                               "namespace": meta["namespace"]},
                  "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                                     "namespace": meta["namespace"], "uid": meta["uid"]},
                  "type": type_, "reason": reason, "message": message,
                  "source": {"component": "kubelet", "host": self.node},
                  "reportingComponent": "kubelet", "reportingInstance": self.node,
                  "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1}
            self.events_sent[key] = await self.client.create(EVENTS, meta["namespace"], ev)
        except ClientError as e:
            log.warning("event %s on %s/%s: %s", reason, meta["namespace"], meta["name"], e)

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        if self.pods is not None:
            await self.pods.stop()
        if self.cni_server is not None:
            self.cni_server.stop()
        if self.node_side is not None:
            await self.node_side.close()
        await self.client.close()


def _os_image() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return "Linux"


def _arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)
