"""Server-side printing: the `meta.k8s.io/v1` Table that `kubectl get` asks for.

kubectl sends `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` and prints whatever
columns and cells the server returns, so the columns, the cells and their wording here follow
kube-apiserver's printers for each kind podnet serves. Like kube-apiserver, every row carries
the wide (priority 1) cells as well; kubectl drops them unless `-o wide`.

Ages are rendered like apimachinery's HumanDuration, relative to the `now` argument: this
module never reads the clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from podnet.api import selectors

__all__ = ["column_definitions", "human_duration", "row", "table", "translate_timestamp_since"]

Cells = list[Any]
Printer = Callable[[dict[str, Any], datetime], Cells]


# ---------------------------------------------------------------------------------------------
# Small readers for untyped JSON objects
# ---------------------------------------------------------------------------------------------

def _dig(obj: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _str(obj: Any, *path: str) -> str:
    value = _dig(obj, *path)
    return value if isinstance(value, str) else ""


def _int(obj: Any, *path: str) -> int:
    value = _dig(obj, *path)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _list(obj: Any, *path: str) -> list[Any]:
    value = _dig(obj, *path)
    return value if isinstance(value, list) else []


def _map(obj: Any, *path: str) -> dict[str, Any]:
    value = _dig(obj, *path)
    return value if isinstance(value, dict) else {}


def _name(obj: dict[str, Any]) -> str:
    return _str(obj, "metadata", "name")


# ---------------------------------------------------------------------------------------------
# Time
# ---------------------------------------------------------------------------------------------

def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (metav1.Time or MicroTime) as an aware datetime; None if unset."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _trunc_div(a: int, b: int) -> int:
    """Go's integer division, which truncates toward zero."""
    q = abs(a) // b
    return q if a >= 0 else -q


