"""Services and EndpointSlices -> the desired content of a node's proxy table (pure).

`compile_services(services, slices, node)` turns the Kubernetes objects into a `Ruleset`: plain
data that says which elements the table's named sets and maps hold. The rules themselves are
fixed, except for one dispatch rule per distinct endpoint count N in use (see render.py), so
everything a Service change touches is an element.

What a Service port (vip, protocol, port) becomes, following kube-proxy's behaviour:

- its ClusterIP goes into `cluster_ips` (the IPs allocated in the service CIDR);
- with endpoints to use, the port goes into `dispatch[N]` (N = how many) and each endpoint into
  `endpoints[(vip, proto, port, bucket)] = (ip, port)` for buckets 0..N-1, endpoints sorted, so a
  random bucket is a uniform choice;
- the endpoints used are the ready ones; when none is ready, those that are serving and
  terminating (so that terminating pods drain); with none of either, the port goes into
  `no_endpoints` and is rejected;
- endpoints on this node (or of no known node) go into `hairpin`, so that a pod reaching itself
  through its Service is masqueraded (the only node that can see such a packet is its own);
- a NodePort or LoadBalancer Service's node ports become the same elements under the vip
  `NODE_PORT` ("any of the node's own addresses"): (NODE_PORT, proto, nodePort) is dispatched
  over the same endpoints, and render.py puts those keys in the node-port sets and map. Their
  traffic is always masqueraded (externalTrafficPolicy Cluster).

ExternalName and headless Services get nothing. Only IPv4 is handled (the table is `ip`).
`trace()` walks one packet through a Ruleset with the same semantics as the rendered rules; the
unit tests use it as their packet-flow table.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}
NODE_PORT = "0.0.0.0"  # the vip of a node port's keys: any of the node's own addresses
NODE_PORT_TYPES = ("NodePort", "LoadBalancer")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

# (vip, protocol as nft spells it, port)
ServicePort = tuple[str, str, int]
# (vip, protocol, port, bucket) -> (endpoint ip, endpoint port)
EndpointKey = tuple[str, str, int, int]
Endpoint = tuple[str, int]


@dataclass(frozen=True)
class NodeInfo:
    """What the proxy knows of the node it programs, and of the cluster's address plan."""

    name: str
    service_cidr: str = "10.96.0.0/12"
    cluster_cidr: str = "10.244.0.0/16"
    addresses: tuple[str, ...] = ()  # the node's own addresses (only trace() needs them)


# --- reading objects ---------------------------------------------------------------------------

def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


_DOTTED = re.compile(r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
                     r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])")


def _ipv4(text: Any) -> str | None:
    """An IPv4 address in canonical dotted form, else None (a regular expression: parsing
    with ipaddress costs a third of a 10,000-Service compile)."""
    if isinstance(text, str) and _DOTTED.fullmatch(text):
        return text
    return None


def service_ips(service: Obj) -> list[str]:
    """The Service's IPv4 cluster IPs; none for headless and ExternalName Services."""
    spec = _dict(service.get("spec"))
    if spec.get("type") == "ExternalName":
        return []
    ips = [str(x) for x in _list(spec.get("clusterIPs"))] or [str(spec.get("clusterIP") or "")]
    return [ip for ip in (_ipv4(x) for x in ips if x not in ("", "None")) if ip]


def service_key(obj: Obj) -> tuple[str, str]:
    meta = _dict(obj.get("metadata"))
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def slice_service(endpoint_slice: Obj) -> tuple[str, str] | None:
    """The (namespace, name) of the Service a slice belongs to, by its service-name label."""
    meta = _dict(endpoint_slice.get("metadata"))
    name = _dict(meta.get("labels")).get(SERVICE_NAME_LABEL)
    if not isinstance(name, str) or not name:
        return None
    return (str(meta.get("namespace") or ""), name)


@dataclass(frozen=True)
class SliceEndpoint:
    ip: str
    port: int
    ready: bool
    serving: bool
    terminating: bool
    node: str | None


