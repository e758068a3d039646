"""Which EndpointSlices a Service should have, given its pods (pure).

This is the reconciler of kube-controller-manager's endpointslice controller, for the fields
podnet carries. `desired_slices` compares what a Service selects with the slices it already has
and says which slices to create, update and delete; the controller in
podnet/server/controllers/endpointslice.py only reads caches and writes what it is told.

The rules, as Kubernetes has them:

- Services without a selector, and ExternalName Services, are left alone: users write their
  slices themselves.
- A pod is an endpoint when the selector matches its labels in the Service's namespace, it has
  an IP of the slice's family and it is not terminal (Succeeded/Failed). Terminating pods stay,
  with `terminating: true`.
- Conditions: `serving` is the pod's Ready condition; `ready` is serving and not terminating,
  or always true with `publishNotReadyAddresses`.
- Slices are grouped by address family (the Service's ipFamilies) and by port set: a named
  targetPort is resolved per pod, and a pod whose containers don't declare the name lacks that
  port, so it lands in a slice with a smaller port set. At most 100 endpoints per slice.
- Changes are made with as few writes as possible: existing slices keep their names and are
  updated in place, new endpoints fill slices being written anyway before a new slice is made,
  a slice about to be deleted is reused rather than creating another, and a Service with no
  endpoints keeps one empty "placeholder" slice.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from podnet.api.validation.networking import parse_ip_sloppy

Obj = dict[str, Any]

CONTROLLER_NAME = "endpointslice-controller.k8s.io"
LABEL_SERVICE_NAME = "kubernetes.io/service-name"
LABEL_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
LABEL_HEADLESS = "service.kubernetes.io/headless"
LABEL_ZONE = "topology.kubernetes.io/zone"
MAX_ENDPOINTS_PER_SLICE = 100

_RESERVED_LABELS = (LABEL_SERVICE_NAME, LABEL_MANAGED_BY, LABEL_HEADLESS)
_API_VERSION = "discovery.k8s.io/v1"

PortKey = tuple[tuple[str, int, str, str], ...]
EndpointKey = tuple[tuple[str, ...], str, str, str]


@dataclass
class SliceChanges:
    """What to write for one Service. `update` holds whole slices (with the resourceVersion
    they were read at); `create` slices have a generateName and no name. `skipped` names the
    pods left out because their node is unknown (the Service should be synced again when the
    node appears)."""

    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.create or self.update or self.delete)


# --- small accessors --------------------------------------------------------------------------

def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _meta(obj: Obj) -> Obj:
    return _dict(obj.get("metadata"))


def _labels(obj: Obj) -> dict[str, str]:
    return {str(k): str(v) for k, v in _dict(_meta(obj).get("labels")).items()}


def _spec(obj: Obj) -> Obj:
    return _dict(obj.get("spec"))


# --- services and selectors -------------------------------------------------------------------

def selector(service: Obj) -> dict[str, str] | None:
    """The Service's selector; None when it has none (an empty map selects nothing here, as an
    empty selector does in Kubernetes once stored)."""
    sel = _spec(service).get("selector")
    if not isinstance(sel, dict) or not sel:
        return None
    return {str(k): str(v) for k, v in sel.items()}


def manages(service: Obj) -> bool:
    """Whether the controller keeps this Service's slices: it has a selector and is not of type
    ExternalName."""
    return _spec(service).get("type") != "ExternalName" and selector(service) is not None


def selector_matches(sel: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """A map selector matches when every pair is among the labels."""
    return all(k in labels and labels[k] == v for k, v in sel.items())


def selects(service: Obj, pod: Obj) -> bool:
    """The Service manages slices and its selector picks `pod` (in its own namespace)."""
    sel = selector(service)
    if sel is None or not manages(service):
        return False
    if _meta(pod).get("namespace") != _meta(service).get("namespace"):
        return False
    return selector_matches(sel, _labels(pod))


def is_headless(service: Obj) -> bool:
    cluster_ip = _spec(service).get("clusterIP")
    return cluster_ip in (None, "", "None")


def address_types(service: Obj) -> list[str]:
    """The slice address types a Service gets: from spec.ipFamilies; failing that, the family
    of its cluster IP; failing that (headless), both."""
    spec = _spec(service)
    families = [f for f in _list(spec.get("ipFamilies")) if f in ("IPv4", "IPv6")]
    if families:
        return sorted(set(families), key=families.index)
    cluster_ip = spec.get("clusterIP")
    if isinstance(cluster_ip, str) and cluster_ip not in ("", "None"):
        return ["IPv6" if ":" in cluster_ip else "IPv4"]
    return ["IPv4", "IPv6"]


# --- slices ------------------------------------------------------------------------------------

def slice_service_name(endpoint_slice: Obj) -> str | None:
    """The Service a slice belongs to, when this controller manages it; None otherwise."""
    labels = _labels(endpoint_slice)
    if labels.get(LABEL_MANAGED_BY) != CONTROLLER_NAME:
        return None
    return labels.get(LABEL_SERVICE_NAME) or None


def _managed_for(endpoint_slice: Obj, namespace: Any, name: Any) -> bool:
    return bool(_meta(endpoint_slice).get("namespace") == namespace) and \
        slice_service_name(endpoint_slice) == name


def owned_by(endpoint_slice: Obj, service: Obj) -> bool:
    """The slice has an owner reference to this very Service (same uid)."""
    uid = _meta(service).get("uid")
    return any(isinstance(ref, dict) and bool(ref.get("uid") == uid) and
               ref.get("kind") == "Service" and ref.get("apiVersion") == "v1"
               for ref in _list(_meta(endpoint_slice).get("ownerReferences")))


def slice_labels(service: Obj) -> dict[str, str]:
    """The Service's own labels (without the reserved ones) plus the slice labels: the service
    name, the managing controller, and `service.kubernetes.io/headless` for headless ones."""
    labels = {k: v for k, v in _labels(service).items() if k not in _RESERVED_LABELS}
    if is_headless(service):
        labels[LABEL_HEADLESS] = ""
    labels[LABEL_SERVICE_NAME] = str(_meta(service).get("name", ""))
    labels[LABEL_MANAGED_BY] = CONTROLLER_NAME
    return labels


def owner_reference(service: Obj) -> Obj:
    meta = _meta(service)
    return {"apiVersion": "v1", "kind": "Service", "name": meta.get("name", ""),
            "uid": meta.get("uid", ""), "controller": True, "blockOwnerDeletion": True}


def new_slice(service: Obj, ports: list[Obj], address_type: str) -> Obj:
    """An empty slice for `service` (named by the API server from `<service>-`)."""
    meta = _meta(service)
    return {"apiVersion": _API_VERSION, "kind": "EndpointSlice",
            "metadata": {"generateName": f"{meta.get('name', '')}-",
                         "namespace": meta.get("namespace"),
                         "labels": slice_labels(service),
                         "ownerReferences": [owner_reference(service)]},
            "addressType": address_type,
            "endpoints": [],
            "ports": copy.deepcopy(ports)}


def stale_slices(namespace: str, name: str, service: Obj | None,
                 slices: Iterable[Obj]) -> list[Obj]:
    """Managed slices of Service `namespace/name` that no live Service owns: all of them when
    the Service is gone, those of an older Service of the same name otherwise. (Kubernetes'
    garbage collector removes these; podnet has none, so the controller does.)"""
    out = []
    for s in slices:
        if not _managed_for(s, namespace, name):
            continue
        if service is None or not owned_by(s, service):
            out.append(s)
    return out


# --- pods --------------------------------------------------------------------------------------

def pod_ready(pod: Obj) -> bool:
    """The pod's Ready condition is True."""
    for c in _list(_dict(pod.get("status")).get("conditions")):
        if isinstance(c, dict) and c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def pod_terminal(pod: Obj) -> bool:
    return _dict(pod.get("status")).get("phase") in ("Succeeded", "Failed")


