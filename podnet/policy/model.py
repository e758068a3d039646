"""Pods + Namespaces + NetworkPolicies -> PolicyModel (pure, no I/O).

The semantics are Kubernetes' (networking.k8s.io/v1 NetworkPolicy):

- A pod is isolated for ingress (egress) only when some policy in its namespace selects it
  (spec.podSelector; an empty selector selects every pod of the namespace) and that policy's
  effective policyTypes contain Ingress (Egress). policyTypes, when absent, is ["Ingress"],
  plus "Egress" when the policy has an `egress` section.
- What an isolated pod may do is the union of the rules of every policy that selects it for
  that direction. A connection needs egress allowed at the client AND ingress allowed at the
  server. Replies of allowed connections pass (conntrack; not modelled here).
- Peers: podSelector alone picks pods in the policy's namespace; namespaceSelector alone picks
  all pods in the matching namespaces; both in one peer picks pods matching podSelector in
  namespaces matching namespaceSelector (AND); several peers are OR. An empty selector selects
  all. A rule with no `from`/`to` (or an empty list) allows all peers, any IP. ipBlock: cidr
  minus its except ranges, matched against any IP (pod IPs too, after Service DNAT).
- Ports: protocol defaults to TCP; a rule with no `ports` (or an empty list) allows all ports
  and all protocols (ICMP too); a port entry with a protocol and no port allows every port of
  that protocol; endPort makes a range; a named port is resolved on the destination pod
  (its containers' ports with that name and protocol); a destination without the name does
  not match.
- Host-network pods are neither selected by policies nor matched by pod selectors; pods
  without an IP, or in phase Succeeded/Failed, take no part.
- A pod can always reach itself; traffic from the pod's own node is always allowed (both are
  properties of where the data plane hooks, noted in `decide`).

Only IPv4 is modelled (the cluster is IPv4). IPs are ints; ranges are inclusive.
"""

from __future__ import annotations

import ipaddress
import json
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from podnet.api.selectors import LabelSelector, SelectorError, label_selector_from_api
from podnet.api.validation.networking import parse_cidr_sloppy

Obj = Mapping[str, Any]
Direction = Literal["ingress", "egress"]
PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclass(frozen=True, order=True)
class IpRange:
    """Inclusive range of IPv4 addresses as ints."""

    lo: int
    hi: int


@dataclass(frozen=True, order=True)
class PortRange:
    """`protocol` one of PROTOCOLS; ports inclusive, 1..65535 (or 0..65535 for "every port")."""

    protocol: str
    lo: int
    hi: int


@dataclass(frozen=True)
class NamedPort:
    name: str  # "" for an unnamed containerPort
    number: int
    protocol: str


@dataclass(frozen=True)
class Pod:
    """A pod as policy sees it."""

    namespace: str
    name: str
    ip: int | None  # None: no IP yet (takes no part)
    node: str
    labels: Mapping[str, str]
    ports: tuple[NamedPort, ...] = ()
    host_network: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Grant:
    """What one rule of one policy allows for one pod in one direction.

    peers: the remote side as merged, sorted, disjoint IPv4 ranges (pod IPs as single-address
    ranges, ipBlocks with their excepts cut out); None means any address.
    ports: None means every port of every protocol; otherwise merged PortRanges (named ports
    already resolved: for ingress on this pod, for egress on each destination pod, which is
    why one egress rule with a named port may become several Grants with different peers).
    """

    policy: str  # "namespace/name"
    rule: int  # index into spec.ingress or spec.egress, 0-based
    peers: tuple[IpRange, ...] | None
    ports: tuple[PortRange, ...] | None


@dataclass(frozen=True)
class PodPolicy:
    """The compiled policy of one pod that takes part (has an IP, not host network)."""

    pod: Pod
    ingress_isolated_by: tuple[str, ...] = ()  # "ns/name" of the policies, sorted
    egress_isolated_by: tuple[str, ...] = ()
    ingress: tuple[Grant, ...] = ()  # peers = allowed sources
    egress: tuple[Grant, ...] = ()  # peers = allowed destinations


@dataclass(frozen=True)
class PolicyModel:
    pods: Mapping[str, PodPolicy] = field(default_factory=dict)  # by Pod.key
    by_ip: Mapping[int, str] = field(default_factory=dict)  # pod IP -> Pod.key

    def isolated(self, key: str, direction: Direction) -> bool:
        p = self.pods[key]
        return bool(p.ingress_isolated_by if direction == "ingress" else p.egress_isolated_by)


