# ruff: noqa: E501  (golden nft scripts have nft's own long lines)
"""The policy renderer: grants flattened into disjoint boxes (exact cases and hypothesis
properties on small universes), a PolicyModel cut down to one node's sets, and golden nft
scripts (the full body, and the changes between two NodeRules).

Address plan: node-1's pods are a = 10.244.1.5 (hex 0af40105) and b = 10.244.1.6 (0af40106);
c = 10.244.2.7 lives on node-2. In `flatten` cases addresses are small ints.
"""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podnet.policy.model import Grant, IpRange, Pod, PodPolicy, PolicyModel, PortRange
from podnet.policy.render import (
    ALL_IPS,
    Box,
    NodeRules,
    PodSets,
    flatten,
    full_body,
    hex8,
    incremental,
    merge_ranges,
    node_rules,
)
from podnet.proxy.render import Table

TABLE = Table("podnet-c1", "10.96.0.0/12", "10.244.0.0/16")
A, B, C = 0x0AF40105, 0x0AF40106, 0x0AF40207


def grant(peers: list[tuple[int, int]] | None, ports: list[tuple[str, int, int]] | None,
          rule: int = 0) -> Grant:
    return Grant("ns/p", rule, None if peers is None else tuple(IpRange(*p) for p in peers),
                 None if ports is None else tuple(PortRange(*p) for p in ports))


def box(lo: int, hi: int, protocol: str, plo: int, phi: int) -> Box:
    return Box(IpRange(lo, hi), protocol, plo, phi)


# --- flatten: exact cases --------------------------------------------------------------------

FLATTEN_CASES = [
    pytest.param([], (), (), id="nothing"),
    pytest.param([grant(None, None)], (ALL_IPS,), (), id="everything"),
    pytest.param([grant([(1, 2)], None), grant([(3, 4), (9, 9)], None), grant([(2, 5)], None)],
                 (IpRange(1, 5), IpRange(9, 9)), (), id="any-merges-overlapping-and-adjacent"),
    pytest.param([grant([(5, 5)], [("TCP", 80, 80)])], (), (box(5, 5, "TCP", 80, 80),),
                 id="one-box"),
    pytest.param([grant(None, [("UDP", 53, 53), ("TCP", 53, 53)])], (),
                 (box(0, 0xFFFFFFFF, "TCP", 53, 53), box(0, 0xFFFFFFFF, "UDP", 53, 53)),
                 id="any-peer-some-ports"),
    pytest.param([grant([(1, 3)], [("SCTP", 0, 65535)])], (), (box(1, 3, "SCTP", 0, 65535),),
                 id="a-protocol-alone"),
    pytest.param([grant([(1, 3)], [("TCP", 80, 81)]), grant([(1, 3)], [("TCP", 82, 90)])], (),
                 (box(1, 3, "TCP", 80, 90),), id="adjacent-ports-merge"),
    pytest.param([grant([(1, 1), (3, 3)], [("TCP", 80, 80)]), grant([(2, 2)], [("TCP", 80, 80)])],
                 (), (box(1, 3, "TCP", 80, 80),), id="adjacent-peers-merge"),
    pytest.param([grant([(1, 1), (3, 3)], [("TCP", 80, 80)]),
                  grant([(2, 2)], [("TCP", 80, 80), ("TCP", 443, 443)])],
                 (), (box(1, 3, "TCP", 80, 80), box(2, 2, "TCP", 443, 443)),
                 id="a-port-range-spans-slices"),
    pytest.param([grant([(10, 20)], [("TCP", 80, 81)]),
                  grant([(15, 30)], [("TCP", 81, 90), ("UDP", 53, 53)]),
                  grant([(18, 19)], None)],
                 (IpRange(18, 19),),
                 (box(10, 14, "TCP", 80, 81), box(15, 17, "TCP", 80, 90), box(15, 17, "UDP", 53, 53),
                  box(20, 20, "TCP", 80, 90), box(20, 30, "UDP", 53, 53), box(21, 30, "TCP", 81, 90)),
                 id="overlaps-cut-into-disjoint-boxes-minus-any"),
    pytest.param([grant([(1, 9)], [("TCP", 80, 80)]), grant(None, None)], (ALL_IPS,), (),
                 id="any-covers-all-boxes"),
    pytest.param([grant([], None), grant([(1, 2)], [])], (), (), id="empty-peers-and-ports"),
    pytest.param([grant([(0xFFFFFFFE, 0xFFFFFFFF)], [("UDP", 1, 65535)])], (),
                 (box(0xFFFFFFFE, 0xFFFFFFFF, "UDP", 1, 65535),), id="top-of-the-address-space"),
]