def human_duration(d: timedelta) -> str:
    """apimachinery's HumanDuration: two or three significant figures of a duration."""
    micros = (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds
    seconds = _trunc_div(micros, 1_000_000)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if dy == 0 else f"{years}y{dy}d"
    return f"{hours // 24 // 365}y"


def _aware(now: datetime) -> datetime:
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def translate_timestamp_since(value: Any, now: datetime) -> str:
    """How old a timestamp is, as kubectl's AGE column shows it; `<unknown>` when unset."""
    when = parse_time(value)
    if when is None:
        return "<unknown>"
    return human_duration(_aware(now) - when)


def _age(obj: dict[str, Any], now: datetime) -> str:
    return translate_timestamp_since(_dig(obj, "metadata", "creationTimestamp"), now)


# ---------------------------------------------------------------------------------------------
# Column definitions
# ---------------------------------------------------------------------------------------------

def _col(name: str, description: str, *, type_: str = "string", fmt: str = "",
         priority: int = 0) -> dict[str, Any]:
    return {"name": name, "type": type_, "format": fmt, "description": description,
            "priority": priority}


_NAME_DESC = ("The object's name, unique within its namespace (or the cluster for "
              "cluster-scoped kinds).")
_AGE_DESC = "Time since the object was created (metadata.creationTimestamp)."

NAME = _col("Name", _NAME_DESC, fmt="name")
AGE = _col("Age", _AGE_DESC)

_COLUMNS: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("v1", "Pod"): [
        NAME,
        _col("Ready", "Containers ready to serve traffic, out of all containers."),
        _col("Status", "A one-word summary of the pod's state, as kubectl shows it."),
        _col("Restarts", "Container restarts in this pod, and how long ago the last one was."),
        AGE,
        _col("IP", "The pod's primary IP address (status.podIPs[0]).", priority=1),
        _col("Node", "The node the pod is bound to (spec.nodeName).", priority=1),
        _col("Nominated Node", "The node preemption nominated for the pod, if any.",
             priority=1),
        _col("Readiness Gates", "Readiness gate conditions that are true, out of all gates.",
             priority=1),
    ],
    ("v1", "Service"): [
        NAME,
        _col("Type", "How the service is exposed (spec.type)."),
        _col("Cluster-IP", "The service's virtual IP in the cluster (spec.clusterIPs[0])."),
        _col("External-IP", "Addresses the service is reachable at from outside the cluster."),
        _col("Port(s)", "The service's ports, with node ports, and their protocols."),
        AGE,
        _col("Selector", "The labels of the pods that back the service.", priority=1),
    ],
    ("v1", "Namespace"): [
        NAME,
        _col("Status", "The phase of the namespace: Active or Terminating."),
        AGE,
    ],
    ("v1", "Node"): [
        NAME,
        _col("Status", "Whether the node is ready, and whether it takes new pods."),
        _col("Roles", "The roles given to the node by node-role labels."),
        AGE,
        _col("Version", "The version of the node's kubelet."),
        _col("Internal-IP", "The node's first internal address.", priority=1),
        _col("External-IP", "The node's first external address.", priority=1),
        _col("OS-Image", "The operating system the node reports.", priority=1),
        _col("Kernel-Version", "The kernel version the node reports.", priority=1),
        _col("Container-Runtime", "The container runtime and version the node reports.",
             priority=1),
    ],
    ("v1", "Secret"): [
        NAME,
        _col("Type", "The kind of data the secret holds (type)."),
        _col("Data", "How many keys the secret holds."),
        AGE,
    ],
    ("v1", "Event"): [
        _col("Last Seen", "How long ago the event last occurred."),
        _col("Type", "The type of the event: Normal or Warning."),
        _col("Reason", "A short, machine-readable reason for the event."),
        _col("Object", "The object the event is about, as kind/name."),
        _col("Subobject", "The part of the object the event is about (fieldPath).",
             priority=1),
        _col("Source", "The component, and host, that reported the event.", priority=1),
        _col("Message", "What happened, in words."),
        _col("First Seen", "How long ago the event first occurred.", priority=1),
        _col("Count", "How many times the event occurred.", priority=1),
        _col("Name", _NAME_DESC, fmt="name", priority=1),
    ],
    ("discovery.k8s.io/v1", "EndpointSlice"): [
        NAME,
        _col("AddressType", "The family of the addresses in the slice."),
        _col("Ports", "The ports of the endpoints in the slice."),
        _col("Endpoints", "The addresses of the endpoints in the slice."),
        AGE,
    ],
    ("networking.k8s.io/v1", "Ingress"): [
        NAME,
        _col("Class", "The IngressClass that handles this ingress."),
        _col("Hosts", "The host names the ingress rules match."),
        _col("Address", "The addresses the ingress is reachable at."),
        _col("Ports", "The ports the ingress serves: 80, and 443 with TLS."),
        AGE,
    ],
    ("networking.k8s.io/v1", "IngressClass"): [
        NAME,
        _col("Controller", "The controller that implements this class."),
        _col("Parameters", "The resource holding the class's extra parameters."),
        AGE,
    ],
    ("networking.k8s.io/v1", "NetworkPolicy"): [
        NAME,
        _col("Pod-Selector", "The pods the policy applies to."),
        AGE,
    ],
}

# Kinds without a printer: the name and how old the object is.
_FALLBACK_COLUMNS = [NAME, _col("Age", _AGE_DESC, type_="date")]


def column_definitions(api_version: str, kind: str) -> list[dict[str, Any]]:
    """The Table columns of a kind, wide ones (priority 1) included."""
    return [dict(c) for c in _COLUMNS.get((api_version, kind), _FALLBACK_COLUMNS)]


# ---------------------------------------------------------------------------------------------
# Pod
# ---------------------------------------------------------------------------------------------

class _PodState:
    """The running tallies of the Status/Ready/Restarts computation."""

    def __init__(self, obj: dict[str, Any]) -> None:
        phase = _str(obj, "status", "phase")
        self.phase = phase
        self.reason = _str(obj, "status", "reason") or phase
        self.ready = 0
        self.restarts = 0
        self.last_restart: datetime | None = None


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return b if b > a else a


def _finished_at(status: dict[str, Any]) -> datetime | None:
    return parse_time(_dig(status, "lastState", "terminated", "finishedAt"))


def _condition_true(obj: dict[str, Any], ctype: str) -> bool:
    """The status of the first condition of that type is True."""
    for cond in _list(obj, "status", "conditions"):
        if isinstance(cond, dict) and cond.get("type") == ctype:
            return cond.get("status") == "True"
    return False


def _restartable_init_names(obj: dict[str, Any]) -> set[str]:
    """Init containers with restartPolicy Always: sidecars, counted as regular containers."""
    return {_str(c, "name") for c in _list(obj, "spec", "initContainers")
            if isinstance(c, dict) and c.get("restartPolicy") == "Always"}


