"""NetworkPolicy compiled into the PolicyModel, and `decide` on it.

Address plan (the Kubernetes e2e netpol fixture): namespaces x, y, z (labelled ns=<name>), each
with pods a, b, c (labelled pod=<name>); namespace x is 10.244.1.0/24, y 10.244.2.0/24,
z 10.244.3.0/24, and pods a, b, c are .10, .11, .12 in them. Every pod serves 80 and 81 on TCP
and UDP, with the port names serve-80-tcp, serve-80-udp, serve-81-tcp, serve-81-udp.
192.0.2.1 is off-cluster.

Reachability is written as grids: rows are sources, columns destinations, in the order
x/a x/b x/c y/a ... z/c; "." allowed, "X" denied.
"""

from __future__ import annotations

import ipaddress
import random
import textwrap
from dataclasses import replace
from typing import Any

import pytest

from podnet.policy.model import (
    Compiler,
    Grant,
    IpRange,
    NamedPort,
    Pod,
    PolicyModel,
    PortRange,
    compile_model,
    decide,
    int_to_ip,
    ip_to_int,
    pod_from_api,
)

NAMESPACES = ("x", "y", "z")
NAMES = ("a", "b", "c")
SERVE = tuple(NamedPort(f"serve-{port}-{proto.lower()}", port, proto)
              for port in (80, 81) for proto in ("TCP", "UDP"))
OUTSIDE = ip_to_int("192.0.2.1")


def ip(text: str) -> int:
    return ip_to_int(text)


def one(text: str) -> IpRange:
    return IpRange(ip(text), ip(text))


def span(lo: str, hi: str) -> IpRange:
    return IpRange(ip(lo), ip(hi))


def fixture_pods(**labels: dict[str, str]) -> list[Pod]:
    """The 9 pods; labels={"x_a": {...}} replaces the labels of x/a."""
    return [Pod(ns, name, ip(f"10.244.{i + 1}.{10 + j}"), "node-1",
                labels.get(f"{ns}_{name}", {"pod": name}), SERVE)
            for i, ns in enumerate(NAMESPACES) for j, name in enumerate(NAMES)]


def fixture_namespaces(**labels: dict[str, str]) -> dict[str, dict[str, str]]:
    return {ns: labels.get(ns, {"ns": ns}) for ns in NAMESPACES}


def policy(key: str, **spec: Any) -> dict[str, Any]:
    namespace, name = key.split("/")
    spec.setdefault("podSelector", {})
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"namespace": namespace, "name": name}, "spec": spec}


def compile_fixture(*policies: dict[str, Any]) -> PolicyModel:
    return compile_model(fixture_pods(), fixture_namespaces(), policies)


def grid(model: PolicyModel, protocol: str, port: int) -> str:
    keys = [f"{ns}/{name}" for ns in NAMESPACES for name in NAMES]
    rows = []
    for src in keys:
        marks = ["." if decide(model, src, dst, protocol, port).allowed else "X" for dst in keys]
        rows.append(f"{src} " + " ".join("".join(marks[i:i + 3]) for i in (0, 3, 6)))
    return "\n".join(rows)


def expect(text: str) -> str:
    return textwrap.dedent(text).strip()


ALL = expect("""
    x/a ... ... ...
    x/b ... ... ...
    x/c ... ... ...
    y/a ... ... ...
    y/b ... ... ...
    y/c ... ... ...
    z/a ... ... ...
    z/b ... ... ...
    z/c ... ... ...
""")
INTO_X_DENIED = expect("""
    x/a .XX ... ...
    x/b X.X ... ...
    x/c XX. ... ...
    y/a XXX ... ...
    y/b XXX ... ...
    y/c XXX ... ...
    z/a XXX ... ...
    z/b XXX ... ...
    z/c XXX ... ...
""")
FROM_X_DENIED = expect("""
    x/a .XX XXX XXX
    x/b X.X XXX XXX
    x/c XX. XXX XXX
    y/a ... ... ...
    y/b ... ... ...
    y/c ... ... ...
    z/a ... ... ...
    z/b ... ... ...
    z/c ... ... ...
""")
X_CUT_OFF = expect("""
    x/a .XX XXX XXX
    x/b X.X XXX XXX
    x/c XX. XXX XXX
    y/a XXX ... ...
    y/b XXX ... ...
    y/c XXX ... ...
    z/a XXX ... ...
    z/b XXX ... ...
    z/c XXX ... ...
""")
INTO_X_FROM_X_ONLY = expect("""
    x/a ... ... ...
    x/b ... ... ...
    x/c ... ... ...
    y/a XXX ... ...
    y/b XXX ... ...
    y/c XXX ... ...
    z/a XXX ... ...
    z/b XXX ... ...
    z/c XXX ... ...
""")
INTO_XA_FROM_Y = expect("""
    x/a ... ... ...
    x/b X.. ... ...
    x/c X.. ... ...
    y/a ... ... ...
    y/b ... ... ...
    y/c ... ... ...
    z/a X.. ... ...
    z/b X.. ... ...
    z/c X.. ... ...
""")
INTO_XA_FROM_YB = expect("""
    x/a ... ... ...
    x/b X.. ... ...
    x/c X.. ... ...
    y/a X.. ... ...
    y/b ... ... ...
    y/c X.. ... ...
    z/a X.. ... ...
    z/b X.. ... ...
    z/c X.. ... ...
""")
INTO_XA_FROM_Y_OR_B = expect("""
    x/a ... ... ...
    x/b ... ... ...
    x/c X.. ... ...
    y/a ... ... ...
    y/b ... ... ...
    y/c ... ... ...
    z/a X.. ... ...
    z/b X.. ... ...
    z/c X.. ... ...
""")
INTO_XA_NONE = expect("""
    x/a ... ... ...
    x/b X.. ... ...
    x/c X.. ... ...
    y/a X.. ... ...
    y/b X.. ... ...
    y/c X.. ... ...
    z/a X.. ... ...
    z/b X.. ... ...
    z/c X.. ... ...
""")
FROM_XA_TO_YB_ONLY = expect("""
    x/a .XX X.X XXX
    x/b ... ... ...
    x/c ... ... ...
    y/a ... ... ...
    y/b ... ... ...
    y/c ... ... ...
    z/a ... ... ...
    z/b ... ... ...
    z/c ... ... ...
""")
INTO_X_EXCEPT_FROM_Y = expect("""
    x/a ... ... ...
    x/b ... ... ...
    x/c ... ... ...
    y/a XXX ... ...
    y/b XXX ... ...
    y/c XXX ... ...
    z/a ... ... ...
    z/b ... ... ...
    z/c ... ... ...
""")

