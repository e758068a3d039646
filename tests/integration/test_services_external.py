"""Services reached from outside and their policies, with real packets: LoadBalancer IPs
(announced on the LAN by one node), loadBalancerSourceRanges, externalIPs, both
externalTrafficPolicy values with healthCheckNodePort, internalTrafficPolicy Local, ClientIP
affinity, a UDP Service whose endpoint is replaced, and an agent restart.

Address plan (the lab's defaults): LAN 172.18.0.0/24 (external host .2, node-i .10+i, the
LoadBalancer pool .200-.249), pods in 10.244.0.0/16, ClusterIPs from 10.96.0.0/12. Echo pods
answer HTTP with JSON naming the pod that answered and the client address it saw.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from labkit import (
    SVC_PORT,
    client_argv,
    echo_pod,
    nft_table,
    ready_endpoints,
    run_in,
    service,
    wait_for,
    with_ips,
)

from podnet.cluster import lifecycle
from podnet.lab import names

pytestmark = pytest.mark.integration

EXTERNAL_IP = "172.18.0.2"

def table(lab: Any, node: str) -> dict[str, Any]:
    return nft_table(lab, node)


def table_size(lab: Any, node: str) -> tuple[int, int, int]:
    """(elements in all sets and maps, chains, rules) of a node's proxy table."""
    items = table(lab, node)["nftables"]
    elements = sum(len(i[k].get("elem", [])) for i in items for k in ("set", "map") if k in i)
    return (elements, sum("chain" in i for i in items), sum("rule" in i for i in items))


def affinity_chains(lab: Any, node: str) -> list[str]:
    return [i["chain"]["name"] for i in table(lab, node)["nftables"]
            if "chain" in i and i["chain"]["name"].startswith("aff-")]


def mentions(lab: Any, node: str, text: str) -> bool:
    return text in json.dumps(table(lab, node))


def lb_ip(lab: Any, name: str) -> str:
    def ip() -> str | None:
        svc = lab.client.get(lab.res("Service"), "default", name)
        ingress = (svc.get("status") or {}).get("loadBalancer", {}).get("ingress") or []
        return ingress[0].get("ip") if ingress else None
    return str(wait_for(f"{name}'s LoadBalancer IP", ip))


def node_ip(i: int) -> str:
    return f"172.18.0.{10 + i}"


def test_load_balancer_ip_source_ranges_external_ips_and_cleanup(make_lab):
    lab = make_lab(nodes=2)
    external = names.external_netns(lab.name)
    before = {n: table_size(lab, n) for n in ("node-1", "node-2")}
    for i in (1, 2):
        lab.client.create(lab.res("Pod"), "default", echo_pod(f"lb-{i}", f"node-{i}",
                                                              {"app": "lb"}))
    lab.client.create(lab.res("Service"), "default", service(
        "lb", {"app": "lb"}, type="LoadBalancer", externalIPs=["192.0.2.10"],
        sessionAffinity="ClientIP"))
    ip = lb_ip(lab, "lb")
    assert ip.startswith("172.18.0.2") and 200 <= int(ip.rsplit(".", 1)[1]) <= 249
    wait_for("2 ready endpoints", lambda: len(ready_endpoints(lab, "lb")) == 2)
    wait_for("the LoadBalancer IP in both tables",
             lambda: all(mentions(lab, n, ip) for n in ("node-1", "node-2")))

    # The external host reaches the LoadBalancer IP (one node answers ARP for it); policy
    # Cluster masquerades. Affinity keeps the external host on one endpoint.
    got = wait_for("answers on the LoadBalancer IP",
                   lambda: (g := run_in(external, "http", ip, SVC_PORT, 20))["pods"] and g)
    assert got["errors"] == {} and len(got["pods"]) == 1, got
    assert EXTERNAL_IP not in got["clients"], got

    # externalIPs: the user routes them; here the external host sends them to node-2.
    subprocess.run(["ip", "-n", external, "route", "add", "192.0.2.10/32", "via", node_ip(2)],
                   check=True)
    got = run_in(external, "http", "192.0.2.10", SVC_PORT, 10)
    assert got["errors"] == {} and sum(got["pods"].values()) == 10, got

    # loadBalancerSourceRanges: a range without the external host drops it; adding it back
    # lets it in. The external IP is not guarded by them.
    lab.client.patch(lab.res("Service"), "default", "lb",
                     {"spec": {"loadBalancerSourceRanges": ["10.0.0.0/8"]}})
    wait_for("the guard", lambda: all(mentions(lab, n, "10.0.0.0") for n in ("node-1", "node-2")))
    assert run_in(external, "connect", ip, SVC_PORT)["error"] == "TIMEOUT"
    assert run_in(external, "connect", "192.0.2.10", SVC_PORT)["error"] is None
    lab.client.patch(lab.res("Service"), "default", "lb",
                     {"spec": {"loadBalancerSourceRanges": ["10.0.0.0/8", "172.18.0.0/28"]}})
    wait_for("the wider guard", lambda: mentions(lab, "node-1", "172.18.0.0"))
    assert run_in(external, "connect", ip, SVC_PORT)["error"] is None

    # Deleting the Service leaves the tables as they were: no element, chain or rule left.
    lab.client.delete(lab.res("Service"), "default", "lb")
    for n in ("node-1", "node-2"):
        wait_for(f"{n}'s table back to its size before",
                 lambda n=n: table_size(lab, n) == before[n])
        assert not mentions(lab, n, ip) and not mentions(lab, n, "192.0.2.10")
    got = run_in(external, "connect", ip, SVC_PORT)
    assert got["error"] in ("TIMEOUT", "EHOSTUNREACH"), got  # nobody answers for it now


