# ruff: noqa: E501  (golden nft scripts have nft's own long lines)
"""The proxy's renderer: golden nft scripts for a small Ruleset (the whole table, and the
changes between two Rulesets). Inputs and address plan: tests/unit/test_proxy_model.py."""

from __future__ import annotations

from test_proxy_model import NODE, SERVICES, SLICES, ep, slc

from podnet.proxy import model, render

TABLE = render.Table("podnet-c1", NODE.service_cidr, NODE.cluster_cidr)
SMALL = model.compile_services(SERVICES[:3], SLICES[:3], NODE)

FULL = """\
table ip podnet-c1
delete table ip podnet-c1
table ip podnet-c1 {
	set cluster-ips {
		type ipv4_addr
	}
	set no-endpoints {
		type ipv4_addr . inet_proto . inet_service
	}
	set hairpin {
		type ipv4_addr . ipv4_addr
	}
	set np-no-endpoints {
		type inet_proto . inet_service
	}
	set svc-n1 {
		type ipv4_addr . inet_proto . inet_service
	}
	set np-n1 {
		type inet_proto . inet_service
	}
	set svc-n2 {
		type ipv4_addr . inet_proto . inet_service
	}
	set np-n2 {
		type inet_proto . inet_service
	}
	map eps {
		typeof ip daddr . meta l4proto . tcp dport . numgen random mod 1 : ip daddr . tcp dport
	}
	map np-eps {
		typeof meta l4proto . tcp dport . numgen random mod 1 : ip daddr . tcp dport
	}
	chain services {
		ip daddr . meta l4proto . th dport @svc-n1 dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 1 map @eps
		fib daddr type local meta l4proto . th dport @np-n1 meta mark set meta mark | 0x4000 dnat ip to meta l4proto . th dport . numgen random mod 1 map @np-eps
		ip daddr . meta l4proto . th dport @svc-n2 dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 2 map @eps
		fib daddr type local meta l4proto . th dport @np-n2 meta mark set meta mark | 0x4000 dnat ip to meta l4proto . th dport . numgen random mod 2 map @np-eps
	}
	chain nat-prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr @cluster-ips ip saddr != 10.244.0.0/16 meta mark set meta mark | 0x4000
		jump services
	}
	chain nat-output {
		type nat hook output priority -100; policy accept;
		ip daddr @cluster-ips ip saddr != 10.244.0.0/16 meta mark set meta mark | 0x4000
		jump services
	}
	chain mark-hairpin {
		type filter hook prerouting priority -90; policy accept;
		ct status dnat ip saddr . ip daddr @hairpin meta mark set meta mark | 0x4000
	}
	chain nat-postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		meta mark & 0x4000 == 0 return
		meta mark set meta mark ^ 0x4000
		masquerade fully-random
	}
	chain reject-unserved {
		meta l4proto tcp reject with tcp reset
		reject
	}
	chain check {
		fib daddr type local meta l4proto . th dport @np-no-endpoints goto reject-unserved
		ip daddr . meta l4proto . th dport @no-endpoints goto reject-unserved
		ip daddr @cluster-ips goto reject-unserved
		ip daddr 10.96.0.0/12 drop
	}
	chain filter-input {
		type filter hook input priority -10; policy accept;
		jump check
	}
	chain filter-forward {
		type filter hook forward priority -10; policy accept;
		jump check
	}
	chain filter-output {
		type filter hook output priority -10; policy accept;
		jump check
	}
}
add element ip podnet-c1 cluster-ips { 10.96.0.10, 10.96.0.50, 10.96.0.60 }
add element ip podnet-c1 eps { 10.96.0.10 . tcp . 53 . 0 : 10.244.2.9 . 5353, 10.96.0.10 . udp . 53 . 0 : 10.244.2.9 . 5353, 10.96.0.50 . tcp . 80 . 0 : 10.244.1.7 . 8080, 10.96.0.50 . tcp . 80 . 1 : 10.244.2.5 . 8080 }
add element ip podnet-c1 hairpin { 10.244.1.7 . 10.244.1.7 }
add element ip podnet-c1 no-endpoints { 10.96.0.60 . tcp . 80 }
add element ip podnet-c1 svc-n1 { 10.96.0.10 . tcp . 53, 10.96.0.10 . udp . 53 }
add element ip podnet-c1 svc-n2 { 10.96.0.50 . tcp . 80 }
"""

