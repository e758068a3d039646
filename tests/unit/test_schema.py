"""podnet.api.schema: unknown fields, type checks, pruning and the OpenAPI v3 documents.

The objects below are what kubectl and the API server exchange; every expected message is the
exact text kube-apiserver's decoder (or podnet's readable form of it) produces.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest

from podnet.api import schema
from podnet.api.resources import RESOURCES

ROOT = Path(__file__).resolve().parents[2]

SERVICE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {
        "name": "web",
        "namespace": "default",
        "uid": "5d3c9c1e-8a8e-4f57-9d0e-1b1f3c2d4e5f",
        "resourceVersion": "42",
        "creationTimestamp": "2024-05-01T10:00:00Z",
        "labels": {"app": "web", "app.kubernetes.io/part-of": "shop"},
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"},
        "finalizers": ["service.kubernetes.io/load-balancer-cleanup"],
        "managedFields": [{
            "manager": "kubectl-client-side-apply",
            "operation": "Update",
            "apiVersion": "v1",
            "time": "2024-05-01T10:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:ports": {"k:{\"port\":80}": {".": {}}}}},
        }],
    },
    "spec": {
        "type": "LoadBalancer",
        "selector": {"app": "web"},
        "clusterIP": "10.96.0.50",
        "clusterIPs": ["10.96.0.50"],
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "ports": [
            {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080},
            {"name": "https", "protocol": "TCP", "port": 443, "targetPort": "https",
             "appProtocol": "kubernetes.io/h2c"},
        ],
        "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
        "externalTrafficPolicy": "Local",
        "healthCheckNodePort": 31000,
        "internalTrafficPolicy": "Cluster",
        "allocateLoadBalancerNodePorts": True,
    },
    "status": {
        "loadBalancer": {"ingress": [{"ip": "192.0.2.10", "ipMode": "VIP",
                                      "ports": [{"port": 80, "protocol": "TCP"}]}]},
        "conditions": [{"type": "Ready", "status": "True", "reason": "Synced", "message": "",
                        "lastTransitionTime": "2024-05-01T10:00:01Z", "observedGeneration": 1}],
    },
}

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "web-0",
        "namespace": "default",
        "labels": {"app": "web"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web",
                             "uid": "0b7f3c52-2f55-4c1c-9f0c-4e4f5a6b7c8d", "controller": True,
                             "blockOwnerDeletion": True}],
        "generation": 1,
    },
    "spec": {
        "containers": [{
            "name": "web",
            "image": "nginx:1.27",
            "imagePullPolicy": "IfNotPresent",
            "command": ["nginx", "-g", "daemon off;"],
            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
            "env": [{"name": "MODE", "value": "prod"},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"},
                          "requests": {"cpu": 0.25, "memory": 67108864}},
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                               "periodSeconds": 5},
            "livenessProbe": {"tcpSocket": {"port": 8080}, "initialDelaySeconds": 3},
            "securityContext": {"runAsUser": 1000, "capabilities": {"add": ["NET_ADMIN"]}},
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        }],
        "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "1Gi"}},
                    {"name": "tls", "secret": {"secretName": "web-tls", "defaultMode": 420}}],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "nodeName": "node-1",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                         "effect": "NoExecute", "tolerationSeconds": 300}],
        "hostNetwork": False,
    },
    "status": {
        "phase": "Running",
        "podIP": "10.244.1.7",
        "podIPs": [{"ip": "10.244.1.7"}],
        "hostIP": "192.168.0.11",
        "startTime": "2024-05-01T10:00:00Z",
        "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": None,
                        "lastTransitionTime": "2024-05-01T10:00:05Z"}],
        "containerStatuses": [{
            "name": "web", "ready": True, "restartCount": 0, "image": "nginx:1.27",
            "imageID": "docker.io/library/nginx@sha256:00", "containerID": "containerd://ab",
            "started": True,
            "state": {"running": {"startedAt": "2024-05-01T10:00:02Z"}},
        }],
    },
}

EVENT: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Event",
    "metadata": {"name": "web-0.17c9", "namespace": "default"},
    "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-0"},
    "reason": "Started",
    "message": "Started container web",
    "type": "Normal",
    "count": 1,
    "firstTimestamp": "2024-05-01T10:00:02Z",
    "eventTime": "2024-05-01T10:00:02.123456Z",
    "source": {"component": "podnet-agent", "host": "node-1"},
}


def with_change(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of obj with the field at `spec.ports.0.port`-style path set to value."""
    out = copy.deepcopy(obj)
    *parents, last = path.split(".")
    node: Any = out
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