@dataclass(frozen=True)
class SideVerdict:
    """One side of a connection: the client's egress or the server's ingress."""

    direction: Direction
    allowed: bool
    isolated_by: tuple[str, ...]  # empty: not isolated (allowed by default)
    allowed_by: tuple[tuple[str, int], ...]  # (policy, rule index) that match, sorted
    reason: str  # one line, e.g. "ingress denied: y/default-deny selects y/b and no rule matches"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    egress: SideVerdict
    ingress: SideVerdict


# Functions (bodies below this line):
#
#   pod_from_api(pod: Obj) -> Pod | None
#       None for pods that take no part in policy (host network, Succeeded/Failed,
#       being deleted is still a pod). IP from status.podIP (IPv4), may be None.
#   compile_model(pods: Iterable[Pod], namespaces: Mapping[str, Mapping[str, str]],
#                 policies: Iterable[Obj]) -> PolicyModel
#       namespaces: name -> labels (include `kubernetes.io/metadata.name` as the API sets it).
#   decide(model: PolicyModel, src: str | int, dst: str | int, protocol: str, port: int)
#       -> Verdict
#       src/dst: a Pod.key, or an IPv4 int for an address that is no pod (then that side is
#       not isolated). Same pod on both sides: allowed (a pod can always reach itself).
#   ip_to_int(text: str) -> int;  int_to_ip(value: int) -> str
#   Also public: grant_matches(grant, remote, protocol, port) -> bool;
#   side_allows(model, key, direction, remote, protocol, port) -> bool (a verdict without the
#   reasons); resolve_endpoint(model, key_or_ip) -> (key | None, ip).
#   A rule that allows nothing (no peer selected; only named ports the pod lacks) gives no
#   Grant: every Grant in the model matches some (address, protocol, port).


# ---------------------------------------------------------------------------------------------
# Addresses
# ---------------------------------------------------------------------------------------------

_ALL_PORTS = (0, 65535)
_METADATA_NAME = "kubernetes.io/metadata.name"
_TERMINAL_PHASES = ("Succeeded", "Failed")

Pair = tuple[int, int]  # an inclusive range of IPs while compiling (tuples sort fast)


def ip_to_int(text: str) -> int:
    """Dotted-quad IPv4 -> int; ValueError for anything else."""
    return int(ipaddress.IPv4Address(text))


def int_to_ip(value: int) -> str:
    return str(ipaddress.IPv4Address(value))


def _ipv4_or_none(text: Any) -> int | None:
    if not isinstance(text, str):
        return None
    try:
        return ip_to_int(text)
    except ValueError:
        return None


def _merge_pairs(pairs: Iterable[Pair]) -> list[Pair]:
    """Sorted, disjoint, with touching ranges joined."""
    out: list[Pair] = []
    for lo, hi in sorted(pairs):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def _ip_ranges(pairs: Iterable[Pair], interned: dict[Pair, IpRange] | None = None
               ) -> tuple[IpRange, ...]:
    """Merged IpRanges; `interned` reuses the objects already made (cheaper than new ones)."""
    if interned is None:
        return tuple(IpRange(lo, hi) for lo, hi in _merge_pairs(pairs))
    out: list[IpRange] = []
    for pair in _merge_pairs(pairs):
        r = interned.get(pair)
        if r is None:
            r = interned[pair] = IpRange(*pair)
        out.append(r)
    return tuple(out)


def _merge_ports(ranges: Iterable[PortRange]) -> tuple[PortRange, ...]:
    """Per protocol: sorted, disjoint, with touching ranges joined."""
    out: list[PortRange] = []
    for r in sorted(ranges):
        last = out[-1] if out else None
        if last is not None and last.protocol == r.protocol and r.lo <= last.hi + 1:
            if r.hi > last.hi:
                out[-1] = PortRange(r.protocol, last.lo, r.hi)
        else:
            out.append(r)
    return tuple(out)


