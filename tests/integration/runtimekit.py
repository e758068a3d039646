"""What the pod-runtime tests share: a CNI stand-in with real plumbing (`VethCni`: a veth per
pod to the node namespace, a /32 from a small pool), a `Harness` holding a PodManager on a node
namespace of the test's own and what it reported, and small helpers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podnet.kernel import netns
from podnet.lab import names
from podnet.runtime import alive, proc_start_time
from podnet.runtime.pods import PodManager

NODE_IP = "172.18.0.11"
GATEWAY = "10.99.0.1"


class CniError(Exception):
    pass



class VethCni:
    """A CNI stand-in: ptp-style veth to the node namespace, IPs from `pool`."""

    def __init__(self, node_netns: str, pool: list[str]) -> None:
        self.node_netns = node_netns
        self.free = list(pool)
        self.leases: dict[str, str] = {}
        self.calls: list[tuple[str, str, dict[str, str] | None]] = []

    async def add(self, container_id: str, netns_path: str, ifname: str = "eth0",
                  args: dict[str, str] | None = None) -> dict[str, Any]:
        self.calls.append(("ADD", container_id, args))
        if not self.free:
            raise CniError("failed to allocate for range 0: no IP addresses available in range "
                           "set: 10.99.0.2-10.99.0.3")
        ip = self.leases[container_id] = self.free.pop(0)
        veth, pod_ns = names.pod_veth(container_id, ifname), Path(netns_path).name
        await netns.aip_batch(self.node_netns, [
            f"link add {veth} type veth peer name {ifname} netns {pod_ns}",
            f"link set {veth} up", f"addr add {GATEWAY}/32 dev {veth}",
            f"route add {ip}/32 dev {veth}"])
        await netns.aip_batch(pod_ns, [
            f"addr add {ip}/32 dev {ifname}", f"link set {ifname} up",
            f"route add {GATEWAY}/32 dev {ifname} scope link",
            f"route add default via {GATEWAY} dev {ifname}"])
        return {"cniVersion": "1.0.0", "interfaces": [{"name": ifname, "sandbox": netns_path}],
                "ips": [{"address": f"{ip}/32", "gateway": GATEWAY, "interface": 0}]}

    async def delete(self, container_id: str, netns_path: str, ifname: str = "eth0",
                     args: dict[str, str] | None = None) -> None:
        self.calls.append(("DEL", container_id, args))
        ip = self.leases.pop(container_id, None)
        if ip is not None:
            self.free.append(ip)
        veth = names.pod_veth(container_id, ifname)
        rc, _, _ = await netns.arun(["ip", "-n", self.node_netns, "-o", "link", "show",
                                     "dev", veth], check=False)
        if rc == 0:  # as ptp does: synchronously, so that a new ADD can reuse the name
            await netns.arun(["ip", "-n", self.node_netns, "link", "del", veth], check=False)



@dataclass
class Harness:
    """A PodManager on a fresh node namespace, with what it reported."""

    cluster: str
    node_netns: str
    state_dir: Path
    cni: VethCni
    files: Path | None = None  # where hooks' test programs write
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    events: list[tuple[str, str, str, str]] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    manager: PodManager | None = None

    def new_manager(self) -> PodManager:
        async def on_status(pod: dict[str, Any], status: dict[str, Any]) -> None:
            self.statuses.setdefault(pod["metadata"]["uid"], []).append(status)

        async def on_event(pod: dict[str, Any], etype: str, reason: str, message: str) -> None:
            self.events.append((pod["metadata"]["uid"], etype, reason, message))

        async def on_gone(pod: dict[str, Any]) -> None:
            self.gone.append(pod["metadata"]["uid"])

        self.manager = PodManager(cluster=self.cluster, node="node-1", node_ip=NODE_IP,
                                  state_dir=self.state_dir, cni=self.cni, on_status=on_status,
                                  on_event=on_event, on_gone=on_gone)
        return self.manager

    def status(self, uid: str) -> dict[str, Any]:
        return (self.statuses.get(uid) or [{}])[-1]

    def container(self, uid: str, name: str, status: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
        st = status if status is not None else self.status(uid)
        for c in [*st.get("initContainerStatuses", []), *st.get("containerStatuses", [])]:
            if c["name"] == name:
                return dict(c)
        return {}

    def ready(self, uid: str) -> str:
        for c in self.status(uid).get("conditions") or []:
            if c["type"] == "Ready":
                return str(c["status"])
        return ""

    def events_of(self, uid: str) -> list[tuple[str, str, str]]:
        return [e[1:] for e in self.events if e[0] == uid]

    async def until(self, what: str, check: Callable[[], Any], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; statuses: "
                                     f"{json.dumps(self.statuses)[-3000:]}; events: "
                                     f"{self.events[-10:]}")
            await asyncio.sleep(0.02)

    def pod_netns_names(self) -> list[str]:
        return [n for n in netns.names() if n.startswith(f"podnet-{self.cluster}-pod-")]



def own_processes(state_dir: Path) -> list[tuple[int, int]]:
    """The live pause, shim and container processes recorded under a node state dir."""
    found: list[tuple[int, int]] = []
    for d in (state_dir / "pods").glob("*"):
        pids: list[int] = []
        try:
            state = json.loads((d / "state.json").read_text())
            pids += [s["pid"] for s in (state.get("shims") or {}).values()]
            pids.append((state.get("sandbox") or {}).get("pausePid") or 0)
        except (OSError, ValueError):
            pass
        for f in [*d.glob("*.pid")]:
            try:
                pids.append(int(f.read_text()))
            except (OSError, ValueError):
                pass
        for pid in sorted(set(pids)):
            start = proc_start_time(pid) if pid else None
            if start is not None and alive(pid, start):
                found.append((pid, start))
    return found



def deleted(pod: dict[str, Any], grace: int | None = None) -> dict[str, Any]:
    out = json.loads(json.dumps(pod))
    out["metadata"]["deletionTimestamp"] = "2030-01-01T00:00:00Z"
    out["metadata"]["deletionGracePeriodSeconds"] = (
        grace if grace is not None else pod["spec"]["terminationGracePeriodSeconds"])
    return out



def run(h: Harness, body: Callable[[PodManager], Awaitable[None]]) -> None:
    async def main() -> None:
        manager = h.new_manager()
        await manager.start()
        try:
            await body(manager)
        finally:
            await manager.stop()
    asyncio.run(main())

