"""Pods over their life: many created and deleted, an agent killed and restarted, an exhausted
pod CIDR, and a command that keeps failing.

Address plan: the lab's defaults (LAN 172.18.0.0/24, node-i at .10+i, pod CIDRs from
10.244.0.0/16); the 200-pod test gives each node a /25 and the exhaustion test a /29.
"""

from __future__ import annotations

import ctypes
import io
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from labkit import pods_by_name, wait_for

from podnet.client.http import ApiError
from podnet.cluster import lifecycle
from podnet.kernel import netns as kernel_netns
from podnet.lab import names

pytestmark = pytest.mark.integration
CLONE_NEWNET = 0x40000000


def echo_pod(name: str, node: str | None = None, **extra) -> dict:
    spec: dict = {"containers": [{"name": "echo", "image": "podnet/echo",
                                  "ports": [{"containerPort": 8080}]}], **extra}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"t": "x"}},
            "spec": spec}


def running(lab, names_: list[str]):
    pods = pods_by_name(lab)
    ok = [n for n in names_ if pods.get(n, {}).get("status", {}).get("phase") == "Running"
          and pods[n]["status"].get("podIP")]
    return pods if len(ok) == len(names_) else None


def leftovers(lab) -> dict[str, list[str]]:
    """Everything a pod leaves in the kernel and on disk, per kind; empty lists when clean."""
    out: dict[str, list[str]] = {"netns": [], "veths": [], "routes": [], "leases": [],
                                 "pod dirs": []}
    out["netns"] = [n for n in kernel_netns.names()
                    if names.owns_netns(lab.name, n) and "-pod-" in n]
    for i in range(1, lab.state.load().nodes + 1):
        ns = names.node_netns(lab.name, f"node-{i}")
        links = json.loads(kernel_netns.run(["ip", "-n", ns, "-j", "link", "show"]).stdout)
        out["veths"] += [f"{ns}:{link['ifname']}" for link in links
                         if link["ifname"].startswith("pn")]
        routes = json.loads(kernel_netns.run(["ip", "-n", ns, "-j", "route", "show"]).stdout)
        out["routes"] += [f"{ns}:{r['dst']}" for r in routes
                          if r["dst"].startswith("10.244.") and "/" not in r["dst"]]
        node_dir = lab.state.node_dir(f"node-{i}")
        ipam = node_dir / "ipam"
        if ipam.exists():
            out["leases"] += [str(p) for p in ipam.rglob("*") if p.is_file() and
                              p.name[:1].isdigit()]
        pods_dir = node_dir / "pods"
        if pods_dir.exists():
            out["pod dirs"] += [str(p) for p in pods_dir.iterdir()]
        pid_file = lab.state.agent_pid(f"node-{i}")
        if pid_file.exists():
            out.setdefault("zombies", []).extend(zombie_children(int(pid_file.read_text())))
    return {k: v for k, v in out.items() if v}