DENY_INGRESS_X = policy("x/default-deny")
DENY_EGRESS_X = policy("x/default-deny-egress", policyTypes=["Egress"])
DENY_ALL_X = policy("x/deny-all", policyTypes=["Ingress", "Egress"])
FROM_Y = {"namespaceSelector": {"matchLabels": {"ns": "y"}}}
ONLY_XA = {"matchLabels": {"pod": "a"}}


def into_xa(*rules: dict[str, Any], name: str = "x/into-a") -> dict[str, Any]:
    return policy(name, podSelector=ONLY_XA, ingress=list(rules))


# --- the semantics, as reachability grids -----------------------------------------------------

@pytest.mark.parametrize(("policies", "protocol", "port", "expected"), [
    pytest.param([], "TCP", 80, ALL, id="no-policy-open"),
    pytest.param([DENY_INGRESS_X], "TCP", 80, INTO_X_DENIED, id="default-deny-ingress"),
    pytest.param([DENY_INGRESS_X], "UDP", 81, INTO_X_DENIED, id="default-deny-ingress-udp"),
    pytest.param([DENY_EGRESS_X], "TCP", 80, FROM_X_DENIED, id="default-deny-egress"),
    pytest.param([DENY_ALL_X], "TCP", 80, X_CUT_OFF, id="deny-all"),
    pytest.param([policy("x/p", egress=[{"to": []}])], "TCP", 80, INTO_X_DENIED,
                 id="egress-section-implies-both-types-empty-to-allows-all"),
    pytest.param([policy("x/p", policyTypes=["Ingress"], egress=[{"to": [FROM_Y]}])], "TCP",
                 80, INTO_X_DENIED, id="egress-rules-ignored-without-egress-type"),
    pytest.param([policy("x/p", policyTypes=["Egress"], ingress=[{}])], "TCP", 80,
                 FROM_X_DENIED, id="ingress-rules-ignored-without-ingress-type"),
    pytest.param([policy("x/p", policyTypes=[], egress=[])], "TCP", 80, INTO_X_DENIED,
                 id="empty-policy-types-default-ingress"),
    pytest.param([policy("x/same-ns", ingress=[{"from": [{"podSelector": {}}]}])], "TCP", 80,
                 INTO_X_FROM_X_ONLY, id="allow-same-namespace-only"),
    pytest.param([policy("x/p", ingress=[{}])], "TCP", 80, ALL,
                 id="rule-without-from-or-ports-allows-all"),
    pytest.param([policy("x/p", ingress=[{"from": [], "ports": []}])], "TCP", 80, ALL,
                 id="empty-from-and-ports-allow-all"),
    pytest.param([into_xa({"from": [FROM_Y]})], "TCP", 80, INTO_XA_FROM_Y,
                 id="namespace-selector-match-labels"),
    pytest.param([into_xa({"from": [{"namespaceSelector": {"matchExpressions": [
        {"key": "ns", "operator": "In", "values": ["y", "q"]}]}}]})], "TCP", 80,
                 INTO_XA_FROM_Y, id="namespace-selector-match-expressions-in"),
    pytest.param([into_xa({"from": [{"namespaceSelector": {"matchExpressions": [
        {"key": "ns", "operator": "NotIn", "values": ["x", "z"]}]}}]})], "TCP", 80,
                 INTO_XA_FROM_Y, id="namespace-selector-match-expressions-notin"),
    pytest.param([into_xa({"from": [{"namespaceSelector": {
        "matchLabels": {"kubernetes.io/metadata.name": "y"}}}]})], "TCP", 80,
                 INTO_XA_FROM_Y, id="namespace-by-metadata-name-label"),
    pytest.param([into_xa({"from": [{**FROM_Y, "podSelector": {"matchLabels": {"pod": "b"}}}]})],
                 "TCP", 80, INTO_XA_FROM_YB, id="pod-and-namespace-in-one-peer-and"),
    pytest.param([into_xa({"from": [FROM_Y, {"podSelector": {"matchLabels": {"pod": "b"}}}]})],
                 "TCP", 80, INTO_XA_FROM_Y_OR_B, id="pod-or-namespace-two-peers"),
    pytest.param([into_xa({"from": [{"namespaceSelector": {}}]})], "TCP", 80, ALL,
                 id="empty-namespace-selector-all-pods"),
    pytest.param([into_xa({"from": [{"podSelector": {"matchExpressions": [
        {"key": "pod", "operator": "DoesNotExist"}]}}]})], "TCP", 80, INTO_XA_NONE,
                 id="pod-selector-matching-nothing"),
    pytest.param([into_xa({"ports": [{"port": 81}]})], "TCP", 80, INTO_XA_NONE,
                 id="port-number-other-port-denied"),
    pytest.param([into_xa({"ports": [{"port": 81}]})], "TCP", 81, ALL,
                 id="port-number-allowed"),
    pytest.param([into_xa({"ports": [{"port": 81}]})], "UDP", 81, INTO_XA_NONE,
                 id="port-protocol-defaults-to-tcp"),
    pytest.param([into_xa({"ports": [{"port": 80, "endPort": 81}]})], "TCP", 81, ALL,
                 id="end-port-top-of-range"),
    pytest.param([into_xa({"ports": [{"port": 79, "endPort": 80}]})], "TCP", 81, INTO_XA_NONE,
                 id="end-port-above-range"),
    pytest.param([into_xa({"ports": [{"port": "serve-81-tcp"}]})], "TCP", 81, ALL,
                 id="named-port"),
    pytest.param([into_xa({"ports": [{"port": "serve-81-tcp"}]})], "TCP", 80, INTO_XA_NONE,
                 id="named-port-other-port-denied"),
    pytest.param([into_xa({"ports": [{"port": "serve-81-udp"}]})], "UDP", 81, INTO_XA_NONE,
                 id="named-port-protocol-must-match-tcp-default"),
    pytest.param([into_xa({"ports": [{"port": "serve-81-udp", "protocol": "UDP"}]})], "UDP",
                 81, ALL, id="named-port-udp"),
    pytest.param([into_xa({"ports": [{"port": "serve-99-tcp"}]})], "TCP", 99, INTO_XA_NONE,
                 id="named-port-the-pod-lacks"),
    pytest.param([into_xa({"ports": [{"protocol": "UDP"}]})], "UDP", 4242, ALL,
                 id="protocol-alone-every-port"),
    pytest.param([into_xa({"ports": [{"protocol": "UDP"}]})], "TCP", 80, INTO_XA_NONE,
                 id="protocol-alone-other-protocol-denied"),
    pytest.param([into_xa({"ports": [{"protocol": "SCTP", "port": 80}]})], "SCTP", 80, ALL,
                 id="sctp"),
    pytest.param([into_xa({"ports": [{"protocol": "SCTP", "port": 80}]})], "TCP", 80,
                 INTO_XA_NONE, id="sctp-not-tcp"),
    pytest.param([into_xa({"from": [FROM_Y]}),
                  into_xa({"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]},
                          name="x/from-b")], "TCP", 80, INTO_XA_FROM_Y_OR_B,
                 id="policies-combine-as-union"),
    pytest.param([into_xa({"from": [FROM_Y], "ports": [{"port": 81}]}),
                  into_xa({"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]},
                          name="x/from-b")], "TCP", 80,
                 INTO_XA_NONE.replace("x/b X..", "x/b ..."), id="union-per-port"),
    pytest.param([policy("x/p", ingress=[{"from": [{"ipBlock": {
        "cidr": "10.244.0.0/16", "except": ["10.244.2.0/24"]}}]}])], "TCP", 80,
                 INTO_X_EXCEPT_FROM_Y, id="ip-block-except-on-pod-ips"),
    pytest.param([policy("x/p", podSelector=ONLY_XA, policyTypes=["Egress"], egress=[{"to": [
        {"namespaceSelector": {"matchLabels": {"ns": "y"}},
         "podSelector": {"matchLabels": {"pod": "b"}}}]}])], "TCP", 80, FROM_XA_TO_YB_ONLY,
                 id="egress-to-specific-pods"),
    pytest.param([policy("x/p", podSelector=ONLY_XA, policyTypes=["Egress"], egress=[{"to": [
        {"ipBlock": {"cidr": "10.244.2.11/32"}}]}])], "TCP", 80, FROM_XA_TO_YB_ONLY,
                 id="egress-ip-block-one-pod"),
    pytest.param([policy("x/p", podSelector=ONLY_XA, policyTypes=["Egress"], egress=[{
        "to": [{"namespaceSelector": {}}], "ports": [{"port": "serve-80-tcp"}]}])], "TCP", 80,
                 ALL, id="egress-named-port-resolved-on-destinations"),
    pytest.param([policy("x/p", podSelector=ONLY_XA, policyTypes=["Egress"], egress=[{
        "to": [{"namespaceSelector": {}}], "ports": [{"port": "serve-80-tcp"}]}])], "TCP", 81,
                 FROM_XA_TO_YB_ONLY.replace("x/a .XX X.X XXX", "x/a .XX XXX XXX"),
                 id="egress-named-port-other-port"),
])
def test_reachability(policies: list[dict[str, Any]], protocol: str, port: int,
                      expected: str) -> None:
    assert grid(compile_fixture(*policies), protocol, port) == expected


def test_labels_changing_under_a_policy() -> None:
    pol = into_xa({"from": [{**FROM_Y, "podSelector": {"matchLabels": {"pod": "b"}}}]})
    before = compile_model(fixture_pods(), fixture_namespaces(), [pol])
    moved = compile_model(fixture_pods(y_b={"pod": "c"}, y_c={"pod": "b"}),
                          fixture_namespaces(), [pol])
    relabelled_ns = compile_model(fixture_pods(), fixture_namespaces(y={"ns": "q"}, z={"ns": "y"}),
                                  [pol])
    no_longer_selected = compile_model(fixture_pods(x_a={"pod": "A"}), fixture_namespaces(),
                                       [pol])
    assert decide(before, "y/b", "x/a", "TCP", 80).allowed is True
    assert decide(before, "y/c", "x/a", "TCP", 80).allowed is False
    assert decide(moved, "y/b", "x/a", "TCP", 80).allowed is False
    assert decide(moved, "y/c", "x/a", "TCP", 80).allowed is True
    assert decide(relabelled_ns, "y/b", "x/a", "TCP", 80).allowed is False
    assert decide(relabelled_ns, "z/b", "x/a", "TCP", 80).allowed is True
    assert grid(no_longer_selected, "TCP", 80) == ALL


# --- who is isolated ---------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "ingress", "egress"), [
    pytest.param({}, True, False, id="no-types-no-egress-ingress-only"),
    pytest.param({"egress": [{}]}, True, True, id="no-types-with-egress-both"),
    pytest.param({"egress": []}, True, False, id="no-types-empty-egress-ingress-only"),
    pytest.param({"policyTypes": ["Egress"]}, False, True, id="egress-only"),
    pytest.param({"policyTypes": ["Ingress", "Egress"]}, True, True, id="both"),
    pytest.param({"policyTypes": ["Ingress"], "egress": [{}]}, True, False,
                 id="explicit-ingress-with-egress-rules"),
])
def test_isolation_per_direction(spec: dict[str, Any], ingress: bool, egress: bool) -> None:
    model = compile_fixture(policy("x/p", podSelector=ONLY_XA, **spec))
    assert model.isolated("x/a", "ingress") is ingress
    assert model.isolated("x/a", "egress") is egress
    assert model.isolated("x/b", "ingress") is False
    assert model.isolated("y/a", "ingress") is False