def pod_ips(pod: Obj) -> list[str]:
    """status.podIPs, or status.podIP when the list is empty."""
    status = _dict(pod.get("status"))
    ips = [str(e.get("ip")) for e in _list(status.get("podIPs"))
           if isinstance(e, dict) and e.get("ip")]
    if not ips and isinstance(status.get("podIP"), str) and status["podIP"]:
        ips = [status["podIP"]]
    return ips


def in_endpoints(pod: Obj) -> bool:
    """A pod can be an endpoint: it has an IP and is not terminal (terminating pods can)."""
    return not pod_terminal(pod) and bool(pod_ips(pod))


def _addresses(pod: Obj, address_type: str) -> list[str]:
    """The pod's IPs of one family, written canonically."""
    out = []
    for text in pod_ips(pod):
        ip = parse_ip_sloppy(text)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip is None:
            continue
        if (ip.version == 4) == (address_type == "IPv4"):
            out.append(str(ip))
    return out


def find_port(pod: Obj, service_port: Obj) -> int | None:
    """The pod port a Service port targets: a number as is; a name looked up among the ports
    of the pod's containers (and sidecar init containers) with the same protocol; None when
    no container declares it."""
    target = service_port.get("targetPort")
    if target is None or target == 0 or target == "":
        target = service_port.get("port")
    if isinstance(target, int) and not isinstance(target, bool):
        return target
    if not isinstance(target, str):
        return None
    protocol = service_port.get("protocol") or "TCP"
    spec = _spec(pod)
    containers = [c for c in _list(spec.get("containers")) if isinstance(c, dict)]
    containers += [c for c in _list(spec.get("initContainers"))
                   if isinstance(c, dict) and c.get("restartPolicy") == "Always"]
    for c in containers:
        for p in _list(c.get("ports")):
            if isinstance(p, dict) and p.get("name") == target and \
                    (p.get("protocol") or "TCP") == protocol and \
                    isinstance(p.get("containerPort"), int):
                return int(p["containerPort"])
    return None


