"""NetworkPolicy semantics, probed with real packets and compared with the analyzer.

Fixture (policykit.py): namespaces x, y, z with labels ns=<name>; pods a, b, c in each, with
labels pod=<name>, one per node of a 3-node lab; each serves 80 and 81 on TCP and UDP
(containerPorts serve-80-tcp, serve-80-udp, serve-81-tcp, serve-81-udp). The cluster DNS runs
in kube-system (10.96.0.10, its pods labelled k8s-app=kube-dns).

Every case writes its expectation by hand (an `ingress`/`egress` pair of functions or a truth
table), then `net.check(...)` waits for enforcement of the last write, probes the 9 x 9 matrix
on 80/TCP, 80/UDP, 81/TCP, 81/UDP, computes the analyzer's matrix from the live objects and
asserts probe == analyzer == expected. The lab is made once for the module; each test starts
from no policies and the fixture's labels, and restores them afterwards, even when it failed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from errno import EHOSTUNREACH
from pathlib import Path

import pytest
from labkit import wait_for
from policykit import (
    Net,
    Peer,
    expect,
    from_table,
    policy,
    policy_lab,
    summary,
)

from podnet.api.resources import Resource, lookup
from podnet.cluster import lifecycle

pytestmark = pytest.mark.integration


CONNECT_ERRNO = ("import socket, sys; s = socket.socket(); s.settimeout(3); "
                 "print(s.connect_ex((sys.argv[1], 80)))")


def resource(kind: str) -> Resource:
    res = lookup(kind)
    assert res is not None
    return res


@pytest.fixture(scope="module")
def fixture_net() -> Iterator[Net]:
    root = Path(tempfile.mkdtemp(prefix="podnet-test-", dir="/tmp"))
    try:
        with policy_lab(root) as lab:
            net = Net(lab)
            net.create()
            yield net
            print(f"\npolicy semantics timings: {summary(net.timings)}; probes: {net.outcomes}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def net(fixture_net: Net) -> Iterator[Net]:
    """The fixture with no policies and its own labels, before and after the test."""
    if fixture_net.reset():
        fixture_net.wait_enforced()
    try:
        yield fixture_net
    finally:
        if fixture_net.reset():
            fixture_net.wait_enforced()


def test_no_policies_everything_is_allowed(net: Net) -> None:
    probed = net.probe()
    assert len(probed.matrix) == 9 * 9 * 4
    assert probed.raw == {c: True for c in probed.raw}, probed.anomalies()


# -- isolation ---------------------------------------------------------------------------------

DENY_INGRESS_X = """
        x/a x/b x/c y/a y/b y/c z/a z/b z/c
    x/a  +   -   -   +   +   +   +   +   +
    x/b  -   +   -   +   +   +   +   +   +
    x/c  -   -   +   +   +   +   +   +   +
    y/a  -   -   -   +   +   +   +   +   +
    y/b  -   -   -   +   +   +   +   +   +
    y/c  -   -   -   +   +   +   +   +   +
    z/a  -   -   -   +   +   +   +   +   +
    z/b  -   -   -   +   +   +   +   +   +
    z/c  -   -   -   +   +   +   +   +   +