def test_isolated_by_lists_every_policy_sorted() -> None:
    model = compile_fixture(policy("x/zz"), policy("x/aa", podSelector=ONLY_XA),
                            policy("y/aa"), DENY_EGRESS_X)
    assert model.pods["x/a"].ingress_isolated_by == ("x/aa", "x/zz")
    assert model.pods["x/b"].ingress_isolated_by == ("x/zz",)
    assert model.pods["x/a"].egress_isolated_by == ("x/default-deny-egress",)


def test_absent_pod_selector_selects_every_pod() -> None:
    pol = {"metadata": {"namespace": "x", "name": "p"}, "spec": {}}
    model = compile_model(fixture_pods(), fixture_namespaces(), [pol])
    assert [k for k, p in model.pods.items() if p.ingress_isolated_by] == ["x/a", "x/b", "x/c"]


def test_missing_fields_do_not_crash() -> None:
    broken: list[dict[str, Any]] = [{"metadata": {"namespace": "x", "name": "p"},
               "spec": {"podSelector": {}, "ingress": [None, {"from": [None, {}],
                                                              "ports": [None, {"port": True}]}],
                        "egress": "nonsense", "policyTypes": ["Ingress"]}},
              {"metadata": {"namespace": "y", "name": "q"}, "spec": None}]
    model = compile_model(fixture_pods(), fixture_namespaces(), broken)
    assert model.pods["x/a"].ingress_isolated_by == ("x/p",)
    assert model.pods["x/a"].ingress == ()
    assert model.pods["y/a"].ingress_isolated_by == ("y/q",)


