"""A PolicyModel + a node -> that node's policy objects in nft (pure): full body, changes.

The objects live in the node's one table (`ip podnet-<cluster>`, shared with the service proxy);
every name starts with `pol-`. <hex8> is the pod IP as 8 lowercase hex digits.

  maps   pol-ingress            pod IP -> jump pol-in-<hex8>   (pods isolated for ingress)
         pol-egress             pod IP -> jump pol-eg-<hex8>   (pods isolated for egress)
  chains pol-forward (forward)  established/related accept; ip saddr vmap @pol-egress;
                                ip daddr vmap @pol-ingress
         pol-input (input)      established/related accept; ip saddr vmap @pol-egress
         pol-rpf (prerouting -300)  from a pod's veth (`pn*`), a source that does not route
                                back through that veth is dropped (no pod speaks for another)
  per isolated pod and direction (in: saddr / accept; eg: daddr / return):
  sets   pol-in-<hex8>-any      peer range . protocol 0-255: peers allowed on every port and
                                protocol (intervals; a concatenation, see ANY_TYPE)
         pol-in-<hex8>-ports    peer range . protocol . port range (intervals, DISJOINT boxes:
                                the kernel refuses overlapping concatenated intervals)
  chain  pol-in-<hex8>          own IP -> accept; @any -> accept; @ports -> accept;
                                reject with icmp type admin-prohibited

A packet costs one vmap lookup and at most three set lookups whatever the number of policies.

Paths of a packet between two pods (or a pod and anything):

    pod A --veth--> [prerouting: pol-rpf] --> forward: pol-forward --+-- @pol-egress[A]
                                          \\                         |   (return | reject)
                                           input: pol-input          +-- @pol-ingress[B]
                                           (to the node itself)          (accept | reject)

Changes are element diffs: a pod that becomes isolated gets its sets, chain and vmap element
in one transaction; one that stops being isolated loses the vmap element first, then its chain
and sets; a set whose content changed loses the elements that went and gains the new ones
(every deletion before any addition), in the same transaction.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import TypeVar

from podnet.policy.model import Grant, IpRange, PolicyModel, PortRange
from podnet.proxy.render import CHUNK, Table

INGRESS_MAP = "pol-ingress"
EGRESS_MAP = "pol-egress"
FORWARD_CHAIN = "pol-forward"
INPUT_CHAIN = "pol-input"
RPF_CHAIN = "pol-rpf"

ALL_IPS = IpRange(0, 0xFFFFFFFF)
PORTS_TYPE = "ipv4_addr . inet_proto . inet_service"
# The -any sets hold peer ranges alone, but as a concatenation with every protocol (0-255), not
# as plain `ipv4_addr` intervals: to add or delete an element of any set, nft 1.0.6 first reads
# the content of every non-concatenated interval set in the table (its cache's "SETELEM_MAYBE",
# for automerge), one netlink dump per set. With ~200 isolated pods on a node that cost 20 ms
# per change (measured in a live node: 22 ms for a one-element change, 1.3 ms to list a set);
# with concatenations it is not read (2-3 ms). Same match, per packet one set lookup either way.
ANY_TYPE = "ipv4_addr . inet_proto"
ANY_PROTOCOLS = "0-255"
REJECT = "reject with icmp type admin-prohibited"
ESTABLISHED = "ct state established,related accept"
RPF_RULE = 'iifname "pn*" fib saddr . iif oif missing drop'


@dataclass(frozen=True, order=True)
class Box:
    """Peers `ips` x `protocol` ("TCP", "UDP", "SCTP") x ports lo..hi (inclusive)."""

    ips: IpRange
    protocol: str
    lo: int
    hi: int


@dataclass(frozen=True)
class PodSets:
    """What one isolated pod allows in one direction: `any` peers on every port and protocol,
    plus `ports` boxes (disjoint, and disjoint from `any`)."""

    ip: int
    any: tuple[IpRange, ...]
    ports: tuple[Box, ...]


@dataclass(frozen=True)
class NodeRules:
    ingress: Mapping[int, PodSets]  # pod IP -> sets, for pods on this node isolated for ingress
    egress: Mapping[int, PodSets]


@dataclass(frozen=True)
class _Direction:
    """What differs between the two directions' objects."""

    prefix: str  # "pol-in" / "pol-eg"
    vmap: str
    field: str  # the peer's address in the packet
    verdict: str  # what an allowed packet gets


_INGRESS = _Direction("pol-in", INGRESS_MAP, "saddr", "accept")
_EGRESS = _Direction("pol-eg", EGRESS_MAP, "daddr", "return")


