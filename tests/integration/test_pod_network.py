"""The Kubernetes network model with real packets: every pod has its own IP, pods reach each
other across nodes without NAT, nodes and pods reach each other, the containers of a pod share
its namespace, and the pod has its own hostname.

Address plan (the lab's defaults): LAN 172.18.0.0/24 (node-i at .10+i), cluster CIDR
10.244.0.0/16 with a /24 per node, pods numbered from each node's /24.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from podnet.client.http import ApiError
from podnet.kernel import netns as kernel_netns
from podnet.lab import names

pytestmark = pytest.mark.integration

PROBE = Path(__file__).parent / "tools" / "probe.py"
ECHO_PORT = 8080


def echo_pod(name: str, node: str | None = None) -> dict:
    spec: dict = {"containers": [{"name": "echo", "image": "podnet/echo",
                                  "ports": [{"containerPort": ECHO_PORT}]}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "e"}},
            "spec": spec}


def wait_running(cluster, names_: list[str], timeout: float = 60.0) -> dict[str, dict]:
    pods = cluster.res("Pod")
    deadline = time.monotonic() + timeout
    while True:
        items = {p["metadata"]["name"]: p for p in cluster.client.list(pods, "default")["items"]}
        ready = {n: items[n] for n in names_ if n in items and
                 items[n].get("status", {}).get("phase") == "Running" and
                 items[n]["status"].get("podIP")}
        if len(ready) == len(names_):
            return ready
        if time.monotonic() > deadline:
            missing = {n: items.get(n, {}).get("status") for n in names_ if n not in ready}
            raise AssertionError(f"pods not running after {timeout}s: {missing}")
        time.sleep(0.2)


def probe(netns: str, ips: list[str]) -> dict:
    out = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-I", "-S", str(PROBE),
                          str(ECHO_PORT), *ips], capture_output=True, text=True, timeout=120,
                         check=True)
    return json.loads(out.stdout)


@pytest.fixture(params=[
    pytest.param(("host-gw", "podnet"), id="host-gw"),
    pytest.param(("vxlan", "podnet"), id="vxlan"),
    pytest.param(("host-gw", "ptp"), id="debian-ptp"),
])
def lab(request, make_lab):
    """A 3-node cluster with agents, for each backend and CNI plugin."""
    backend, cni = request.param
    return make_lab(nodes=3, backend=backend, cni=cni)


def test_flat_network_without_nat(lab):
    pod_names = [f"p{i}" for i in range(12)]
    for i, n in enumerate(pod_names):
        lab.client.create(lab.res("Pod"), "default", echo_pod(n, f"node-{i % 3 + 1}"))
    pods = wait_running(lab, pod_names)
    ips = {n: p["status"]["podIP"] for n, p in pods.items()}
    assert len(set(ips.values())) == 12, "pod IPs are not unique"
    for n, p in pods.items():
        assert p["status"]["podIPs"] == [{"ip": ips[n]}]
        assert p["status"]["hostIP"].startswith("172.18.0.")
    for n, p in pods.items():
        netns = names.pod_netns(lab.name, p["metadata"]["uid"])
        others = [ip for m, ip in ips.items() if m != n]
        result = probe(netns, others)
        for m, ip in ips.items():
            if m == n:
                continue
            assert result[ip]["icmp"], f"{n} -> {m} ({ip}): no ICMP reply"
            answer = result[ip]["http"]
            assert answer is not None, f"{n} -> {m} ({ip}): no HTTP answer"
            assert answer["pod"] == m
            # No NAT: the receiver sees the sender's own pod IP.
            assert answer["client"]["ip"] == ips[n], (n, m, answer["client"])


def test_nodes_and_pods_reach_each_other(lab):
    lab.client.create(lab.res("Pod"), "default", echo_pod("solo", "node-2"))
    pod = wait_running(lab, ["solo"])["solo"]
    ip = pod["status"]["podIP"]
    for i in (1, 2, 3):
        result = probe(names.node_netns(lab.name, f"node-{i}"), [ip])
        assert result[ip]["icmp"] and result[ip]["http"]["pod"] == "solo"
    node_ips = [f"172.18.0.{10 + i}" for i in (1, 2, 3)]
    out = subprocess.run(
        ["ip", "netns", "exec", names.pod_netns(lab.name, pod["metadata"]["uid"]),
         "sh", "-c", " && ".join(f"ping -c1 -W2 -q {a}" for a in node_ips)],
        capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr


def test_containers_share_the_pods_namespaces(lab):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pair"},
           "spec": {"nodeName": "node-1", "containers": [
               {"name": "server", "image": "x", "ports": [{"containerPort": 7000}]},
               {"name": "client", "image": "x", "command": ["sh", "-c"],
                "args": ["while :; do python3 -I -S -c \"import urllib.request as u; "
                         "print(u.urlopen('http://127.0.0.1:7000/').read().decode(), "
                         "flush=True)\" && hostname && sleep 3600; sleep 0.2; done"]}]}}
    lab.client.create(lab.res("Pod"), "default", pod)
    wait_running(lab, ["pair"])
    deadline = time.monotonic() + 30
    log = ""
    while time.monotonic() < deadline:
        out = subprocess.run([sys.executable, "-m", "podnet.cli.main", "--name", lab.name,
                              "logs", "pair", "-c", "client"], capture_output=True, text=True,
                             env={**os.environ,
                                  "PODNET_STATE_ROOT": str(lab.root)})
        log = out.stdout
        if "pair" in log.splitlines()[-1:]:
            break
        time.sleep(0.3)
    lines = log.splitlines()
    assert lines and lines[-1] == "pair", log  # hostname prints the pod's name
    answer = json.loads([line for line in lines[:-1] if line.strip()][-1])
    assert answer["pod"] == "pair" and answer["client"]["ip"] == "127.0.0.1"


def test_deleting_a_pod_frees_its_address_and_namespace(lab):
    lab.client.create(lab.res("Pod"), "default", echo_pod("short", "node-3"))
    pod = wait_running(lab, ["short"])["short"]
    netns = names.pod_netns(lab.name, pod["metadata"]["uid"])
    assert netns in kernel_netns.names()
    lab.client.delete(lab.res("Pod"), "default", "short")
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        try:
            lab.client.get(lab.res("Pod"), "default", "short")
        except ApiError as e:
            assert e.status == 404
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the pod was not deleted")
    assert netns not in kernel_netns.names()