def test_external_traffic_policy_local_keeps_the_client_ip_and_health_checks(make_lab):
    lab = make_lab(nodes=2)
    external = names.external_netns(lab.name)
    lab.client.create(lab.res("Pod"), "default", echo_pod("only", "node-2", {"app": "loc"}))
    lab.client.create(lab.res("Pod"), "default", echo_pod("client", "node-1", {"app": "c"}))
    svc = lab.client.create(lab.res("Service"), "default", service(
        "loc", {"app": "loc"}, type="LoadBalancer", externalTrafficPolicy="Local"))
    node_port = svc["spec"]["ports"][0]["nodePort"]
    health = svc["spec"]["healthCheckNodePort"]
    ip = lb_ip(lab, "loc")
    pods = wait_for("pods", lambda: with_ips(lab, ["only", "client"]))
    wait_for("a ready endpoint", lambda: ready_endpoints(lab, "loc"))
    wait_for("node-1's table", lambda: mentions(lab, "node-1", str(node_port)))

    # healthCheckNodePort: 200 where an endpoint is, 503 elsewhere.
    def health_of(i: int) -> dict[str, Any]:
        return run_in(external, "get", node_ip(i), health)
    got = wait_for("node-2 healthy", lambda: (h := health_of(2)).get("status") == 200 and h)
    assert got["body"]["localEndpoints"] == 1
    assert got["body"]["service"] == {"namespace": "default", "name": "loc"}
    got = health_of(1)
    assert got["status"] == 503 and got["body"]["localEndpoints"] == 0, got

    # The node with the endpoint serves, and the pod sees the external host's own IP.
    got = run_in(external, "http", node_ip(2), node_port, 10)
    assert got == {"pods": {"only": 10}, "clients": [EXTERNAL_IP], "errors": {}}, got
    # The node without one drops.
    assert run_in(external, "connect", node_ip(1), node_port)["error"] == "TIMEOUT"
    # The LoadBalancer IP is announced by node-2, the node with the endpoint.
    got = wait_for("the LoadBalancer IP", lambda: (g := run_in(external, "http", ip, SVC_PORT,
                                                              10))["pods"] and g)
    assert got == {"pods": {"only": 10}, "clients": [EXTERNAL_IP], "errors": {}}, got
    # A pod on node-1 reaches node-1's node port anyway (short-circuit to all endpoints).
    client_ns = names.pod_netns(lab.name, pods["client"]["metadata"]["uid"])
    got = run_in(client_ns, "http", node_ip(1), node_port, 5)
    assert got["pods"] == {"only": 5} and got["errors"] == {}, got

    # The endpoint moves to node-1: health checks and the announcement follow.
    lab.client.delete(lab.res("Pod"), "default", "only")
    lab.client.create(lab.res("Pod"), "default", echo_pod("moved", "node-1", {"app": "loc"}))
    wait_for("node-1 healthy", lambda: health_of(1).get("status") == 200)
    wait_for("node-2 unhealthy", lambda: health_of(2).get("status") == 503)
    got = wait_for("the LoadBalancer IP from node-1",
                   lambda: (g := run_in(external, "http", ip, SVC_PORT, 5))["pods"] == {"moved": 5}
                   and g)
    assert got["clients"] == [EXTERNAL_IP]


