"""The controllers that run in the server: node IPAM and the scheduler (no agents needed: the
test plays the nodes by writing Node objects)."""

from __future__ import annotations

import time

import pytest

from podnet.client.http import ApiError

pytestmark = pytest.mark.integration


def node(name: str, ready: bool = True, labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels or {}},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                       "reason": "Test"}]}}


def pod(name: str, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "x"}], **spec}}


def eventually(fn, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_every_node_gets_its_own_pod_cidr(cluster):
    c, res = cluster.client, cluster.res("Node")
    for i in range(3):
        c.create(res, None, node(f"n{i}"))
    cidrs = eventually(lambda: [c.get(res, None, f"n{i}")["spec"].get("podCIDR")
                                for i in range(3)] if all(
        c.get(res, None, f"n{i}")["spec"].get("podCIDR") for i in range(3)) else None)
    assert cidrs and len(set(cidrs)) == 3
    assert all(x.startswith("10.244.") and x.endswith(".0/24") for x in cidrs)
    assert c.get(res, None, "n0")["spec"]["podCIDRs"] == [cidrs[0]]
    # A deleted node's range goes back to the pool.
    c.delete(res, None, "n1")
    c.create(res, None, node("n3"))
    assert eventually(lambda: c.get(res, None, "n3")["spec"].get("podCIDR")) == cidrs[1]


def test_scheduler_binds_to_ready_matching_nodes(cluster):
    c, nodes, pods = cluster.client, cluster.res("Node"), cluster.res("Pod")
    c.create(nodes, None, node("ready-a", labels={"disk": "ssd"}))
    c.create(nodes, None, node("ready-b"))
    c.create(nodes, None, node("not-ready", ready=False))
    for i in range(4):
        c.create(pods, "default", pod(f"p{i}"))
    c.create(pods, "default", pod("ssd", nodeSelector={"disk": "ssd"}))
    c.create(pods, "default", pod("pinned", nodeName="not-ready"))

    def placed():
        got = {p["metadata"]["name"]: p["spec"].get("nodeName")
               for p in c.list(pods, "default")["items"]}
        return got if all(got.values()) else None

    got = eventually(placed)
    assert got, "pods were not all bound"
    assert got["ssd"] == "ready-a" and got["pinned"] == "not-ready"
    spread = [got[f"p{i}"] for i in range(4)]
    assert "not-ready" not in spread and abs(spread.count("ready-a") + 1 -
                                             spread.count("ready-b")) <= 1
    cond = {x["type"]: x["status"] for x in c.get(pods, "default", "p0")["status"]["conditions"]}
    assert cond["PodScheduled"] == "True"


def test_unschedulable_pod_says_why_and_binds_when_a_node_fits(cluster):
    c, nodes, pods = cluster.client, cluster.res("Node"), cluster.res("Pod")
    c.create(nodes, None, node("plain"))
    c.create(pods, "default", pod("picky", nodeSelector={"gpu": "yes"}))

    def condition():
        for x in c.get(pods, "default", "picky")["status"].get("conditions") or []:
            if x["type"] == "PodScheduled":
                return x
        return None

    cond = eventually(condition)
    assert cond and cond["status"] == "False" and cond["reason"] == "Unschedulable"
    assert cond["message"] == ("0/1 nodes are available: 1 node(s) didn't match Pod's node "
                               "affinity/selector.")
    c.create(nodes, None, node("gpu", labels={"gpu": "yes"}))
    assert eventually(lambda: c.get(pods, "default", "picky")["spec"].get("nodeName")) == "gpu"


def test_binding_twice_is_a_conflict(cluster):
    c, pods = cluster.client, cluster.res("Pod")
    c.create(pods, "default", pod("b", nodeName="somewhere"))
    with pytest.raises(ApiError) as e:
        c.request("POST", "/api/v1/namespaces/default/pods/b/binding",
                  body={"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "b"},
                        "target": {"kind": "Node", "name": "elsewhere"}})
    assert e.value.status == 409
    assert c.get(pods, "default", "b")["spec"]["nodeName"] == "somewhere"
