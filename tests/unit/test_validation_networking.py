"""Validation and defaulting of EndpointSlice, Ingress, IngressClass and NetworkPolicy.

The valid objects are the examples of the Kubernetes documentation (Ingress, IngressClass,
NetworkPolicy, EndpointSlice pages), including one Ingress per row of the Ingress path-matching
table. Error strings are asserted whole, as Kubernetes prints them.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from podnet.api.defaults.networking import DEFAULTERS
from podnet.api.errors import FieldError
from podnet.api.validation.networking import STATUS_VALIDATORS, VALIDATORS

NP = ("networking.k8s.io/v1", "NetworkPolicy")
ING = ("networking.k8s.io/v1", "Ingress")
IC = ("networking.k8s.io/v1", "IngressClass")
ES = ("discovery.k8s.io/v1", "EndpointSlice")

SUBDOMAIN = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    r"for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
WILDCARD = (
    "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which "
    "must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric "
    r"character (e.g. '*.example.com', regex used for validation is '\*\.[a-z0-9]([-a-z0-9]*"
    r"[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
DNS1035 = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
    "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
BAD_CIDR = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"


def errors(key: tuple[str, str], obj: dict[str, Any], old: dict[str, Any] | None = None
           ) -> list[str]:
    return [str(e) for e in VALIDATORS[key](obj, old)]


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


# --- valid objects from the Kubernetes documentation -------------------------------------------

DOC_INGRESSES = docs("""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: minimal-ingress}
spec:
  ingressClassName: nginx-example
  rules:
  - http:
      paths:
      - {path: /testpath, pathType: Prefix, backend: {service: {name: test, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: ingress-resource-backend}
spec:
  defaultBackend:
    resource: {apiGroup: k8s.example.com, kind: StorageBucket, name: static-assets}
  rules:
  - http:
      paths:
      - path: /icons
        pathType: ImplementationSpecific
        backend:
          resource: {apiGroup: k8s.example.com, kind: StorageBucket, name: icon-assets}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: ingress-wildcard-host}
spec:
  rules:
  - host: foo.bar.com
    http:
      paths:
      - {pathType: Prefix, path: /bar, backend: {service: {name: service1, port: {number: 80}}}}
  - host: "*.foo.com"
    http:
      paths:
      - {pathType: Prefix, path: /foo, backend: {service: {name: service2, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: simple-fanout-example}
spec:
  rules:
  - host: foo.bar.com
    http:
      paths:
      - {path: /foo, pathType: Prefix, backend: {service: {name: service1, port: {number: 4200}}}}
      - {path: /bar, pathType: Prefix, backend: {service: {name: service2, port: {number: 8080}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: name-virtual-host-ingress}
spec:
  rules:
  - host: foo.bar.com
    http:
      paths:
      - {pathType: Prefix, path: "/", backend: {service: {name: service1, port: {number: 80}}}}
  - host: bar.foo.com
    http:
      paths:
      - {pathType: Prefix, path: "/", backend: {service: {name: service2, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: name-virtual-host-ingress-no-third-host}
spec:
  rules:
  - host: first.bar.com
    http:
      paths:
      - {pathType: Prefix, path: "/", backend: {service: {name: service1, port: {number: 80}}}}
  - host: second.bar.com
    http:
      paths:
      - {pathType: Prefix, path: "/", backend: {service: {name: service2, port: {number: 80}}}}
  - http:
      paths:
      - {pathType: Prefix, path: "/", backend: {service: {name: service3, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: tls-example-ingress}
spec:
  tls:
  - hosts: [https-example.foo.com]
    secretName: testsecret-tls
  rules:
  - host: https-example.foo.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: service1, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: test-ingress}
spec:
  defaultBackend:
    service: {name: test, port: {number: 80}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: ingress-myservicea
  annotations: {kubernetes.io/ingress.class: nginx}
spec:
  ingressClassName: nginx
  rules:
  - host: myservicea.foo.org
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: myservicea, port: {name: http}}}}
""")

# The "Examples" table of the Ingress page: the path(s) of each row, with their pathType.
PATH_TABLE = [
    [("Prefix", "/")],
    [("Exact", "/foo")],
    [("Exact", "/foo/")],
    [("Prefix", "/foo")],
    [("Prefix", "/foo/")],
    [("Prefix", "/aaa/bb")],
    [("Prefix", "/aaa/bbb")],
    [("Prefix", "/aaa/bbb/")],
    [("Prefix", "/"), ("Prefix", "/aaa")],
    [("Prefix", "/"), ("Prefix", "/aaa"), ("Prefix", "/aaa/bbb")],
    [("Prefix", "/aaa")],
    [("Prefix", "/foo"), ("Exact", "/foo")],
]


def ingress_with_paths(paths: list[tuple[str, str]], host: str | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"http": {"paths": [
        {"pathType": t, "path": p, "backend": {"service": {"name": "web", "port": {"number": 80}}}}
        for t, p in paths]}}
    if host is not None:
        rule["host"] = host
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "paths"}, "spec": {"rules": [rule]}}


DOC_INGRESS_CLASSES = docs("""
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: external-lb}
spec:
  controller: example.com/ingress-controller
  parameters: {apiGroup: k8s.example.com, kind: IngressParameters, name: external-lb}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: external-lb-1}
spec:
  controller: example.com/ingress-controller
  parameters:
    scope: Cluster
    apiGroup: k8s.example.net
    kind: ClusterIngressParameter
    name: external-config-1
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: external-lb-2}
spec:
  controller: example.com/ingress-controller
  parameters:
    scope: Namespace
    apiGroup: k8s.example.com
    kind: IngressParameter
    namespace: external-configuration
    name: external-config
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: nginx-example
  labels: {app.kubernetes.io/component: controller}
  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
spec:
  controller: k8s.io/ingress-nginx
""")

DOC_NETWORK_POLICIES = docs("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: test-network-policy, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - ipBlock: {cidr: 172.17.0.0/16, except: [172.17.1.0/24]}
    - namespaceSelector: {matchLabels: {project: myproject}}
    - podSelector: {matchLabels: {role: frontend}}
    ports:
    - {protocol: TCP, port: 6379}
  egress:
  - to:
    - ipBlock: {cidr: 10.0.0.0/24}
    ports:
    - {protocol: TCP, port: 5978}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: multi-port-egress, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
  policyTypes: [Egress]
  egress:
  - to:
    - ipBlock: {cidr: 10.0.0.0/24}
    ports:
    - {protocol: TCP, port: 32000, endPort: 32768}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-ingress}
spec:
  podSelector: {}
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all-ingress}
spec:
  podSelector: {}
  ingress: [{}]
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-egress}
spec:
  podSelector: {}
  policyTypes: [Egress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all-egress}
spec:
  podSelector: {}
  egress: [{}]
  policyTypes: [Egress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-all}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: selectors-and-names}
spec:
  podSelector:
    matchExpressions:
    - {key: app.kubernetes.io/name, operator: In, values: [web, api]}
    - {key: tier, operator: DoesNotExist}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: prod}}
      podSelector: {matchLabels: {role: client}}
    - ipBlock: {cidr: "2001:db8::/32", except: ["2001:db8:1::/48"]}
    ports:
    - {port: http}
    - {protocol: UDP, port: 53}
    - {protocol: SCTP, port: 5000, endPort: 5000}
""")

DOC_ENDPOINT_SLICES = docs("""
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: example-abc
  labels: {kubernetes.io/service-name: example}
addressType: IPv4
ports:
- {name: http, protocol: TCP, port: 80}
endpoints:
- addresses: ["10.1.2.3"]
  conditions: {ready: true}
  hostname: pod-1
  nodeName: node-1
  zone: us-west2-a
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: v6-and-hints}
addressType: IPv6
ports:
- {name: "", protocol: TCP, port: 8080, appProtocol: kubernetes.io/h2c}
- {name: dns, protocol: UDP, port: 53}
endpoints:
- addresses: ["2001:db8::10"]
  conditions: {ready: true, serving: true, terminating: false}
  targetRef: {kind: Pod, namespace: default, name: web-0, uid: 1234}
  hints:
    forZones: [{name: zone-a}]
    forNodes: [{name: node-1}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: external}
addressType: FQDN
ports: []
endpoints:
- addresses: [db.example.com, "api.example.org."]
""")

VALID = (
    [pytest.param(ING, o, id=o["metadata"]["name"]) for o in DOC_INGRESSES]
    + [pytest.param(ING, ingress_with_paths(p), id="path-table-" + ",".join(x[1] for x in p))
       for p in PATH_TABLE]
    + [pytest.param(IC, o, id=o["metadata"]["name"]) for o in DOC_INGRESS_CLASSES]
    + [pytest.param(NP, o, id=o["metadata"]["name"]) for o in DOC_NETWORK_POLICIES]
    + [pytest.param(ES, o, id=o["metadata"]["name"]) for o in DOC_ENDPOINT_SLICES]
)


@pytest.mark.parametrize(("key", "obj"), VALID)
def test_documented_objects_are_valid(key: tuple[str, str], obj: dict[str, Any]) -> None:
    obj = copy.deepcopy(obj)
    if key in DEFAULTERS:
        DEFAULTERS[key](obj)
    assert errors(key, obj) == []
    assert errors(key, obj, copy.deepcopy(obj)) == []


# --- Ingress -----------------------------------------------------------------------------------

P0 = "spec.rules[0].http.paths[0]"


@pytest.mark.parametrize(("path", "expected"), [
    pytest.param("/foo//bar", ["must not contain '//'"], id="double-slash"),
    pytest.param("/foo/./bar", ["must not contain '/./'"], id="dot-segment"),
    pytest.param("/foo/../bar", ["must not contain '/../'"], id="dot-dot-segment"),
    pytest.param("/foo%2fbar", ["must not contain '%2f'"], id="encoded-slash"),
    pytest.param("/foo%2Fbar", ["must not contain '%2F'"], id="encoded-slash-upper"),
    pytest.param("/foo/..", ["cannot end with '/..'"], id="ends-dot-dot"),
    pytest.param("/foo/.", ["cannot end with '/.'"], id="ends-dot"),
    pytest.param("foo", ["must be an absolute path"], id="relative"),
    pytest.param("", ["must be an absolute path"], id="empty"),
    pytest.param("/a/../b//c", ["must not contain '//'", "must not contain '/../'"], id="two"),
])
@pytest.mark.parametrize("path_type", ["Exact", "Prefix"])
def test_exact_and_prefix_paths_reject_ambiguous_sequences(
        path_type: str, path: str, expected: list[str]) -> None:
    quoted = '"' + path + '"'
    assert errors(ING, ingress_with_paths([(path_type, path)])) == [
        f"{P0}.path: Invalid value: {quoted}: {e}" for e in expected]


@pytest.mark.parametrize("path", ["/foo//bar", "/a/../b", "/x%2F", "/foo/..", "", "/.*"])
def test_implementation_specific_paths_only_need_to_be_absolute(path: str) -> None:
    assert errors(ING, ingress_with_paths([("ImplementationSpecific", path)])) == []
    assert errors(ING, ingress_with_paths([("ImplementationSpecific", "foo")])) == [
        f'{P0}.path: Invalid value: "foo": must be an absolute path']


def backend(**service: Any) -> dict[str, Any]:
    return {"service": service}


def one_path(**item: Any) -> dict[str, Any]:
    return {"spec": {"rules": [{"http": {"paths": [item]}}]}}


GOOD_BACKEND = backend(name="web", port={"number": 80})

INGRESS_ERRORS = [
    pytest.param({"spec": {}}, [
        "spec: Invalid value: null: either `defaultBackend` or `rules` must be specified"],
        id="nothing"),
    pytest.param({"spec": {"rules": []}}, [
        "spec: Invalid value: []: either `defaultBackend` or `rules` must be specified"],
        id="empty-rules"),
    pytest.param({"spec": {"rules": [{"host": "foo.com", "http": {"paths": []}}]}}, [
        "spec.rules[0].http.paths: Required value"], id="no-paths"),
    pytest.param({"spec": {"rules": [{"host": "foo.com", "http": {}}]}}, [
        "spec.rules[0].http.paths: Required value"], id="http-without-paths"),
    pytest.param({"spec": {"rules": [{"host": "foo.com"}]}}, [], id="host-without-http"),
    pytest.param(one_path(path="/", backend=GOOD_BACKEND), [
        f"{P0}.pathType: Required value: pathType must be specified"], id="no-path-type"),
    pytest.param(one_path(path="/", pathType="Regex", backend=GOOD_BACKEND), [
        f'{P0}.pathType: Unsupported value: "Regex": supported values: "Exact", '
        '"ImplementationSpecific", "Prefix"'], id="bad-path-type"),
    pytest.param(one_path(path="/", pathType="Prefix", backend={}), [
        f'{P0}.backend: Invalid value: "": resource or service backend is required'],
        id="empty-backend"),
    pytest.param(one_path(path="/", pathType="Prefix", backend={
        "service": {"name": "web", "port": {"number": 80}},
        "resource": {"kind": "Bucket", "name": "b"}}), [
        f'{P0}.backend: Invalid value: "": cannot set both resource and service backends'],
        id="both-backends"),
    pytest.param(one_path(path="/", pathType="Prefix",
                          backend=backend(name="web", port={"number": 80, "name": "http"})), [
        f'{P0}.backend: Invalid value: "": cannot set both port name & port number'],
        id="port-name-and-number"),
    pytest.param(one_path(path="/", pathType="Prefix", backend=backend(name="web", port={})), [
        f"{P0}.backend: Required value: port name or number is required"], id="no-port"),
    pytest.param(one_path(path="/", pathType="Prefix",
                          backend=backend(name="web", port={"number": 70000})), [
        f"{P0}.backend.service.port.number: Invalid value: 70000: "
        "must be between 1 and 65535, inclusive"], id="port-number-range"),
    pytest.param(one_path(path="/", pathType="Prefix",
                          backend=backend(name="web", port={"name": "8080"})), [
        f'{P0}.backend.service.port.name: Invalid value: "8080": '
        "must contain at least one letter (a-z)"], id="port-name-digits"),
    pytest.param(one_path(path="/", pathType="Prefix",
                          backend=backend(port={"number": 80})), [
        f"{P0}.backend.service.name: Required value"], id="no-service-name"),
    pytest.param(one_path(path="/", pathType="Prefix",
                          backend=backend(name="1web", port={"number": 80})), [
        f'{P0}.backend.service.name: Invalid value: "1web": {DNS1035}'],
        id="service-name-dns1035"),
    pytest.param(one_path(path="/", pathType="Prefix", backend={"resource": {"apiGroup": "x/y"}}), [
        f'{P0}.backend.resource.apiGroup: Invalid value: "x/y": {SUBDOMAIN}',
        f"{P0}.backend.resource.kind: Required value",
        f"{P0}.backend.resource.name: Required value"], id="resource-incomplete"),
    pytest.param(one_path(path="/", pathType="Prefix",
                          backend={"resource": {"kind": "a/b", "name": ".."}}), [
        f"{P0}.backend.resource.kind: Invalid value: \"a/b\": may not contain '/'",
        f"{P0}.backend.resource.name: Invalid value: \"..\": may not be '..'"],
        id="resource-path-segments"),
    pytest.param(ingress_with_paths([("Prefix", "/")], host="1.2.3.4"), [
        'spec.rules[0].host: Invalid value: "1.2.3.4": must be a DNS name, not an IP address'],
        id="host-ipv4"),
    pytest.param(ingress_with_paths([("Prefix", "/")], host="foo.com:8080"), [
        f'spec.rules[0].host: Invalid value: "foo.com:8080": {SUBDOMAIN}'], id="host-port"),
    pytest.param(ingress_with_paths([("Prefix", "/")], host="foo.*.com"), [
        f'spec.rules[0].host: Invalid value: "foo.*.com": {WILDCARD}'], id="host-inner-wildcard"),
    pytest.param(ingress_with_paths([("Prefix", "/")], host="*"), [
        f'spec.rules[0].host: Invalid value: "*": {WILDCARD}'], id="host-bare-wildcard"),
    pytest.param(ingress_with_paths([("Prefix", "/")], host="Foo.com"), [
        f'spec.rules[0].host: Invalid value: "Foo.com": {SUBDOMAIN}'], id="host-uppercase"),
    pytest.param({"spec": {"defaultBackend": GOOD_BACKEND,
                           "tls": [{"hosts": ["*.a.com", "b*.com"], "secretName": "My_Secret"}],
                           "ingressClassName": "Nginx"}}, [
        f'spec.tls[0].hosts[1]: Invalid value: "b*.com": {WILDCARD}',
        f'spec.tls[0].secretName: Invalid value: "My_Secret": {SUBDOMAIN}',
        f'spec.ingressClassName: Invalid value: "Nginx": {SUBDOMAIN}'], id="tls-and-class"),
    pytest.param({"metadata": {"annotations": {"kubernetes.io/ingress.class": "a"}},
                  "spec": {"defaultBackend": GOOD_BACKEND, "ingressClassName": "b"}}, [
        'annotations.kubernetes.io/ingress.class: Invalid value: "a": '
        "must match `ingressClassName` when both are specified"], id="annotation-mismatch"),
]


@pytest.mark.parametrize(("obj", "expected"), INGRESS_ERRORS)
def test_ingress_errors(obj: dict[str, Any], expected: list[str]) -> None:
    assert errors(ING, obj) == expected


def test_ingress_update_keeps_what_the_old_object_had() -> None:
    bad_secret = {"spec": {"defaultBackend": GOOD_BACKEND,
                           "tls": [{"secretName": "Legacy_Name"}]}}
    assert errors(ING, bad_secret) == [
        f'spec.tls[0].secretName: Invalid value: "Legacy_Name": {SUBDOMAIN}']
    assert errors(ING, bad_secret, bad_secret) == []
    dns_label_name = one_path(path="/", pathType="Prefix",
                              backend=backend(name="1web", port={"number": 80}))
    assert errors(ING, dns_label_name, dns_label_name) == []
    wildcard = {"spec": {"rules": [{"host": "*.foo.com", "http": {"paths": []}}]}}
    assert errors(ING, wildcard) == ["spec.rules[0].http.paths: Required value"]
    assert errors(ING, wildcard, wildcard) == []


def test_annotation_mismatch_is_only_checked_on_create() -> None:
    obj = {"metadata": {"annotations": {"kubernetes.io/ingress.class": "a"}},
           "spec": {"defaultBackend": GOOD_BACKEND, "ingressClassName": "b"}}
    assert errors(ING, obj, obj) == []


def test_ingress_status() -> None:
    status = {"status": {"loadBalancer": {"ingress": [
        {"ip": "203.0.113.10"}, {"ip": "2001:db8::1", "ports": [{"port": 443, "protocol": "TCP"}]},
        {"ip": "010.1.2.3"}, {"hostname": "lb.example.com"},
        {"ip": "1.2.3"}, {"hostname": "10.0.0.1"}, {"hostname": "LB"}]}}}
    assert [str(e) for e in STATUS_VALIDATORS[ING](status, {})] == [
        'status.loadBalancer.ingress[4].ip: Invalid value: "1.2.3": '
        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        'status.loadBalancer.ingress[5].hostname: Invalid value: "10.0.0.1": '
        "must be a DNS name, not an IP address",
        f'status.loadBalancer.ingress[6].hostname: Invalid value: "LB": {SUBDOMAIN}']


# --- IngressClass ------------------------------------------------------------------------------


def ingress_class(controller: Any = "example.com/ic", **parameters: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"controller": controller}
    if parameters:
        spec["parameters"] = parameters
    return {"spec": spec}


@pytest.mark.parametrize(("obj", "expected"), [
    pytest.param({"spec": {}}, ["spec.controller: Required value"], id="no-controller"),
    pytest.param(ingress_class("ingress-controller"), [
        'spec.controller: Invalid value: "ingress-controller": '
        'must be a domain-prefixed path (such as "acme.io/foo")'], id="no-domain"),
    pytest.param(ingress_class("example.com/"), [
        'spec.controller: Invalid value: "example.com/": '
        'must be a domain-prefixed path (such as "acme.io/foo")'], id="empty-path"),
    pytest.param(ingress_class("Example.com/a b"), [
        f'spec.controller: Invalid value: "Example.com": {SUBDOMAIN}',
        'spec.controller: Invalid value: "a b": Invalid path (regex used for validation is '
        "'[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')"], id="bad-domain-and-path"),
    pytest.param(ingress_class(kind="K", name="n", scope="Namespace"), [
        "spec.parameters.namespace: Required value: `parameters.scope` is set to 'Namespace'"],
        id="namespace-scope-without-namespace"),
    pytest.param(ingress_class(kind="K", name="n", scope="Cluster", namespace="x"), [
        "spec.parameters.namespace: Forbidden: `parameters.scope` is set to 'Cluster'"],
        id="cluster-scope-with-namespace"),
    pytest.param(ingress_class(kind="K", name="n", scope="Global"), [
        'spec.parameters.scope: Unsupported value: "Global": supported values: "Cluster", '
        '"Namespace"'], id="bad-scope"),
    pytest.param(ingress_class(kind="K", name="n"), ["spec.parameters.scope: Required value"],
                 id="undefaulted-scope"),
    pytest.param(ingress_class(apiGroup="k8s.example.com/v1", scope="Cluster"), [
        f'spec.parameters.apiGroup: Invalid value: "k8s.example.com/v1": {SUBDOMAIN}',
        "spec.parameters.kind: Required value", "spec.parameters.name: Required value"],
        id="parameters-incomplete"),
])
def test_ingress_class_errors(obj: dict[str, Any], expected: list[str]) -> None:
    assert errors(IC, obj) == expected


def test_ingress_class_controller_is_at_most_250_bytes() -> None:
    ok = "example.com/" + "a" * 238
    assert errors(IC, ingress_class(ok)) == []
    found = VALIDATORS[IC](ingress_class(ok + "a"), None)
    assert [(e.type, e.path, e.detail) for e in found] == [
        ("FieldValueTooLong", "spec.controller", "must have at most 250 bytes")]


def test_ingress_class_controller_is_immutable() -> None:
    assert errors(IC, ingress_class("example.com/b"), ingress_class("example.com/a")) == [
        'spec.controller: Invalid value: "example.com/b": field is immutable']
    assert errors(IC, ingress_class("example.com/a"), ingress_class("example.com/a")) == []


# --- NetworkPolicy -----------------------------------------------------------------------------


def policy(**spec: Any) -> dict[str, Any]:
    return {"spec": {"podSelector": {}, **spec}}


def from_peers(*peers: Any) -> dict[str, Any]:
    return policy(ingress=[{"from": list(peers)}])


def with_ports(*ports: Any) -> dict[str, Any]:
    return policy(ingress=[{"ports": list(ports)}])


F0 = "spec.ingress[0].from"
PORT = "spec.ingress[0].ports"

NETWORK_POLICY_ERRORS = [
    pytest.param(from_peers({}), [f"{F0}[0]: Required value: must specify a peer"],
                 id="empty-peer"),
    pytest.param(policy(egress=[{"to": [{}]}]), [
        "spec.egress[0].to[0]: Required value: must specify a peer"], id="empty-egress-peer"),
    pytest.param(from_peers({"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}), [
        f"{F0}[0]: Forbidden: may not specify both ipBlock and another peer"],
        id="ipblock-and-selector"),
    pytest.param(from_peers({"podSelector": {}, "namespaceSelector": {}}), [],
                 id="pod-and-namespace-selector"),
    pytest.param(from_peers({"ipBlock": {}}), [f"{F0}[0].ipBlock.cidr: Required value"],
                 id="ipblock-without-cidr"),
    pytest.param(from_peers({"ipBlock": {"cidr": "10.0.0.0"}}, {"ipBlock": {"cidr": "10/8"}},
                            {"ipBlock": {"cidr": "10.0.0.0/33"}},
                            {"ipBlock": {"cidr": "fe80::1%eth0/64"}}), [
        f'{F0}[0].ipBlock.cidr: Invalid value: "10.0.0.0": {BAD_CIDR}',
        f'{F0}[1].ipBlock.cidr: Invalid value: "10/8": {BAD_CIDR}',
        f'{F0}[2].ipBlock.cidr: Invalid value: "10.0.0.0/33": {BAD_CIDR}',
        f'{F0}[3].ipBlock.cidr: Invalid value: "fe80::1%eth0/64": {BAD_CIDR}'], id="bad-cidrs"),
    pytest.param(from_peers({"ipBlock": {"cidr": "10.0.0.1/8"}},
                            {"ipBlock": {"cidr": "010.000.0.0/008"}},
                            {"ipBlock": {"cidr": "2001:DB8:0:0::/64"}},
                            {"ipBlock": {"cidr": "::ffff:10.0.0.0/104"}}), [],
                 id="sloppy-cidrs-accepted-as-kubernetes-does"),
    pytest.param(from_peers({"ipBlock": {"cidr": "10.0.0.0/16", "except": [
        "10.0.0.0/16", "10.0.0.0/8", "10.1.0.0/24", "10.0.5.0/24", "x", "2001:db8::/64"]}}), [
        f'{F0}[0].ipBlock.except[0]: Invalid value: "10.0.0.0/16": must be a strict subset of '
        "`cidr`",
        f'{F0}[0].ipBlock.except[1]: Invalid value: "10.0.0.0/8": must be a strict subset of '
        "`cidr`",
        f'{F0}[0].ipBlock.except[2]: Invalid value: "10.1.0.0/24": must be a strict subset of '
        "`cidr`",
        f'{F0}[0].ipBlock.except[4]: Invalid value: "x": {BAD_CIDR}',
        f'{F0}[0].ipBlock.except[5]: Invalid value: "2001:db8::/64": must be a strict subset of '
        "`cidr`"], id="except-not-inside"),
    pytest.param(with_ports({"protocol": "ICMP", "port": 1}), [
        f'{PORT}[0].protocol: Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP"'],
        id="bad-protocol"),
    pytest.param(with_ports({"port": 0}, {"port": 65536}), [
        f"{PORT}[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        f"{PORT}[1].port: Invalid value: 65536: must be between 1 and 65535, inclusive"],
        id="port-range"),
    pytest.param(with_ports({"port": "HTTP"}, {"port": "my--port"}), [
        f'{PORT}[0].port: Invalid value: "HTTP": must contain only alpha-numeric characters '
        "(a-z, 0-9), and hyphens (-)",
        f'{PORT}[0].port: Invalid value: "HTTP": must contain at least one letter (a-z)',
        f'{PORT}[1].port: Invalid value: "my--port": must not contain consecutive hyphens'],
        id="port-names"),
    pytest.param(with_ports({"port": "http", "endPort": 90}), [
        f"{PORT}[0].endPort: Invalid value: 90: may not be specified when `port` is non-numeric"],
        id="end-port-with-named-port"),
    pytest.param(with_ports({"endPort": 90}), [
        f"{PORT}[0].endPort: Invalid value: 90: may not be specified when `port` is not "
        "specified"], id="end-port-without-port"),
    pytest.param(with_ports({"port": 100, "endPort": 90}), [
        f"{PORT}[0].endPort: Invalid value: 90: must be greater than or equal to `port`"],
        id="end-port-below-port"),
    pytest.param(with_ports({"port": 100, "endPort": 65536}), [
        f"{PORT}[0].endPort: Invalid value: 65536: must be between 1 and 65535, inclusive"],
        id="end-port-range"),
    pytest.param(policy(policyTypes=["Ingress", "Egress", "Ingress"]), [
        'spec.policyTypes: Invalid value: ["Ingress","Egress","Ingress"]: '
        "may not specify more than two policyTypes"], id="three-policy-types"),
    pytest.param(policy(policyTypes=["ingress"]), [
        'spec.policyTypes[0]: Unsupported value: "ingress": supported values: "Ingress", '
        '"Egress"'], id="policy-type-case"),
    pytest.param(policy(podSelector={"matchExpressions": [
        {"key": "a", "operator": "In"}, {"key": "b", "operator": "Exists", "values": ["x"]},
        {"key": "c", "operator": "Equals", "values": ["x"]},
        {"key": "-d", "operator": "NotIn", "values": ["ok", "not ok"]}]}), [
        "spec.podSelector.matchExpressions[0].values: Required value: must be specified when "
        "`operator` is 'In' or 'NotIn'",
        "spec.podSelector.matchExpressions[1].values: Forbidden: may not be specified when "
        "`operator` is 'Exists' or 'DoesNotExist'",
        'spec.podSelector.matchExpressions[2].operator: Invalid value: "Equals": not a valid '
        "selector operator",
        'spec.podSelector.matchExpressions[3].key: Invalid value: "-d": name part must consist '
        "of alphanumeric characters, '-', '_' or '.', and must start and end with an "
        "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
        "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        'spec.podSelector.matchExpressions[3].values[1]: Invalid value: "not ok": a valid label '
        "must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
        "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
        "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"],
        id="selector-requirements"),
    pytest.param(from_peers({"namespaceSelector": {"matchLabels": {"team": "a b"}}}), [
        f'{F0}[0].namespaceSelector.matchLabels: Invalid value: "a b": a valid label must be an '
        "empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and "
        "end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex "
        "used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"],
        id="match-label-value"),
    pytest.param({"spec": {}}, [], id="absent-pod-selector-selects-all-as-in-kubernetes"),
]


@pytest.mark.parametrize(("obj", "expected"), NETWORK_POLICY_ERRORS)
def test_network_policy_errors(obj: dict[str, Any], expected: list[str]) -> None:
    assert errors(NP, obj) == expected


def test_network_policy_update_keeps_old_invalid_selector_values() -> None:
    old = policy(podSelector={"matchExpressions": [
        {"key": "a", "operator": "In", "values": ["not ok"]}]})
    assert len(errors(NP, old)) == 1
    assert errors(NP, old, old) == []


# --- EndpointSlice -----------------------------------------------------------------------------


def endpoint_slice(address_type: str = "IPv4", *addresses: str, **extra: Any) -> dict[str, Any]:
    return {"addressType": address_type,
            "endpoints": [{"addresses": list(addresses)}] if addresses else [], **extra}


A = "endpoints[0].addresses"
ENDPOINT_SLICE_ERRORS = [
    pytest.param({}, ["addressType: Required value"], id="no-address-type"),
    pytest.param(endpoint_slice("IP"), [
        'addressType: Unsupported value: "IP": supported values: "FQDN", "IPv4", "IPv6"'],
        id="bad-address-type"),
    pytest.param({"addressType": "IPv4", "endpoints": [{"addresses": []}]}, [
        f"{A}: Required value: must contain at least 1 address"], id="no-addresses"),
    pytest.param(endpoint_slice("IPv4", "10.0.0.1", "2001:db8::1", "010.0.0.2", "::ffff:10.0.0.3"),
                 [f'{A}[1]: Invalid value: "2001:db8::1": must be a valid IPv4 address'],
                 id="ipv4-family"),
    pytest.param(endpoint_slice("IPv6", "2001:db8::1", "10.0.0.1", "::ffff:10.0.0.3"), [
        f'{A}[1]: Invalid value: "10.0.0.1": must be a valid IPv6 address',
        f'{A}[2]: Invalid value: "::ffff:10.0.0.3": must be a valid IPv6 address'],
        id="ipv6-family"),
    pytest.param(endpoint_slice("IPv4", "pod.local"), [
        f'{A}[0]: Invalid value: "pod.local": must be a valid IPv4 address',
        f'{A}[0]: Invalid value: "pod.local": must be a valid IP address'], id="not-an-ip"),
    pytest.param(endpoint_slice("IPv4", "0.0.0.0", "127.0.0.1", "169.254.169.254", "224.0.0.251"),
                 [f'{A}[0]: Invalid value: "0.0.0.0": may not be unspecified (0.0.0.0)',
                  f'{A}[1]: Invalid value: "127.0.0.1": may not be in the loopback range '
                  "(127.0.0.0/8, ::1/128)",
                  f'{A}[2]: Invalid value: "169.254.169.254": may not be in the link-local range '
                  "(169.254.0.0/16, fe80::/10)",
                  f'{A}[3]: Invalid value: "224.0.0.251": may not be in the link-local multicast '
                  "range (224.0.0.0/24, ff02::/10)"], id="special-ipv4"),
    pytest.param(endpoint_slice("IPv6", "::", "::1", "fe80::1", "ff02::fb"), [
        f'{A}[0]: Invalid value: "::": may not be unspecified (::)',
        f'{A}[1]: Invalid value: "::1": may not be in the loopback range (127.0.0.0/8, ::1/128)',
        f'{A}[2]: Invalid value: "fe80::1": may not be in the link-local range (169.254.0.0/16, '
        "fe80::/10)",
        f'{A}[3]: Invalid value: "ff02::fb": may not be in the link-local multicast range '
        "(224.0.0.0/24, ff02::/10)"], id="special-ipv6"),
    pytest.param(endpoint_slice("FQDN", "localhost", "Example.com", "example.com."), [
        f'{A}[0]: Invalid value: "localhost": should be a domain with at least two segments '
        "separated by dots",
        f'{A}[1]: Invalid value: "Example.com": {SUBDOMAIN}'], id="fqdn"),
    pytest.param({"addressType": "IPv4", "endpoints": [{
        "addresses": ["10.0.0.1"], "hostname": "web-0", "nodeName": "Node_1",
        "conditions": {"ready": "true"}}]}, [
        "endpoints[0].conditions.ready: Invalid value: \"true\": must be of type boolean",
        f'endpoints[0].nodeName: Invalid value: "Node_1": {SUBDOMAIN}'], id="endpoint-fields"),
    pytest.param({"addressType": "IPv4", "endpoints": [{
        "addresses": ["10.0.0.1"],
        "hints": {"forZones": [{"name": "a"}, {"name": "a"}], "forNodes": [{"name": "n1"}]}}]}, [
        'endpoints[0].hints.forZones[1].name: Duplicate value: "a"'], id="duplicate-zone-hint"),
    pytest.param(endpoint_slice("IPv4", ports=[
        {"name": "http", "protocol": "TCP", "port": 80},
        {"name": "http", "protocol": "UDP", "port": 80},
        {"name": "", "protocol": "ICMP"},
        {"name": "", "protocol": "TCP"},
        {"name": "x", "appProtocol": "not valid"}]), [
        'ports[1].name: Duplicate value: "http"',
        'ports[2].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"',
        'ports[3].name: Duplicate value: ""',
        "ports[4].protocol: Required value",
        "ports[4].appProtocol: Invalid value: \"not valid\": name part must consist of "
        "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
        "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
        "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"], id="ports"),
]


@pytest.mark.parametrize(("obj", "expected"), ENDPOINT_SLICE_ERRORS)
def test_endpoint_slice_errors(obj: dict[str, Any], expected: list[str]) -> None:
    assert errors(ES, obj) == expected


def test_endpoint_slice_address_type_is_immutable() -> None:
    assert errors(ES, endpoint_slice("IPv6"), endpoint_slice("IPv4")) == [
        'addressType: Invalid value: "IPv6": field is immutable']


@pytest.mark.parametrize(("obj", "path", "count", "limit"), [
    pytest.param({"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}] * 1001},
                 "endpoints", 1001, 1000, id="endpoints"),
    pytest.param(endpoint_slice("IPv4", *[f"10.0.0.{i}" for i in range(1, 102)]),
                 "endpoints[0].addresses", 101, 100, id="addresses"),
    pytest.param({"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"], "hints": {
        "forZones": [{"name": f"z{i}"} for i in range(9)]}}]},
        "endpoints[0].hints.forZones", 9, 8, id="zone-hints"),
])
def test_endpoint_slice_limits(obj: dict[str, Any], path: str, count: int, limit: int) -> None:
    found = VALIDATORS[ES](obj, None)
    assert [(e.type, e.path, e.value, e.detail) for e in found] == [
        ("FieldValueTooMany", path, count, f"must have at most {limit} items")]


# --- defaults ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "expected_types"), [
    pytest.param({}, ["Ingress"], id="nothing"),
    pytest.param({"ingress": [{}]}, ["Ingress"], id="ingress-rules"),
    pytest.param({"egress": [{}]}, ["Ingress", "Egress"], id="egress-rules"),
    pytest.param({"egress": []}, ["Ingress"], id="empty-egress"),
    pytest.param({"policyTypes": []}, ["Ingress"], id="empty-types"),
    pytest.param({"policyTypes": ["Egress"], "egress": [{}]}, ["Egress"], id="kept"),
])
def test_network_policy_policy_types_default(spec: dict[str, Any],
                                             expected_types: list[str]) -> None:
    obj = {"spec": dict(spec)}
    DEFAULTERS[NP](obj)
    assert obj["spec"]["policyTypes"] == expected_types