def test_internal_traffic_policy_local_keeps_traffic_on_the_node(make_lab):
    lab = make_lab(nodes=2)
    for n, node in (("here", "node-1"), ("there", "node-2")):
        lab.client.create(lab.res("Pod"), "default", echo_pod(n, node, {"app": "itp"}))
    lab.client.create(lab.res("Pod"), "default", echo_pod("c1", "node-1", {"app": "c"}))
    lab.client.create(lab.res("Pod"), "default", echo_pod("c2", "node-2", {"app": "c"}))
    lab.client.create(lab.res("Pod"), "default", echo_pod("only", "node-2", {"app": "one"}))
    vip = lab.client.create(lab.res("Service"), "default", service(
        "itp", {"app": "itp"}, internalTrafficPolicy="Local"))["spec"]["clusterIP"]
    one = lab.client.create(lab.res("Service"), "default", service(
        "one", {"app": "one"}, internalTrafficPolicy="Local"))["spec"]["clusterIP"]
    pods = wait_for("pods", lambda: with_ips(lab, ["here", "there", "c1", "c2", "only"]))
    wait_for("endpoints", lambda: len(ready_endpoints(lab, "itp")) == 2 and
             ready_endpoints(lab, "one"))
    c1 = names.pod_netns(lab.name, pods["c1"]["metadata"]["uid"])
    c2 = names.pod_netns(lab.name, pods["c2"]["metadata"]["uid"])
    wait_for("node-1's table", lambda: mentions(lab, "node-1", one))
    got = run_in(c1, "http", vip, SVC_PORT, 30)
    assert got["pods"] == {"here": 30} and got["errors"] == {}, got
    got = run_in(c2, "http", vip, SVC_PORT, 30)
    assert got["pods"] == {"there": 30} and got["errors"] == {}, got
    # No endpoint on node-1: dropped there, served on node-2.
    assert run_in(c1, "connect", one, SVC_PORT)["error"] == "TIMEOUT"
    assert run_in(c2, "http", one, SVC_PORT, 3)["pods"] == {"only": 3}


def test_client_ip_affinity_holds_until_the_timeout(make_lab):
    lab = make_lab(nodes=2)
    for i in range(3):
        lab.client.create(lab.res("Pod"), "default",
                          echo_pod(f"s{i}", f"node-{i % 2 + 1}", {"app": "s"}))
    lab.client.create(lab.res("Pod"), "default", echo_pod("client", "node-1", {"app": "c"}))
    vip = lab.client.create(lab.res("Service"), "default", service(
        "s", {"app": "s"}, sessionAffinity="ClientIP",
        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 2}}))["spec"]["clusterIP"]
    pods = wait_for("pods", lambda: with_ips(lab, ["s0", "s1", "s2", "client"]))
    wait_for("3 endpoints", lambda: len(ready_endpoints(lab, "s")) == 3)
    wait_for("the affinity chains (the key's and one per endpoint)",
             lambda: len(affinity_chains(lab, "node-1")) == 4)
    client = names.pod_netns(lab.name, pods["client"]["metadata"]["uid"])
    # Within the timeout, every request of a round (and of quick rounds) hits one endpoint.
    got = run_in(client, "sticky", vip, SVC_PORT, 4, 0.2)
    assert len({p for r in got["rounds"] for p in r}) == 1, got
    # The node's own traffic (another client IP) sticks too.
    got = run_in(names.node_netns(lab.name, "node-2"), "sticky", vip, SVC_PORT, 3, 0.2)
    assert len({p for r in got["rounds"] for p in r}) == 1, got
    # After the timeout the choice is made again: over 8 rounds 3 s apart, each round sticks
    # to one endpoint and more than one endpoint is chosen (all the same: p = (1/3)^7).
    got = run_in(client, "sticky", vip, SVC_PORT, 8, 3)
    assert all(len(set(r)) == 1 for r in got["rounds"]), got
    assert len({r[0] for r in got["rounds"]}) > 1, got


