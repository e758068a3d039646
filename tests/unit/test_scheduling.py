from __future__ import annotations

import pytest

from podnet.api.scheduling import next_pod_cidr, pick_node


def node(name, ready=True, labels=None, taints=None, unschedulable=False):
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"taints": taints or [], "unschedulable": unschedulable},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def pod(selector=None, tolerations=None):
    return {"spec": {"nodeSelector": selector or {}, "tolerations": tolerations or []}}


NODES = [node("node-1", labels={"zone": "a"}), node("node-2", labels={"zone": "b"}),
         node("node-3", ready=False)]


@pytest.mark.parametrize(("p", "counts", "want"), [
    pytest.param(pod(), {}, "node-1", id="ties-go-to-the-name"),
    pytest.param(pod(), {"node-1": 3, "node-2": 1}, "node-2", id="fewest-pods"),
    pytest.param(pod({"zone": "b"}), {"node-2": 50}, "node-2", id="node-selector"),
])
def test_pick_node(p, counts, want):
    assert pick_node(p, NODES, counts) == (want, "")


def test_no_fit_says_why_per_node():
    name, why = pick_node(pod({"zone": "c"}), NODES, {})
    assert name is None
    assert why == ("0/3 nodes are available: 2 node(s) didn't match Pod's node affinity/"
                   "selector, 1 node(s) were not ready.")


def test_taints_need_tolerations():
    tainted = [node("n", taints=[{"key": "gpu", "value": "yes", "effect": "NoSchedule"}])]
    assert pick_node(pod(), tainted, {})[0] is None
    ok = pod(tolerations=[{"key": "gpu", "operator": "Equal", "value": "yes"}])
    assert pick_node(ok, tainted, {})[0] == "n"
    assert pick_node(pod(tolerations=[{"operator": "Exists"}]), tainted, {})[0] == "n"
    assert pick_node(pod(), [node("u", unschedulable=True)], {})[0] is None


def test_next_pod_cidr_skips_taken_and_ends():
    assert next_pod_cidr("10.244.0.0/16", 24, []) == "10.244.0.0/24"
    assert next_pod_cidr("10.244.0.0/16", 24, ["10.244.0.0/24", "10.244.2.0/24"]) == \
        "10.244.1.0/24"
    assert next_pod_cidr("10.244.0.0/23", 24, ["10.244.0.0/24", "10.244.1.0/24"]) is None
