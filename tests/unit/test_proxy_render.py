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
	set no-local {
		type ipv4_addr . inet_proto . inet_service
	}
	set masq-keys {
		type ipv4_addr . inet_proto . inet_service
	}
	set local-keys {
		type ipv4_addr . inet_proto . inet_service
	}
	set hairpin {
		type ipv4_addr . ipv4_addr
	}
	set fw-keys {
		type ipv4_addr . inet_proto . inet_service
	}
	set fw-allow {
		type ipv4_addr . inet_proto . inet_service . ipv4_addr
		flags interval
	}
	set svc-n1 {
		type ipv4_addr . inet_proto . inet_service
	}
	set svc-n2 {
		type ipv4_addr . inet_proto . inet_service
	}
	map eps-tcp {
		typeof ip daddr . meta l4proto . tcp dport . numgen random mod 1 : ip daddr . tcp dport
	}
	map eps-udp {
		typeof ip daddr . meta l4proto . udp dport . numgen random mod 1 : ip daddr . udp dport
	}
	map eps-sctp {
		typeof ip daddr . meta l4proto . sctp dport . numgen random mod 1 : ip daddr . sctp dport
	}
	map local-eps-tcp {
		typeof ip daddr . meta l4proto . tcp dport . numgen random mod 1 : ip daddr . tcp dport
	}
	map local-eps-udp {
		typeof ip daddr . meta l4proto . udp dport . numgen random mod 1 : ip daddr . udp dport
	}
	map local-eps-sctp {
		typeof ip daddr . meta l4proto . sctp dport . numgen random mod 1 : ip daddr . sctp dport
	}
	map affinity {
		type ipv4_addr . inet_proto . inet_service : verdict
	}
	chain services {
		ip daddr . meta l4proto . th dport vmap @affinity
		meta l4proto tcp ip daddr . meta l4proto . th dport @svc-n1 dnat ip to ip daddr . meta l4proto . tcp dport . numgen random mod 1 map @eps-tcp
		meta l4proto udp ip daddr . meta l4proto . th dport @svc-n1 dnat ip to ip daddr . meta l4proto . udp dport . numgen random mod 1 map @eps-udp
		meta l4proto sctp ip daddr . meta l4proto . th dport @svc-n1 dnat ip to ip daddr . meta l4proto . sctp dport . numgen random mod 1 map @eps-sctp
		meta l4proto tcp ip daddr . meta l4proto . th dport @svc-n2 dnat ip to ip daddr . meta l4proto . tcp dport . numgen random mod 2 map @eps-tcp
		meta l4proto udp ip daddr . meta l4proto . th dport @svc-n2 dnat ip to ip daddr . meta l4proto . udp dport . numgen random mod 2 map @eps-udp
		meta l4proto sctp ip daddr . meta l4proto . th dport @svc-n2 dnat ip to ip daddr . meta l4proto . sctp dport . numgen random mod 2 map @eps-sctp
	}
	chain external-local {
		ip daddr . meta l4proto . th dport @local-keys accept
	}
	chain firewall {
		ip daddr . meta l4proto . th dport @fw-keys ip daddr . meta l4proto . th dport . ip saddr != @fw-allow drop
	}
	chain filter-prerouting {
		type filter hook prerouting priority dstnat - 10; policy accept;
		jump firewall
	}
	chain filter-output-fw {
		type filter hook output priority -110; policy accept;
		jump firewall
	}
	chain nat-prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr @cluster-ips ip saddr != 10.244.0.0/16 meta mark set meta mark | 0x4000
		ip daddr . meta l4proto . th dport @masq-keys meta mark set meta mark | 0x4000
		ip saddr != 10.244.0.0/16 jump external-local
		jump services
	}
	chain nat-output {
		type nat hook output priority -100; policy accept;
		ip daddr @cluster-ips ip saddr != 10.244.0.0/16 meta mark set meta mark | 0x4000
		ip daddr . meta l4proto . th dport @masq-keys meta mark set meta mark | 0x4000
		ip daddr . meta l4proto . th dport @local-keys meta mark set meta mark | 0x4000
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
		ip daddr . meta l4proto . th dport @no-endpoints goto reject-unserved
		ip daddr . meta l4proto . th dport @no-local drop
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
add element ip podnet-c1 eps-tcp { 10.96.0.10 . tcp . 53 . 0 : 10.244.2.9 . 5353, 10.96.0.50 . tcp . 80 . 0 : 10.244.1.7 . 8080, 10.96.0.50 . tcp . 80 . 1 : 10.244.2.5 . 8080 }
add element ip podnet-c1 eps-udp { 10.96.0.10 . udp . 53 . 0 : 10.244.2.9 . 5353 }
add element ip podnet-c1 hairpin { 10.244.1.7 . 10.244.1.7 }
add element ip podnet-c1 no-endpoints { 10.96.0.60 . tcp . 80 }
add element ip podnet-c1 svc-n1 { 10.96.0.10 . tcp . 53, 10.96.0.10 . udp . 53 }
add element ip podnet-c1 svc-n2 { 10.96.0.50 . tcp . 80 }
"""

# web deleted (the last Service with 2 endpoints: its set and rule go), empty gets 3 endpoints
# (a new count: a new set and rule), dns unchanged (not mentioned).
INCREMENTAL = """\
add set ip podnet-c1 svc-n3 { type ipv4_addr . inet_proto . inet_service; }
delete element ip podnet-c1 cluster-ips { 10.96.0.50 }
delete element ip podnet-c1 eps-tcp { 10.96.0.50 . tcp . 80 . 0, 10.96.0.50 . tcp . 80 . 1 }
delete element ip podnet-c1 hairpin { 10.244.1.7 . 10.244.1.7 }
delete element ip podnet-c1 no-endpoints { 10.96.0.60 . tcp . 80 }
add element ip podnet-c1 eps-tcp { 10.96.0.60 . tcp . 80 . 0 : 10.244.2.1 . 8080, 10.96.0.60 . tcp . 80 . 1 : 10.244.2.2 . 8080, 10.96.0.60 . tcp . 80 . 2 : 10.244.2.3 . 8080 }
add element ip podnet-c1 svc-n3 { 10.96.0.60 . tcp . 80 }
flush chain ip podnet-c1 services
add rule ip podnet-c1 services ip daddr . meta l4proto . th dport vmap @affinity
add rule ip podnet-c1 services meta l4proto tcp ip daddr . meta l4proto . th dport @svc-n1 dnat ip to ip daddr . meta l4proto . tcp dport . numgen random mod 1 map @eps-tcp
add rule ip podnet-c1 services meta l4proto udp ip daddr . meta l4proto . th dport @svc-n1 dnat ip to ip daddr . meta l4proto . udp dport . numgen random mod 1 map @eps-udp
add rule ip podnet-c1 services meta l4proto sctp ip daddr . meta l4proto . th dport @svc-n1 dnat ip to ip daddr . meta l4proto . sctp dport . numgen random mod 1 map @eps-sctp
add rule ip podnet-c1 services meta l4proto tcp ip daddr . meta l4proto . th dport @svc-n3 dnat ip to ip daddr . meta l4proto . tcp dport . numgen random mod 3 map @eps-tcp
add rule ip podnet-c1 services meta l4proto udp ip daddr . meta l4proto . th dport @svc-n3 dnat ip to ip daddr . meta l4proto . udp dport . numgen random mod 3 map @eps-udp
add rule ip podnet-c1 services meta l4proto sctp ip daddr . meta l4proto . th dport @svc-n3 dnat ip to ip daddr . meta l4proto . sctp dport . numgen random mod 3 map @eps-sctp
flush chain ip podnet-c1 external-local
add rule ip podnet-c1 external-local ip daddr . meta l4proto . th dport @local-keys accept
delete set ip podnet-c1 svc-n2
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
        "delete element ip podnet-c1 eps-tcp { 10.96.0.50 . tcp . 80 . 0, 10.96.0.50 . tcp . 80 . 1 }\n"
        "delete element ip podnet-c1 hairpin { 10.244.1.7 . 10.244.1.7 }\n"
        "add element ip podnet-c1 eps-tcp { 10.96.0.50 . tcp . 80 . 0 : 10.244.2.5 . 8080, "
        "10.96.0.50 . tcp . 80 . 1 : 10.244.2.8 . 8080 }\n")