def test_network_policy_port_protocol_defaults_to_tcp() -> None:
    obj = policy(ingress=[{"ports": [{"port": 80}, {"protocol": "UDP", "port": 53}]}],
                 egress=[{"ports": [{"port": "dns"}]}])
    DEFAULTERS[NP](obj)
    assert obj["spec"]["ingress"][0]["ports"] == [{"port": 80, "protocol": "TCP"},
                                                  {"protocol": "UDP", "port": 53}]
    assert obj["spec"]["egress"][0]["ports"] == [{"port": "dns", "protocol": "TCP"}]


def test_ingress_class_parameters_scope_defaults_to_cluster() -> None:
    with_params = ingress_class(kind="K", name="n")
    DEFAULTERS[IC](with_params)
    assert with_params["spec"]["parameters"]["scope"] == "Cluster"
    without = ingress_class()
    DEFAULTERS[IC](without)
    assert without == ingress_class()


def test_endpoint_slice_port_defaults() -> None:
    obj = endpoint_slice("IPv4", ports=[{"port": 80}, {"name": "dns", "protocol": "UDP"}])
    DEFAULTERS[ES](obj)
    assert obj["ports"] == [{"port": 80, "name": "", "protocol": "TCP"},
                            {"name": "dns", "protocol": "UDP"}]


