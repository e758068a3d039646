"""Container probes through the whole stack: the API server, a node agent, real pods.

Each test brings up a one-node lab. The probes' files live under /tmp with a random name of
their own (the pod's mount namespace shares /tmp with the host), removed afterwards.
"""

from __future__ import annotations

import asyncio
import calendar
import io
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from labkit import wait_for

from podnet.cluster import lifecycle

pytestmark = pytest.mark.integration

# A small HTTP server for the probes to talk to: logs each request as one JSON line, and
# answers with the status code written in the file named by argv[1] (200 when it is absent).
SERVER = r"""
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            code = int(open(sys.argv[1]).read().strip())
        except (OSError, ValueError):
            code = 200
        print(json.dumps({"path": self.path, "client": self.client_address[0],
                          "headers": dict(self.headers.items())}), flush=True)
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("0.0.0.0", 8080), H).serve_forever()
"""


TLS_SERVER = r"""
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        print("TLS GET", self.path, flush=True)
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("0.0.0.0", 8443), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
server.socket = ctx.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""


def self_signed(cert: Path, key: Path) -> None:
    """A throwaway self-signed certificate that no client would trust."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    pk = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "untrusted.example")])
    now = dt.datetime.now(dt.UTC)
    crt = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
           .public_key(pk.public_key()).serial_number(x509.random_serial_number())
           .not_valid_before(now - dt.timedelta(minutes=1))
           .not_valid_after(now + dt.timedelta(hours=1)).sign(pk, hashes.SHA256()))
    cert.write_bytes(crt.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(pk.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))


@pytest.fixture
def flag() -> Iterator[Callable[[str], Path]]:
    """Unique file paths under /tmp, removed at the end."""
    made: list[Path] = []

    def make(what: str) -> Path:
        path = Path(f"/tmp/podnet-probe-{what}-{secrets.token_hex(6)}")
        made.append(path)
        return path

    try:
        yield make
    finally:
        for path in made:
            path.unlink(missing_ok=True)


def create(lab: Any, name: str, containers: list[dict[str, Any]], **spec: Any) -> None:
    lab.client.create(lab.res("Pod"), "default", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": containers, "terminationGracePeriodSeconds": 2, **spec}})


def pod(lab: Any, name: str) -> dict[str, Any]:
    return lab.client.get(lab.res("Pod"), "default", name)


def cond(p: dict[str, Any], ctype: str) -> dict[str, Any]:
    for c in p.get("status", {}).get("conditions") or []:
        if c["type"] == ctype:
            return dict(c)
    return {}


def ready(p: dict[str, Any]) -> bool | None:
    """The pod's Ready condition, None before it runs."""
    if p.get("status", {}).get("phase") != "Running":
        return None
    return cond(p, "Ready").get("status") == "True"


def cstatus(p: dict[str, Any], name: str) -> dict[str, Any]:
    for c in p.get("status", {}).get("containerStatuses") or []:
        if c["name"] == name:
            return dict(c)
    return {}


def events(lab: Any, name: str) -> list[tuple[str, str, str]]:
    items = lab.client.list(lab.res("Event"), "default",
                            field_selector=f"involvedObject.name={name}")["items"]
    return [(e["type"], e["reason"], e["message"]) for e in items]


def epoch(stamp: str) -> int:
    return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))