@pytest.mark.parametrize(("grants", "any_", "ports"), FLATTEN_CASES)
def test_flatten(grants, any_, ports):
    assert flatten(grants) == (any_, ports)
    assert flatten(reversed(grants)) == (any_, ports)


def test_merge_ranges():
    assert merge_ranges([IpRange(5, 9), IpRange(1, 3), IpRange(4, 4), IpRange(6, 7),
                         IpRange(11, 12)]) == (IpRange(1, 9), IpRange(11, 12))


# --- flatten: properties on small universes ---------------------------------------------------

IPS = st.integers(0, 15)
PORTS = st.integers(0, 9)
ip_range = st.tuples(IPS, IPS).map(lambda t: IpRange(min(t), max(t)))
port_range = st.one_of(
    st.tuples(st.sampled_from(["TCP", "UDP"]), PORTS, PORTS).map(
        lambda t: PortRange(t[0], min(t[1:]), max(t[1:]))),
    st.sampled_from(["TCP", "UDP"]).map(lambda p: PortRange(p, 0, 65535)))
grants_st = st.lists(st.builds(
    lambda peers, ports, rule: Grant("ns/p", rule, peers, ports),
    st.one_of(st.none(), st.lists(ip_range, max_size=3).map(lambda r: merge_ranges(r))),
    st.one_of(st.none(), st.lists(port_range, max_size=3).map(tuple)),
    st.integers(0, 3)), max_size=6)


def _in_range(r: IpRange, ip: int) -> bool:
    return r.lo <= ip <= r.hi


def _granted(grants: list[Grant], ip: int, protocol: str, port: int) -> bool:
    for g in grants:
        peers = (ALL_IPS,) if g.peers is None else g.peers
        if not any(_in_range(r, ip) for r in peers):
            continue
        if g.ports is None or any(p.protocol == protocol and p.lo <= port <= p.hi
                                  for p in g.ports):
            return True
    return False


def _starts(ranges: list[tuple[int, int]]) -> set[int]:
    """The first value of every cell the ranges' boundaries cut the axis into."""
    return {v for lo, hi in ranges for v in (lo, hi + 1)} | {0}


@settings(max_examples=400, deadline=None)
@given(grants_st)
def test_flatten_is_exact_and_disjoint(grants):
    any_, boxes = flatten(grants)
    # any: sorted, disjoint, not adjacent
    for r, s in itertools.pairwise(any_):
        assert r.hi + 1 < s.lo
    # boxes: pairwise disjoint, and none reaches into `any`
    for x, y in itertools.combinations(boxes, 2):
        assert not (x.protocol == y.protocol and x.ips.lo <= y.ips.hi and y.ips.lo <= x.ips.hi
                    and x.lo <= y.hi and y.lo <= x.hi), (x, y)
    for b in boxes:
        assert all(b.ips.hi < r.lo or r.hi < b.ips.lo for r in any_), b
    assert list(boxes) == sorted(boxes)
    # the union is exact: checked at the start of every cell of the axes
    ip_cuts = [(r.lo, r.hi) for g in grants for r in (g.peers or ())]
    ip_cuts += [(r.lo, r.hi) for r in any_] + [(b.ips.lo, b.ips.hi) for b in boxes]
    port_cuts = [(p.lo, p.hi) for g in grants for p in (g.ports or ())]
    port_cuts += [(b.lo, b.hi) for b in boxes]
    for ip in sorted(v for v in _starts(ip_cuts) if v <= 0xFFFFFFFF):
        for protocol in ("TCP", "UDP"):
            for port in sorted(v for v in _starts(port_cuts) if v <= 65535):
                want = _granted(grants, ip, protocol, port)
                got = any(_in_range(r, ip) for r in any_) or any(
                    b.protocol == protocol and _in_range(b.ips, ip) and b.lo <= port <= b.hi
                    for b in boxes)
                assert got == want, (ip, protocol, port)


@settings(max_examples=100, deadline=None)
@given(grants_st, st.randoms())
def test_flatten_ignores_order(grants, rnd):
    shuffled = list(grants)
    rnd.shuffle(shuffled)
    assert flatten(shuffled) == flatten(grants)


# --- node_rules ------------------------------------------------------------------------------

def pod(name: str, ip: int | None, node: str = "node-1") -> Pod:
    return Pod("x", name, ip, node, {})