def _terminated_reason(term: dict[str, Any], prefix: str) -> str:
    if term.get("reason"):
        return prefix + _str(term, "reason")
    if _int(term, "signal") != 0:
        return f"{prefix}Signal:{_int(term, 'signal')}"
    return f"{prefix}ExitCode:{_int(term, 'exitCode')}"


def _walk_init_containers(obj: dict[str, Any], st: _PodState,
                          sidecars: set[str]) -> tuple[bool, int, datetime | None]:
    """Init containers: their restarts, and the Init:... status while they have not all run.

    Returns (initializing, sidecar restarts, sidecar last restart)."""
    sidecar_restarts = 0
    sidecar_last: datetime | None = None
    total = len(_list(obj, "spec", "initContainers"))
    for i, cs in enumerate(_list(obj, "status", "initContainerStatuses")):
        cs = cs if isinstance(cs, dict) else {}
        count = _int(cs, "restartCount")
        st.restarts += count
        st.last_restart = _later(st.last_restart, _finished_at(cs))
        is_sidecar = _str(cs, "name") in sidecars
        if is_sidecar:
            sidecar_restarts += count
            sidecar_last = _later(sidecar_last, _finished_at(cs))
        term = _map(cs, "state", "terminated")
        waiting_reason = _str(cs, "state", "waiting", "reason")
        if _dig(cs, "state", "terminated") is not None and _int(term, "exitCode") == 0:
            continue
        if is_sidecar and cs.get("started") is True:
            if cs.get("ready") is True:
                st.ready += 1
            continue
        if _dig(cs, "state", "terminated") is not None:
            st.reason = _terminated_reason(term, "Init:")
        elif waiting_reason and waiting_reason != "PodInitializing":
            st.reason = "Init:" + waiting_reason
        else:
            st.reason = f"Init:{i}/{total}"
        return True, sidecar_restarts, sidecar_last
    return False, sidecar_restarts, sidecar_last


def _walk_containers(obj: dict[str, Any], st: _PodState) -> None:
    """Regular containers, last to first: the first problem found wins the Status."""
    has_running = False
    for cs in reversed(_list(obj, "status", "containerStatuses")):
        cs = cs if isinstance(cs, dict) else {}
        st.restarts += _int(cs, "restartCount")
        st.last_restart = _later(st.last_restart, _finished_at(cs))
        waiting_reason = _str(cs, "state", "waiting", "reason")
        terminated = _dig(cs, "state", "terminated")
        if waiting_reason:
            st.reason = waiting_reason
        elif isinstance(terminated, dict):
            st.reason = _terminated_reason(terminated, "")
        elif cs.get("ready") is True and _dig(cs, "state", "running") is not None:
            has_running = True
            st.ready += 1
    if st.reason == "Completed" and has_running:
        st.reason = "Running" if _condition_true(obj, "Ready") else "NotReady"


def _pod_state(obj: dict[str, Any]) -> _PodState:
    st = _PodState(obj)
    for cond in _list(obj, "status", "conditions"):
        if (isinstance(cond, dict) and cond.get("type") == "PodScheduled"
                and cond.get("reason") == "SchedulingGated"):
            st.reason = "SchedulingGated"
    sidecars = _restartable_init_names(obj)
    initializing, sidecar_restarts, sidecar_last = _walk_init_containers(obj, st, sidecars)
    if not initializing or _condition_true(obj, "Initialized"):
        st.restarts = sidecar_restarts
        st.last_restart = sidecar_last
        _walk_containers(obj, st)
    deleting = _dig(obj, "metadata", "deletionTimestamp") is not None
    if deleting and _str(obj, "status", "reason") == "NodeLost":
        st.reason = "Unknown"
    elif deleting and st.phase not in ("Succeeded", "Failed"):
        st.reason = "Terminating"
    return st


def _pod_ip(obj: dict[str, Any]) -> str:
    ips = _list(obj, "status", "podIPs")
    if ips:
        return _str(ips[0], "ip")
    return _str(obj, "status", "podIP")