# --- flattening grants into sets -------------------------------------------------------------

_RANGE_ORDER = attrgetter("lo", "hi")
_T = TypeVar("_T")


def merge_ranges(ranges: Iterable[IpRange]) -> tuple[IpRange, ...]:
    """Sorted, disjoint, non-adjacent ranges covering exactly the union of `ranges`."""
    out: list[IpRange] = []
    for r in sorted(ranges, key=_RANGE_ORDER):  # a key: the dataclass's own __lt__ is slow
        if out and r.lo <= out[-1].hi + 1:
            if r.hi > out[-1].hi:
                out[-1] = IpRange(out[-1].lo, r.hi)
        else:
            out.append(r)
    return tuple(out)


def _merge_ports(ports: Iterable[PortRange]) -> frozenset[tuple[str, int, int]]:
    """Per protocol, the union of the port ranges as disjoint, non-adjacent (protocol, lo, hi)."""
    out: list[tuple[str, int, int]] = []
    for p in sorted(ports):
        if out and out[-1][0] == p.protocol and p.lo <= out[-1][2] + 1:
            if p.hi > out[-1][2]:
                out[-1] = (p.protocol, out[-1][1], p.hi)
        else:
            out.append((p.protocol, p.lo, p.hi))
    return frozenset(out)


def _peers(grant: Grant) -> tuple[IpRange, ...]:
    return (ALL_IPS,) if grant.peers is None else grant.peers


def _boxes(groups: list[tuple[tuple[IpRange, ...], tuple[PortRange, ...]]],
           any_ranges: tuple[IpRange, ...]) -> tuple[Box, ...]:
    """Disjoint boxes covering the union of each group's (address ranges x port ranges) minus
    the addresses in `any_ranges`.

    A group is the merged peers of every grant with the same ports (a pod has few distinct
    port lists and many peers, so the sweep below runs over groups, not over peer x port).
    A sweep along the address axis: between two consecutive range boundaries the set of
    groups that cover an address is constant, so each such slice gets the merged port ranges
    of its groups; a (protocol, port range) found in consecutive, contiguous slices becomes
    one box. Within a slice the merged ranges are disjoint, so the boxes are too."""
    events: dict[int, list[tuple[int, int]]] = {}  # address -> (group, +1 | -1)
    for i, (ranges, _) in enumerate(groups):
        for r in ranges:
            events.setdefault(r.lo, []).append((i, 1))
            events.setdefault(r.hi + 1, []).append((i, -1))
    for r in any_ranges:
        events.setdefault(r.lo, []).append((-1, 1))
        events.setdefault(r.hi + 1, []).append((-1, -1))
    cuts = sorted(events)
    count = [0] * (len(groups) + 1)  # the last one counts `any` (index -1)
    active: set[int] = set()
    merged: dict[frozenset[int], frozenset[tuple[str, int, int]]] = {}
    open_runs: dict[tuple[str, int, int], int] = {}  # (protocol, lo, hi) -> first address
    boxes: list[Box] = []
    last = -2  # the last address of the previous slice that had ports

    def close(keep: frozenset[tuple[str, int, int]]) -> None:
        for key in [k for k in open_runs if k not in keep]:
            boxes.append(Box(IpRange(open_runs.pop(key), last), *key))

    for start, end in itertools.pairwise(cuts):
        for i, step in events[start]:
            count[i] += step
            if i >= 0:
                if count[i]:
                    active.add(i)
                else:
                    active.discard(i)
        current: frozenset[tuple[str, int, int]] = frozenset()
        if active and not count[-1]:
            key = frozenset(active)
            if key not in merged:
                merged[key] = _merge_ports(p for g in key for p in groups[g][1])
            current = merged[key]
        close(current if start == last + 1 else frozenset())
        for k in current:
            open_runs.setdefault(k, start)
        if current:
            last = end - 1
    close(frozenset())
    return tuple(sorted(boxes))


def flatten(grants: Iterable[Grant]) -> tuple[tuple[IpRange, ...], tuple[Box, ...]]:
    """The union of `grants` as (`any`, `ports`).

    `any`: the merged peers of the grants that allow every port (ports None; peers None is
    every address). `ports`: disjoint boxes covering exactly the union of peer range x
    protocol x port range of the other grants, MINUS the addresses already in `any` (they
    would add nothing). Both sorted."""
    grants = list(grants)
    any_ranges = merge_ranges(r for g in grants if g.ports is None for r in _peers(g))
    by_ports: dict[tuple[PortRange, ...], list[IpRange]] = {}
    for g in grants:
        if g.ports is not None:
            by_ports.setdefault(g.ports, []).extend(_peers(g))
    groups = [(merge_ranges(ranges), ports) for ports, ranges in by_ports.items()]
    return any_ranges, _boxes(groups, any_ranges)


