"""Readiness and termination seen through a ClusterIP Service, with real packets.

Address plan (the lab's defaults): LAN 172.18.0.0/24 (node-i at .10+i), pods in 10.244.0.0/16
(a /24 per node), ClusterIPs from 10.96.0.0/12, allocated by the server. Echo pods answer HTTP
with JSON naming the pod that answered, so a client counts who got its connections.

What is checked is what Kubernetes promises: a pod that fails its readinessProbe gets no new
connections and gets them again once it passes; a pod being deleted keeps its endpoint as
serving and terminating while its preStop hook runs, gets no new connections while another
endpoint is ready, still answers on connections it already has, and is used again when every
endpoint is terminating; once they are all gone, connections are refused at once.

The tests only wait on what the API shows and on what packets do (never on the proxy's nft
layout, which is free to change), with generous timeouts: the machine is shared.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import labkit
import pytest
from labkit import pods_by_name

from podnet.lab import names

pytestmark = pytest.mark.integration

PORT = 8080
SVC_PORT = 80

# Run inside a namespace: `http IP PORT COUNT` -> {"pods": {pod: n}, "errors": {kind: n}}, a
# new connection per request; `connect IP PORT` -> {"error": errno name or null, "seconds": s}.
CLIENT = r'''
import errno, json, socket, sys, time
mode, ip, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "connect":
    t = time.monotonic(); err = None
    try:
        socket.create_connection((ip, port), timeout=5).close()
    except socket.timeout:
        err = "TIMEOUT"
    except OSError as e:
        err = errno.errorcode.get(e.errno, str(e.errno))
    print(json.dumps({"error": err, "seconds": time.monotonic() - t}))
    sys.exit(0)
pods, errors = {}, {}
for _ in range(int(sys.argv[4])):
    try:
        s = socket.create_connection((ip, port), timeout=5)
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        body = json.loads(data.split(b"\r\n\r\n", 1)[1])
        pods[body["pod"]] = pods.get(body["pod"], 0) + 1
    except Exception as e:
        errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
print(json.dumps({"pods": pods, "errors": errors}))
'''

# Run inside a namespace: `IP PORT POD` connects to IP:PORT until the answer comes from POD
# (at most 300 connections), prints {"pod": POD}, then answers each line on stdin with one
# more request on that same keep-alive connection: {"pod": ...} or {"error": ...}.
KEEPALIVE = r'''
import json, socket, sys
ip, port, want = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def ask(s):
    s.sendall(b"GET /keepalive HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = [int(l.split(b":")[1]) for l in head.split(b"\r\n")
              if l.lower().startswith(b"content-length:")][0]
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        body += chunk
    return json.loads(body)["pod"]

for _ in range(300):
    s = socket.create_connection((ip, port), timeout=5)
    if ask(s) == want:
        break
    s.close()
else:
    print(json.dumps({"error": "never reached " + want}), flush=True)
    sys.exit(1)
print(json.dumps({"pod": want}), flush=True)
for _ in sys.stdin:
    try:
        print(json.dumps({"pod": ask(s)}), flush=True)
    except Exception as e:
        print(json.dumps({"error": type(e).__name__ + ": " + str(e)}), flush=True)
'''


def run_in(netns: str, *args: Any) -> dict[str, Any]:
    out = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-I", "-S", "-c",
                          CLIENT, *map(str, args)], capture_output=True, text=True,
                         timeout=180, check=True)
    return json.loads(out.stdout)


class KeepAlive:
    """One keep-alive HTTP connection, held by a client process in a namespace."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc

    def line(self, timeout: float = 60.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, "the keep-alive client did not answer"
        text = self.proc.stdout.readline()
        assert text, f"the keep-alive client ended: {self.proc.poll()}"
        return dict(json.loads(text))

    def ask(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return self.line()


@contextmanager
def keep_alive(netns: str, ip: str, port: int, pod: str) -> Iterator[KeepAlive]:
    proc = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-I", "-S", "-c",
                             KEEPALIVE, ip, str(port), pod], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        yield KeepAlive(proc)
    finally:
        proc.kill()  # the one process this test started
        proc.wait(timeout=30)
        for f in (proc.stdin, proc.stdout):
            if f is not None:
                f.close()


def echo_pod(name: str, node: str, labels: dict[str, str], grace: int = 30,
             **container: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "echo", "image": "podnet/echo",
                         "ports": [{"containerPort": PORT}], **container}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": grace,
                     "containers": [c]}}


