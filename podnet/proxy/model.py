"""Services and EndpointSlices -> the desired content of a node's proxy table (pure).

`compile_service(service, slices, node)` turns one Service into `ServiceRules`: a set of
entries, each one element of one of the table's named sets, maps or per-Service chains (see
render.py for the table). Rules that never change hang off those sets, so everything a Service
change touches is an entry. A `Ruleset` holds the entries of all Services, reference-counted
(several Services may need the same element); `Ruleset.update` turns per-Service changes into
a `Delta`, the element operations that bring the table from the old content to the new.

A Service port is reached through keys `(ip, protocol, port)`:

- internal keys: each ClusterIP with the port;
- external keys: the node's own IP with the nodePort (NodePort and LoadBalancer; kube-proxy's
  nftables mode also answers node ports on the primary node IP only), each
  status.loadBalancer.ingress IP and each spec.externalIPs entry with the port.

What a key gets, following kube-proxy's behaviour:

- the endpoints used are the ready ones; when none is ready, the serving and terminating ones
  (so that terminating pods drain); with none of either the key goes into `no-endpoints` and
  is rejected;
- "cluster view": `svc-n<N>` holds the key and `eps` its N endpoints by bucket 0..N-1, sorted,
  so that `numgen random mod N` is a uniform choice. internalTrafficPolicy Local restricts an
  internal key's cluster view to this node's endpoints; with none here it is dropped (`drop`);
- externalTrafficPolicy Cluster: external keys are masqueraded (`masq`), and use the cluster
  view;
- externalTrafficPolicy Local: an external key is in `local-keys`; traffic from outside the pod
  network uses its "local view" (`local-n<N>` and `local-eps`: this node's endpoints, the
  client's IP kept) or is dropped when this node has none (`drop`); traffic from pods (and,
  masqueraded, from the node itself) short-circuits to the cluster view, as in kube-proxy;
- loadBalancerSourceRanges guard the LoadBalancer keys: `fw-keys` holds them, `fw-allow` the
  (key, source range) pairs allowed;
- sessionAffinity ClientIP: the key's cluster view is an `affinity` verdict-map element that
  jumps to a chain of its own, which remembers each client's endpoint for timeoutSeconds in one
  timed set per endpoint (kube-proxy's layout, kept to the few Services that ask for it); the
  local view has no affinity;
- endpoints on this node go into `hairpin` (a pod reaching itself through its Service is
  masqueraded; only its own node sees such a packet).

ExternalName and headless Services get nothing. Only IPv4 is handled (the table is `ip`).
`trace()` walks one packet through a Ruleset with the semantics of the rendered rules; the unit
tests use it as their packet-flow table.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}
NODE_PORT_TYPES = ("NodePort", "LoadBalancer")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_AFFINITY_TIMEOUT = 10800  # seconds: the API's default for ClientIP

# (ip, protocol as nft spells it, port)
ServicePort = tuple[str, str, int]
Endpoint = tuple[str, int]
ServiceKey = tuple[str, str]

# The table's objects that hold entries. Dispatch sets are named per endpoint count N.
CLUSTER_IPS = "cluster-ips"
NO_ENDPOINTS = "no-endpoints"
DROP = "no-local"
MASQ = "masq-keys"
LOCAL_KEYS = "local-keys"
HAIRPIN = "hairpin"
EPS = "eps"
LOCAL_EPS = "local-eps"
FW_KEYS = "fw-keys"
FW_ALLOW = "fw-allow"
AFFINITY = "affinity"
CHAIN = "chain"  # entries (CHAIN, (name,)) -> the chain's definition (see AffinityChain)
TIMED_SET = "timed-set"  # entries (TIMED_SET, (name,)) -> (timeout,)
SVC_PREFIX = "svc-n"
LOCAL_PREFIX = "local-n"


def dispatch_obj(n: int) -> str:
    return f"{SVC_PREFIX}{n}"


def local_dispatch_obj(n: int) -> str:
    return f"{LOCAL_PREFIX}{n}"


def dispatch_count(obj: str) -> tuple[str, int] | None:
    """("svc"|"local", N) for a dispatch set's name, else None."""
    for prefix, kind in ((SVC_PREFIX, "svc"), (LOCAL_PREFIX, "local")):
        if obj.startswith(prefix) and obj[len(prefix):].isdigit():
            return kind, int(obj[len(prefix):])
    return None


# An entry: (object, key, value). Sets have value None; maps the mapped value; chains and
# timed sets their definition.
Entry = tuple[str, tuple[Any, ...], Any]