# --- grants: peers and ports exactly ------------------------------------------------------------

@pytest.mark.parametrize(("rule", "grants"), [
    pytest.param({}, [Grant("x/p", 0, None, None)], id="all"),
    pytest.param({"from": [FROM_Y]},
                 [Grant("x/p", 0, (span("10.244.2.10", "10.244.2.12"),), None)],
                 id="namespace-pods-adjacent-ips-merged"),
    pytest.param({"from": [{"podSelector": {"matchExpressions": [
        {"key": "pod", "operator": "In", "values": ["a", "c"]}]}}]},
                 [Grant("x/p", 0, (one("10.244.1.10"), one("10.244.1.12")), None)],
                 id="pod-ips-as-single-addresses"),
    pytest.param({"from": [{"ipBlock": {"cidr": "10.244.0.0/16",
                                        "except": ["10.244.2.0/24", "10.244.2.128/25",
                                                   "10.244.4.0/23"]}}]},
                 [Grant("x/p", 0, (span("10.244.0.0", "10.244.1.255"),
                                   span("10.244.3.0", "10.244.3.255"),
                                   span("10.244.6.0", "10.244.255.255")), None)],
                 id="ip-block-minus-overlapping-excepts"),
    pytest.param({"from": [{"ipBlock": {"cidr": "10.244.001.7/24"}}]},
                 [Grant("x/p", 0, (span("10.244.1.0", "10.244.1.255"),), None)],
                 id="ip-block-sloppy-cidr-host-bits"),
    pytest.param({"from": [{"ipBlock": {"cidr": "2001:db8::/64"}}]}, [],
                 id="ip-block-ipv6-matches-nothing"),
    pytest.param({"from": [{"ipBlock": {"cidr": "10.244.2.0/24"}}, FROM_Y,
                           {"ipBlock": {"cidr": "192.0.2.0/24"}}]},
                 [Grant("x/p", 0, (span("10.244.2.0", "10.244.2.255"),
                                   span("192.0.2.0", "192.0.2.255")), None)],
                 id="peers-merged-and-sorted"),
    pytest.param({"from": [{"podSelector": {"matchLabels": {"pod": "nobody"}}}]}, [],
                 id="no-peer-no-grant"),
    pytest.param({"ports": [{"port": 81, "protocol": "TCP"}, {"port": 80, "endPort": 81},
                            {"port": 53, "protocol": "UDP"}, {"protocol": "SCTP"},
                            {"port": 83, "endPort": 90}]},
                 [Grant("x/p", 0, None, (PortRange("SCTP", 0, 65535), PortRange("TCP", 80, 81),
                                         PortRange("TCP", 83, 90), PortRange("UDP", 53, 53)))],
                 id="ports-merged-per-protocol"),
    pytest.param({"ports": [{"port": "serve-81-tcp"}, {"port": 80},
                            {"port": "serve-80-udp", "protocol": "UDP"}]},
                 [Grant("x/p", 0, None, (PortRange("TCP", 80, 81), PortRange("UDP", 80, 80)))],
                 id="ingress-named-ports-resolved-on-the-pod"),
    pytest.param({"ports": [{"port": "nope"}, {"port": "serve-80-tcp", "protocol": "SCTP"}]},
                 [], id="ingress-named-ports-resolving-to-nothing-no-grant"),
])
def test_ingress_grants(rule: dict[str, Any], grants: list[Grant]) -> None:
    model = compile_fixture(policy("x/p", podSelector=ONLY_XA, ingress=[rule]))
    assert list(model.pods["x/a"].ingress) == grants


