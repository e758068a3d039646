"""Defaulting of the networking kinds, as Kubernetes' SetDefaults_* functions do it
(pkg/apis/networking/v1/defaults.go, pkg/apis/discovery/v1/defaults.go).

Each defaulter mutates a decoded object in place before validation. Parts of the wrong JSON type
are left alone: validation reports them. Ingress has no defaults in v1 (pathType is required).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Obj = dict[str, Any]
Defaulter = Callable[[Obj], None]


def _dicts(value: Any) -> list[Obj]:
    """The objects in a list, or nothing when value is not a list."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _spec(obj: Obj) -> Obj | None:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else None


def default_network_policy(obj: Obj) -> None:
    """ports[].protocol is TCP; policyTypes, when empty, is Ingress, plus Egress when the
    policy has egress rules."""
    spec = _spec(obj)
    if spec is None:
        return
    for direction in ("ingress", "egress"):
        for rule in _dicts(spec.get(direction)):
            for port in _dicts(rule.get("ports")):
                if port.get("protocol") is None:
                    port["protocol"] = "TCP"
    if not spec.get("policyTypes"):
        egress = spec.get("egress")
        has_egress = isinstance(egress, list) and len(egress) > 0
        spec["policyTypes"] = ["Ingress", "Egress"] if has_egress else ["Ingress"]


def default_ingress_class(obj: Obj) -> None:
    """parameters.scope is Cluster when parameters are given without a scope."""
    spec = _spec(obj)
    parameters = spec.get("parameters") if spec is not None else None
    if isinstance(parameters, dict) and parameters.get("scope") is None:
        parameters["scope"] = "Cluster"


def default_endpoint_slice(obj: Obj) -> None:
    """ports[].name is "" and ports[].protocol TCP when unset."""
    for port in _dicts(obj.get("ports")):
        if port.get("name") is None:
            port["name"] = ""
        if port.get("protocol") is None:
            port["protocol"] = "TCP"


DEFAULTERS: dict[tuple[str, str], Defaulter] = {
    ("networking.k8s.io/v1", "NetworkPolicy"): default_network_policy,
    ("networking.k8s.io/v1", "IngressClass"): default_ingress_class,
    ("discovery.k8s.io/v1", "EndpointSlice"): default_endpoint_slice,
}