# web deleted (the last Service with 2 endpoints: its set and rule go), empty gets 3 endpoints
# (a new count: a new set and rule), dns unchanged (not mentioned).
INCREMENTAL = """\
add set ip podnet-c1 svc-n3 { type ipv4_addr . inet_proto . inet_service; }
add set ip podnet-c1 np-n3 { type inet_proto . inet_service; }
delete element ip podnet-c1 cluster-ips { 10.96.0.50 }
delete element ip podnet-c1 eps { 10.96.0.50 . tcp . 80 . 0, 10.96.0.50 . tcp . 80 . 1 }
delete element ip podnet-c1 hairpin { 10.244.1.7 . 10.244.1.7 }
delete element ip podnet-c1 no-endpoints { 10.96.0.60 . tcp . 80 }
add element ip podnet-c1 eps { 10.96.0.60 . tcp . 80 . 0 : 10.244.2.1 . 8080, 10.96.0.60 . tcp . 80 . 1 : 10.244.2.2 . 8080, 10.96.0.60 . tcp . 80 . 2 : 10.244.2.3 . 8080 }
add element ip podnet-c1 svc-n3 { 10.96.0.60 . tcp . 80 }
flush chain ip podnet-c1 services
add rule ip podnet-c1 services ip daddr . meta l4proto . th dport @svc-n1 dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 1 map @eps
add rule ip podnet-c1 services fib daddr type local meta l4proto . th dport @np-n1 meta mark set meta mark | 0x4000 dnat ip to meta l4proto . th dport . numgen random mod 1 map @np-eps
add rule ip podnet-c1 services ip daddr . meta l4proto . th dport @svc-n3 dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 3 map @eps
add rule ip podnet-c1 services fib daddr type local meta l4proto . th dport @np-n3 meta mark set meta mark | 0x4000 dnat ip to meta l4proto . th dport . numgen random mod 3 map @np-eps
delete set ip podnet-c1 svc-n2
delete set ip podnet-c1 np-n2
"""


def test_full_table():
    assert render.full(TABLE, SMALL) == FULL


def test_incremental_changes():
    rules = SMALL.copy()
    delta = rules.update({
        ("default", "web"): None,
        ("default", "empty"): model.compile_service(
            SERVICES[2], [slc("empty", ep("10.244.2.1"), ep("10.244.2.2"), ep("10.244.2.3"))],
            NODE)})
    assert render.incremental(TABLE, delta) == INCREMENTAL


def test_nothing_to_do_renders_nothing():
    rules = SMALL.copy()
    assert render.incremental(TABLE, rules.update({})) == ""
    assert render.incremental(TABLE, rules.update(
        {("default", "web"): rules.services[("default", "web")]})) == ""


def test_an_endpoint_change_is_element_operations_only():
    rules = SMALL.copy()
    delta = rules.update({("default", "web"): model.compile_service(
        SERVICES[0], [slc("web", ep("10.244.2.5"), ep("10.244.2.8"))], NODE)})
    assert render.incremental(TABLE, delta) == (
        "delete element ip podnet-c1 eps { 10.96.0.50 . tcp . 80 . 0, 10.96.0.50 . tcp . 80 . 1 }\n"
        "delete element ip podnet-c1 hairpin { 10.244.1.7 . 10.244.1.7 }\n"
        "add element ip podnet-c1 eps { 10.96.0.50 . tcp . 80 . 0 : 10.244.2.5 . 8080, "
        "10.96.0.50 . tcp . 80 . 1 : 10.244.2.8 . 8080 }\n")


def test_large_element_lists_are_chunked():
    lines = render._element_lines("add", TABLE, "cluster-ips",
                                  {f"10.96.{i // 256}.{i % 256}" for i in range(2500)})
    assert len(lines) == 3
    assert lines[0].count(",") == render.CHUNK - 1


def test_node_port_elements_go_to_their_own_sets_and_map():
    from test_proxy_model import NP_NODE, NP_SERVICES, NP_SLICES

    rules = SMALL.copy()
    delta = rules.update({("default", "np"): model.compile_service(
        NP_SERVICES[0], NP_SLICES[:1], NP_NODE)})
    assert render.incremental(TABLE, delta) == (
        "add element ip podnet-c1 cluster-ips { 10.96.0.70 }\n"
        "add element ip podnet-c1 eps { 10.96.0.70 . tcp . 80 . 0 : 10.244.1.7 . 8080, "
        "10.96.0.70 . tcp . 80 . 1 : 10.244.2.5 . 8080 }\n"
        "add element ip podnet-c1 no-endpoints { 10.96.0.70 . udp . 53 }\n"
        "add element ip podnet-c1 np-eps { tcp . 30080 . 0 : 10.244.1.7 . 8080, "
        "tcp . 30080 . 1 : 10.244.2.5 . 8080 }\n"
        "add element ip podnet-c1 np-n2 { tcp . 30080 }\n"
        "add element ip podnet-c1 np-no-endpoints { udp . 30053 }\n"
        "add element ip podnet-c1 svc-n2 { 10.96.0.70 . tcp . 80 }\n")
    assert render.incremental(TABLE, rules.update({("default", "np"): None})) == (
        "delete element ip podnet-c1 cluster-ips { 10.96.0.70 }\n"
        "delete element ip podnet-c1 eps { 10.96.0.70 . tcp . 80 . 0, 10.96.0.70 . tcp . 80 . 1 }\n"
        "delete element ip podnet-c1 no-endpoints { 10.96.0.70 . udp . 53 }\n"
        "delete element ip podnet-c1 np-eps { tcp . 30080 . 0, tcp . 30080 . 1 }\n"
        "delete element ip podnet-c1 np-n2 { tcp . 30080 }\n"
        "delete element ip podnet-c1 np-no-endpoints { udp . 30053 }\n"
        "delete element ip podnet-c1 svc-n2 { 10.96.0.70 . tcp . 80 }\n")