def service(name: str, selector: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": selector,
                     "ports": [{"port": SVC_PORT, "targetPort": PORT, "protocol": "TCP"}]}}


def wait_for(what: str, fn: Callable[[], Any], timeout: float = 90.0, every: float = 0.3) -> Any:
    return labkit.wait_for(what, fn, timeout, every)


def pod_ips(lab: Any, *wanted: str) -> dict[str, str]:
    """Each wanted pod's IP, once they all have one."""
    def ips() -> dict[str, str] | None:
        pods = pods_by_name(lab)
        got = {n: (pods.get(n) or {}).get("status", {}).get("podIP") for n in wanted}
        return got if all(got.values()) else None  # type: ignore[return-value]
    return dict(wait_for(f"IPs of {wanted}", ips))


def endpoints(lab: Any, svc: str) -> dict[str, tuple[bool, bool, bool]]:
    """The Service's endpoints: IP -> (ready, serving, terminating), as the slices say."""
    slices = lab.client.list(lab.res("EndpointSlice"), "default",
                             label_selector=f"kubernetes.io/service-name={svc}")["items"]
    out = {}
    for s in slices:
        for e in s.get("endpoints") or []:
            c = e.get("conditions") or {}
            for a in e["addresses"]:
                out[a] = (c.get("ready") is True, c.get("serving") is True,
                          c.get("terminating") is True)
    return out


def only(got: dict[str, Any], pods: set[str]) -> bool:
    """Every request answered, and by exactly these pods."""
    return got["errors"] == {} and set(got["pods"]) == pods


READY, UNREADY = (True, True, False), (False, False, False)
TERMINATING = (False, True, True)  # serving (its Ready condition) and terminating


def test_a_pod_failing_its_readiness_probe_gets_no_traffic_until_it_passes(make_lab):
    lab = make_lab(nodes=2)
    flag = lab.root / "flip-ready"  # under the test's own state root; the pod sees it too
    probe = {"exec": {"command": ["test", "-f", str(flag)]}, "periodSeconds": 1,
             "failureThreshold": 1}
    lab.client.create(lab.res("Pod"), "default", echo_pod("steady", "node-1", {"app": "web"}))
    lab.client.create(lab.res("Pod"), "default",
                      echo_pod("flip", "node-2", {"app": "web"}, readinessProbe=probe))
    lab.client.create(lab.res("Pod"), "default", echo_pod("client", "node-1", {"app": "c"}))
    vip = lab.client.create(lab.res("Service"), "default",
                            service("web", {"app": "web"}))["spec"]["clusterIP"]
    ips = pod_ips(lab, "steady", "flip", "client")
    client_ns = names.pod_netns(lab.name, pods_by_name(lab)["client"]["metadata"]["uid"])

    # flip runs but is not ready: listed, not ready, not serving; all traffic goes to steady
    wait_for("flip listed unready", lambda: endpoints(lab, "web") == {
        ips["steady"]: READY, ips["flip"]: UNREADY})
    wait_for("traffic through the Service", lambda: only(
        run_in(client_ns, "http", vip, SVC_PORT, 20), {"steady"}))
    got = run_in(client_ns, "http", vip, SVC_PORT, 200)
    assert got == {"pods": {"steady": 200}, "errors": {}}, got

    # the probe passes (the file made through the runtime's exec): flip gets its share again
    done = lab.podnet("exec", "flip", "--", "touch", str(flag), timeout=120)
    assert done.returncode == 0, done.stderr
    wait_for("flip ready", lambda: endpoints(lab, "web") == {
        ips["steady"]: READY, ips["flip"]: READY})
    wait_for("flip back in the rotation", lambda: only(
        run_in(client_ns, "http", vip, SVC_PORT, 40), {"steady", "flip"}))
    got = run_in(client_ns, "http", vip, SVC_PORT, 200)
    assert got["errors"] == {} and set(got["pods"]) == {"steady", "flip"}, got
    assert min(got["pods"].values()) >= 40, got  # random choice: about 100 each

    # it fails again: out of the rotation
    done = lab.podnet("exec", "flip", "--", "rm", str(flag), timeout=120)
    assert done.returncode == 0, done.stderr
    wait_for("flip unready", lambda: endpoints(lab, "web") == {
        ips["steady"]: READY, ips["flip"]: UNREADY})
    wait_for("flip out of the rotation", lambda: only(
        run_in(client_ns, "http", vip, SVC_PORT, 40), {"steady"}))
    got = run_in(client_ns, "http", vip, SVC_PORT, 200)
    assert got == {"pods": {"steady": 200}, "errors": {}}, got
    p = pods_by_name(lab)["flip"]
    assert p["status"]["containerStatuses"][0]["restartCount"] == 0  # never restarted