def _readiness_gates(obj: dict[str, Any]) -> str:
    gates = _list(obj, "spec", "readinessGates")
    if not gates:
        return "<none>"
    true = 0
    for gate in gates:
        ctype = _str(gate, "conditionType")
        for cond in _list(obj, "status", "conditions"):
            if isinstance(cond, dict) and cond.get("type") == ctype:
                true += cond.get("status") == "True"
                break
    return f"{true}/{len(gates)}"


def _print_pod(obj: dict[str, Any], now: datetime) -> Cells:
    st = _pod_state(obj)
    total = len(_list(obj, "spec", "containers")) + len(_restartable_init_names(obj))
    restarts = str(st.restarts)
    if st.restarts != 0 and st.last_restart is not None:
        restarts = f"{st.restarts} ({human_duration(_aware(now) - st.last_restart)} ago)"
    return [
        _name(obj), f"{st.ready}/{total}", st.reason, restarts, _age(obj, now),
        _pod_ip(obj) or "<none>",
        _str(obj, "spec", "nodeName") or "<none>",
        _str(obj, "status", "nominatedNodeName") or "<none>",
        _readiness_gates(obj),
    ]


def _pod_conditions(obj: dict[str, Any]) -> list[dict[str, str]]:
    """Row conditions: a pod that has run to its end is marked Completed."""
    phase = _str(obj, "status", "phase")
    if phase == "Succeeded":
        message = "The pod has completed successfully."
    elif phase == "Failed":
        message = "The pod failed."
    else:
        return []
    return [{"type": "Completed", "status": "True", "reason": phase, "message": message}]


# ---------------------------------------------------------------------------------------------
# Service
# ---------------------------------------------------------------------------------------------

def _lb_ingress(obj: dict[str, Any]) -> str:
    """The load balancer's IPs or host names, sorted, without duplicates."""
    found: set[str] = set()
    for ing in _list(obj, "status", "loadBalancer", "ingress"):
        value = _str(ing, "ip") or _str(ing, "hostname")
        if value:
            found.add(value)
    return ",".join(sorted(found))


def _service_external_ip(obj: dict[str, Any]) -> str:
    svc_type = _str(obj, "spec", "type")
    external = [x for x in _list(obj, "spec", "externalIPs") if isinstance(x, str)]
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if svc_type == "LoadBalancer":
        lb = _lb_ingress(obj)
        if external:
            return ",".join(([*lb.split(",")] if lb else []) + external)
        return lb or "<pending>"
    if svc_type == "ExternalName":
        return _str(obj, "spec", "externalName")
    return "<unknown>"


def _service_ports(obj: dict[str, Any]) -> str:
    pieces = []
    for p in _list(obj, "spec", "ports"):
        protocol = _str(p, "protocol") or "TCP"
        node_port = _int(p, "nodePort")
        if node_port > 0:
            pieces.append(f"{_int(p, 'port')}:{node_port}/{protocol}")
        else:
            pieces.append(f"{_int(p, 'port')}/{protocol}")
    return ",".join(pieces) or "<none>"


def _format_labels(labels: dict[str, Any]) -> str:
    """labels.FormatLabels: `k=v` pairs sorted by key, or `<none>`."""
    text = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return text or "<none>"


def _print_service(obj: dict[str, Any], now: datetime) -> Cells:
    cluster_ips = _list(obj, "spec", "clusterIPs")
    cluster_ip = cluster_ips[0] if cluster_ips else _str(obj, "spec", "clusterIP")
    cluster_ip = cluster_ip if isinstance(cluster_ip, str) else ""
    return [
        _name(obj), _str(obj, "spec", "type"), cluster_ip or "<none>",
        _service_external_ip(obj), _service_ports(obj), _age(obj, now),
        _format_labels(_map(obj, "spec", "selector")),
    ]


# ---------------------------------------------------------------------------------------------
# Namespace, Node, Secret, Event
# ---------------------------------------------------------------------------------------------

def _print_namespace(obj: dict[str, Any], now: datetime) -> Cells:
    return [_name(obj), _str(obj, "status", "phase"), _age(obj, now)]


_ROLE_PREFIX = "node-role.kubernetes.io/"
_ROLE_LABEL = "kubernetes.io/role"


def _node_roles(obj: dict[str, Any]) -> str:
    roles: set[str] = set()
    for k, v in _map(obj, "metadata", "labels").items():
        if k.startswith(_ROLE_PREFIX) and k[len(_ROLE_PREFIX):]:
            roles.add(k[len(_ROLE_PREFIX):])
        elif k == _ROLE_LABEL and v:
            roles.add(str(v))
    return ",".join(sorted(roles)) or "<none>"


