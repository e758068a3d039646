"""LoadBalancer IP address management (pure): which LAN address each LoadBalancer Service gets.

podnet plays the part MetalLB's controller plays in a cluster without a cloud: it gives every
Service of type LoadBalancer that has no spec.loadBalancerClass an IPv4 address from a pool on
the LAN, and writes it to status.loadBalancer.ingress. Services with a loadBalancerClass belong
to another implementation and are never written.

The Services' statuses are the only record of what is allocated: `allocate` recomputes the whole
allocation from them on every sync, so a restarted server finds it again. The rules:

1. A Service keeps an address from the pool that its status already shows (the first one in
   the pool, if it shows several), unless spec.loadBalancerIP asks for another. When two
   Services show the same address, the older (creationTimestamp, then uid) keeps it.
2. spec.loadBalancerIP (deprecated, still used) is honoured when it is in the pool and free;
   otherwise the Service gets no address, and a Warning says why.
3. The rest get the lowest free address, oldest Service first; when none is left, a Warning.
4. A Service that is no longer of type LoadBalancer has its status.loadBalancer cleared; a
   deleted one is simply gone. Either way its address is free again.

Addresses in the pool that another implementation's Services show are left to them.

A pool is written as a comma-separated list of CIDRs (10.0.0.0/29), ranges (10.0.0.5-10.0.0.9)
and single addresses; `parse_pool` reads it and `pool_problems` checks it against the LAN.

    pool 172.18.0.200-172.18.0.202
    default/a  created t1  status 172.18.0.201   ->  keeps 172.18.0.201
    default/b  created t2  no status             ->  172.18.0.200 (the lowest free)
    default/c  created t3  loadBalancerIP .201   ->  none: "already in use by default/a"
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)

LOAD_BALANCER = "LoadBalancer"
IP_MODE = "VIP"  # the address is on the nodes' path, not a proxy in front of them

# What a Service is to this allocator.
OURS = "ours"  # type LoadBalancer, no loadBalancerClass: gets an address
FOREIGN = "foreign"  # type LoadBalancer with a class: another implementation's
OTHER = "other"  # not a LoadBalancer: holds no address; a status left over is cleared

EVENT_NORMAL = "Normal"
EVENT_WARNING = "Warning"
REASON_ALLOCATED = "IPAllocated"
REASON_FAILED = "AllocationFailed"


class PoolError(ValueError):
    """A pool that cannot be read; the message names the bad value."""


# -- pools --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pool:
    """A set of IPv4 addresses: sorted, disjoint, non-adjacent inclusive ranges of integers."""

    ranges: tuple[tuple[int, int], ...]

    @staticmethod
    def of(ranges: Iterable[tuple[int, int]]) -> Pool:
        """The pool of these ranges, merged where they overlap or touch."""
        merged: list[tuple[int, int]] = []
        for lo, hi in sorted(ranges):
            if merged and lo <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        return Pool(tuple(merged))

    def __str__(self) -> str:
        return ",".join(_range_text(lo, hi) for lo, hi in self.ranges)

    def __len__(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.ranges)

    def __contains__(self, ip: object) -> bool:
        n = _ipv4_int(ip) if isinstance(ip, str) else None
        if n is None:
            return False
        i = bisect.bisect_right(self.ranges, (n, 1 << 32)) - 1
        return i >= 0 and self.ranges[i][0] <= n <= self.ranges[i][1]

    def addresses(self) -> Iterator[str]:
        """Every address, lowest first (lazily: a pool may be large)."""
        for lo, hi in self.ranges:
            for n in range(lo, hi + 1):
                yield str(ipaddress.IPv4Address(n))


def _range_text(lo: int, hi: int) -> str:
    first = str(ipaddress.IPv4Address(lo))
    return first if lo == hi else f"{first}-{ipaddress.IPv4Address(hi)}"


def _ipv4_int(text: str) -> int | None:
    try:
        return int(ipaddress.IPv4Address(text))
    except ValueError:
        return None


def parse_pool(text: str) -> Pool:
    """The pool written in `text`: CIDRs, A-B ranges and single addresses, comma-separated.
    PoolError, naming the bad entry, when it is not one of those or not IPv4."""
    if not text.strip():
        raise PoolError("the pool is empty")
    return Pool.of(_parse_entry(entry.strip()) for entry in text.split(","))


def _parse_entry(entry: str) -> tuple[int, int]:
    if not entry:
        raise PoolError("the pool has an empty entry")
    if "-" in entry:
        first, _, last = (s.strip() for s in entry.partition("-"))
        lo, hi = _address(first, entry), _address(last, entry)
        if lo > hi:
            raise PoolError(f"the range {entry} ends before it starts")
        return lo, hi
    if "/" in entry:
        try:
            net = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise PoolError(f"{entry} is not a valid CIDR") from None
        if net.version != 4:
            raise PoolError(f"{entry} is not IPv4 (the LAN is IPv4)")
        if net.network_address != ipaddress.ip_address(entry.partition("/")[0]):
            raise PoolError(f"{entry} has host bits set (the network is {net})")
        return int(net.network_address), int(net.broadcast_address)
    n = _address(entry, entry)
    return n, n


def _address(text: str, entry: str) -> int:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise PoolError(f"{entry} is not a CIDR, a range A-B or an address") from None
    if ip.version != 4:
        raise PoolError(f"{entry} is not IPv4 (the LAN is IPv4)")
    return int(ip)


def offsets_pool(lan_cidr: str, first: int, last: int) -> Pool:
    """The LAN's addresses from offset `first` to offset `last` (the default pool is offsets
    200..249 of the LAN: podnet.lab.topology.LB_POOL_OFFSETS)."""
    base = int(ipaddress.IPv4Network(lan_cidr).network_address)
    return Pool(((base + first, base + last),))


def pool_problems(pool: Pool, lan_cidr: str, reserved: Mapping[str, str]) -> list[str]:
    """Why `pool` cannot serve the LAN `lan_cidr`: empty when it can. `reserved` maps the
    addresses of the LAN's machines to what they are ("node-1"); the pool must hold none of
    them, nor the LAN's network or broadcast address."""
    net = ipaddress.IPv4Network(lan_cidr)
    lo_net, hi_net = int(net.network_address), int(net.broadcast_address)
    errs = [f"{_range_text(lo, hi)} is not inside the LAN {lan_cidr}"
            for lo, hi in pool.ranges if lo < lo_net or hi > hi_net]
    if errs:
        return errs
    special = {str(net.network_address): "the LAN's network address",
               str(net.broadcast_address): "the LAN's broadcast address"}
    for ip, what in sorted({**special, **reserved}.items(), key=lambda kv: _sort_ip(kv[0])):
        if ip in pool:
            errs.append(f"it holds {ip}, {what}")
    return errs


