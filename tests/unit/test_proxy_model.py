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


def objs(rules: model.Ruleset) -> dict[str, Any]:
    """The Ruleset's entries by object: sets as sets of keys, maps as dicts."""
    out: dict[str, Any] = {}
    for obj, entries in rules.by_object().items():
        values = set(entries.values())
        out[obj] = set(entries) if values == {None} else dict(entries)
    return out


def test_elements():
    e = objs(RULES)
    assert e.pop("cluster-ips") == {("10.96.0.50",), ("10.96.0.10",), ("10.96.0.60",),
                                    ("10.96.0.61",), ("10.96.0.62",), ("10.96.0.63",)}
    assert e.pop("no-endpoints") == {("10.96.0.60", "tcp", 80), ("10.96.0.62", "tcp", 80)}
    assert e.pop("svc-n1") == {("10.96.0.10", "udp", 53), ("10.96.0.10", "tcp", 53),
                               ("10.96.0.61", "tcp", 80), ("10.96.0.63", "sctp", 9)}
    assert e.pop("svc-n2") == {("10.96.0.50", "tcp", 80)}
    assert e.pop("eps") == {
        ("10.96.0.50", "tcp", 80, 0): ("10.244.1.7", 8080),
        ("10.96.0.50", "tcp", 80, 1): ("10.244.2.5", 8080),
        ("10.96.0.10", "udp", 53, 0): ("10.244.2.9", 5353),
        ("10.96.0.10", "tcp", 53, 0): ("10.244.2.9", 5353),
        ("10.96.0.61", "tcp", 80, 0): ("10.244.2.11", 8080),
        ("10.96.0.63", "sctp", 9, 0): ("10.244.2.14", 9)}
    assert e.pop("hairpin") == {("10.244.1.7", "10.244.1.7")}  # only endpoints on this node
    assert e == {}
    assert RULES.dispatch_objs() == ("svc-n1", "svc-n2")


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
    assert sorted(delta.remove) == [
        ("eps", ("10.96.0.50", "tcp", 80, 0)), ("eps", ("10.96.0.50", "tcp", 80, 1)),
        ("hairpin", ("10.244.1.7", "10.244.1.7")), ("no-endpoints", ("10.96.0.60", "tcp", 80))]
    assert sorted(delta.add) == [
        ("eps", ("10.96.0.50", "tcp", 80, 0), ("10.244.2.5", 8080)),
        ("eps", ("10.96.0.50", "tcp", 80, 1), ("10.244.2.6", 8080)),
        ("eps", ("10.96.0.60", "tcp", 80, 0), ("10.244.2.20", 8080)),
        ("svc-n1", ("10.96.0.60", "tcp", 80), None)]
    assert (delta.dispatch, delta.dispatch_changed, delta.rewrite) == (
        ("svc-n1", "svc-n2"), False, [])
    assert objs(rules) == objs(model.compile_services(
        SERVICES, [slc("web", ep("10.244.2.5"), ep("10.244.2.6")), slc("empty", ep("10.244.2.20")),
                   *SLICES[1:]], NODE))


def test_delta_when_a_count_comes_and_goes():
    rules = RULES.copy()
    delta = rules.update({("default", "web"): None})
    assert (delta.dispatch, delta.objs_added, delta.objs_removed) == (
        ("svc-n1",), set(), {"svc-n2"})
    assert ("cluster-ips", ("10.96.0.50",)) in delta.remove
    assert ("svc-n2", ("10.96.0.50", "tcp", 80)) in delta.remove
    delta = rules.update({("default", "web"): model.compile_service(
        SERVICES[0], [slc("web", ep("10.244.2.1"), ep("10.244.2.2"), ep("10.244.2.3"))], NODE)})
    assert (delta.dispatch, delta.objs_added, delta.objs_removed) == (
        ("svc-n1", "svc-n3"), {"svc-n3"}, set())
    assert ("cluster-ips", ("10.96.0.50",), None) in delta.add
    assert not rules.update({("default", "web"): rules.services[("default", "web")]})


def test_an_element_shared_by_two_services_stays_until_both_are_gone():
    a = model.compile_service(svc("a", "10.96.0.1"), [slc("a", ep("10.244.1.5", "node-1"))], NODE)
    b = model.compile_service(svc("b", "10.96.0.2"), [slc("b", ep("10.244.1.5", "node-1"))], NODE)
    rules = model.Ruleset.of([(("default", "a"), a), (("default", "b"), b)])
    assert ("hairpin", ("10.244.1.5", "10.244.1.5")) not in rules.update(
        {("default", "a"): None}).remove
    assert ("hairpin", ("10.244.1.5", "10.244.1.5")) in rules.update(
        {("default", "b"): None}).remove


