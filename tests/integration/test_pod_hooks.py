"""Lifecycle hooks and graceful termination in the pod runtime, on real processes (root).

Each test gets a cluster name of its own, a node namespace (`podnet-<cluster>-node-1`) and a
node state directory under pytest's tmp_path; `VethCni` gives each pod a veth to the node
namespace and a /32 from 10.99.0.2-3, so that httpGet hooks reach the pod's IP from the node as
kubelet's do. Hooks write what they did into files under tmp_path (a pod's mount namespace sees
the host's files). Everything the test created is removed in the fixture's finally, and
checked to be gone.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runtimekit import (
    Harness,
    VethCni,
    deleted,
    own_processes,
    run,
)

from podnet.kernel import netns
from podnet.lab import names
from podnet.runtime import alive, pod_dir
from podnet.runtime.pods import PodManager

pytestmark = pytest.mark.integration

PY = sys.executable





def hook_processes(files: Path) -> list[tuple[int, int]]:
    """Processes whose pid a test's hook wrote to a `*.hookpid` file, still alive."""
    found = []
    for f in files.glob("*.hookpid"):
        try:
            pid = int(f.read_text().split()[0])
            start = int(f.read_text().split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if alive(pid, start):
            found.append((pid, start))
    return found


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    cluster = "hk" + secrets.token_hex(4)
    node_ns = names.node_netns(cluster, "node-1")
    netns.add(node_ns)
    netns.sysctl(node_ns, "net.ipv4.ip_forward", "1")
    state_dir = tmp_path / cluster / "nodes" / "node-1"
    files = tmp_path / "files"
    files.mkdir()
    h = Harness(cluster, node_ns, state_dir, VethCni(node_ns, ["10.99.0.2", "10.99.0.3"]),
                files=files)
    leftovers: list[tuple[int, int]] = []
    try:
        yield h
    finally:
        leftovers = own_processes(state_dir) + hook_processes(files)
        for pid, start in leftovers:  # only processes this test started, by pid
            if alive(pid, start):
                os.kill(pid, signal.SIGKILL)
        for name in netns.names():
            if names.owns_netns(cluster, name):
                netns.delete(name)
    assert not leftovers, f"processes left behind: {leftovers}"


def make_pod(name: str, containers: list[dict[str, Any]], *, grace: int = 30,
             policy: str = "Always") -> dict[str, Any]:
    uid = f"{secrets.token_hex(4)}-{secrets.token_hex(2)}-{secrets.token_hex(2)}-" \
          f"{secrets.token_hex(2)}-{secrets.token_hex(6)}"
    return {"metadata": {"name": name, "namespace": "default", "uid": uid, "generation": 1},
            "spec": {"restartPolicy": policy, "dnsPolicy": "ClusterFirst",
                     "terminationGracePeriodSeconds": grace, "nodeName": "node-1",
                     "containers": containers},
            "status": {"phase": "Pending"}}




def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def lines(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except FileNotFoundError:
        return []


def record_pid(path: Path) -> str:
    """Shell that writes its own pid and start time to `path` (for the leak check)."""
    return (f"echo $$ $(cut -d' ' -f22 /proc/$$/stat) > {path}")


LOOP = "while :; do sleep 0.1; done"
FOREVER = ["sleep", "1000"]
WAITING = "waiting"


# -- preStop ------------------------------------------------------------------------------------

def test_pre_stop_exec_runs_before_sigterm_in_the_containers_environment(harness: Harness) -> None:
    h = harness
    trace = h.files / "trace"
    c = {"name": "c", "image": "busybox", "env": [{"name": "WHO", "value": "me"}],
         "command": sh(f'trap "echo TERM >> {trace}; exit 0" TERM; echo START >> {trace}; '
                       f"{LOOP}"),
         "lifecycle": {"preStop": {"exec": {"command": sh(
             f"echo PRESTOP-$WHO-$(pwd) >> {trace}; sleep 1; echo PRESTOP-DONE >> {trace}")}}},
         "workingDir": "/tmp"}
    pod = make_pod("pre", [c], grace=30)
    uid = pod["metadata"]["uid"]

    async def body(m: PodManager) -> None:
        m.sync(pod)
        await h.until("started", lambda: lines(trace) == ["START"])
        began = time.monotonic()
        m.sync(deleted(pod))
        await h.until("gone", lambda: uid in h.gone)
        took = time.monotonic() - began
        assert lines(trace) == ["START", "PRESTOP-me-/tmp", "PRESTOP-DONE", "TERM"]
        assert 1.0 <= took < 25, took  # the hook's second, far from the 30 s grace period
        assert ("Normal", "Killing", "Stopping container c") in h.events_of(uid)
        assert [e for e in h.events_of(uid) if e[0] == "Warning"] == []
        final = h.status(uid)
        assert final["phase"] == "Succeeded"  # exit 0 on SIGTERM
        assert h.container(uid, "c", final)["state"]["terminated"]["exitCode"] == 0
    run(h, body)


def test_a_pre_stop_hook_is_cut_at_the_end_of_the_grace_period(harness: Harness) -> None:
    h = harness
    hook_pid = h.files / "pre.hookpid"
    stubborn = {"name": "stubborn", "image": "busybox", "command": sh(f'trap "" TERM; {LOOP}'),
                "lifecycle": {"preStop": {"exec": {"command": sh(
                    f"{record_pid(hook_pid)}; exec sleep 100")}}}}
    pod = make_pod("cut", [stubborn], grace=2)
    uid = pod["metadata"]["uid"]

    async def body(m: PodManager) -> None:
        m.sync(pod)
        await h.until("running", lambda: h.container(uid, "stubborn").get("started"))
        began = time.monotonic()
        m.sync(deleted(pod))
        await h.until("the hook running", lambda: hook_processes(h.files))
        await h.until("gone", lambda: uid in h.gone)
        took = time.monotonic() - began
        # 2 s of hook, then SIGTERM (ignored) and kubelet's minimal 2 s window, then SIGKILL
        assert 3.5 <= took < 20, took
        assert hook_processes(h.files) == []  # the hook's command was killed with it
        final = h.container(uid, "stubborn")
        assert final["state"]["terminated"]["exitCode"] == 137
    run(h, body)


def test_failing_pre_stop_hooks_are_reported_and_the_pod_still_goes(harness: Harness) -> None:
    h = harness
    failing = [
        ("exits-3", {"exec": {"command": sh("exit 3")}}),
        ("refused", {"httpGet": {"path": "/", "port": 9, "scheme": "HTTP"}}),
        ("tcp", {"tcpSocket": {"port": 8080}}),  # the API keeps it; kubelet cannot run it
    ]
    pod = make_pod("fails", [{"name": n, "image": "busybox", "command": FOREVER,
                              "lifecycle": {"preStop": hook}} for n, hook in failing])
    uid = pod["metadata"]["uid"]

    async def body(m: PodManager) -> None:
        m.sync(pod)
        await h.until("running", lambda: h.status(uid).get("phase") == "Running")
        m.sync(deleted(pod))
        await h.until("gone", lambda: uid in h.gone)
        warnings = [e for e in h.events_of(uid) if e[0] == "Warning"]
        assert warnings == [("Warning", "FailedPreStopHook", "PreStopHook failed")] * 3
    run(h, body)


# -- postStart and httpGet hooks ----------------------------------------------------------------

HTTP_SERVER = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(sys.argv[1], "a") as f:
            print(self.command, self.path, self.headers.get("User-Agent"), file=f)
        self.send_response(404)  # any answer will do for a hook
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("0.0.0.0", 8080), H).serve_forever()
"""

WAIT_FOR_PORT = """
import socket, sys, time
for _ in range(200):
    try:
        socket.create_connection(("127.0.0.1", 8080), timeout=1).close()
        break
    except OSError:
        time.sleep(0.05)
time.sleep(1)
open(sys.argv[1], "w").write(repr(time.time()))
"""


def test_http_hooks_and_the_next_container_waits_for_a_post_start(harness: Harness) -> None:
    h = harness
    srv_done, app_start = h.files / "srv-hook-done", h.files / "app-started"
    requests = h.files / "requests"
    srv = {"name": "srv", "image": "python", "command": [PY, "-c", HTTP_SERVER, str(requests)],
           "lifecycle": {"postStart": {"exec": {"command": [PY, "-c", WAIT_FOR_PORT,
                                                            str(srv_done)]}},
                         "preStop": {"sleep": {"seconds": 2}}}}
    app = {"name": "app", "image": "busybox",
           "command": sh(f"date +%s.%N > {app_start}.tmp; mv {app_start}.tmp {app_start}; "
                         "exec sleep 1000"),
           "ports": [{"name": "web", "containerPort": 8080}],
           "lifecycle": {"postStart": {"httpGet": {"path": "/started", "port": "web",
                                                   "scheme": "HTTP"}},
                         "preStop": {"httpGet": {"path": "/stopping", "port": 8080,
                                                 "scheme": "HTTP"}}}}
    pod = make_pod("http", [srv, app])
    uid = pod["metadata"]["uid"]

    async def body(m: PodManager) -> None:
        m.sync(pod)
        await h.until("both started", lambda: all(
            h.container(uid, n).get("started") for n in ("srv", "app")))
        # app's process began only after srv's postStart hook was over
        await h.until("app's stamp", app_start.exists)
        assert float(app_start.read_text()) >= float(srv_done.read_text())
        assert requests.read_text().splitlines() == ["GET /started kube-lifecycle/1.37"]
        m.sync(deleted(pod))
        await h.until("gone", lambda: uid in h.gone)
        assert requests.read_text().splitlines() == ["GET /started kube-lifecycle/1.37",
                                          "GET /stopping kube-lifecycle/1.37"]
        assert [e for e in h.events_of(uid) if e[0] == "Warning"] == []
    run(h, body)


def test_a_container_counts_as_started_only_after_its_post_start_hook(harness: Harness) -> None:
    h = harness
    gate, ready_file = h.files / "gate", h.files / "ready"
    ready_file.touch()  # a readiness probe would pass at once, if it ran
    c = {"name": "c", "image": "busybox", "command": FOREVER,
         "lifecycle": {"postStart": {"exec": {"command": sh(
             f"while [ ! -f {gate} ]; do sleep 0.1; done")}}},
         "readinessProbe": {"exec": {"command": ["test", "-f", str(ready_file)]},
                            "periodSeconds": 1}}
    pod = make_pod("slowstart", [c], grace=1)
    uid = pod["metadata"]["uid"]

    async def body(m: PodManager) -> None:
        m.sync(pod)
        await h.until("the process running", lambda: (pod_dir(h.state_dir, uid) / "c.pid")
                      .exists() and h.status(uid))
        await asyncio.sleep(2.5)  # two probe periods: nothing may have changed meanwhile
        assert h.container(uid, "c") == {
            "name": "c", "state": {WAITING: {"reason": "ContainerCreating"}}, "lastState": {},
            "ready": False, "restartCount": 0, "image": "busybox", "imageID": "",
            "started": False}
        assert h.status(uid)["phase"] == "Pending"
        gate.touch()
        await h.until("started and ready", lambda: h.container(uid, "c").get("ready"))
        assert "running" in h.container(uid, "c")["state"]
        assert h.status(uid)["phase"] == "Running" and h.ready(uid) == "True"
        m.sync(deleted(pod))
        await h.until("gone", lambda: uid in h.gone)
    run(h, body)


def test_a_failing_post_start_hook_kills_the_container_which_restarts(harness: Harness) -> None:
    h = harness
    c = {"name": "c", "image": "busybox", "command": FOREVER,
         "lifecycle": {"postStart": {"exec": {"command": sh("echo no; exit 1")}}}}
    pod = make_pod("badstart", [c], grace=1)
    uid = pod["metadata"]["uid"]

    async def body(m: PodManager) -> None:
        m.sync(pod)
        await h.until("a restart", lambda: h.container(uid, "c").get("restartCount", 0) >= 1)
        ev = h.events_of(uid)
        assert ("Warning", "FailedPostStartHook", "PostStartHook failed") in ev
        assert ("Normal", "Killing", "FailedPostStartHook") in ev
        assert not any(s.get("containerStatuses", [{}])[0].get("started")
                       for s in h.statuses[uid])  # never counted as started
        last = h.container(uid, "c")["lastState"]["terminated"]
        assert last["exitCode"] == 143  # SIGTERM: sleep does not catch it
        m.sync(deleted(pod))
        await h.until("gone", lambda: uid in h.gone)
    run(h, body)


# -- termination --------------------------------------------------------------------------------

def test_readiness_is_probed_and_reported_while_the_pod_terminates(harness: Harness) -> None:
    h = harness
    ready_file, gate = h.files / "ready", h.files / "gate"
    ready_file.touch()
    check = {"exec": {"command": ["test", "-f", str(ready_file)]}, "periodSeconds": 1,
             "failureThreshold": 1}
    c = {"name": "c", "image": "busybox", "command": FOREVER,
         "readinessProbe": check, "livenessProbe": check,
         "lifecycle": {"preStop": {"exec": {"command": sh(
             f"while [ ! -f {gate} ]; do sleep 0.1; done")}}}}
    pod = make_pod("drain", [c], grace=60)
    uid = pod["metadata"]["uid"]

    async def body(m: PodManager) -> None:
        m.sync(pod)
        await h.until("ready", lambda: h.ready(uid) == "True")
        m.sync(deleted(pod))
        await h.until("the stop begun", lambda: ("Normal", "Killing", "Stopping container c")
                      in h.events_of(uid))
        mark = len(h.events_of(uid))
        ready_file.unlink()  # readiness follows; liveness would kill it, but it stopped
        await h.until("unready while terminating", lambda: h.ready(uid) == "False")
        assert h.status(uid)["phase"] == "Running"
        assert "running" in h.container(uid, "c")["state"]
        ready_file.touch()
        await h.until("ready again while terminating", lambda: h.ready(uid) == "True")
        assert not any(e[2].startswith("Liveness") for e in h.events_of(uid)[mark:])
        assert any(e[2].startswith("Readiness probe failed") for e in h.events_of(uid)[mark:])
        gate.touch()
        await h.until("gone", lambda: uid in h.gone)
        final = h.status(uid)
        assert final["phase"] == "Failed"  # sleep ended by SIGTERM: 143
        assert h.ready(uid) == "False"
        assert h.container(uid, "c", final)["state"]["terminated"]["exitCode"] == 143
    run(h, body)