def _v4_network(text: Any) -> Pair | None:
    """A CIDR as the API accepts it (leading zeros, host bits set) as a range; IPv4-mapped
    IPv6 networks count as IPv4; other IPv6 networks hold no address of this cluster."""
    net = parse_cidr_sloppy(text) if isinstance(text, str) else None
    if net is None:
        return None
    if isinstance(net, ipaddress.IPv6Network):
        mapped = net.network_address.ipv4_mapped
        if mapped is None or net.prefixlen < 96:
            return None
        net = ipaddress.IPv4Network((mapped, net.prefixlen - 96), strict=False)
    return int(net.network_address), int(net.broadcast_address)


def _block_pairs(block: Obj) -> list[Pair]:
    """ipBlock: cidr minus every except, as disjoint ranges."""
    whole = _v4_network(block.get("cidr"))
    if whole is None:
        return []
    holes = _merge_pairs(r for r in map(_v4_network, _list(block, "except")) if r is not None)
    out: list[Pair] = []
    lo, top = whole
    for hole_lo, hole_hi in holes:
        if hole_hi < lo or hole_lo > top:
            continue
        if hole_lo > lo:
            out.append((lo, hole_lo - 1))
        lo = max(lo, hole_hi + 1)
    if lo <= top:
        out.append((lo, top))
    return out


def _in_ranges(ranges: tuple[IpRange, ...], ip: int) -> bool:
    i = bisect_right(ranges, ip, key=_range_lo) - 1
    return i >= 0 and ranges[i].hi >= ip


def _range_lo(r: IpRange) -> int:
    return r.lo


# ---------------------------------------------------------------------------------------------
# Pods from the API
# ---------------------------------------------------------------------------------------------


# `isinstance(x, dict)` first: API objects are dicts, and the check against the Mapping ABC
# costs ten times more (it was a third of a compile that reuses every policy).


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, (dict, Mapping)) else None


def _map(obj: Any, key: str) -> Obj:
    value = _get(obj, key)
    return value if isinstance(value, (dict, Mapping)) else {}


def _list(obj: Any, key: str) -> list[Any]:
    value = _get(obj, key)
    return value if isinstance(value, list) else []


def _str(obj: Any, key: str) -> str:
    value = _get(obj, key)
    return value if isinstance(value, str) else ""


def pod_from_api(pod: Obj) -> Pod | None:
    """A v1 Pod as policy sees it; None for host-network pods and finished pods.

    The IP is status.podIP when it is IPv4 (else the first IPv4 of status.podIPs), or None:
    such a pod is kept out of the model until it has one. Ports: every container's declared
    ports (init containers do not serve)."""
    meta, spec, status = _map(pod, "metadata"), _map(pod, "spec"), _map(pod, "status")
    if spec.get("hostNetwork") is True or _str(status, "phase") in _TERMINAL_PHASES:
        return None
    ip = _ipv4_or_none(status.get("podIP"))
    for entry in _list(status, "podIPs"):
        if ip is None:
            ip = _ipv4_or_none(entry.get("ip") if isinstance(entry, Mapping) else None)
    labels = {str(k): str(v) for k, v in _map(meta, "labels").items()}
    return Pod(namespace=_str(meta, "namespace") or "default", name=_str(meta, "name"), ip=ip,
               node=_str(spec, "nodeName"), labels=labels, ports=_container_ports(spec))


def _container_ports(spec: Obj) -> tuple[NamedPort, ...]:
    out: list[NamedPort] = []
    for container in _list(spec, "containers"):
        for port in _list(container, "ports"):
            number = port.get("containerPort") if isinstance(port, Mapping) else None
            if isinstance(number, int) and not isinstance(number, bool):
                out.append(NamedPort(_str(port, "name"), number, _str(port, "protocol") or "TCP"))
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# The cluster as compile_model indexes it
# ---------------------------------------------------------------------------------------------

_EVERYTHING = LabelSelector()


def _selector(raw: Any) -> LabelSelector:
    """A metav1.LabelSelector; one that does not parse (the API would have refused it)
    selects nothing."""
    if not isinstance(raw, Mapping):
        return LabelSelector(nothing=True)
    try:
        return label_selector_from_api(dict(raw))
    except SelectorError:
        return LabelSelector(nothing=True)


def _canonical(raw: Any) -> str:
    """A key for memoising what a part of a policy resolves to."""
    return json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class _Peers:
    """The remote side of a rule: IP ranges (None: anything) and the pods inside them (as
    indexes into _Cluster.pods, in key order)."""

    key: str
    ranges: tuple[IpRange, ...] | None
    pods: tuple[int, ...]


