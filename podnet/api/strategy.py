"""What the API server does to an object besides storing it, per kind (kube-apiserver's
"strategies"): reset what a client may not set, keep what an update may not change, and decide
how a delete proceeds. Pure functions over Kubernetes JSON; the server supplies time and uids.
"""

from __future__ import annotations

import copy
from typing import Any

Obj = dict[str, Any]

# Kinds whose status is written only through the /status subresource.
_STATUS_SUBRESOURCE = {"Namespace", "Node", "Pod", "Service", "Ingress"}
# Kinds that keep a generation counter that changes with the spec.
_GENERATION = {"Pod", "Service", "Ingress", "NetworkPolicy", "IngressClass"}

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
NAMESPACE_FINALIZER = "kubernetes"


def has_status_subresource(kind: str) -> bool:
    return kind in _STATUS_SUBRESOURCE


def _meta(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = obj["metadata"] = {}
    return meta


def qos_class(pod: Obj) -> str:
    """Guaranteed, Burstable or BestEffort, from the containers' requests and limits."""
    spec = pod.get("spec") or {}
    containers = [c for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
                  if isinstance(c, dict)]
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        req = res.get("requests") or {}
        lim = res.get("limits") or {}
        if req or lim:
            any_set = True
        for r in ("cpu", "memory"):
            if r not in lim or (r in req and str(req[r]) != str(lim[r])):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def prepare_for_create(obj: Obj) -> None:
    """Reset what clients may not set at creation (status, mostly)."""
    kind = obj.get("kind")
    meta = _meta(obj)
    for field in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion",
                  "selfLink", "managedFields"):
        meta.pop(field, None)
    if kind in _GENERATION:
        meta["generation"] = 1
    else:
        meta.pop("generation", None)
    if kind == "Pod":
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj)}
    elif kind in ("Service", "Ingress"):
        obj["status"] = {"loadBalancer": {}}
    elif kind == "Namespace":
        obj["status"] = {"phase": "Active"}
        obj["spec"] = {"finalizers": [NAMESPACE_FINALIZER]}
    if kind == "Namespace":
        name = meta.get("name")
        if isinstance(name, str) and name:
            labels = meta.get("labels")
            if not isinstance(labels, dict):
                labels = meta["labels"] = {}
            labels[NAMESPACE_NAME_LABEL] = name


def prepare_for_update(new: Obj, old: Obj, subresource: str = "") -> Obj:
    """The object to store for an update of `old` by `new`: fields the client may not change
    are kept from `old`. Returns a new object; inputs are untouched."""
    kind = old.get("kind")
    out = copy.deepcopy(new)
    meta = _meta(out)
    old_meta = old.get("metadata") or {}
    for field in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                  "generation", "name", "namespace"):
        if field in old_meta:
            meta[field] = old_meta[field]
        else:
            meta.pop(field, None)
    meta.pop("selfLink", None)
    if subresource == "status":
        # A status update changes the status only.
        result = copy.deepcopy(old)
        result["status"] = out.get("status", {})
        return result
    if has_status_subresource(str(kind)):
        if "status" in old:
            out["status"] = copy.deepcopy(old["status"])
        else:
            out.pop("status", None)
    if kind == "Namespace":
        out["spec"] = copy.deepcopy(old.get("spec", {}))  # finalizers change only via /finalize
        labels = meta.get("labels")
        if not isinstance(labels, dict):
            labels = meta["labels"] = {}
        labels[NAMESPACE_NAME_LABEL] = old_meta.get("name", "")
    if kind in _GENERATION and out.get("spec") != old.get("spec"):
        meta["generation"] = int(old_meta.get("generation") or 0) + 1
    # Once deletion has begun, finalizers may only be removed, never added.
    if old_meta.get("deletionTimestamp"):
        before = list(old_meta.get("finalizers") or [])
        after = meta.get("finalizers") or []
        meta["finalizers"] = [f for f in after if f in before]
        if not meta["finalizers"]:
            meta.pop("finalizers")
    return out


def graceful_delete_period(obj: Obj, requested: int | None) -> int:
    """Seconds to wait before an object is removed from the store; 0 removes it now.

    Only pods bound to a node and not finished are deleted gracefully: their node's agent stops
    the containers and then deletes the pod for good (grace 0), as kubelet does.
    """
    if obj.get("kind") != "Pod":
        return 0
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
        return 0
    if requested is not None:
        return max(requested, 0)
    grace = spec.get("terminationGracePeriodSeconds", 30)
    return grace if isinstance(grace, int) and grace >= 0 else 30


def namespace_finalizers(obj: Obj) -> list[str]:
    spec = obj.get("spec") or {}
    return [f for f in (spec.get("finalizers") or []) if isinstance(f, str)]