def test_ingress_has_no_defaults() -> None:
    assert ING not in DEFAULTERS


# --- malformed input never raises --------------------------------------------------------------

ODD_VALUES: list[Any] = [None, 5, -1, 2**40, 1.5, True, "", "x", [], [5], {}, {"a": 1}, [None]]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key and index path inside a JSON value."""
    children: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    out = []
    for key, child in children:
        out.append((*prefix, key))
        out += _paths(child, (*prefix, key))
    return out


def _replaced(obj: Any, path: tuple[Any, ...], new: Any) -> Any:
    obj = copy.deepcopy(obj)
    target = obj
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return obj


@pytest.mark.parametrize(("key", "obj"), [
    *[pytest.param(ING, o, id=o["metadata"]["name"]) for o in DOC_INGRESSES[:2]],
    *[pytest.param(ING, o, id=o["metadata"]["name"]) for o in DOC_INGRESSES[6:7]],
    *[pytest.param(IC, o, id=o["metadata"]["name"]) for o in DOC_INGRESS_CLASSES[2:3]],
    *[pytest.param(NP, o, id=o["metadata"]["name"]) for o in DOC_NETWORK_POLICIES[::7]],
    *[pytest.param(ES, o, id=o["metadata"]["name"]) for o in DOC_ENDPOINT_SLICES],
])
def test_wrong_types_anywhere_give_errors_not_exceptions(key: tuple[str, str],
                                                         obj: dict[str, Any]) -> None:
    validators = [VALIDATORS[key], *([STATUS_VALIDATORS[key]] if key in STATUS_VALIDATORS else [])]
    for path in _paths(obj):
        for value in ODD_VALUES:
            bad = _replaced(obj, path, value)
            if key in DEFAULTERS:
                DEFAULTERS[key](copy.deepcopy(bad))
            for validate in validators:
                for new, old in ((bad, None), (bad, obj), (obj, bad)):
                    found = validate(new, old)
                    assert all(isinstance(e, FieldError) for e in found)
                    assert all(isinstance(str(e), str) for e in found)


def test_a_wrong_type_is_reported_at_its_path() -> None:
    assert errors(NP, from_peers({"ipBlock": {"cidr": 10}})) == [
        f"{F0}[0].ipBlock.cidr: Invalid value: 10: must be of type string"]
    assert errors(ES, {"addressType": "IPv4", "endpoints": "none"}) == [
        'endpoints: Invalid value: "none": must be of type array']
    string_port = {"spec": {"defaultBackend": backend(name="web", port={"number": "80"})}}
    assert errors(ING, string_port) == [
        'spec.defaultBackend.service.port.number: Invalid value: "80": must be of type int32',
        "spec.defaultBackend: Required value: port name or number is required"]


@pytest.mark.parametrize("value", ["web\n", "a.example.com\n"])
def test_a_trailing_newline_is_no_valid_name(value):
    """Python's `$` matches before a final newline; Go's (and so the API's) does not."""
    from podnet.api import names
    assert names.is_dns1123_subdomain(value)
    assert names.is_dns1123_label("web\n")
    assert names.is_qualified_name("app\n")
    assert names.is_label_value("v1\n")