@dataclass(frozen=True)
class _Ports:
    """A rule's ports: None for every port and protocol; numbered ranges; (name, protocol)
    pairs still to be resolved on the destination pod."""

    numbered: tuple[PortRange, ...] | None
    named: tuple[tuple[str, str], ...] = ()


class _Cluster:
    """The pods that take part, indexed by namespace and by IP, with every selection, peer
    list and port list memoised: policies repeat the same selectors over and over."""

    def __init__(self, pods: Iterable[Pod], namespaces: Mapping[str, Mapping[str, str]]):
        taking_part = sorted(((p.key, p.ip, p) for p in pods
                              if p.ip is not None and not p.host_network), key=lambda t: t[0])
        self.keys = [key for key, _, _ in taking_part]
        self.ips = [ip for _, ip, _ in taking_part]
        self.pods = [p for _, _, p in taking_part]
        self.by_ns: dict[str, list[int]] = {}
        for i, p in enumerate(self.pods):
            self.by_ns.setdefault(p.namespace, []).append(i)
        # The API always sets kubernetes.io/metadata.name; files read offline may not.
        self.ns_labels = {name: {**labels, _METADATA_NAME: name}
                          for name, labels in namespaces.items()}
        for name in self.by_ns:
            self.ns_labels.setdefault(name, {_METADATA_NAME: name})
        self.ip_order = sorted(range(len(self.pods)), key=lambda i: (self.ips[i], i))
        self._sorted_ips = [self.ips[i] for i in self.ip_order]
        self._selectors: dict[str, LabelSelector] = {}
        self._pods_memo: dict[tuple[LabelSelector, str], list[int]] = {}
        self._ns_memo: dict[LabelSelector, list[str]] = {}
        self._peers_memo: dict[tuple[str, str], _Peers] = {}
        self._ports_memo: dict[str, _Ports] = {}
        self.interned: dict[Pair, IpRange] = {}
        self.named_memo: dict[tuple[str, tuple[tuple[str, str], ...]],
                              list[tuple[tuple[PortRange, ...], tuple[IpRange, ...]]]] = {}

    def selector(self, raw: Any) -> LabelSelector:
        key = _canonical(raw)
        found = self._selectors.get(key)
        if found is None:
            found = self._selectors[key] = _selector(raw)
        return found

    def select_pods(self, selector: LabelSelector, namespace: str) -> list[int]:
        key = (selector, namespace)
        found = self._pods_memo.get(key)
        if found is None:
            found = [i for i in self.by_ns.get(namespace, ())
                     if selector.matches(self.pods[i].labels)]
            self._pods_memo[key] = found
        return found

    def select_namespaces(self, selector: LabelSelector) -> list[str]:
        found = self._ns_memo.get(selector)
        if found is None:
            found = [n for n in sorted(self.ns_labels) if selector.matches(self.ns_labels[n])]
            self._ns_memo[selector] = found
        return found

    def pods_in(self, ranges: Iterable[Pair]) -> list[int]:
        out: list[int] = []
        for lo, hi in ranges:
            start, end = bisect_left(self._sorted_ips, lo), bisect_right(self._sorted_ips, hi)
            out.extend(self.ip_order[start:end])
        return out

    def peers(self, namespace: str, raw: Any) -> _Peers:
        key = (namespace, _canonical(raw))
        found = self._peers_memo.get(key)
        if found is None:
            found = self._peers_memo[key] = _rule_peers(self, namespace, raw, "\0".join(key))
        return found

    def ports(self, raw: Any) -> _Ports:
        key = _canonical(raw)
        found = self._ports_memo.get(key)
        if found is None:
            found = self._ports_memo[key] = _rule_ports(raw)
        return found


# ---------------------------------------------------------------------------------------------
# One rule
# ---------------------------------------------------------------------------------------------