def _sort_ip(ip: str) -> int:
    n = _ipv4_int(ip)
    return -1 if n is None else n


# -- Services -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LbService:
    """What the allocator needs of a Service, taken once when it is read."""

    namespace: str
    name: str
    uid: str
    created: str  # creationTimestamp (RFC 3339, so it sorts as text)
    role: str  # OURS, FOREIGN or OTHER
    requested: str  # spec.loadBalancerIP, or ""
    ingress: tuple[str, ...]  # the IPs in status.loadBalancer.ingress, in order
    load_balancer: Obj  # status.loadBalancer as it is

    @property
    def key(self) -> Key:
        return self.namespace, self.name

    @property
    def age(self) -> tuple[str, str]:
        """Sorts older Services first."""
        return self.created, self.uid

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def role(obj: Obj) -> str:
    spec = _dict(obj.get("spec"))
    if spec.get("type") != LOAD_BALANCER:
        return OTHER
    return FOREIGN if spec.get("loadBalancerClass") else OURS


def record(obj: Obj) -> LbService | None:
    """The allocator's view of a Service; None when it matters neither for addresses nor for
    writing (not a LoadBalancer and no load balancer status; another class's and showing no
    address)."""
    meta = _dict(obj.get("metadata"))
    spec = _dict(obj.get("spec"))
    load_balancer = _dict(_dict(obj.get("status")).get("loadBalancer"))
    ingress = tuple(str(i["ip"]) for i in _list(load_balancer.get("ingress"))
                    if isinstance(i, dict) and isinstance(i.get("ip"), str) and i["ip"])
    kind = role(obj)
    if (kind == OTHER and not load_balancer) or (kind == FOREIGN and not ingress):
        return None
    requested = spec.get("loadBalancerIP")
    return LbService(
        namespace=str(meta.get("namespace") or ""), name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""), created=str(meta.get("creationTimestamp") or ""),
        role=kind, requested=requested if isinstance(requested, str) else "",
        ingress=ingress, load_balancer=load_balancer)


