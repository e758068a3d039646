"""The lab's topology (pure): names, addresses, golden `ip -batch` lists, repairs, teardown
order."""

from __future__ import annotations

import pytest

from podnet.lab import topology
from podnet.lab.topology import Observed, TopologyError

UID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def test_plan_of_two_nodes() -> None:
    lab = topology.plan("dev", 2)
    assert (lab.cluster, lab.lan_cidr, lab.backend, lab.lan_netns, lab.owner) == (
        "dev", "172.18.0.0/24", "host-gw", "podnet-dev-lan", "")
    assert [(m.name, m.role, m.netns, m.interface_address) for m in lab.machines] == [
        ("external", "external", "podnet-dev-external", "172.18.0.2/24"),
        ("node-1", "node", "podnet-dev-node-1", "172.18.0.11/24"),
        ("node-2", "node", "podnet-dev-node-2", "172.18.0.12/24"),
    ]
    assert lab.netns_names == ("podnet-dev-lan", "podnet-dev-external", "podnet-dev-node-1",
                               "podnet-dev-node-2")
    assert [m.name for m in lab.nodes] == ["node-1", "node-2"]
    assert lab.external.address == "172.18.0.2"
    assert lab.machine("node-2").address == "172.18.0.12"
    with pytest.raises(KeyError):
        lab.machine("node-3")


def test_golden_commands_of_a_fresh_two_node_lab() -> None:
    lab = topology.plan("dev", 2, owner="/var/lib/podnet/dev")
    assert topology.netns_add_commands(lab.netns_names) == [
        "netns add podnet-dev-lan",
        "netns add podnet-dev-external",
        "netns add podnet-dev-node-1",
        "netns add podnet-dev-node-2",
    ]
    assert topology.lan_commands(lab) == [
        "link set lo up",
        "link add br0 type bridge",
        'link set br0 alias "/var/lib/podnet/dev"',
        "link set br0 up",
        "link add external type veth peer name eth0 netns podnet-dev-external",
        "link set external master br0 up",
        "link add node-1 type veth peer name eth0 netns podnet-dev-node-1",
        "link set node-1 master br0 up",
        "link add node-2 type veth peer name eth0 netns podnet-dev-node-2",
        "link set node-2 master br0 up",
    ]
    assert topology.machine_commands(lab.machine("node-2")) == [
        "link set lo up",
        "addr replace 172.18.0.12/24 dev eth0",
        "link set eth0 up",
    ]
    assert topology.machine_commands(lab.external) == [
        "link set lo up",
        "addr replace 172.18.0.2/24 dev eth0",
        "link set eth0 up",
    ]


def test_sysctls_forward_on_nodes_only_and_never_filter_by_reverse_path() -> None:
    lab = topology.plan("dev", 1)
    assert topology.sysctl_args(lab.machine("node-1")) == [
        "sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.default.rp_filter=0", "net.ipv4.conf.eth0.rp_filter=0"]
    assert topology.sysctl_args(lab.external) == [
        "sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.default.rp_filter=0", "net.ipv4.conf.eth0.rp_filter=0"]


@pytest.mark.parametrize(("lan", "index", "address"), [
    pytest.param("172.18.0.0/24", 1, "172.18.0.11", id="first"),
    pytest.param("172.18.0.0/24", 189, "172.18.0.199", id="last-below-the-lb-pool"),
    pytest.param("10.10.0.0/16", 3, "10.10.0.13", id="larger-lan"),
])
def test_node_addresses(lan: str, index: int, address: str) -> None:
    assert topology.node_address(lan, index) == address
    assert topology.plan("c", index, lan).machine(f"node-{index}").address == address


def test_many_nodes_get_distinct_addresses_and_namespaces() -> None:
    lab = topology.plan("big", topology.MAX_NODES)
    assert len({m.address for m in lab.machines}) == len(lab.machines) == 190
    assert len(set(lab.netns_names)) == 191
    assert lab.nodes[-1].name == "node-189"
    assert lab.nodes[-1].address == "172.18.0.199"


def test_a_lab_without_nodes_has_only_the_lan_and_the_external_host() -> None:
    lab = topology.plan("cp", 0)
    assert lab.nodes == ()
    assert lab.netns_names == ("podnet-cp-lan", "podnet-cp-external")


def test_backend_is_recorded_and_does_not_change_the_wiring() -> None:
    host_gw, vxlan = topology.plan("c", 2), topology.plan("c", 2, backend="vxlan")
    assert vxlan.backend == "vxlan"
    assert topology.lan_commands(vxlan) == topology.lan_commands(host_gw)
    assert vxlan.machines == host_gw.machines


