"""The proxy's compiler: Services + EndpointSlices -> Ruleset, and packets walked through it.

Address plan: service CIDR 10.96.0.0/12, pod network 10.244.0.0/16; this node is node-1 with
pods in 10.244.1.0/24, node-2's pods are in 10.244.2.0/24; 172.18.0.2 is off-cluster.
"""

from __future__ import annotations

from typing import Any

import pytest

from podnet.proxy import model

NODE = model.NodeInfo("node-1")


def svc(name: str, ip: str, *ports: tuple[str, int, str], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "default", "name": name},
            "spec": {"clusterIP": ip, "clusterIPs": [ip] if ip != "None" else ["None"],
                     "ports": [{"name": n, "port": p, "protocol": proto}
                               for n, p, proto in ports or [("", 80, "TCP")]], **spec}}


def ep(ip: str, node: str = "node-2", **conditions: bool) -> dict[str, Any]:
    return {"addresses": [ip], "nodeName": node, "conditions": conditions or {"ready": True}}


def slc(service: str, *endpoints: dict[str, Any], port: int = 8080, name: str = "",
        protocol: str = "TCP") -> dict[str, Any]:
    return {"metadata": {"namespace": "default", "name": f"{service}-abc",
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "ports": [{"name": name, "port": port, "protocol": protocol}],
            "endpoints": list(endpoints)}


SERVICES = [
    svc("web", "10.96.0.50"),
    svc("dns", "10.96.0.10", ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")),
    svc("empty", "10.96.0.60"),
    svc("draining", "10.96.0.61"),
    svc("gone", "10.96.0.62"),
    svc("sctp", "10.96.0.63", ("", 9, "SCTP")),
    svc("headless", "None"),
    svc("ext", "", type="ExternalName", externalName="example.com"),
]
SLICES = [
    slc("web", ep("10.244.2.5"), ep("10.244.1.7", node="node-1"), ep("10.244.2.6", ready=False)),
    slc("dns", ep("10.244.2.9"), port=5353, name="dns", protocol="UDP"),
    slc("dns", ep("10.244.2.9"), port=5353, name="dns-tcp"),
    slc("draining", ep("10.244.2.11", ready=False, serving=True, terminating=True),
        ep("10.244.2.12", ready=False, serving=False, terminating=True)),
    slc("gone", ep("10.244.2.13", ready=False, serving=False, terminating=True)),
    slc("sctp", ep("10.244.2.14"), port=9, protocol="SCTP"),
    slc("headless", ep("10.244.2.15")),
]
RULES = model.compile_services(SERVICES, SLICES, NODE)
WEB = (("10.244.1.7", 8080), ("10.244.2.5", 8080))


def test_elements():
    e = RULES.elements()
    assert e.cluster_ips == {"10.96.0.50", "10.96.0.10", "10.96.0.60", "10.96.0.61",
                             "10.96.0.62", "10.96.0.63"}
    assert e.no_endpoints == {("10.96.0.60", "tcp", 80), ("10.96.0.62", "tcp", 80)}
    assert e.dispatch == {1: {("10.96.0.10", "udp", 53), ("10.96.0.10", "tcp", 53),
                              ("10.96.0.61", "tcp", 80), ("10.96.0.63", "sctp", 9)},
                          2: {("10.96.0.50", "tcp", 80)}}
    assert e.endpoints == {
        ("10.96.0.50", "tcp", 80, 0): ("10.244.1.7", 8080),
        ("10.96.0.50", "tcp", 80, 1): ("10.244.2.5", 8080),
        ("10.96.0.10", "udp", 53, 0): ("10.244.2.9", 5353),
        ("10.96.0.10", "tcp", 53, 0): ("10.244.2.9", 5353),
        ("10.96.0.61", "tcp", 80, 0): ("10.244.2.11", 8080),
        ("10.96.0.63", "sctp", 9, 0): ("10.244.2.14", 9)}
    assert e.hairpin == {"10.244.1.7"}  # only endpoints on this node
    assert RULES.counts() == (1, 2)


@pytest.mark.parametrize(("src", "dst", "proto", "port", "want"), [
    pytest.param("10.244.1.3", "10.96.0.50", "tcp", 80, model.Verdict("DNAT", WEB),
                 id="pod to cluster IP: ready endpoints only, source kept"),
    pytest.param("172.18.0.2", "10.96.0.50", "tcp", 80, model.Verdict("DNAT", WEB, WEB),
                 id="off-cluster to cluster IP: masqueraded"),
    pytest.param("10.244.1.7", "10.96.0.50", "tcp", 80,
                 model.Verdict("DNAT", WEB, (("10.244.1.7", 8080),)),
                 id="hairpin: masqueraded when the pod picks itself"),
    pytest.param("10.244.1.3", "10.96.0.10", "udp", 53,
                 model.Verdict("DNAT", (("10.244.2.9", 5353),)), id="udp"),
    pytest.param("10.244.1.3", "10.96.0.63", "sctp", 9,
                 model.Verdict("DNAT", (("10.244.2.14", 9),)), id="sctp"),
    pytest.param("10.244.1.3", "10.96.0.61", "tcp", 80,
                 model.Verdict("DNAT", (("10.244.2.11", 8080),)),
                 id="no ready endpoint: serving and terminating ones"),
    pytest.param("10.244.1.3", "10.96.0.62", "tcp", 80, model.Verdict("REJECT"),
                 id="terminating but not serving: reject"),
    pytest.param("10.244.1.3", "10.96.0.60", "tcp", 80, model.Verdict("REJECT"),
                 id="no endpoints: reject"),
    pytest.param("10.244.1.3", "10.96.0.50", "tcp", 81, model.Verdict("REJECT"),
                 id="a port the Service lacks: reject"),
    pytest.param("10.244.1.3", "10.96.0.10", "tcp", 5353, model.Verdict("REJECT"),
                 id="the target port on the cluster IP: reject"),
    pytest.param("10.244.1.3", "10.96.0.99", "tcp", 80, model.Verdict("DROP"),
                 id="unallocated service IP: drop"),
    pytest.param("10.244.1.3", "10.96.0.0", "tcp", 80, model.Verdict("DROP"),
                 id="headless Service: its name has no cluster IP, the CIDR drops"),
    pytest.param("10.244.1.3", "10.244.2.5", "tcp", 8080, model.Verdict("ACCEPT"),
                 id="pod to pod: not the proxy's"),
])
def test_packet_walk(src, dst, proto, port, want):
    assert model.trace(RULES, NODE, src, dst, proto, port) == want


def test_delta_touches_only_the_changed_service():
    rules = RULES.copy()
    # web loses 10.244.1.7 (the hairpin IP goes too); empty gets one endpoint.
    delta = rules.update({
        ("default", "web"): model.compile_service(
            SERVICES[0], [slc("web", ep("10.244.2.5"), ep("10.244.2.6"))], NODE),
        ("default", "empty"): model.compile_service(
            SERVICES[2], [slc("empty", ep("10.244.2.20"))], NODE)})
    assert delta.remove.endpoints == {("10.96.0.50", "tcp", 80, 0): ("10.244.1.7", 8080),
                                      ("10.96.0.50", "tcp", 80, 1): ("10.244.2.5", 8080)}
    assert delta.add.endpoints == {("10.96.0.50", "tcp", 80, 0): ("10.244.2.5", 8080),
                                   ("10.96.0.50", "tcp", 80, 1): ("10.244.2.6", 8080),
                                   ("10.96.0.60", "tcp", 80, 0): ("10.244.2.20", 8080)}
    assert delta.remove.no_endpoints == {("10.96.0.60", "tcp", 80)}
    assert delta.add.dispatch == {1: {("10.96.0.60", "tcp", 80)}}
    assert delta.remove.dispatch == {}
    assert delta.remove.hairpin == {"10.244.1.7"}
    assert delta.add.cluster_ips == delta.remove.cluster_ips == set()
    assert (delta.counts, delta.counts_added, delta.counts_removed) == ((1, 2), (), ())
    assert rules.elements() == model.compile_services(
        SERVICES, [slc("web", ep("10.244.2.5"), ep("10.244.2.6")), slc("empty", ep("10.244.2.20")),
                   *SLICES[1:]], NODE).elements()


def test_delta_when_a_count_comes_and_goes():
    rules = RULES.copy()
    delta = rules.update({("default", "web"): None})
    assert (delta.counts, delta.counts_added, delta.counts_removed) == ((1,), (), (2,))
    assert delta.remove.cluster_ips == {"10.96.0.50"}
    assert delta.remove.dispatch == {2: {("10.96.0.50", "tcp", 80)}}
    delta = rules.update({("default", "web"): model.compile_service(
        SERVICES[0], [slc("web", ep("10.244.2.1"), ep("10.244.2.2"), ep("10.244.2.3"))], NODE)})
    assert (delta.counts, delta.counts_added, delta.counts_removed) == ((1, 3), (3,), ())
    assert delta.add.cluster_ips == {"10.96.0.50"}
    assert not rules.update({("default", "web"): rules.services[("default", "web")]})


def test_a_hairpin_ip_shared_by_two_services_stays_until_both_are_gone():
    a = model.compile_service(svc("a", "10.96.0.1"), [slc("a", ep("10.244.1.5", "node-1"))], NODE)
    b = model.compile_service(svc("b", "10.96.0.2"), [slc("b", ep("10.244.1.5", "node-1"))], NODE)
    rules = model.Ruleset.of([(("default", "a"), a), (("default", "b"), b)])
    assert not rules.update({("default", "a"): None}).remove.hairpin
    assert rules.update({("default", "b"): None}).remove.hairpin == {"10.244.1.5"}


@pytest.mark.parametrize(("endpoints", "want"), [
    pytest.param([ep("10.244.2.1"), ep("10.244.2.1")], [("10.244.2.1", 8080)], id="deduplicated"),
    pytest.param([{"addresses": ["10.244.2.1"]}], [("10.244.2.1", 8080)],
                 id="no conditions: ready"),
    pytest.param([{"addresses": ["fd00::1"], "conditions": {}}], [], id="IPv6 ignored"),
    pytest.param([ep("10.244.2.1", ready=False, serving=True)], [],
                 id="serving but not terminating: not used"),
])
def test_endpoints_used(endpoints, want):
    sr = model.compile_service(SERVICES[0], [slc("web", *endpoints)], NODE)
    assert [v for _, v in sr.endpoints] == want


# --- node ports (externalTrafficPolicy Cluster) -------------------------------------------------

NP_NODE = model.NodeInfo("node-1", addresses=("172.18.0.11",))
NP = model.NODE_PORT


def node_ports(service: dict[str, Any], *numbers: int) -> dict[str, Any]:
    for port, number in zip(service["spec"]["ports"], numbers, strict=True):
        port["nodePort"] = number
    return service


NP_SERVICES = [
    node_ports(svc("np", "10.96.0.70", ("http", 80, "TCP"), ("dns", 53, "UDP"), type="NodePort"),
               30080, 30053),
    node_ports(svc("lb", "10.96.0.71", type="LoadBalancer"), 30081),
    node_ports(svc("plain", "10.96.0.72", type="ClusterIP"), 30082),  # not a node port type
]
NP_SLICES = [
    slc("np", ep("10.244.2.5"), ep("10.244.1.7", node="node-1"), name="http"),
    slc("lb", ep("10.244.2.6")),
    slc("plain", ep("10.244.2.7")),
]
NP_RULES = model.compile_services(NP_SERVICES, NP_SLICES, NP_NODE)
NP_WEB = (("10.244.1.7", 8080), ("10.244.2.5", 8080))


def test_node_port_elements():
    e = NP_RULES.elements()
    assert e.dispatch == {1: {("10.96.0.71", "tcp", 80), (NP, "tcp", 30081),
                              ("10.96.0.72", "tcp", 80)},
                          2: {("10.96.0.70", "tcp", 80), (NP, "tcp", 30080)}}
    assert e.no_endpoints == {("10.96.0.70", "udp", 53), (NP, "udp", 30053)}
    assert {k: v for k, v in e.endpoints.items() if k[0] == NP} == {
        (NP, "tcp", 30080, 0): ("10.244.1.7", 8080),
        (NP, "tcp", 30080, 1): ("10.244.2.5", 8080),
        (NP, "tcp", 30081, 0): ("10.244.2.6", 8080)}
    assert e.cluster_ips == {"10.96.0.70", "10.96.0.71", "10.96.0.72"}  # never 0.0.0.0


@pytest.mark.parametrize(("src", "dst", "proto", "port", "want"), [
    pytest.param("172.18.0.2", "172.18.0.11", "tcp", 30080,
                 model.Verdict("DNAT", NP_WEB, NP_WEB), id="external to node port: masqueraded"),
    pytest.param("10.244.1.3", "172.18.0.11", "tcp", 30080,
                 model.Verdict("DNAT", NP_WEB, NP_WEB), id="pod to node port: masqueraded too"),
    pytest.param("172.18.0.2", "172.18.0.11", "tcp", 30081,
                 model.Verdict("DNAT", (("10.244.2.6", 8080),), (("10.244.2.6", 8080),)),
                 id="a LoadBalancer Service's node port"),
    pytest.param("172.18.0.2", "172.18.0.11", "udp", 30053, model.Verdict("REJECT"),
                 id="node port without endpoints: reject"),
    pytest.param("172.18.0.2", "172.18.0.11", "tcp", 30082, model.Verdict("ACCEPT"),
                 id="a ClusterIP Service's stray nodePort: not served"),
    pytest.param("172.18.0.2", "172.18.0.11", "tcp", 30053, model.Verdict("ACCEPT"),
                 id="node port number on the other protocol: not served"),
    pytest.param("172.18.0.2", "172.18.0.12", "tcp", 30080, model.Verdict("ACCEPT"),
                 id="another node's address: not this node's to serve"),
    pytest.param("10.244.1.3", "10.96.0.70", "tcp", 30080, model.Verdict("REJECT"),
                 id="the node port on the cluster IP: reject"),
    pytest.param("10.244.1.3", "10.96.0.70", "tcp", 80, model.Verdict("DNAT", NP_WEB),
                 id="the NodePort Service's cluster IP still works"),
])
def test_node_port_packet_walk(src, dst, proto, port, want):
    assert model.trace(NP_RULES, NP_NODE, src, dst, proto, port) == want


def test_node_port_elements_go_with_the_service_or_its_type():
    rules = NP_RULES.copy()
    as_cluster_ip = node_ports(svc("np", "10.96.0.70", ("http", 80, "TCP"), ("dns", 53, "UDP"),
                                   type="ClusterIP"), 30080, 30053)
    delta = rules.update({("default", "np"): model.compile_service(
        as_cluster_ip, [NP_SLICES[0]], NP_NODE)})
    assert delta.add == model.Elements()
    assert delta.remove.dispatch == {2: {(NP, "tcp", 30080)}}
    assert delta.remove.no_endpoints == {(NP, "udp", 30053)}
    assert set(delta.remove.endpoints) == {(NP, "tcp", 30080, 0), (NP, "tcp", 30080, 1)}
    delta = rules.update({("default", "lb"): None})
    assert delta.remove.dispatch == {1: {("10.96.0.71", "tcp", 80), (NP, "tcp", 30081)}}
    assert set(delta.remove.endpoints) == {("10.96.0.71", "tcp", 80, 0), (NP, "tcp", 30081, 0)}
