"""Bad input gets the right Status and changes nothing in the store."""

from __future__ import annotations

import http.client
import ssl

import pytest

from podnet.client.http import ApiError

pytestmark = pytest.mark.integration

SERVICES = "/api/v1/namespaces/default/services"
GOOD = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ok"},
        "spec": {"ports": [{"port": 80}], "selector": {"app": "ok"}}}


def status_of(cluster, method, path, body=None, content_type="application/json", params=None):
    try:
        cluster.client.request(method, path, body=body, content_type=content_type,
                               params=params)
    except ApiError as e:
        return e.status, e.body
    return 200, None


@pytest.mark.parametrize(("body", "field", "text"), [
    pytest.param({**GOOD, "spec": {"ports": [{"port": 0}]}}, "spec.ports[0].port",
                 "must be between 1 and 65535, inclusive", id="port-zero"),
    pytest.param({**GOOD, "metadata": {"name": "Bad_Name"}}, "metadata.name",
                 "a DNS-1035 label", id="service-name"),
    pytest.param({**GOOD, "spec": {"type": "ExternalName"}}, "spec.externalName",
                 "Required value", id="externalname-needs-target"),
    pytest.param({**GOOD, "spec": {"ports": [{"port": 80, "nodePort": 30080}]}},
                 "spec.ports[0].nodePort", "", id="nodeport-on-clusterip"),
    pytest.param({**GOOD, "spec": {"type": "NodePort", "ports": [{"port": 80,
                                                                   "nodePort": 80}]}},
                 "spec.ports[0].nodePort", "", id="nodeport-out-of-range"),
    pytest.param({**GOOD, "spec": {"ports": [{"port": 80, "name": "a"},
                                             {"port": 81, "name": "a"}]}},
                 "spec.ports[1].name", "Duplicate value", id="duplicate-port-name"),
    pytest.param({**GOOD, "spec": {"clusterIP": "10.200.0.1", "ports": [{"port": 80}]}},
                 "spec.clusterIPs[0]", "not in the valid range", id="clusterip-out-of-range"),
])
def test_invalid_object_is_422_naming_the_field(cluster, body, field, text):
    before = cluster.settled_revision()
    code, status = status_of(cluster, "POST", SERVICES, body)
    assert code == 422, status
    assert status["reason"] == "Invalid"
    assert field in status["message"] and text in status["message"]
    assert any(c["field"] == field for c in status["details"]["causes"])
    assert cluster.revision() == before


@pytest.mark.parametrize(("raw", "ctype"), [
    pytest.param(b'{"apiVersion": "v1", "kind": ', "application/json", id="truncated-json"),
    pytest.param(b"metadata: [unclosed", "application/yaml", id="broken-yaml"),
    pytest.param(b'["not", "an", "object"]', "application/json", id="json-array"),
    pytest.param(b'{"apiVersion":"v1","kind":"Service","metadata":{"name":"x"},'
                 b'"spec":{"ports":[{"port":"eighty"}]}}', "application/json",
                 id="wrong-type"),
])
def test_malformed_body_is_400(cluster, raw, ctype):
    before = cluster.settled_revision()
    code, status = status_of(cluster, "POST", SERVICES, raw, content_type=ctype)
    assert code == 400, status
    assert status["reason"] == "BadRequest"
    assert cluster.revision() == before


def test_wrong_type_names_the_field(cluster):
    code, status = status_of(cluster, "POST", SERVICES, {
        **GOOD, "spec": {"ports": [{"port": "eighty"}]}})
    assert code == 400 and "spec.ports[0].port" in status["message"]


def test_strict_field_validation_rejects_unknown_fields(cluster):
    before = cluster.settled_revision()
    body = {**GOOD, "spec": {**GOOD["spec"], "bogus": 1}}
    code, status = status_of(cluster, "POST", SERVICES, body,
                             params={"fieldValidation": "Strict"})
    assert code == 400 and 'unknown field "spec.bogus"' in status["message"]
    assert cluster.revision() == before


def test_unknown_fields_are_dropped_with_a_warning_by_default(cluster):
    body = {**GOOD, "spec": {**GOOD["spec"], "bogus": 1}}
    resp = cluster.client.request("POST", SERVICES, body=body)
    assert resp.status == 201
    assert resp.headers["warning"] == '299 - "unknown field \\"spec.bogus\\""'
    assert "bogus" not in cluster.client.get(cluster.res("Service"), "default", "ok")["spec"]