def test_a_map_key_two_services_claim_keeps_the_first_value_then_the_next():
    """Two Services with the same external IP and port (a user's mistake): the first one's
    endpoint is in the map; when it goes, the other's replaces it in the same delta."""
    a = model.compile_service(svc("a", "10.96.0.1", externalIPs=["192.0.2.1"]),
                              [slc("a", ep("10.244.2.1"))], NODE)
    b = model.compile_service(svc("b", "10.96.0.2", externalIPs=["192.0.2.1"]),
                              [slc("b", ep("10.244.2.2"))], NODE)
    rules = model.Ruleset.of([(("default", "a"), a), (("default", "b"), b)])
    assert rules.entries()[("eps", ("192.0.2.1", "tcp", 80, 0))] == ("10.244.2.1", 8080)
    delta = rules.update({("default", "a"): None})
    assert ("eps", ("192.0.2.1", "tcp", 80, 0)) in delta.remove
    assert ("eps", ("192.0.2.1", "tcp", 80, 0), ("10.244.2.2", 8080)) in delta.add


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
    assert sorted(v for o, _, v in sr if o == "eps") == want


# --- external keys: node ports, LoadBalancer IPs, external IPs ---------------------------------

EXT_NODE = model.NodeInfo("node-1", ip="172.18.0.11")
LB_IP = "172.18.0.200"


def node_ports(service: dict[str, Any], *numbers: int) -> dict[str, Any]:
    for port, number in zip(service["spec"]["ports"], numbers, strict=True):
        port["nodePort"] = number
    return service


def balanced(service: dict[str, Any], *ips: str) -> dict[str, Any]:
    service["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}
    return service


EXT_SERVICES = [
    node_ports(svc("np", "10.96.0.70", ("http", 80, "TCP"), ("dns", 53, "UDP"), type="NodePort"),
               30080, 30053),
    balanced(node_ports(svc("lb", "10.96.0.71", type="LoadBalancer",
                            externalIPs=["192.0.2.7"]), 30081), LB_IP),
    node_ports(svc("plain", "10.96.0.72", type="ClusterIP"), 30082),  # not a node port type
    balanced(node_ports(svc("local", "10.96.0.73", type="LoadBalancer",
                            externalTrafficPolicy="Local"), 30083), "172.18.0.201"),
    balanced(node_ports(svc("remote", "10.96.0.74", type="LoadBalancer",
                            externalTrafficPolicy="Local"), 30084), "172.18.0.202"),
    svc("itp", "10.96.0.75", internalTrafficPolicy="Local"),
    svc("itp-none", "10.96.0.76", internalTrafficPolicy="Local"),
    balanced(node_ports(svc("guarded", "10.96.0.77", type="LoadBalancer",
                            loadBalancerSourceRanges=["172.18.0.0/28", "172.18.0.8/29",
                                                      "10.0.0.0/8"]), 30087), "172.18.0.203"),
    svc("sticky", "10.96.0.78", sessionAffinity="ClientIP",
        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}),
]
EXT_SLICES = [
    slc("np", ep("10.244.2.5"), ep("10.244.1.7", node="node-1"), name="http"),
    slc("lb", ep("10.244.2.6")),
    slc("plain", ep("10.244.2.7")),
    slc("local", ep("10.244.1.8", node="node-1"), ep("10.244.2.8")),
    slc("remote", ep("10.244.2.9")),
    slc("itp", ep("10.244.1.10", node="node-1"), ep("10.244.2.10")),
    slc("itp-none", ep("10.244.2.11")),
    slc("guarded", ep("10.244.2.12")),
    slc("sticky", ep("10.244.1.13", node="node-1"), ep("10.244.2.13")),
]
EXT_RULES = model.compile_services(EXT_SERVICES, EXT_SLICES, EXT_NODE)
NP_WEB = (("10.244.1.7", 8080), ("10.244.2.5", 8080))
LOCAL_ALL = (("10.244.1.8", 8080), ("10.244.2.8", 8080))
LOCAL_HERE = (("10.244.1.8", 8080),)
STICKY = (("10.244.1.13", 8080), ("10.244.2.13", 8080))