def test_terminating_pods_drain(make_lab):
    lab = make_lab(nodes=2)
    # a drains for longest: it must still be terminating once b is deleted too
    lab.client.create(lab.res("Pod"), "default", echo_pod(
        "a", "node-1", {"app": "web"}, grace=90,
        lifecycle={"preStop": {"sleep": {"seconds": 45}}}))
    lab.client.create(lab.res("Pod"), "default", echo_pod(
        "b", "node-2", {"app": "web"}, grace=90,
        lifecycle={"preStop": {"sleep": {"seconds": 8}}}))
    lab.client.create(lab.res("Pod"), "default", echo_pod("client", "node-2", {"app": "c"}))
    vip = lab.client.create(lab.res("Service"), "default",
                            service("web", {"app": "web"}))["spec"]["clusterIP"]
    ips = pod_ips(lab, "a", "b", "client")
    client_ns = names.pod_netns(lab.name, pods_by_name(lab)["client"]["metadata"]["uid"])
    wait_for("both ready", lambda: endpoints(lab, "web") == {ips["a"]: READY, ips["b"]: READY})
    wait_for("both in the rotation", lambda: only(
        run_in(client_ns, "http", vip, SVC_PORT, 40), {"a", "b"}))

    with keep_alive(client_ns, vip, SVC_PORT, "a") as conn:
        assert conn.line() == {"pod": "a"}  # a keep-alive connection that landed on a

        # a is deleted: its preStop sleep holds it; it stays serving, now terminating
        lab.client.delete(lab.res("Pod"), "default", "a")
        wait_for("a terminating", lambda: endpoints(lab, "web") == {
            ips["a"]: TERMINATING, ips["b"]: READY})
        p = pods_by_name(lab)["a"]
        assert p["metadata"].get("deletionTimestamp")
        assert p["status"]["phase"] == "Running"
        assert [c["status"] for c in p["status"]["conditions"] if c["type"] == "Ready"] == [
            "True"]

        # new connections all go to b ...
        wait_for("a out of the rotation", lambda: only(
            run_in(client_ns, "http", vip, SVC_PORT, 40), {"b"}))
        got = run_in(client_ns, "http", vip, SVC_PORT, 200)
        assert got == {"pods": {"b": 200}, "errors": {}}, got
        # ... while the connection a already has still gets answers from a
        assert conn.ask() == {"pod": "a"}
        assert conn.ask() == {"pod": "a"}

        # b is deleted too: every endpoint is terminating, and the proxy falls back to those
        # that are serving, a included again
        lab.client.delete(lab.res("Pod"), "default", "b")
        wait_for("both terminating", lambda: endpoints(lab, "web") == {
            ips["a"]: TERMINATING, ips["b"]: TERMINATING})
        wait_for("a back in the rotation", lambda: "a" in run_in(
            client_ns, "http", vip, SVC_PORT, 20)["pods"])
        got = run_in(client_ns, "http", vip, SVC_PORT, 100)
        assert got["errors"] == {} and set(got["pods"]) <= {"a", "b"} and got["pods"], got
        assert conn.ask() == {"pod": "a"}
        assert "a" in pods_by_name(lab)  # all of this happened while a still drained

    # b's preStop ends, then a's: they exit, their pods go; then connections are refused,
    # at once, not left to time out
    wait_for("a and b gone", lambda: not {"a", "b"} & set(pods_by_name(lab)), timeout=150)
    wait_for("no endpoints", lambda: endpoints(lab, "web") == {})
    got = wait_for("refused", lambda: (g := run_in(client_ns, "connect", vip, SVC_PORT))[
        "error"] == "ECONNREFUSED" and g)
    got = run_in(client_ns, "connect", vip, SVC_PORT)
    assert got["error"] == "ECONNREFUSED" and got["seconds"] < 2.0, got
