"""Server-side Table printing: columns, exact cells per kind, ages and the Table envelope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from podnet.api.tables import (
    column_definitions,
    human_duration,
    row,
    table,
    translate_timestamp_since,
)

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def ago(seconds: float) -> str:
    """An RFC 3339 timestamp `seconds` before NOW."""
    return (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, age: float = 300, namespace: str | None = "default",
         **extra: Any) -> dict[str, Any]:
    m: dict[str, Any] = {"name": name, "creationTimestamp": ago(age), **extra}
    if namespace:
        m["namespace"] = namespace
    return m


# --- ages ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("seconds", "text"), [
    pytest.param(-5, "<invalid>", id="future"),
    pytest.param(-1.5, "0s", id="slightly-future"),
    pytest.param(0, "0s", id="zero"),
    pytest.param(5.9, "5s", id="seconds-truncated"),
    pytest.param(119, "119s", id="under-two-minutes"),
    pytest.param(120, "2m", id="two-minutes"),
    pytest.param(182, "3m2s", id="minutes-seconds"),
    pytest.param(599, "9m59s", id="under-ten-minutes"),
    pytest.param(600, "10m", id="ten-minutes"),
    pytest.param(179 * 60 + 59, "179m", id="under-three-hours"),
    pytest.param(3 * 3600, "3h", id="three-hours"),
    pytest.param(3 * 3600 + 25 * 60, "3h25m", id="hours-minutes"),
    pytest.param(8 * 3600, "8h", id="eight-hours"),
    pytest.param(47 * 3600 + 59 * 60, "47h", id="under-two-days"),
    pytest.param(2 * 86400 + 3 * 3600, "2d3h", id="days-hours"),
    pytest.param(3 * 86400, "3d", id="whole-days"),
    pytest.param(8 * 86400, "8d", id="eight-days"),
    pytest.param(400 * 86400, "400d", id="under-two-years"),
    pytest.param(730 * 86400, "2y", id="two-years"),
    pytest.param(740 * 86400, "2y10d", id="years-days"),
    pytest.param(9 * 365 * 86400, "9y", id="many-years"),
])
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(timedelta(seconds=seconds)) == text


def test_translate_timestamp_since() -> None:
    assert translate_timestamp_since(ago(90), NOW) == "90s"
    assert translate_timestamp_since("2024-05-01T11:59:00.500000Z", NOW) == "59s"
    assert translate_timestamp_since(None, NOW) == "<unknown>"
    assert translate_timestamp_since("", NOW) == "<unknown>"
    assert translate_timestamp_since("not a time", NOW) == "<unknown>"
    # a naive `now` is taken as UTC
    assert translate_timestamp_since(ago(90), NOW.replace(tzinfo=None)) == "90s"


# --- column definitions -----------------------------------------------------------------------

def names_and_priorities(api_version: str, kind: str) -> list[tuple[str, int]]:
    return [(c["name"], c["priority"]) for c in column_definitions(api_version, kind)]


@pytest.mark.parametrize(("api_version", "kind", "columns"), [
    pytest.param("v1", "Pod", [("Name", 0), ("Ready", 0), ("Status", 0), ("Restarts", 0),
                               ("Age", 0), ("IP", 1), ("Node", 1), ("Nominated Node", 1),
                               ("Readiness Gates", 1)], id="pod"),
    pytest.param("v1", "Service", [("Name", 0), ("Type", 0), ("Cluster-IP", 0),
                                   ("External-IP", 0), ("Port(s)", 0), ("Age", 0),
                                   ("Selector", 1)], id="service"),
    pytest.param("v1", "Namespace", [("Name", 0), ("Status", 0), ("Age", 0)], id="namespace"),
    pytest.param("v1", "Node", [("Name", 0), ("Status", 0), ("Roles", 0), ("Age", 0),
                                ("Version", 0), ("Internal-IP", 1), ("External-IP", 1),
                                ("OS-Image", 1), ("Kernel-Version", 1),
                                ("Container-Runtime", 1)], id="node"),
    pytest.param("v1", "Secret", [("Name", 0), ("Type", 0), ("Data", 0), ("Age", 0)],
                 id="secret"),
    pytest.param("v1", "Event", [("Last Seen", 0), ("Type", 0), ("Reason", 0), ("Object", 0),
                                 ("Subobject", 1), ("Source", 1), ("Message", 0),
                                 ("First Seen", 1), ("Count", 1), ("Name", 1)], id="event"),
    pytest.param("discovery.k8s.io/v1", "EndpointSlice",
                 [("Name", 0), ("AddressType", 0), ("Ports", 0), ("Endpoints", 0), ("Age", 0)],
                 id="endpointslice"),
    pytest.param("networking.k8s.io/v1", "Ingress",
                 [("Name", 0), ("Class", 0), ("Hosts", 0), ("Address", 0), ("Ports", 0),
                  ("Age", 0)], id="ingress"),
    pytest.param("networking.k8s.io/v1", "IngressClass",
                 [("Name", 0), ("Controller", 0), ("Parameters", 0), ("Age", 0)],
                 id="ingressclass"),
    pytest.param("networking.k8s.io/v1", "NetworkPolicy",
                 [("Name", 0), ("Pod-Selector", 0), ("Age", 0)], id="networkpolicy"),
    pytest.param("example.com/v1", "Widget", [("Name", 0), ("Age", 0)], id="fallback"),
])
def test_column_names(api_version: str, kind: str, columns: list[tuple[str, int]]) -> None:
    assert names_and_priorities(api_version, kind) == columns


def test_column_definition_fields() -> None:
    cols = column_definitions("v1", "Pod")
    assert cols[0]["name"] == "Name"
    assert cols[0]["format"] == "name"
    assert cols[0]["type"] == "string"
    assert all(set(c) == {"name", "type", "format", "description", "priority"} for c in cols)
    assert all(c["description"] for c in cols)
    assert [c["format"] for c in cols[1:]] == [""] * 8
    assert column_definitions("v1", "Secret")[2]["type"] == "string"
    assert column_definitions("example.com/v1", "Widget")[1]["type"] == "date"


def test_column_definitions_are_copies() -> None:
    column_definitions("v1", "Pod")[0]["name"] = "changed"
    assert column_definitions("v1", "Pod")[0]["name"] == "Name"


def test_every_row_has_one_cell_per_column() -> None:
    for api_version, kind in [("v1", "Pod"), ("v1", "Service"), ("v1", "Namespace"),
                              ("v1", "Node"), ("v1", "Secret"), ("v1", "Event"),
                              ("discovery.k8s.io/v1", "EndpointSlice"),
                              ("networking.k8s.io/v1", "Ingress"),
                              ("networking.k8s.io/v1", "IngressClass"),
                              ("networking.k8s.io/v1", "NetworkPolicy"),
                              ("example.com/v1", "Widget")]:
        cells = row(api_version, kind, {"metadata": {"name": "x"}}, NOW)
        assert len(cells) == len(column_definitions(api_version, kind)), kind


# --- pods -------------------------------------------------------------------------------------

def running(name: str, *, ready: bool = True, restarts: int = 0,
            last_finished: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"name": name, "ready": ready, "restartCount": restarts,
                              "started": True, "state": {"running": {"startedAt": ago(100)}}}
    if last_finished:
        status["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error",
                                              "finishedAt": last_finished}}
    return status


def pod(name: str = "web", *, containers: int = 1, phase: str = "Running",
        statuses: list[dict[str, Any]] | None = None, init: list[dict[str, Any]] | None = None,
        init_statuses: list[dict[str, Any]] | None = None,
        conditions: list[dict[str, Any]] | None = None, **metadata: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": f"c{i}", "image": "busybox"}
                                           for i in range(containers)],
                            "nodeName": "node-1"}
    if init is not None:
        spec["initContainers"] = init
    status: dict[str, Any] = {"phase": phase, "podIP": "10.244.1.5",
                              "podIPs": [{"ip": "10.244.1.5"}]}
    if statuses is not None:
        status["containerStatuses"] = statuses
    if init_statuses is not None:
        status["initContainerStatuses"] = init_statuses
    if conditions is not None:
        status["conditions"] = conditions
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta(name, 600, **metadata),
            "spec": spec, "status": status}


READY = {"type": "Ready", "status": "True"}
INITIALIZED = {"type": "Initialized", "status": "True"}


@pytest.mark.parametrize(("obj", "cells"), [
    pytest.param(
        pod(containers=2, statuses=[running("c0"), running("c1", restarts=3,
                                                            last_finished=ago(300))],
            conditions=[READY]),
        ["web", "2/2", "Running", "3 (5m ago)", "10m", "10.244.1.5", "node-1", "<none>",
         "<none>"],
        id="running-with-restarts"),
    pytest.param(
        pod(statuses=[{"name": "c0", "ready": False, "restartCount": 5,
                       "state": {"waiting": {"reason": "CrashLoopBackOff",
                                             "message": "back-off 2m40s"}},
                       "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                                    "finishedAt": ago(42)}}}]),
        ["web", "0/1", "CrashLoopBackOff", "5 (42s ago)", "10m", "10.244.1.5", "node-1",
         "<none>", "<none>"],
        id="crashloop"),
    pytest.param(
        pod(statuses=[running("c0")], conditions=[READY], deletionTimestamp=ago(10)),
        ["web", "1/1", "Terminating", "0", "10m", "10.244.1.5", "node-1", "<none>", "<none>"],
        id="terminating"),
    pytest.param(
        pod(statuses=[running("c0")], deletionTimestamp=ago(10)) | {
            "status": {"phase": "Running", "reason": "NodeLost",
                       "containerStatuses": [running("c0")]}},
        ["web", "1/1", "Unknown", "0", "10m", "<none>", "node-1", "<none>", "<none>"],
        id="node-lost"),
    pytest.param(
        pod(phase="Succeeded", statuses=[{
            "name": "c0", "ready": False, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
            deletionTimestamp=ago(1)),
        ["web", "0/1", "Completed", "0", "10m", "10.244.1.5", "node-1", "<none>", "<none>"],
        id="completed-not-terminating"),
    pytest.param(
        pod(phase="Failed", statuses=[{"name": "c0", "restartCount": 0,
                                       "state": {"terminated": {"exitCode": 137}}}]),
        ["web", "0/1", "ExitCode:137", "0", "10m", "10.244.1.5", "node-1", "<none>", "<none>"],
        id="exit-code"),
    pytest.param(
        pod(statuses=[{"name": "c0", "restartCount": 0,
                       "state": {"terminated": {"exitCode": 0, "signal": 9}}}]),
        ["web", "0/1", "Signal:9", "0", "10m", "10.244.1.5", "node-1", "<none>", "<none>"],
        id="signal"),
    pytest.param(
        pod(phase="Pending", statuses=[{"name": "c0", "ready": False, "restartCount": 0,
                                        "state": {"waiting": {"reason": "ContainerCreating"}}}])
        | {"status": {"phase": "Pending",
                      "containerStatuses": [{"name": "c0", "ready": False, "restartCount": 0,
                                             "state": {"waiting": {
                                                 "reason": "ContainerCreating"}}}]}},
        ["web", "0/1", "ContainerCreating", "0", "10m", "<none>", "node-1", "<none>", "<none>"],
        id="container-creating"),
    pytest.param(
        pod(phase="Pending") | {"spec": {"containers": [{"name": "c0"}]},
                                "status": {"phase": "Pending"}},
        ["web", "0/1", "Pending", "0", "10m", "<none>", "<none>", "<none>", "<none>"],
        id="pending-unscheduled"),
    pytest.param(
        pod(phase="Pending", conditions=[{"type": "PodScheduled", "status": "False",
                                          "reason": "SchedulingGated"}]),
        ["web", "0/1", "SchedulingGated", "0", "10m", "10.244.1.5", "node-1", "<none>",
         "<none>"],
        id="scheduling-gated"),
    pytest.param(
        pod(phase="Pending", init=[{"name": "i0"}, {"name": "i1"}],
            init_statuses=[
                {"name": "i0", "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "i1", "restartCount": 0, "state": {"running": {}}},
            ],
            statuses=[{"name": "c0", "restartCount": 0,
                       "state": {"waiting": {"reason": "PodInitializing"}}}]),
        ["web", "0/1", "Init:1/2", "0", "10m", "10.244.1.5", "node-1", "<none>", "<none>"],
        id="init-progress"),
    pytest.param(
        pod(phase="Pending", init=[{"name": "i0"}],
            init_statuses=[{"name": "i0", "restartCount": 4,
                            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                            "lastState": {"terminated": {"exitCode": 1,
                                                         "finishedAt": ago(20)}}}],
            statuses=[{"name": "c0", "restartCount": 0,
                       "state": {"waiting": {"reason": "PodInitializing"}}}]),
        ["web", "0/1", "Init:CrashLoopBackOff", "4 (20s ago)", "10m", "10.244.1.5", "node-1",
         "<none>", "<none>"],
        id="init-crashloop"),
    pytest.param(
        pod(phase="Pending", init=[{"name": "i0"}],
            init_statuses=[{"name": "i0", "restartCount": 0,
                            "state": {"terminated": {"exitCode": 2}}}]),
        ["web", "0/1", "Init:ExitCode:2", "0", "10m", "10.244.1.5", "node-1", "<none>",
         "<none>"],
        id="init-exit-code"),
    pytest.param(
        pod(phase="Pending", init=[{"name": "i0"}],
            init_statuses=[{"name": "i0", "restartCount": 0,
                            "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]),
        ["web", "0/1", "Init:Error", "0", "10m", "10.244.1.5", "node-1", "<none>", "<none>"],
        id="init-error"),
    pytest.param(
        pod(init=[{"name": "sidecar", "restartPolicy": "Always"}],
            init_statuses=[{"name": "sidecar", "ready": True, "started": True,
                            "restartCount": 2, "state": {"running": {}},
                            "lastState": {"terminated": {"finishedAt": ago(7200)}}}],
            statuses=[running("c0", restarts=1, last_finished=ago(60))],
            conditions=[INITIALIZED, READY]),
        ["web", "2/2", "Running", "3 (60s ago)", "10m", "10.244.1.5", "node-1", "<none>",
         "<none>"],
        id="sidecar"),
    pytest.param(
        pod(containers=2, statuses=[
            running("c0"),
            {"name": "c1", "ready": False, "restartCount": 0,
             "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
            conditions=[{"type": "Ready", "status": "False"}]),
        ["web", "1/2", "NotReady", "0", "10m", "10.244.1.5", "node-1", "<none>", "<none>"],
        id="one-completed-one-running-not-ready"),
    pytest.param(
        pod(containers=2, statuses=[
            running("c0"),
            {"name": "c1", "ready": False, "restartCount": 0,
             "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
            conditions=[READY]),
        ["web", "1/2", "Running", "0", "10m", "10.244.1.5", "node-1", "<none>", "<none>"],
        id="one-completed-one-running-ready"),
    pytest.param(
        pod(statuses=[running("c0")], conditions=[READY, {"type": "example.com/gate",
                                                          "status": "True"}]) | {
            "spec": {"containers": [{"name": "c0"}], "nodeName": "node-1",
                     "readinessGates": [{"conditionType": "example.com/gate"},
                                        {"conditionType": "example.com/other"}]}},
        ["web", "1/1", "Running", "0", "10m", "10.244.1.5", "node-1", "<none>", "1/2"],
        id="readiness-gates"),
    pytest.param(
        pod(phase="Pending") | {"status": {"phase": "Pending", "nominatedNodeName": "node-2"}},
        ["web", "0/1", "Pending", "0", "10m", "<none>", "node-1", "node-2", "<none>"],
        id="nominated-node"),
    pytest.param(
        pod(statuses=[running("c0", restarts=2)]),
        ["web", "1/1", "Running", "2", "10m", "10.244.1.5", "node-1", "<none>", "<none>"],
        id="restarts-without-date"),
    pytest.param(
        pod(statuses=[running("c0")]) | {"status": {"phase": "Running", "podIP": "10.0.0.7",
                                                    "containerStatuses": [running("c0")]}},
        ["web", "1/1", "Running", "0", "10m", "10.0.0.7", "node-1", "<none>", "<none>"],
        id="singular-pod-ip"),
])
def test_pod_cells(obj: dict[str, Any], cells: list[Any]) -> None:
    assert row("v1", "Pod", obj, NOW) == cells


# --- services ---------------------------------------------------------------------------------

def service(name: str, spec: dict[str, Any], status: dict[str, Any] | None = None,
            age: float = 7200) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(name, age),
            "spec": spec, "status": status or {}}


TCP80 = {"port": 80, "protocol": "TCP", "targetPort": 8080}


@pytest.mark.parametrize(("obj", "cells"), [
    pytest.param(
        service("web", {"type": "ClusterIP", "clusterIP": "10.96.0.10",
                        "clusterIPs": ["10.96.0.10"], "ports": [TCP80],
                        "selector": {"tier": "front", "app": "web"}}),
        ["web", "ClusterIP", "10.96.0.10", "<none>", "80/TCP", "120m", "app=web,tier=front"],
        id="clusterip"),
    pytest.param(
        service("np", {"type": "NodePort", "clusterIPs": ["10.96.0.11"],
                       "ports": [TCP80 | {"nodePort": 30080},
                                 {"port": 53, "protocol": "UDP", "nodePort": 30053}],
                       "selector": {"app": "np"}}),
        ["np", "NodePort", "10.96.0.11", "<none>", "80:30080/TCP,53:30053/UDP", "120m",
         "app=np"],
        id="nodeport"),
    pytest.param(
        service("lb", {"type": "LoadBalancer", "clusterIPs": ["10.96.0.12"],
                       "ports": [TCP80 | {"nodePort": 31000}]}),
        ["lb", "LoadBalancer", "10.96.0.12", "<pending>", "80:31000/TCP", "120m", "<none>"],
        id="loadbalancer-pending"),
    pytest.param(
        service("lb", {"type": "LoadBalancer", "clusterIPs": ["10.96.0.12"],
                       "ports": [TCP80 | {"nodePort": 31000}]},
                {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"},
                                              {"hostname": "lb.example.com"},
                                              {"ip": "203.0.113.9"},
                                              {"ip": "192.0.2.1", "hostname": "ignored"}]}}),
        ["lb", "LoadBalancer", "10.96.0.12", "192.0.2.1,203.0.113.9,lb.example.com",
         "80:31000/TCP", "120m", "<none>"],
        id="loadbalancer-ingress"),
    pytest.param(
        service("lb", {"type": "LoadBalancer", "clusterIPs": ["10.96.0.12"],
                       "externalIPs": ["198.51.100.7"], "ports": [TCP80]},
                {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}),
        ["lb", "LoadBalancer", "10.96.0.12", "203.0.113.9,198.51.100.7", "80/TCP", "120m",
         "<none>"],
        id="loadbalancer-with-external-ips"),
    pytest.param(
        service("ext", {"type": "ClusterIP", "clusterIPs": ["10.96.0.13"],
                        "externalIPs": ["198.51.100.7", "198.51.100.8"], "ports": [TCP80]}),
        ["ext", "ClusterIP", "10.96.0.13", "198.51.100.7,198.51.100.8", "80/TCP", "120m",
         "<none>"],
        id="external-ips"),
    pytest.param(
        service("db", {"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"],
                       "ports": [{"port": 5432, "protocol": "TCP"}],
                       "selector": {"app": "db"}}),
        ["db", "ClusterIP", "None", "<none>", "5432/TCP", "120m", "app=db"],
        id="headless"),
    pytest.param(
        service("db", {"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"]}),
        ["db", "ClusterIP", "None", "<none>", "<none>", "120m", "<none>"],
        id="headless-no-ports"),
    pytest.param(
        service("mail", {"type": "ExternalName", "externalName": "mail.example.com"}),
        ["mail", "ExternalName", "<none>", "mail.example.com", "<none>", "120m", "<none>"],
        id="externalname"),
    pytest.param(
        service("dual", {"type": "ClusterIP", "clusterIPs": ["10.96.0.20", "fd00::20"],
                         "ports": [TCP80]}),
        ["dual", "ClusterIP", "10.96.0.20", "<none>", "80/TCP", "120m", "<none>"],
        id="dual-stack-first-ip"),
])
def test_service_cells(obj: dict[str, Any], cells: list[Any]) -> None:
    assert row("v1", "Service", obj, NOW) == cells


# --- namespaces, nodes, secrets ----------------------------------------------------------------

def test_namespace_cells() -> None:
    ns = {"metadata": meta("kube-system", 3 * 86400 + 3600, namespace=None),
          "status": {"phase": "Active"}}
    assert row("v1", "Namespace", ns, NOW) == ["kube-system", "Active", "3d1h"]
    gone = {"metadata": meta("old", 30, namespace=None), "status": {"phase": "Terminating"}}
    assert row("v1", "Namespace", gone, NOW) == ["old", "Terminating", "30s"]


def node(conditions: list[dict[str, Any]], *, unschedulable: bool = False,
         labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": meta("node-1", 86400 * 10, namespace=None, labels=labels or {}),
        "spec": {"unschedulable": unschedulable} if unschedulable else {},
        "status": {
            "conditions": conditions,
            "addresses": [{"type": "Hostname", "address": "node-1"},
                          {"type": "InternalIP", "address": "192.168.1.10"},
                          {"type": "InternalIP", "address": "fd00::10"}],
            "nodeInfo": {"kubeletVersion": "v1.30.0-podnet", "osImage": "Debian GNU/Linux 12",
                         "kernelVersion": "6.1.0-18-amd64",
                         "containerRuntimeVersion": "podnet://0.1.0"},
        },
    }


@pytest.mark.parametrize(("obj", "cells"), [
    pytest.param(
        node([{"type": "Ready", "status": "True"}],
             labels={"node-role.kubernetes.io/control-plane": "",
                     "node-role.kubernetes.io/worker": "", "kubernetes.io/role": "edge"}),
        ["node-1", "Ready", "control-plane,edge,worker", "10d", "v1.30.0-podnet",
         "192.168.1.10", "<none>", "Debian GNU/Linux 12", "6.1.0-18-amd64", "podnet://0.1.0"],
        id="ready-with-roles"),
    pytest.param(
        node([{"type": "Ready", "status": "False"}], unschedulable=True),
        ["node-1", "NotReady,SchedulingDisabled", "<none>", "10d", "v1.30.0-podnet",
         "192.168.1.10", "<none>", "Debian GNU/Linux 12", "6.1.0-18-amd64", "podnet://0.1.0"],
        id="not-ready-cordoned"),
    pytest.param(
        node([{"type": "Ready", "status": "Unknown"}]),
        ["node-1", "NotReady", "<none>", "10d", "v1.30.0-podnet", "192.168.1.10", "<none>",
         "Debian GNU/Linux 12", "6.1.0-18-amd64", "podnet://0.1.0"],
        id="ready-unknown"),
    pytest.param(
        {"metadata": meta("bare", 60, namespace=None)},
        ["bare", "Unknown", "<none>", "60s", "", "<none>", "<none>", "<unknown>", "<unknown>",
         "<unknown>"],
        id="no-status"),
    pytest.param(
        node([{"type": "MemoryPressure", "status": "False"}], unschedulable=True),
        ["node-1", "Unknown,SchedulingDisabled", "<none>", "10d", "v1.30.0-podnet",
         "192.168.1.10", "<none>", "Debian GNU/Linux 12", "6.1.0-18-amd64", "podnet://0.1.0"],
        id="no-ready-condition"),
])
def test_node_cells(obj: dict[str, Any], cells: list[Any]) -> None:
    assert row("v1", "Node", obj, NOW) == cells


def test_node_external_ip() -> None:
    obj = node([{"type": "Ready", "status": "True"}])
    obj["status"]["addresses"].append({"type": "ExternalIP", "address": "203.0.113.4"})
    assert row("v1", "Node", obj, NOW)[6] == "203.0.113.4"


def test_secret_cells() -> None:
    secret = {"metadata": meta("creds", 45), "type": "Opaque",
              "data": {"user": "YQ==", "pass": "Yg=="}}
    assert row("v1", "Secret", secret, NOW) == ["creds", "Opaque", 2, "45s"]
    empty = {"metadata": meta("empty", 45), "type": "kubernetes.io/tls"}
    assert row("v1", "Secret", empty, NOW) == ["empty", "kubernetes.io/tls", 0, "45s"]


# --- events -----------------------------------------------------------------------------------

def event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "metadata": meta("web.17c2a", 400),
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default",
                           "fieldPath": "spec.containers{app}"},
        "reason": "BackOff", "type": "Warning",
        "message": "Back-off restarting failed container\n",
        "source": {"component": "kubelet", "host": "node-1"},
    }
    return base | fields


@pytest.mark.parametrize(("obj", "cells"), [
    pytest.param(
        event(firstTimestamp=ago(400), lastTimestamp=ago(30), count=7),
        ["30s", "Warning", "BackOff", "pod/web", "spec.containers{app}", "kubelet, node-1",
         "Back-off restarting failed container", "6m40s", 7, "web.17c2a"],
        id="core-event"),
    pytest.param(
        event(firstTimestamp=ago(400)),
        ["6m40s", "Warning", "BackOff", "pod/web", "spec.containers{app}", "kubelet, node-1",
         "Back-off restarting failed container", "6m40s", 1, "web.17c2a"],
        id="no-last-timestamp"),
    pytest.param(
        event(eventTime="2024-05-01T11:58:00.000000Z", source={},
              reportingComponent="podnet-scheduler", reportingInstance="cp-1",
              series={"count": 3, "lastObservedTime": "2024-05-01T11:59:50.000000Z"}),
        ["10s", "Warning", "BackOff", "pod/web", "spec.containers{app}",
         "podnet-scheduler, cp-1", "Back-off restarting failed container", "2m", 3,
         "web.17c2a"],
        id="new-style-series"),
    pytest.param(
        event(involvedObject={"kind": "Node"}, source={"component": "controller"}, count=0),
        ["<unknown>", "Warning", "BackOff", "node", "", "controller",
         "Back-off restarting failed container", "<unknown>", 1, "web.17c2a"],
        id="no-times-no-name"),
])
def test_event_cells(obj: dict[str, Any], cells: list[Any]) -> None:
    assert row("v1", "Event", obj, NOW) == cells


# --- endpoint slices, ingresses, ingress classes, network policies ----------------------------

@pytest.mark.parametrize(("obj", "cells"), [
    pytest.param(
        {"metadata": meta("web-abc12", 90), "addressType": "IPv4",
         "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
         "endpoints": [{"addresses": ["10.244.1.5"]}, {"addresses": ["10.244.2.7"]}]},
        ["web-abc12", "IPv4", "8080", "10.244.1.5,10.244.2.7", "90s"], id="simple"),
    pytest.param(
        {"metadata": meta("web-abc12", 90), "addressType": "IPv4",
         "ports": [{"port": 1}, {"name": "named"}, {}, {"port": 4}],
         "endpoints": [{"addresses": [f"10.0.0.{i}"]} for i in range(1, 6)]},
        ["web-abc12", "IPv4", "1,named,* + 1 more...",
         "10.0.0.1,10.0.0.2,10.0.0.3 + 2 more...", "90s"], id="more"),
    pytest.param(
        {"metadata": meta("empty", 90), "addressType": "IPv6"},
        ["empty", "IPv6", "<unset>", "<unset>", "90s"], id="empty"),
])
def test_endpoint_slice_cells(obj: dict[str, Any], cells: list[Any]) -> None:
    assert row("discovery.k8s.io/v1", "EndpointSlice", obj, NOW) == cells


@pytest.mark.parametrize(("obj", "cells"), [
    pytest.param(
        {"metadata": meta("web", 600),
         "spec": {"ingressClassName": "podnet",
                  "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}],
                  "tls": [{"hosts": ["a.example.com"], "secretName": "tls"}]},
         "status": {"loadBalancer": {"ingress": [{"ip": "192.168.1.10"}]}}},
        ["web", "podnet", "a.example.com,b.example.com", "192.168.1.10", "80, 443", "10m"],
        id="tls"),
    pytest.param(
        {"metadata": meta("catchall", 600), "spec": {"defaultBackend": {}}},
        ["catchall", "<none>", "*", "", "80", "10m"], id="default-backend"),
    pytest.param(
        {"metadata": meta("many", 600),
         "spec": {"rules": [{}, {"host": "a"}, {"host": "b"}, {"host": "c"}, {"host": "d"}]}},
        ["many", "<none>", "a,b,c + 2 more...", "", "80", "10m"], id="more-hosts"),
    pytest.param(
        {"metadata": meta("three", 600),
         "spec": {"rules": [{"host": "a"}, {"host": "b"}, {"host": "c"}]}},
        ["three", "<none>", "a,b,c", "", "80", "10m"], id="three-hosts"),
])
def test_ingress_cells(obj: dict[str, Any], cells: list[Any]) -> None:
    assert row("networking.k8s.io/v1", "Ingress", obj, NOW) == cells


@pytest.mark.parametrize(("obj", "cells"), [
    pytest.param(
        {"metadata": meta("podnet", 600, namespace=None),
         "spec": {"controller": "podnet.dev/ingress"}},
        ["podnet", "podnet.dev/ingress", "<none>", "10m"], id="no-parameters"),
    pytest.param(
        {"metadata": meta("ext", 600, namespace=None),
         "spec": {"controller": "example.com/lb",
                  "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters",
                                 "name": "external-lb"}}},
        ["ext", "example.com/lb", "IngressParameters.k8s.example.com/external-lb", "10m"],
        id="parameters"),
    pytest.param(
        {"metadata": meta("core", 600, namespace=None),
         "spec": {"controller": "example.com/lb",
                  "parameters": {"kind": "ConfigMap", "name": "cfg", "scope": "Namespace"}}},
        ["core", "example.com/lb", "ConfigMap/cfg", "10m"], id="core-parameters"),
])
def test_ingress_class_cells(obj: dict[str, Any], cells: list[Any]) -> None:
    assert row("networking.k8s.io/v1", "IngressClass", obj, NOW) == cells


@pytest.mark.parametrize(("spec", "selector"), [
    pytest.param({"podSelector": {}}, "<none>", id="all-pods"),
    pytest.param({}, "<none>", id="missing"),
    pytest.param({"podSelector": {"matchLabels": {"app": "db", "tier": "back"}}},
                 "app=db,tier=back", id="match-labels"),
    pytest.param({"podSelector": {"matchExpressions": [
        {"key": "env", "operator": "NotIn", "values": ["prod", "dev"]}]}},
        "env notin (dev,prod)", id="expressions"),
    pytest.param({"podSelector": {"matchExpressions": [{"key": "env", "operator": "Bad"}]}},
                 "<error>", id="invalid"),
])
def test_network_policy_cells(spec: dict[str, Any], selector: str) -> None:
    obj = {"metadata": meta("deny", 600), "spec": spec}
    assert row("networking.k8s.io/v1", "NetworkPolicy", obj, NOW) == ["deny", selector, "10m"]


def test_fallback_cells() -> None:
    obj = {"metadata": meta("w", 65)}
    assert row("example.com/v1", "Widget", obj, NOW) == ["w", "65s"]


# --- the Table object -------------------------------------------------------------------------

def test_table_metadata_default() -> None:
    obj = pod(statuses=[running("c0")], conditions=[READY])
    out = table("v1", "Pod", [obj], NOW, resource_version="42", continue_token="tok")
    assert out["kind"] == "Table"
    assert out["apiVersion"] == "meta.k8s.io/v1"
    assert out["metadata"] == {"resourceVersion": "42", "continue": "tok"}
    assert out["columnDefinitions"] == column_definitions("v1", "Pod")
    assert out["rows"] == [{
        "cells": ["web", "1/1", "Running", "0", "10m", "10.244.1.5", "node-1", "<none>",
                  "<none>"],
        "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": obj["metadata"]},
    }]


def test_table_include_object_modes() -> None:
    obj = {"apiVersion": "v1", "kind": "Secret", "metadata": meta("s", 10), "type": "Opaque"}
    assert table("v1", "Secret", [obj], NOW, include_object="Object")["rows"][0]["object"] == obj
    assert table("v1", "Secret", [obj], NOW, include_object="None")["rows"][0]["object"] is None
    meta_row = table("v1", "Secret", [obj], NOW, include_object="")["rows"][0]
    assert meta_row["object"]["kind"] == "PartialObjectMetadata"
    with pytest.raises(ValueError, match="includeObject"):
        table("v1", "Secret", [obj], NOW, include_object="Everything")


def test_table_without_columns_and_empty() -> None:
    out = table("v1", "Namespace", [], NOW, with_columns=False)
    assert out == {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {},
                   "columnDefinitions": [], "rows": []}


@pytest.mark.parametrize(("phase", "conditions"), [
    pytest.param("Succeeded", [{"type": "Completed", "status": "True", "reason": "Succeeded",
                                "message": "The pod has completed successfully."}],
                 id="succeeded"),
    pytest.param("Failed", [{"type": "Completed", "status": "True", "reason": "Failed",
                             "message": "The pod failed."}], id="failed"),
    pytest.param("Running", None, id="running"),
])
def test_table_pod_row_conditions(phase: str, conditions: list[dict[str, str]] | None) -> None:
    out = table("v1", "Pod", [pod(phase=phase)], NOW)
    assert out["rows"][0].get("conditions") == conditions