# --- valid objects -----------------------------------------------------------------------------


@pytest.mark.parametrize("obj", [
    pytest.param(SERVICE, id="service"),
    pytest.param(POD, id="pod"),
    pytest.param(EVENT, id="event"),
    pytest.param({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                  "type": "Opaque", "data": {"password": "aHVudGVyMg==", "empty": ""},
                  "stringData": {"user": "admin"}}, id="secret"),
    pytest.param({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                  "metadata": {"name": "np"},
                  "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                           "policyTypes": ["Ingress"],
                           "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8",
                                                              "except": ["10.1.0.0/16"]}}],
                                        "ports": [{"port": 80, "endPort": 90},
                                                  {"port": "http", "protocol": "TCP"}]}]}},
                 id="networkpolicy"),
    pytest.param({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                  "metadata": {"name": "web-abc"}, "addressType": "IPv4",
                  "endpoints": [{"addresses": ["10.244.1.7"], "conditions": {"ready": True},
                                 "nodeName": "node-1",
                                 "targetRef": {"kind": "Pod", "name": "web-0"}}],
                  "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]},
                 id="endpointslice"),
    pytest.param({"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background",
                  "gracePeriodSeconds": 0, "preconditions": {"uid": "x"}}, id="deleteoptions"),
])
def test_valid_objects_have_no_findings(obj: dict[str, Any]) -> None:
    report = schema.check(obj["apiVersion"], obj["kind"], obj)
    assert (report.unknown, report.type_errors) == ([], [])
    assert report.ok
    assert report.decode_error() is None
    assert report.strict_error() is None


def test_null_is_accepted_everywhere() -> None:
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": None,
           "spec": {"ports": [None, {"port": None, "targetPort": None}], "selector": None}}
    assert schema.check("v1", "Service", obj).ok


def test_unknown_kind_reports_nothing() -> None:
    obj = {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"anything": 1}}
    report = schema.check("apps/v1", "Deployment", obj)
    assert (report.unknown, report.type_errors) == ([], [])
    assert schema.prune("apps/v1", "Deployment", obj) == obj


# --- unknown fields ----------------------------------------------------------------------------


@pytest.mark.parametrize(("api_version", "kind", "obj", "unknown"), [
    pytest.param("v1", "Service", {"colour": "red"}, ["colour"], id="top-level"),
    pytest.param("v1", "Service", {"metadata": {"name": "a", "nmae": "b"}}, ["metadata.nmae"],
                 id="metadata"),
    pytest.param("v1", "Service", {"spec": {"ports": [{"port": 80}, {"port": 81, "foo": 1}]}},
                 ["spec.ports[1].foo"], id="in-a-list"),
    pytest.param("v1", "Service", {"spec": {"Ports": []}}, ["spec.Ports"], id="case-sensitive"),
    pytest.param("v1", "Pod", {"spec": {"containers": [
        {"name": "c", "ports": [{"containerPort": 1}, {"containerPort": 2, "hostIp": "x"}]}]}},
                 ["spec.containers[0].ports[1].hostIp"], id="list-in-list"),
    pytest.param("v1", "Pod", {"spec": {"containers": [{"name": "c", "resources": {
        "limits": {"cpu": "1"}, "limit": {"cpu": "1"}}}]}},
                 ["spec.containers[0].resources.limit"], id="deep"),
    pytest.param("networking.k8s.io/v1", "Ingress", {"spec": {"rules": [{"http": {"paths": [
        {"path": "/", "backend": {"service": {"name": "web", "port": {"number": 80,
                                                                     "nunber": 1}}}}]}}]}},
                 ["spec.rules[0].http.paths[0].backend.service.port.nunber"], id="ingress"),
    pytest.param("v1", "Service", {"a": 1, "spec": {"b": 2, "ports": [{"c": 3}]}, "d": 4},
                 ["a", "spec.b", "spec.ports[0].c", "d"], id="document-order"),
])
def test_unknown_fields(api_version: str, kind: str, obj: dict[str, Any],
                        unknown: list[str]) -> None:
    report = schema.check(api_version, kind, obj)
    assert report.unknown == unknown
    assert report.type_errors == []