def _node_status(obj: dict[str, Any]) -> str:
    status = "Unknown"
    for cond in _list(obj, "status", "conditions"):
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            status = "Ready" if cond.get("status") == "True" else "NotReady"
    if _dig(obj, "spec", "unschedulable") is True:
        status += ",SchedulingDisabled"
    return status


def _node_address(obj: dict[str, Any], kind: str) -> str:
    for addr in _list(obj, "status", "addresses"):
        if isinstance(addr, dict) and addr.get("type") == kind:
            return _str(addr, "address")
    return "<none>"


def _print_node(obj: dict[str, Any], now: datetime) -> Cells:
    info = _map(obj, "status", "nodeInfo")
    return [
        _name(obj), _node_status(obj), _node_roles(obj), _age(obj, now),
        _str(info, "kubeletVersion"),
        _node_address(obj, "InternalIP"), _node_address(obj, "ExternalIP"),
        _str(info, "osImage") or "<unknown>",
        _str(info, "kernelVersion") or "<unknown>",
        _str(info, "containerRuntimeVersion") or "<unknown>",
    ]


def _print_secret(obj: dict[str, Any], now: datetime) -> Cells:
    keys = set(_map(obj, "data")) | set(_map(obj, "stringData"))
    return [_name(obj), _str(obj, "type"), len(keys), _age(obj, now)]


def _event_source(obj: dict[str, Any]) -> str:
    component = _str(obj, "source", "component") or _str(obj, "reportingComponent")
    host = _str(obj, "source", "host") or _str(obj, "reportingInstance")
    return f"{component}, {host}" if host else component


def _print_event(obj: dict[str, Any], now: datetime) -> Cells:
    if parse_time(obj.get("firstTimestamp")) is not None:
        first = translate_timestamp_since(obj.get("firstTimestamp"), now)
    else:
        first = translate_timestamp_since(obj.get("eventTime"), now)
    last = first
    if parse_time(obj.get("lastTimestamp")) is not None:
        last = translate_timestamp_since(obj.get("lastTimestamp"), now)
    count = _int(obj, "count")
    series = obj.get("series")
    if isinstance(series, dict):
        last = translate_timestamp_since(series.get("lastObservedTime"), now)
        count = _int(series, "count")
    elif count == 0:
        count = 1  # singleton events of the events.k8s.io API leave the count unset
    kind = _str(obj, "involvedObject", "kind").lower()
    involved_name = _str(obj, "involvedObject", "name")
    target = f"{kind}/{involved_name}" if involved_name else kind
    return [
        last, _str(obj, "type"), _str(obj, "reason"), target,
        _str(obj, "involvedObject", "fieldPath"), _event_source(obj),
        _str(obj, "message").strip(), first, count, _name(obj),
    ]


# ---------------------------------------------------------------------------------------------
# EndpointSlice, Ingress, IngressClass, NetworkPolicy
# ---------------------------------------------------------------------------------------------

_LIST_MAX = 3


def _list_with_more(items: list[str]) -> str:
    """At most three items, then `+ N more...`; `<unset>` for none."""
    shown = ",".join(items[:_LIST_MAX])
    if len(items) > _LIST_MAX:
        return f"{shown} + {len(items) - _LIST_MAX} more..."
    return shown or "<unset>"


def _print_endpoint_slice(obj: dict[str, Any], now: datetime) -> Cells:
    ports = []
    for p in _list(obj, "ports"):
        p = p if isinstance(p, dict) else {}
        if isinstance(p.get("port"), int):
            ports.append(str(p["port"]))
        elif isinstance(p.get("name"), str):
            ports.append(p["name"])
        else:
            ports.append("*")
    addresses = [a for ep in _list(obj, "endpoints") for a in _list(ep, "addresses")
                 if isinstance(a, str)]
    return [_name(obj), _str(obj, "addressType"), _list_with_more(ports),
            _list_with_more(addresses), _age(obj, now)]