def test_udp_service_survives_its_endpoint_being_replaced(make_lab):
    lab = make_lab(nodes=2)
    lab.client.create(lab.res("Pod"), "default", echo_pod("u1", "node-2", {"app": "u"}, udp=True))
    lab.client.create(lab.res("Pod"), "default", echo_pod("client", "node-1", {"app": "c"}))
    body = service("u", {"app": "u"})
    body["spec"]["ports"] = [{"port": 53, "targetPort": 5353, "protocol": "UDP"}]
    vip = lab.client.create(lab.res("Service"), "default", body)["spec"]["clusterIP"]
    pods = wait_for("pods", lambda: with_ips(lab, ["u1", "client"]))
    wait_for("an endpoint", lambda: ready_endpoints(lab, "u"))
    client = names.pod_netns(lab.name, pods["client"]["metadata"]["uid"])
    wait_for("node-1's table", lambda: mentions(lab, "node-1", pods["u1"]["status"]["podIP"]))
    # One socket (one source port) sends all through; the pod is replaced in the middle.
    proc = subprocess.Popen(client_argv(client, "udp", vip, 53, 40), stdout=subprocess.PIPE,
                            text=True)
    try:
        time.sleep(3)
        lab.client.delete(lab.res("Pod"), "default", "u1")
        lab.client.create(lab.res("Pod"), "default",
                          echo_pod("u2", "node-1", {"app": "u"}, udp=True))
        replaced = time.monotonic()
        wait_for("the new endpoint", lambda: (p := with_ips(lab, ["u2"])) and
                 ready_endpoints(lab, "u") == {p["u2"]["status"]["podIP"]}, timeout=30)
        ready_after = time.monotonic() - replaced
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    got = json.loads(out)
    assert got["replies"] and got["replies"][0] < 3, got  # u1 answered at first
    # ... and the same client socket gets answers again after the replacement (its conntrack
    # entry to u1 was cleared), well before the 40 s run ends.
    late = [t for t in got["replies"] if t > 3 + ready_after + 1]
    assert late and late[-1] > 35, (ready_after, got)


def test_agent_restart_rebuilds_the_table_without_stale_entries(make_lab):
    lab = make_lab(nodes=2)
    lab.client.create(lab.res("Pod"), "default", echo_pod("web", "node-2", {"app": "web"}))
    keep = lab.client.create(lab.res("Service"), "default", service(
        "keep", {"app": "web"}))["spec"]["clusterIP"]
    wait_for("keep's endpoint on node-1", lambda: ready_endpoints(lab, "keep") and
             "10.244." in json.dumps(table(lab, "node-1")))
    baseline = table_size(lab, "node-1")
    gone = lab.client.create(lab.res("Service"), "default", service(
        "gone", {"app": "web"}, sessionAffinity="ClientIP"))["spec"]["clusterIP"]
    wait_for("gone's affinity chains on node-1", lambda: len(affinity_chains(lab, "node-1")) == 2)
    pid = int(Path(lab.state.agent_pid("node-1")).read_text())
    os.kill(pid, signal.SIGKILL)
    wait_for("agent gone", lambda: not lifecycle.pid_alive(pid), timeout=10)
    lab.client.delete(lab.res("Service"), "default", "gone")  # while node-1 has no proxy
    lifecycle.up(lab.name, lab.root, out=io.StringIO())  # restarts the agent
    wait_for("the stale Service gone from node-1", lambda: not mentions(lab, "node-1", gone))
    assert affinity_chains(lab, "node-1") == []
    assert table_size(lab, "node-1") == baseline
    assert run_in(names.node_netns(lab.name, "node-1"), "http", keep, SVC_PORT, 5)["pods"] == \
        {"web": 5}