WEB_PODS = [
    Pod("x", "client", ip("10.244.1.10"), "node-1", {"app": "client"}),
    Pod("y", "a", ip("10.244.2.10"), "node-1", {"app": "web"}, (NamedPort("http", 80, "TCP"),)),
    Pod("y", "b", ip("10.244.2.11"), "node-2", {"app": "web"},
        (NamedPort("http", 8080, "TCP"), NamedPort("metrics", 9090, "TCP"))),
    Pod("y", "c", ip("10.244.2.12"), "node-2", {"app": "web"}, (NamedPort("", 80, "TCP"),)),
    Pod("y", "d", ip("10.244.2.13"), "node-2", {"app": "web"}, (NamedPort("http", 80, "TCP"),)),
    Pod("z", "e", ip("10.244.3.10"), "node-2", {"app": "db"}, (NamedPort("http", 80, "UDP"),)),
]


@pytest.mark.parametrize(("rule", "grants"), [
    pytest.param({"to": [{"namespaceSelector": {}, "podSelector": {}}],
                  "ports": [{"port": "http"}]},
                 [Grant("x/out", 0, (one("10.244.2.10"), one("10.244.2.13")),
                        (PortRange("TCP", 80, 80),)),
                  Grant("x/out", 0, (one("10.244.2.11"),), (PortRange("TCP", 8080, 8080),))],
                 id="named-port-grouped-by-resolved-ports"),
    pytest.param({"ports": [{"port": "http", "protocol": "UDP"}]},
                 [Grant("x/out", 0, (one("10.244.3.10"),), (PortRange("UDP", 80, 80),))],
                 id="named-port-no-peers-means-every-pod"),
    pytest.param({"to": [{"namespaceSelector": {}}],
                  "ports": [{"port": "http"}, {"port": "metrics"}, {"port": 443}]},
                 [Grant("x/out", 0, (span("10.244.1.10", "10.244.1.10"),
                                     span("10.244.2.10", "10.244.2.13"),
                                     span("10.244.3.10", "10.244.3.10")),
                        (PortRange("TCP", 443, 443),)),
                  Grant("x/out", 0, (one("10.244.2.10"), one("10.244.2.13")),
                        (PortRange("TCP", 80, 80),)),
                  Grant("x/out", 0, (one("10.244.2.11"),),
                        (PortRange("TCP", 8080, 8080), PortRange("TCP", 9090, 9090)))],
                 id="numbered-ports-for-all-peers-named-per-pod"),
    pytest.param({"to": [{"ipBlock": {"cidr": "10.244.2.0/24", "except": ["10.244.2.13/32"]}},
                         {"ipBlock": {"cidr": "192.0.2.0/24"}}],
                  "ports": [{"port": "http"}]},
                 [Grant("x/out", 0, (one("10.244.2.10"),), (PortRange("TCP", 80, 80),)),
                  Grant("x/out", 0, (one("10.244.2.11"),), (PortRange("TCP", 8080, 8080),))],
                 id="named-port-ip-block-only-pods-inside-with-the-port"),
    pytest.param({"to": [{"podSelector": {}}], "ports": [{"port": "http"}]}, [],
                 id="named-port-no-destination-has-it"),
])
def test_egress_grants(rule: dict[str, Any], grants: list[Grant]) -> None:
    pol = policy("x/out", policyTypes=["Egress"], egress=[rule])
    model = compile_model(WEB_PODS, {"x": {}, "y": {}, "z": {}}, [pol])
    assert list(model.pods["x/client"].egress) == grants


def test_egress_named_port_decisions() -> None:
    pol = policy("x/out", policyTypes=["Egress"], egress=[{"ports": [{"port": "http"}]}])
    model = compile_model(WEB_PODS, {}, [pol])
    allowed = {(dst, port) for dst in ("y/a", "y/b", "y/c", "y/d", "z/e")
               for port in (80, 8080, 9090)
               if decide(model, "x/client", dst, "TCP", port).allowed}
    assert allowed == {("y/a", 80), ("y/b", 8080), ("y/d", 80)}
    assert decide(model, "x/client", OUTSIDE, "TCP", 80).allowed is False


# --- who takes part -----------------------------------------------------------------------------

def api_pod(**changes: Any) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "metadata": {"namespace": "x", "name": "a", "labels": {"pod": "a"}},
        "spec": {"nodeName": "node-1", "containers": [
            {"name": "web", "ports": [{"name": "http", "containerPort": 80},
                                      {"containerPort": 53, "protocol": "UDP"}]},
            {"name": "side", "ports": [{"name": "sctp", "containerPort": 9,
                                        "protocol": "SCTP"}]},
            {"name": "none"}],
                 "initContainers": [{"name": "init", "ports": [{"containerPort": 99}]}]},
        "status": {"phase": "Running", "podIP": "10.244.1.10",
                   "podIPs": [{"ip": "10.244.1.10"}]}}
    for path, value in changes.items():
        section, _, key = path.partition("__")
        pod[section][key] = value
    return pod


PORTS = (NamedPort("http", 80, "TCP"), NamedPort("", 53, "UDP"), NamedPort("sctp", 9, "SCTP"))


@pytest.mark.parametrize(("obj", "expected"), [
    pytest.param(api_pod(), Pod("x", "a", ip("10.244.1.10"), "node-1", {"pod": "a"}, PORTS),
                 id="running"),
    pytest.param(api_pod(spec__hostNetwork=True), None, id="host-network"),
    pytest.param(api_pod(status__phase="Succeeded"), None, id="succeeded"),
    pytest.param(api_pod(status__phase="Failed"), None, id="failed"),
    pytest.param(api_pod(status__phase="Pending", status__podIP=None, status__podIPs=None),
                 Pod("x", "a", None, "node-1", {"pod": "a"}, PORTS), id="pending-no-ip"),
    pytest.param(api_pod(status__podIP="fd00::5", status__podIPs=[{"ip": "fd00::5"}]),
                 Pod("x", "a", None, "node-1", {"pod": "a"}, PORTS), id="ipv6-only"),
    pytest.param(api_pod(status__podIP="fd00::5",
                         status__podIPs=[{"ip": "fd00::5"}, {"ip": "10.244.1.11"}]),
                 Pod("x", "a", ip("10.244.1.11"), "node-1", {"pod": "a"}, PORTS),
                 id="ipv4-second-in-pod-ips"),
    pytest.param({"metadata": {"name": "bare"}},
                 Pod("default", "bare", None, "", {}, ()), id="bare"),
])
def test_pod_from_api(obj: dict[str, Any], expected: Pod | None) -> None:
    assert pod_from_api(obj) == expected