def zombie_children(parent: int) -> list[str]:
    """Children of `parent` that exited and were never reaped."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] == "Z" and int(fields[1]) == parent:
            found.append(stat.parent.name)
    return found


def test_200_pods_twice_leave_nothing_and_reuse_addresses(make_lab):
    # IPAM hands addresses out round-robin, as host-local does; /25s (125 addresses for pods
    # each) make the second round of 100 pods per node wrap around into freed ones.
    lab = make_lab(nodes=2, node_cidr_mask=25)
    names_ = [f"m{i:03d}" for i in range(200)]
    seen_ips: list[set[str]] = []
    for _round in range(2):
        for n in names_:
            lab.client.create(lab.res("Pod"), "default", echo_pod(n))
        pods = wait_for("200 running pods", lambda: running(lab, names_), timeout=240)
        ips = {p["status"]["podIP"] for p in pods.values()}
        assert len(ips) == 200
        seen_ips.append(ips)
        lab.client.request("DELETE", "/api/v1/namespaces/default/pods",
                           params={"labelSelector": "t=x"})
        wait_for("all pods gone", lambda: not pods_by_name(lab), timeout=240)
        wait_for("nothing left behind", lambda: not leftovers(lab), timeout=30)
    # Addresses are handed out again once freed.
    assert seen_ips[0] & seen_ips[1]


def _connect_in(netns: str, ip: str, port: int) -> socket.socket:
    """A TCP connection made from inside `netns` (a thread enters it to open the socket)."""
    box: dict[str, object] = {}

    def run() -> None:
        fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
        try:
            # setns(2) moves only this thread (os.setns needs Python 3.12).
            if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {netns}")
            box["sock"] = socket.create_connection((ip, port), timeout=5)
        except OSError as e:
            box["error"] = e
        finally:
            os.close(fd)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["sock"]  # type: ignore[return-value]


def _get(sock: socket.socket, path: str) -> dict:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    head, _, body = buf.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += sock.recv(65536)
    return json.loads(body[:length])


def test_agent_kill_9_keeps_pods_and_connections_and_catches_up(make_lab):
    lab = make_lab(nodes=2)
    lab.client.create(lab.res("Pod"), "default", echo_pod("steady", "node-1"))
    pod = wait_for("steady running", lambda: running(lab, ["steady"]))["steady"]
    ip = pod["status"]["podIP"]
    sock = _connect_in(names.node_netns(lab.name, "node-2"), ip, 8080)
    try:
        first = _get(sock, "/before")
        assert first["pod"] == "steady"
        pid_file = lab.state.agent_pid("node-1")
        pid = int(Path(pid_file).read_text())
        os.kill(pid, signal.SIGKILL)
        wait_for("agent gone", lambda: not lifecycle.pid_alive(pid), timeout=10)
        # While node-1 has no agent, a pod is bound to it.
        lab.client.create(lab.res("Pod"), "default", echo_pod("meanwhile", "node-1"))
        # The pod and the open connection live on without the agent.
        assert _get(sock, "/during")["client"]["port"] == first["client"]["port"]
        lifecycle.up(lab.name, lab.root, out=io.StringIO())  # restarts the agent
        pods = wait_for("both running", lambda: running(lab, ["steady", "meanwhile"]))
        assert pods["steady"]["status"]["podIP"] == ip
        assert pods["steady"]["metadata"]["uid"] == pod["metadata"]["uid"]
        assert pods["steady"]["status"]["containerStatuses"][0]["restartCount"] == 0
        after = _get(sock, "/after")
        assert after["client"]["port"] == first["client"]["port"]  # the same connection
    finally:
        sock.close()


def test_exhausted_pod_cidr_leaves_pods_pending_with_a_reason(make_lab):
    lab = make_lab(nodes=1, node_cidr_mask=29)
    names_ = [f"x{i}" for i in range(8)]
    for n in names_:
        lab.client.create(lab.res("Pod"), "default", echo_pod(n))

    def settled():
        pods = pods_by_name(lab)
        phases = [p.get("status", {}).get("phase") for p in pods.values()]
        return pods if phases.count("Running") >= 1 and all(
            ph in ("Running", "Pending") for ph in phases) and len(pods) == 8 else None

    wait_for("pods settle", settled)
    time.sleep(3)  # let the runtime try (and fail) the ones without an address
    pods = pods_by_name(lab)
    up = [n for n, p in pods.items() if p["status"].get("phase") == "Running"]
    pending = [n for n, p in pods.items() if p["status"].get("phase") == "Pending"]
    assert up and pending and len(up) + len(pending) == 8
    assert len(up) <= 6  # a /29 has at most six addresses for pods
    waiting = pods[pending[0]]["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "ContainerCreating"
    events = lab.client.list(lab.res("Event"), "default",
                             field_selector=f"involvedObject.name={pending[0]}")["items"]
    failed = [e for e in events if e["reason"] == "FailedCreatePodSandBox"]
    assert failed and failed[0]["type"] == "Warning"
    assert "address" in failed[0]["message"].lower() or "ipam" in failed[0]["message"].lower()
    # Freeing addresses lets the pending pods in.
    for n in up[:len(pending)]:
        lab.client.delete(lab.res("Pod"), "default", n)
    wait_for("pending pods start", lambda: running(lab, pending), timeout=60)
    lab.client.request("DELETE", "/api/v1/namespaces/default/pods",
                       params={"labelSelector": "t=x"})
    wait_for("all gone", lambda: not pods_by_name(lab))
    wait_for("nothing left behind", lambda: not leftovers(lab), timeout=30)


def test_failing_command_crash_loops_with_its_exit_code(make_lab):
    lab = make_lab(nodes=1)
    bad = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad"},
           "spec": {"containers": [{"name": "c", "image": "x",
                                    "command": ["sh", "-c", "echo dying; exit 3"]}]}}
    lab.client.create(lab.res("Pod"), "default", bad)

    def crash_looping():
        st = pods_by_name(lab)["bad"].get("status", {}).get("containerStatuses") or []
        if st and (st[0]["state"].get("waiting") or {}).get("reason") == "CrashLoopBackOff":
            return st[0]
        return None

    st = wait_for("CrashLoopBackOff", crash_looping, timeout=60)
    assert st["lastState"]["terminated"]["exitCode"] == 3
    assert st["restartCount"] >= 1
    out = lab.podnet("logs", "bad")
    assert "dying" in out.stdout
    table = lab.kubectl("get", "pod", "bad", "--no-headers").stdout.split()
    assert table[2] == "CrashLoopBackOff"
    # The agent is unaffected: another pod on the node comes up fine.
    pid = int(Path(lab.state.agent_pid("node-1")).read_text())
    lab.client.create(lab.res("Pod"), "default", echo_pod("fine", "node-1"))
    wait_for("fine running", lambda: running(lab, ["fine"]))
    assert lifecycle.pid_alive(pid)
    with pytest.raises(ApiError):
        lab.client.get(lab.res("Pod"), "default", "nope")