"""


def test_default_deny_ingress(net: Net) -> None:
    net.apply(policy("x", "default-deny-ingress", policyTypes=["Ingress"]))
    net.check(from_table(DENY_INGRESS_X), "x isolated for ingress, no rule")


def test_default_deny_egress(net: Net) -> None:
    net.apply(policy("x", "default-deny-egress", policyTypes=["Egress"]))
    net.check(expect(egress=lambda s, d, port, proto: s.ns != "x"),
              "x isolated for egress, no rule")


def test_deny_all_in_both_directions(net: Net) -> None:
    net.apply(policy("x", "deny-all", policyTypes=["Ingress", "Egress"]))
    net.check(expect(ingress=lambda s, d, port, proto: d.ns != "x",
                     egress=lambda s, d, port, proto: s.ns != "x"), "x denies all")


def test_policy_types_default_to_ingress_plus_egress_when_there_is_an_egress_section(
        net: Net) -> None:
    # No policyTypes: Ingress, and Egress because `egress` is there. x/a may only reach y.
    net.apply(policy("x", "egress-to-y", podSelector={"matchLabels": {"pod": "a"}},
                     egress=[{"to": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]))
    net.check(expect(ingress=lambda s, d, port, proto: d.key != "x/a",
                     egress=lambda s, d, port, proto: s.key != "x/a" or d.ns == "y"))


def test_an_empty_rule_allows_everything_to_an_isolated_pod(net: Net) -> None:
    net.apply(policy("x", "deny-all", policyTypes=["Ingress", "Egress"]),
              policy("x", "open-b", podSelector={"matchLabels": {"pod": "b"}},
                     ingress=[{}], egress=[{}]))
    net.check(expect(ingress=lambda s, d, port, proto: d.ns != "x" or d.pod == "b",
                     egress=lambda s, d, port, proto: s.ns != "x" or s.pod == "b"))


def test_denials_are_rejected_at_once(net: Net) -> None:
    """A denied probe is refused by ICMP admin-prohibited, not left to time out: every cell of
    a deny-all matrix, 288 rejections in one round, most of them to the same few sources."""
    net.apply(*(policy(ns, "deny-all", policyTypes=["Ingress", "Egress"])
                for ns in ("x", "y", "z")))
    probed = net.check(expect(ingress=lambda s, d, port, proto: False))
    outcomes = {c: v for c, v in probed.raw.items() if c[0] != c[1]}
    assert len(outcomes) == 8 * 9 * 4
    timed_out = sorted(c for c, v in outcomes.items() if v is not False)
    assert not timed_out, (f"{len(timed_out)} of {len(outcomes)} denied probes were not "
                           f"rejected at once, e.g. {timed_out[:5]}")


# -- peers ------------------------------------------------------------------------------------


def test_allow_from_the_same_namespace_only(net: Net) -> None:
    net.apply(policy("x", "same-namespace", ingress=[{"from": [{"podSelector": {}}]}]))
    net.check(expect(ingress=lambda s, d, port, proto: d.ns != "x" or s.ns == "x"))


def test_namespace_selector_match_labels(net: Net) -> None:
    net.apply(policy("x", "a-from-y", podSelector={"matchLabels": {"pod": "a"}},
                     ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]))
    net.check(expect(ingress=lambda s, d, port, proto: d.key != "x/a" or s.ns == "y"))


def test_namespace_selector_match_expressions(net: Net) -> None:
    not_y = {"matchExpressions": [{"key": "ns", "operator": "NotIn", "values": ["y"]}]}
    named = {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In",
                                   "values": ["y", "z"]},
                                  {"key": "ns", "operator": "Exists"}]}
    net.apply(policy("x", "a-not-from-y", podSelector={"matchLabels": {"pod": "a"}},
                     ingress=[{"from": [{"namespaceSelector": not_y}]}]),
              policy("x", "b-from-y-z", podSelector={"matchLabels": {"pod": "b"}},
                     ingress=[{"from": [{"namespaceSelector": named}]}]))

    def ingress(s: Peer, d: Peer, port: int, proto: str) -> bool:
        if d.key == "x/a":
            return s.ns != "y"
        if d.key == "x/b":
            return s.ns in ("y", "z")
        return True

    net.check(expect(ingress=ingress))


def test_pod_and_namespace_in_one_peer_is_and(net: Net) -> None:
    net.apply(policy("x", "a-from-y-b", podSelector={"matchLabels": {"pod": "a"}},
                     ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}},
                                         "podSelector": {"matchLabels": {"pod": "b"}}}]}]))
    net.check(expect(ingress=lambda s, d, port, proto: d.key != "x/a" or s.key == "y/b"))


def test_pod_and_namespace_in_two_peers_is_or(net: Net) -> None:
    # podSelector alone: pods of the policy's own namespace (x/b); namespaceSelector: all of y.
    net.apply(policy("x", "a-from-y-or-b", podSelector={"matchLabels": {"pod": "a"}},
                     ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}},
                                        {"podSelector": {"matchLabels": {"pod": "b"}}}]}]))
    net.check(expect(ingress=lambda s, d, port, proto:
                     d.key != "x/a" or s.ns == "y" or s.key == "x/b"))


def test_egress_to_specific_pods(net: Net) -> None:
    net.apply(policy("x", "a-to-b-and-y-c", podSelector={"matchLabels": {"pod": "a"}},
                     policyTypes=["Egress"],
                     egress=[{"to": [{"podSelector": {"matchLabels": {"pod": "b"}}}]},
                             {"to": [{"namespaceSelector": {"matchLabels": {"ns": "y"}},
                                      "podSelector": {"matchLabels": {"pod": "c"}}}]}]))
    net.check(expect(egress=lambda s, d, port, proto:
                     s.key != "x/a" or d.key in ("x/b", "y/c")))


def test_ip_block_with_except_aimed_at_pod_ips(net: Net) -> None:
    """Pod IPs match ipBlocks: the whole cluster CIDR but x/b's address, into x/a; and from
    y/a out to every pod but those of node-2's pod CIDR."""
    xb = net.pods["x/b"].ip
    node2 = net.pod_cidr("node-2")
    net.apply(policy("x", "a-from-cluster-but-b", podSelector={"matchLabels": {"pod": "a"}},
                     ingress=[{"from": [{"ipBlock": {"cidr": "10.244.0.0/16",
                                                     "except": [f"{xb}/32"]}}]}]),
              policy("y", "a-out-but-node-2", podSelector={"matchLabels": {"pod": "a"}},
                     policyTypes=["Egress"],
                     egress=[{"to": [{"ipBlock": {"cidr": "10.244.0.0/16",
                                                  "except": [node2]}}]}]))
    on_node2 = {k for k, p in net.pods.items() if p.node == "node-2"}
    assert len(on_node2) == 3
    net.check(expect(ingress=lambda s, d, port, proto: d.key != "x/a" or s.key != "x/b",
                     egress=lambda s, d, port, proto: s.key != "y/a" or d.key not in on_node2))


