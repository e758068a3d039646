"""Which node answers ARP for each LoadBalancer IP (pure): MetalLB's layer-2 mode.

Every agent computes the same table from the same objects, so exactly one node holds an IP
(podnet.proxy.speaker puts it on that node's `lb0`), with no election and no talking between
agents:

- the IPs are the IPv4 `status.loadBalancer.ingress[].ip` of Services of type LoadBalancer;
- the candidates are the nodes that are Ready, not being deleted, and not labelled
  `node.kubernetes.io/exclude-from-external-load-balancers`;
- with `externalTrafficPolicy: Local`, only candidates with a ready endpoint of the Service
  (an endpoint of one of its EndpointSlices whose `nodeName` is the node and whose
  `conditions.ready` is not false): announcing from another node would drop the traffic;
- among the candidates the node with the highest sha256("<node>/<ip>") wins (rendezvous
  hashing): when a node comes or goes, only the IPs it wins or held move.

An IP with no candidate is left out (nobody answers for it). Should two Services share an IP
(kube-proxy allows it when their ports differ), the node must qualify for all of them; when no
node does, the IP is left out rather than announced where one of the Services would drop.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

Obj = Mapping[str, Any]

EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _ipv4(value: Any) -> str | None:
    """`value` as a canonical IPv4 address, else None."""
    if not isinstance(value, str):
        return None
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        return None


def candidate(node: Obj) -> bool:
    """Whether a node may announce LoadBalancer IPs at all."""
    meta = _dict(node.get("metadata"))
    if meta.get("deletionTimestamp"):
        return False
    if EXCLUDE_LABEL in _dict(meta.get("labels")):
        return False
    conditions = _list(_dict(node.get("status")).get("conditions"))
    return any(_dict(c).get("type") == "Ready" and _dict(c).get("status") == "True"
               for c in conditions)


def ingress_ips(service: Obj) -> list[str]:
    """The IPv4 addresses a LoadBalancer Service was given (none for other types)."""
    if _dict(service.get("spec")).get("type") != "LoadBalancer":
        return []
    ingress = _list(_dict(_dict(service.get("status")).get("loadBalancer")).get("ingress"))
    ips = (_ipv4(_dict(entry).get("ip")) for entry in ingress)
    return sorted({ip for ip in ips if ip is not None})


def _key(obj: Obj) -> tuple[str, str]:
    meta = _dict(obj.get("metadata"))
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def ready_nodes(slices: Iterable[Obj]) -> dict[tuple[str, str], set[str]]:
    """(namespace, service name) -> the nodes with a ready endpoint of it."""
    out: dict[tuple[str, str], set[str]] = {}
    for endpoint_slice in slices:
        meta = _dict(endpoint_slice.get("metadata"))
        service = _dict(meta.get("labels")).get(SERVICE_NAME_LABEL)
        if not isinstance(service, str) or not service:
            continue
        if endpoint_slice.get("addressType", "IPv4") != "IPv4":
            continue
        nodes = out.setdefault((str(meta.get("namespace") or ""), service), set())
        for endpoint in _list(endpoint_slice.get("endpoints")):
            endpoint = _dict(endpoint)
            node = endpoint.get("nodeName")
            if isinstance(node, str) and node and \
                    _dict(endpoint.get("conditions")).get("ready") is not False:
                nodes.add(node)
    return out


def score(node: str, ip: str) -> bytes:
    """A node's weight for an IP: sha256("<node>/<ip>")."""
    return hashlib.sha256(f"{node}/{ip}".encode()).digest()


def rendezvous(ip: str, nodes: Iterable[str]) -> str | None:
    """The node with the highest score for `ip`, None when there is none (the name breaks a
    tie, which takes a sha256 collision, so the answer never depends on order)."""
    return max(nodes, key=lambda node: (score(node, ip), node), default=None)


def announcers(services: Iterable[Obj], slices: Iterable[Obj],
               nodes: Iterable[Obj]) -> dict[str, str]:
    """LoadBalancer IP -> the name of the node that answers ARP for it, sorted by IP."""
    candidates = {str(_dict(n.get("metadata")).get("name")) for n in nodes
                  if candidate(n) and _dict(n.get("metadata")).get("name")}
    local = ready_nodes(slices)
    allowed: dict[str, set[str]] = {}  # ip -> nodes that qualify for every Service using it
    for service in services:
        ips = ingress_ips(service)
        if not ips:
            continue
        eligible = set(candidates)
        if _dict(service.get("spec")).get("externalTrafficPolicy") == "Local":
            eligible &= local.get(_key(service), set())
        for ip in ips:
            allowed[ip] = allowed[ip] & eligible if ip in allowed else set(eligible)
    out: dict[str, str] = {}
    for ip in sorted(allowed, key=ipaddress.IPv4Address):
        winner = rendezvous(ip, allowed[ip])
        if winner is not None:
            out[ip] = winner
    return out
