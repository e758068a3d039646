"""The ingress under load: route and endpoint changes, a Secret rotated and a long-lived
connection across a reload, while clients on the external host keep requesting.

Address plan (ingresskit's): LAN 172.18.0.0/24, the external host at .2, node-1 .11, node-2
.12; the ingress Service's LoadBalancer address from the pool .200-.249; pods in 10.244.0.0/16.
Each test has a namespace of its own and names its hosts under .test.

The load comes from tools/http_load.py, run in the external host's namespace: a Python
(stdlib) program rather than wrk, which CI does not install, and stricter than wrk's
counters: it counts every status per client, and every error (refused, reset, closed before
the whole answer, timeout, TLS failure), keeping the first few with their time. A connection
the server closes after an answer that said `Connection: close` is not an error; one it closes
under a request is (wrk counts that as a read error too). Its clients keep connections alive,
send `Connection: close` on every request (a new connection each), or every tenth, so reloads
meet idle kept-alive connections, connections being opened and TLS handshakes.

Pods behind loaded Services drain as Kubernetes asks of them: a readinessProbe (no endpoint
before the server listens) and a preStop hook that sleeps DRAIN seconds (the pod keeps serving
while its endpoint's removal reaches the ingress: the EndpointSlice says not ready as soon as
the pod is deleted, and the controller takes the server out through the Runtime API; SIGTERM
only comes afterwards).

The time from creating an Ingress until its first 200, under load, is printed, never asserted.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import TestCluster
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ingresskit import (
    ING,
    POD,
    SECRET,
    SVC,
    Request,
    Scope,
    controller_log,
    get,
    haproxy_dir,
    ingress,
    ingress_lab,
    lb_ip,
    metrics,
    path,
    reload_counted,
    routed,
    rule,
    scope,
    tls_secret,
)
from labkit import PORT, echo_pod, ready_endpoints, service, wait_for

from podnet.ingress import controller
from podnet.lab import names as lab_names

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("haproxy") is None,
                                 reason="haproxy not installed (scripts/install.sh installs it)")]

TOOLS = Path(__file__).resolve().parent / "tools"
LOAD_TOOL = TOOLS / "http_load.py"
STREAM_SERVER = TOOLS / "stream_server.py"
DRAIN = 3  # seconds a deleted pod keeps serving (its preStop hook)
PAUSE = 0.2  # seconds between two changes
NODES = ("node-1", "node-2")


@pytest.fixture(scope="module")
def lab() -> Iterator[TestCluster]:
    root = Path(tempfile.mkdtemp(prefix="podnet-test-", dir="/tmp"))
    try:
        with ingress_lab(root) as made:
            yield made
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def ip(lab: TestCluster) -> str:
    return lb_ip(lab)


@pytest.fixture
def s(lab: TestCluster) -> Iterator[Scope]:
    with scope(lab) as made:
        yield made


# -- pods that drain --------------------------------------------------------------------------


def draining_pod(name: str, node: str, labels: dict[str, str]) -> dict[str, Any]:
    """An echo pod that is Ready once it answers, and serves DRAIN seconds more once deleted."""
    return echo_pod(name, node, labels, grace=DRAIN + 5,
                    readinessProbe={"httpGet": {"path": "/ready", "port": PORT},
                                    "periodSeconds": 1},
                    lifecycle={"preStop": {"sleep": {"seconds": DRAIN}}})


def pod_ip(s: Scope, name: str) -> str | None:
    return (s.client.get(POD, s.ns, name).get("status") or {}).get("podIP")


def wait_serving(s: Scope, svc: str, pods: list[str]) -> None:
    """Until each of `pods` is a ready endpoint of `svc`."""
    def ready() -> bool:
        ips = {pod_ip(s, p) for p in pods}
        return None not in ips and ips <= ready_endpoints(s.lab, svc, s.ns)
    wait_for(f"{pods} ready behind {svc}", ready, timeout=60)


# -- the load generator and the probes (tools/http_load.py on the external host) ----------------


def external(lab: TestCluster, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", lab_names.external_netns(lab.name), sys.executable, "-I",
            "-S", str(LOAD_TOOL), *argv]


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The next line the tool prints; AssertionError when it says nothing within `timeout`."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"{LOAD_TOOL.name}: nothing said within {timeout:g}s"
    return proc.stdout.readline().strip()


def worker(name: str, host: str, *, connections: int = 1, per_connection: int = 0,
           expect: tuple[int, ...] = (200,), tls: bool = False, p: str = "/") -> dict[str, Any]:
    return {"name": name, "host": host, "path": p, "connections": connections,
            "per_connection": per_connection, "expect": list(expect), "tls": tls}


@dataclass
class Load:
    """What tools/http_load.py reported (set when its `with` block ends)."""

    result: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """0 errors, no status but the expected ones, and every client answered."""
        r = self.result
        assert (r["errors"], r["unexpected"]) == (0, 0), json.dumps(
            {k: r[k] for k in ("errors", "error_samples", "unexpected", "unexpected_samples",
                               "by")}, indent=1)
        assert all(sum(counts.values()) > 0 for counts in r["by"].values()), r["by"]

    def summary(self) -> str:
        r = self.result
        return (f"{r['requests']} requests in {r['seconds']:.1f} s "
                f"({r['requests'] / r['seconds']:.0f}/s), {r['errors']} errors, "
                f"{r['unexpected']} unexpected statuses")


@contextlib.contextmanager
def http_load(lab: TestCluster, ip: str, workers: list[dict[str, Any]], *,
              cafile: Path | None = None, pods: bool = False) -> Iterator[Load]:
    """The load runs for the `with` block (it has answers when the block starts)."""
    cfg = {"ip": ip, "timeout": 5.0, "cafile": str(cafile) if cafile else None, "pods": pods,
           "workers": workers}
    proc = subprocess.Popen(external(lab, "load", json.dumps(cfg)), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    load = Load()
    try:
        assert read_line(proc, 60) == "running"
        yield load
        out, err = proc.communicate(timeout=60)  # closes its stdin: the load stops
        assert proc.returncode == 0, err
        load.result = json.loads(out.strip().splitlines()[-1])
    finally:
        if proc.poll() is None:
            proc.kill()  # the one process this helper started
            proc.wait()


def first_200(lab: TestCluster, ip: str, host: str, create: Callable[[], Any],
              timeout: float = 30.0) -> float | None:
    """Seconds from just before `create()` until `host` first answers 200 (None: not within
    `timeout`); the probe asks every 5 ms on a kept-alive connection."""
    proc = subprocess.Popen(external(lab, "first200", ip, "80", host, "/", str(timeout)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert read_line(proc, 30) == "polling"
        t0 = time.monotonic()
        create()
        out, err = proc.communicate(timeout=timeout + 30)
        assert proc.returncode == 0, err
        seen = json.loads(out.strip().splitlines()[-1])["first_200"]
        return None if seen is None else seen - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def say(capsys: pytest.CaptureFixture[str], text: str) -> None:
    """Printed even without -s: the figures the brief wants shown, not asserted."""
    with capsys.disabled():
        print(f"\n    {text}", flush=True)


# -- 100 changes under load ---------------------------------------------------------------------


@dataclass
class Changes:
    """The changes made under load, counted; PAUSE seconds after each."""

    s: Scope
    made: list[str] = field(default_factory=list)

    def __call__(self, what: str, fn: Callable[[], Any]) -> None:
        fn()
        self.made.append(what)
        time.sleep(PAUSE)

    def create_pod(self, svc: str, name: str, node: str) -> None:
        self(f"pod {name} added behind {svc}",
             lambda: self.s.create(POD, draining_pod(name, node, {"app": svc})))

    def delete_pod(self, svc: str, name: str) -> None:
        self(f"pod {name} deleted from {svc}", lambda: self.s.client.delete(POD, self.s.ns,
                                                                             name))

    def create_ingress(self, obj: dict[str, Any]) -> None:
        self(f"ingress {obj['metadata']['name']} created", lambda: self.s.create(ING, obj))

    def replace_rules(self, name: str, *rules: dict[str, Any]) -> None:
        self(f"ingress {name} patched", lambda: self.s.client.patch(
            ING, self.s.ns, name, {"spec": {"rules": list(rules)}}))

    def delete_ingress(self, name: str) -> None:
        self(f"ingress {name} deleted", lambda: self.s.client.delete(ING, self.s.ns, name))


def test_100_route_and_endpoint_changes_under_load(lab: TestCluster, ip: str, s: Scope,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """load.test (the Service `web`) is loaded by 9 clients while 100 changes are made: 60 to
    routes on other hosts (new Ingresses, paths added and moved, Ingresses deleted) and 40 to
    endpoints (`web` goes 2 -> 4 -> 2 pods five times, each time losing its two oldest;
    `other` gets a new pod and loses its oldest ten times). missing.test has no route: its 404
    is the one expected non-2xx. Most changes go through the Runtime API; HAProxy reloads
    when a route first names a Service it has no backend for: `other` (the first change), the
    ten Services new-<r> (one a round, ~3 s apart) and `fresh` (the second first-200), so 12
    reloads, or 11 should the first two fall into one sync."""
    for i, node in enumerate(NODES, 1):
        s.create(POD, draining_pod(f"web-{i}", node, {"app": "web"}))
        s.create(POD, draining_pod(f"other-{i}", node, {"app": "other"}))
    s.create(SVC, service("web", {"app": "web"}))
    s.create(SVC, service("other", {"app": "other"}))
    s.create(SVC, service("fresh", {"app": "other"}))  # for the first-200 with a reload
    wait_serving(s, "web", ["web-1", "web-2"])
    wait_serving(s, "other", ["other-1", "other-2"])
    wait_serving(s, "fresh", ["other-1", "other-2"])
    s.create(ING, ingress("main", rule("load.test", path("/", "web"))))
    routed(lab, ip, [Request("load.test"), Request("missing.test")], ["web", "404"])
    wait_for("the reload for web counted", lambda: reload_counted(lab, s.ns, "web"))
    before = metrics(lab)

    web = ["web-1", "web-2"]  # oldest first
    other = ["other-1", "other-2"]
    workers = [worker("keep-alive", "load.test", connections=4),
               worker("new-connection", "load.test", connections=2, per_connection=1),
               worker("every-tenth", "load.test", connections=2, per_connection=10),
               worker("no-route", "missing.test", expect=(404,))]
    with http_load(lab, ip, workers, pods=True) as load:
        change = Changes(s)

        def scale_web(grow: bool) -> None:
            if grow:
                web.append(f"web-{int(web[-1].split('-')[1]) + 1}")
                change.create_pod("web", web[-1], NODES[len(web) % 2])
            else:
                change.delete_pod("web", web.pop(0))

        for r in range(10):
            grow = r % 2 == 0  # web: two pods more in even rounds, its two oldest go in odd
            if not grow:
                wait_serving(s, "web", web[-2:])  # the newest serve before the oldest go
            change.create_ingress(ingress(f"r{r}", rule(f"r{r}.test", path("/", "other"))))
            change.create_ingress(ingress(f"r{r}b", rule(f"r{r}b.test", path("/b", "other"))))
            change.replace_rules(f"r{r}", rule(f"r{r}.test", path("/", "other"),
                                               path("/extra", "web")))
            scale_web(grow)
            change.create_ingress(ingress(f"n{r}", rule(f"n{r}.test", path("/", f"new-{r}"))))
            scale_web(grow)
            change.delete_ingress(f"r{r}b")
            change.replace_rules(f"r{r}", rule(f"r{r}.test", path("/", "other"),
                                               path("/extra", "other")))
            other.append(f"other-{r + 3}")
            change.create_pod("other", other[-1], NODES[r % 2])
            wait_serving(s, "other", other[-1:])
            change.delete_pod("other", other.pop(0))
        assert len(change.made) == 100, change.made

        # Still under load: a new Ingress until its first 200, to a Service HAProxy has a
        # backend for (map entries through the Runtime API) and to one it has not (a reload).
        times = {
            "runtime API": first_200(lab, ip, "first.test", lambda: s.create(
                ING, ingress("first", rule("first.test", path("/", "other"))))),
            "reload": first_200(lab, ip, "first-reload.test", lambda: s.create(
                ING, ingress("first-reload", rule("first-reload.test", path("/", "fresh"))))),
        }
    after = metrics(lab)
    say(capsys, f"under load: {load.summary()}; {len(change.made)} changes; "
                f"{after['reloads_total'] - before['reloads_total']:g} reloads and "
                f"{after['runtime_updates_total'] - before['runtime_updates_total']:g} Runtime "
                "API updates")
    say(capsys, "new Ingress to first 200 under load: " + ", ".join(
        f"{way} {'not within 30 s' if t is None else f'{t * 1000:.0f} ms'}"
        for way, t in times.items()))

    load.check()
    served = load.result["pods"]["keep-alive"]
    assert {"web-1", "web-11", "web-12"} <= set(served), served  # the first and the last
    log = [line for line in controller_log(lab).splitlines()
           if "reloaded haproxy" in line or "sync failed" in line or "WARNING" in line]
    say(capsys, "why it reloaded: " + "; ".join(
        line.split(" ms): ", 1)[-1] for line in log if "reloaded haproxy" in line))
    assert after["errors_total"] == before["errors_total"], "\n".join(log[-40:])
    assert after["reloads_total"] - before["reloads_total"] in (11, 12), "\n".join(log[-40:])
    assert after["runtime_updates_total"] > before["runtime_updates_total"]
    # The routes are those of the last change.
    cases = [*((Request(f"r{r}.test", "/extra"), "other") for r in range(10)),
             (Request("r3b.test", "/b"), "404"), (Request("n4.test"), "503"),
             (Request("first.test"), "other"), (Request("load.test"), "web")]
    routed(lab, ip, [c for c, _ in cases], [w for _, w in cases])


# -- TLS: a Secret rotated under HTTPS load -----------------------------------------------------


def certificate(host: str, label: str) -> tuple[bytes, bytes]:
    """A self-signed certificate for `host` whose subject also names `label`: the client
    trusts the old and the new one at once, and OpenSSL finds a trusted certificate by its
    subject (two with the same one, and it may check the signature with the other's key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, label)])
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def test_secret_rotated_under_https_load(lab: TestCluster, ip: str, s: Scope, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """rot.test's Secret is replaced while clients request over HTTPS (some on new
    connections, so new handshakes keep coming) and HTTP: no error, every handshake after the
    rotation gets the new certificate, and no reload was needed."""
    for i, node in enumerate(NODES, 1):
        s.create(POD, draining_pod(f"tls-web-{i}", node, {"app": "tls-web"}))
    s.create(SVC, service("tls-web", {"app": "tls-web"}))
    wait_serving(s, "tls-web", ["tls-web-1", "tls-web-2"])
    old_crt, old_key = certificate("rot.test", "old")
    new_crt, new_key = certificate("rot.test", "new")
    old_ca, new_ca, both = tmp_path / "old.pem", tmp_path / "new.pem", tmp_path / "both.pem"
    old_ca.write_bytes(old_crt)
    new_ca.write_bytes(new_crt)
    both.write_bytes(old_crt + new_crt)
    s.create(SECRET, tls_secret("rot-tls", old_crt, old_key))
    s.create(ING, ingress("rot", rule("rot.test", path("/", "tls-web")),
                          tls=[{"hosts": ["rot.test"], "secretName": "rot-tls"}]))
    routed(lab, ip, [Request("rot.test", tls=True, cacert=old_ca)], ["tls-web"])
    wait_for("the reload for tls-web counted", lambda: reload_counted(lab, s.ns, "tls-web"))
    reloads = metrics(lab)["reloads_total"]

    workers = [worker("https-keep-alive", "rot.test", connections=2, tls=True),
               worker("https-new-connection", "rot.test", connections=3, per_connection=1,
                      tls=True),
               worker("http", "rot.test")]
    with http_load(lab, ip, workers, cafile=both) as load:
        time.sleep(1)
        rotated = time.monotonic()
        s.client.replace(SECRET, s.ns, "rot-tls", tls_secret("rot-tls", new_crt, new_key))
        routed(lab, ip, [Request("rot.test", tls=True, cacert=new_ca)], ["tls-web"])
        time.sleep(2)

    certs = load.result["certs"]
    assert len(certs) == 2, certs
    old, new = sorted(certs.values(), key=lambda c: c["first"])
    say(capsys, f"Secret rotated under load: {load.summary()}; {old['n']} handshakes with "
                f"the old certificate, {new['n']} with the new one, the first "
                f"{(new['first'] - rotated) * 1000:.0f} ms after the replace was sent")
    load.check()
    assert old["first"] < rotated < new["first"], certs
    assert new["n"] > 10, certs  # handshakes went on after the rotation, all with the new one
    assert old["last"] < new["first"] + 0.5, certs
    assert not get(lab, ip, "rot.test", tls=True, cacert=old_ca).verified
    assert metrics(lab)["reloads_total"] == reloads  # `set ssl cert`: no reload


# -- a long-lived connection across a reload ----------------------------------------------------


def worker_pid(lab: TestCluster) -> int:
    """The serving HAProxy worker, as `show info` on the Runtime API says."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(haproxy_dir(lab) / controller.SOCKET_FILE))
        sock.sendall(b"show info\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(controller.info_pid(data.decode()))


def answer(lab: TestCluster, ip: str, host: str) -> tuple[int, str]:
    """The status and body of GET / (the stream server answers `ok`, not an echo's JSON)."""
    a = get(lab, ip, host)
    return a.status, a.body


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def test_stream_survives_a_reload_for_another_host(lab: TestCluster, ip: str,
                                                   s: Scope) -> None:
    """A chunked answer of 80 chunks, one every 0.1 s, through the ingress, while a route on
    another host to a Service HAProxy has no backend for forces a reload: the stream ends
    whole, served to the end by the old worker, which leaves once it is done."""
    stream = {"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": "stream", "labels": {"app": "stream"}},
              "spec": {"nodeName": "node-2", "terminationGracePeriodSeconds": 1,
                       "containers": [{
                           "name": "stream", "image": "python",
                           "command": [sys.executable, "-I", "-S", str(STREAM_SERVER),
                                       str(PORT)],
                           "ports": [{"containerPort": PORT}],
                           "readinessProbe": {"httpGet": {"path": "/ready", "port": PORT},
                                              "periodSeconds": 1}}]}}
    s.create(POD, stream)
    s.create(SVC, service("stream", {"app": "stream"}))
    wait_serving(s, "stream", ["stream"])
    s.create(ING, ingress("stream", rule("stream.test", path("/", "stream"))))
    wait_for("stream.test routed", lambda: answer(lab, ip, "stream.test") == (200, "ok"),
             timeout=20)
    wait_for("the reload for stream counted", lambda: reload_counted(lab, s.ns, "stream"))

    old_worker, reloads = worker_pid(lab), metrics(lab)["reloads_total"]
    proc = subprocess.Popen(external(lab, "stream", ip, "80", "stream.test",
                                     "/stream?chunks=80&interval=0.1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert read_line(proc, 30) == "streaming"
        s.create(SVC, service("elsewhere", {"app": "stream"}))
        s.create(ING, ingress("elsewhere", rule("elsewhere.test", path("/", "elsewhere"))))
        wait_for("a reload", lambda: metrics(lab)["reloads_total"] > reloads, timeout=30)
        new_worker = worker_pid(lab)
        assert new_worker != old_worker
        assert alive(old_worker), "the old worker left while its stream was running"
        assert proc.poll() is None, "the stream ended before the reload was done"
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    result = json.loads(out.strip().splitlines()[-1])
    assert (result["status"], result["chunks"], result["complete"], result["error"]) == (
        200, 80, True, None), result
    wait_for("the old worker gone once its stream ended", lambda: not alive(old_worker),
             timeout=30)
    assert [answer(lab, ip, h) for h in ("stream.test", "elsewhere.test")] == [
        (200, "ok"), (200, "ok")]
    assert worker_pid(lab) == new_worker
