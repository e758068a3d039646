"""Defaulting of the core/v1 kinds: what Kubernetes fills in, and nothing it does not."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from podnet.api.defaults import DEFAULTERS, apply_defaults
from podnet.api.defaults.core import image_tag

Obj = dict[str, Any]


def defaulted(obj: Obj) -> Obj:
    obj = copy.deepcopy(obj)
    apply_defaults(obj)
    return obj


def service(**spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"}, "spec": spec}


def pod(**spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default"}, "spec": spec}


# -- services ------------------------------------------------------------------------------------

def test_service_cluster_ip_defaults() -> None:
    got = defaulted(service(selector={"app": "web"}, ports=[{"port": 80}]))
    assert got["spec"] == {
        "selector": {"app": "web"},
        "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
        "type": "ClusterIP",
        "sessionAffinity": "None",
        "internalTrafficPolicy": "Cluster",
    }


@pytest.mark.parametrize("spec, want", [
    pytest.param({"type": "NodePort"},
                 {"type": "NodePort", "sessionAffinity": "None",
                  "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster"},
                 id="node-port"),
    pytest.param({"type": "LoadBalancer"},
                 {"type": "LoadBalancer", "sessionAffinity": "None",
                  "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster",
                  "allocateLoadBalancerNodePorts": True}, id="load-balancer"),
    pytest.param({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                  "allocateLoadBalancerNodePorts": False},
                 {"type": "LoadBalancer", "sessionAffinity": "None",
                  "externalTrafficPolicy": "Local", "internalTrafficPolicy": "Cluster",
                  "allocateLoadBalancerNodePorts": False}, id="load-balancer-set"),
    pytest.param({"type": "ExternalName", "externalName": "db.example.com"},
                 {"type": "ExternalName", "externalName": "db.example.com",
                  "sessionAffinity": "None"}, id="external-name"),
    pytest.param({"externalIPs": ["192.0.2.1"]},
                 {"externalIPs": ["192.0.2.1"], "type": "ClusterIP", "sessionAffinity": "None",
                  "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster"},
                 id="cluster-ip-with-external-ips"),
    pytest.param({"sessionAffinity": "ClientIP"},
                 {"sessionAffinity": "ClientIP", "type": "ClusterIP",
                  "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
                  "internalTrafficPolicy": "Cluster"}, id="client-ip"),
    pytest.param({"sessionAffinity": "ClientIP",
                  "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}},
                 {"sessionAffinity": "ClientIP", "type": "ClusterIP",
                  "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
                  "internalTrafficPolicy": "Cluster"}, id="client-ip-set"),
    pytest.param({"sessionAffinity": "None",
                  "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}},
                 {"sessionAffinity": "None", "type": "ClusterIP",
                  "internalTrafficPolicy": "Cluster"}, id="none-drops-config"),
    pytest.param({"clusterIP": "None"},
                 {"clusterIP": "None", "clusterIPs": ["None"], "type": "ClusterIP",
                  "sessionAffinity": "None", "internalTrafficPolicy": "Cluster"},
                 id="cluster-ip-to-cluster-ips"),
    pytest.param({"internalTrafficPolicy": "Local"},
                 {"internalTrafficPolicy": "Local", "type": "ClusterIP",
                  "sessionAffinity": "None"}, id="itp-kept"),
])
def test_service_spec_defaults(spec: Obj, want: Obj) -> None:
    assert defaulted(service(**spec))["spec"] == want


@pytest.mark.parametrize("port, want", [
    pytest.param({"port": 80}, {"port": 80, "protocol": "TCP", "targetPort": 80}, id="bare"),
    pytest.param({"port": 53, "protocol": "UDP", "targetPort": 5353},
                 {"port": 53, "protocol": "UDP", "targetPort": 5353}, id="set"),
    pytest.param({"port": 80, "targetPort": "http"},
                 {"port": 80, "protocol": "TCP", "targetPort": "http"}, id="named"),
    pytest.param({"port": 80, "targetPort": 0}, {"port": 80, "protocol": "TCP", "targetPort": 80},
                 id="zero"),
    pytest.param({"port": 80, "targetPort": ""}, {"port": 80, "protocol": "TCP", "targetPort": 80},
                 id="empty"),
])
def test_service_port_defaults(port: Obj, want: Obj) -> None:
    assert defaulted(service(ports=[port]))["spec"]["ports"] == [want]


def test_load_balancer_status_ip_mode() -> None:
    svc = service(type="LoadBalancer")
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"hostname": "lb"}]}}
    assert defaulted(svc)["status"] == {"loadBalancer": {"ingress": [
        {"ip": "192.0.2.1", "ipMode": "VIP"}, {"hostname": "lb"}]}}


# -- pods --------------------------------------------------------------------------------------

def test_minimal_pod_defaults() -> None:
    got = defaulted(pod(containers=[{"name": "app", "image": "nginx"}]))
    assert got["spec"] == {
        "containers": [{
            "name": "app", "image": "nginx",
            "imagePullPolicy": "Always",
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "resources": {},
        }],
        "dnsPolicy": "ClusterFirst",
        "restartPolicy": "Always",
        "securityContext": {},
        "terminationGracePeriodSeconds": 30,
        "schedulerName": "default-scheduler",
        "enableServiceLinks": True,
    }


def test_pod_defaults_keep_what_is_set() -> None:
    spec = {"containers": [{"name": "app", "image": "nginx", "imagePullPolicy": "Never",
                            "terminationMessagePolicy": "FallbackToLogsOnError"}],
            "restartPolicy": "Never", "dnsPolicy": "Default", "schedulerName": "mine",
            "terminationGracePeriodSeconds": 0, "enableServiceLinks": False,
            "securityContext": {"runAsUser": 1000}}
    got = defaulted(pod(**spec))["spec"]
    for field in ("restartPolicy", "dnsPolicy", "schedulerName", "terminationGracePeriodSeconds",
                  "enableServiceLinks", "securityContext"):
        assert got[field] == spec[field]
    assert got["containers"][0]["imagePullPolicy"] == "Never"
    assert got["containers"][0]["terminationMessagePolicy"] == "FallbackToLogsOnError"


@pytest.mark.parametrize("image, tag, policy", [
    pytest.param("nginx", "latest", "Always", id="no-tag"),
    pytest.param("nginx:latest", "latest", "Always", id="latest"),
    pytest.param("nginx:1.25", "1.25", "IfNotPresent", id="tag"),
    pytest.param("registry:5000/team/nginx", "latest", "Always", id="registry-port"),
    pytest.param("registry:5000/team/nginx:1", "1", "IfNotPresent", id="registry-port-tag"),
    pytest.param("nginx@sha256:" + "a" * 64, "", "IfNotPresent", id="digest"),
    pytest.param("nginx:1@sha256:" + "a" * 64, "1", "IfNotPresent", id="tag-and-digest"),
])
def test_image_pull_policy(image: str, tag: str, policy: str) -> None:
    assert image_tag(image) == tag
    got = defaulted(pod(containers=[{"name": "a", "image": image}],
                        initContainers=[{"name": "b", "image": image}]))
    assert got["spec"]["containers"][0]["imagePullPolicy"] == policy
    assert got["spec"]["initContainers"][0]["imagePullPolicy"] == policy


def test_container_parts_defaults() -> None:
    ctr = {"name": "app", "image": "nginx:1",
           "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}],
           "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
           "resources": {"limits": {"cpu": "1"}, "requests": {"memory": "64Mi"}},
           "livenessProbe": {"httpGet": {"port": 80}},
           "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 5},
           "lifecycle": {"preStop": {"httpGet": {"port": 80, "path": "/stop"}}}}
    got = defaulted(pod(containers=[ctr]))["spec"]["containers"][0]
    assert got["ports"] == [{"containerPort": 80, "protocol": "TCP"},
                            {"containerPort": 53, "protocol": "UDP"}]
    assert got["env"][0]["valueFrom"]["fieldRef"] == {"fieldPath": "spec.nodeName",
                                                      "apiVersion": "v1"}
    assert got["resources"] == {"limits": {"cpu": "1"},
                                "requests": {"memory": "64Mi", "cpu": "1"}}
    assert got["livenessProbe"] == {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
                                    "timeoutSeconds": 1, "periodSeconds": 10,
                                    "successThreshold": 1, "failureThreshold": 3}
    assert got["readinessProbe"]["periodSeconds"] == 5
    assert got["lifecycle"] == {"preStop": {"httpGet": {"port": 80, "path": "/stop",
                                                        "scheme": "HTTP"}}}


def test_host_network_ports_become_host_ports() -> None:
    got = defaulted(pod(hostNetwork=True, containers=[
        {"name": "a", "image": "x", "ports": [{"containerPort": 80},
                                              {"containerPort": 90, "hostPort": 90}]}]))
    assert [p["hostPort"] for p in got["spec"]["containers"][0]["ports"]] == [80, 90]
    plain = defaulted(pod(containers=[{"name": "a", "image": "x",
                                       "ports": [{"containerPort": 80}]}]))
    assert "hostPort" not in plain["spec"]["containers"][0]["ports"][0]


def test_volume_defaults() -> None:
    got = defaulted(pod(containers=[], volumes=[
        {"name": "scratch"}, {"name": "cfg", "configMap": {"name": "c"}},
        {"name": "sec", "secret": {"secretName": "s", "defaultMode": 0o400}},
        {"name": "host", "hostPath": {"path": "/var"}}]))
    assert got["spec"]["volumes"] == [
        {"name": "scratch", "emptyDir": {}},
        {"name": "cfg", "configMap": {"name": "c", "defaultMode": 420}},
        {"name": "sec", "secret": {"secretName": "s", "defaultMode": 256}},
        {"name": "host", "hostPath": {"path": "/var", "type": ""}},
    ]


# -- the others --------------------------------------------------------------------------------

def test_namespace_defaults() -> None:
    got = defaulted({"apiVersion": "v1", "kind": "Namespace",
                     "metadata": {"name": "team-a", "labels": {"owner": "me"}}})
    assert got["metadata"]["labels"] == {"owner": "me", "kubernetes.io/metadata.name": "team-a"}
    assert got["status"] == {"phase": "Active"}
    assert "spec" not in got


def test_namespace_without_name_gets_no_label() -> None:
    got = defaulted({"apiVersion": "v1", "kind": "Namespace",
                     "metadata": {"generateName": "team-"}})
    assert "labels" not in got["metadata"]


def test_secret_defaults() -> None:
    got = defaulted({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                     "data": {"a": "YQ==", "b": "Yg=="}, "stringData": {"b": "B", "c": "ç"}})
    assert got["type"] == "Opaque"
    assert got["data"] == {"a": "YQ==", "b": "Qg==", "c": "w6c="}
    assert "stringData" not in got


def test_secret_string_data_of_wrong_type_is_left_for_validation() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
              "type": "Opaque", "stringData": {"a": 1}}
    assert defaulted(secret) == secret


def test_node_defaults() -> None:
    got = defaulted({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"},
                     "spec": {"podCIDR": "10.244.1.0/24"},
                     "status": {"capacity": {"cpu": "4", "pods": "110"}}})
    assert got["spec"] == {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]}
    assert got["status"]["allocatable"] == {"cpu": "4", "pods": "110"}


def test_event_has_no_defaults() -> None:
    event = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace": "d"},
             "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "R"}
    assert defaulted(event) == event


def test_dispatch() -> None:
    for kind in ("Namespace", "Node", "Pod", "Service", "Secret", "Event"):
        assert ("v1", kind) in DEFAULTERS
    assert ("networking.k8s.io/v1", "NetworkPolicy") in DEFAULTERS
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "spec": {}}
    assert defaulted(widget) == widget
    assert defaulted({"apiVersion": "v2", "kind": "Pod", "spec": {}}) == {
        "apiVersion": "v2", "kind": "Pod", "spec": {}}


@pytest.mark.parametrize("obj", [
    pytest.param(pod(containers=[{"name": "a", "image": "x", "ports": [{"containerPort": 1}],
                                  "livenessProbe": {"exec": {"command": ["x"]}}}],
                     volumes=[{"name": "v"}]), id="pod"),
    pytest.param(service(type="LoadBalancer", sessionAffinity="ClientIP", ports=[{"port": 1}]),
                 id="service"),
])
def test_defaults_are_idempotent(obj: Obj) -> None:
    once = defaulted(obj)
    assert defaulted(once) == once


@pytest.mark.parametrize("obj", [
    pod(containers="app"),
    pod(containers=[None, 1, "x", {"ports": "p", "env": [1], "resources": [],
                                   "livenessProbe": "x", "image": 5}]),
    pod(containers=[{"resources": {"limits": {"cpu": "1"}, "requests": "x"}}],
        volumes=[None, {"secret": "x"}], hostNetwork=True),
    {"apiVersion": "v1", "kind": "Pod", "spec": "x"},
    {"apiVersion": "v1", "kind": "Pod", "spec": None},
    service(ports=[None, {"port": "80"}], sessionAffinity="ClientIP", sessionAffinityConfig="x"),
    service(type=5, ports="x", clusterIP=["x"]),
    service(type="LoadBalancer", sessionAffinity=[1]),
    {"apiVersion": "v1", "kind": "Service", "spec": [1], "status": "x"},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": "x", "status": []},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a", "labels": [1]}},
    {"apiVersion": "v1", "kind": "Node", "spec": "x", "status": {"capacity": "x"}},
    {"apiVersion": "v1", "kind": "Secret", "data": "x", "stringData": {"a": "b"}},
    {"apiVersion": 1, "kind": None},
])
def test_wrong_types_never_raise(obj: Obj) -> None:
    apply_defaults(copy.deepcopy(obj))


def test_non_objects_are_ignored() -> None:
    apply_defaults("pod")  # type: ignore[arg-type]
    apply_defaults([])  # type: ignore[arg-type]