def test_external_elements():
    e = objs(EXT_RULES)
    assert e["masq-keys"] == {("172.18.0.11", "tcp", 30080), ("172.18.0.11", "tcp", 30081),
                              (LB_IP, "tcp", 80), ("192.0.2.7", "tcp", 80),
                              ("172.18.0.11", "tcp", 30087), ("172.18.0.203", "tcp", 80)}
    assert e["local-keys"] == {("172.18.0.11", "tcp", 30083), ("172.18.0.201",
                                                                "tcp", 80),
                               ("172.18.0.11", "tcp", 30084), ("172.18.0.202", "tcp", 80)}
    assert e["local-n1"] == {("172.18.0.11", "tcp", 30083), ("172.18.0.201", "tcp", 80)}
    assert e["local-eps"] == {("172.18.0.11", "tcp", 30083, 0): ("10.244.1.8", 8080),
                              ("172.18.0.201", "tcp", 80, 0): ("10.244.1.8", 8080)}
    assert e["no-local"] == {("172.18.0.11", "tcp", 30084), ("172.18.0.202", "tcp", 80),
                             ("10.96.0.76", "tcp", 80)}
    assert e["no-endpoints"] == {("10.96.0.70", "udp", 53), ("172.18.0.11", "udp", 30053)}
    assert e["fw-keys"] == {("172.18.0.203", "tcp", 80)}  # not its node port
    assert e["fw-allow"] == {("172.18.0.203", "tcp", 80, "10.0.0.0/8"),
                             ("172.18.0.203", "tcp", 80, "172.18.0.0/28")}  # /29 in /28
    assert ("172.18.0.11", "tcp", 30082) not in {k[:3] for k in e["eps"]}  # ClusterIP type
    chain = model.affinity_chain_name(("10.96.0.78", "tcp", 80), 60)
    assert e["affinity"] == {("10.96.0.78", "tcp", 80): chain}
    aff = e["chain"][(chain,)]
    assert (aff.timeout, aff.proto, [(ip, p) for _, ip, p in aff.endpoints]) == (
        60, "tcp", list(STICKY))
    assert {k for k in e["timed-set"]} == {(s,) for s, _, _ in aff.endpoints}
    assert not any(k[0] == "10.96.0.78" for k in e["eps"])  # affinity keys have their chain


@pytest.mark.parametrize(("src", "dst", "proto", "port", "local", "want"), [
    pytest.param("172.18.0.2", "172.18.0.11", "tcp", 30080, False,
                 model.Verdict("DNAT", NP_WEB, NP_WEB), id="external to node port: masqueraded"),
    pytest.param("10.244.1.3", "172.18.0.11", "tcp", 30080, False,
                 model.Verdict("DNAT", NP_WEB, NP_WEB), id="pod to node port: masqueraded too"),
    pytest.param("172.18.0.2", "172.18.0.11", "udp", 30053, False, model.Verdict("REJECT"),
                 id="node port without endpoints: reject"),
    pytest.param("172.18.0.2", "172.18.0.11", "tcp", 30082, False, model.Verdict("ACCEPT"),
                 id="a ClusterIP Service's stray nodePort: not served"),
    pytest.param("172.18.0.2", "172.18.0.12", "tcp", 30080, False, model.Verdict("ACCEPT"),
                 id="another node's address: not this node's to serve"),
    pytest.param("10.244.1.3", "10.96.0.70", "tcp", 30080, False, model.Verdict("REJECT"),
                 id="the node port on the cluster IP: reject"),
    pytest.param("172.18.0.2", LB_IP, "tcp", 80, False,
                 model.Verdict("DNAT", (("10.244.2.6", 8080),), (("10.244.2.6", 8080),)),
                 id="LoadBalancer IP, policy Cluster: masqueraded"),
    pytest.param("172.18.0.2", "192.0.2.7", "tcp", 80, False,
                 model.Verdict("DNAT", (("10.244.2.6", 8080),), (("10.244.2.6", 8080),)),
                 id="external IP"),
    pytest.param("172.18.0.2", "172.18.0.201", "tcp", 80, False,
                 model.Verdict("DNAT", LOCAL_HERE), id="policy Local: local endpoint, IP kept"),
    pytest.param("172.18.0.2", "172.18.0.11", "tcp", 30083, False,
                 model.Verdict("DNAT", LOCAL_HERE), id="policy Local node port"),
    pytest.param("10.244.2.3", "172.18.0.201", "tcp", 80, False,
                 model.Verdict("DNAT", LOCAL_ALL), id="policy Local from a pod: short-circuit"),
    pytest.param("172.18.0.11", "172.18.0.201", "tcp", 80, True,
                 model.Verdict("DNAT", LOCAL_ALL, LOCAL_ALL),
                 id="policy Local from the node itself: all endpoints, masqueraded"),
    pytest.param("172.18.0.2", "172.18.0.202", "tcp", 80, False, model.Verdict("DROP"),
                 id="policy Local, no endpoint here: drop"),
    pytest.param("10.244.1.3", "172.18.0.202", "tcp", 80, False,
                 model.Verdict("DNAT", (("10.244.2.9", 8080),)),
                 id="policy Local, none here, from a pod: still served"),
    pytest.param("10.244.1.3", "10.96.0.75", "tcp", 80, False,
                 model.Verdict("DNAT", (("10.244.1.10", 8080),)),
                 id="internalTrafficPolicy Local: this node's endpoints"),
    pytest.param("10.244.1.3", "10.96.0.76", "tcp", 80, False, model.Verdict("DROP"),
                 id="internalTrafficPolicy Local, none here: drop"),
    pytest.param("172.18.0.9", "172.18.0.203", "tcp", 80, False,
                 model.Verdict("DNAT", (("10.244.2.12", 8080),), (("10.244.2.12", 8080),)),
                 id="source range allows"),
    pytest.param("172.18.0.2", "172.18.0.203", "tcp", 80, False,
                 model.Verdict("DNAT", (("10.244.2.12", 8080),), (("10.244.2.12", 8080),)),
                 id="source range allows (first range)"),
    pytest.param("172.18.0.20", "172.18.0.203", "tcp", 80, False, model.Verdict("DROP"),
                 id="source range denies"),
    pytest.param("172.18.0.20", "172.18.0.11", "tcp", 30087, False,
                 model.Verdict("DNAT", (("10.244.2.12", 8080),), (("10.244.2.12", 8080),)),
                 id="source ranges do not guard the node port"),
    pytest.param("10.244.1.3", "10.96.0.78", "tcp", 80, False, model.Verdict("DNAT", STICKY),
                 id="affinity: its chain picks among the endpoints"),
])
def test_external_packet_walk(src, dst, proto, port, local, want):
    assert model.trace(EXT_RULES, EXT_NODE, src, dst, proto, port, local_source=local) == want