def test_status_and_type_meta_are_known() -> None:
    obj = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"},
           "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.11"}],
                      "capacity": {"cpu": "4", "pods": "110"}}}
    assert schema.check("v1", "Node", obj).ok


def test_unknown_fields_inside_a_map_of_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    # No served kind has a map of structs today; the walker must still handle one.
    spec = dict(schema._TYPES["core.v1.ServiceSpec"], byName="map[string]core.v1.ServicePort")
    monkeypatch.setitem(schema._TYPES, "core.v1.ServiceSpec", spec)
    obj = {"spec": {"byName": {"http": {"port": 80, "colour": "red"}, "dns": {"port": "x"}}}}
    report = schema.check("v1", "Service", obj)
    assert report.unknown == ["spec.byName.http.colour"]
    assert report.type_errors == ['spec.byName[dns].port: expected integer, got string "x"']
    assert schema.prune("v1", "Service", obj) == {
        "spec": {"byName": {"http": {"port": 80}, "dns": {"port": "x"}}}}


def test_strict_error_wording() -> None:
    report = schema.check("v1", "Service", {"spec": {"foo": 1, "ports": [{"bar": 2}]}})
    assert report.strict_error() == (
        'strict decoding error: unknown field "spec.foo", unknown field "spec.ports[0].bar"')


def test_free_form_fields_accept_anything() -> None:
    fields_v1 = {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "anything": [1, "x"]}
    obj = {"metadata": {"managedFields": [{"manager": "m", "fieldsV1": fields_v1}]}}
    assert schema.check("v1", "Service", obj).ok


# --- type errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(("obj", "readable", "decoder"), [
    pytest.param(with_change(SERVICE, "spec.ports.0.port", "abc"),
                 'spec.ports[0].port: expected integer, got string "abc"',
                 "json: cannot unmarshal string into Go struct field ServicePort.spec.ports.port"
                 " of type int32", id="string-for-int"),
    pytest.param(with_change(SERVICE, "spec.ports.0.port", 80.5),
                 "spec.ports[0].port: expected integer, got number 80.5",
                 "json: cannot unmarshal number 80.5 into Go struct field"
                 " ServicePort.spec.ports.port of type int32", id="float-for-int"),
    pytest.param(with_change(SERVICE, "spec.ports.0.port", True),
                 "spec.ports[0].port: expected integer, got boolean true",
                 "json: cannot unmarshal bool into Go struct field ServicePort.spec.ports.port"
                 " of type int32", id="bool-for-int"),
    pytest.param(with_change(SERVICE, "spec.ports.0.port", 2**31),
                 "spec.ports[0].port: expected 32-bit integer, got number 2147483648",
                 "json: cannot unmarshal number 2147483648 into Go struct field"
                 " ServicePort.spec.ports.port of type int32", id="int32-overflow"),
    pytest.param(with_change(SERVICE, "spec.ports.0.name", 80),
                 "spec.ports[0].name: expected string, got number 80",
                 "json: cannot unmarshal number into Go struct field ServicePort.spec.ports.name"
                 " of type string", id="number-for-string"),
    pytest.param(with_change(SERVICE, "spec.allocateLoadBalancerNodePorts", "yes"),
                 'spec.allocateLoadBalancerNodePorts: expected boolean, got string "yes"',
                 "json: cannot unmarshal string into Go struct field"
                 " ServiceSpec.spec.allocateLoadBalancerNodePorts of type bool", id="bool"),
    pytest.param(with_change(SERVICE, "spec.ports", {"port": 80}),
                 "spec.ports: expected array, got object",
                 "json: cannot unmarshal object into Go struct field ServiceSpec.spec.ports"
                 " of type []v1.ServicePort", id="object-for-list"),
    pytest.param(with_change(SERVICE, "spec.ports.1", "443"),
                 'spec.ports[1]: expected object, got string "443"',
                 "json: cannot unmarshal string into Go struct field ServiceSpec.spec.ports"
                 " of type v1.ServicePort", id="string-for-list-item"),
    pytest.param(with_change(SERVICE, "spec", []),
                 "spec: expected object, got array",
                 "json: cannot unmarshal array into Go struct field Service.spec"
                 " of type v1.ServiceSpec", id="array-for-struct"),
    pytest.param(with_change(SERVICE, "spec.clusterIPs", "10.96.0.50"),
                 'spec.clusterIPs: expected array, got string "10.96.0.50"',
                 "json: cannot unmarshal string into Go struct field ServiceSpec.spec.clusterIPs"
                 " of type []string", id="string-for-string-list"),
    pytest.param(with_change(POD, "spec.terminationGracePeriodSeconds", "30"),
                 'spec.terminationGracePeriodSeconds: expected integer, got string "30"',
                 "json: cannot unmarshal string into Go struct field"
                 " PodSpec.spec.terminationGracePeriodSeconds of type int64", id="int64"),
])
def test_type_errors(obj: dict[str, Any], readable: str, decoder: str) -> None:
    report = schema.check(obj["apiVersion"], obj["kind"], obj)
    assert report.type_errors == [readable]
    assert report.decode_error() == decoder
    assert report.unknown == []