def slice_endpoints(slices: Iterable[Obj], port_name: str, protocol: str) -> list[SliceEndpoint]:
    """The IPv4 endpoints of a Service port across its slices (deduplicated by ip and port).
    A missing `ready` or `serving` condition means true, a missing `terminating` false, as the
    EndpointSlice API says."""
    seen: dict[Endpoint, SliceEndpoint] = {}
    for s in slices:
        if s.get("addressType") != "IPv4":
            continue
        number = None
        for p in _list(s.get("ports")):
            p = _dict(p)
            if str(p.get("name") or "") == port_name and \
                    str(p.get("protocol") or "TCP") == protocol and \
                    isinstance(p.get("port"), int):
                number = int(p["port"])
        if number is None:
            continue
        for ep in _list(s.get("endpoints")):
            ep = _dict(ep)
            cond = _dict(ep.get("conditions"))
            ready = cond.get("ready") is not False
            serving = cond.get("serving") is not False if "serving" in cond else ready
            node = ep.get("nodeName")
            for addr in _list(ep.get("addresses"))[:1]:  # the first address is the one used
                ip = _ipv4(addr)
                if ip is None or (ip, number) in seen:
                    continue
                seen[(ip, number)] = SliceEndpoint(
                    ip, number, ready, serving, cond.get("terminating") is True,
                    node if isinstance(node, str) and node else None)
    return list(seen.values())


def usable(endpoints: Iterable[SliceEndpoint]) -> list[SliceEndpoint]:
    """The endpoints traffic goes to: the ready ones, else the serving and terminating ones."""
    eps = list(endpoints)
    ready = [e for e in eps if e.ready]
    if ready:
        return ready
    return [e for e in eps if e.serving and e.terminating]


# --- compiling ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ServiceRules:
    """What one Service puts in the table."""

    cluster_ips: frozenset[str] = frozenset()
    no_endpoints: frozenset[ServicePort] = frozenset()
    dispatch: tuple[tuple[ServicePort, int], ...] = ()  # port -> endpoint count N
    endpoints: tuple[tuple[EndpointKey, Endpoint], ...] = ()
    hairpin: frozenset[str] = frozenset()


def compile_service(service: Obj, slices: Iterable[Obj], node: NodeInfo) -> ServiceRules:
    """One Service's elements, from its own EndpointSlices."""
    ips = service_ips(service)
    if not ips:
        return ServiceRules()
    slices = list(slices)
    no_endpoints: set[ServicePort] = set()
    dispatch: dict[ServicePort, int] = {}
    endpoints: list[tuple[EndpointKey, Endpoint]] = []
    hairpin: set[str] = set()
    spec = _dict(service.get("spec"))
    node_ports = spec.get("type") in NODE_PORT_TYPES
    for port in _list(spec.get("ports")):
        port = _dict(port)
        protocol = str(port.get("protocol") or "TCP")
        number = port.get("port")
        if protocol not in PROTOCOLS or not isinstance(number, int):
            continue
        eps = sorted((e.ip, e.port, e.node) for e in
                     usable(slice_endpoints(slices, str(port.get("name") or ""), protocol)))
        keys = [(vip, number) for vip in ips]
        if node_ports and isinstance(port.get("nodePort"), int):
            keys.append((NODE_PORT, int(port["nodePort"])))
        for vip, num in keys:
            key: ServicePort = (vip, PROTOCOLS[protocol], num)
            if key in no_endpoints or key in dispatch:
                continue  # a duplicate port (validation forbids it): the first one wins
            if not eps:
                no_endpoints.add(key)
                continue
            dispatch[key] = len(eps)
            for bucket, (ip, ep_port, ep_node) in enumerate(eps):
                endpoints.append(((*key, bucket), (ip, ep_port)))
                if ep_node is None or ep_node == node.name:
                    hairpin.add(ip)
    return ServiceRules(frozenset(ips), frozenset(no_endpoints), tuple(sorted(dispatch.items())),
                        tuple(endpoints), frozenset(hairpin))