def test_pods_without_ip_or_on_host_network_are_left_out() -> None:
    pods = [*fixture_pods(), Pod("x", "pending", None, "node-1", {"pod": "a"}),
            Pod("x", "host", ip("10.0.0.1"), "node-1", {"pod": "a"}, host_network=True)]
    model = compile_model(pods, fixture_namespaces(), [policy("y/p", ingress=[{"from": [
        {"namespaceSelector": {"matchLabels": {"ns": "x"}}}]}])])
    assert "x/pending" not in model.pods
    assert "x/host" not in model.pods
    assert ip("10.0.0.1") not in model.by_ip
    assert model.pods["y/a"].ingress == (
        Grant("y/p", 0, (span("10.244.1.10", "10.244.1.12"),), None),)
    assert decide(model, ip("10.0.0.1"), "y/a", "TCP", 80).allowed is False


def test_by_ip() -> None:
    model = compile_fixture()
    assert model.by_ip[ip("10.244.2.11")] == "y/b"
    assert len(model.by_ip) == 9


# --- decide: the reasons -------------------------------------------------------------------------

ALLOW_DNS = policy("x/allow-dns", policyTypes=["Egress"],
                   egress=[{"ports": [{"port": 53, "protocol": "UDP"},
                                      {"port": 53, "protocol": "TCP"}]}])
ALLOW_X = policy("y/allow-x", podSelector={"matchLabels": {"pod": "a"}}, ingress=[
    {"from": [{"podSelector": {}}]},
    {"from": [{"namespaceSelector": {"matchLabels": {"ns": "x"}}}], "ports": [{"port": 80}]}])
OTHER = policy("y/other", podSelector={"matchLabels": {"pod": "a"}}, ingress=[
    {"ports": [{"port": 80}]}])
DENY_Y = policy("y/default-deny")


@pytest.mark.parametrize(("policies", "src", "dst", "protocol", "port", "allowed", "egress",
                          "ingress"), [
    pytest.param([], "x/a", "y/b", "TCP", 80, True,
                 "egress allowed: x/a is not isolated for egress",
                 "ingress allowed: y/b is not isolated for ingress", id="open"),
    pytest.param([DENY_EGRESS_X, ALLOW_DNS], "x/a", OUTSIDE, "UDP", 53, True,
                 "egress allowed by x/allow-dns rule 1",
                 "ingress allowed: not a pod: 192.0.2.1", id="dns-reopened"),
    pytest.param([DENY_EGRESS_X], "x/a", OUTSIDE, "UDP", 53, False,
                 "egress denied: x/default-deny-egress selects x/a and no rule matches",
                 "ingress allowed: not a pod: 192.0.2.1", id="dns-blocked"),
    pytest.param([DENY_EGRESS_X, ALLOW_DNS], "x/a", "y/b", "TCP", 80, False,
                 "egress denied: x/allow-dns, x/default-deny-egress select x/a and no rule "
                 "matches", "ingress allowed: y/b is not isolated for ingress",
                 id="several-policies-select"),
    pytest.param([DENY_Y, ALLOW_X, OTHER], "x/a", "y/a", "TCP", 80, True,
                 "egress allowed: x/a is not isolated for egress",
                 "ingress allowed by y/allow-x rule 2, y/other rule 1", id="several-rules"),
    pytest.param([DENY_Y, ALLOW_X, OTHER], "y/b", "y/a", "UDP", 80, True,
                 "egress allowed: y/b is not isolated for egress",
                 "ingress allowed by y/allow-x rule 1", id="one-rule"),
    pytest.param([DENY_Y, ALLOW_X], "x/a", "y/b", "TCP", 80, False,
                 "egress allowed: x/a is not isolated for egress",
                 "ingress denied: y/default-deny selects y/b and no rule matches",
                 id="ingress-denied"),
    pytest.param([DENY_ALL_X], OUTSIDE, "x/b", "TCP", 80, False,
                 "egress allowed: not a pod: 192.0.2.1",
                 "ingress denied: x/deny-all selects x/b and no rule matches",
                 id="from-outside"),
    pytest.param([DENY_ALL_X], "x/a", "x/a", "TCP", 80, True,
                 "egress allowed: a pod can always reach itself",
                 "ingress allowed: a pod can always reach itself", id="self"),
    pytest.param([DENY_ALL_X], ip("10.244.1.11"), "x/a", "TCP", 80, False,
                 "egress denied: x/deny-all selects x/b and no rule matches",
                 "ingress denied: x/deny-all selects x/a and no rule matches",
                 id="pod-ip-is-the-pod"),
])
def test_decide_reasons(policies: list[dict[str, Any]], src: str | int, dst: str | int,
                        protocol: str, port: int, allowed: bool, egress: str,
                        ingress: str) -> None:
    verdict = decide(compile_fixture(*policies), src, dst, protocol, port)
    assert (verdict.allowed, verdict.egress.reason, verdict.ingress.reason) == (
        allowed, egress, ingress)
    assert verdict.allowed == (verdict.egress.allowed and verdict.ingress.allowed)


def test_decide_side_data() -> None:
    verdict = decide(compile_fixture(DENY_Y, ALLOW_X, OTHER), "x/a", "y/a", "TCP", 80)
    assert verdict.ingress.direction == "ingress"
    assert verdict.ingress.isolated_by == ("y/allow-x", "y/default-deny", "y/other")
    assert verdict.ingress.allowed_by == (("y/allow-x", 1), ("y/other", 0))
    assert verdict.egress.isolated_by == ()
    assert verdict.egress.allowed_by == ()


def test_decide_unknown_pod_key() -> None:
    with pytest.raises(KeyError):
        decide(compile_fixture(), "x/nobody", "x/a", "TCP", 80)


