"""The lab on real namespaces, without agents (podnet.lab.build directly): every machine reaches
every other over the LAN, the host's own namespace does not change, two clusters side by side
are separate, a half-built lab is completed or removed, and teardown leaves nothing, not even a
process."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from podnet.kernel import netns
from podnet.lab import build, names, topology
from podnet.lab.topology import LabPlan

pytestmark = pytest.mark.integration

Factory = Callable[..., LabPlan]


def ip_json(*args: str, ns: str | None = None) -> Any:
    argv = ["ip", "-j", *args] if ns is None else ["ip", "-n", ns, "-j", *args]
    return json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)


def ping(ns: str, address: str) -> bool:
    r = subprocess.run(netns.exec_argv(ns, ["ping", "-c1", "-W1", address]),
                       capture_output=True, text=True)
    return r.returncode == 0


def eth0_mac(ns: str) -> str:
    return str(ip_json("link", "show", "dev", "eth0", ns=ns)[0]["address"])


def bridge_ports(ns: str) -> list[str]:
    return sorted(link["ifname"] for link in ip_json("link", "show", "master", "br0", ns=ns))


def host_snapshot() -> dict[str, Any]:
    """The host namespace's addresses, routes and links (lifetimes dropped: they count down on
    a host with DHCP addresses)."""
    addrs = ip_json("addr")
    for link in addrs:
        for a in link.get("addr_info", []):
            a.pop("valid_life_time", None)
            a.pop("preferred_life_time", None)
    return {"addr": addrs, "route": ip_json("route"), "link": ip_json("link")}


def cluster_netns(cluster: str) -> list[str]:
    return [ns for ns in netns.names() if names.owns_netns(cluster, ns)]


@pytest.fixture
def lab_factory() -> Iterator[Factory]:
    """Build labs of fresh clusters; every one is torn down afterwards, even on failure, and
    must leave no namespace behind."""
    clusters: list[str] = []

    def make(nodes: int = 3, lan_cidr: str = topology.DEFAULT_LAN_CIDR, owner: str = "",
             do_build: bool = True) -> LabPlan:
        cluster = "l" + secrets.token_hex(4)
        clusters.append(cluster)
        lab = topology.plan(cluster, nodes, lan_cidr, owner=owner)
        if do_build:
            assert build.build(lab) is True
        return lab

    try:
        yield make
    finally:
        for cluster in clusters:
            build.teardown(cluster)
        left = [ns for c in clusters for ns in cluster_netns(c)]
        assert not left, f"namespaces left behind: {left}"


def test_every_machine_reaches_every_other_over_the_lan(lab_factory: Factory) -> None:
    lab = lab_factory(3)
    for m in lab.machines:
        addrs = ip_json("addr", "show", "dev", "eth0", ns=m.netns)[0]["addr_info"]
        assert [(a["local"], a["prefixlen"]) for a in addrs if a["family"] == "inet"] == [
            (m.address, 24)]
    for src in lab.machines:
        for dst in lab.machines:
            if src != dst:
                assert ping(src.netns, dst.address), f"{src.name} -> {dst.name}"
    assert bridge_ports(lab.lan_netns) == ["external", "node-1", "node-2", "node-3"]
    r = subprocess.run(netns.exec_argv(lab.nodes[0].netns, [
        "sysctl", "-n", "net.ipv4.ip_forward", "net.ipv4.conf.eth0.rp_filter"]),
        capture_output=True, text=True, check=True)
    assert r.stdout.split() == ["1", "0"]


def test_the_host_namespace_does_not_change(lab_factory: Factory) -> None:
    before = host_snapshot()
    lab = lab_factory(3)
    assert ping(lab.nodes[0].netns, lab.external.address)
    assert host_snapshot() == before
    build.teardown(lab.cluster)
    assert host_snapshot() == before


def test_two_clusters_on_the_same_lan_cidr_are_separate(lab_factory: Factory) -> None:
    a, b = lab_factory(2), lab_factory(3)
    b3 = b.machine("node-3").address  # an address only cluster b has
    assert ping(b.nodes[0].netns, b3)
    assert not ping(a.nodes[0].netns, b3)
    assert not ping(a.external.netns, b3)
    # The addresses both have lead to each cluster's own machine.
    assert ping(a.machine("node-2").netns, "172.18.0.11")
    neigh = ip_json("neigh", "show", "172.18.0.11", "dev", "eth0", ns=a.machine("node-2").netns)
    assert neigh[0]["lladdr"] == eth0_mac(a.nodes[0].netns) != eth0_mac(b.nodes[0].netns)
    assert bridge_ports(a.lan_netns) == ["external", "node-1", "node-2"]
    assert bridge_ports(b.lan_netns) == ["external", "node-1", "node-2", "node-3"]
    # Removing one leaves the other as it was.
    build.teardown(a.cluster)
    assert cluster_netns(a.cluster) == []
    assert sorted(cluster_netns(b.cluster)) == sorted(b.netns_names)
    assert ping(b.nodes[0].netns, b3)


def test_build_again_changes_nothing(lab_factory: Factory) -> None:
    lab = lab_factory(2)
    node1 = lab.nodes[0].netns
    link = ip_json("link", "show", "dev", "eth0", ns=node1)[0]
    # Later issues add LoadBalancer addresses to a node's eth0: a re-build keeps them.
    netns.ip_batch(node1, ["addr add 172.18.0.200/32 dev eth0"])
    assert build.build(lab) is False
    again = ip_json("link", "show", "dev", "eth0", ns=node1)[0]
    assert (again["ifindex"], again["address"]) == (link["ifindex"], link["address"])
    addrs = ip_json("addr", "show", "dev", "eth0", ns=node1)[0]["addr_info"]
    assert sorted(a["local"] for a in addrs if a["family"] == "inet") == [
        "172.18.0.11", "172.18.0.200"]
    assert ping(lab.external.netns, lab.nodes[1].address)


def test_a_half_built_lab_is_completed(lab_factory: Factory) -> None:
    lab = lab_factory(3, do_build=False)
    # As if `up` died in the middle, or something went wrong since: every namespace but
    # node-3's, which is a bare file (`ip netns add` killed before it mounted the namespace);
    # the bridge; node-1 wired; node-2's LAN port whose other end is not node-2's eth0; and an
    # eth0 in the external host that is no veth to the LAN.
    netns.ip_batch(None, topology.netns_add_commands(lab.netns_names[:-1]))
    netns.ip_batch(lab.lan_netns, [
        "link add br0 type bridge",
        "link add node-1 type veth peer name eth0 netns " + lab.machine("node-1").netns,
        "link add node-2 type veth peer name eth0 netns " + lab.machine("node-2").netns,
    ])
    netns.ip_batch(lab.machine("node-2").netns, ["link set eth0 name stray"])
    netns.ip_batch(lab.external.netns, ["link add eth0 type veth peer name loop"])
    netns.path(lab.machine("node-3").netns).touch()
    assert build.build(lab) is True
    assert [link["ifname"] for link in ip_json("link", ns=lab.machine("node-2").netns)] == [
        "lo", "eth0"]
    assert [link["ifname"] for link in ip_json("link", ns=lab.external.netns)] == [
        "lo", "eth0"]
    for src in lab.machines:
        for dst in lab.machines:
            if src != dst:
                assert ping(src.netns, dst.address), f"{src.name} -> {dst.name}"
    assert bridge_ports(lab.lan_netns) == ["external", "node-1", "node-2", "node-3"]


def test_teardown_after_an_interrupted_build_leaves_nothing(lab_factory: Factory) -> None:
    lab = lab_factory(3, do_build=False)
    netns.ip_batch(None, topology.netns_add_commands(lab.netns_names[:3]))
    netns.ip_batch(lab.lan_netns, [
        "link add br0 type bridge",
        "link add external type veth peer name eth0 netns " + lab.external.netns,
    ])
    netns.path(lab.machine("node-2").netns).touch()  # a namespace file never mounted
    assert sorted(cluster_netns(lab.cluster)) == sorted(
        [*lab.netns_names[:3], lab.machine("node-2").netns])
    removed = build.teardown(lab.cluster)
    assert removed == [lab.machine("node-1").netns, lab.machine("node-2").netns,
                       lab.external.netns, lab.lan_netns]
    assert cluster_netns(lab.cluster) == []
    assert build.teardown(lab.cluster) == []  # again: nothing to do, no error


def test_teardown_kills_the_processes_inside_and_removes_pods_first(
        lab_factory: Factory) -> None:
    lab = lab_factory(2)
    pod_ns = names.pod_netns(lab.cluster, str(uuid.uuid4()))
    netns.add(pod_ns)
    procs = [
        subprocess.Popen(netns.exec_argv(lab.nodes[0].netns, ["sleep", "1000"]),
                         start_new_session=True),
        # A process tree: the children are killed too, not only the process we know.
        subprocess.Popen(netns.exec_argv(pod_ns, ["sh", "-c", "sleep 1000 & sleep 1000 & wait"]),
                         start_new_session=True),
    ]
    try:
        deadline = time.monotonic() + 5
        while True:
            inside = build.pids_in([lab.nodes[0].netns, pod_ns])
            if len(inside[pod_ns]) == 3 and len(inside[lab.nodes[0].netns]) == 1:
                break
            assert time.monotonic() < deadline, inside
            time.sleep(0.02)
        assert inside[lab.nodes[0].netns] == [procs[0].pid]
        children = [p for p in inside[pod_ns] if p != procs[1].pid]
        removed = build.teardown(lab.cluster)
        assert removed[0] == pod_ns
        assert removed[-1] == lab.lan_netns
        assert [p.wait(timeout=5) for p in procs] == [-9, -9]
        for pid in children:
            assert not Path(f"/proc/{pid}").exists() or \
                "zombie" in Path(f"/proc/{pid}/status").read_text()
        assert cluster_netns(lab.cluster) == []
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_a_lab_built_for_another_state_directory_is_left_alone(lab_factory: Factory) -> None:
    lab = lab_factory(1, owner="/var/lib/podnet-a/x")
    other = topology.plan(lab.cluster, 1, owner="/tmp/podnet-b/x")
    with pytest.raises(build.ForeignLabError) as e:
        build.build(other)
    assert str(e.value) == (
        f"the namespaces of cluster {lab.cluster!r} belong to the cluster of the same name in "
        "/var/lib/podnet-a/x, not /tmp/podnet-b/x; cluster names must be unique on a machine")
    with pytest.raises(build.ForeignLabError):
        build.teardown(lab.cluster, owner="/tmp/podnet-b/x")
    assert sorted(cluster_netns(lab.cluster)) == sorted(lab.netns_names)
    assert build.owner_of(lab.cluster) == "/var/lib/podnet-a/x"
    assert build.teardown(lab.cluster, owner="/var/lib/podnet-a/x") == [
        lab.nodes[0].netns, lab.external.netns, lab.lan_netns]


def test_a_lab_on_another_lan_cidr(lab_factory: Factory) -> None:
    lab = lab_factory(2, lan_cidr="10.77.0.0/16")
    assert [m.address for m in lab.machines] == ["10.77.0.2", "10.77.0.11", "10.77.0.12"]
    assert ping(lab.nodes[0].netns, "10.77.0.12")
    assert ping(lab.external.netns, "10.77.0.11")