@dataclass
class Elements:
    """Elements of the table's named sets and maps (all of them, or what a change adds or
    removes; for removals only the keys of `endpoints` matter)."""

    cluster_ips: set[str] = field(default_factory=set)
    no_endpoints: set[ServicePort] = field(default_factory=set)
    dispatch: dict[int, set[ServicePort]] = field(default_factory=dict)
    endpoints: dict[EndpointKey, Endpoint] = field(default_factory=dict)
    hairpin: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.cluster_ips or self.no_endpoints or self.endpoints or self.hairpin or
                    any(self.dispatch.values()))


@dataclass
class Delta:
    """The element operations that turn one Ruleset into the next. `counts` are the endpoint
    counts in use afterwards; `counts_changed` says whether the dispatch rules must change."""

    remove: Elements
    add: Elements
    counts: tuple[int, ...]
    counts_added: tuple[int, ...]
    counts_removed: tuple[int, ...]

    def __bool__(self) -> bool:
        return bool(self.remove or self.add or self.counts_added or self.counts_removed)


@dataclass
class Ruleset:
    """The whole table's content, kept per Service so that a change to one Service is
    computed from that Service alone. Elements that several Services may share (hairpin IPs,
    endpoint counts, cluster IPs) are reference-counted."""

    services: dict[tuple[str, str], ServiceRules] = field(default_factory=dict)
    n_use: Counter[int] = field(default_factory=Counter)
    hairpin_use: Counter[str] = field(default_factory=Counter)
    ip_use: Counter[str] = field(default_factory=Counter)

    def counts(self) -> tuple[int, ...]:
        """The endpoint counts N in use (one dispatch rule each), ascending."""
        return tuple(sorted(n for n, c in self.n_use.items() if c > 0))

    def elements(self) -> Elements:
        out = Elements()
        for sr in self.services.values():
            _put(out, sr)
        return out

    @staticmethod
    def of(items: Iterable[tuple[tuple[str, str], ServiceRules]]) -> Ruleset:
        """A Ruleset from compiled Services (the first of a key wins)."""
        out = Ruleset()
        unused: set[str] = set()
        for key, sr in items:
            if sr != ServiceRules() and key not in out.services:
                out.services[key] = sr
                out._count(sr, +1, unused, unused)
        return out

    def copy(self) -> Ruleset:
        return Ruleset(dict(self.services), Counter(self.n_use), Counter(self.hairpin_use),
                       Counter(self.ip_use))

    def update(self, changes: Mapping[tuple[str, str], ServiceRules | None]) -> Delta:
        """Apply per-Service changes (None: the Service is gone) in place; return the element
        operations that bring a table holding the old content to the new one."""
        before = set(self.counts())
        remove, add = Elements(), Elements()
        for key, new in changes.items():
            old = self.services.pop(key, ServiceRules())
            if new is not None and new != ServiceRules():
                self.services[key] = new
            else:
                new = ServiceRules()
            if old == new:
                continue
            self._count(old, -1, remove.hairpin, remove.cluster_ips)
            self._count(new, +1, add.hairpin, add.cluster_ips)
            gone, fresh = _diff_service(old, new)
            _merge(remove, gone)
            _merge(add, fresh)
        # an IP dropped by one Service and taken by another in the same change stays
        for name in ("hairpin", "cluster_ips"):
            r, a = getattr(remove, name), getattr(add, name)
            both = r & a
            r -= both
            a -= both
        after = set(self.counts())
        return Delta(remove, add, tuple(sorted(after)), tuple(sorted(after - before)),
                     tuple(sorted(before - after)))

    def _count(self, sr: ServiceRules, step: int, hairpin_edge: set[str],
               ip_edge: set[str]) -> None:
        """Adjust reference counts; note IPs whose count goes to zero (step -1) or leaves
        zero (step +1)."""
        for _, n in sr.dispatch:
            self.n_use[n] += step
            if self.n_use[n] == 0:
                del self.n_use[n]
        for counter, items, edge in ((self.hairpin_use, sr.hairpin, hairpin_edge),
                                     (self.ip_use, sr.cluster_ips, ip_edge)):
            for item in items:
                counter[item] += step
                if (step < 0 and counter[item] == 0) or (step > 0 and counter[item] == 1):
                    edge.add(item)
                if counter[item] == 0:
                    del counter[item]