@pytest.mark.parametrize(("value", "errors"), [
    pytest.param(8080, [], id="integer"),
    pytest.param("http", [], id="string"),
    pytest.param(1.5, ["spec.ports[0].targetPort: expected integer or string, got number 1.5"],
                 id="float"),
    pytest.param(False, ["spec.ports[0].targetPort: expected integer or string, got boolean false"],
                 id="bool"),
    pytest.param({"port": 1}, ["spec.ports[0].targetPort: expected integer or string, got object"],
                 id="object"),
])
def test_int_or_string(value: Any, errors: list[str]) -> None:
    obj = with_change(SERVICE, "spec.ports.0.targetPort", value)
    assert schema.check("v1", "Service", obj).type_errors == errors


def test_int_or_string_error_is_the_decoders_inner_int32_error() -> None:
    obj = with_change(SERVICE, "spec.ports.0.targetPort", True)
    assert schema.check("v1", "Service", obj).decode_error() == (
        "json: cannot unmarshal bool into Go struct field ServicePort.spec.ports.targetPort"
        " of type int32")


@pytest.mark.parametrize(("labels", "errors"), [
    pytest.param({"app": "web", "example.com/tier": "", "ANY key at all!": "v"}, [],
                 id="any-string-keys"),
    pytest.param({"app": 1, "ok": "x", "on": True},
                 ["metadata.labels[app]: expected string, got number 1",
                  "metadata.labels[on]: expected string, got boolean true"], id="non-strings"),
    pytest.param({"nested": {"a": "b"}},
                 ["metadata.labels[nested]: expected string, got object"], id="object-value"),
    pytest.param(["app=web"], ["metadata.labels: expected object, got array"], id="list"),
])
def test_free_form_string_maps(labels: Any, errors: list[str]) -> None:
    obj = with_change(SERVICE, "metadata.labels", labels)
    report = schema.check("v1", "Service", obj)
    assert report.type_errors == errors
    assert report.unknown == []


def test_map_value_error_names_the_map_field_for_go() -> None:
    obj = with_change(SERVICE, "metadata.labels", {"app": 1})
    assert schema.check("v1", "Service", obj).decode_error() == (
        "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels"
        " of type string")


