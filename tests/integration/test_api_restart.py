"""Restarting the server, gracefully or with kill -9, loses no acknowledged write; revisions stay
monotonic and watches resume from where they were."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from podnet.client.http import ApiError
from podnet.cluster import lifecycle

pytestmark = pytest.mark.integration

SERVICES = "/api/v1/namespaces/default/services"


def service(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": "NodePort", "ports": [{"port": 80}], "selector": {"app": name}}}


def kill_server(cluster, sig: int) -> None:
    pid = cluster.state.read_pid()
    assert pid is not None and lifecycle.is_server_of(pid, cluster.state)
    os.kill(pid, sig)
    deadline = time.monotonic() + 10
    while lifecycle.pid_alive(pid) and time.monotonic() < deadline:
        lifecycle.reap(pid)
        time.sleep(0.05)
    assert not lifecycle.pid_alive(pid)


def restart(cluster) -> None:
    lifecycle.up(cluster.name, cluster.root)
    cluster.client.close()


@pytest.mark.parametrize("sig", [pytest.param(signal.SIGKILL, id="kill-9"),
                                 pytest.param(signal.SIGTERM, id="sigterm")])
def test_acknowledged_writes_survive_a_restart(cluster, sig):
    acked = {}
    # Writes acknowledged right up to the kill: each 201 is a promise.
    for i in range(50):
        obj = cluster.client.request("POST", SERVICES, body=service(f"s{i}")).json()
        acked[obj["metadata"]["name"]] = obj
    last_rv = max(int(o["metadata"]["resourceVersion"]) for o in acked.values())
    kill_server(cluster, sig)
    restart(cluster)
    listed = cluster.client.request("GET", SERVICES).json()
    stored = {o["metadata"]["name"]: o for o in listed["items"]}
    for name, obj in acked.items():
        assert stored[name]["metadata"]["uid"] == obj["metadata"]["uid"]
        assert stored[name]["spec"]["clusterIP"] == obj["spec"]["clusterIP"]
        assert stored[name]["spec"]["ports"] == obj["spec"]["ports"]
    assert int(listed["metadata"]["resourceVersion"]) >= last_rv
    after = cluster.client.request("POST", SERVICES, body=service("after")).json()
    assert int(after["metadata"]["resourceVersion"]) > last_rv
    # The allocations survived too: the new service got a fresh IP and port.
    taken_ips = {o["spec"]["clusterIP"] for o in acked.values()}
    taken_ports = {o["spec"]["ports"][0]["nodePort"] for o in acked.values()}
    assert after["spec"]["clusterIP"] not in taken_ips
    assert after["spec"]["ports"][0]["nodePort"] not in taken_ports


def test_watch_resumes_from_its_resource_version_after_kill_9(cluster):
    cluster.client.request("POST", SERVICES, body=service("a"))
    rv = cluster.client.request("GET", SERVICES).json()["metadata"]["resourceVersion"]
    kill_server(cluster, signal.SIGKILL)
    restart(cluster)
    cluster.client.request("POST", SERVICES, body=service("b"))
    cluster.client.request("DELETE", f"{SERVICES}/a")
    seen = []
    res = cluster.res("Service")

    def consume() -> None:
        for ev in cluster.client.watch(res, "default", resource_version=rv):
            seen.append((ev.type, ev.object["metadata"]["name"]))
            if len(seen) == 2:
                return

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    t.join(15)
    assert seen == [("ADDED", "b"), ("DELETED", "a")]


def test_a_watch_open_during_a_restart_ends_and_the_server_answers_after(cluster):
    res = cluster.res("Service")
    ended = threading.Event()

    def consume() -> None:
        try:
            for _ in cluster.client.watch(res, "default"):
                pass
        except Exception:
            pass
        ended.set()

    threading.Thread(target=consume, daemon=True).start()
    time.sleep(0.5)
    kill_server(cluster, signal.SIGTERM)
    assert ended.wait(10), "the watch stream did not end when the server stopped"
    restart(cluster)
    with pytest.raises(ApiError) as e:
        cluster.client.request("GET", f"{SERVICES}/nothing")
    assert e.value.status == 404
