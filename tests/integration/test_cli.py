"""The podnet CLI against a real API server: up/status/down (also after crashes), apply, get,
delete, the kubeconfig with the real kubectl, and the client's watch."""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from podnet.client.http import ApiError
from podnet.cluster import lifecycle
from podnet.cluster.state import ClusterState, ensure, ephemeral_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "demo.yaml"

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


def podnet(root: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, with its state under `root`."""
    env = {**os.environ, "PODNET_STATE_ROOT": str(root)}
    return subprocess.run([sys.executable, "-m", "podnet.cli.main", *args], input=input,
                          text=True, capture_output=True, env=env, cwd=REPO, timeout=90)


def wait_dead(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while lifecycle.pid_alive(pid):
        assert time.monotonic() < deadline, f"process {pid} still alive"
        time.sleep(0.05)


# -- lifecycle --------------------------------------------------------------------------------


def test_up_again_is_a_no_op_that_keeps_the_credentials(cluster):
    ca, token, pid = cluster.state.ca_crt.read_bytes(), cluster.state.read_token(), \
        cluster.state.read_pid()
    r = cluster.podnet("up")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (f'cluster "{cluster.name}" is already running at '
                        f"https://127.0.0.1:{cluster.port}\nkubeconfig: {cluster.kubeconfig}\n")
    assert r.stderr == ""
    assert cluster.state.ca_crt.read_bytes() == ca
    assert cluster.state.read_token() == token
    assert cluster.state.read_pid() == pid


def test_status_reports_the_server_and_counts(cluster):
    namespaces = len(cluster.client.list(cluster.res("namespaces"))["items"])
    services = len(cluster.client.list(cluster.res("services"))["items"])
    r = cluster.podnet("status")
    assert r.returncode == 0, r.stderr
    fields = dict(re.split(r":\s+", line, maxsplit=1) for line in r.stdout.splitlines())
    assert fields == {
        "cluster": cluster.name,
        "state": str(cluster.state.dir),
        "api": f"https://127.0.0.1:{cluster.port}",
        "kubeconfig": str(cluster.kubeconfig),
        "apiserver": f"running (pid {cluster.state.read_pid()}), ready",
        "namespaces": str(namespaces),
        "pods": "0",
        "services": str(services),
    }


def test_kubeconfig_command_and_kubectl(cluster):
    r = cluster.podnet("kubeconfig")
    assert (r.returncode, r.stdout) == (0, f"{cluster.kubeconfig}\n")
    out = cluster.kubectl("--kubeconfig", r.stdout.strip(), "get", "namespaces", "-o", "name")
    assert out.returncode == 0, out.stderr
    assert "namespace/default" in out.stdout.splitlines()


def test_down_after_a_crash_and_a_stale_pid_file(cluster_root):
    name = "c" + secrets.token_hex(3)
    port = str(ephemeral_port("127.0.0.1"))
    assert podnet(cluster_root, "up", "--name", name, "--port", port, "--nodes", "0"
                  ).returncode == 0
    state = ClusterState.locate(name, cluster_root)
    pid = state.read_pid()
    assert pid is not None and lifecycle.is_server_of(pid, state)
    os.kill(pid, signal.SIGKILL)
    wait_dead(pid)

    r = podnet(cluster_root, "status", "--name", name)
    assert r.returncode == 1
    assert "apiserver:  not running" in r.stdout

    r = podnet(cluster_root, "up", "--name", name)  # restarts it over the stale pid file
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f'cluster "{name}" is up at ')
    assert state.read_pid() not in (None, pid)

    assert podnet(cluster_root, "down", "--name", name).stdout == f'cluster "{name}" deleted\n'
    assert not state.dir.exists()
    assert lifecycle.find_servers(state) == []
    r = podnet(cluster_root, "down", "--name", name)
    assert (r.returncode, r.stdout) == (0, f'cluster "{name}" does not exist\n')


def test_down_after_a_half_finished_up_signals_nobody_else(cluster_root):
    state = ensure("half", cluster_root)
    state.write_pid(os.getpid())  # a pid that is alive but is not this cluster's server
    assert lifecycle.down("half", cluster_root, out=io.StringIO()) is True
    assert not state.dir.exists()


def test_down_finds_a_server_whose_pid_file_is_lost(cluster_root):
    state = lifecycle.up("lost", cluster_root, port=ephemeral_port("127.0.0.1"),
                         out=io.StringIO())
    pid = state.read_pid()
    state.clear_pid()
    assert lifecycle.find_servers(state) == [pid]
    lifecycle.down("lost", cluster_root, out=io.StringIO())
    assert not lifecycle.pid_alive(pid)
    assert not state.dir.exists()


def test_up_fails_clearly_when_the_port_is_taken(cluster_root):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        state = ensure("busy", cluster_root)
        cfg = json.loads(state.cluster_json.read_text())
        state.cluster_json.write_text(json.dumps({**cfg, "port": port}))
        r = podnet(cluster_root, "up", "--name", "busy")
        assert r.returncode == 1
        assert r.stderr == (f"error: port {port} on 127.0.0.1 is taken by another process; "
                            "stop it, or remove the cluster with `podnet down --name busy`\n")
    assert podnet(cluster_root, "down", "--name", "busy").returncode == 0


def test_down_refuses_a_directory_that_is_not_a_cluster(cluster_root):
    precious = cluster_root / "home" / "precious.txt"
    precious.parent.mkdir()
    precious.write_text("keep me")
    r = podnet(cluster_root, "down", "--name", "home")
    assert r.returncode == 1
    assert r.stderr == (f"error: refusing to remove {cluster_root / 'home'}: it is not a podnet "
                        "state directory\n")
    assert precious.read_text() == "keep me"


# -- apply / get / delete ---------------------------------------------------------------------


def test_apply_get_delete_the_demo(cluster):
    r = cluster.podnet("apply", "-f", str(DEMO.parent))
    assert (r.returncode, r.stderr) == (0, "")
    pods = ["web-1", "web-2", "web-3", "client"]
    assert r.stdout == ("namespace/demo created\n" + "".join(f"pod/{p} created\n" for p in pods)
                        + "service/web created\nservice/web-nodeport created\n"
                        + "service/web-lb created\n"
                        + "ingress.networking.k8s.io/web created\n"  # examples/ingress.yaml
                        + "networkpolicy.networking.k8s.io/web-allow-frontend created\n")
    r = cluster.podnet("apply", "-f", str(DEMO))
    assert r.stdout == ("namespace/demo unchanged\n"
                        + "".join(f"pod/{p} unchanged\n" for p in pods)
                        + "service/web unchanged\nservice/web-nodeport unchanged\n"
                        + "service/web-lb unchanged\n")

    lines = cluster.podnet("get", "services", "-n", "demo").stdout.splitlines()
    assert re.split(r"\s{3,}", lines[0]) == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP",
                                             "PORT(S)", "AGE"]
    assert [line.split()[:2] for line in lines[1:]] == [["web", "ClusterIP"],
                                                     ["web-lb", "LoadBalancer"],
                                                     ["web-nodeport", "NodePort"]]
    assert "80:30080/TCP" in lines[3]

    lines = cluster.podnet("get", "svc", "-A").stdout.splitlines()
    assert lines[0].startswith("NAMESPACE   NAME")
    assert {tuple(line.split()[:2]) for line in lines[1:]} >= {
        ("default", "kubernetes"), ("demo", "web"), ("demo", "web-nodeport")}

    obj = yaml.safe_load(cluster.podnet("get", "svc", "web", "-n", "demo", "-o", "yaml").stdout)
    assert (obj["kind"], obj["metadata"]["name"]) == ("Service", "web")
    assert "kubectl.kubernetes.io/last-applied-configuration" in obj["metadata"]["annotations"]
    lst = json.loads(cluster.podnet("get", "svc", "-n", "demo", "-o", "json").stdout)
    assert lst["kind"] == "List"
    assert [i["metadata"]["name"] for i in lst["items"]] == ["web", "web-lb", "web-nodeport"]
    assert {i["kind"] for i in lst["items"]} == {"Service"}

    r = cluster.podnet("delete", "-f", str(DEMO))
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == ("".join(f'pod "{p}" deleted\n' for p in pods)
                        + 'service "web" deleted\nservice "web-nodeport" deleted\n'
                        'service "web-lb" deleted\nnamespace "demo" deleted\n')
    with pytest.raises(ApiError) as e:
        cluster.client.get(cluster.res("namespaces"), None, "demo")
    assert e.value.status == 404


def test_apply_three_way_removes_dropped_fields(cluster):
    assert cluster.podnet("apply", "-f", "-", input=SERVICE).returncode == 0
    changed = SERVICE.replace("labels: {app: web}", "labels: {tier: front}").replace(
        "  selector: {app: web}\n", "")
    r = cluster.podnet("apply", "-f", "-", input=changed)
    assert (r.returncode, r.stdout) == (0, "service/web configured\n")
    svc = cluster.client.get(cluster.res("services"), "default", "web")
    assert svc["metadata"]["labels"] == {"tier": "front"}
    assert "selector" not in svc["spec"]
    assert svc["spec"]["clusterIP"]  # the server's own fields are kept
    assert cluster.podnet("apply", "-f", "-", input=changed).stdout == "service/web unchanged\n"


def test_podnet_and_kubectl_apply_agree(cluster):
    assert cluster.podnet("apply", "-f", "-", input=SERVICE).returncode == 0
    r = cluster.kubectl("apply", "-f", "-", input=SERVICE)
    assert (r.returncode, r.stdout) == (0, "service/web unchanged\n"), r.stderr
    other = SERVICE.replace("name: web\n", "name: other\n")
    assert cluster.kubectl("apply", "-f", "-", input=other).returncode == 0
    r = cluster.podnet("apply", "-f", "-", input=other)
    assert (r.returncode, r.stdout) == (0, "service/other unchanged\n"), r.stderr


def test_apply_reports_a_bad_document_and_applies_the_rest(cluster):
    bad = SERVICE.replace("name: web\n", "name: bad\n").replace("port: 80,", "port: 0,")
    text = "---\n".join([SERVICE, bad, SERVICE.replace("name: web\n", "name: after\n")])
    r = cluster.podnet("apply", "-f", "-", input=text)
    assert r.returncode == 1
    assert r.stdout == "service/web created\nservice/after created\n"
    assert r.stderr.startswith('Error from server (Invalid): error when creating "STDIN": '
                               'Service "bad" is invalid: ')
    assert "spec.ports[0].port" in r.stderr


def test_get_nothing_and_errors(cluster):
    r = cluster.podnet("get", "pods")
    assert (r.returncode, r.stdout, r.stderr) == (
        0, "", "No resources found in default namespace.\n")
    r = cluster.podnet("get", "pods", "-A")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "No resources found\n")
    r = cluster.podnet("get", "services", "nope")
    assert (r.returncode, r.stdout, r.stderr) == (
        1, "", 'Error from server (NotFound): services "nope" not found\n')
    r = cluster.podnet("get", "frobs")
    assert (r.returncode, r.stderr) == (1, 'error: the server doesn\'t have a resource type '
                                           '"frobs"\n')
    r = cluster.podnet("delete", "service", "nope")
    assert (r.returncode, r.stderr) == (
        1, 'Error from server (NotFound): services "nope" not found\n')
    assert cluster.podnet("delete", "service", "nope", "--ignore-not-found").returncode == 0


def test_get_matches_kubectl_tables(cluster):
    assert cluster.podnet("apply", "-f", str(DEMO)).returncode == 0
    for args in (["get", "namespaces"], ["get", "svc", "-A", "-o", "wide"],
                 ["get", "pods", "-n", "demo", "--show-labels"], ["get", "svc", "-n", "demo",
                                                                 "-o", "yaml"]):
        ours, theirs = cluster.podnet(*args), cluster.kubectl(*args)
        assert ours.returncode == theirs.returncode == 0
        strip_age = re.compile(r"\b\d+(s|m|h|d)\b")  # AGE moves on between the two runs
        assert strip_age.sub("AGE", ours.stdout) == strip_age.sub("AGE", theirs.stdout), args


def test_delete_waits_until_the_namespace_is_gone(cluster):
    ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: gone}\n"
    assert cluster.podnet("apply", "-f", "-", input=ns + "---\n" + SERVICE.replace(
        "name: web\n", "name: web\n  namespace: gone\n")).returncode == 0
    r = cluster.podnet("delete", "namespace", "gone")
    assert (r.returncode, r.stdout) == (0, 'namespace "gone" deleted\n'), r.stderr
    with pytest.raises(ApiError) as e:
        cluster.client.get(cluster.res("namespaces"), None, "gone")
    assert e.value.status == 404


# -- the client -------------------------------------------------------------------------------


def test_client_watch_sees_create_and_delete(cluster):
    svc = cluster.res("services")
    rv = cluster.client.list(svc, "default")["metadata"]["resourceVersion"]
    cluster.client.create(svc, "default", yaml.safe_load(SERVICE))
    cluster.client.delete(svc, "default", "web")
    seen = []
    for ev in cluster.client.watch(svc, "default", rv, timeout_seconds=5):
        seen.append((ev.type, ev.object["metadata"]["name"]))
        if ev.type == "DELETED":
            break
    assert seen[0] == ("ADDED", "web")
    assert seen[-1] == ("DELETED", "web")


def test_client_table_and_errors(cluster):
    svc = cluster.res("services")
    table = cluster.client.table(svc, "default")
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]][:2] == ["Name", "Type"]
    with pytest.raises(ApiError) as e:
        cluster.client.get(svc, "default", "nope")
    assert (e.value.status, e.value.reason, e.value.message) == (
        404, "NotFound", 'services "nope" not found')