def _put(out: Elements, sr: ServiceRules) -> None:
    out.cluster_ips |= sr.cluster_ips
    out.no_endpoints |= sr.no_endpoints
    for port, n in sr.dispatch:
        out.dispatch.setdefault(n, set()).add(port)
    out.endpoints.update(sr.endpoints)
    out.hairpin |= sr.hairpin


def _merge(out: Elements, more: Elements) -> None:
    out.no_endpoints |= more.no_endpoints
    for n, ports in more.dispatch.items():
        out.dispatch.setdefault(n, set()).update(ports)
    out.endpoints.update(more.endpoints)


def _diff_service(old: ServiceRules, new: ServiceRules) -> tuple[Elements, Elements]:
    """What changes between two versions of one Service (hairpin and cluster IPs aside: they
    are reference-counted by the caller). A map key whose value changes is removed and
    added."""
    gone, fresh = Elements(), Elements()
    gone.no_endpoints = set(old.no_endpoints - new.no_endpoints)
    fresh.no_endpoints = set(new.no_endpoints - old.no_endpoints)
    old_d, new_d = set(old.dispatch), set(new.dispatch)
    for port, n in old_d - new_d:
        gone.dispatch.setdefault(n, set()).add(port)
    for port, n in new_d - old_d:
        fresh.dispatch.setdefault(n, set()).add(port)
    old_e, new_e = dict(old.endpoints), dict(new.endpoints)
    gone.endpoints = {k: v for k, v in old_e.items() if new_e.get(k) != v}
    fresh.endpoints = {k: v for k, v in new_e.items() if old_e.get(k) != v}
    return gone, fresh


def compile_services(services: Iterable[Obj], slices: Iterable[Obj],
                     node: NodeInfo) -> Ruleset:
    """The Ruleset for all Services of the cluster, as seen from `node`."""
    by_service = group_slices(slices)
    return Ruleset.of((service_key(svc), compile_service(svc, by_service.get(service_key(svc),
                                                                             []), node))
                      for svc in services)


def group_slices(slices: Iterable[Obj]) -> dict[tuple[str, str], list[Obj]]:
    """EndpointSlices by the (namespace, name) of their Service."""
    out: dict[tuple[str, str], list[Obj]] = {}
    for s in slices:
        key = slice_service(s)
        if key is not None:
            out.setdefault(key, []).append(s)
    return out


# --- walking a packet --------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    """What the table does to the first packet of a connection: "DNAT" to one of `targets`,
    "REJECT", "DROP", or "ACCEPT" (not service traffic). `masquerade` lists the targets for
    which the source is rewritten (off-cluster client or hairpin)."""

    action: str
    targets: tuple[Endpoint, ...] = ()
    masquerade: tuple[Endpoint, ...] = ()


def trace(ruleset: Ruleset, node: NodeInfo, src: str, dst: str, proto: str,
          port: int) -> Verdict:
    """The fate of a new connection src -> dst:port/proto arriving at (or leaving) the node,
    with the semantics of the rendered table; `node.addresses` are the node's own (`fib daddr
    type local`)."""
    rules = ruleset.elements()
    local = dst in node.addresses
    key: ServicePort = (NODE_PORT if local else dst, proto, port)
    for n, ports in rules.dispatch.items():
        if key in ports:
            targets = tuple(rules.endpoints[(*key, b)] for b in range(n))
            off_cluster = ipaddress.IPv4Address(src) not in ipaddress.IPv4Network(
                node.cluster_cidr)
            masq = tuple(t for t in targets if local or off_cluster or
                         (t[0] == src and src in rules.hairpin))
            return Verdict("DNAT", targets, masq)
    if key in rules.no_endpoints or dst in rules.cluster_ips:
        return Verdict("REJECT")
    if local:
        return Verdict("ACCEPT")
    if ipaddress.IPv4Address(dst) in ipaddress.IPv4Network(node.service_cidr):
        return Verdict("DROP")
    return Verdict("ACCEPT")