def test_ip_blocks_see_pod_ips_after_service_dnat(net: Net) -> None:
    """A connection to a ClusterIP is checked against the endpoint's address: x/a may only
    reach the pod CIDRs but x/b's address, so through Services it reaches x/c and not x/b,
    although neither Service IP is in the ipBlock at all."""
    services = resource("Service")
    made = []
    try:
        ips = {}
        for name, target in (("to-b", "b"), ("to-c", "c")):
            svc = net.client.create(services, "x", {
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                "spec": {"selector": {"pod": target},
                         "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}]}})
            made.append(name)
            ips[name] = svc["spec"]["clusterIP"]

        def curl(key: str, ip: str) -> subprocess.CompletedProcess[str]:
            return net.in_pod(key, "curl", "-sS", "--max-time", "3", f"http://{ip}/")

        # Both Services answer an unrestricted client (their endpoints are programmed).
        for name, ip in ips.items():
            wait_for(f"Service {name} answering", lambda ip=ip: curl("y/a", ip).returncode == 0,
                     timeout=40)
        xb = net.pods["x/b"].ip
        net.apply(policy("x", "a-out-to-pods-but-b", podSelector={"matchLabels": {"pod": "a"}},
                         policyTypes=["Egress"],
                         egress=[{"to": [{"ipBlock": {"cidr": "10.244.0.0/16",
                                                      "except": [f"{xb}/32"]}}]}]))
        net.wait_enforced()
        to_c, to_b = curl("x/a", ips["to-c"]), curl("x/a", ips["to-b"])
        assert to_c.returncode == 0 and '"pod": "c"' in to_c.stdout, to_c
        assert to_b.returncode == 7, to_b
        # ... refused by policy (ICMP admin-prohibited: EHOSTUNREACH), not by the proxy
        # (a Service without endpoints is refused with ECONNREFUSED)
        errno = net.in_pod("x/a", sys.executable, "-c", CONNECT_ERRNO, ips["to-b"])
        assert errno.stdout.strip() == str(EHOSTUNREACH), errno
    finally:
        for name in made:
            net.client.delete(services, "x", name)


# -- ports ------------------------------------------------------------------------------------


def test_ports_by_number_default_to_tcp(net: Net) -> None:
    net.apply(policy("x", "a-on-80", podSelector={"matchLabels": {"pod": "a"}},
                     ingress=[{"ports": [{"port": 80}]}]))
    net.check(expect(ingress=lambda s, d, port, proto:
                     d.key != "x/a" or (port, proto) == (80, "TCP")))


def test_named_ports_resolved_on_the_destination(net: Net) -> None:
    # Ingress: serve-81-udp on UDP, serve-80-tcp (TCP by default); serve-80-udp asked on TCP
    # names no port of that protocol and matches nothing.
    net.apply(policy("x", "a-named", podSelector={"matchLabels": {"pod": "a"}},
                     ingress=[{"ports": [{"port": "serve-81-udp", "protocol": "UDP"},
                                         {"port": "serve-80-tcp"},
                                         {"port": "serve-80-udp", "protocol": "TCP"}]}]),
              # Egress: y/b may reach serve-81-tcp on every pod (port 81 on each destination).
              policy("y", "b-out-named", podSelector={"matchLabels": {"pod": "b"}},
                     policyTypes=["Egress"],
                     egress=[{"ports": [{"port": "serve-81-tcp", "protocol": "TCP"}]}]))
    net.check(expect(
        ingress=lambda s, d, port, proto:
            d.key != "x/a" or (port, proto) in ((81, "UDP"), (80, "TCP")),
        egress=lambda s, d, port, proto: s.key != "y/b" or (port, proto) == (81, "TCP")))


def test_end_port_ranges(net: Net) -> None:
    net.apply(policy("x", "a-ranges", podSelector={"matchLabels": {"pod": "a"}},
                     ingress=[{"ports": [{"port": 80, "endPort": 81, "protocol": "UDP"},
                                         {"port": 81, "endPort": 90}]}]))
    net.check(expect(ingress=lambda s, d, port, proto:
                     d.key != "x/a" or proto == "UDP" or port == 81))


def test_a_protocol_alone_allows_all_its_ports(net: Net) -> None:
    net.apply(policy("x", "a-udp", podSelector={"matchLabels": {"pod": "a"}},
                     ingress=[{"ports": [{"protocol": "UDP"}]}]))
    net.check(expect(ingress=lambda s, d, port, proto: d.key != "x/a" or proto == "UDP"))


# -- several policies -------------------------------------------------------------------------


def test_several_policies_combine_as_a_union(net: Net) -> None:
    net.apply(policy("x", "a-from-y-80", podSelector={"matchLabels": {"pod": "a"}},
                     ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}],
                               "ports": [{"port": 80}]}]),
              policy("x", "a-from-z", podSelector={"matchLabels": {"pod": "a"}},
                     ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"ns": "z"}}}]}]),
              policy("x", "all-from-x-b", ingress=[{"from": [{"podSelector": {
                  "matchLabels": {"pod": "b"}}}]}]),
              policy("z", "c-out-udp", podSelector={"matchLabels": {"pod": "c"}},
                     policyTypes=["Egress"], egress=[{"ports": [{"protocol": "UDP"}]}]),
              policy("z", "c-out-x-81", podSelector={"matchLabels": {"pod": "c"}},
                     policyTypes=["Egress"],
                     egress=[{"to": [{"namespaceSelector": {"matchLabels": {"ns": "x"}}}],
                              "ports": [{"port": 81}]}]))

    def ingress(s: Peer, d: Peer, port: int, proto: str) -> bool:
        if d.ns != "x":
            return True
        if s.key == "x/b":
            return True
        return d.pod == "a" and (s.ns == "z" or (s.ns == "y" and (port, proto) == (80, "TCP")))

    def egress(s: Peer, d: Peer, port: int, proto: str) -> bool:
        return s.key != "z/c" or proto == "UDP" or (d.ns == "x" and port == 81)

    net.check(expect(ingress=ingress, egress=egress))