def test_large_element_lists_are_chunked():
    lines = render._element_lines("add", TABLE, "cluster-ips",
                                  {f"10.96.{i // 256}.{i % 256}" for i in range(2500)})
    assert len(lines) == 3
    assert lines[0].count(",") == render.CHUNK - 1


def test_affinity_chains_come_and_go_in_an_order_nft_accepts():
    """Chains are created before the elements that jump to them, endpoint chains written
    before the chain that jumps to them, and deleted only once nothing refers to them."""
    from test_proxy_model import svc

    sticky = svc("sticky", "10.96.0.78", sessionAffinity="ClientIP",
                 sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})
    rules = SMALL.copy()
    delta = rules.update({("default", "sticky"): model.compile_service(
        sticky, [slc("sticky", ep("10.244.2.13"))], NODE)})
    chain = model.affinity_chain_name(("10.96.0.78", "tcp", 80), 60)
    epc = next(v.set_name for o, _, v in delta.add if o == "chain" and hasattr(v, "set_name"))
    assert render.incremental(TABLE, delta) == (
        f"add set ip podnet-c1 {epc} {{ type ipv4_addr; flags dynamic,timeout; timeout 60s; }}\n"
        f"add chain ip podnet-c1 {chain}\n"
        f"add chain ip podnet-c1 {epc}\n"
        f"flush chain ip podnet-c1 {epc}\n"
        f"add rule ip podnet-c1 {epc} update @{epc} {{ ip saddr }}\n"
        f"add rule ip podnet-c1 {epc} meta l4proto tcp dnat ip to 10.244.2.13:8080\n"
        f"flush chain ip podnet-c1 {chain}\n"
        f"add rule ip podnet-c1 {chain} ip saddr @{epc} meta l4proto tcp dnat ip to "
        "10.244.2.13:8080\n"
        f"add rule ip podnet-c1 {chain} numgen random mod 1 vmap {{ 0 : goto {epc} }}\n"
        f"add element ip podnet-c1 affinity {{ 10.96.0.78 . tcp . 80 : goto {chain} }}\n"
        "add element ip podnet-c1 cluster-ips { 10.96.0.78 }\n")
    assert render.incremental(TABLE, rules.update({("default", "sticky"): None})) == (
        f"delete element ip podnet-c1 affinity {{ 10.96.0.78 . tcp . 80 }}\n"
        "delete element ip podnet-c1 cluster-ips { 10.96.0.78 }\n"
        f"flush chain ip podnet-c1 {chain}\n"
        f"flush chain ip podnet-c1 {epc}\n"
        f"delete chain ip podnet-c1 {chain}\n"
        f"delete chain ip podnet-c1 {epc}\n"
        f"delete set ip podnet-c1 {epc}\n")
