"""Which node announces each LoadBalancer IP (podnet.proxy.announce).

Nodes node-1..node-3; LoadBalancer IPs on the lab's LAN pool (172.18.0.200-249). Rendezvous
ranking of the IPs used below, highest sha256("<node>/<ip>") first:

    172.18.0.200   node-2 > node-3 > node-1
    172.18.0.201   node-1 > node-2 > node-3
    172.18.0.202   node-2 > node-1 > node-3
    172.18.0.204   node-1 > node-3 > node-2
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import pytest

from podnet.proxy.announce import announcers, rendezvous

A, B, C, D = "172.18.0.200", "172.18.0.201", "172.18.0.202", "172.18.0.204"


def node(name: str, ready: str | None = "True", labels: dict[str, str] | None = None,
         deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels or {}}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    conditions = [{"type": "MemoryPressure", "status": "False"}]
    if ready is not None:
        conditions.append({"type": "Ready", "status": ready})
    return {"metadata": meta, "status": {"conditions": conditions}}


def lb(name: str, *ips: str, local: bool = False, namespace: str = "default",
       type_: str = "LoadBalancer", ingress: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": type_}
    if local:
        spec["externalTrafficPolicy"] = "Local"
    entries = ingress if ingress is not None else [{"ip": ip} for ip in ips]
    return {"metadata": {"namespace": namespace, "name": name}, "spec": spec,
            "status": {"loadBalancer": {"ingress": entries}}}


def eps(service: str, *endpoints: tuple[str | None, bool | None], namespace: str = "default",
        address_type: str = "IPv4") -> dict[str, Any]:
    """A slice of `service`; each endpoint is (nodeName, conditions.ready), None = absent."""
    items = []
    for i, (node_name, ready) in enumerate(endpoints):
        ep: dict[str, Any] = {"addresses": [f"10.244.0.{i + 2}"]}
        if node_name is not None:
            ep["nodeName"] = node_name
        if ready is not None:
            ep["conditions"] = {"ready": ready}
        items.append(ep)
    return {"metadata": {"namespace": namespace, "name": f"{service}-abc",
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": address_type, "endpoints": items}


THREE = [node("node-1"), node("node-2"), node("node-3")]


@pytest.mark.parametrize(("services", "slices", "nodes", "want"), [
    pytest.param([lb("web", A, B)], [], THREE, {A: "node-2", B: "node-1"},
                 id="three ready nodes: the highest score wins"),
    pytest.param([lb("web", A), lb("db", C), lb("x", D)], [], THREE,
                 {A: "node-2", C: "node-2", D: "node-1"}, id="several services"),
    pytest.param([lb("web", A, B)], [],
                 [node("node-1"), node("node-2", ready="False"), node("node-3")],
                 {A: "node-3", B: "node-1"}, id="a node not ready: only its IPs move"),
    pytest.param([lb("web", A, B)], [],
                 [node("node-1"), node("node-2", ready="Unknown"), node("node-3")],
                 {A: "node-3", B: "node-1"}, id="ready unknown is not ready"),
    pytest.param([lb("web", A, B)], [],
                 [node("node-1"), node("node-2", ready=None), node("node-3")],
                 {A: "node-3", B: "node-1"}, id="no Ready condition is not ready"),
    pytest.param([lb("web", A, B)], [],
                 [node("node-1"),
                  node("node-2", labels={
                      "node.kubernetes.io/exclude-from-external-load-balancers": ""}),
                  node("node-3")],
                 {A: "node-3", B: "node-1"}, id="excluded by label (any value)"),
    pytest.param([lb("web", A, B)], [],
                 [node("node-1"), node("node-2", deleting=True), node("node-3")],
                 {A: "node-3", B: "node-1"}, id="a node being deleted"),
    pytest.param([lb("web", A)], [], [], {}, id="no nodes: nobody announces"),
    pytest.param([lb("web", A)], [], [node("node-1", ready="False")], {},
                 id="no ready node: nobody announces"),
    pytest.param([], [], THREE, {}, id="no services"),
    pytest.param([lb("web", A, type_="NodePort"), lb("db", B, type_="ClusterIP")], [], THREE,
                 {}, id="only type LoadBalancer counts"),
    pytest.param([lb("web", ingress=[{"hostname": "lb.example.com"}, {"ip": "fd00::1"},
                                     {"ip": "300.1.1.1"}, {"ip": 7}, {}, {"ip": A}])], [],
                 THREE, {A: "node-2"}, id="hostnames, IPv6 and junk ingress are skipped"),
    pytest.param([{"metadata": {"name": "bare"}, "spec": {"type": "LoadBalancer"}}], [], THREE,
                 {}, id="no status yet"),
    pytest.param([lb("web", "172.18.0.10", "172.18.0.9", "172.18.0.100")], [], THREE,
                 {"172.18.0.9": "node-2", "172.18.0.10": "node-2", "172.18.0.100": "node-3"},
                 id="sorted by address, not text"),

    # externalTrafficPolicy Local
    pytest.param([lb("web", A, B, local=True)],
                 [eps("web", ("node-1", True), ("node-3", True))], THREE,
                 {A: "node-3", B: "node-1"}, id="local: only nodes with a ready endpoint"),
    pytest.param([lb("web", A, B, local=True)],
                 [eps("web", ("node-1", False), ("node-3", True))], THREE,
                 {A: "node-3", B: "node-3"}, id="local: ready false does not count"),
    pytest.param([lb("web", A, B, local=True)],
                 [eps("web", ("node-1", None), ("node-3", True))], THREE,
                 {A: "node-3", B: "node-1"}, id="local: no conditions counts as ready"),
    pytest.param([lb("web", A, local=True)], [eps("web", (None, True))], THREE, {},
                 id="local: an endpoint without nodeName counts for nobody"),
    pytest.param([lb("web", A, local=True)], [], THREE, {},
                 id="local: no endpoints, nobody announces"),
    pytest.param([lb("web", A, local=True)],
                 [eps("web", ("node-2", True))],
                 [node("node-1"), node("node-2", ready="False"), node("node-3")], {},
                 id="local: the only endpoint's node is not a candidate"),
    pytest.param([lb("web", A, local=True)],
                 [eps("web", ("node-1", True), namespace="other"),
                  eps("db", ("node-1", True)),
                  eps("web", ("node-1", True), address_type="IPv6")], THREE, {},
                 id="local: other namespace, other service and IPv6 slices don't count"),
    pytest.param([lb("web", A, local=True)],
                 [{"metadata": {"namespace": "default", "name": "web-x"},
                   "addressType": "IPv4", "endpoints": [{"nodeName": "node-1"}]}], THREE, {},
                 id="local: a slice without the service-name label counts for nobody"),
    pytest.param([lb("web", A, local=True)],
                 [eps("web", ("node-3", True)), eps("web", ("node-1", True))], THREE,
                 {A: "node-3"}, id="local: endpoints from several slices"),
    pytest.param([lb("web", A, local=True, namespace="prod")],
                 [eps("web", ("node-1", True), namespace="prod")], THREE,
                 {A: "node-1"}, id="local: in the Service's namespace"),

    # one IP used by several Services
    pytest.param([lb("web", A), lb("dns", A, local=True)], [eps("dns", ("node-3", True))],
                 THREE, {A: "node-3"}, id="shared IP: a node that qualifies for both"),
    pytest.param([lb("web", A, local=True), lb("dns", A, local=True)],
                 [eps("web", ("node-1", True)), eps("dns", ("node-3", True))], THREE, {},
                 id="shared IP: no node qualifies for both"),
])
def test_announcers(services: list[dict[str, Any]], slices: list[dict[str, Any]],
                    nodes: list[dict[str, Any]], want: dict[str, str]) -> None:
    got = announcers(services, slices, nodes)
    assert got == want
    assert list(got) == list(want)


def test_generators_are_read_once() -> None:
    got = announcers((s for s in [lb("web", A, B, local=True)]),
                     (s for s in [eps("web", ("node-1", True), ("node-3", True))]),
                     (n for n in THREE))
    assert got == {A: "node-3", B: "node-1"}


@pytest.mark.parametrize(("ip", "nodes", "want"), [
    pytest.param(A, ["node-1", "node-2", "node-3"], "node-2", id="A"),
    pytest.param(A, ["node-3", "node-1"], "node-3", id="A without node-2"),
    pytest.param(B, ["node-3", "node-2", "node-1"], "node-1", id="B"),
    pytest.param(D, ["node-2"], "node-2", id="one node"),
    pytest.param(D, [], None, id="no node"),
])
def test_rendezvous(ip: str, nodes: list[str], want: str | None) -> None:
    assert rendezvous(ip, nodes) == want


POOL = [f"172.18.0.{i}" for i in range(200, 250)]
NAMES = [f"node-{i}" for i in range(1, 6)]


def table(names: list[str]) -> dict[str, str]:
    return announcers([lb("pool", *POOL)], [], [node(n) for n in names])


def test_the_winner_is_the_highest_sha256_of_node_slash_ip() -> None:
    got = table(NAMES)
    for ip in POOL:
        assert got[ip] == max(NAMES, key=lambda n: hashlib.sha256(f"{n}/{ip}".encode()).digest())
    assert set(got.values()) == set(NAMES)  # 50 IPs over 5 nodes: everyone gets some


def test_node_order_does_not_matter() -> None:
    shuffled = NAMES[:]
    random.Random(4).shuffle(shuffled)
    assert table(shuffled) == table(NAMES)


def test_a_node_leaving_moves_only_its_own_ips() -> None:
    before, after = table(NAMES), table([n for n in NAMES if n != "node-3"])
    moved = {ip for ip in POOL if before[ip] != after[ip]}
    assert moved == {ip for ip in POOL if before[ip] == "node-3"}
    assert moved  # the test means something


def test_a_node_joining_takes_ips_only_for_itself() -> None:
    before, after = table(NAMES), table([*NAMES, "node-6"])
    moved = {ip for ip in POOL if before[ip] != after[ip]}
    assert moved
    assert {after[ip] for ip in moved} == {"node-6"}