def _ingress_hosts(obj: dict[str, Any]) -> str:
    """Up to three rule hosts; once three are listed, any further rule makes `+ N more...`
    (N counts rules, not hosts, as kubectl does)."""
    rules = _list(obj, "spec", "rules")
    hosts: list[str] = []
    more = False
    for rule in rules:
        more = more or len(hosts) == _LIST_MAX
        if not more and _str(rule, "host"):
            hosts.append(_str(rule, "host"))
    if not hosts:
        return "*"
    text = ",".join(hosts)
    return f"{text} + {len(rules) - _LIST_MAX} more..." if more else text


def _print_ingress(obj: dict[str, Any], now: datetime) -> Cells:
    class_name = _dig(obj, "spec", "ingressClassName")
    return [
        _name(obj), class_name if isinstance(class_name, str) else "<none>",
        _ingress_hosts(obj), _lb_ingress(obj),
        "80, 443" if _list(obj, "spec", "tls") else "80", _age(obj, now),
    ]


def _print_ingress_class(obj: dict[str, Any], now: datetime) -> Cells:
    params = _dig(obj, "spec", "parameters")
    parameters = "<none>"
    if isinstance(params, dict):
        parameters = _str(params, "kind")
        if isinstance(params.get("apiGroup"), str):
            parameters += "." + params["apiGroup"]
        parameters += "/" + _str(params, "name")
    return [_name(obj), _str(obj, "spec", "controller"), parameters, _age(obj, now)]


def _format_label_selector(sel: Any) -> str:
    """metav1.FormatLabelSelector: the selector's string, `<none>` if it selects all pods."""
    try:
        text = str(selectors.label_selector_from_api(sel if isinstance(sel, dict) else None))
    except selectors.SelectorError:
        return "<error>"
    return text or "<none>"


def _print_network_policy(obj: dict[str, Any], now: datetime) -> Cells:
    return [_name(obj), _format_label_selector(_dig(obj, "spec", "podSelector") or {}),
            _age(obj, now)]


def _print_fallback(obj: dict[str, Any], now: datetime) -> Cells:
    return [_name(obj), _age(obj, now)]


_PRINTERS: dict[tuple[str, str], Printer] = {
    ("v1", "Pod"): _print_pod,
    ("v1", "Service"): _print_service,
    ("v1", "Namespace"): _print_namespace,
    ("v1", "Node"): _print_node,
    ("v1", "Secret"): _print_secret,
    ("v1", "Event"): _print_event,
    ("discovery.k8s.io/v1", "EndpointSlice"): _print_endpoint_slice,
    ("networking.k8s.io/v1", "Ingress"): _print_ingress,
    ("networking.k8s.io/v1", "IngressClass"): _print_ingress_class,
    ("networking.k8s.io/v1", "NetworkPolicy"): _print_network_policy,
}


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------

def row(api_version: str, kind: str, obj: dict[str, Any], now: datetime) -> list[Any]:
    """The cells of one object, one per column of `column_definitions`."""
    return _PRINTERS.get((api_version, kind), _print_fallback)(obj, now)


INCLUDE_OBJECT_VALUES = ("None", "Metadata", "Object")


def _row_object(obj: dict[str, Any], include_object: str) -> dict[str, Any] | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": dict(_map(obj, "metadata"))}


def table(api_version: str, kind: str, objs: list[dict[str, Any]], now: datetime, *,
          include_object: str = "Metadata", resource_version: str = "",
          continue_token: str = "", with_columns: bool = True) -> dict[str, Any]:
    """The whole `meta.k8s.io/v1` Table of a list (or a single object, or a watch event).

    `include_object` is the request's `includeObject`: "None", "Object" or "Metadata" (the
    default, also for ""). `with_columns=False` leaves the column definitions out, as the
    server does for the watch events after the first."""
    include_object = include_object or "Metadata"
    if include_object not in INCLUDE_OBJECT_VALUES:
        raise ValueError(f"includeObject must be one of {', '.join(INCLUDE_OBJECT_VALUES)}, "
                         f"not {include_object!r}")
    metadata: dict[str, Any] = {}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    if continue_token:
        metadata["continue"] = continue_token
    rows = []
    for obj in objs:
        entry: dict[str, Any] = {"cells": row(api_version, kind, obj, now)}
        if (api_version, kind) == ("v1", "Pod") and (conditions := _pod_conditions(obj)):
            entry["conditions"] = conditions
        entry["object"] = _row_object(obj, include_object)
        rows.append(entry)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": column_definitions(api_version, kind) if with_columns else [],
        "rows": rows,
    }