def _rule_peers(cluster: _Cluster, namespace: str, raw: Any, key: str) -> _Peers:
    if not isinstance(raw, list) or not raw:  # no from/to: every source or destination
        return _Peers(key, None, tuple(range(len(cluster.pods))))
    pods: set[int] = set()
    blocks: list[Pair] = []
    for peer in raw:
        if not isinstance(peer, Mapping):
            continue
        block = peer.get("ipBlock")
        if isinstance(block, Mapping):
            blocks.extend(_block_pairs(block))
        else:
            pods.update(_peer_pods(cluster, namespace, peer))
    pods.update(cluster.pods_in(_merge_pairs(blocks)))
    ranges = _ip_ranges([*blocks, *((cluster.ips[i], cluster.ips[i]) for i in pods)],
                        cluster.interned)
    return _Peers(key, ranges, tuple(sorted(pods)))


def _peer_pods(cluster: _Cluster, namespace: str, peer: Obj) -> list[int]:
    """podSelector alone: in the policy's namespace; namespaceSelector alone: every pod of the
    matching namespaces; both: pods matching one in namespaces matching the other."""
    pod_raw, ns_raw = peer.get("podSelector"), peer.get("namespaceSelector")
    if pod_raw is None and ns_raw is None:
        return []  # an empty peer (the API refuses it)
    pod_sel = _EVERYTHING if pod_raw is None else cluster.selector(pod_raw)
    spaces = [namespace] if ns_raw is None else cluster.select_namespaces(
        cluster.selector(ns_raw))
    return [i for ns in spaces for i in cluster.select_pods(pod_sel, ns)]


def _rule_ports(raw: Any) -> _Ports:
    if not isinstance(raw, list) or not raw:
        return _Ports(None)
    numbered: list[PortRange] = []
    named: list[tuple[str, str]] = []
    for entry in raw:
        if not isinstance(entry, Mapping):
            continue
        protocol = _str(entry, "protocol") or "TCP"
        port, end = entry.get("port"), entry.get("endPort")
        if port is None:
            numbered.append(PortRange(protocol, *_ALL_PORTS))
        elif isinstance(port, str):
            named.append((port, protocol))
        elif isinstance(port, int) and not isinstance(port, bool):
            top = end if isinstance(end, int) and not isinstance(end, bool) else port
            numbered.append(PortRange(protocol, port, max(top, port)))
    return _Ports(_merge_ports(numbered), tuple(sorted(set(named))))


def _resolve(named: tuple[tuple[str, str], ...], pod: Pod) -> list[PortRange]:
    """The pod's container ports that carry one of the names with the same protocol."""
    return [PortRange(p.protocol, p.number, p.number) for p in pod.ports
            if (p.name, p.protocol) in named]


def _ingress_grants(policy: str, index: int, peers: _Peers, ports: _Ports,
                    pods: list[Pod]) -> list[Grant | None]:
    """The grant of one ingress rule on each selected pod; None where it allows nothing (no
    peer, or only named ports the pod does not have)."""
    if peers.ranges == ():
        return [None] * len(pods)
    if ports.numbered is None or not ports.named:
        shared = Grant(policy, index, peers.ranges, ports.numbered)
        return [shared] * len(pods)
    by_ports: dict[tuple[NamedPort, ...], Grant | None] = {}
    out: list[Grant | None] = []
    for pod in pods:
        if pod.ports not in by_ports:
            merged = _merge_ports([*ports.numbered, *_resolve(ports.named, pod)])
            by_ports[pod.ports] = Grant(policy, index, peers.ranges, merged) if merged else None
        out.append(by_ports[pod.ports])
    return out


def _named_groups(cluster: _Cluster, peers: _Peers, named: tuple[tuple[str, str], ...]
                  ) -> list[tuple[tuple[PortRange, ...], tuple[IpRange, ...]]]:
    """The destination pods among the peers grouped by what the names resolve to on them."""
    key = (peers.key, named)
    found = cluster.named_memo.get(key)
    if found is None:
        groups: dict[tuple[PortRange, ...], list[Pair]] = {}
        for i in peers.pods:
            resolved = _merge_ports(_resolve(named, cluster.pods[i]))
            if resolved:
                groups.setdefault(resolved, []).append((cluster.ips[i], cluster.ips[i]))
        found = [(resolved, _ip_ranges(ips, cluster.interned))
                 for resolved, ips in sorted(groups.items())]
        cluster.named_memo[key] = found
    return found


