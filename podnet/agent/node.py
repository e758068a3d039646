"""The Node object an agent registers, and the status it keeps posting (pure)."""

from __future__ import annotations

from typing import Any

from podnet import __version__

Obj = dict[str, Any]

VXLAN_MAC_ANNOTATION = "podnet.dev/vxlan-mac"
BACKEND_ANNOTATION = "podnet.dev/backend"


def node_object(name: str, ip: str, *, backend: str, cpu: int, memory_kib: int,
                kernel: str, os_image: str, arch: str) -> Obj:
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
              "kubernetes.io/arch": arch, "beta.kubernetes.io/os": "linux",
              "beta.kubernetes.io/arch": arch}
    capacity = {"cpu": str(cpu), "memory": f"{memory_kib}Ki", "pods": "250"}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels,
                     "annotations": {BACKEND_ANNOTATION: backend}},
        "spec": {},
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip},
                          {"type": "Hostname", "address": name}],
            "capacity": capacity, "allocatable": dict(capacity),
            "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "",
                         "kernelVersion": kernel, "osImage": os_image,
                         "containerRuntimeVersion": f"podnet://{__version__}",
                         "kubeletVersion": f"v1.37.0+podnet-{__version__}",
                         "kubeProxyVersion": "", "operatingSystem": "linux",
                         "architecture": arch},
            "conditions": [],
        },
    }


def ready_condition(ready: bool, reason: str, message: str, now: str,
                    previous: list[Obj] | None) -> list[Obj]:
    """The node's conditions with Ready set; lastTransitionTime changes only on a change."""
    status = "True" if ready else "False"
    old = {c.get("type"): c for c in previous or [] if isinstance(c, dict)}
    prior = old.get("Ready")
    since = prior["lastTransitionTime"] if prior and prior.get("status") == status and \
        prior.get("lastTransitionTime") else now
    out = [c for t, c in old.items() if t != "Ready"]
    out.append({"type": "Ready", "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": now, "lastTransitionTime": since})
    return out


def internal_ip(node: Obj) -> str | None:
    for a in (node.get("status") or {}).get("addresses") or []:
        if isinstance(a, dict) and a.get("type") == "InternalIP":
            return str(a.get("address"))
    return None
