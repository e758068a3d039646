"""Validation of ObjectMeta and the core/v1 kinds: exact messages, as Kubernetes words them."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from typing import Any

import pytest

from podnet.api.defaults import apply_defaults
from podnet.api.validation import validate, validate_status

Obj = dict[str, Any]
Mutate = Callable[[Obj], Any]

DNS_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                 "or '-', and must start and end with an alphanumeric character (e.g. 'my-name',"
                 "  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
DNS_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                     "characters, '-' or '.', and must start and end with an alphanumeric "
                     "character (e.g. 'example.com', regex used for validation is "
                     "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
               "start with an alphabetic character, and end with an alphanumeric character "
               "(e.g. 'my-name',  or 'abc-123', regex used for validation is "
               "'[a-z]([-a-z0-9]*[a-z0-9])?')")
NAME_PART_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must "
                 "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  "
                 "or '123-abc', regex used for validation is "
                 "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
IP_MSG = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
CIDR_MSG = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
PORT_RANGE_MSG = "must be between 1 and 65535, inclusive"


def errors(obj: Obj, old: Obj | None = None, **kwargs: Any) -> list[str]:
    """Default then validate a copy of `obj`, as the server does; the messages."""
    obj = copy.deepcopy(obj)
    apply_defaults(obj)
    if old is not None:
        old = copy.deepcopy(old)
        apply_defaults(old)
    return [str(e) for e in validate(obj, old, **kwargs)]


def status_errors(obj: Obj, old: Obj | None = None) -> list[str]:
    obj = copy.deepcopy(obj)
    apply_defaults(obj)
    return [str(e) for e in validate_status(obj, old)]


def defaulted(obj: Obj) -> Obj:
    obj = copy.deepcopy(obj)
    apply_defaults(obj)
    return obj


def mutated(base: Obj, mutate: Mutate) -> Obj:
    obj = copy.deepcopy(base)
    mutate(obj)
    return obj


# -- fixtures --------------------------------------------------------------------------------

POD: Obj = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
    "spec": {
        "containers": [{
            "name": "app", "image": "nginx:1.25",
            "ports": [{"name": "http", "containerPort": 80}],
            "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "MODE", "value": "prod"}],
            "readinessProbe": {"httpGet": {"port": "http"}},
            "livenessProbe": {"tcpSocket": {"port": 80}},
            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        }],
        "initContainers": [{"name": "init", "image": "busybox", "command": ["true"]}],
        "volumes": [{"name": "data"}, {"name": "cfg", "secret": {"secretName": "cfg"}}],
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web",
                         "effect": "NoSchedule"}],
    },
}

SERVICE: Obj = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80,
                                                   "targetPort": "http"}]},
}

NAMESPACE: Obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}

NODE: Obj = {
    "apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
    "spec": {"podCIDR": "10.244.1.0/24",
             "taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]},
    "status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.10"},
                             {"type": "Hostname", "address": "node-1"}],
               "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}},
}

SECRET: Obj = {
    "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls", "namespace": "default"},
    "type": "kubernetes.io/tls", "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"},
}

EVENT: Obj = {
    "apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.17a9", "namespace": "default"},
    "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
    "reason": "Started", "message": "Started container app", "type": "Normal", "count": 1,
}


def ctr(obj: Obj, i: int = 0) -> Obj:
    return obj["spec"]["containers"][i]  # type: ignore[no-any-return]


@pytest.mark.parametrize("obj", [
    pytest.param(POD, id="pod"), pytest.param(SERVICE, id="service"),
    pytest.param(NAMESPACE, id="namespace"), pytest.param(NODE, id="node"),
    pytest.param(SECRET, id="secret"), pytest.param(EVENT, id="event"),
])
def test_valid_objects_have_no_errors(obj: Obj) -> None:
    assert errors(obj) == []
    assert errors(obj, old=obj) == []


def test_unknown_kinds_and_non_objects() -> None:
    assert validate({"apiVersion": "example.com/v1", "kind": "Widget", "spec": 5}) == []
    assert [str(e) for e in validate("pod")] == [  # type: ignore[arg-type]
        ': Invalid value: "pod": must be of type object']


# -- metadata ----------------------------------------------------------------------------------

@pytest.mark.parametrize("base, mutate, want", [
    pytest.param(POD, lambda o: o["metadata"].pop("name"),
                 ["metadata.name: Required value: name or generateName is required"],
                 id="name-required"),
    pytest.param(POD, lambda o: o["metadata"].update(name="", generateName="web-"), [],
                 id="generate-name-only"),
    pytest.param(POD, lambda o: o["metadata"].update(generateName="Web-"),
                 [f'metadata.generateName: Invalid value: "Web-": {DNS_SUBDOMAIN_MSG}'],
                 id="generate-name-invalid"),
    pytest.param(POD, lambda o: o["metadata"].update(name="Web_1"),
                 [f'metadata.name: Invalid value: "Web_1": {DNS_SUBDOMAIN_MSG}'],
                 id="pod-name-subdomain"),
    pytest.param(POD, lambda o: o["metadata"].update(name="web.v1"), [], id="pod-name-dots"),
    pytest.param(SERVICE, lambda o: o["metadata"].update(name="1web"),
                 [f'metadata.name: Invalid value: "1web": {DNS1035_MSG}'],
                 id="service-name-dns1035"),
    pytest.param(NAMESPACE, lambda o: o["metadata"].update(name="team.a"),
                 [f'metadata.name: Invalid value: "team.a": {DNS_LABEL_MSG}'],
                 id="namespace-name-label"),
    pytest.param(POD, lambda o: o["metadata"].pop("namespace"),
                 ["metadata.namespace: Required value"], id="namespace-required"),
    pytest.param(POD, lambda o: o["metadata"].update(namespace="Team_A"),
                 [f'metadata.namespace: Invalid value: "Team_A": {DNS_LABEL_MSG}'],
                 id="namespace-invalid"),
    pytest.param(NODE, lambda o: o["metadata"].update(namespace="default"),
                 ["metadata.namespace: Forbidden: not allowed on this type"],
                 id="cluster-scoped-namespace"),
    pytest.param(POD, lambda o: o["metadata"]["labels"].update({"bad key": "v"}),
                 [f'metadata.labels: Invalid value: "bad key": {NAME_PART_MSG}'],
                 id="label-key"),
    pytest.param(POD, lambda o: o["metadata"]["labels"].update(app="x" * 64),
                 [f'metadata.labels: Invalid value: "{"x" * 64}": must be no more than 63 '
                  "characters"], id="label-value-long"),
    pytest.param(POD, lambda o: o["metadata"].update(annotations={"Example.com/Key": "v"}), [],
                 id="annotation-key-case-insensitive"),
    pytest.param(POD, lambda o: o["metadata"].update(annotations={"a/b/c": "v"}),
                 ['metadata.annotations: Invalid value: "a/b/c": a qualified name must consist '
                  "of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                  "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
                  "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an "
                  "optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"],
                 id="annotation-key"),
    pytest.param(POD, lambda o: o["metadata"].update(annotations={"big": "x" * 262142}),
                 ["metadata.annotations: Too long: must have at most 262144 bytes"],
                 id="annotations-too-big"),
    pytest.param(POD, lambda o: o["metadata"].update(annotations={"big": "x" * 262141}), [],
                 id="annotations-at-limit"),
    pytest.param(POD, lambda o: o["metadata"].update(
        finalizers=["kubernetes", "orphan", "example.com/cleanup"]), [], id="finalizers-ok"),
    pytest.param(POD, lambda o: o["metadata"].update(finalizers=["cleanup"]),
                 ['metadata.finalizers[0]: Invalid value: "cleanup": name is neither a standard '
                  "finalizer name nor is it fully qualified"], id="finalizer-unqualified"),
    pytest.param(POD, lambda o: o["metadata"].update(finalizers=["orphan", "foregroundDeletion"]),
                 ['metadata.finalizers: Invalid value: ["orphan","foregroundDeletion"]: '
                  "finalizer orphan and foregroundDeletion cannot be both set"],
                 id="finalizers-conflict"),
    pytest.param(POD, lambda o: o["metadata"].update(ownerReferences=[
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1"}]),
        ['metadata.ownerReferences.uid: Invalid value: "": must not be empty'],
        id="owner-uid"),
    pytest.param(POD, lambda o: o["metadata"].update(ownerReferences=[
        {"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "1"}]),
        ['metadata.ownerReferences: Invalid value: {"apiVersion":"v1","kind":"Event","name":"e",'
         '"uid":"1"}: /v1, Kind=Event is disallowed from being an owner'], id="owner-banned"),
    pytest.param(POD, lambda o: o["metadata"].update(generation=-1),
                 ["metadata.generation: Invalid value: -1: must be greater than or equal to 0"],
                 id="generation"),
    pytest.param(POD, lambda o: o["metadata"].update(labels="app=web"),
                 ['metadata.labels: Invalid value: "app=web": must be of type object'],
                 id="labels-wrong-type"),
])
def test_metadata(base: Obj, mutate: Mutate, want: list[str]) -> None:
    assert errors(mutated(base, mutate)) == want


def test_two_controller_owners() -> None:
    refs = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": n, "uid": n,
             "controller": True} for n in ("a", "b")]
    got = errors(mutated(POD, lambda o: o["metadata"].update(ownerReferences=refs)))
    assert len(got) == 1
    assert got[0].startswith("metadata.ownerReferences: Invalid value: [")
    assert got[0].endswith('Only one reference can have Controller set to true. Found "true" '
                           "in references for ReplicaSet/a and ReplicaSet/b")


@pytest.mark.parametrize("mutate, want", [
    pytest.param(lambda o: o["metadata"].update(name="other"),
                 ['metadata.name: Invalid value: "other": field is immutable'], id="name"),
    pytest.param(lambda o: o["metadata"].update(namespace="other"),
                 ['metadata.namespace: Invalid value: "other": field is immutable'],
                 id="namespace"),
    pytest.param(lambda o: o["metadata"].update(uid="u2"),
                 ['metadata.uid: Invalid value: "u2": field is immutable'], id="uid"),
    pytest.param(lambda o: o["metadata"].pop("uid"), [], id="uid-left-to-server"),
    pytest.param(lambda o: o["metadata"]["labels"].update(tier="front"), [], id="labels"),
])
def test_metadata_update(mutate: Mutate, want: list[str]) -> None:
    old = mutated(POD, lambda o: o["metadata"].update(uid="u1"))
    assert errors(mutated(old, mutate), old) == want


def test_no_new_finalizers_while_deleting() -> None:
    old = mutated(POD, lambda o: o["metadata"].update(
        deletionTimestamp="2024-01-01T00:00:00Z", finalizers=["example.com/a"]))
    new = mutated(old, lambda o: o["metadata"].update(
        finalizers=["example.com/a", "example.com/b"]))
    assert errors(new, old) == [
        'metadata.finalizers: Forbidden: no new finalizers can be added if the object is being '
        'deleted, found new finalizers []string{"example.com/b"}']


# -- pods ----------------------------------------------------------------------------------------

POD_CASES = [
    pytest.param(lambda o: o["spec"].update(containers=[]), ["spec.containers: Required value"],
                 id="no-containers"),
    pytest.param(lambda o: o["spec"]["containers"].append({"name": "app", "image": "x"}),
                 ['spec.containers[1].name: Duplicate value: "app"'], id="duplicate-container"),
    pytest.param(lambda o: o["spec"]["initContainers"][0].update(name="app"),
                 ['spec.initContainers[0].name: Duplicate value: "app"'],
                 id="init-container-name-clash"),
    pytest.param(lambda o: ctr(o).update(name="App_1"),
                 [f'spec.containers[0].name: Invalid value: "App_1": {DNS_LABEL_MSG}'],
                 id="container-name"),
    pytest.param(lambda o: ctr(o).pop("image"), ["spec.containers[0].image: Required value"],
                 id="image-required"),
    pytest.param(lambda o: ctr(o).update(image=" nginx"),
                 ['spec.containers[0].image: Invalid value: " nginx": must not have leading or '
                  "trailing whitespace"], id="image-whitespace"),
    pytest.param(lambda o: ctr(o)["ports"][0].update(containerPort=0),
                 ["spec.containers[0].ports[0].containerPort: Required value"],
                 id="container-port-required"),
    pytest.param(lambda o: ctr(o)["ports"][0].update(containerPort=70000),
                 [f"spec.containers[0].ports[0].containerPort: Invalid value: 70000: "
                  f"{PORT_RANGE_MSG}"], id="container-port-range"),
    pytest.param(lambda o: ctr(o)["ports"][0].update(hostPort=65536),
                 [f"spec.containers[0].ports[0].hostPort: Invalid value: 65536: "
                  f"{PORT_RANGE_MSG}"], id="host-port-range"),
    pytest.param(lambda o: ctr(o)["ports"][0].update(protocol="HTTP"),
                 ['spec.containers[0].ports[0].protocol: Unsupported value: "HTTP": supported '
                  'values: "SCTP", "TCP", "UDP"'], id="protocol"),
    pytest.param(lambda o: ctr(o)["ports"].append({"name": "http", "containerPort": 81}),
                 ['spec.containers[0].ports[1].name: Duplicate value: "http"'],
                 id="port-name-duplicate"),
    pytest.param(lambda o: ctr(o)["ports"][0].update(name="abcdefghijklmnop"),
                 ['spec.containers[0].ports[0].name: Invalid value: "abcdefghijklmnop": must be '
                  "no more than 15 characters"], id="port-name-iana"),
    pytest.param(lambda o: ctr(o)["env"][1].update(name="A=B"),
                 ['spec.containers[0].env[1].name: Invalid value: "A=B": a valid environment '
                  "variable name must consist only of printable ASCII characters other than "
                  "'='"], id="env-name"),
    pytest.param(lambda o: ctr(o)["env"][1].pop("name"),
                 ["spec.containers[0].env[1].name: Required value"], id="env-name-required"),
    pytest.param(lambda o: ctr(o)["env"][0].update(valueFrom={}),
                 ['spec.containers[0].env[0].valueFrom: Invalid value: "": must specify one of: '
                  "`fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"],
                 id="env-value-from-empty"),
    pytest.param(lambda o: ctr(o)["env"][0].update(value="x"),
                 ['spec.containers[0].env[0].valueFrom: Invalid value: "": may not be specified '
                  "when `value` is not empty"], id="env-value-and-value-from"),
    pytest.param(lambda o: ctr(o)["env"][0]["valueFrom"].update(
        secretKeyRef={"name": "s", "key": "k"}),
        ['spec.containers[0].env[0].valueFrom: Invalid value: "": may not have more than one '
         "field specified at a time"], id="env-two-sources"),
    pytest.param(lambda o: ctr(o)["env"][0]["valueFrom"]["fieldRef"].update(
        fieldPath="spec.foo"),
        ['spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Invalid value: "spec.foo": '
         "error converting fieldPath: field label not supported: spec.foo"],
        id="field-ref-unknown"),
    pytest.param(lambda o: ctr(o)["env"][0]["valueFrom"]["fieldRef"].update(
        fieldPath="status.phase"),
        ['spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: '
         '"status.phase": supported values: "metadata.name", "metadata.namespace", '
         '"metadata.uid", "spec.nodeName", "spec.serviceAccountName", "status.hostIP", '
         '"status.hostIPs", "status.podIP", "status.podIPs"'], id="field-ref-not-for-env"),
    pytest.param(lambda o: ctr(o)["env"][0]["valueFrom"]["fieldRef"].update(
        fieldPath="metadata.labels['app']"), [], id="field-ref-label-subscript"),
    pytest.param(lambda o: ctr(o)["env"][0].update(valueFrom={"secretKeyRef": {"name": "s"}}),
                 ["spec.containers[0].env[0].valueFrom.secretKeyRef.key: Required value"],
                 id="secret-key-ref-key"),
    pytest.param(lambda o: o["spec"].update(restartPolicy="Sometimes"),
                 ['spec.restartPolicy: Unsupported value: "Sometimes": supported values: '
                  '"Always", "OnFailure", "Never"'], id="restart-policy"),
    pytest.param(lambda o: o["spec"].update(dnsPolicy="Cluster"),
                 ['spec.dnsPolicy: Unsupported value: "Cluster": supported values: '
                  '"ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"'],
                 id="dns-policy"),
    pytest.param(lambda o: o["spec"].update(dnsPolicy="None"),
                 ["spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` "
                  "is None"], id="dns-none-needs-config"),
    pytest.param(lambda o: o["spec"].update(dnsPolicy="None", dnsConfig={"searches": ["a"]}),
                 ["spec.dnsConfig.nameservers: Required value: must provide at least one DNS "
                  "nameserver when `dnsPolicy` is None"], id="dns-none-needs-nameserver"),
    pytest.param(lambda o: o["spec"].update(dnsPolicy="None", dnsConfig={
        "nameservers": ["10.96.0.10"], "searches": ["svc.cluster.local."]}), [],
        id="dns-none-ok"),
    pytest.param(lambda o: o["spec"].update(dnsConfig={
        "nameservers": ["1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4"]}),
        ['spec.dnsConfig.nameservers: Invalid value: ["1.1.1.1","1.1.1.2","1.1.1.3","1.1.1.4"]:'
         " must not have more than 3 nameservers"], id="dns-nameservers-max"),
    pytest.param(lambda o: o["spec"].update(dnsConfig={"nameservers": ["dns"]}),
                 [f'spec.dnsConfig.nameservers[0]: Invalid value: "dns": {IP_MSG}'],
                 id="dns-nameserver-ip"),
    pytest.param(lambda o: o["spec"].update(dnsConfig={"searches": [f"s{i}" for i in range(33)]}),
                 ["spec.dnsConfig.searches: Invalid value: [" + ",".join(
                     f'"s{i}"' for i in range(33)) + "]: must not have more than 32 search "
                  "paths"], id="dns-searches-max"),
    pytest.param(lambda o: o["spec"].update(hostname="Web_1"),
                 [f'spec.hostname: Invalid value: "Web_1": {DNS_LABEL_MSG}'], id="hostname"),
    pytest.param(lambda o: o["spec"].update(subdomain="a.b"),
                 [f'spec.subdomain: Invalid value: "a.b": {DNS_LABEL_MSG}'], id="subdomain"),
    pytest.param(lambda o: o["spec"].update(nodeName="Node_1"),
                 [f'spec.nodeName: Invalid value: "Node_1": {DNS_SUBDOMAIN_MSG}'],
                 id="node-name"),
    pytest.param(lambda o: o["spec"].update(nodeSelector={"disk type": "ssd"}),
                 [f'spec.nodeSelector: Invalid value: "disk type": {NAME_PART_MSG}'],
                 id="node-selector"),
    pytest.param(lambda o: o["spec"].update(terminationGracePeriodSeconds=-1),
                 ["spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than "
                  "or equal to 0"], id="grace-period"),
    pytest.param(lambda o: o["spec"].update(activeDeadlineSeconds=0),
                 ["spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and "
                  "2147483647, inclusive"], id="active-deadline"),
    pytest.param(lambda o: ctr(o).update(livenessProbe={}),
                 ["spec.containers[0].livenessProbe: Required value: must specify a handler "
                  "type"], id="probe-no-handler"),
    pytest.param(lambda o: ctr(o).update(livenessProbe={"exec": {"command": ["true"]},
                                                        "tcpSocket": {"port": 80}}),
                 ["spec.containers[0].livenessProbe.tcpSocket: Forbidden: may not specify more "
                  "than 1 handler type"], id="probe-two-handlers"),
    pytest.param(lambda o: ctr(o).update(livenessProbe={"exec": {}}),
                 ["spec.containers[0].livenessProbe.exec.command: Required value"],
                 id="probe-exec-command"),
    pytest.param(lambda o: ctr(o)["livenessProbe"].update(successThreshold=2),
                 ["spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must "
                  "be 1"], id="liveness-success-threshold"),
    pytest.param(lambda o: ctr(o)["readinessProbe"].update(successThreshold=2), [],
                 id="readiness-success-threshold"),
    pytest.param(lambda o: ctr(o)["livenessProbe"].update(periodSeconds=-1),
                 ["spec.containers[0].livenessProbe.periodSeconds: Invalid value: -1: must be "
                  "greater than or equal to 0"], id="probe-period"),
    pytest.param(lambda o: ctr(o)["readinessProbe"]["httpGet"].update(port="HTTP"),
                 ['spec.containers[0].readinessProbe.httpGet.port: Invalid value: "HTTP": must '
                  "contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                  'spec.containers[0].readinessProbe.httpGet.port: Invalid value: "HTTP": must '
                  "contain at least one letter (a-z)"], id="probe-port-name"),
    pytest.param(lambda o: ctr(o)["readinessProbe"]["httpGet"].update(scheme="FTP"),
                 ['spec.containers[0].readinessProbe.httpGet.scheme: Unsupported value: "FTP": '
                  'supported values: "HTTP", "HTTPS"'], id="probe-scheme"),
    pytest.param(lambda o: ctr(o)["livenessProbe"].update(tcpSocket={"port": 0}),
                 [f"spec.containers[0].livenessProbe.tcpSocket.port: Invalid value: 0: "
                  f"{PORT_RANGE_MSG}"], id="probe-port-number"),
    pytest.param(lambda o: ctr(o).update(restartPolicy="Always"),
                 ["spec.containers[0].restartPolicy: Forbidden: may not be set for non-init "
                  "containers"], id="restart-policy-on-container"),
    pytest.param(lambda o: o["spec"]["initContainers"][0].update(restartPolicy="Never"),
                 ['spec.initContainers[0].restartPolicy: Unsupported value: "Never": supported '
                  'values: "Always"'], id="init-restart-policy"),
    pytest.param(lambda o: o["spec"]["initContainers"][0].update(
        readinessProbe={"exec": {"command": ["true"]}}),
        ["spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers "
         "without restartPolicy=Always"], id="init-probe"),
    pytest.param(lambda o: o["spec"]["initContainers"][0].update(
        restartPolicy="Always", readinessProbe={"exec": {"command": ["true"]}}), [],
        id="sidecar-probe"),
    pytest.param(lambda o: ctr(o).update(imagePullPolicy="Sometimes"),
                 ['spec.containers[0].imagePullPolicy: Unsupported value: "Sometimes": '
                  'supported values: "Always", "IfNotPresent", "Never"'], id="pull-policy"),
    pytest.param(lambda o: o["spec"].update(hostNetwork=True), [], id="host-network-defaulted"),
    pytest.param(lambda o: (o["spec"].update(hostNetwork=True),
                            ctr(o)["ports"][0].update(hostPort=8080)),
                 ["spec.containers[0].ports[0].hostPort: Invalid value: 8080: must match "
                  "`containerPort` when `hostNetwork` is true"], id="host-network-host-port"),
    pytest.param(lambda o: ctr(o)["volumeMounts"][0].update(name="nope"),
                 ['spec.containers[0].volumeMounts[0].name: Not found: "nope"'],
                 id="volume-mount-unknown"),
    pytest.param(lambda o: o["spec"]["volumes"].append({"name": "data"}),
                 ['spec.volumes[2].name: Duplicate value: "data"'], id="volume-duplicate"),
    pytest.param(lambda o: o["spec"]["volumes"][1].update(emptyDir={}),
                 ["spec.volumes[1].secret: Forbidden: may not specify more than 1 volume type"],
                 id="volume-two-sources"),
    pytest.param(lambda o: ctr(o)["resources"].update(requests={"cpu": "1"}),
                 ['spec.containers[0].resources.requests: Invalid value: "1": must be less '
                  "than or equal to cpu limit of 500m"], id="requests-over-limits"),
    pytest.param(lambda o: ctr(o)["resources"]["limits"].update(cpu="lots"),
                 [f'spec.containers[0].resources.{part}[cpu]: Invalid value: "lots": quantities '
                  "must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)"
                  "$'" for part in ("limits", "requests")],  # requests default to limits
                 id="bad-quantity"),
    pytest.param(lambda o: ctr(o)["resources"].update(requests={"gpu": "1"}),
                 ['spec.containers[0].resources.requests[gpu]: Invalid value: "gpu": must be a '
                  "standard resource type or fully qualified",
                  'spec.containers[0].resources.requests[gpu]: Invalid value: "gpu": must be a '
                  "standard resource for containers"], id="resource-name"),
    pytest.param(lambda o: o["spec"]["tolerations"][0].update(key=""),
                 ['spec.tolerations[0].operator: Invalid value: "Equal": operator must be '
                  'Exists when `key` is empty, which means "match all values and all keys"'],
                 id="toleration-empty-key"),
    pytest.param(lambda o: o["spec"]["tolerations"][0].update(effect="Never"),
                 ['spec.tolerations[0].effect: Unsupported value: "Never": supported values: '
                  '"NoSchedule", "PreferNoSchedule", "NoExecute"'], id="toleration-effect"),
    pytest.param(lambda o: o["spec"]["tolerations"][0].update(tolerationSeconds=30),
                 ['spec.tolerations[0].effect: Invalid value: "NoSchedule": effect must be '
                  "'NoExecute' when `tolerationSeconds` is set"], id="toleration-seconds"),
    pytest.param(lambda o: o["spec"].update(ephemeralContainers=[{"name": "dbg",
                                                                   "image": "busybox"}]),
                 ["spec.ephemeralContainers: Forbidden: cannot be set on create"],
                 id="ephemeral-on-create"),
    pytest.param(lambda o: o["spec"].update(containers="app"),
                 ['spec.containers: Invalid value: "app": must be of type array'],
                 id="containers-wrong-type"),
    pytest.param(lambda o: ctr(o)["ports"][0].update(containerPort="80"),
                 ['spec.containers[0].ports[0].containerPort: Invalid value: "80": must be of '
                  "type integer"], id="port-wrong-type"),
]


@pytest.mark.parametrize("mutate, want", POD_CASES)
def test_pod(mutate: Mutate, want: list[str]) -> None:
    assert errors(mutated(POD, mutate)) == want


UPDATABLE = ("pod updates may not change fields other than `spec.containers[*].image`,"
             "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
             "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
             "(allow it to be set to 1 if it was previously negative)")


@pytest.mark.parametrize("mutate, want", [
    pytest.param(lambda o: ctr(o).update(image="nginx:1.26"), [], id="image"),
    pytest.param(lambda o: o["spec"]["initContainers"][0].update(image="busybox:1"), [],
                 id="init-image"),
    pytest.param(lambda o: o["spec"].update(activeDeadlineSeconds=60), [], id="set-deadline"),
    pytest.param(lambda o: o["spec"]["tolerations"].append(
        {"key": "x", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}), [],
        id="add-toleration"),
    pytest.param(lambda o: o["spec"]["tolerations"][0].update(value="api"),
                 ["spec.tolerations: Forbidden: existing toleration can not be modified except "
                  "its tolerationSeconds"], id="modify-toleration"),
    pytest.param(lambda o: o["spec"]["containers"].append({"name": "b", "image": "b"}),
                 ["spec.containers: Forbidden: pod updates may not add or remove containers"],
                 id="add-container"),
    pytest.param(lambda o: o["spec"].update(hostNetwork=False), [],
                 id="zero-value-is-unset"),
])
def test_pod_update(mutate: Mutate, want: list[str]) -> None:
    stored = defaulted(POD)
    assert errors(mutated(stored, mutate), stored) == want


def test_pod_update_other_fields_forbidden() -> None:
    new = mutated(POD, lambda o: (ctr(o)["ports"][0].update(containerPort=8080),
                                  o["spec"].update(dnsPolicy="Default")))
    got = errors(new, POD)
    assert got == [f"spec: Forbidden: {UPDATABLE}\n  changed: "
                   "spec.containers[0].ports[0].containerPort, spec.dnsPolicy"]


def test_pod_update_active_deadline_only_decreases() -> None:
    old = mutated(POD, lambda o: o["spec"].update(activeDeadlineSeconds=60))
    assert errors(mutated(old, lambda o: o["spec"].update(activeDeadlineSeconds=30)), old) == []
    assert errors(mutated(old, lambda o: o["spec"].update(activeDeadlineSeconds=90)), old) == [
        "spec.activeDeadlineSeconds: Invalid value: 90: must be less than or equal to previous "
        "value"]
    assert errors(mutated(old, lambda o: o["spec"].pop("activeDeadlineSeconds")), old) == [
        "spec.activeDeadlineSeconds: Invalid value: null: must not update from a positive "
        "integer to nil value"]


RUNNING: Obj = mutated(POD, lambda o: (o["spec"].update(nodeName="node-1"), o.update(status={
    "phase": "Running", "qosClass": "Burstable",
    "podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}],
    "hostIP": "192.168.1.10", "hostIPs": [{"ip": "192.168.1.10"}],
    "conditions": [{"type": "Ready", "status": "True"}]})))


@pytest.mark.parametrize("mutate, want", [
    pytest.param(lambda o: None, [], id="valid"),
    pytest.param(lambda o: o["status"].update(podIP="10.244.1.5",
                                              podIPs=[{"ip": "10.244.1.5"}, {"ip": "fd00::5"}]),
                 [], id="dual-stack"),
    pytest.param(lambda o: o["status"].update(podIP="x", podIPs=[{"ip": "x"}]),
                 [f'status.podIP: Invalid value: "x": {IP_MSG}',
                  f'status.podIPs[0]: Invalid value: "x": {IP_MSG}'], id="pod-ip"),
    pytest.param(lambda o: o["status"].update(podIPs=[{"ip": "10.244.1.6"}]),
                 ['status.podIPs[0].ip: Invalid value: "10.244.1.6": must be equal to `podIP`'],
                 id="pod-ips-first"),
    pytest.param(lambda o: o["status"].update(podIPs=[{"ip": "10.244.1.5"},
                                                      {"ip": "10.244.1.6"}]),
                 ['status.podIPs: Invalid value: [{"ip":"10.244.1.5"},{"ip":"10.244.1.6"}]: may '
                  "specify no more than one IP for each IP family"], id="pod-ips-one-family"),
    pytest.param(lambda o: o["status"]["conditions"][0].update(status="Maybe"),
                 ['status.conditions[0].status: Unsupported value: "Maybe": supported values: '
                  '"True", "False", "Unknown"'], id="condition-status"),
    pytest.param(lambda o: o["status"]["conditions"].append({"type": "bad type",
                                                             "status": "True"}),
                 [f'status.conditions[1].type: Invalid value: "bad type": {NAME_PART_MSG}'],
                 id="condition-type"),
    pytest.param(lambda o: o["spec"].update(nodeName="node-2"),
                 ["status.nodeName: Forbidden: may not be changed directly"], id="node-name"),
    pytest.param(lambda o: o["status"].update(qosClass="Guaranteed"),
                 ['status.qosClass: Invalid value: "Guaranteed": field is immutable'],
                 id="qos-class"),
])
def test_pod_status(mutate: Mutate, want: list[str]) -> None:
    assert status_errors(mutated(RUNNING, mutate), RUNNING) == want


# -- services ------------------------------------------------------------------------------------

def nodeport(o: Obj) -> Obj:
    o["spec"]["type"] = "NodePort"
    return o


SERVICE_CASES = [
    pytest.param(lambda o: o["spec"]["ports"][0].update(port=0),
                 [f"spec.ports[0].port: Invalid value: 0: {PORT_RANGE_MSG}"], id="port-zero"),
    pytest.param(lambda o: o["spec"].pop("ports"), ["spec.ports: Required value"],
                 id="ports-required"),
    pytest.param(lambda o: (o["spec"].pop("ports"), o["spec"].update(clusterIP="None")), [],
                 id="headless-without-ports"),
    pytest.param(lambda o: o["spec"].update(ports=[{"port": 80}, {"port": 443}]),
                 ["spec.ports[0].name: Required value", "spec.ports[1].name: Required value"],
                 id="names-required"),
    pytest.param(lambda o: o["spec"]["ports"].append({"name": "http", "port": 81}),
                 ['spec.ports[1].name: Duplicate value: "http"'], id="name-duplicate"),
    pytest.param(lambda o: o["spec"]["ports"][0].update(name="Http"),
                 [f'spec.ports[0].name: Invalid value: "Http": {DNS_LABEL_MSG}'],
                 id="name-dns-label"),
    pytest.param(lambda o: o["spec"]["ports"].append({"name": "alt", "port": 80}),
                 ['spec.ports[1]: Duplicate value: {"port":80,"protocol":"TCP"}'],
                 id="port-protocol-duplicate"),
    pytest.param(lambda o: o["spec"]["ports"].append({"name": "dns", "port": 80,
                                                      "protocol": "UDP"}), [],
                 id="same-port-other-protocol"),
    pytest.param(lambda o: o["spec"]["ports"][0].update(protocol="ICMP"),
                 ['spec.ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", '
                  '"TCP", "UDP"'], id="protocol"),
    pytest.param(lambda o: o["spec"]["ports"][0].update(targetPort=70000),
                 [f"spec.ports[0].targetPort: Invalid value: 70000: {PORT_RANGE_MSG}"],
                 id="target-port-number"),
    pytest.param(lambda o: o["spec"]["ports"][0].update(targetPort="web--http"),
                 ['spec.ports[0].targetPort: Invalid value: "web--http": must not contain '
                  "consecutive hyphens"], id="target-port-name"),
    pytest.param(lambda o: o["spec"]["ports"][0].update(targetPort=[80]),
                 ["spec.ports[0].targetPort: Invalid value: [80]: must be of type "
                  "int-or-string"], id="target-port-type"),
    pytest.param(lambda o: o["spec"]["ports"][0].update(nodePort=30080),
                 ["spec.ports[0].nodePort: Forbidden: may not be used when `type` is "
                  "'ClusterIP'"], id="node-port-on-cluster-ip"),
    pytest.param(lambda o: (nodeport(o), o["spec"]["ports"][0].update(nodePort=30080)), [],
                 id="node-port"),
    pytest.param(lambda o: (nodeport(o), o["spec"]["ports"][0].update(nodePort=40000)),
                 ["spec.ports[0].nodePort: Invalid value: 40000: provided port is not in the "
                  "valid range. The range of valid ports is 30000-32767"],
                 id="node-port-range"),
    pytest.param(lambda o: (nodeport(o), o["spec"]["ports"].extend([
        {"name": "a", "port": 81, "nodePort": 30080}, {"name": "b", "port": 82,
                                                      "nodePort": 30080}])),
        ["spec.ports[2].nodePort: Duplicate value: 30080"], id="node-port-duplicate"),
    pytest.param(lambda o: o["spec"].update(type="Internal"),
                 ['spec.type: Unsupported value: "Internal": supported values: "ClusterIP", '
                  '"ExternalName", "LoadBalancer", "NodePort"'], id="type"),
    pytest.param(lambda o: o["spec"].update(type="ExternalName", externalName="db.example.com."),
                 [], id="external-name"),
    pytest.param(lambda o: o["spec"].update(type="ExternalName"),
                 ["spec.externalName: Required value"], id="external-name-required"),
    pytest.param(lambda o: o["spec"].update(type="ExternalName", externalName="DB.example.com"),
                 [f'spec.externalName: Invalid value: "DB.example.com": {DNS_SUBDOMAIN_MSG}'],
                 id="external-name-invalid"),
    pytest.param(lambda o: o["spec"].update(type="ExternalName", externalName="db",
                                            clusterIP="10.96.0.5"),
                 ["spec.clusterIPs: Forbidden: may not be set for ExternalName services"],
                 id="external-name-cluster-ip"),
    pytest.param(lambda o: o["spec"].update(type="LoadBalancer", clusterIP="None"),
                 ['spec.clusterIPs[0]: Invalid value: "None": may not be set to \'None\' for '
                  "LoadBalancer services"], id="headless-load-balancer"),
    pytest.param(lambda o: o["spec"].update(clusterIP="10.96.0.300"),
                 [f'spec.clusterIPs[0]: Invalid value: "10.96.0.300": {IP_MSG}'],
                 id="cluster-ip"),
    pytest.param(lambda o: o["spec"].update(clusterIP="10.96.0.5", clusterIPs=["10.96.0.6"]),
                 ['spec.clusterIPs: Invalid value: ["10.96.0.6"]: first value must match '
                  "`clusterIP`"], id="cluster-ips-first"),
    pytest.param(lambda o: o["spec"].update(clusterIP="10.96.0.5",
                                            clusterIPs=["10.96.0.5", "fd00::5"],
                                            ipFamilies=["IPv4", "IPv6"],
                                            ipFamilyPolicy="RequireDualStack"), [],
                 id="dual-stack"),
    pytest.param(lambda o: o["spec"].update(clusterIP="10.96.0.5",
                                            clusterIPs=["10.96.0.5", "10.96.0.6"]),
                 ['spec.clusterIPs: Invalid value: ["10.96.0.5","10.96.0.6"]: may specify no '
                  "more than one IP for each IP family"], id="cluster-ips-one-family"),
    pytest.param(lambda o: o["spec"].update(ipFamilies=["IPv5"], ipFamilyPolicy="Both"),
                 ['spec.ipFamilies[0]: Unsupported value: "IPv5": supported values: "IPv4", '
                  '"IPv6"', 'spec.ipFamilyPolicy: Unsupported value: "Both": supported values: '
                  '"PreferDualStack", "RequireDualStack", "SingleStack"'], id="ip-families"),
    pytest.param(lambda o: o["spec"].update(sessionAffinity="Sticky"),
                 ['spec.sessionAffinity: Unsupported value: "Sticky": supported values: '
                  '"ClientIP", "None"'], id="session-affinity"),
    pytest.param(lambda o: o["spec"].update(sessionAffinity="ClientIP"), [],
                 id="client-ip-defaulted"),
    pytest.param(lambda o: o["spec"].update(sessionAffinity="ClientIP", sessionAffinityConfig={
        "clientIP": {"timeoutSeconds": 86401}}),
        ["spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 86401: must be "
         "greater than 0 and less than 86400"], id="client-ip-timeout"),
    pytest.param(lambda o: o["spec"].update(externalTrafficPolicy="Local"),
                 ['spec.externalTrafficPolicy: Invalid value: "Local": may only be set for '
                  "externally-accessible services"], id="etp-on-cluster-ip"),
    pytest.param(lambda o: o["spec"].update(externalTrafficPolicy="Local",
                                            externalIPs=["192.0.2.10"]), [],
                 id="etp-with-external-ips"),
    pytest.param(lambda o: (nodeport(o), o["spec"].update(externalTrafficPolicy="Nearest")),
                 ['spec.externalTrafficPolicy: Unsupported value: "Nearest": supported values: '
                  '"Cluster", "Local"'], id="etp-value"),
    pytest.param(lambda o: (nodeport(o), o["spec"].update(healthCheckNodePort=30100)),
                 ["spec.healthCheckNodePort: Invalid value: 30100: may only be set when `type` "
                  "is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"],
                 id="health-check-node-port"),
    pytest.param(lambda o: o["spec"].update(type="LoadBalancer", externalTrafficPolicy="Local",
                                            healthCheckNodePort=30100), [],
                 id="health-check-node-port-lb-local"),
    pytest.param(lambda o: o["spec"].update(internalTrafficPolicy="Node"),
                 ['spec.internalTrafficPolicy: Unsupported value: "Node": supported values: '
                  '"Cluster", "Local"'], id="itp"),
    pytest.param(lambda o: o["spec"].update(type="LoadBalancer",
                                            loadBalancerSourceRanges=["10.0.0.0/33"]),
                 [f'spec.loadBalancerSourceRanges[0]: Invalid value: "10.0.0.0/33": {CIDR_MSG}'],
                 id="source-ranges"),
    pytest.param(lambda o: o["spec"].update(loadBalancerSourceRanges=["10.0.0.0/8"]),
                 ["spec.loadBalancerSourceRanges: Forbidden: may only be used when `type` is "
                  "'LoadBalancer'"], id="source-ranges-not-lb"),
    pytest.param(lambda o: o["spec"].update(externalIPs=["192.0.2.300", "127.0.0.1"]),
                 [f'spec.externalIPs[0]: Invalid value: "192.0.2.300": {IP_MSG}',
                  'spec.externalIPs[1]: Invalid value: "127.0.0.1": may not be in the loopback '
                  "range (127.0.0.0/8, ::1/128)"], id="external-ips"),
    pytest.param(lambda o: o["spec"].update(selector={"app": "web server"}),
                 ['spec.selector: Invalid value: "web server": a valid label must be an empty '
                  "string or consist of alphanumeric characters, '-', '_' or '.', and must start "
                  "and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
                  "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?"
                  "[A-Za-z0-9])?')"], id="selector"),
]


@pytest.mark.parametrize("mutate, want", SERVICE_CASES)
def test_service(mutate: Mutate, want: list[str]) -> None:
    assert errors(mutated(SERVICE, mutate)) == want


def test_service_node_port_range_is_a_parameter() -> None:
    svc = mutated(SERVICE, lambda o: (nodeport(o), o["spec"]["ports"][0].update(nodePort=40000)))
    assert errors(svc, node_port_range=(40000, 40100)) == []
    assert errors(svc, node_port_range=None) == []
    assert errors(svc, node_port_range=(20000, 20001)) == [
        "spec.ports[0].nodePort: Invalid value: 40000: provided port is not in the valid range. "
        "The range of valid ports is 20000-20001"]


ALLOCATED: Obj = mutated(SERVICE, lambda o: o["spec"].update(
    clusterIP="10.96.0.5", clusterIPs=["10.96.0.5"], ipFamilies=["IPv4"],
    ipFamilyPolicy="SingleStack"))


@pytest.mark.parametrize("mutate, want", [
    pytest.param(lambda o: o["spec"]["ports"][0].update(port=8080), [], id="ports"),
    pytest.param(lambda o: o["spec"].update(clusterIP="10.96.0.6", clusterIPs=["10.96.0.6"]),
                 ['spec.clusterIPs[0]: Invalid value: ["10.96.0.6"]: may not change once set'],
                 id="cluster-ip"),
    pytest.param(lambda o: o["spec"].update(clusterIPs=["10.96.0.5", "fd00::5"],
                                            ipFamilies=["IPv4", "IPv6"],
                                            ipFamilyPolicy="PreferDualStack"), [],
                 id="add-secondary"),
    pytest.param(lambda o: o["spec"].update(ipFamilies=["IPv6"], clusterIP="fd00::5",
                                            clusterIPs=["fd00::5"]),
                 ['spec.clusterIPs[0]: Invalid value: ["fd00::5"]: may not change once set',
                  'spec.ipFamilies[0]: Invalid value: ["IPv6"]: may not change once set'],
                 id="family"),
    pytest.param(lambda o: (o["spec"].update(type="ExternalName", externalName="db.example"),
                            [o["spec"].pop(k) for k in ("clusterIP", "clusterIPs", "ipFamilies",
                                                        "ipFamilyPolicy")]), [],
                 id="to-external-name"),
])
def test_service_update(mutate: Mutate, want: list[str]) -> None:
    assert errors(mutated(ALLOCATED, mutate), ALLOCATED) == want


def test_service_health_check_node_port_is_immutable() -> None:
    old = mutated(ALLOCATED, lambda o: o["spec"].update(
        type="LoadBalancer", externalTrafficPolicy="Local", healthCheckNodePort=30100))
    new = mutated(old, lambda o: o["spec"].update(healthCheckNodePort=30101))
    assert errors(new, old) == ["spec.healthCheckNodePort: Forbidden: field is immutable"]


@pytest.mark.parametrize("mutate, want", [
    pytest.param(lambda o: o["status"]["loadBalancer"].update(ingress=[{"ip": "192.0.2.1"}]),
                 [], id="ip"),
    pytest.param(lambda o: o["status"]["loadBalancer"].update(ingress=[{"ip": "lb"}]),
                 [f'status.loadBalancer.ingress[0].ip: Invalid value: "lb": {IP_MSG}'], id="bad"),
    pytest.param(lambda o: o["status"]["loadBalancer"].update(ingress=[{"hostname": "1.2.3.4"}]),
                 ['status.loadBalancer.ingress[0].hostname: Invalid value: "1.2.3.4": must be a '
                  "DNS name, not an IP address"], id="hostname-ip"),
    pytest.param(lambda o: (o["spec"].update(type="ClusterIP"), o["status"]["loadBalancer"].update(
        ingress=[{"ip": "192.0.2.1"}])),
        ["status.loadBalancer.ingress: Forbidden: may only be used when `spec.type` is "
         "'LoadBalancer'"], id="not-lb"),
])
def test_service_status(mutate: Mutate, want: list[str]) -> None:
    lb = mutated(ALLOCATED, lambda o: (o["spec"].update(type="LoadBalancer"),
                                       o.update(status={"loadBalancer": {}})))
    assert status_errors(mutated(lb, mutate), lb) == want


# -- namespaces, nodes, secrets, events --------------------------------------------------------

@pytest.mark.parametrize("mutate, want", [
    pytest.param(lambda o: o.update(spec={"finalizers": ["kubernetes"]}), [], id="finalizer"),
    pytest.param(lambda o: o.update(spec={"finalizers": ["cleanup"]}),
                 ['spec.finalizers[0]: Invalid value: "cleanup": name is neither a standard '
                  "finalizer name nor is it fully qualified"], id="finalizer-unqualified"),
    pytest.param(lambda o: o.update(spec={"finalizers": ["a/b/c"]}),
                 ['spec.finalizers[0]: Invalid value: "a/b/c": a qualified name must consist of '
                  "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                  "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
                  "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an "
                  "optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"],
                 id="finalizer-invalid"),
])
def test_namespace(mutate: Mutate, want: list[str]) -> None:
    assert errors(mutated(NAMESPACE, mutate)) == want


def test_namespace_status_phase() -> None:
    active = mutated(NAMESPACE, lambda o: o.update(status={"phase": "Active"}))
    assert status_errors(active, active) == []
    assert status_errors(mutated(active, lambda o: o["status"].update(phase="Terminating")),
                         active) == [
        "status.phase: Invalid value: \"Terminating\": may only be 'Active' if "
        "`deletionTimestamp` is empty"]
    deleting = mutated(active, lambda o: o["metadata"].update(
        deletionTimestamp="2024-01-01T00:00:00Z"))
    assert status_errors(deleting, active) == [
        "status.phase: Invalid value: \"Active\": may only be 'Terminating' if "
        "`deletionTimestamp` is not empty"]


@pytest.mark.parametrize("mutate, want", [
    pytest.param(lambda o: o["spec"]["taints"][0].update(effect="Evict"),
                 ['spec.taints[0].effect: Unsupported value: "Evict": supported values: '
                  '"NoSchedule", "PreferNoSchedule", "NoExecute"'], id="taint-effect"),
    pytest.param(lambda o: o["spec"]["taints"][0].pop("effect"),
                 ["spec.taints[0].effect: Required value"], id="taint-effect-required"),
    pytest.param(lambda o: o["spec"]["taints"][0].update(key="bad key"),
                 [f'spec.taints[0].key: Invalid value: "bad key": {NAME_PART_MSG}'],
                 id="taint-key"),
    pytest.param(lambda o: o["spec"]["taints"].append(dict(o["spec"]["taints"][0])),
                 ['spec.taints[1]: Duplicate value: {"effect":"NoSchedule","key":"node-role.'
                  'kubernetes.io/control-plane"}: taints must be unique by key and effect pair'],
                 id="taint-duplicate"),
    pytest.param(lambda o: o["spec"].update(podCIDR="10.244.1.0/33"),
                 [f'spec.podCIDR: Invalid value: "10.244.1.0/33": {CIDR_MSG}',
                  f'spec.podCIDRs[0]: Invalid value: "10.244.1.0/33": {CIDR_MSG}'],
                 id="pod-cidr"),
    pytest.param(lambda o: o["spec"].update(podCIDRs=["10.244.1.0/24", "fd00:1::/64"]), [],
                 id="pod-cidrs-dual-stack"),
    pytest.param(lambda o: o["spec"].update(podCIDRs=["10.244.1.0/24", "10.244.2.0/24"]),
                 ['spec.podCIDRs: Invalid value: ["10.244.1.0/24","10.244.2.0/24"]: may specify '
                  "no more than one CIDR for each IP family"], id="pod-cidrs-one-family"),
    pytest.param(lambda o: o["status"]["addresses"][0].update(type="PublicIP"),
                 ['status.addresses[0].type: Unsupported value: "PublicIP": supported values: '
                  '"Hostname", "InternalIP", "ExternalIP", "InternalDNS", "ExternalDNS"'],
                 id="address-type"),
    pytest.param(lambda o: o["status"]["addresses"][0].update(address="node-1"),
                 [f'status.addresses[0].address: Invalid value: "node-1": {IP_MSG}'],
                 id="address-ip"),
])
def test_node(mutate: Mutate, want: list[str]) -> None:
    assert errors(mutated(NODE, mutate)) == want


def test_node_update() -> None:
    old = mutated(NODE, lambda o: o["spec"].update(podCIDRs=["10.244.1.0/24"]))
    assert errors(mutated(old, lambda o: o["spec"].update(unschedulable=True)), old) == []
    changed = mutated(old, lambda o: o["spec"].update(podCIDR="10.244.2.0/24",
                                                      podCIDRs=["10.244.2.0/24"]))
    assert errors(changed, old) == [
        'spec.podCIDRs: Forbidden: node updates may not change podCIDR except from "" to valid']
    bare = mutated(NODE, lambda o: o["spec"].pop("podCIDR"))
    assert errors(old, bare) == []  # assigning the first CIDR is allowed


def test_node_status() -> None:
    assert status_errors(NODE, NODE) == []
    dup = mutated(NODE, lambda o: o["status"]["addresses"].append(
        {"type": "InternalIP", "address": "192.168.1.10"}))
    assert status_errors(dup, NODE) == [
        'status.addresses[2]: Duplicate value: {"address":"192.168.1.10","type":"InternalIP"}']


@pytest.mark.parametrize("mutate, want", [
    pytest.param(lambda o: o["data"].update({"a b": "eA=="}),
                 ['data[a b]: Invalid value: "a b": a valid config key must consist of '
                  "alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  "
                  "or 'key_name', regex used for validation is '[-._a-zA-Z0-9]+')"],
                 id="key-charset"),
    pytest.param(lambda o: o["data"].update({"..": "eA=="}),
                 ['data[..]: Invalid value: "..": must not be \'..\''], id="key-dotdot"),
    pytest.param(lambda o: o["data"].update({"x": "not base64!"}),
                 ['data[x]: Invalid value: "<secret contents redacted>": must be a '
                  "base64-encoded string"], id="base64"),
    pytest.param(lambda o: o["data"].pop("tls.key"), ["data[tls.key]: Required value"],
                 id="tls-key-required"),
    pytest.param(lambda o: o.update(type="Opaque", data={"big": "A" * 4 * (1024 * 1024 // 3 + 2)}),
                 ["data: Too long: must have at most 1048576 bytes"], id="too-big"),
    pytest.param(lambda o: o.update(type="kubernetes.io/service-account-token"),
                 ["metadata.annotations[kubernetes.io/service-account.name]: Required value"],
                 id="sa-token-annotation"),
    pytest.param(lambda o: o.update(type="kubernetes.io/dockerconfigjson",
                                    data={".dockerconfigjson": "e30="}), [],
                 id="dockerconfigjson"),
    pytest.param(lambda o: o.update(stringData={"bad key": "v"}),
                 ['data[bad key]: Invalid value: "bad key": a valid config key must consist of '
                  "alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  "
                  "or 'key_name', regex used for validation is '[-._a-zA-Z0-9]+')"],
                 id="string-data-key"),
])
def test_secret(mutate: Mutate, want: list[str]) -> None:
    assert errors(mutated(SECRET, mutate)) == want


def test_secret_update() -> None:
    assert errors(mutated(SECRET, lambda o: o["data"].update({"ca.crt": "Y2E="})), SECRET) == []
    assert errors(mutated(SECRET, lambda o: o.update(type="Opaque")), SECRET) == [
        'type: Invalid value: "Opaque": field is immutable']
    frozen = mutated(SECRET, lambda o: o.update(immutable=True))
    assert errors(frozen, frozen) == []
    assert errors(mutated(frozen, lambda o: o["data"].update({"x": "eA=="})), frozen) == [
        "data: Forbidden: field is immutable when `immutable` is set"]
    assert errors(mutated(frozen, lambda o: o.pop("immutable")), frozen) == [
        "immutable: Forbidden: field is immutable when `immutable` is set"]


@pytest.mark.parametrize("mutate, want", [
    pytest.param(lambda o: o["involvedObject"].update(namespace="other"),
                 ['involvedObject.namespace: Invalid value: "other": does not match '
                  "event.namespace"], id="namespace-mismatch"),
    pytest.param(lambda o: o.pop("involvedObject"), ["involvedObject: Required value"],
                 id="involved-object-required"),
    pytest.param(lambda o: (o["involvedObject"].pop("namespace"),
                            o["metadata"].update(namespace="apps")),
                 ['involvedObject.namespace: Invalid value: "": does not match event.namespace'],
                 id="cluster-object-outside-default"),
    pytest.param(lambda o: o.update(type="Unusual"), [], id="any-type"),
    pytest.param(lambda o: o.update(eventTime="2024-01-01T00:00:00.000000Z"),
                 ["reportingController: Required value",
                  'reportingController: Invalid value: "": name part must be non-empty',
                  "reportingInstance: Required value", "action: Required value"],
                 id="event-time-needs-reporter"),
    pytest.param(lambda o: o.update(eventTime="2024-01-01T00:00:00.000000Z",
                                    reportingComponent="kubelet", reportingInstance="node-1",
                                    action="Start", reason="R" * 129),
                 ['reason: Invalid value: "": can have at most 128 characters'],
                 id="reason-length"),
])
def test_event(mutate: Mutate, want: list[str]) -> None:
    assert errors(mutated(EVENT, mutate)) == want


# -- robustness ----------------------------------------------------------------------------------

_JUNK: list[Any] = [None, 0, -1, 1.5, True, "", "x", [], [1, None], {}, {"a": [None]}]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _replace(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = obj
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return obj


@pytest.mark.parametrize("base", [POD, RUNNING, SERVICE, ALLOCATED, NAMESPACE, NODE, SECRET,
                                  EVENT])
def test_wrong_types_anywhere_never_raise(base: Obj) -> None:
    rng = random.Random(1234)
    for path in _paths(base):
        if path in ((), ("apiVersion",), ("kind",)):
            continue
        for junk in rng.sample(_JUNK, 4):
            obj = _replace(copy.deepcopy(base), path, copy.deepcopy(junk))
            apply_defaults(obj)
            got = validate(obj)
            validate(obj, base)
            validate(base, obj)
            validate_status(obj, base)
            assert all(e.path is not None for e in got)