def test_node_ports_need_the_node_ip():
    rules = model.compile_services(EXT_SERVICES[:1], EXT_SLICES[:1], NODE)
    assert not any(k[0] == "" for obj in objs(rules).values() for k in obj)


def test_affinity_chain_follows_the_endpoints():
    rules = EXT_RULES.copy()
    sticky = EXT_SERVICES[-1]
    delta = rules.update({("default", "sticky"): model.compile_service(
        sticky, [slc("sticky", ep("10.244.2.13"), ep("10.244.2.14"))], EXT_NODE)})
    chain = model.affinity_chain_name(("10.96.0.78", "tcp", 80), 60)
    gone = next(s for s, ip, _ in objs(EXT_RULES)["chain"][(chain,)].endpoints
                if ip == "10.244.1.13")
    assert [k for _, k, _ in delta.rewrite] == [(chain,)]
    assert ("chain", (gone,)) in delta.remove and ("timed-set", (gone,)) in delta.remove
    assert {v.ip for o, _, v in delta.add if o == "chain"} == {"10.244.2.14"}
    assert ("hairpin", ("10.244.1.13", "10.244.1.13")) in delta.remove
    # a new timeout is a new chain
    sticky2 = svc("sticky", "10.96.0.78", sessionAffinity="ClientIP")
    delta = rules.update({("default", "sticky"): model.compile_service(
        sticky2, [slc("sticky", ep("10.244.2.13"))], EXT_NODE)})
    assert ("affinity", ("10.96.0.78", "tcp", 80),
            model.affinity_chain_name(("10.96.0.78", "tcp", 80), 10800)) in delta.add


@pytest.mark.parametrize(("old", "new", "want"), [
    pytest.param([ep("10.244.2.1")], [ep("10.244.2.2")],
                 {("10.96.0.90", 53, "10.244.2.1"), ("172.18.0.11", 30090, "10.244.2.1")},
                 id="endpoint replaced: its flows go"),
    pytest.param([], [ep("10.244.2.2")],
                 {("10.96.0.90", 53, None), ("172.18.0.11", 30090, None)},
                 id="first endpoint: flows to the service go"),
    pytest.param([ep("10.244.2.1")], [ep("10.244.2.1"), ep("10.244.2.2")], set(),
                 id="endpoint added: nothing to clear"),
])
def test_stale_udp(old, new, want):
    s = node_ports(svc("u", "10.96.0.90", ("dns", 53, "UDP"), type="NodePort"), 30090)
    before = model.compile_service(s, [slc("u", *old, port=5353, name="dns", protocol="UDP")],
                                   EXT_NODE)
    after = model.compile_service(s, [slc("u", *new, port=5353, name="dns", protocol="UDP")],
                                  EXT_NODE)
    assert model.stale_udp(before, after) == want


def test_health_check_ports():
    local = dict(EXT_SERVICES[3], spec=dict(EXT_SERVICES[3]["spec"], healthCheckNodePort=32000))
    remote = dict(EXT_SERVICES[4], spec=dict(EXT_SERVICES[4]["spec"], healthCheckNodePort=32001))
    cluster = dict(EXT_SERVICES[1], spec=dict(EXT_SERVICES[1]["spec"], healthCheckNodePort=32002))
    assert model.health_check_ports([local, remote, cluster], EXT_SLICES, EXT_NODE) == {
        32000: ("default", "local", 1), 32001: ("default", "remote", 0)}