def node_rules(model: PolicyModel, node: str) -> NodeRules:
    """The sets of the pods on `node` that are isolated, per direction, by pod IP (sorted).
    A pod whose IP the model gives to another pod (a stale one) is left out."""
    ingress: dict[int, PodSets] = {}
    egress: dict[int, PodSets] = {}
    for key, p in sorted(model.pods.items()):
        ip = p.pod.ip
        if p.pod.node != node or ip is None or model.by_ip.get(ip, key) != key:
            continue
        if p.ingress_isolated_by:
            ingress[ip] = PodSets(ip, *flatten(p.ingress))
        if p.egress_isolated_by:
            egress[ip] = PodSets(ip, *flatten(p.egress))
    return NodeRules(dict(sorted(ingress.items())), dict(sorted(egress.items())))


# --- nft text -------------------------------------------------------------------------------

def ip_text(value: int) -> str:
    return ".".join(str((value >> shift) & 0xFF) for shift in (24, 16, 8, 0))


def hex8(ip: int) -> str:
    """10.244.1.5 -> "0af40105"."""
    return f"{ip:08x}"


def range_text(r: IpRange) -> str:
    return ip_text(r.lo) if r.lo == r.hi else f"{ip_text(r.lo)}-{ip_text(r.hi)}"


def any_text(r: IpRange) -> str:
    """An element of a -any set: the peers, on every protocol."""
    return f"{range_text(r)} . {ANY_PROTOCOLS}"


def box_text(box: Box) -> str:
    ports = str(box.lo) if box.lo == box.hi else f"{box.lo}-{box.hi}"
    return f"{range_text(box.ips)} . {box.protocol.lower()} . {ports}"


def chain_name(d: _Direction, ip: int) -> str:
    return f"{d.prefix}-{hex8(ip)}"


def pod_rules(d: _Direction, ip: int) -> list[str]:
    chain = chain_name(d, ip)
    return [f"ip {d.field} {ip_text(ip)} {d.verdict}",
            f"ip {d.field} . meta l4proto @{chain}-any {d.verdict}",
            f"ip {d.field} . meta l4proto . th dport @{chain}-ports {d.verdict}",
            REJECT]


def _set_bodies(d: _Direction, ip: int) -> list[tuple[str, str]]:
    chain = chain_name(d, ip)
    return [(f"{chain}-any", f"type {ANY_TYPE}"), (f"{chain}-ports", f"type {PORTS_TYPE}")]


def _element_lines(verb: str, table: Table, obj: str, elements: list[str]) -> list[str]:
    """`add`/`delete element` lines, CHUNK elements each (none for no elements)."""
    return [f"{verb} element {table.ref} {obj} {{ {', '.join(elements[i:i + CHUNK])} }}"
            for i in range(0, len(elements), CHUNK)]


def _fill(table: Table, d: _Direction, sets: PodSets, *, any_set: bool = True,
          ports_set: bool = True) -> list[str]:
    chain = chain_name(d, sets.ip)
    lines: list[str] = []
    if any_set:
        lines += _element_lines("add", table, f"{chain}-any", [any_text(r) for r in sets.any])
    if ports_set:
        lines += _element_lines("add", table, f"{chain}-ports", [box_text(b) for b in sets.ports])
    return lines


def _jumps(d: _Direction, ips: Iterable[int]) -> list[str]:
    return [f"{ip_text(ip)} : jump {chain_name(d, ip)}" for ip in ips]


def _block_chain(name: str, hook: str | None, rules: list[str]) -> list[str]:
    return [f"\tchain {name} {{", *([f"\t\t{hook}"] if hook else []),
            *(f"\t\t{r}" for r in rules), "\t}"]


def base_chains() -> list[tuple[str, str, list[str]]]:
    """(name, hook line, rules) of the three base chains."""
    return [
        (FORWARD_CHAIN, "type filter hook forward priority 0; policy accept;",
         [ESTABLISHED, f"ip saddr vmap @{EGRESS_MAP}", f"ip daddr vmap @{INGRESS_MAP}"]),
        (INPUT_CHAIN, "type filter hook input priority 0; policy accept;",
         [ESTABLISHED, f"ip saddr vmap @{EGRESS_MAP}"]),
        (RPF_CHAIN, "type filter hook prerouting priority -300; policy accept;", [RPF_RULE]),
    ]