@dataclass(frozen=True)
class AffinityChain:
    """The chain of one Service port key with ClientIP affinity: remembered clients go back to
    their endpoint (`endpoints` are (set name, ip, port)), others pick one at random."""

    timeout: int
    proto: str
    endpoints: tuple[tuple[str, str, int], ...]


@dataclass(frozen=True)
class AffinityEndpoint:
    """The chain of one endpoint of an affinity key: remember the client, then DNAT."""

    set_name: str
    proto: str
    ip: str
    port: int


@dataclass(frozen=True)
class NodeInfo:
    """What the proxy knows of the node it programs, and of the cluster's address plan."""

    name: str
    service_cidr: str = "10.96.0.0/12"
    cluster_cidr: str = "10.244.0.0/16"
    ip: str = ""  # the node's primary IP: node ports are served there ("" = none)


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


def load_balancer_ips(service: Obj) -> list[str]:
    """The IPv4 addresses in status.loadBalancer.ingress of a LoadBalancer Service."""
    if _dict(service.get("spec")).get("type") != "LoadBalancer":
        return []
    ingress = _list(_dict(_dict(service.get("status")).get("loadBalancer")).get("ingress"))
    return [ip for ip in (_ipv4(_dict(i).get("ip")) for i in ingress) if ip]


def external_ips(service: Obj) -> list[str]:
    return [ip for ip in (_ipv4(x) for x in _list(_dict(service.get("spec")).get("externalIPs")))
            if ip]


def service_key(obj: Obj) -> ServiceKey:
    meta = _dict(obj.get("metadata"))
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def slice_service(endpoint_slice: Obj) -> ServiceKey | None:
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


def _source_ranges(spec: Obj) -> list[str] | None:
    """loadBalancerSourceRanges, collapsed (nft refuses overlapping intervals); None when
    every source is allowed."""
    nets = []
    for text in _list(spec.get("loadBalancerSourceRanges")):
        try:
            nets.append(ipaddress.IPv4Network(str(text).strip(), strict=False))
        except ValueError:
            continue  # validation rejects these; IPv6 ranges do not apply to an ip table
    if not nets:
        return None
    merged = list(ipaddress.collapse_addresses(nets))
    if any(n.prefixlen == 0 for n in merged):
        return None
    return [str(n) for n in merged]


def _affinity_timeout(spec: Obj) -> int | None:
    if spec.get("sessionAffinity") != "ClientIP":
        return None
    config = _dict(_dict(spec.get("sessionAffinityConfig")).get("clientIP"))
    timeout = config.get("timeoutSeconds")
    return timeout if isinstance(timeout, int) and timeout > 0 else DEFAULT_AFFINITY_TIMEOUT


