"""Which node a pod goes to, and which podCIDR a node gets (pure).

The scheduler is minimal but honest about Kubernetes' rules for the fields podnet carries:
spec.nodeName wins; spec.nodeSelector must match the node's labels; a node must be Ready and
schedulable, and its NoSchedule/NoExecute taints must be tolerated. Among fitting nodes, the one
running the fewest pods wins (ties go to the name, so placement is reproducible).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

Obj = dict[str, Any]


def node_ready(node: Obj) -> bool:
    for c in (node.get("status") or {}).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def _tolerates(tolerations: list[Any], taint: Mapping[str, Any]) -> bool:
    for t in tolerations:
        if not isinstance(t, dict):
            continue
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        op = t.get("operator", "Equal")
        if not t.get("key"):
            if op == "Exists":
                return True
            continue
        if t.get("key") != taint.get("key"):
            continue
        if op == "Exists" or t.get("value", "") == taint.get("value", ""):
            return True
    return False


def unfit_reason(pod: Obj, node: Obj) -> str | None:
    """Why `pod` can't run on `node`, in the scheduler's words; None when it can."""
    spec = pod.get("spec") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    if not node_ready(node):
        return "node(s) were not ready"
    if (node.get("spec") or {}).get("unschedulable"):
        return "node(s) were unschedulable"
    selector = spec.get("nodeSelector") or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        return "node(s) didn't match Pod's node affinity/selector"
    tolerations = spec.get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if isinstance(taint, dict) and taint.get("effect") in ("NoSchedule", "NoExecute") \
                and not _tolerates(tolerations, taint):
            return "node(s) had untolerated taint"
    return None


def pick_node(pod: Obj, nodes: Iterable[Obj],
              pods_per_node: Mapping[str, int]) -> tuple[str | None, str]:
    """The node to bind `pod` to, or None and the message Kubernetes gives
    ("0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.")."""
    fit: list[tuple[int, str]] = []
    reasons: dict[str, int] = {}
    total = 0
    for node in nodes:
        total += 1
        name = str((node.get("metadata") or {}).get("name", ""))
        why = unfit_reason(pod, node)
        if why is None:
            fit.append((pods_per_node.get(name, 0), name))
        else:
            reasons[why] = reasons.get(why, 0) + 1
    if fit:
        return min(fit)[1], ""
    detail = ", ".join(f"{n} {why}" for why, n in sorted(reasons.items()))
    return None, f"0/{total} nodes are available" + (f": {detail}." if detail else ".")


def next_pod_cidr(cluster_cidr: str, mask: int, taken: Iterable[str]) -> str | None:
    """The first /mask subnet of the cluster CIDR that no node holds, or None when all are."""
    net = ipaddress.ip_network(cluster_cidr)
    used = {ipaddress.ip_network(c, strict=False) for c in taken}
    for sub in net.subnets(new_prefix=mask):
        if not any(sub.overlaps(u) for u in used):
            return str(sub)
    return None