@pytest.mark.parametrize(("value", "decoder"), [
    pytest.param("100m", None, id="milli"),
    pytest.param("1Gi", None, id="binary"),
    pytest.param("1.5", None, id="decimal"),
    pytest.param("+1e3", None, id="exponent"),
    pytest.param(" 2 ", None, id="spaces"),
    pytest.param(2, None, id="int"),
    pytest.param(0.5, None, id="float"),
    pytest.param("abc", schema._QUANTITY_FORMAT, id="letters"),
    pytest.param("", schema._QUANTITY_FORMAT, id="empty"),
    pytest.param("1Gb", schema._QUANTITY_FORMAT, id="bad-suffix-letter"),
    pytest.param("1mi", "unable to parse quantity's suffix", id="unknown-suffix"),
    pytest.param(True, schema._QUANTITY_FORMAT, id="bool"),
    pytest.param({"v": 1}, schema._QUANTITY_FORMAT, id="object"),
])
def test_quantities(value: Any, decoder: str | None) -> None:
    obj = with_change(POD, "spec.containers.0.resources.limits", {"cpu": value})
    report = schema.check("v1", "Pod", obj)
    assert report.decode_error() == decoder
    if decoder:
        assert report.type_errors[0].startswith(
            "spec.containers[0].resources.limits[cpu]: expected quantity, got ")


def test_quantity_scalar_field() -> None:
    obj = with_change(POD, "spec.volumes.0.emptyDir.sizeLimit", "lots")
    assert schema.check("v1", "Pod", obj).type_errors == [
        'spec.volumes[0].emptyDir.sizeLimit: expected quantity, got string "lots"']


@pytest.mark.parametrize(("field", "value", "decoder"), [
    pytest.param("metadata.creationTimestamp", "2024-05-01T10:00:00+02:00", None, id="offset"),
    pytest.param("metadata.creationTimestamp", "2024-05-01T10:00:00.123Z", None,
                 id="fraction"),
    pytest.param("metadata.creationTimestamp", "yesterday",
                 'parsing time "yesterday" as "2006-01-02T15:04:05Z07:00":'
                 ' cannot parse "yesterday" as "2006"', id="words"),
    pytest.param("metadata.creationTimestamp", "2024-05-01 10:00:00Z",
                 'parsing time "2024-05-01 10:00:00Z" as "2006-01-02T15:04:05Z07:00":'
                 ' cannot parse " 10:00:00Z" as "T"', id="space"),
    pytest.param("metadata.creationTimestamp", "2024-05-01T10:00:00",
                 'parsing time "2024-05-01T10:00:00" as "2006-01-02T15:04:05Z07:00":'
                 ' cannot parse "" as "Z07:00"', id="no-zone"),
    pytest.param("metadata.creationTimestamp", "2024-13-01T10:00:00Z",
                 'parsing time "2024-13-01T10:00:00Z": month out of range', id="month"),
    pytest.param("metadata.creationTimestamp", "2023-02-29T10:00:00Z",
                 'parsing time "2023-02-29T10:00:00Z": day out of range', id="day"),
    pytest.param("metadata.creationTimestamp", "2024-02-29T10:00:00Zjunk",
                 'parsing time "2024-02-29T10:00:00Zjunk": extra text: "junk"', id="extra"),
    pytest.param("metadata.creationTimestamp", 1714557600,
                 "json: cannot unmarshal number into Go struct field"
                 " ObjectMeta.metadata.creationTimestamp of type string", id="number"),
    pytest.param("eventTime", "2024-05-01T10:00:02.123456+00:00", None, id="micro"),
    pytest.param("eventTime", "2024-05-01T10:00:02Z",
                 'parsing time "2024-05-01T10:00:02Z" as "2006-01-02T15:04:05.000000Z07:00":'
                 ' cannot parse "Z" as ".000000"', id="micro-without-fraction"),
])
def test_times(field: str, value: Any, decoder: str | None) -> None:
    obj = with_change(EVENT, field, value)
    report = schema.check("v1", "Event", obj)
    assert report.decode_error() == decoder
    assert len(report.type_errors) == (1 if decoder else 0)