def test_http_readiness_waits_for_the_initial_delay_and_a_passing_probe(make_lab):
    lab = make_lab(nodes=1)
    create(lab, "web", [{
        "name": "web", "image": "podnet/echo", "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                           "initialDelaySeconds": 3, "periodSeconds": 1}}])
    running = wait_for("web running", lambda: ready(pod(lab, "web")) is not None and pod(
        lab, "web"), every=0.05)
    # running, started, not ready: the probe has not run yet
    c = cstatus(running, "web")
    assert (c["ready"], c["started"]) == (False, True)
    assert cond(running, "Ready")["reason"] == "ContainersNotReady"
    assert cond(running, "ContainersReady")["message"] == "containers with unready status: [web]"
    p = wait_for("web ready", lambda: ready(pod(lab, "web")) and pod(lab, "web"), every=0.05)
    started_at = epoch(cstatus(p, "web")["state"]["running"]["startedAt"])
    ready_at = epoch(cond(p, "Ready")["lastTransitionTime"])
    assert 3 <= ready_at - started_at <= 5, (started_at, ready_at)
    assert cstatus(p, "web")["ready"] is True
    assert cond(p, "ContainersReady")["status"] == "True"
    assert not [e for e in events(lab, "web") if e[1] == "Unhealthy"]


def test_http_probe_sends_path_headers_and_host_and_reads_the_status_code(make_lab, flag):
    lab = make_lab(nodes=1)
    code = flag("code")
    create(lab, "api", [{
        "name": "api", "image": "python", "command": [sys.executable, "-c", SERVER, str(code)],
        "ports": [{"name": "web", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/ready?x=1", "port": "web", "httpHeaders": [
            {"name": "x-probe", "value": "yes"}, {"name": "Host", "value": "probe.example"}]},
            "periodSeconds": 1, "failureThreshold": 1}}])
    p = wait_for("api ready", lambda: ready(pod(lab, "api")) and pod(lab, "api"))
    pod_ip = p["status"]["podIP"]
    log = lab.podnet("logs", "api").stdout.splitlines()
    first = json.loads(log[0])
    assert first["path"] == "/ready?x=1"
    assert first["headers"]["Host"] == "probe.example"
    assert first["headers"]["User-Agent"] == "kube-probe/1.37"
    assert first["headers"]["X-Probe"] == "yes"
    assert first["headers"]["Accept"] == "*/*"
    # from the node's namespace, not from inside the pod
    assert first["client"] not in ("127.0.0.1", pod_ip)
    code.write_text("503")
    wait_for("api unready", lambda: ready(pod(lab, "api")) is False)
    assert ("Warning", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: "
            "503") in events(lab, "api")
    code.write_text("302")  # 200 <= code < 400 passes
    wait_for("api ready again", lambda: ready(pod(lab, "api")) is True)
    assert cstatus(pod(lab, "api"), "api")["restartCount"] == 0


def test_exec_readiness_follows_a_file_and_survives_an_agent_restart(make_lab, flag):
    lab = make_lab(nodes=1)
    marker = flag("ready")
    create(lab, "gate", [{
        "name": "c", "image": "busybox", "command": ["sleep", "1000"],
        "readinessProbe": {"exec": {"command": ["test", "-f", str(marker)]},
                           "periodSeconds": 1, "failureThreshold": 1}}])
    wait_for("gate running", lambda: ready(pod(lab, "gate")) is False)
    marker.touch()
    wait_for("gate ready", lambda: ready(pod(lab, "gate")) is True)
    marker.unlink()
    p = wait_for("gate unready", lambda: ready(pod(lab, "gate")) is False and pod(lab, "gate"))
    assert cond(p, "Ready")["message"] == "containers with unready status: [c]"
    assert cstatus(p, "c")["restartCount"] == 0 and "running" in cstatus(p, "c")["state"]
    assert ("Warning", "Unhealthy", "Readiness probe failed: ") in events(lab, "gate")
    marker.touch()
    p = wait_for("gate ready again", lambda: ready(pod(lab, "gate")) is True and pod(lab, "gate"))
    since = cond(p, "Ready")["lastTransitionTime"]

    # kill -9 the agent and start it again: it adopts the pod and remembers it was ready
    pid = int(Path(lab.state.agent_pid("node-1")).read_text())
    os.kill(pid, signal.SIGKILL)
    wait_for("agent gone", lambda: not lifecycle.pid_alive(pid), timeout=10)
    lifecycle.up(lab.name, lab.root, out=io.StringIO())
    new_pid = int(Path(lab.state.agent_pid("node-1")).read_text())
    assert new_pid != pid
    time.sleep(3)  # several probe periods
    p = pod(lab, "gate")
    assert ready(p) is True and cond(p, "Ready")["lastTransitionTime"] == since
    assert cstatus(p, "c")["restartCount"] == 0


def test_failing_liveness_probe_restarts_the_container(make_lab, flag):
    lab = make_lab(nodes=1)
    alive = flag("alive")
    alive.touch()
    create(lab, "live", [{
        "name": "c", "image": "busybox", "command": ["sleep", "1000"],
        "livenessProbe": {"exec": {"command": ["test", "-f", str(alive)]},
                          "initialDelaySeconds": 2, "periodSeconds": 1,
                          "failureThreshold": 2}}])
    p = wait_for("live ready", lambda: ready(pod(lab, "live")) and pod(lab, "live"))
    assert cstatus(p, "c")["restartCount"] == 0
    time.sleep(2.5)  # passing probes change nothing
    assert cstatus(pod(lab, "live"), "c")["restartCount"] == 0
    alive.unlink()
    p = wait_for("a restart", lambda: cstatus(pod(lab, "live"), "c").get("restartCount") == 1
                 and pod(lab, "live"))
    alive.touch()  # the new run passes
    c = cstatus(p, "c")
    assert c["lastState"]["terminated"]["exitCode"] == 143  # sleep ended by SIGTERM
    assert c["lastState"]["terminated"]["reason"] == "Error"
    seen = events(lab, "live")
    assert ("Normal", "Killing", "Container c failed liveness probe, will be restarted") in seen
    assert ("Warning", "Unhealthy", "Liveness probe failed: ") in seen
    p = wait_for("running again", lambda: "running" in cstatus(pod(lab, "live"), "c").get(
        "state", {}) and pod(lab, "live"))
    time.sleep(2.5)
    p = pod(lab, "live")
    assert cstatus(p, "c")["restartCount"] == 1 and ready(p) is True, json.dumps(p["status"])


def test_tcp_probe_on_a_closed_port_keeps_the_pod_unready(make_lab):
    lab = make_lab(nodes=1)
    create(lab, "tcp", [
        {"name": "open", "image": "podnet/echo", "ports": [{"containerPort": 8080}],
         "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}},
        {"name": "closed", "image": "podnet/echo", "ports": [{"containerPort": 8081}],
         "readinessProbe": {"tcpSocket": {"port": 9999}, "periodSeconds": 1}}])
    wait_for("open ready", lambda: cstatus(pod(lab, "tcp"), "open").get("ready") is True)
    time.sleep(3)
    p = pod(lab, "tcp")
    assert p["status"]["phase"] == "Running"
    assert cstatus(p, "closed")["ready"] is False and cstatus(p, "closed")["started"] is True
    assert cond(p, "Ready") | {"lastTransitionTime": ""} == {
        "type": "Ready", "status": "False", "observedGeneration": 1, "lastTransitionTime": "",
        "reason": "ContainersNotReady", "message": "containers with unready status: [closed]"}
    ip = p["status"]["podIP"]
    assert ("Warning", "Unhealthy", f"Readiness probe failed: dial tcp {ip}:9999: connect: "
            "connection refused") in events(lab, "tcp")


def test_startup_probe_holds_started_and_liveness_until_it_passes(make_lab, flag):
    lab = make_lab(nodes=1)
    booted, alive = flag("booted"), flag("alive")
    create(lab, "slow", [{
        "name": "c", "image": "busybox", "command": ["sleep", "1000"],
        "startupProbe": {"exec": {"command": ["test", "-f", str(booted)]},
                         "periodSeconds": 1, "failureThreshold": 30},
        "livenessProbe": {"exec": {"command": ["test", "-f", str(alive)]}, "periodSeconds": 1,
                          "failureThreshold": 1}}])
    wait_for("slow running", lambda: ready(pod(lab, "slow")) is False)
    time.sleep(2.5)
    c = cstatus(pod(lab, "slow"), "c")
    # not started: liveness does not run yet (it would fail), and the pod is not ready
    assert (c["started"], c["ready"], c["restartCount"]) == (False, False, 0)
    alive.touch()
    booted.touch()
    p = wait_for("started", lambda: ready(pod(lab, "slow")) and pod(lab, "slow"))
    assert (cstatus(p, "c")["started"], cstatus(p, "c")["restartCount"]) == (True, 0)
    alive.unlink()  # now liveness runs: its failure restarts the container
    wait_for("restarted", lambda: cstatus(pod(lab, "slow"), "c").get("restartCount") == 1)
    assert ("Normal", "Killing", "Container c failed liveness probe, will be restarted") in \
        events(lab, "slow")


def test_https_probe_skips_certificate_verification(make_lab, flag):
    lab = make_lab(nodes=1)
    cert, key = flag("cert"), flag("key")
    self_signed(cert, key)
    create(lab, "tls", [{
        "name": "tls", "image": "python",
        "command": [sys.executable, "-c", TLS_SERVER, str(cert), str(key)],
        "readinessProbe": {"httpGet": {"path": "/secure", "port": 8443, "scheme": "HTTPS"},
                           "periodSeconds": 1}}])
    wait_for("tls ready", lambda: ready(pod(lab, "tls")) is True)
    assert "TLS GET /secure" in lab.podnet("logs", "tls").stdout


# -- the shell pieces on their own (processes of the test's own; no namespaces) -----------------

def test_run_command_captures_output_and_exit_status():
    from podnet.runtime.prober import run_command

    code, out = asyncio.run(run_command(["sh", "-c", "echo hi; echo err >&2; exit 3"],
                                        {"PATH": "/usr/bin:/bin"}, 5))
    assert (code, out) == (3, b"hi\nerr\n")
    code, out = asyncio.run(run_command(["sh", "-c", "head -c 20000 /dev/zero"],
                                        {"PATH": "/usr/bin:/bin"}, 5))
    assert code == 0 and out == b"\0" * 10240


def test_run_command_kills_the_whole_group_on_timeout():
    from podnet.runtime import alive, proc_start_time
    from podnet.runtime.prober import run_command

    started = time.monotonic()
    code, out = asyncio.run(run_command(["sh", "-c", "sleep 30 & echo $!; wait"],
                                        {"PATH": "/usr/bin:/bin"}, 0.5))
    assert code is None and time.monotonic() - started < 3
    child = int(out.decode().strip())
    wait_for("the background sleep gone", lambda: not alive(child, proc_start_time(child)),
             timeout=5)


def test_a_node_namespace_that_cannot_be_entered_makes_network_probes_error():
    from podnet.runtime import probes
    from podnet.runtime.prober import ProbeRunner

    runner = ProbeRunner(Path(f"/run/netns/podnet-missing-{secrets.token_hex(4)}"))
    try:
        outcome = asyncio.run(runner.tcp_socket(probes.TcpSocket("10.0.0.1", 80), 1))
    finally:
        runner.close()
    assert outcome.result == probes.UNKNOWN and outcome.error.startswith("cannot open /run/netns/")