def endpoint_ports(service: Obj, pod: Obj) -> list[Obj]:
    """The slice ports for one pod: each Service port whose target the pod has."""
    out: list[Obj] = []
    for sp in _list(_spec(service).get("ports")):
        if not isinstance(sp, dict):
            continue
        number = find_port(pod, sp)
        if number is None:
            continue
        port: Obj = {"name": sp.get("name") or "", "port": number,
                     "protocol": sp.get("protocol") or "TCP"}
        if sp.get("appProtocol"):
            port["appProtocol"] = sp["appProtocol"]
        out.append(port)
    return out


def pod_endpoint(pod: Obj, service: Obj, address_type: str, node: Obj | None = None) -> Obj:
    """The endpoint for a pod in a slice of `address_type`."""
    meta, spec = _meta(pod), _spec(pod)
    serving = pod_ready(pod)
    terminating = bool(meta.get("deletionTimestamp"))
    ready = bool(_spec(service).get("publishNotReadyAddresses")) or (serving and not terminating)
    ref: Obj = {"kind": "Pod", "namespace": meta.get("namespace", ""), "name": meta.get("name", "")}
    if meta.get("uid"):
        ref["uid"] = meta["uid"]
    ep: Obj = {"addresses": _addresses(pod, address_type),
               "conditions": {"ready": ready, "serving": serving, "terminating": terminating}}
    hostname = spec.get("hostname")
    svc_meta = _meta(service)
    if isinstance(hostname, str) and hostname and spec.get("subdomain") == svc_meta.get("name") \
            and meta.get("namespace") == svc_meta.get("namespace"):
        ep["hostname"] = hostname
    ep["targetRef"] = ref
    if isinstance(spec.get("nodeName"), str) and spec["nodeName"]:
        ep["nodeName"] = spec["nodeName"]
    zone = _labels(node).get(LABEL_ZONE) if node is not None else None
    if zone:
        ep["zone"] = zone
    return ep


def endpoint_inputs(pod: Obj) -> Hashable:
    """Everything of a pod that its endpoints or Service membership depend on: when this is
    unchanged between two versions of a pod, no slice needs another look."""
    meta, spec = _meta(pod), _spec(pod)
    ports = tuple((str(p.get("name")), str(p.get("protocol") or "TCP"), str(p.get("containerPort")))
                  for c in _list(spec.get("containers")) + _list(spec.get("initContainers"))
                  if isinstance(c, dict)
                  for p in _list(c.get("ports")) if isinstance(p, dict) and p.get("name"))
    return (tuple(sorted(_labels(pod).items())), str(meta.get("uid", "")),
            bool(meta.get("deletionTimestamp")), str(spec.get("hostname", "")),
            str(spec.get("subdomain", "")), str(spec.get("nodeName", "")), tuple(pod_ips(pod)),
            pod_ready(pod), pod_terminal(pod), ports)


# --- comparing ---------------------------------------------------------------------------------

def port_key(ports: Iterable[Any]) -> PortKey:
    """A port set, independent of order."""
    out = []
    for p in ports:
        p = _dict(p)
        number = p.get("port")
        out.append((str(p.get("name") or ""), number if isinstance(number, int) else -1,
                    str(p.get("protocol") or "TCP"), str(p.get("appProtocol") or "")))
    return tuple(sorted(out))


def endpoint_key(ep: Obj) -> EndpointKey:
    """What makes an endpoint the same endpoint: its addresses, hostname and pod."""
    ref = _dict(ep.get("targetRef"))
    return (tuple(sorted(str(a) for a in _list(ep.get("addresses")))),
            str(ep.get("hostname") or ""), str(ref.get("namespace") or ""),
            str(ref.get("name") or ""))