@pytest.mark.parametrize(("value", "offset"), [
    pytest.param("aHVudGVyMg==", None, id="padded"),
    pytest.param("YWJj", None, id="no-padding-needed"),
    pytest.param("YWJj\nZGVm\r\n", None, id="newlines"),
    pytest.param("", None, id="empty"),
    pytest.param("YWJ", 0, id="short-quantum"),
    pytest.param("YWJjZA", 4, id="missing-padding"),
    pytest.param("YW Jj", 2, id="space"),
    pytest.param("YQ=", 3, id="half-padding"),
    pytest.param("Y===", 1, id="early-padding"),
    pytest.param("YQ==YQ==", 4, id="after-padding"),
])
def test_secret_data_is_base64(value: str, offset: int | None) -> None:
    report = schema.check("v1", "Secret", {"data": {"k": value}})
    if offset is None:
        assert report.ok
    else:
        assert report.decode_error() == f"illegal base64 data at input byte {offset}"
        assert report.type_errors == [f"data[k]: expected base64 string, got string "
                                      f"{json.dumps(value)}"]
    assert schema.is_base64(value) is (offset is None)


def test_secret_data_must_be_strings() -> None:
    report = schema.check("v1", "Secret", {"data": {"k": 5}})
    assert report.decode_error() == (
        "json: cannot unmarshal number into Go struct field Secret.data of type []uint8")


def test_decode_error_prefers_the_first_unmarshaler_error() -> None:
    # Go's decoder saves type errors and goes on, but stops at an UnmarshalJSON error.
    obj = {"metadata": {"labels": {"a": 1}}, "spec": {"ports": [{"port": "x", "targetPort": []}]}}
    report = schema.check("v1", "Service", obj)
    assert len(report.type_errors) == 3
    assert report.decode_error() == (
        "json: cannot unmarshal array into Go struct field ServicePort.spec.ports.targetPort"
        " of type int32")
    only_saved = {"metadata": {"labels": {"a": 1}}, "spec": {"ports": [{"port": "x"}]}}
    assert schema.check("v1", "Service", only_saved).decode_error() == (
        "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels"
        " of type string")


def test_unknown_fields_and_type_errors_together() -> None:
    obj = {"spec": {"ports": [{"port": "80", "extra": True}]}}
    report = schema.check("v1", "Service", obj)
    assert report.unknown == ["spec.ports[0].extra"]
    assert report.type_errors == ['spec.ports[0].port: expected integer, got string "80"']


# --- prune -------------------------------------------------------------------------------------


def test_prune_removes_unknown_fields_only() -> None:
    obj = with_change(SERVICE, "spec.ports.0.colour", "red")
    obj["extra"] = {"a": 1}
    obj["metadata"]["nmae"] = "x"
    before = copy.deepcopy(obj)
    pruned = schema.prune("v1", "Service", obj)
    assert pruned == SERVICE
    assert obj == before  # the input is untouched


def test_prune_copies_deeply() -> None:
    pruned = schema.prune("v1", "Service", SERVICE)
    assert pruned == SERVICE
    pruned["spec"]["ports"][0]["port"] = 1
    pruned["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"] = {}
    assert SERVICE["spec"]["ports"][0]["port"] == 80
    assert SERVICE["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"] != {}


def test_prune_keeps_wrongly_typed_values() -> None:
    obj = {"spec": {"ports": "80", "foo": 1}}
    assert schema.prune("v1", "Service", obj) == {"spec": {"ports": "80"}}