def test_stale_update_is_409(cluster):
    created = cluster.client.request("POST", SERVICES, body=GOOD).json()
    cluster.client.request("PATCH", f"{SERVICES}/ok", body={"metadata": {"labels": {"a": "1"}}},
                           content_type="application/merge-patch+json")
    before = cluster.settled_revision()
    created["metadata"]["labels"] = {"a": "stale"}
    code, status = status_of(cluster, "PUT", f"{SERVICES}/ok", created)
    assert code == 409 and status["reason"] == "Conflict"
    assert cluster.revision() == before


def test_create_twice_is_409_already_exists(cluster):
    cluster.client.request("POST", SERVICES, body=GOOD)
    before = cluster.settled_revision()
    code, status = status_of(cluster, "POST", SERVICES, GOOD)
    assert (code, status["reason"]) == (409, "AlreadyExists")
    assert cluster.revision() == before


@pytest.mark.parametrize("path", [
    pytest.param("/api/v1/namespaces/default/gizmos", id="unknown-resource"),
    pytest.param("/apis/example.com/v1/widgets", id="unknown-group"),
    pytest.param("/api/v1/namespaces/default/services/nope", id="missing-object"),
])
def test_unknown_is_404(cluster, path):
    assert status_of(cluster, "GET", path)[0] == 404


def test_taken_cluster_ip_and_node_port_are_422(cluster):
    first = cluster.client.request("POST", SERVICES, body={
        **GOOD, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}).json()
    ip, node_port = first["spec"]["clusterIP"], first["spec"]["ports"][0]["nodePort"]
    assert 30000 <= node_port <= 32767
    before = cluster.settled_revision()
    for spec, field in (({"clusterIP": ip, "ports": [{"port": 80}]}, "spec.clusterIPs[0]"),
                        ({"type": "NodePort", "ports": [{"port": 80, "nodePort": node_port}]},
                         "spec.ports[0].nodePort")):
        code, status = status_of(cluster, "POST", SERVICES, {
            **GOOD, "metadata": {"name": "two"}, "spec": spec})
        assert code == 422 and "already allocated" in status["message"]
        assert status["details"]["causes"][0]["field"] == field
    assert cluster.revision() == before
    # Deleting the first releases both; the second may then take them.
    cluster.client.request("DELETE", f"{SERVICES}/ok")
    second = cluster.client.request("POST", SERVICES, body={
        **GOOD, "metadata": {"name": "two"},
        "spec": {"type": "NodePort", "clusterIP": ip,
                 "ports": [{"port": 80, "nodePort": node_port}]}}).json()
    assert second["spec"]["clusterIP"] == ip


def test_dns_service_ip_is_left_free_for_the_cluster_dns(cluster):
    for i in range(30):
        created = cluster.client.request("POST", SERVICES, body={
            **GOOD, "metadata": {"name": f"s{i}"}}).json()
        assert created["spec"]["clusterIP"] not in ("10.96.0.1", "10.96.0.10")
    dns = cluster.client.request("POST", "/api/v1/namespaces/kube-system/services", body={
        **GOOD, "metadata": {"name": "kube-dns"},
        "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 53, "protocol": "UDP"}]}}).json()
    assert dns["spec"]["clusterIP"] == "10.96.0.10"


def _raw(cluster, headers):
    cfg = cluster.state.config() if callable(getattr(cluster.state, "config", None)) else None
    port = cfg.port if cfg else cluster.port
    ctx = ssl.create_default_context(cafile=str(cluster.state.dir / "pki" / "ca.crt"))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    conn.request("POST", SERVICES, body=b'{"apiVersion":"v1","kind":"Service","metadata":'
                 b'{"name":"sneaky"},"spec":{"ports":[{"port":80}]}}',
                 headers={"Content-Type": "application/json", **headers})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp.status


@pytest.mark.parametrize("headers", [
    pytest.param({}, id="no-token"),
    pytest.param({"Authorization": "Bearer wrong"}, id="wrong-token"),
    pytest.param({"Authorization": "Basic YWRtaW46YWRtaW4="}, id="basic-auth"),
])
def test_no_valid_token_is_401_and_changes_nothing(cluster, headers):
    before = cluster.settled_revision()
    assert _raw(cluster, headers) == 401
    assert cluster.revision() == before
    assert status_of(cluster, "GET", f"{SERVICES}/sneaky")[0] == 404