def _endpoint_rest(ep: Obj) -> tuple[Any, ...]:
    conditions = _dict(ep.get("conditions"))
    ref = {k: v for k, v in _dict(ep.get("targetRef")).items() if k != "resourceVersion"}
    return (ep.get("nodeName"), ep.get("zone"), conditions.get("ready"),
            conditions.get("serving"), conditions.get("terminating"), sorted(ref.items()))


def endpoints_equal(a: Obj, b: Obj) -> bool:
    """Two endpoints of the same key say the same thing (node, zone, conditions, pod)."""
    return _endpoint_rest(a) == _endpoint_rest(b)


def _is_placeholder_of(existing: Obj, placeholder: Obj) -> bool:
    """An existing slice is the empty slice we would make anyway."""
    return _meta(existing).get("namespace") == _meta(placeholder).get("namespace") and \
        _labels(existing) == _labels(placeholder) and \
        _list(_meta(existing).get("ownerReferences")) == \
        _list(_meta(placeholder).get("ownerReferences")) and \
        existing.get("addressType") == placeholder.get("addressType") and \
        not _list(existing.get("ports")) and not _list(existing.get("endpoints"))


# --- reconciling -------------------------------------------------------------------------------

def desired_slices(service: Obj, pods: Iterable[Obj], existing: Iterable[Obj],
                   nodes: Mapping[str, Obj] | None = None,
                   max_endpoints: int = MAX_ENDPOINTS_PER_SLICE) -> SliceChanges:
    """The writes that bring `service`'s slices up to date.

    `pods` may hold any pods (those the Service selects are picked out); `existing` any slices
    (those this controller manages for the Service are picked out; slices being deleted are
    ignored). With `nodes` (name -> Node), endpoints get their node's zone and, as in
    Kubernetes, pods on a node that doesn't exist are left out unless the Service publishes
    not-ready addresses. Inputs are not modified."""
    changes = SliceChanges()
    if not manages(service):
        return changes
    meta = _meta(service)
    ns, name = meta.get("namespace"), meta.get("name")
    types = address_types(service)
    by_type: dict[str, list[Obj]] = {t: [] for t in types}
    for s in existing:
        if not _managed_for(s, ns, name) or _meta(s).get("deletionTimestamp"):
            continue
        if s.get("addressType") in by_type:
            by_type[s["addressType"]].append(s)
        else:
            changes.delete.append(s)
    selected = sorted((p for p in pods if selects(service, p)),
                      key=lambda p: str(_meta(p).get("name", "")))
    for address_type in types:
        _reconcile_type(service, selected, by_type[address_type], address_type, nodes,
                        max_endpoints, changes)
    return changes


def _reconcile_type(service: Obj, pods: list[Obj], slices: list[Obj], address_type: str,
                    nodes: Mapping[str, Obj] | None, max_endpoints: int,
                    changes: SliceChanges) -> None:
    create: list[Obj] = []
    update: list[Obj] = []
    delete: list[Obj] = []
    existing_by_ports: dict[PortKey, list[Obj]] = {}
    for s in sorted(slices, key=lambda s: str(_meta(s).get("name", ""))):
        if owned_by(s, service):
            existing_by_ports.setdefault(port_key(_list(s.get("ports"))), []).append(s)
        else:
            delete.append(s)

    wanted: dict[PortKey, dict[EndpointKey, Obj]] = {}
    wanted_ports: dict[PortKey, list[Obj]] = {}
    publish = bool(_spec(service).get("publishNotReadyAddresses"))
    for pod in pods:
        if not in_endpoints(pod):
            continue
        ports = endpoint_ports(service, pod)
        key = port_key(ports)
        endpoints = wanted.setdefault(key, {})
        wanted_ports.setdefault(key, ports)
        node = None
        if nodes is not None:
            node_name = str(_spec(pod).get("nodeName") or "")
            node = nodes.get(node_name)
            if node is None and not publish:
                meta = _meta(pod)
                changes.skipped.append(f"{meta.get('namespace')}/{meta.get('name')}")
                continue
        ep = pod_endpoint(pod, service, address_type, node)
        if ep["addresses"]:
            endpoints[endpoint_key(ep)] = ep

    for key, endpoints in wanted.items():
        c, u, d = _reconcile_ports(service, existing_by_ports.get(key, []), endpoints,
                                   wanted_ports[key], address_type, max_endpoints)
        create += c
        update += u
        delete += d
    for key, old in existing_by_ports.items():
        if key not in wanted:
            delete += old

    if len(slices) == len(delete) and not create:
        placeholder = new_slice(service, [], address_type)
        if len(delete) == 1 and _is_placeholder_of(delete[0], placeholder):
            delete = []
        else:
            create.append(placeholder)

    _reuse_deleted(service, create, update, delete)
    if _meta(service).get("deletionTimestamp"):
        create = []
    changes.create += create
    changes.update += update
    changes.delete += delete