def _egress_grants(cluster: _Cluster, policy: str, index: int, peers: _Peers,
                   ports: _Ports) -> list[Grant]:
    """The grants of one egress rule (the same for every pod the policy selects).

    Numbered ports apply to every peer address; named ports are resolved on each destination
    pod among the peers, and pods resolving to the same ports share one grant."""
    if peers.ranges == ():
        return []
    if ports.numbered is None:
        return [Grant(policy, index, peers.ranges, None)]
    out = [Grant(policy, index, peers.ranges, ports.numbered)] if ports.numbered else []
    if ports.named:
        out.extend(Grant(policy, index, ranges, resolved)
                   for resolved, ranges in _named_groups(cluster, peers, ports.named))
    return out


# ---------------------------------------------------------------------------------------------
# compile_model
# ---------------------------------------------------------------------------------------------


@dataclass
class _Building:
    """Per pod (index), per direction: the isolating policies and the grants, as they come."""

    isolated: dict[Direction, dict[int, list[str]]] = field(
        default_factory=lambda: {"ingress": {}, "egress": {}})
    grants: dict[Direction, dict[int, list[Grant]]] = field(
        default_factory=lambda: {"ingress": {}, "egress": {}})

    def isolate(self, direction: Direction, pod: int, policy: str) -> list[Grant]:
        """Mark the pod isolated by the policy; the pod's grant list to extend."""
        self.isolated[direction].setdefault(pod, []).append(policy)
        return self.grants[direction].setdefault(pod, [])

    def part(self) -> _Part:
        """What one policy built (it isolates each pod once per direction), to be replayed."""
        return tuple((direction, i, tuple(self.grants[direction].get(i, ())))
                     for direction in ("ingress", "egress")
                     for i in self.isolated[direction])


def _policy_types(spec: Obj) -> set[str]:
    """spec.policyTypes, defaulted as the API does when it is absent or empty."""
    types = {t for t in _list(spec, "policyTypes") if isinstance(t, str)}
    if not types:
        types = {"Ingress", "Egress"} if _list(spec, "egress") else {"Ingress"}
    return types


def _compile_policy(cluster: _Cluster, policy: Obj, out: _Building) -> None:
    meta, spec = _map(policy, "metadata"), _map(policy, "spec")
    namespace = _str(meta, "namespace") or "default"
    name = f"{namespace}/{_str(meta, 'name')}"
    # podSelector is not a pointer in the API: absent is the same as {} (every pod).
    raw_selector = spec.get("podSelector")
    selector = _EVERYTHING if raw_selector is None else cluster.selector(raw_selector)
    selected = cluster.select_pods(selector, namespace)
    if not selected:
        return
    types = _policy_types(spec)
    if "Ingress" in types:
        pods = [cluster.pods[i] for i in selected]
        per_rule = [_ingress_grants(name, i, cluster.peers(namespace, rule.get("from")),
                                    cluster.ports(rule.get("ports")), pods)
                    for i, rule in enumerate(_list(spec, "ingress")) if isinstance(rule, Mapping)]
        for n, i in enumerate(selected):
            grants = out.isolate("ingress", i, name)
            grants.extend(g for rule in per_rule if (g := rule[n]) is not None)
    if "Egress" in types:
        egress = [g for i, rule in enumerate(_list(spec, "egress")) if isinstance(rule, Mapping)
                  for g in _egress_grants(cluster, name, i,
                                          cluster.peers(namespace, rule.get("to")),
                                          cluster.ports(rule.get("ports")))]
        for i in selected:
            out.isolate("egress", i, name).extend(egress)


def compile_model(pods: Iterable[Pod], namespaces: Mapping[str, Mapping[str, str]],
                  policies: Iterable[Obj]) -> PolicyModel:
    """The compiled policy of every pod that takes part (an IPv4 address, not host network).

    A rule that can allow nothing (its peers select nothing, or all its ports are named ports
    the pod lacks) yields no Grant at all, so every Grant matches something. Pods whose
    namespace is missing from `namespaces` get the one label the API always sets."""
    return Compiler().compile(pods, namespaces, policies)


# One policy's contribution: (direction, pod index, the grants it adds), in order.
_Part = tuple[tuple[Direction, int, tuple[Grant, ...]], ...]