def test_node_rules_keeps_this_nodes_isolated_pods():
    allow_b = grant([(B, B)], [("TCP", 80, 80)])
    model = PolicyModel(
        pods={
            "x/a": PodPolicy(pod("a", A), ingress_isolated_by=("x/deny",), ingress=(allow_b,),
                             egress_isolated_by=("x/deny",)),
            "x/b": PodPolicy(pod("b", B)),  # not isolated
            "x/c": PodPolicy(pod("c", C, "node-2"), ingress_isolated_by=("x/deny",)),
            "x/d": PodPolicy(pod("d", None), ingress_isolated_by=("x/deny",)),
            "x/old": PodPolicy(pod("old", A), egress_isolated_by=("x/deny",)),  # stale IP
            "x/e": PodPolicy(pod("e", 0x0AF40108), egress_isolated_by=("x/p",),
                             egress=(grant(None, None),)),
        },
        by_ip={A: "x/a", B: "x/b", C: "x/c", 0x0AF40108: "x/e"})
    assert node_rules(model, "node-1") == NodeRules(
        ingress={A: PodSets(A, (), (box(B, B, "TCP", 80, 80),))},
        egress={A: PodSets(A, (), ()), 0x0AF40108: PodSets(0x0AF40108, (ALL_IPS,), ())})
    assert node_rules(model, "node-2") == NodeRules(ingress={C: PodSets(C, (), ())}, egress={})
    assert node_rules(model, "node-3") == NodeRules({}, {})


def test_hex8():
    assert hex8(A) == "0af40105"
    assert hex8(1) == "00000001"


# --- golden scripts --------------------------------------------------------------------------

RULES = NodeRules(
    ingress={A: PodSets(A, (IpRange(0x0AF40200, 0x0AF402FF),),
                        (box(B, B, "TCP", 80, 81), box(0, 0xFFFFFFFF, "UDP", 53, 53)))},
    egress={A: PodSets(A, (), ()), B: PodSets(B, (IpRange(A, A),), ())})

FULL = """\
table ip podnet-c1 {
	map pol-ingress {
		type ipv4_addr : verdict
	}
	map pol-egress {
		type ipv4_addr : verdict
	}
	set pol-in-0af40105-any {
		type ipv4_addr . inet_proto
		flags interval
	}
	set pol-in-0af40105-ports {
		type ipv4_addr . inet_proto . inet_service
		flags interval
	}
	chain pol-in-0af40105 {
		ip saddr 10.244.1.5 accept
		ip saddr . meta l4proto @pol-in-0af40105-any accept
		ip saddr . meta l4proto . th dport @pol-in-0af40105-ports accept
		reject with icmp type admin-prohibited
	}
	set pol-eg-0af40105-any {
		type ipv4_addr . inet_proto
		flags interval
	}
	set pol-eg-0af40105-ports {
		type ipv4_addr . inet_proto . inet_service
		flags interval
	}
	chain pol-eg-0af40105 {
		ip daddr 10.244.1.5 return
		ip daddr . meta l4proto @pol-eg-0af40105-any return
		ip daddr . meta l4proto . th dport @pol-eg-0af40105-ports return
		reject with icmp type admin-prohibited
	}
	set pol-eg-0af40106-any {
		type ipv4_addr . inet_proto
		flags interval
	}
	set pol-eg-0af40106-ports {
		type ipv4_addr . inet_proto . inet_service
		flags interval
	}
	chain pol-eg-0af40106 {
		ip daddr 10.244.1.6 return
		ip daddr . meta l4proto @pol-eg-0af40106-any return
		ip daddr . meta l4proto . th dport @pol-eg-0af40106-ports return
		reject with icmp type admin-prohibited
	}
	chain pol-forward {
		type filter hook forward priority 0; policy accept;
		ct state established,related accept
		ip saddr vmap @pol-egress
		ip daddr vmap @pol-ingress
	}
	chain pol-input {
		type filter hook input priority 0; policy accept;
		ct state established,related accept
		ip saddr vmap @pol-egress
	}
	chain pol-rpf {
		type filter hook prerouting priority -300; policy accept;
		iifname "pn*" fib saddr . iif oif missing drop
	}
}
add element ip podnet-c1 pol-in-0af40105-any { 10.244.2.0-10.244.2.255 . 0-255 }
add element ip podnet-c1 pol-in-0af40105-ports { 10.244.1.6 . tcp . 80-81, 0.0.0.0-255.255.255.255 . udp . 53 }
add element ip podnet-c1 pol-eg-0af40106-any { 10.244.1.5 . 0-255 }
add element ip podnet-c1 pol-ingress { 10.244.1.5 : jump pol-in-0af40105 }
add element ip podnet-c1 pol-egress { 10.244.1.5 : jump pol-eg-0af40105, 10.244.1.6 : jump pol-eg-0af40106 }
"""


def test_full_body():
    assert full_body(TABLE, RULES) == FULL


def test_full_body_without_isolated_pods_declares_the_fixed_objects():
    text = full_body(TABLE, NodeRules({}, {}))
    assert "add element" not in text
    assert [line.strip() for line in text.splitlines() if line.startswith("\t") and
            line.strip().startswith(("map", "chain", "set"))] == [
        "map pol-ingress {", "map pol-egress {", "chain pol-forward {", "chain pol-input {",
        "chain pol-rpf {"]


