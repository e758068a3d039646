"""Services through podnet's proxy, with real packets.

Address plan (the lab's defaults): LAN 172.18.0.0/24 (node-i at .10+i), pods in 10.244.0.0/16
(a /24 per node), ClusterIPs from 10.96.0.0/12, allocated by the server. Echo pods answer HTTP
with JSON naming the pod that answered and the client address it saw.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from labkit import SVC_PORT, echo_pod, pods_by_name, ready_endpoints, run_in, service, wait_for

from podnet.lab import names

pytestmark = pytest.mark.integration


def elements(lab: Any, node: str, obj: str, kind: str = "set") -> list[Any]:
    """The elements of one set or map of the proxy table (tests may read it; the proxy
    doesn't)."""
    out = subprocess.run(["ip", "netns", "exec", names.node_netns(lab.name, node), "nft", "-j",
                          "list", kind, "ip", f"podnet-{lab.name}", obj],
                         capture_output=True, text=True, check=True)
    return [e for item in json.loads(out.stdout)["nftables"] if kind in item
            for e in item[kind].get("elem", [])]


def mentions(element: Any, ip: str) -> bool:
    return ip in json.dumps(element)


def test_cluster_ip_spreads_over_ready_endpoints_and_hairpins_and_goes_away(make_lab):
    lab = make_lab(nodes=2)
    names_ = ["web-0", "web-1", "web-2"]
    for i, n in enumerate(names_):
        lab.client.create(lab.res("Pod"), "default",
                          echo_pod(n, f"node-{i % 2 + 1}", {"app": "web", "pod": n}))
    lab.client.create(lab.res("Pod"), "default", echo_pod("client", "node-2", {"app": "c"}))
    web = lab.client.create(lab.res("Service"), "default", service("web", {"app": "web"}))
    own = lab.client.create(lab.res("Service"), "default", service("own", {"pod": "web-0"}))
    vip, own_vip = web["spec"]["clusterIP"], own["spec"]["clusterIP"]
    wait_for("3 ready endpoints", lambda: len(ready_endpoints(lab, "web")) == 3)
    pods = wait_for("pods with IPs", lambda: (p := pods_by_name(lab)) and
                    all(p[n].get("status", {}).get("podIP") for n in [*names_, "client"]) and p)
    ips = {n: pods[n]["status"]["podIP"] for n in names_}
    client_ns = names.pod_netns(lab.name, pods["client"]["metadata"]["uid"])
    wait_for("the proxy to program 3 endpoints on node-2",
             lambda: sum(mentions(e, vip) for e in elements(lab, "node-2", "eps-tcp", "map")) == 3)

    # From a pod: 300 requests, each endpoint gets its share; the pod's own IP is kept.
    got = run_in(client_ns, "http", vip, SVC_PORT, 300)
    assert got["errors"] == {}
    assert set(got["pods"]) == set(names_), got
    assert all(n >= 50 for n in got["pods"].values()), got
    assert got["clients"] == [pods["client"]["status"]["podIP"]]

    # From a node (not one of the pod network: masqueraded).
    wait_for("the proxy to program 3 endpoints on node-1",
             lambda: sum(mentions(e, vip) for e in elements(lab, "node-1", "eps-tcp", "map")) == 3)
    got = run_in(names.node_netns(lab.name, "node-1"), "http", vip, SVC_PORT, 300)
    assert got["errors"] == {}
    assert set(got["pods"]) == set(names_), got
    assert all(n >= 50 for n in got["pods"].values()), got

    # Hairpin: web-0 reaches itself through a Service whose only endpoint it is.
    wait_for("own's endpoint", lambda: ready_endpoints(lab, "own") == {ips["web-0"]})
    web0_ns = names.pod_netns(lab.name, pods["web-0"]["metadata"]["uid"])
    got = wait_for("hairpin traffic", lambda: (g := run_in(web0_ns, "http", own_vip, SVC_PORT,
                                                           5))["pods"] and g)
    assert got == {"pods": {"web-0": 5}, "clients": [got["clients"][0]], "errors": {}}
    assert got["clients"] != [ips["web-0"]]  # masqueraded, or the reply would skip conntrack

    # Deleting the Service removes every element it had, on every node.
    lab.client.delete(lab.res("Service"), "default", "web")
    for node in ("node-1", "node-2"):
        def left(node: str = node) -> list[Any]:
            return [e for obj, kind in (("eps-tcp", "map"), ("cluster-ips", "set"),
                                        ("no-endpoints", "set"))
                    for e in elements(lab, node, obj, kind) if mentions(e, vip)]
        wait_for(f"{vip}'s elements to go on {node}", lambda left=left: not left())
        table = subprocess.run(["ip", "netns", "exec", names.node_netns(lab.name, node), "nft",
                                "list", "table", "ip", f"podnet-{lab.name}"],
                               capture_output=True, text=True, check=True).stdout
        assert vip not in table
        assert "svc-n3" not in table  # no Service has 3 endpoints any more: set and rule gone
    got = run_in(client_ns, "connect", vip, SVC_PORT)
    assert got["error"] == "TIMEOUT"  # an unallocated service IP now: dropped


def test_no_ready_endpoints_refuses_at_once(make_lab):
    lab = make_lab(nodes=1)
    lab.client.create(lab.res("Pod"), "default", echo_pod(
        "unready", "node-1", {"app": "u"},
        readinessProbe={"tcpSocket": {"port": 9999}, "periodSeconds": 1}))
    lab.client.create(lab.res("Pod"), "default", echo_pod("client", "node-1", {"app": "c"}))
    svc = lab.client.create(lab.res("Service"), "default", service("u", {"app": "u"}))
    vip = svc["spec"]["clusterIP"]
    pods = wait_for("pods with IPs", lambda: (p := pods_by_name(lab)) and
                    all(p[n].get("status", {}).get("podIP") for n in ("unready", "client")) and p)
    assert ready_endpoints(lab, "u") == set()
    wait_for("the proxy to list the port as having no endpoints",
             lambda: any(mentions(e, vip) for e in elements(lab, "node-1", "no-endpoints")))
    client_ns = names.pod_netns(lab.name, pods["client"]["metadata"]["uid"])
    for netns in (client_ns, names.node_netns(lab.name, "node-1")):
        got = run_in(netns, "connect", vip, SVC_PORT)
        assert got["error"] == "ECONNREFUSED", (netns, got)
        assert got["seconds"] < 0.5, got
        # A port the Service does not have: refused too.
        assert run_in(netns, "connect", vip, 81)["error"] == "ECONNREFUSED"


def test_node_port_reaches_endpoints_through_every_node_from_outside(make_lab):
    lab = make_lab(nodes=2)
    for i in (1, 2):
        lab.client.create(lab.res("Pod"), "default",
                          echo_pod(f"np-{i}", f"node-{i}", {"app": "np"}))
    body = service("np", {"app": "np"})
    body["spec"]["type"] = "NodePort"
    svc = lab.client.create(lab.res("Service"), "default", body)
    node_port = svc["spec"]["ports"][0]["nodePort"]
    assert 30000 <= node_port <= 32767
    wait_for("2 ready endpoints", lambda: len(ready_endpoints(lab, "np")) == 2)

    def np_elements(node: str) -> list[Any]:
        """The elements of the table's sets and maps that hold the node's node-port key
        (one listing: the proxy may delete a set between two)."""
        node_ip = f"172.18.0.{10 + int(node.rsplit('-', 1)[1])}"
        out = subprocess.run(["ip", "netns", "exec", names.node_netns(lab.name, node), "nft",
                              "-j", "list", "table", "ip", f"podnet-{lab.name}"],
                             capture_output=True, text=True, check=True)
        return [(item[kind]["name"], e) for item in json.loads(out.stdout)["nftables"]
                for kind in ("set", "map") if kind in item
                for e in item[kind].get("elem", [])
                if mentions(e, node_ip) and mentions(e, str(node_port))]

    def table(node: str) -> str:
        return subprocess.run(["ip", "netns", "exec", names.node_netns(lab.name, node), "nft",
                               "list", "table", "ip", f"podnet-{lab.name}"],
                              capture_output=True, text=True, check=True).stdout

    for node in ("node-1", "node-2"):
        wait_for(f"2 node-port endpoints on {node}",
                 lambda node=node: [n for n, _ in np_elements(node)].count("eps-tcp") == 2)
        # eps-tcp's two, svc-n2's one, and masq-keys' one (policy Cluster: masqueraded)
        assert sorted(n for n, _ in np_elements(node)) == ["eps-tcp", "eps-tcp", "masq-keys",
                                                           "svc-n2"]

    # From the external host, through each node's LAN IP: both endpoints answer, and they
    # see the node (masqueraded), not the external host.
    external = names.external_netns(lab.name)
    for node_ip in ("172.18.0.11", "172.18.0.12"):
        got = run_in(external, "http", node_ip, node_port, 60)
        assert got["errors"] == {}, (node_ip, got)
        assert set(got["pods"]) == {"np-1", "np-2"}, (node_ip, got)
        assert "172.18.0.2" not in got["clients"], (node_ip, got)

    # Deleting the Service removes its node-port elements on every node.
    lab.client.delete(lab.res("Service"), "default", "np")
    for node in ("node-1", "node-2"):
        wait_for(f"node port {node_port}'s elements to go on {node}",
                 lambda node=node: not np_elements(node))
        assert f"{node_port}" not in table(node)
    got = run_in(external, "connect", "172.18.0.11", node_port)
    assert got["error"] == "ECONNREFUSED", got  # nothing listens there any more
