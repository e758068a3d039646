"""The proxy's scripts against the real nft: every incremental script is accepted, and the
table it leaves holds exactly what a full sync of the same Services would write.

A random walk over Services of every kind the proxy handles (ClusterIP, NodePort,
LoadBalancer with both traffic policies, source ranges, external IPs, internalTrafficPolicy
Local, ClientIP affinity, UDP and SCTP) and their endpoints, in one namespace of the test's own.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from podnet.proxy import model, render

pytestmark = pytest.mark.integration

NODE = model.NodeInfo("node-1", ip="172.18.0.11")


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"podnet-test-proxy-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def nft(ns: str, script: str) -> None:
    out = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script, text=True,
                         capture_output=True)
    assert out.returncode == 0, f"{out.stderr}\n--- script ---\n{script}"


def content(ns: str, table: str) -> dict[str, Any]:
    """Sets' and maps' elements and chains' rules, as the kernel holds them."""
    out = subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "list", "table", "ip", table],
                         capture_output=True, text=True, check=True)
    got: dict[str, Any] = {}
    rules: dict[str, list[str]] = {}
    for item in json.loads(out.stdout)["nftables"]:
        for kind in ("set", "map"):
            if kind in item:
                got[f"{kind} {item[kind]['name']}"] = sorted(
                    json.dumps(e, sort_keys=True) for e in item[kind].get("elem", []))
        if "chain" in item:
            rules.setdefault(item["chain"]["name"], [])
        if "rule" in item:
            rules.setdefault(item["rule"]["chain"], []).append(
                json.dumps(item["rule"]["expr"], sort_keys=True))
    got.update({f"chain {k}": v for k, v in rules.items()})
    return got


def random_service(rng: random.Random, i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    kind = rng.choice(["ClusterIP", "NodePort", "LoadBalancer"])
    spec: dict[str, Any] = {"type": kind, "clusterIP": f"10.96.1.{i}",
                            "clusterIPs": [f"10.96.1.{i}"]}
    protocol = rng.choice(["TCP", "TCP", "UDP", "SCTP"])
    spec["ports"] = [{"name": "p", "port": 80, "protocol": protocol, "nodePort": 30000 + i}]
    if kind == "LoadBalancer":
        spec["externalTrafficPolicy"] = rng.choice(["Cluster", "Local"])
        if rng.random() < 0.5:
            spec["loadBalancerSourceRanges"] = rng.sample(["10.0.0.0/8", "172.18.0.0/28",
                                                           "192.0.2.0/24"], 2)
    if rng.random() < 0.2:
        spec["externalIPs"] = [f"192.0.2.{i}"]
    if rng.random() < 0.2:
        spec["internalTrafficPolicy"] = "Local"
    if rng.random() < 0.3:
        spec["sessionAffinity"] = "ClientIP"
        spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": rng.choice([30, 60])}}
    svc = {"metadata": {"namespace": "default", "name": f"s{i}"}, "spec": spec,
           "status": {"loadBalancer": {"ingress": [{"ip": f"172.18.0.{200 + i}"}]}
                      if kind == "LoadBalancer" else {}}}
    endpoints = [{"addresses": [f"10.244.{rng.choice([1, 2])}.{rng.randrange(2, 30)}"],
                  "nodeName": rng.choice(["node-1", "node-2"]),
                  "conditions": {"ready": rng.random() < 0.8, "serving": True,
                                 "terminating": rng.random() < 0.2}}
                 for _ in range(rng.randrange(0, 4))]
    for e in endpoints:  # the node follows the address
        e["nodeName"] = "node-1" if e["addresses"][0].startswith("10.244.1.") else "node-2"
    slc = {"metadata": {"namespace": "default", "name": f"s{i}-x",
                        "labels": {model.SERVICE_NAME_LABEL: f"s{i}"}},
           "addressType": "IPv4", "ports": [{"name": "p", "port": 8080, "protocol": protocol}],
           "endpoints": endpoints}
    return svc, slc


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_scripts_reach_what_a_full_sync_writes(netns, seed):
    rng = random.Random(seed)
    live = render.Table("podnet-live", NODE.service_cidr, NODE.cluster_cidr)
    fresh = render.Table("podnet-fresh", NODE.service_cidr, NODE.cluster_cidr)
    current: dict[tuple[str, str], tuple[dict[str, Any], dict[str, Any]]] = {}
    ruleset = model.Ruleset()
    nft(netns, render.full(live, ruleset))
    for step in range(40):
        changes: dict[tuple[str, str], model.ServiceRules | None] = {}
        for _ in range(rng.randrange(1, 4)):
            i = rng.randrange(1, 12)
            key = ("default", f"s{i}")
            if key in current and rng.random() < 0.3:
                del current[key]
                changes[key] = None
            else:
                current[key] = random_service(rng, i)
                changes[key] = model.compile_service(*current[key][:1], [current[key][1]], NODE)
        script = render.incremental(live, ruleset.update(changes))
        if script:
            nft(netns, script)
        nft(netns, render.full(fresh, ruleset))
        assert content(netns, "podnet-live") == content(netns, "podnet-fresh"), f"step {step}"
    # and everything goes
    nft(netns, render.incremental(live, ruleset.update({k: None for k in current})))
    nft(netns, render.full(fresh, model.Ruleset()))
    assert content(netns, "podnet-live") == content(netns, "podnet-fresh")
