"""ClusterIP and NodePort allocation for Services, as kube-apiserver does it (pure).

Each range has a static band at its low end that dynamic allocation uses only when the rest is
full (KEP-3070), so addresses users pick by hand, like the cluster DNS's 10.96.0.10, stay free:
for IPs the band is min(max(16, size/16), 256) addresses, for ports min(max(16, size/32), 128).

The caller keeps the sets of taken IPs and ports, passes a random source, and stores the plan.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field
from typing import Any

from podnet.api.errors import FieldError, invalid

Obj = dict[str, Any]


@dataclass(frozen=True)
class Ranges:
    service_cidr: ipaddress.IPv4Network | ipaddress.IPv6Network
    node_ports: tuple[int, int]  # inclusive

    @staticmethod
    def parse(service_cidr: str, node_port_range: str) -> Ranges:
        lo, _, hi = node_port_range.partition("-")
        return Ranges(ipaddress.ip_network(service_cidr), (int(lo), int(hi)))

    def first_ip(self, offset: int) -> str:
        return str(self.service_cidr.network_address + offset)


@dataclass
class Plan:
    """What a Service holds after a create or update, and what changes hands."""

    ips: set[str] = field(default_factory=set)
    ports: set[int] = field(default_factory=set)
    errors: list[FieldError] = field(default_factory=list)


def held(svc: Obj | None) -> tuple[set[str], set[int]]:
    """The cluster IPs and node ports a stored Service holds."""
    if not svc:
        return set(), set()
    spec = svc.get("spec") or {}
    ips = {ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")])
           if isinstance(ip, str) and ip not in ("", "None")}
    ports = {p["nodePort"] for p in (spec.get("ports") or [])
             if isinstance(p, dict) and isinstance(p.get("nodePort"), int)}
    hc = spec.get("healthCheckNodePort")
    if isinstance(hc, int) and hc:
        ports.add(hc)
    return ips, ports


def _band(size: int, divisor: int, lo: int, hi: int) -> int:
    return min(max(lo, size // divisor), hi)


def _pick_ip(ranges: Ranges, taken: set[str], rng: random.Random) -> str | None:
    net = ranges.service_cidr
    first, last = 1, net.num_addresses - (2 if net.version == 4 else 1)  # skip network/broadcast
    band = _band(net.num_addresses, 16, 16, 256)
    for lo, hi in ((first + band, last), (first, min(first + band - 1, last))):
        if lo > hi:
            continue
        for _ in range(64):
            ip = str(net.network_address + rng.randint(lo, hi))
            if ip not in taken:
                return ip
        for off in range(lo, hi + 1):  # the band is crowded: search it in order
            ip = str(net.network_address + off)
            if ip not in taken:
                return ip
    return None


def _pick_port(ranges: Ranges, taken: set[int], rng: random.Random) -> int | None:
    lo, hi = ranges.node_ports
    band = _band(hi - lo + 1, 32, 16, 128)
    for a, b in ((lo + band, hi), (lo, min(lo + band - 1, hi))):
        if a > b:
            continue
        for _ in range(64):
            p = rng.randint(a, b)
            if p not in taken:
                return p
        for p in range(a, b + 1):
            if p not in taken:
                return p
    return None


def wants_node_ports(spec: Obj) -> bool:
    t = spec.get("type", "ClusterIP")
    return t == "NodePort" or (t == "LoadBalancer"
                               and spec.get("allocateLoadBalancerNodePorts", True) is not False)


def allocate(svc: Obj, old: Obj | None, taken_ips: set[str], taken_ports: set[int],
             ranges: Ranges, rng: random.Random) -> Plan:
    """Fill in spec.clusterIP(s), ipFamilies, nodePorts and healthCheckNodePort of `svc` (in
    place) and return what it holds. `taken_*` are held by all Services, `old` included."""
    plan = Plan()
    spec = svc.setdefault("spec", {})
    stype = spec.get("type", "ClusterIP")
    old_ips, old_ports = held(old)
    free_ips = taken_ips - old_ips
    free_ports = taken_ports - old_ports

    old_spec = (old or {}).get("spec") or {}
    if stype == "ExternalName":
        # Switching to ExternalName drops the address the Service held; an address the user
        # sets is left for validation to refuse.
        if spec.get("clusterIP") in (None, "", old_spec.get("clusterIP")):
            for k in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                spec.pop(k, None)
    else:
        want = spec.get("clusterIP") or ""
        if not want and old and (old.get("spec") or {}).get("clusterIP"):
            want = (old.get("spec") or {})["clusterIP"]  # an update keeps the address
        if want == "None":
            spec["clusterIP"] = "None"
            spec["clusterIPs"] = ["None"]
        elif want:
            try:
                addr = ipaddress.ip_address(want)
            except ValueError:
                addr = None  # validation reports it
            if addr is None:
                pass
            elif addr not in ranges.service_cidr:
                plan.errors.append(invalid(
                    "spec.clusterIPs[0]", want, "provided IP is not in the valid range. The "
                    f"range of valid IPs is {ranges.service_cidr}"))
            elif want in free_ips:
                plan.errors.append(invalid("spec.clusterIPs[0]", want,
                                           "provided IP is already allocated"))
            else:
                plan.ips.add(want)
                spec["clusterIP"] = want
                spec["clusterIPs"] = [want]
        else:
            ip = _pick_ip(ranges, free_ips, rng)
            if ip is None:
                plan.errors.append(FieldError(
                    "InternalError", "spec.clusterIPs",
                    detail=f"failed to allocate a serviceIP: range {ranges.service_cidr} is full"))
            else:
                plan.ips.add(ip)
                spec["clusterIP"] = ip
                spec["clusterIPs"] = [ip]
        spec.setdefault("ipFamilies", ["IPv4" if ranges.service_cidr.version == 4 else "IPv6"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")

    ports = [p for p in (spec.get("ports") or []) if isinstance(p, dict)]
    old_by_key = {}
    for p in ((old or {}).get("spec") or {}).get("ports") or []:
        if isinstance(p, dict) and isinstance(p.get("nodePort"), int):
            old_by_key[(p.get("port"), p.get("protocol", "TCP"))] = p["nodePort"]
    lo, hi = ranges.node_ports
    if wants_node_ports(spec):
        mine: dict[int, set[str]] = {}
        for i, p in enumerate(ports):
            proto = p.get("protocol", "TCP")
            np = p.get("nodePort") or old_by_key.get((p.get("port"), proto))
            if isinstance(np, int) and np:
                if not lo <= np <= hi:
                    plan.errors.append(invalid(
                        f"spec.ports[{i}].nodePort", np, "provided port is not in the valid "
                        f"range. The range of valid ports is {lo}-{hi}"))
                    continue
                if np in free_ports or proto in mine.get(np, set()):
                    plan.errors.append(invalid(f"spec.ports[{i}].nodePort", np,
                                               "provided port is already allocated"))
                    continue
            else:
                np = _pick_port(ranges, free_ports | plan.ports, rng)
                if np is None:
                    plan.errors.append(FieldError(
                        "InternalError", f"spec.ports[{i}].nodePort",
                        detail=f"failed to allocate a nodePort: range {lo}-{hi} is full"))
                    continue
            p["nodePort"] = np
            mine.setdefault(np, set()).add(proto)
            plan.ports.add(np)
    else:
        # Leaving NodePort/LoadBalancer drops the ports held; a port the user sets is left
        # for validation to refuse.
        for p in ports:
            if p.get("nodePort") == old_by_key.get((p.get("port"), p.get("protocol", "TCP"))):
                p.pop("nodePort", None)

    if stype == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local":
        hc = spec.get("healthCheckNodePort") or (old or {}).get("spec", {}).get(
            "healthCheckNodePort")
        if isinstance(hc, int) and hc:
            if not lo <= hc <= hi:
                plan.errors.append(invalid("spec.healthCheckNodePort", hc, "provided port is not "
                                           f"in the valid range. The range of valid ports is "
                                           f"{lo}-{hi}"))
            elif hc in free_ports or hc in plan.ports:
                plan.errors.append(invalid("spec.healthCheckNodePort", hc,
                                           "provided port is already allocated"))
            else:
                plan.ports.add(hc)
        else:
            hc = _pick_port(ranges, free_ports | plan.ports, rng)
            if hc is not None:
                spec["healthCheckNodePort"] = hc
                plan.ports.add(hc)
    elif spec.get("healthCheckNodePort") == old_spec.get("healthCheckNodePort"):
        spec.pop("healthCheckNodePort", None)
    return plan