class Compiler:
    """compile_model with a memory, for a caller that compiles again after each change (the
    agent's enforcer). While the pods and namespaces stay the same, every policy that did not
    change contributes what it contributed last time, and only the pods that a changed policy
    touched (before or after the change) get a new PodPolicy: the others keep the very objects
    of the last model, so the caller can tell them unchanged by identity. A one-policy change
    costs one policy and a few pods, not a thousand policies and every pod. A change to the
    pods or namespaces starts over. Deterministic: the result is exactly compile_model's."""

    def __init__(self) -> None:
        self._world: tuple[tuple[Pod, ...], tuple[tuple[str, tuple[tuple[str, str], ...]], ...]] \
            | None = None
        self._cluster: _Cluster | None = None
        self._parts: dict[tuple[str, str], tuple[str, _Part]] = {}
        self._model: PolicyModel | None = None
        self.reused = 0  # policies taken from memory in the last compile (for logs and tests)

    def compile(self, pods: Iterable[Pod], namespaces: Mapping[str, Mapping[str, str]],
                policies: Iterable[Obj]) -> PolicyModel:
        pods = tuple(sorted(pods, key=_pod_key))
        world = (pods, tuple(sorted((n, tuple(sorted(labels.items())))
                                    for n, labels in namespaces.items())))
        if world != self._world or self._cluster is None:
            self._world, self._cluster = world, _Cluster(pods, namespaces)
            self._parts, self._model = {}, None
        cluster = self._cluster
        parts: dict[tuple[str, str], tuple[str, _Part]] = {}
        touched: set[int] = set()  # pods of the policies that changed, came or went
        self.reused = 0
        for key, policy in sorted(((_policy_key(p), p) for p in policies), key=_first):
            version = _policy_version(policy)
            known = self._parts.get(key)
            if known is not None and known[0] == version:
                parts[key] = known
                self.reused += 1
                continue
            one = _Building()
            _compile_policy(cluster, policy, one)
            parts[key] = (version, one.part())
            touched.update(i for _, i, _ in parts[key][1])
            if known is not None:
                touched.update(i for _, i, _ in known[1])
        for key in self._parts.keys() - parts.keys():
            touched.update(i for _, i, _ in self._parts[key][1])
        previous, self._parts = self._model, parts
        if previous is not None and not touched and len(parts) == self.reused:
            return previous
        building = _Building()
        iso, gr = building.isolated, building.grants
        for (ns, name), (_, part) in parts.items():  # in policy order (sorted above)
            full = f"{ns}/{name}"
            for direction, i, grants in part:  # building.isolate, inlined: 7,000 calls
                if previous is None or i in touched:
                    iso[direction].setdefault(i, []).append(full)
                    gr[direction].setdefault(i, []).extend(grants)
        self._model = _assemble(cluster, building,
                                None if previous is None else (previous, touched))
        return self._model


def _pod_key(pod: Pod) -> str:
    return pod.key


def _first(pair: tuple[tuple[str, str], Obj]) -> tuple[str, str]:
    return pair[0]


def _policy_version(policy: Obj) -> str:
    """What identifies a policy's content: its uid and resourceVersion when the API gave them,
    else (manifests) the spec itself."""
    meta = _map(policy, "metadata")
    rv, uid = _str(meta, "resourceVersion"), _str(meta, "uid")
    if rv and uid:
        return f"{uid}@{rv}"
    return _canonical(policy.get("spec"))


def _assemble(cluster: _Cluster, building: _Building,
              keep: tuple[PolicyModel, set[int]] | None = None) -> PolicyModel:
    """The model from what the policies built. With `keep` (the last model and the pods that
    changed), every other pod keeps its PodPolicy object from the last model."""
    iso, grants = building.isolated, building.grants
    compiled: dict[str, PodPolicy] = {}
    for i, key in enumerate(cluster.keys):
        if keep is not None and i not in keep[1]:
            compiled[key] = keep[0].pods[key]
            continue
        compiled[key] = PodPolicy(
            pod=cluster.pods[i],
            ingress_isolated_by=tuple(sorted(set(iso["ingress"].get(i, ())))),
            egress_isolated_by=tuple(sorted(set(iso["egress"].get(i, ())))),
            ingress=tuple(grants["ingress"].get(i, ())),
            egress=tuple(grants["egress"].get(i, ())))
    if keep is not None:
        return PolicyModel(pods=compiled, by_ip=keep[0].by_ip)
    by_ip: dict[int, str] = {}
    for i in cluster.ip_order:  # two pods with one IP (a stale one): the first by key
        by_ip.setdefault(cluster.ips[i], cluster.keys[i])
    return PolicyModel(pods=compiled, by_ip=by_ip)


