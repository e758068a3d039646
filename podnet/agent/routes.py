"""Routes from one node to the others' pod CIDRs.

host-gw (default): the nodes share a LAN, so `<peer podCIDR> via <peer LAN IP> dev eth0`.
vxlan: for nodes that don't share a LAN. Each node has `vxlan0` (VNI 1, UDP 8472) holding the
network address of its podCIDR as a /32 (its VTEP address, flannel style); a peer's podCIDR is
routed `via <peer VTEP> dev vxlan0 onlink`, with a permanent neighbour entry (peer VTEP -> peer
vxlan0 MAC) and a forwarding entry (peer MAC -> peer LAN IP). Each node publishes its vxlan0 MAC
in an annotation on its Node.

Routes podnet adds carry protocol 44, so the agent can list exactly its own and remove those of
nodes that are gone without reading or touching anything else.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

from podnet.kernel import netns

PROTO = "44"
VXLAN_DEV = "vxlan0"
VXLAN_VNI = 1
VXLAN_PORT = 8472
VXLAN_OVERHEAD = 50


@dataclass(frozen=True)
class Peer:
    name: str
    ip: str
    pod_cidr: str
    vxlan_mac: str | None = None

    @property
    def vtep(self) -> str:
        return str(ipaddress.ip_network(self.pod_cidr).network_address)


@dataclass(frozen=True)
class Desired:
    routes: dict[str, str]  # dst -> the rest of an `ip route replace` command
    neighbours: dict[str, str]  # vtep ip -> mac
    fdb: dict[str, str]  # mac -> peer LAN ip


def desired(backend: str, peers: list[Peer]) -> Desired:
    """What the node's routing should hold for `peers` (pure)."""
    routes: dict[str, str] = {}
    neigh: dict[str, str] = {}
    fdb: dict[str, str] = {}
    for p in sorted(peers, key=lambda p: p.name):
        if backend == "vxlan":
            if not p.vxlan_mac:
                continue  # its agent has not published its VTEP yet
            routes[p.pod_cidr] = f"via {p.vtep} dev {VXLAN_DEV} onlink"
            neigh[p.vtep] = p.vxlan_mac
            fdb[p.vxlan_mac] = p.ip
        else:
            routes[p.pod_cidr] = f"via {p.ip} dev eth0"
    return Desired(routes, neigh, fdb)


def commands(want: Desired, have_routes: set[str], have_neigh: dict[str, str],
             have_fdb: dict[str, str]) -> tuple[list[str], list[str]]:
    """`ip` and `bridge` commands that move the node from what it has to what it wants."""
    ip_cmds = [f"route replace {dst} {rest} proto {PROTO}"
               for dst, rest in want.routes.items()]
    ip_cmds += [f"route del {dst} proto {PROTO}" for dst in sorted(have_routes - set(want.routes))]
    ip_cmds += [f"neigh replace {ip} lladdr {mac} dev {VXLAN_DEV} nud permanent"
                for ip, mac in want.neighbours.items() if have_neigh.get(ip) != mac]
    ip_cmds += [f"neigh del {ip} dev {VXLAN_DEV}" for ip in sorted(set(have_neigh) -
                                                                    set(want.neighbours))]
    br_cmds = [f"fdb replace {mac} dev {VXLAN_DEV} dst {ip} self permanent"
               for mac, ip in want.fdb.items() if have_fdb.get(mac) != ip]
    br_cmds += [f"fdb del {mac} dev {VXLAN_DEV} self" for mac in sorted(set(have_fdb) -
                                                                         set(want.fdb))]
    return ip_cmds, br_cmds


# -- the shell ---------------------------------------------------------------------------------

async def ensure_vxlan(ns: str, local_ip: str, pod_cidr: str) -> str:
    """Create vxlan0 in the node's namespace if missing; return its MAC."""
    rc, out, _ = await netns.arun(["ip", "-n", ns, "-j", "link", "show", VXLAN_DEV],
                                  check=False)
    if rc != 0:
        vtep = ipaddress.ip_network(pod_cidr).network_address
        await netns.aip_batch(ns, [
            f"link add {VXLAN_DEV} type vxlan id {VXLAN_VNI} dstport {VXLAN_PORT} "
            f"local {local_ip} dev eth0 nolearning",
            f"addr add {vtep}/32 dev {VXLAN_DEV}",
            f"link set {VXLAN_DEV} up"])
        _, out, _ = await netns.arun(["ip", "-n", ns, "-j", "link", "show", VXLAN_DEV])
    return str(json.loads(out)[0]["address"])


async def current(ns: str, backend: str) -> tuple[set[str], dict[str, str], dict[str, str]]:
    _, out, _ = await netns.arun(["ip", "-n", ns, "-j", "route", "show", "proto", PROTO])
    have_routes = {r["dst"] for r in json.loads(out or "[]")}
    neigh: dict[str, str] = {}
    fdb: dict[str, str] = {}
    if backend == "vxlan":
        _, out, _ = await netns.arun(["ip", "-n", ns, "-j", "neigh", "show", "dev", VXLAN_DEV,
                                      "nud", "permanent"], check=False)
        neigh = {n["dst"]: n.get("lladdr", "") for n in json.loads(out or "[]")}
        _, out, _ = await netns.arun(["bridge", "-n", ns, "-j", "fdb", "show", "dev",
                                      VXLAN_DEV], check=False)
        fdb = {f["mac"]: f["dst"] for f in json.loads(out or "[]")
               if f.get("dst") and f.get("mac") != "00:00:00:00:00:00"}
    return have_routes, neigh, fdb


async def sync(ns: str, backend: str, peers: list[Peer]) -> int:
    """Bring the node's routes in line with `peers`; returns how many commands it ran."""
    want = desired(backend, peers)
    ip_cmds, br_cmds = commands(want, *await current(ns, backend))
    await netns.aip_batch(ns, ip_cmds)
    if br_cmds:
        await netns.arun(["bridge", "-n", ns, "-batch", "-"], input="\n".join(br_cmds) + "\n")
    return len(ip_cmds) + len(br_cmds)