def _reconcile_ports(service: Obj, existing: list[Obj], wanted: dict[EndpointKey, Obj],
                     ports: list[Obj], address_type: str,
                     max_endpoints: int) -> tuple[list[Obj], list[Obj], list[Obj]]:
    """The slices of one port set: keep what is still wanted in the slices where it is, then
    put new endpoints into slices being written anyway, then into the one unchanged slice that
    they fill best, then into new slices."""
    labels = slice_labels(service)
    by_name: dict[str, Obj] = {}
    unchanged: list[str] = []
    to_update: list[str] = []
    to_delete: list[str] = []
    for s in existing:
        name = str(_meta(s).get("name", ""))
        by_name[name] = s
        old_endpoints = [e for e in _list(s.get("endpoints")) if isinstance(e, dict)]
        kept: list[Obj] = []
        changed = False
        for ep in old_endpoints:
            got = wanted.pop(endpoint_key(ep), None)
            if got is not None:
                kept.append(got)
                changed = changed or not endpoints_equal(got, ep)
        if changed or len(kept) != len(old_endpoints):
            if not kept:
                to_delete.append(name)
                continue
            by_name[name] = _with(s, kept, labels)
            to_update.append(name)
        elif _labels(s) != labels:
            by_name[name] = _with(s, kept, labels)
            to_update.append(name)
        else:
            unchanged.append(name)

    pending = list(wanted.values())
    if pending and to_update:
        fullest = sorted(to_update, key=lambda n: (-len(by_name[n]["endpoints"]), n))
        for name in fullest:
            endpoints = by_name[name]["endpoints"]
            room = max(0, max_endpoints - len(endpoints))
            endpoints += pending[:room]
            pending = pending[room:]

    create: list[Obj] = []
    while pending:
        target: Obj | None = None
        if len(pending) < max_endpoints and unchanged:
            best = _slice_to_fill([by_name[n] for n in unchanged], len(pending), max_endpoints)
            if best is not None:
                name = str(_meta(best)["name"])
                target = by_name[name] = _with(best, list(_list(best.get("endpoints"))), labels)
                unchanged.remove(name)
                to_update.append(name)
        if target is None:
            target = new_slice(service, ports, address_type)
            create.append(target)
        room = max(0, max_endpoints - len(target["endpoints"]))
        target["endpoints"] += pending[:room]
        pending = pending[room:]
    return (create, [by_name[n] for n in to_update], [by_name[n] for n in to_delete])


def _with(endpoint_slice: Obj, endpoints: list[Obj], labels: dict[str, str]) -> Obj:
    """A copy of a slice with other endpoints and labels."""
    out = copy.deepcopy(endpoint_slice)
    out["endpoints"] = copy.deepcopy(endpoints)
    out.setdefault("metadata", {})["labels"] = dict(labels)
    return out


def _slice_to_fill(slices: list[Obj], count: int, max_endpoints: int) -> Obj | None:
    """The slice that adding `count` endpoints brings closest to full without overflowing."""
    best, best_room = None, max_endpoints
    for s in slices:
        room = max_endpoints - (count + len(_list(s.get("endpoints"))))
        if 0 <= room < best_room:
            best, best_room = s, room
            if room == 0:
                break
    return best


def _reuse_deleted(service: Obj, create: list[Obj], update: list[Obj],
                   delete: list[Obj]) -> None:
    """Turn each create + delete pair into one update of the slice to be deleted (when it is
    this Service's and of the same address type), as Kubernetes does to save writes."""
    i = 0
    while i < len(delete) and create:
        old = delete[i]
        if old.get("addressType") == create[-1].get("addressType") and owned_by(old, service):
            new = create.pop()
            old_meta = _meta(old)
            meta = new["metadata"]
            meta.pop("generateName", None)
            meta["name"] = old_meta.get("name")
            if old_meta.get("resourceVersion"):
                meta["resourceVersion"] = old_meta["resourceVersion"]
            update.append(new)
            delete.pop(i)
        else:
            i += 1