def _policy_key(policy: Obj) -> tuple[str, str]:
    meta = _map(policy, "metadata")
    return (_str(meta, "namespace") or "default", _str(meta, "name"))


# ---------------------------------------------------------------------------------------------
# decide
# ---------------------------------------------------------------------------------------------


def grant_matches(grant: Grant, remote: int, protocol: str, port: int) -> bool:
    """Whether one grant allows the remote address on protocol/port."""
    if grant.peers is not None and not _in_ranges(grant.peers, remote):
        return False
    if grant.ports is None:
        return True
    return any(r.protocol == protocol and r.lo <= port <= r.hi for r in grant.ports)


def side_allows(model: PolicyModel, key: str | None, direction: Direction, remote: int,
                protocol: str, port: int) -> bool:
    """The verdict of one side without the reasons (what the matrix needs, fast)."""
    if key is None:
        return True
    p = model.pods[key]
    isolated = p.ingress_isolated_by if direction == "ingress" else p.egress_isolated_by
    if not isolated:
        return True
    grants = p.ingress if direction == "ingress" else p.egress
    return any(grant_matches(g, remote, protocol, port) for g in grants)


def resolve_endpoint(model: PolicyModel, end: str | int) -> tuple[str | None, int]:
    """A pod key or an IPv4 int -> (pod key or None when no pod has it, IP).

    An int that is a pod's IP is that pod (as the kernel sees it). KeyError for a key that
    is not in the model."""
    if isinstance(end, int):
        return model.by_ip.get(end), end
    pod = model.pods.get(end)
    if pod is None or pod.pod.ip is None:
        raise KeyError(f"no pod {end} in the policy model")
    return end, pod.pod.ip


def decide(model: PolicyModel, src: str | int, dst: str | int, protocol: str,
           port: int) -> Verdict:
    """The verdict for one connection: egress at the client AND ingress at the server.

    Not modelled here because the data plane gives them by where it hooks: replies of allowed
    connections (conntrack), and traffic from a pod's own node (node sockets leave through
    output, which policy does not filter; pass the node's IP as an int src for the other
    nodes' view). The same pod on both sides is always allowed."""
    src_key, src_ip = resolve_endpoint(model, src)
    dst_key, dst_ip = resolve_endpoint(model, dst)
    if src_key is not None and src_key == dst_key:
        egress = _self_side(model, src_key, "egress")
        ingress = _self_side(model, src_key, "ingress")
    else:
        egress = _side(model, "egress", src_key, src_ip, dst_ip, protocol, port)
        ingress = _side(model, "ingress", dst_key, dst_ip, src_ip, protocol, port)
    return Verdict(egress.allowed and ingress.allowed, egress, ingress)


def _self_side(model: PolicyModel, key: str, direction: Direction) -> SideVerdict:
    p = model.pods[key]
    isolated = p.ingress_isolated_by if direction == "ingress" else p.egress_isolated_by
    return SideVerdict(direction, True, isolated, (),
                       f"{direction} allowed: a pod can always reach itself")


def _side(model: PolicyModel, direction: Direction, key: str | None, own_ip: int, remote: int,
          protocol: str, port: int) -> SideVerdict:
    if key is None:
        return SideVerdict(direction, True, (), (),
                           f"{direction} allowed: not a pod: {int_to_ip(own_ip)}")
    p = model.pods[key]
    isolated = p.ingress_isolated_by if direction == "ingress" else p.egress_isolated_by
    if not isolated:
        return SideVerdict(direction, True, (), (),
                           f"{direction} allowed: {key} is not isolated for {direction}")
    grants = p.ingress if direction == "ingress" else p.egress
    matched = tuple(sorted({(g.policy, g.rule) for g in grants
                            if grant_matches(g, remote, protocol, port)}))
    if matched:
        rules = ", ".join(f"{policy} rule {rule + 1}" for policy, rule in matched)
        return SideVerdict(direction, True, isolated, matched, f"{direction} allowed by {rules}")
    verb = "selects" if len(isolated) == 1 else "select"
    return SideVerdict(direction, False, isolated, (),
                       f"{direction} denied: {', '.join(isolated)} {verb} {key} "
                       "and no rule matches")