@pytest.mark.parametrize(("nodes", "lan", "backend", "owner", "problem"), [
    pytest.param(-1, "172.18.0.0/24", "host-gw", "", "nodes must be between 0 and 189, not -1",
                 id="negative"),
    pytest.param(190, "172.18.0.0/24", "host-gw", "",
                 "nodes must be between 0 and 189, not 190", id="into-the-lb-pool"),
    pytest.param(2, "172.18.0.0/24", "flannel", "",
                 "backend must be one of host-gw, vxlan, not 'flannel'", id="backend"),
    pytest.param(2, "172.18.0.0/25", "host-gw", "",
                 "lan_cidr must be a /24 or larger, not 172.18.0.0/25", id="small-lan"),
    pytest.param(2, "fd00::/64", "host-gw", "", "lan_cidr must be an IPv4 network, not fd00::/64",
                 id="ipv6"),
    pytest.param(2, "172.18.0.1/24", "host-gw", "",
                 "lan_cidr '172.18.0.1/24' is not a network: 172.18.0.1/24 has host bits set",
                 id="host-bits"),
    pytest.param(2, "172.18.0.0/24", "host-gw", 'a"b',
                 "owner 'a\"b' cannot be an interface alias (at most 255 printable bytes, no "
                 "quotes or backslashes)", id="quote-in-owner"),
])
def test_problems(nodes: int, lan: str, backend: str, owner: str, problem: str) -> None:
    assert topology.problems(nodes, lan, backend, owner) == [problem]
    with pytest.raises(TopologyError) as e:
        topology.plan("c", nodes, lan, backend, owner)
    assert str(e.value) == problem


def test_good_settings_have_no_problems() -> None:
    assert topology.problems(0, "172.18.0.0/24", "host-gw") == []
    assert topology.problems(189, "10.0.0.0/8", "vxlan", "/var/lib/podnet/x") == []


# -- completing a half-built lab ----------------------------------------------------------------


def test_a_complete_lab_only_gets_idempotent_commands() -> None:
    lab = topology.plan("dev", 2)
    seen = Observed(lan_links=frozenset({"lo", "br0", "external", "node-1", "node-2"}),
                    with_eth0=frozenset({"external", "node-1", "node-2"}))
    assert topology.stale_links(lab, seen) == []
    assert topology.lan_commands(lab, seen) == [
        "link set lo up",
        "link set br0 up",
        "link set external master br0 up",
        "link set node-1 master br0 up",
        "link set node-2 master br0 up",
    ]


def test_a_half_built_lab_gets_its_missing_pairs_and_loses_stray_halves() -> None:
    lab = topology.plan("dev", 3)
    # node-1 is wired; node-2 has only its LAN end; node-3 only its eth0; external nothing.
    seen = Observed(lan_links=frozenset({"lo", "br0", "node-1", "node-2"}),
                    with_eth0=frozenset({"node-1", "node-3"}))
    assert topology.stale_links(lab, seen) == [("podnet-dev-lan", "node-2"),
                                               ("podnet-dev-node-3", "eth0")]
    assert topology.lan_commands(lab, seen) == [
        "link set lo up",
        "link set br0 up",
        "link add external type veth peer name eth0 netns podnet-dev-external",
        "link set external master br0 up",
        "link set node-1 master br0 up",
        "link add node-2 type veth peer name eth0 netns podnet-dev-node-2",
        "link set node-2 master br0 up",
        "link add node-3 type veth peer name eth0 netns podnet-dev-node-3",
        "link set node-3 master br0 up",
    ]


def test_a_lan_without_its_bridge_gets_one() -> None:
    lab = topology.plan("dev", 1)
    seen = Observed(lan_links=frozenset({"lo", "external", "node-1"}),
                    with_eth0=frozenset({"external", "node-1"}))
    assert topology.lan_commands(lab, seen)[:3] == [
        "link set lo up", "link add br0 type bridge", "link set br0 up"]


# -- teardown -----------------------------------------------------------------------------------


def test_teardown_order_is_pods_nodes_external_lan_and_only_the_clusters() -> None:
    present = [
        "podnet-dev-lan", "podnet-dev-node-10", "podnet-dev-external", "podnet-dev-node-2",
        f"podnet-dev-pod-{UID}", "podnet-dev-node-lan", "podnet-other-node-1", "cni-1234",
        f"podnet-dev-node-pod-{UID}",
    ]
    assert topology.teardown_order("dev", present) == [
        f"podnet-dev-pod-{UID}", "podnet-dev-node-2", "podnet-dev-node-10",
        "podnet-dev-external", "podnet-dev-lan"]
    assert topology.teardown_order("dev-node", present) == [
        f"podnet-dev-node-pod-{UID}", "podnet-dev-node-lan"]
    assert topology.teardown_order("nobody", present) == []