# --- lookups -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("api_version", "kind", "path", "info"), [
    pytest.param("v1", "Service", ["spec", "ports"],
                 schema.FieldInfo("[]core.v1.ServicePort", "merge", "port"), id="ports"),
    pytest.param("v1", "Pod", ["spec", "containers", "ports"],
                 schema.FieldInfo("[]core.v1.ContainerPort", "merge", "containerPort"),
                 id="through-a-list"),
    pytest.param("v1", "Pod", ["spec", "volumes"],
                 schema.FieldInfo("[]core.v1.Volume", "merge,retainKeys", "name"),
                 id="retain-keys"),
    pytest.param("v1", "Pod", ["metadata", "finalizers"],
                 schema.FieldInfo("[]string", "merge", ""), id="set"),
    pytest.param("v1", "Service", ["spec", "selector"],
                 schema.FieldInfo("map[string]string"), id="map"),
    pytest.param("v1", "Service", ["spec", "ports", "targetPort"],
                 schema.FieldInfo("int-or-string"), id="scalar"),
    pytest.param("v1", "Service", ["spec", "nope"], None, id="unknown"),
    pytest.param("v1", "Service", ["spec", "selector", "app"], None, id="into-a-map-of-strings"),
    pytest.param("apps/v1", "Deployment", ["spec"], None, id="unknown-kind"),
])
def test_field_info(api_version: str, kind: str, path: list[str],
                    info: schema.FieldInfo | None) -> None:
    assert schema.field_info(api_version, kind, path) == info


# --- OpenAPI v3 --------------------------------------------------------------------------------


def test_openapi_service_post_lists_field_validation() -> None:
    doc = schema.openapi_v3("", "v1")
    post = doc["paths"]["/api/v1/namespaces/{namespace}/services"]["post"]
    names = [p["name"] for p in post["parameters"]]
    assert names == ["dryRun", "fieldManager", "fieldValidation"]
    assert post["x-kubernetes-group-version-kind"] == {"group": "", "kind": "Service",
                                                       "version": "v1"}
    assert post["x-kubernetes-action"] == "post"
    assert post["operationId"] == "createCoreV1NamespacedService"


def test_openapi_every_patch_operation_supports_field_validation() -> None:
    # kubectl's query-param verifier stops at the first PATCH whose GVK matches, in map order.
    for group, version in (("", "v1"), ("networking.k8s.io", "v1"), ("discovery.k8s.io", "v1")):
        doc = schema.openapi_v3(group, version)
        patches = [ops["patch"] for ops in doc["paths"].values() if "patch" in ops]
        assert patches
        for op in patches:
            assert [p["name"] for p in op["parameters"]] == [
                "dryRun", "fieldManager", "fieldValidation", "force"]
            assert sorted(op["requestBody"]["content"]) == [
                "application/json-patch+json", "application/merge-patch+json",
                "application/strategic-merge-patch+json"]


def test_openapi_service_schema() -> None:
    schemas = schema.openapi_v3("", "v1")["components"]["schemas"]
    service = schemas["io.k8s.api.core.v1.Service"]
    assert service["x-kubernetes-group-version-kind"] == [
        {"group": "", "kind": "Service", "version": "v1"}]
    assert service["properties"]["spec"] == {
        "allOf": [{"$ref": "#/components/schemas/io.k8s.api.core.v1.ServiceSpec"}]}
    assert service["properties"]["metadata"] == {
        "allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1."
                           "ObjectMeta"}]}
    ports = schemas["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"]
    assert ports == {
        "type": "array",
        "items": {"allOf": [{"$ref": "#/components/schemas/io.k8s.api.core.v1.ServicePort"}]},
        "x-kubernetes-patch-merge-key": "port",
        "x-kubernetes-patch-strategy": "merge",
    }
    port = schemas["io.k8s.api.core.v1.ServicePort"]
    assert port["required"] == ["port"]
    assert port["properties"]["port"] == {"type": "integer", "format": "int32"}
    assert port["properties"]["targetPort"] == {
        "allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.util.intstr."
                           "IntOrString"}]}
    assert schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] == {
        "format": "int-or-string", "oneOf": [{"type": "integer"}, {"type": "string"}]}
    assert schemas["io.k8s.api.core.v1.ServiceList"]["x-kubernetes-group-version-kind"] == [
        {"group": "", "kind": "ServiceList", "version": "v1"}]