def _dict(value: object) -> Obj:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


# -- allocation ---------------------------------------------------------------------------------


class Event(NamedTuple):
    type: str  # Normal or Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Outcome:
    """What one Service should have: an address, or none and why (`problem`)."""

    service: LbService
    ip: str | None
    problem: str = ""
    pool: str = ""

    @property
    def load_balancer(self) -> Obj:
        """The status.loadBalancer to write."""
        return {"ingress": [{"ip": self.ip, "ipMode": IP_MODE}]} if self.ip else {}

    @property
    def changed(self) -> bool:
        """Whether the Service's status must be written."""
        return self.service.load_balancer != self.load_balancer

    @property
    def event(self) -> Event | None:
        """The Event this outcome calls for: a Warning when the Service gets no address, a
        Normal one when it gets an address its status does not show yet."""
        if self.problem:
            return Event(EVENT_WARNING, REASON_FAILED, self.problem)
        if self.ip is not None and self.ip not in self.service.ingress:
            return Event(EVENT_NORMAL, REASON_ALLOCATED,
                         f"assigned IP {self.ip} from pool {self.pool}")
        return None


def allocate(pool: Pool, services: Iterable[LbService]) -> list[Outcome]:
    """Every address, recomputed from the Services' statuses (see the rules at the top).
    Returns an Outcome for every Service of ours and every other one that still shows a load
    balancer status; none for another class's. Outcomes without an address come first, so a
    writer frees addresses before it hands them out again; each part is oldest first."""
    pool_text = str(pool)
    by_age = sorted(services, key=lambda s: s.age)
    writable = [s for s in by_age if s.role != FOREIGN]
    taken: dict[str, LbService] = {}  # address -> the Service it is allocated to
    for s in by_age:
        for ip in s.ingress if s.role == FOREIGN else ():
            if ip in pool:
                taken.setdefault(ip, s)
    ips: dict[Key, str] = {}
    problems: dict[Key, str] = {}
    candidates = [s for s in writable if s.role == OURS]
    for s in candidates:  # 1. keep what the status shows
        current = next((ip for ip in s.ingress if ip in pool), None)
        if current is None or (s.requested and s.requested != current):
            continue
        if current not in taken or taken[current].role == FOREIGN:
            taken[current] = s
            ips[s.key] = current
    for s in candidates:  # 2. spec.loadBalancerIP
        if s.key in ips or not s.requested:
            continue
        if s.requested not in pool:
            problems[s.key] = (f"failed to allocate IP {s.requested} (spec.loadBalancerIP): "
                               f"it is not in the pool {pool_text}")
        elif s.requested in taken:
            problems[s.key] = (f"failed to allocate IP {s.requested} (spec.loadBalancerIP): "
                               f"it is already in use by {taken[s.requested]}")
        else:
            taken[s.requested] = s
            ips[s.key] = s.requested
    free = (ip for ip in pool.addresses() if ip not in taken)
    for s in candidates:  # 3. the lowest free address
        if s.key in ips or s.key in problems:
            continue
        lowest = next(free, None)
        if lowest is None:
            problems[s.key] = f"no available IPs in pool {pool_text}"
            continue
        taken[lowest] = s
        ips[s.key] = lowest
    outcomes = [Outcome(s, ips.get(s.key), problems.get(s.key, ""), pool_text)
                for s in writable]
    return sorted(outcomes, key=lambda o: o.ip is not None)