# -- changes ----------------------------------------------------------------------------------


def test_pod_labels_changing_under_a_policy(net: Net) -> None:
    # x pods labelled pod=a are isolated; they accept only pods of x with role=client.
    net.apply(policy("x", "a-from-clients", podSelector={"matchLabels": {"pod": "a"}},
                     ingress=[{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]))
    net.check(expect(ingress=lambda s, d, port, proto: d.key != "x/a"), "no client yet")

    net.set_pod_labels("x/c", {"pod": "c", "role": "client"})  # a peer starts matching
    net.check(expect(ingress=lambda s, d, port, proto: d.key != "x/a" or s.key == "x/c"),
              "x/c became a client")

    net.set_pod_labels("x/a", {"pod": "a2"})  # no longer selected: open again
    net.set_pod_labels("x/b", {"pod": "a"})  # now selected: isolated
    net.check(expect(ingress=lambda s, d, port, proto: d.key != "x/b" or s.key == "x/c"),
              "x/b took x/a's label")

    net.set_pod_labels("x/c", {"pod": "c"})  # the client label goes away
    net.check(expect(ingress=lambda s, d, port, proto: d.key != "x/b"), "x/c no client")


def test_namespace_labels_changing_under_a_policy(net: Net) -> None:
    net.apply(policy("x", "a-from-blue", podSelector={"matchLabels": {"pod": "a"}},
                     ingress=[{"from": [{"namespaceSelector": {"matchLabels": {
                         "team": "blue"}}}]}]))
    net.check(expect(ingress=lambda s, d, port, proto: d.key != "x/a"), "no blue namespace")

    net.set_ns_labels("y", {"ns": "y", "team": "blue"})
    net.check(expect(ingress=lambda s, d, port, proto: d.key != "x/a" or s.ns == "y"),
              "y turned blue")

    net.set_ns_labels("y", {"ns": "y"})
    net.set_ns_labels("z", {"ns": "z", "team": "blue"})
    net.set_ns_labels("x", {"ns": "x", "team": "blue"})
    net.check(expect(ingress=lambda s, d, port, proto: d.key != "x/a" or s.ns in ("x", "z")),
              "z and x blue, y not")


def test_deleting_the_policies_restores_everything(net: Net) -> None:
    net.apply(*(policy(ns, "deny-all", policyTypes=["Ingress", "Egress"])
                for ns in ("x", "y", "z")),
              policy("y", "b-from-x", podSelector={"matchLabels": {"pod": "b"}},
                     ingress=[{"from": [{"namespaceSelector": {}}]}]))
    everything_denied = net.check(expect(ingress=lambda s, d, port, proto: d.key == "y/b",
                                         egress=lambda s, d, port, proto: False))
    assert sum(everything_denied.matrix.values()) == 9 * 4  # each pod reaches only itself

    # y's deny-all goes: y/a and y/c are open again, y/b accepts every pod (b-from-x).
    net.delete_policy("y", "deny-all")
    net.check(expect(ingress=lambda s, d, port, proto: d.ns == "y",
                     egress=lambda s, d, port, proto: s.ns == "y"), "y's deny-all gone")

    for ns, name in (("x", "deny-all"), ("z", "deny-all"), ("y", "b-from-x")):
        net.delete_policy(ns, name)
    restored = net.check(expect(), "all policies deleted")
    assert all(restored.raw.values()) and set(restored.raw.values()) == {True}


# -- DNS --------------------------------------------------------------------------------------


DNS_NAME = "kube-dns.kube-system.svc.cluster.local"
DNS_IP = "10.96.0.10"


def dig(net: Net, key: str, transport: str) -> subprocess.CompletedProcess[str]:
    return net.in_pod(key, "dig", transport, "+short", "+time=2", "+tries=1", DNS_NAME)


def test_egress_deny_blocks_dns_and_a_rule_to_kube_system_reopens_it(net: Net) -> None:
    for transport in ("+notcp", "+tcp"):
        r = dig(net, "x/a", transport)
        assert (r.returncode, r.stdout.split()) == (0, [DNS_IP]), r

    net.apply(policy("x", "deny-egress", policyTypes=["Egress"]))
    net.check(expect(egress=lambda s, d, port, proto: s.ns != "x"), "x denies egress")
    for transport in ("+notcp", "+tcp"):
        r = dig(net, "x/a", transport)  # exit 9: no reply from any server
        assert (r.returncode, DNS_IP in r.stdout.split()) == (9, False), r
    assert dns_verdicts(net, "x/a") == {("UDP", 53): False, ("TCP", 53): False}

    net.apply(policy("x", "allow-dns", policyTypes=["Egress"], egress=[{
        "to": [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": "kube-system"}}}],
        "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]))
    net.check(expect(egress=lambda s, d, port, proto: s.ns != "x"), "DNS only")
    for transport in ("+notcp", "+tcp"):
        r = dig(net, "x/a", transport)
        assert (r.returncode, r.stdout.split()) == (0, [DNS_IP]), r
    assert dns_verdicts(net, "x/a") == {("UDP", 53): True, ("TCP", 53): True}


def dns_verdicts(net: Net, key: str) -> dict[tuple[str, int], bool]:
    """The analyzer's verdict from `key` to every DNS pod on 53/UDP and 53/TCP (one per
    target: the DNS pods must agree)."""
    from podnet.policy import analyze, model

    pods, namespaces, policies = net.live_objects()
    compiled = model.compile_model(
        [p for p in (model.pod_from_api(o) for o in pods) if p is not None],
        {n["metadata"]["name"]: n["metadata"].get("labels") or {} for n in namespaces},
        policies)
    dns = sorted(f"kube-system/{name}" for name in lifecycle.dns_pods(net.client))
    assert dns and set(dns) <= set(compiled.pods), dns
    m = analyze.matrix(compiled, [key, *dns], [("UDP", 53), ("TCP", 53)])
    out: dict[tuple[str, int], set[bool]] = {}
    for (src, dst, proto, port), allowed in m.cells.items():
        if src == key and dst in dns:
            out.setdefault((proto, port), set()).add(allowed)
    assert all(len(v) == 1 for v in out.values()), out
    return {k: v.pop() for k, v in out.items()}