def _short(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def affinity_chain_name(key: ServicePort, timeout: int) -> str:
    return f"aff-{_short(f'{key[0]}/{key[1]}/{key[2]}/{timeout}', 12)}"


# --- compiling ---------------------------------------------------------------------------------

ServiceRules = frozenset[Entry]
EMPTY: ServiceRules = frozenset()


def _dispatch(entries: set[Entry], key: ServicePort, eps: list[Endpoint], *,
              local: bool) -> None:
    obj, eps_obj = (local_dispatch_obj, LOCAL_EPS) if local else (dispatch_obj, EPS)
    entries.add((obj(len(eps)), key, None))
    for bucket, ep in enumerate(eps):
        entries.add((eps_obj, (*key, bucket), ep))


def _affinity(entries: set[Entry], key: ServicePort, eps: list[Endpoint], timeout: int) -> None:
    chain = affinity_chain_name(key, timeout)
    members = []
    for ip, port in eps:
        set_name = f"{chain}-{_short(f'{ip}:{port}', 8)}"
        members.append((set_name, ip, port))
        entries.add((TIMED_SET, (set_name,), (timeout,)))
        entries.add((CHAIN, (set_name,), AffinityEndpoint(set_name, key[1], ip, port)))
    entries.add((CHAIN, (chain,), AffinityChain(timeout, key[1], tuple(members))))
    entries.add((AFFINITY, key, chain))


def compile_service(service: Obj, slices: Iterable[Obj], node: NodeInfo) -> ServiceRules:
    """One Service's entries, from its own EndpointSlices."""
    ips = service_ips(service)
    if not ips:
        return EMPTY
    slices = list(slices)
    spec = _dict(service.get("spec"))
    entries: set[Entry] = {(CLUSTER_IPS, (ip,), None) for ip in ips}
    lb_ips = load_balancer_ips(service)
    outside = [*lb_ips, *(ip for ip in external_ips(service) if ip not in lb_ips)]
    node_ports = spec.get("type") in NODE_PORT_TYPES and bool(node.ip)
    etp_local = spec.get("externalTrafficPolicy") == "Local"
    itp_local = spec.get("internalTrafficPolicy") == "Local"
    ranges = _source_ranges(spec) if lb_ips else None
    timeout = _affinity_timeout(spec)
    seen: set[ServicePort] = set()
    for port in _list(spec.get("ports")):
        port = _dict(port)
        protocol = str(port.get("protocol") or "TCP")
        number = port.get("port")
        if protocol not in PROTOCOLS or not isinstance(number, int):
            continue
        proto = PROTOCOLS[protocol]
        found = usable(slice_endpoints(slices, str(port.get("name") or ""), protocol))
        all_eps = sorted((e.ip, e.port) for e in found)
        local_eps = sorted((e.ip, e.port) for e in found if e.node == node.name)
        entries.update((HAIRPIN, (e.ip, e.ip), None) for e in found
                       if e.node is None or e.node == node.name)
        internal = [(ip, proto, number) for ip in ips]
        external = [(ip, proto, number) for ip in outside]
        if node_ports and isinstance(port.get("nodePort"), int):
            external.append((node.ip, proto, int(port["nodePort"])))
        for key in internal + external:
            if key in seen:
                continue  # a duplicate port (validation forbids it): the first one wins
            seen.add(key)
            if not all_eps:
                entries.add((NO_ENDPOINTS, key, None))
                continue
            is_external = key not in internal
            view = local_eps if itp_local and not is_external else all_eps
            if is_external and etp_local:
                entries.add((LOCAL_KEYS, key, None))
                if local_eps:
                    _dispatch(entries, key, local_eps, local=True)
                else:
                    entries.add((DROP, key, None))  # from outside: no local endpoint
            elif is_external:
                entries.add((MASQ, key, None))
            if key[0] in lb_ips and ranges is not None:
                entries.add((FW_KEYS, key, None))
                entries.update((FW_ALLOW, (*key, r), None) for r in ranges)
            if not view:
                entries.add((DROP, key, None))  # internalTrafficPolicy Local, none here
            elif timeout is not None:
                _affinity(entries, key, view, timeout)
            else:
                _dispatch(entries, key, view, local=False)
    return frozenset(entries)


@dataclass
class Delta:
    """The operations that turn one table content into the next: entries to remove (by
    object and key), entries to add, chains whose definition changed, and objects (dispatch
    sets) that come into or go out of use. `counts` are the dispatch sets in use afterwards;
    `dispatch_changed` says whether the chains that use them must be rewritten."""

    remove: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    add: list[Entry] = field(default_factory=list)
    rewrite: list[Entry] = field(default_factory=list)
    objs_added: set[str] = field(default_factory=set)
    objs_removed: set[str] = field(default_factory=set)
    dispatch: tuple[str, ...] = ()
    dispatch_changed: bool = False

    def __bool__(self) -> bool:
        return bool(self.remove or self.add or self.rewrite or self.objs_added or
                    self.objs_removed)


def _sort_dispatch(objs: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(objs, key=lambda o: (dispatch_count(o) or ("", 0))))


@dataclass
class Ruleset:
    """The whole table's content, kept per Service so that a change to one Service is
    computed from that Service alone. Each (object, key) lists the Services that want it, in
    the order they came; the first one's value is the one in the table."""

    services: dict[ServiceKey, ServiceRules] = field(default_factory=dict)
    wanted: dict[tuple[str, tuple[Any, ...]], list[tuple[ServiceKey, Any]]] = \
        field(default_factory=dict)
    sizes: Counter[str] = field(default_factory=Counter)

    def dispatch_objs(self) -> tuple[str, ...]:
        """The dispatch sets in use (one rule each), by kind and count."""
        return _sort_dispatch(o for o in self.sizes if dispatch_count(o))

    def entries(self) -> dict[tuple[str, tuple[Any, ...]], Any]:
        """(object, key) -> value, as the table holds them."""
        return {k: v[0][1] for k, v in self.wanted.items()}

    def by_object(self) -> dict[str, dict[tuple[Any, ...], Any]]:
        out: dict[str, dict[tuple[Any, ...], Any]] = {}
        for (obj, key), wanted in self.wanted.items():
            out.setdefault(obj, {})[key] = wanted[0][1]
        return out

    @staticmethod
    def of(items: Iterable[tuple[ServiceKey, ServiceRules]]) -> Ruleset:
        """A Ruleset from compiled Services (the first of a Service key wins)."""
        out = Ruleset()
        for skey, rules in items:
            if rules and skey not in out.services:
                out.services[skey] = rules
                for obj, key, value in rules:
                    wanted = out.wanted.setdefault((obj, key), [])
                    if not wanted:
                        out.sizes[obj] += 1
                    wanted.append((skey, value))
        return out

    def copy(self) -> Ruleset:
        return Ruleset(dict(self.services), {k: list(v) for k, v in self.wanted.items()},
                       Counter(self.sizes))

    def update(self, changes: Mapping[ServiceKey, ServiceRules | None]) -> Delta:
        """Apply per-Service changes (None: the Service is gone) in place; return the
        operations that bring a table holding the old content to the new one."""
        before_dispatch = self.dispatch_objs()
        before: dict[tuple[str, tuple[Any, ...]], Any] = {}
        missing = object()
        for skey, new in changes.items():
            old = self.services.pop(skey, EMPTY)
            new = new or EMPTY
            if new:
                self.services[skey] = new
            if old == new:
                continue
            for obj, key, value in old - new:
                wanted = self.wanted[(obj, key)]
                before.setdefault((obj, key), wanted[0][1])
                wanted.remove((skey, value))
                if not wanted:
                    del self.wanted[(obj, key)]
                    self.sizes[obj] -= 1
                    if not self.sizes[obj]:
                        del self.sizes[obj]
            for obj, key, value in new - old:
                wanted = self.wanted.setdefault((obj, key), [])
                before.setdefault((obj, key), wanted[0][1] if wanted else missing)
                if not wanted:
                    self.sizes[obj] += 1
                wanted.append((skey, value))
        delta = Delta()
        for (obj, key), was in before.items():
            wanted_now = self.wanted.get((obj, key))
            now = wanted_now[0][1] if wanted_now else missing
            if now is was or now == was:
                continue
            if obj == CHAIN and was is not missing and now is not missing:
                delta.rewrite.append((obj, key, now))
                continue
            if was is not missing:
                delta.remove.append((obj, key))
            if now is not missing:
                delta.add.append((obj, key, now))
        delta.dispatch = self.dispatch_objs()
        b, a = set(before_dispatch), set(delta.dispatch)
        delta.objs_added = a - b
        delta.objs_removed = b - a
        delta.dispatch_changed = a != b
        return delta


def compile_services(services: Iterable[Obj], slices: Iterable[Obj],
                     node: NodeInfo) -> Ruleset:
    """The Ruleset for all Services of the cluster, as seen from `node`."""
    by_service = group_slices(slices)
    return Ruleset.of((service_key(svc), compile_service(svc, by_service.get(service_key(svc),
                                                                             []), node))
                      for svc in services)


def group_slices(slices: Iterable[Obj]) -> dict[ServiceKey, list[Obj]]:
    """EndpointSlices by the (namespace, name) of their Service."""
    out: dict[ServiceKey, list[Obj]] = {}
    for s in slices:
        key = slice_service(s)
        if key is not None:
            out.setdefault(key, []).append(s)
    return out


# --- what else the node does with a Service ------------------------------------------------------

def health_check_ports(services: Iterable[Obj], slices: Iterable[Obj],
                       node: NodeInfo) -> dict[int, tuple[str, str, int]]:
    """healthCheckNodePort -> (namespace, name, ready endpoints on this node) for the
    LoadBalancer Services with externalTrafficPolicy Local."""
    by_service = group_slices(slices)
    out: dict[int, tuple[str, str, int]] = {}
    for svc in services:
        spec = _dict(svc.get("spec"))
        port = spec.get("healthCheckNodePort")
        if spec.get("type") != "LoadBalancer" or spec.get("externalTrafficPolicy") != "Local" \
                or not isinstance(port, int) or port in out:
            continue
        skey = service_key(svc)
        local = {(ep.ip) for s in by_service.get(skey, []) for ep in _slice_all(s)
                 if ep.ready and ep.node == node.name}
        out[port] = (*skey, len(local))
    return out


def _slice_all(endpoint_slice: Obj) -> list[SliceEndpoint]:
    names = {(str(_dict(p).get("name") or ""), str(_dict(p).get("protocol") or "TCP"))
             for p in _list(endpoint_slice.get("ports"))} or {("", "TCP")}
    return [e for name, proto in names for e in slice_endpoints([endpoint_slice], name, proto)]


def stale_udp(old: ServiceRules, new: ServiceRules) -> set[tuple[str, int, str | None]]:
    """UDP flows whose conntrack entries must go after a Service changes from `old` to `new`:
    (ip, port, endpoint ip) for each endpoint a UDP key no longer uses, and (ip, port, None)
    for each UDP key that had no endpoint before and has one now."""
    def endpoints(rules: ServiceRules) -> dict[tuple[str, int], set[str]]:
        chains = {key[0]: value for obj, key, value in rules if obj == CHAIN}
        out: dict[tuple[str, int], set[str]] = {}
        for obj, key, value in rules:
            if key[1:2] != ("udp",):
                continue
            if obj in (EPS, LOCAL_EPS):
                out.setdefault((key[0], key[2]), set()).add(value[0])
            elif obj == AFFINITY:
                out.setdefault((key[0], key[2]), set()).update(
                    ip for _, ip, _ in chains[value].endpoints)
        return out

    before, after = endpoints(old), endpoints(new)
    flows: set[tuple[str, int, str | None]] = set()
    for dst, eps in before.items():
        flows.update((dst[0], dst[1], ip) for ip in eps - after.get(dst, set()))
    for dst, eps in after.items():
        if eps and not before.get(dst):
            flows.add((dst[0], dst[1], None))
    return flows


# --- walking a packet --------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    """What the table does to the first packet of a connection: "DNAT" to one of `targets`,
    "REJECT", "DROP", or "ACCEPT" (not service traffic). `masquerade` lists the targets for
    which the source is rewritten (off-cluster client, external policy Cluster, or hairpin)."""

    action: str
    targets: tuple[Endpoint, ...] = ()
    masquerade: tuple[Endpoint, ...] = ()


def _in(ip: str, cidr: str) -> bool:
    return ipaddress.IPv4Address(ip) in ipaddress.IPv4Network(cidr)


def trace(ruleset: Ruleset, node: NodeInfo, src: str, dst: str, proto: str, port: int, *,
          local_source: bool = False) -> Verdict:
    """The fate of a new connection src -> dst:port/proto arriving at the node (or, with
    `local_source`, sent by a socket on the node), with the semantics of the rendered table."""
    objs = ruleset.by_object()
    key: ServicePort = (dst, proto, port)

    def has(obj: str, k: tuple[Any, ...] = key) -> bool:
        return k in objs.get(obj, {})

    # filter, before DNAT: loadBalancerSourceRanges
    if has(FW_KEYS) and not any(k[:3] == key and _in(src, k[3])
                                for k in objs.get(FW_ALLOW, {})):
        return Verdict("DROP")
    from_pods = _in(src, node.cluster_cidr)
    mark = ((has(CLUSTER_IPS, (dst,)) and not from_pods) or has(MASQ) or
            (local_source and has(LOCAL_KEYS)))
    targets: tuple[Endpoint, ...] = ()
    if not local_source and not from_pods and has(LOCAL_KEYS):
        for obj in objs:
            count = dispatch_count(obj)
            if count and count[0] == "local" and key in objs[obj]:
                targets = tuple(objs[LOCAL_EPS][(*key, b)] for b in range(count[1]))
        if not targets:  # accepted unchanged in nat: the filter below decides
            return _unserved(objs, node, key)
    if not targets and has(AFFINITY):
        chain = objs[AFFINITY][key]
        targets = tuple((ip, p) for _, ip, p in objs[CHAIN][(chain,)].endpoints)
    if not targets:
        for obj in objs:
            count = dispatch_count(obj)
            if count and count[0] == "svc" and key in objs[obj]:
                targets = tuple(objs[EPS][(*key, b)] for b in range(count[1]))
    if not targets:
        return _unserved(objs, node, key)
    hairpin = objs.get(HAIRPIN, {})
    masq = tuple(t for t in targets if mark or (t[0] == src and (src, src) in hairpin))
    return Verdict("DNAT", targets, masq)


def _unserved(objs: dict[str, dict[tuple[Any, ...], Any]], node: NodeInfo,
              key: ServicePort) -> Verdict:
    """The `check` chain: what reaches the filter hooks still addressed to a service key."""
    if key in objs.get(NO_ENDPOINTS, {}):
        return Verdict("REJECT")
    if key in objs.get(DROP, {}):
        return Verdict("DROP")
    if (key[0],) in objs.get(CLUSTER_IPS, {}):
        return Verdict("REJECT")
    if _in(key[0], node.service_cidr):
        return Verdict("DROP")
    return Verdict("ACCEPT")