def test_decide_protocol_outside_policy_protocols() -> None:
    model = compile_fixture(into_xa({"ports": [{"protocol": "UDP"}]}),
                            into_xa({"from": [FROM_Y]}, name="x/from-y"))
    assert decide(model, "y/b", "x/a", "ICMP", 0).allowed is True
    assert decide(model, "z/b", "x/a", "ICMP", 0).allowed is False


@pytest.mark.parametrize(("text", "value"), [
    pytest.param("0.0.0.0", 0, id="zero"),
    pytest.param("10.244.1.5", 0x0AF40105, id="pod"),
    pytest.param("255.255.255.255", 0xFFFFFFFF, id="broadcast"),
])
def test_ip_conversions(text: str, value: int) -> None:
    assert ip_to_int(text) == value
    assert int_to_ip(value) == text


@pytest.mark.parametrize("text", ["10.244.1", "fd00::1", "10.244.1.256", ""])
def test_ip_to_int_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        ip_to_int(text)


# --- property: decide agrees with a brute-force reading of the raw objects -----------------------

TARGETS = (("TCP", 80), ("TCP", 81), ("TCP", 8080), ("UDP", 53), ("UDP", 80), ("SCTP", 80))
LABEL_VALUES = ("a", "b")


def _brute_selects(sel: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if sel is None:
        return False
    if any(labels.get(k) != v for k, v in sel.get("matchLabels", {}).items()):
        return False
    for e in sel.get("matchExpressions", []):
        has, value = e["key"] in labels, labels.get(e["key"])
        ok = {"In": has and value in e.get("values", []),
              "NotIn": not has or value not in e.get("values", []),
              "Exists": has, "DoesNotExist": not has}[e["operator"]]
        if not ok:
            return False
    return True


class Brute:
    """NetworkPolicy read straight from the raw objects, pair by pair (no compiling)."""

    def __init__(self, pods: list[Pod], namespaces: dict[str, dict[str, str]],
                 policies: list[dict[str, Any]]) -> None:
        self.pods = {p.key: p for p in pods}
        self.ns_labels = {n: {**labels, "kubernetes.io/metadata.name": n}
                          for n, labels in namespaces.items()}
        self.policies = policies

    def types(self, spec: dict[str, Any]) -> list[str]:
        return spec.get("policyTypes") or (["Ingress", "Egress"] if spec.get("egress")
                                           else ["Ingress"])

    def peer_matches(self, peer: dict[str, Any], namespace: str, remote: Pod | None,
                     remote_ip: int) -> bool:
        if "ipBlock" in peer:
            addr = ipaddress.IPv4Address(remote_ip)
            block = peer["ipBlock"]
            return addr in ipaddress.IPv4Network(block["cidr"]) and not any(
                addr in ipaddress.IPv4Network(e) for e in block.get("except", []))
        if remote is None:
            return False
        ns_sel = peer.get("namespaceSelector")
        if ns_sel is None:
            in_ns = remote.namespace == namespace
        else:
            in_ns = _brute_selects(ns_sel, self.ns_labels[remote.namespace])
        return in_ns and _brute_selects(peer.get("podSelector", {}), dict(remote.labels))

    def port_matches(self, ports: list[dict[str, Any]], server: Pod | None, protocol: str,
                     port: int) -> bool:
        if not ports:
            return True
        for entry in ports:
            if entry.get("protocol", "TCP") != protocol:
                continue
            number = entry.get("port")
            if number is None:
                return True
            if isinstance(number, int) and number <= port <= entry.get("endPort", number):
                return True
            if isinstance(number, str) and server is not None and any(
                    p.name == number and p.protocol == protocol and p.number == port
                    for p in server.ports):
                return True
        return False

    def side(self, direction: str, own: Pod | None, remote: Pod | None, remote_ip: int,
             server: Pod | None, protocol: str, port: int) -> bool:
        if own is None:
            return True
        kind, peers_key = ("Ingress", "from") if direction == "ingress" else ("Egress", "to")
        selecting = [p for p in self.policies
                     if p["metadata"]["namespace"] == own.namespace
                     and kind in self.types(p["spec"])
                     and _brute_selects(p["spec"]["podSelector"], dict(own.labels))]
        if not selecting:
            return True
        return any((not rule.get(peers_key) or any(
                        self.peer_matches(peer, p["metadata"]["namespace"], remote, remote_ip)
                        for peer in rule[peers_key]))
                   and self.port_matches(rule.get("ports", []), server, protocol, port)
                   for p in selecting for rule in p["spec"].get(direction, []))

    def allowed(self, src: str | int, dst: str | int, protocol: str, port: int) -> bool:
        s = self.pods.get(src) if isinstance(src, str) else None
        d = self.pods.get(dst) if isinstance(dst, str) else None
        if s is not None and s is d:
            return True
        s_ip = s.ip if s is not None else src
        d_ip = d.ip if d is not None else dst
        assert isinstance(s_ip, int) and isinstance(d_ip, int)
        return (self.side("egress", s, d, d_ip, d, protocol, port)
                and self.side("ingress", d, s, s_ip, d, protocol, port))


def _random_selector(rng: random.Random, keys: tuple[str, ...]) -> dict[str, Any]:
    sel: dict[str, Any] = {}
    if rng.random() < 0.5:
        sel["matchLabels"] = {rng.choice(keys): rng.choice(LABEL_VALUES)}
    if rng.random() < 0.3:
        op = rng.choice(["In", "NotIn", "Exists", "DoesNotExist"])
        expr: dict[str, Any] = {"key": rng.choice(keys), "operator": op}
        if op in ("In", "NotIn"):
            expr["values"] = rng.sample(LABEL_VALUES, rng.randint(1, 2))
        sel["matchExpressions"] = [expr]
    return sel


BLOCKS: tuple[tuple[str, list[str]], ...] = (
    ("10.244.0.0/16", ["10.244.2.0/24"]), ("10.244.1.0/24", []),
    ("10.244.1.8/29", ["10.244.1.10/31"]), ("0.0.0.0/0", ["10.244.0.0/16"]),
    ("192.0.2.0/24", []))


def _random_peer(rng: random.Random) -> dict[str, Any]:
    kind = rng.randrange(4)
    if kind == 0:
        return {"podSelector": _random_selector(rng, ("app", "tier"))}
    if kind == 1:
        return {"namespaceSelector": _random_selector(rng, ("team",))}
    if kind == 2:
        return {"podSelector": _random_selector(rng, ("app", "tier")),
                "namespaceSelector": _random_selector(rng, ("team",))}
    cidr, excepts = rng.choice(BLOCKS)
    return {"ipBlock": {"cidr": cidr, "except": excepts} if excepts else {"cidr": cidr}}


def _random_port(rng: random.Random) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if rng.random() < 0.6:
        entry["protocol"] = rng.choice(["TCP", "UDP", "SCTP"])
    kind = rng.randrange(4)
    if kind == 0:
        entry["port"] = rng.choice([53, 80, 81, 8080])
    elif kind == 1:
        entry["port"] = rng.choice([53, 79, 80])
        entry["endPort"] = entry["port"] + rng.choice([0, 1, 8000])
    elif kind == 2:
        entry["port"] = rng.choice(["http", "dns", "alt"])
    return entry


def _random_rule(rng: random.Random, peers_key: str) -> dict[str, Any]:
    rule: dict[str, Any] = {}
    if rng.random() < 0.7:
        rule[peers_key] = [_random_peer(rng) for _ in range(rng.randint(0, 2))]
    if rng.random() < 0.7:
        rule["ports"] = [_random_port(rng) for _ in range(rng.randint(0, 2))]
    return rule


def _random_policy(rng: random.Random, i: int, namespaces: list[str]) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": _random_selector(rng, ("app", "tier"))}
    types = rng.choice([None, ["Ingress"], ["Egress"], ["Ingress", "Egress"]])
    if types is not None:
        spec["policyTypes"] = types
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        if rng.random() < 0.7:
            spec[direction] = [_random_rule(rng, peers_key) for _ in range(rng.randint(0, 2))]
    return {"metadata": {"namespace": rng.choice(namespaces), "name": f"p{i}"}, "spec": spec}


def _random_cluster(seed: int) -> tuple[list[Pod], dict[str, dict[str, str]],
                                        list[dict[str, Any]]]:
    rng = random.Random(seed)
    namespaces = {f"n{i}": {"team": rng.choice(LABEL_VALUES)} for i in range(rng.randint(1, 3))}
    names = sorted(namespaces)
    pods = []
    for i in range(rng.randint(2, 7)):
        ports = [NamedPort(name, number, proto) for name, number, proto in (
            ("http", 80, "TCP"), ("http", 8080, "TCP"), ("dns", 53, "UDP"), ("alt", 81, "TCP"),
            ("alt", 80, "SCTP"), ("", 81, "TCP")) if rng.random() < 0.3]
        labels = {k: rng.choice(LABEL_VALUES) for k in ("app", "tier") if rng.random() < 0.7}
        pods.append(Pod(rng.choice(names), f"p{i}", ip(f"10.244.{rng.randint(1, 2)}.{8 + i}"),
                        "node-1", labels, tuple(ports)))
    policies = [_random_policy(rng, i, names) for i in range(rng.randint(0, 4))]
    return pods, namespaces, policies


@pytest.mark.parametrize("seed", range(300))
def test_decide_agrees_with_brute_force(seed: int) -> None:
    pods, namespaces, policies = _random_cluster(seed)
    model = compile_model(pods, namespaces, policies)
    brute = Brute(pods, namespaces, policies)
    ends: list[str | int] = [p.key for p in pods]
    ends += [OUTSIDE, ip("10.244.2.200")]
    mismatches = [(src, dst, protocol, port)
                  for src in ends for dst in ends for protocol, port in TARGETS
                  if not (isinstance(src, int) and isinstance(dst, int))
                  and decide(model, src, dst, protocol, port).allowed
                  != brute.allowed(src, dst, protocol, port)]
    assert mismatches == [], f"policies={policies} pods={pods}"


def test_model_is_a_pure_function_of_its_inputs() -> None:
    pods, namespaces, policies = _random_cluster(7)
    first = compile_model(pods, namespaces, policies)
    again = compile_model(list(reversed(pods)), dict(namespaces), list(reversed(policies)))
    assert first == again
    assert compile_model([replace(p) for p in pods], namespaces, policies) == first


@pytest.mark.parametrize("seed", range(150))
def test_the_compiler_with_memory_gives_compile_models_result(seed: int) -> None:
    """Compiler reuses what unchanged policies contributed while pods and namespaces stay the
    same; after any sequence of changes its model is exactly a fresh compile's."""
    rng = random.Random(seed)
    pods, namespaces, policies = _random_cluster(seed)
    names = sorted(namespaces)
    compiler = Compiler()
    for step in range(12):
        what = rng.randrange(4)
        if what == 0 and policies:  # one policy changes (a new resourceVersion)
            i = rng.randrange(len(policies))
            policies[i] = {**_random_policy(rng, i, names),
                           "metadata": {**policies[i]["metadata"], "uid": f"u{i}",
                                        "resourceVersion": str(step)}}
        elif what == 1:  # a policy comes or goes
            if policies and rng.random() < 0.5:
                policies.pop(rng.randrange(len(policies)))
            else:
                policies.append(_random_policy(rng, 100 + step, names))
        elif what == 2 and pods:  # a pod's labels change
            i = rng.randrange(len(pods))
            pods[i] = replace(pods[i], labels={"app": rng.choice(LABEL_VALUES)})
        got = compiler.compile(pods, namespaces, policies)
        assert got == compile_model(pods, namespaces, policies), (seed, step)
    # Nothing changed: everything comes from memory, the very same model.
    again = compiler.compile(pods, namespaces, policies)
    assert compiler.reused == len(policies) and again is got
