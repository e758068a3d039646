"""The LoadBalancer IP controller in a real server (control plane only: addresses are written to
the Services' status; no packets here, the proxy's tests send those).

Address plan: LAN 172.18.0.0/24; the default pool is 172.18.0.200-172.18.0.249; the tiny pool of
the `podnet up --lb-pool` tests is 172.18.0.100-172.18.0.101.
"""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from podnet.client.http import Client
from podnet.cluster import lifecycle
from podnet.cluster.state import ClusterState, ephemeral_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
KUBECTL = REPO / ".venv" / "bin" / "kubectl"
TIMEOUT = 30.0  # generous: the machine is shared with other test runs
OTHER_CLASS = "example.com/other-lb"


def eventually(fn: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def lb_service(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": "LoadBalancer", "selector": {"app": name},
                     "ports": [{"port": 80, "targetPort": 8080}], **spec}}


def vip(ip: str) -> dict[str, Any]:
    return {"ingress": [{"ip": ip, "ipMode": "VIP"}]}


class Lb:
    """Helpers over one cluster's default namespace."""

    def __init__(self, client: Client, kubeconfig: Path) -> None:
        self.c = client
        self.kubeconfig = kubeconfig
        from podnet.api.resources import lookup

        self.services, self.events = lookup("services"), lookup("events")
        assert self.services is not None and self.events is not None

    def create(self, name: str, **spec: Any) -> dict[str, Any]:
        assert self.services is not None
        return self.c.create(self.services, "default", lb_service(name, **spec))

    def delete(self, name: str) -> None:
        assert self.services is not None
        self.c.delete(self.services, "default", name)

    def get(self, name: str) -> dict[str, Any]:
        assert self.services is not None
        return self.c.get(self.services, "default", name)

    def status(self, name: str) -> dict[str, Any]:
        return (self.get(name).get("status") or {}).get("loadBalancer") or {}

    def wait_status(self, name: str, want: dict[str, Any]) -> None:
        eventually(lambda: self.status(name) == want)
        assert self.status(name) == want

    def events_of(self, name: str) -> list[tuple[str, str, str]]:
        assert self.events is not None
        items = self.c.list(self.events, "default",
                            field_selector=f"involvedObject.name={name}")["items"]
        return sorted((e["type"], e["reason"], e["message"]) for e in items)

    def wait_events(self, name: str, want: list[tuple[str, str, str]]) -> None:
        eventually(lambda: self.events_of(name) == want)
        assert self.events_of(name) == want

    def external_ips(self) -> dict[str, str]:
        """NAME -> EXTERNAL-IP, as the real kubectl prints them."""
        out = subprocess.run([str(KUBECTL), "--kubeconfig", str(self.kubeconfig), "get", "svc",
                              "-n", "default"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        header = lines[0].split()
        assert header[:4] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP"]
        return {cols[0]: cols[3] for cols in (line.split() for line in lines[1:])}


def allocated(ip: str) -> tuple[str, str, str]:
    return ("Normal", "IPAllocated", f"assigned IP {ip} from pool 172.18.0.200-172.18.0.249")


def test_addresses_from_the_default_pool(cluster: Any) -> None:
    lb = Lb(cluster.client, cluster.kubeconfig)
    lb.create("a")
    lb.wait_status("a", vip("172.18.0.200"))
    lb.create("b")
    lb.wait_status("b", vip("172.18.0.201"))
    lb.wait_events("a", [allocated("172.18.0.200")])

    # Deleted and made again: the address is free again, and the lowest free one.
    lb.delete("b")
    lb.create("b")
    lb.wait_status("b", vip("172.18.0.201"))

    # No longer a LoadBalancer: its status is cleared and its address goes to the next.
    assert lb.services is not None
    cluster.client.patch(lb.services, "default", "a", {"spec": {
        "type": "ClusterIP", "allocateLoadBalancerNodePorts": None,
        "externalTrafficPolicy": None, "ports": [{"port": 80, "targetPort": 8080}]}})
    lb.wait_status("a", {})
    lb.create("c")
    lb.wait_status("c", vip("172.18.0.200"))

    # spec.loadBalancerIP: honoured when free, else an Event and no address.
    lb.create("d", loadBalancerIP="172.18.0.230")
    lb.wait_status("d", vip("172.18.0.230"))
    lb.create("e", loadBalancerIP="172.18.0.201")
    lb.create("f", loadBalancerIP="10.1.2.3")
    lb.wait_events("e", [("Warning", "AllocationFailed", "failed to allocate IP 172.18.0.201 "
                          "(spec.loadBalancerIP): it is already in use by default/b")])
    lb.wait_events("f", [("Warning", "AllocationFailed", "failed to allocate IP 10.1.2.3 "
                          "(spec.loadBalancerIP): it is not in the pool "
                          "172.18.0.200-172.18.0.249")])

    # Another implementation's Service: never written, even when it shows no address.
    other = lb.create("g", loadBalancerClass=OTHER_CLASS)
    lb.create("h")
    lb.wait_status("h", vip("172.18.0.202"))
    assert lb.get("g")["metadata"]["resourceVersion"] == other["metadata"]["resourceVersion"]
    assert lb.events_of("g") == []

    # What kubectl shows.
    assert lb.external_ips() == {
        "kubernetes": "<none>", "a": "<none>", "b": "172.18.0.201", "c": "172.18.0.200",
        "d": "172.18.0.230", "e": "<pending>", "f": "<pending>", "g": "<pending>",
        "h": "172.18.0.202"}
    assert lb.status("e") == {} and lb.status("f") == {}

    # e asked for b's address: it gets it once b is gone.
    lb.delete("b")
    lb.wait_status("e", vip("172.18.0.201"))


def test_a_restarted_server_finds_the_addresses_in_the_statuses(cluster: Any) -> None:
    lb = Lb(cluster.client, cluster.kubeconfig)
    # One at a time: Services made in the same second are taken in uid order.
    for name, ip in (("a", "172.18.0.200"), ("b", "172.18.0.201"), ("c", "172.18.0.202")):
        lb.create(name)
        lb.wait_status(name, vip(ip))
    lb.delete("a")
    lb.wait_events("b", [allocated("172.18.0.201")])

    pid = cluster.state.read_pid()
    lifecycle.API_SERVER.stop(cluster.state)
    assert not lifecycle.pid_alive(pid)
    lifecycle.up(cluster.name, cluster.root, out=io.StringIO())
    cluster.client.close()  # reconnect to the new server

    lb.create("d")
    lb.wait_status("d", vip("172.18.0.200"))
    assert (lb.status("b"), lb.status("c")) == (vip("172.18.0.201"), vip("172.18.0.202"))

    # Two Services showing one address (as after a crash between writes, or a user's write):
    # the older (creationTimestamp, then uid: b and c may share a second) keeps it, the
    # younger gets the lowest free one.
    assert lb.services is not None
    older, younger = sorted(("b", "c"), key=lambda n: (
        lb.get(n)["metadata"]["creationTimestamp"], lb.get(n)["metadata"]["uid"]))
    cluster.client.patch(lb.services, "default", "b", {"status": {"loadBalancer": vip(
        "172.18.0.202")}}, subresource="status")
    lb.wait_status(younger, vip("172.18.0.201"))
    assert lb.status(older) == vip("172.18.0.202")
    assert lb.status("d") == vip("172.18.0.200")


def test_another_class_status_is_left_alone(cluster: Any) -> None:
    lb = Lb(cluster.client, cluster.kubeconfig)
    assert lb.services is not None
    lb.create("mine", loadBalancerClass=OTHER_CLASS)
    # The other implementation writes an address of our pool: it stays as written, and the
    # next Service of ours gets another one.
    written = cluster.client.patch(lb.services, "default", "mine", {"status": {
        "loadBalancer": {"ingress": [{"ip": "172.18.0.200", "ipMode": "Proxy"}]}}},
        subresource="status")
    lb.create("ours")
    lb.wait_status("ours", vip("172.18.0.201"))
    cluster.settled_revision()
    assert lb.get("mine")["metadata"]["resourceVersion"] == \
        written["metadata"]["resourceVersion"]
    assert lb.events_of("mine") == []


# -- a tiny pool, chosen with `podnet up --lb-pool` ---------------------------------------------


def podnet(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PODNET_STATE_ROOT": str(root)}
    return subprocess.run([sys.executable, "-m", "podnet.cli.main", *args], text=True,
                          capture_output=True, env=env, cwd=REPO, timeout=120)


@pytest.fixture
def tiny(cluster_root: Path) -> Iterator[tuple[ClusterState, Client]]:
    """A control-plane cluster whose pool is 172.18.0.100-172.18.0.101, made by the CLI."""
    name = "l" + secrets.token_hex(4)
    state = ClusterState.locate(name, cluster_root)
    client = None
    try:
        r = podnet(cluster_root, "up", "--name", name, "--nodes", "0", "--port",
                   str(ephemeral_port("127.0.0.1")), "--lb-pool", "172.18.0.100/31")
        assert r.returncode == 0, r.stderr
        client = Client.from_state(state)
        yield state, client
    finally:
        if client is not None:
            client.close()
        lifecycle.down(name, cluster_root, out=io.StringIO())
        assert lifecycle.find_servers(state) == []


def test_an_exhausted_pool(tiny: tuple[ClusterState, Client], cluster_root: Path) -> None:
    state, client = tiny
    assert state.load().lb_pool == "172.18.0.100-172.18.0.101"
    lb = Lb(client, state.kubeconfig)
    lb.create("a")
    lb.wait_status("a", vip("172.18.0.100"))
    lb.create("b")
    lb.wait_status("b", vip("172.18.0.101"))
    lb.create("c")
    lb.wait_events("c", [("Warning", "AllocationFailed",
                          "no available IPs in pool 172.18.0.100-172.18.0.101")])
    assert lb.status("c") == {}
    assert lb.external_ips()["c"] == "<pending>"

    # An address freed goes to the Service that waits for one.
    lb.delete("a")
    lb.wait_status("c", vip("172.18.0.100"))
    lb.wait_events("c", [
        ("Normal", "IPAllocated", "assigned IP 172.18.0.100 from pool 172.18.0.100-172.18.0.101"),
        ("Warning", "AllocationFailed", "no available IPs in pool 172.18.0.100-172.18.0.101")])

    # `up` again: the same pool (written otherwise) is fine, another one is refused.
    r = podnet(cluster_root, "up", "--name", state.name, "--lb-pool",
               "172.18.0.100-172.18.0.101")
    assert r.returncode == 0, r.stderr
    r = podnet(cluster_root, "up", "--name", state.name, "--lb-pool", "172.18.0.100/30")
    assert (r.returncode, r.stdout, r.stderr) == (
        1, "", f'error: cluster "{state.name}" exists with LoadBalancer pool '
        "172.18.0.100-172.18.0.101; remove it (podnet down) to change that\n")


def test_a_bad_pool_makes_no_cluster(cluster_root: Path) -> None:
    name = "l" + secrets.token_hex(4)
    state = ClusterState.locate(name, cluster_root)
    try:
        r = podnet(cluster_root, "up", "--name", name, "--nodes", "0", "--lb-pool",
                   "172.18.0.1-172.18.0.5")
        assert (r.returncode, r.stdout, r.stderr) == (
            1, "", "error: invalid LoadBalancer pool '172.18.0.1-172.18.0.5': it holds "
            "172.18.0.2, the external host's address\n")
        assert not state.exists()
        assert lifecycle.find_servers(state) == []
    finally:
        lifecycle.down(name, cluster_root, out=io.StringIO())