def test_full_body_chunks_elements():
    many = tuple(box(i, i, "TCP", 80, 80) for i in range(0, 4000, 2))
    text = full_body(TABLE, NodeRules({A: PodSets(A, (), many)}, {}))
    lines = [ln for ln in text.splitlines() if ln.startswith("add element ip podnet-c1 pol-in-0af40105-ports")]
    assert [ln.count(" . tcp . ") for ln in lines] == [1000, 1000]


def test_incremental_nothing_changed():
    assert incremental(TABLE, RULES, NodeRules(dict(RULES.ingress), dict(RULES.egress))) == ""
    assert incremental(TABLE, NodeRules({}, {}), NodeRules({}, {})) == ""


INCREMENTAL = """\
delete element ip podnet-c1 pol-ingress { 10.244.1.5 }
flush chain ip podnet-c1 pol-in-0af40105
delete chain ip podnet-c1 pol-in-0af40105
delete set ip podnet-c1 pol-in-0af40105-any
delete set ip podnet-c1 pol-in-0af40105-ports
delete element ip podnet-c1 pol-eg-0af40106-any { 10.244.1.5 . 0-255 }
add set ip podnet-c1 pol-in-0af40106-any { type ipv4_addr . inet_proto; flags interval; }
add set ip podnet-c1 pol-in-0af40106-ports { type ipv4_addr . inet_proto . inet_service; flags interval; }
add chain ip podnet-c1 pol-in-0af40106
add rule ip podnet-c1 pol-in-0af40106 ip saddr 10.244.1.6 accept
add rule ip podnet-c1 pol-in-0af40106 ip saddr . meta l4proto @pol-in-0af40106-any accept
add rule ip podnet-c1 pol-in-0af40106 ip saddr . meta l4proto . th dport @pol-in-0af40106-ports accept
add rule ip podnet-c1 pol-in-0af40106 reject with icmp type admin-prohibited
add element ip podnet-c1 pol-in-0af40106-ports { 10.244.1.5 . sctp . 7 }
add element ip podnet-c1 pol-ingress { 10.244.1.6 : jump pol-in-0af40106 }
add element ip podnet-c1 pol-eg-0af40105-ports { 10.244.2.7 . udp . 53 }
"""


def test_incremental():
    new = NodeRules(
        ingress={B: PodSets(B, (), (box(A, A, "SCTP", 7, 7),))},
        egress={A: PodSets(A, (), (box(C, C, "UDP", 53, 53),)), B: PodSets(B, (), ())})
    assert incremental(TABLE, RULES, new) == INCREMENTAL


def test_incremental_from_nothing_and_back():
    empty = NodeRules({}, {})
    up = incremental(TABLE, empty, RULES).splitlines()
    # each vmap element comes after the chains it jumps to
    jump_in = up.index("add element ip podnet-c1 pol-ingress { 10.244.1.5 : jump pol-in-0af40105 }")
    assert jump_in > up.index("add chain ip podnet-c1 pol-in-0af40105")
    assert up[-1] == ("add element ip podnet-c1 pol-egress { 10.244.1.5 : jump pol-eg-0af40105, "
                      "10.244.1.6 : jump pol-eg-0af40106 }")
    assert [line for line in up if line.startswith("add chain")] == [
        "add chain ip podnet-c1 pol-in-0af40105", "add chain ip podnet-c1 pol-eg-0af40105",
        "add chain ip podnet-c1 pol-eg-0af40106"]
    assert len(up) == 26
    down = incremental(TABLE, RULES, empty).splitlines()
    assert down[0] == "delete element ip podnet-c1 pol-ingress { 10.244.1.5 }"
    assert down[5] == "delete element ip podnet-c1 pol-egress { 10.244.1.5, 10.244.1.6 }"
    assert sum(line.startswith("delete chain") for line in down) == 3
    assert sum(line.startswith("delete set") for line in down) == 6
    assert len(down) == 14


def test_every_interval_set_is_a_concatenation():
    """nft 1.0.6 reads the whole content of every non-concatenated interval set in the table
    before any element command (its cache's SETELEM_MAYBE): one such set per isolated pod made
    a one-element change cost 20 ms on a node with 200 of them (bench/README.md)."""
    bodies = re.findall(r"\tset (\S+) \{\n\t\ttype ([^\n]+)\n\t\tflags interval\n", FULL)
    assert len(bodies) == 6
    assert all(" . " in kind for _, kind in bodies), bodies
    added = re.findall(r"add set \S+ \S+ (\S+) \{ type ([^;]+); flags interval; \}",
                       incremental(TABLE, NodeRules({}, {}), RULES))
    assert len(added) == 6
    assert all(" . " in kind for _, kind in added), added
