from __future__ import annotations

import pytest

from podnet.lab import names

UID = "0f8fad5b-d9cb-469f-a165-70867728950e"


@pytest.mark.parametrize(("cluster", "netns", "owned"), [
    pytest.param("a", "podnet-a-lan", True, id="lan"),
    pytest.param("a", "podnet-a-node-3", True, id="node"),
    pytest.param("a", "podnet-a-external", True, id="external"),
    pytest.param("a", f"podnet-a-pod-{UID}", True, id="pod"),
    pytest.param("a", "podnet-a-node-lan", False, id="lan-of-cluster-a-node"),
    pytest.param("a", "podnet-a-node-node-1", False, id="node-of-cluster-a-node"),
    pytest.param("a", f"podnet-a-b-pod-{UID}", False, id="pod-of-cluster-a-b"),
    pytest.param("a", "podnet-ab-lan", False, id="other-cluster"),
    pytest.param("a", "cni-1234", False, id="not-podnet"),
])
def test_owns_netns_is_exact(cluster, netns, owned):
    assert names.owns_netns(cluster, netns) is owned


def test_pod_veth_is_stable_short_and_distinct():
    a = names.pod_veth("c1", "eth0")
    assert a == names.pod_veth("c1", "eth0")
    assert a != names.pod_veth("c2", "eth0") and a != names.pod_veth("c1", "eth1")
    assert a.startswith("pn") and len(a) == 13 <= names.IFNAMSIZ


def test_constructors_follow_the_contract():
    assert names.node_netns("dev", names.node_name(2)) == "podnet-dev-node-2"
    assert names.pod_netns("dev", UID) == f"podnet-dev-pod-{UID}"
    assert names.owns_netns("dev", names.external_netns("dev"))