def test_openapi_paths_of_a_namespaced_and_a_cluster_resource() -> None:
    paths = schema.openapi_v3("", "v1")["paths"]
    assert sorted(p for p in paths if "/services" in p) == [
        "/api/v1/namespaces/{namespace}/services",
        "/api/v1/namespaces/{namespace}/services/{name}",
        "/api/v1/namespaces/{namespace}/services/{name}/status",
        "/api/v1/services",
    ]
    assert sorted(p for p in paths if "/nodes" in p) == [
        "/api/v1/nodes", "/api/v1/nodes/{name}", "/api/v1/nodes/{name}/status"]
    one = paths["/api/v1/namespaces/{namespace}/services/{name}"]
    assert sorted(k for k in one if k != "parameters") == ["delete", "get", "patch", "put"]
    assert [p["name"] for p in one["parameters"]] == ["name", "namespace", "pretty"]
    assert paths["/api/v1/services"]["get"]["operationId"] == "listCoreV1ServiceForAllNamespaces"
    assert (paths["/api/v1/namespaces/{namespace}/services"]["delete"]["operationId"]
            == "deleteCoreV1CollectionNamespacedService")


def test_openapi_group_document_holds_its_kinds_and_referenced_core_types() -> None:
    doc = schema.openapi_v3("networking.k8s.io", "v1")
    assert sorted(doc["paths"])[0] == "/apis/networking.k8s.io/v1/ingressclasses"
    schemas = doc["components"]["schemas"]
    assert "io.k8s.api.networking.v1.NetworkPolicy" in schemas
    assert "io.k8s.api.core.v1.TypedLocalObjectReference" in schemas  # Ingress backends
    assert "io.k8s.api.core.v1.Pod" not in schemas


@pytest.mark.parametrize(("group", "version"), [("", "v1"), ("networking.k8s.io", "v1"),
                                                ("discovery.k8s.io", "v1")])
def test_openapi_refs_all_resolve(group: str, version: str) -> None:
    doc = schema.openapi_v3(group, version)
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(doc)))
    assert refs <= set(doc["components"]["schemas"])
    kinds = {gvk["kind"] for s in doc["components"]["schemas"].values()
             for gvk in s.get("x-kubernetes-group-version-kind", []) if gvk["version"] == version
             and gvk["group"] == group}
    assert {r.kind for r in RESOURCES if r.group == group} <= kinds


def test_openapi_is_deterministic_and_fresh() -> None:
    a, b = schema.openapi_v3("", "v1"), schema.openapi_v3("", "v1")
    assert json.dumps(a) == json.dumps(b)
    a["paths"].clear()
    assert schema.openapi_v3("", "v1")["paths"]


def test_openapi_unknown_group_version() -> None:
    with pytest.raises(LookupError):
        schema.openapi_v3("apps", "v1")


def test_openapi_index() -> None:
    index = schema.openapi_v3_index()
    assert sorted(index["paths"]) == ["api/v1", "apis/discovery.k8s.io/v1",
                                      "apis/networking.k8s.io/v1"]
    url = index["paths"]["api/v1"]["serverRelativeURL"]
    assert re.fullmatch(r"/openapi/v3/api/v1\?hash=[0-9A-F]{128}", url)
    assert url.endswith(schema.openapi_v3_hash("", "v1"))
    assert schema.openapi_v3_hash("", "v1") != schema.openapi_v3_hash("networking.k8s.io", "v1")


# --- the generated file ------------------------------------------------------------------------


def test_schema_json_records_its_source() -> None:
    assert schema.SOURCE.startswith("tools/gen_schema.py from the kubernetes python client ")


def test_schema_json_is_what_the_generator_writes() -> None:
    """Regenerate with tools/gen_schema.py after changing it or the client."""
    if importlib.util.find_spec("kubernetes") is None:
        pytest.skip("the kubernetes client is not installed")
    import kubernetes

    if not schema.SOURCE.endswith(" " + kubernetes.__version__):
        pytest.skip(f"schema.json comes from another client than {kubernetes.__version__}")
    spec = importlib.util.spec_from_file_location("gen_schema", ROOT / "tools" / "gen_schema.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    text = (ROOT / "podnet" / "api" / "schema.json").read_text()
    assert gen.render(gen.build()) == text