def _directions(rules: NodeRules) -> list[tuple[_Direction, Mapping[int, PodSets]]]:
    return [(_INGRESS, rules.ingress), (_EGRESS, rules.egress)]


def full_body(table: Table, rules: NodeRules) -> str:
    """The policy objects of a table that was just (re)declared in the same transaction (the
    proxy's full script) or is empty: one `table` block declaring the maps, the per-pod sets
    and chains and the base chains, then `add element` lines for the sets and the vmaps."""
    lines = [f"table {table.ref} {{"]
    lines += [f"\tmap {m} {{\n\t\ttype ipv4_addr : verdict\n\t}}"
              for m in (INGRESS_MAP, EGRESS_MAP)]
    for d, pods in _directions(rules):
        for ip in sorted(pods):
            lines += [f"\tset {name} {{\n\t\t{body}\n\t\tflags interval\n\t}}"
                      for name, body in _set_bodies(d, ip)]
            lines += _block_chain(chain_name(d, ip), None, pod_rules(d, ip))
    for name, hook, chain_rules in base_chains():
        lines += _block_chain(name, hook, chain_rules)
    lines.append("}")
    for d, pods in _directions(rules):
        for ip in sorted(pods):
            lines += _fill(table, d, pods[ip])
    for d, pods in _directions(rules):
        lines += _element_lines("add", table, d.vmap, _jumps(d, sorted(pods)))
    return "\n".join(lines) + "\n"


def _changes(table: Table, d: _Direction, old: Mapping[int, PodSets],
             new: Mapping[int, PodSets]) -> tuple[list[str], list[str]]:
    """(removals, additions and refills) for one direction."""
    ref = table.ref
    gone = sorted(set(old) - set(new))
    added = sorted(set(new) - set(old))
    removals = _element_lines("delete", table, d.vmap, [ip_text(ip) for ip in gone])
    for ip in gone:
        chain = chain_name(d, ip)
        removals += [f"flush chain {ref} {chain}", f"delete chain {ref} {chain}"]
        removals += [f"delete set {ref} {name}" for name, _ in _set_bodies(d, ip)]
    additions: list[str] = []
    for ip in added:
        chain = chain_name(d, ip)
        additions += [f"add set {ref} {name} {{ {body}; flags interval; }}"
                      for name, body in _set_bodies(d, ip)]
        additions.append(f"add chain {ref} {chain}")
        additions += [f"add rule {ref} {chain} {r}" for r in pod_rules(d, ip)]
        additions += _fill(table, d, new[ip])
    additions += _element_lines("add", table, d.vmap, _jumps(d, added))
    for ip in sorted(set(old) & set(new)):
        was, now = old[ip], new[ip]
        if was == now:
            continue
        chain = chain_name(d, ip)
        # Element by element: a new pod among 300 peers is one element in each set that
        # selects it, not a refill of thousands. Deletions go before every addition in the
        # script: an added interval may overlap one deleted in the same transaction, which the
        # kernel accepts (only live elements must be disjoint).
        # (The diff is of the objects, and only what differs becomes text: a pod's sets can
        # hold thousands of elements.)
        gone_any, new_any = _diff(was.any, now.any)
        gone_ports, new_ports = _diff(was.ports, now.ports)
        removals += _element_lines("delete", table, f"{chain}-any",
                                   [any_text(r) for r in gone_any])
        removals += _element_lines("delete", table, f"{chain}-ports",
                                   [box_text(b) for b in gone_ports])
        additions += _element_lines("add", table, f"{chain}-any",
                                    [any_text(r) for r in new_any])
        additions += _element_lines("add", table, f"{chain}-ports",
                                    [box_text(b) for b in new_ports])
    return removals, additions


def _diff(before: Sequence[_T], after: Sequence[_T]) -> tuple[list[_T], list[_T]]:
    """(elements gone, elements new), each in its sequence's order."""
    had, keep = set(before), set(after)
    return [e for e in before if e not in keep], [e for e in after if e not in had]


def incremental(table: Table, old: NodeRules, new: NodeRules) -> str:
    """A script (one transaction) taking the policy objects from `old` to `new`: pods no
    longer isolated lose their vmap element, then their chain and sets; pods newly isolated
    get their sets and chain, then their vmap element; changed sets lose the elements that
    went (before any addition) and gain the new ones.
    "" when nothing changes."""
    if old == new:
        return ""
    removals: list[str] = []
    additions: list[str] = []
    for (d, was), (_, now) in zip(_directions(old), _directions(new), strict=True):
        r, a = _changes(table, d, was, now)
        removals += r
        additions += a
    lines = removals + additions
    return "\n".join(lines) + "\n" if lines else ""
