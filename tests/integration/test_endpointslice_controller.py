"""The EndpointSlice controller in a real server. No agents: the test plays the nodes by
writing Node objects and the kubelet by setting pods' status (podIP, Ready) through the
pods/status subresource."""

from __future__ import annotations

import os
import signal
import time

import pytest

from podnet.cluster import lifecycle

pytestmark = pytest.mark.integration

SERVICE_LABEL = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
CONTROLLER = "endpointslice-controller.k8s.io"


def eventually(fn, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def node(name: str, zone: str | None = None) -> dict:
    labels = {"topology.kubernetes.io/zone": zone} if zone else {}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Test"}]}}


def pod(name: str, labels: dict, ports: list | None = None, node_name: str = "n1",
        **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"nodeName": node_name,
                     "containers": [{"name": "c", "image": "x", "ports": ports or []}], **spec}}


def service(name: str, selector: dict | None, ports: list, **spec) -> dict:
    body = {"ports": ports, **spec}
    if selector is not None:
        body["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": body}


class Slices:
    """Helpers over one cluster's default namespace."""

    def __init__(self, cluster):
        self.c = cluster.client
        self.pods = cluster.res("Pod")
        self.services = cluster.res("Service")
        self.slices = cluster.res("EndpointSlice")
        self.nodes = cluster.res("Node")

    def status(self, name: str, ip: str, ready: bool) -> None:
        self.c.patch(self.pods, "default", name, {"status": {
            "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}},
            subresource="status")

    def of(self, svc: str) -> list[dict]:
        return self.c.list(self.slices, "default", label_selector=f"{SERVICE_LABEL}={svc}")["items"]

    def endpoints(self, svc: str) -> dict[str, dict]:
        """pod name -> endpoint, with the slice's ports under "ports"."""
        out = {}
        for s in self.of(svc):
            for e in s.get("endpoints") or []:
                name = (e.get("targetRef") or {}).get("name", "?")
                out[name] = {**e, "ports": s.get("ports")}
        return out

    def wait(self, svc: str, check, timeout: float = 10.0):
        """Wait until check(endpoints) holds; returns the endpoints."""
        got = eventually(lambda: (lambda e: e if check(e) else None)(self.endpoints(svc)),
                         timeout)
        assert got is not None, f"slices of {svc}: {self.endpoints(svc)}"
        return got


def test_slices_follow_pods_readiness_and_named_ports(cluster):
    s = Slices(cluster)
    s.c.create(s.nodes, None, node("n1", zone="zone-a"))
    web = [{"name": "web", "containerPort": 8080, "protocol": "TCP"}]
    s.c.create(s.pods, "default", pod("p1", {"app": "web"}, web, hostname="p1",
                                      subdomain="web"))
    s.c.create(s.pods, "default", pod("p2", {"app": "web"},
                                      [{"name": "web", "containerPort": 9090}]))
    s.c.create(s.pods, "default", pod("p3", {"app": "web"}))  # no port named "web"
    s.c.create(s.pods, "default", pod("other", {"app": "db"}, web))
    svc = s.c.create(s.services, "default", service("web", {"app": "web"}, [
        {"name": "http", "port": 80, "targetPort": "web", "appProtocol": "http"},
        {"name": "metrics", "port": 9100, "targetPort": 9100}]))
    # With no pod IPs yet, the Service has one empty slice.
    placeholder = eventually(lambda: s.of("web"))
    assert [(x.get("endpoints"), x.get("ports")) for x in placeholder] == [([], [])]

    s.status("p1", "10.244.1.10", ready=False)
    s.status("p2", "10.244.1.11", ready=True)
    s.status("p3", "10.244.1.12", ready=True)
    s.status("other", "10.244.1.13", ready=True)
    eps = s.wait("web", lambda e: set(e) == {"p1", "p2", "p3"})
    p1_uid = s.c.get(s.pods, "default", "p1")["metadata"]["uid"]
    p1 = eps["p1"]
    assert {k: v for k, v in p1.items() if k != "ports"} == {
        "addresses": ["10.244.1.10"],
        "conditions": {"ready": False, "serving": False, "terminating": False},
        "hostname": "p1", "nodeName": "n1", "zone": "zone-a",
        "targetRef": {"kind": "Pod", "namespace": "default", "name": "p1", "uid": p1_uid}}
    assert eps["p2"]["conditions"] == {"ready": True, "serving": True, "terminating": False}
    assert "hostname" not in eps["p2"]
    # Named ports resolve per pod; a pod without the name lacks that port.
    assert sorted(p1["ports"], key=lambda p: p["name"]) == [
        {"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"},
        {"name": "metrics", "port": 9100, "protocol": "TCP"}]
    assert sorted((p["name"], p["port"]) for p in eps["p2"]["ports"]) == \
        [("http", 9090), ("metrics", 9100)]
    assert eps["p3"]["ports"] == [{"name": "metrics", "port": 9100, "protocol": "TCP"}]

    slices = s.of("web")
    assert len(slices) == 3  # three port sets; the placeholder was reused for one of them
    assert placeholder[0]["metadata"]["name"] in {x["metadata"]["name"] for x in slices}
    for x in slices:
        meta = x["metadata"]
        assert x["addressType"] == "IPv4"
        assert meta["name"].startswith("web-")
        assert meta["labels"] == {SERVICE_LABEL: "web", MANAGED_BY: CONTROLLER}
        assert meta["ownerReferences"] == [{
            "apiVersion": "v1", "kind": "Service", "name": "web",
            "uid": svc["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]

    # Readiness follows the pod's Ready condition, both ways, in the same slice.
    before = {x["metadata"]["name"] for x in s.of("web")}
    s.status("p1", "10.244.1.10", ready=True)
    s.wait("web", lambda e: e["p1"]["conditions"]["ready"])
    s.status("p2", "10.244.1.11", ready=False)
    eps = s.wait("web", lambda e: not e["p2"]["conditions"]["ready"])
    assert eps["p2"]["conditions"] == {"ready": False, "serving": False, "terminating": False}
    assert {x["metadata"]["name"] for x in s.of("web")} == before

    # A pod whose labels change leaves; one that stops being terminal-free leaves too.
    s.c.patch(s.pods, "default", "p3", {"metadata": {"labels": {"app": "other"}}})
    s.wait("web", lambda e: set(e) == {"p1", "p2"})
    s.c.patch(s.pods, "default", "p2", {"status": {"phase": "Failed"}}, subresource="status")
    s.wait("web", lambda e: set(e) == {"p1"})


def test_terminating_pods_stay_with_terminating_true(cluster):
    s = Slices(cluster)
    s.c.create(s.nodes, None, node("n1"))
    s.c.create(s.pods, "default", pod("p1", {"app": "web"}))
    s.c.create(s.services, "default", service("web", {"app": "web"}, [{"port": 80}]))
    s.status("p1", "10.244.1.10", ready=True)
    s.wait("web", lambda e: "p1" in e and e["p1"]["conditions"]["ready"])
    # The pod is bound to a node, so deleting it is graceful: it stays, terminating, until its
    # node (which no agent plays here) finishes it.
    s.c.delete(s.pods, "default", "p1")
    eps = s.wait("web", lambda e: e["p1"]["conditions"]["terminating"])
    assert eps["p1"]["conditions"] == {"ready": False, "serving": True, "terminating": True}
    s.c.delete(s.pods, "default", "p1", params={"gracePeriodSeconds": "0"})
    s.wait("web", lambda e: e == {})


def test_pods_on_a_node_not_yet_known_join_when_it_appears(cluster):
    s = Slices(cluster)
    s.c.create(s.nodes, None, node("n1"))
    s.c.create(s.pods, "default", pod("p1", {"app": "web"}))
    s.c.create(s.pods, "default", pod("p2", {"app": "web"}, node_name="late"))
    s.c.create(s.services, "default", service("web", {"app": "web"}, [{"port": 80}]))
    s.status("p1", "10.244.1.10", ready=True)
    s.status("p2", "10.244.2.10", ready=True)
    s.wait("web", lambda e: "p1" in e)
    time.sleep(0.3)
    assert set(s.endpoints("web")) == {"p1"}  # as in Kubernetes: its node doesn't exist
    s.c.create(s.nodes, None, node("late", zone="zone-b"))
    eps = s.wait("web", lambda e: "p2" in e)
    assert eps["p2"]["zone"] == "zone-b" and "zone" not in eps["p1"]


def test_publish_not_ready_addresses(cluster):
    s = Slices(cluster)
    s.c.create(s.nodes, None, node("n1"))
    s.c.create(s.pods, "default", pod("p1", {"app": "db"}))
    s.c.create(s.services, "default", service("db", {"app": "db"}, [{"port": 5432}],
                                              clusterIP="None", publishNotReadyAddresses=True))
    s.status("p1", "10.244.1.10", ready=False)
    eps = s.wait("db", lambda e: "p1" in e)
    assert eps["p1"]["conditions"] == {"ready": True, "serving": False, "terminating": False}
    (x,) = s.of("db")
    assert x["metadata"]["labels"]["service.kubernetes.io/headless"] == ""


def test_selectorless_service_keeps_user_slices(cluster):
    s = Slices(cluster)
    s.c.create(s.nodes, None, node("n1"))
    s.c.create(s.services, "default", service("external", None, [{"port": 80}]))
    user = s.c.create(s.slices, "default", {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "external-1", "labels": {SERVICE_LABEL: "external"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["192.168.10.5"]}],
        "ports": [{"name": "", "port": 80, "protocol": "TCP"}]})
    # Make the controller busy with another Service, and wait until it has done that, so it
    # has certainly looked at everything before.
    s.c.create(s.pods, "default", pod("p1", {"app": "web"}))
    s.status("p1", "10.244.1.10", ready=True)
    s.c.create(s.services, "default", service("web", {"app": "web"}, [{"port": 80}]))
    s.wait("web", lambda e: "p1" in e)
    s.c.patch(s.services, "default", "external", {"metadata": {"labels": {"x": "y"}}})
    s.wait("web", lambda e: "p1" in e)
    time.sleep(0.5)
    (got,) = s.of("external")
    assert got["metadata"]["resourceVersion"] == user["metadata"]["resourceVersion"]
    assert got["endpoints"] == [{"addresses": ["192.168.10.5"]}]


def test_deleting_the_service_deletes_its_slices_only(cluster):
    s = Slices(cluster)
    s.c.create(s.nodes, None, node("n1"))
    for i in range(3):
        s.c.create(s.pods, "default", pod(f"p{i}", {"app": "web"}))
        s.status(f"p{i}", f"10.244.1.{10 + i}", ready=True)
    s.c.create(s.services, "default", service("web", {"app": "web"}, [{"port": 80}]))
    s.c.create(s.services, "default", service("web2", {"app": "web"}, [{"port": 80}]))
    s.wait("web", lambda e: len(e) == 3)
    s.wait("web2", lambda e: len(e) == 3)
    s.c.delete(s.services, "default", "web")
    assert eventually(lambda: not s.of("web"))
    assert len(s.endpoints("web2")) == 3
    # A new Service of the same name gets new slices, owned by it.
    uid = s.c.create(s.services, "default", service("web", {"app": "web"}, [{"port": 80}]))[
        "metadata"]["uid"]
    s.wait("web", lambda e: len(e) == 3)
    assert [x["metadata"]["ownerReferences"][0]["uid"] for x in s.of("web")] == [uid]


def test_edits_to_managed_slices_are_undone(cluster):
    s = Slices(cluster)
    s.c.create(s.nodes, None, node("n1"))
    s.c.create(s.pods, "default", pod("p1", {"app": "web"}))
    s.status("p1", "10.244.1.10", ready=True)
    s.c.create(s.services, "default", service("web", {"app": "web"}, [{"port": 80}]))
    s.wait("web", lambda e: "p1" in e)
    (x,) = s.of("web")
    s.c.patch(s.slices, "default", x["metadata"]["name"],
              {"endpoints": [{"addresses": ["10.9.9.9"]}]})
    eps = s.wait("web", lambda e: "p1" in e)
    assert eps["p1"]["addresses"] == ["10.244.1.10"]
    assert [y["metadata"]["name"] for y in s.of("web")] == [x["metadata"]["name"]]


def test_more_than_100_pods_are_split(cluster):
    s = Slices(cluster)
    s.c.create(s.nodes, None, node("n1"))
    s.c.create(s.services, "default", service("big", {"app": "big"}, [{"port": 80}]))
    for i in range(130):
        s.c.create(s.pods, "default", pod(f"b{i}", {"app": "big"}))
        s.status(f"b{i}", f"10.244.{2 + i // 200}.{i % 200 + 2}", ready=True)
    s.wait("big", lambda e: len(e) == 130, timeout=20)
    settled = s.of("big")
    # How they are packed depends on how the pods' changes were batched (as in Kubernetes:
    # new endpoints go where they fit, existing ones are not moved); never over 100.
    sizes = [len(x["endpoints"]) for x in settled]
    assert len(sizes) == 2 and max(sizes) <= 100 and sum(sizes) == 130, sizes
    # Once settled, nothing is rewritten.
    time.sleep(1.0)
    assert {x["metadata"]["name"]: x["metadata"]["resourceVersion"] for x in s.of("big")} == \
        {x["metadata"]["name"]: x["metadata"]["resourceVersion"] for x in settled}


def test_kubectl_get_endpointslices(cluster):
    s = Slices(cluster)
    s.c.create(s.nodes, None, node("n1"))
    s.c.create(s.pods, "default", pod("p1", {"app": "web"}))
    s.status("p1", "10.244.1.10", ready=True)
    s.c.create(s.services, "default", service("web", {"app": "web"},
                                              [{"name": "http", "port": 80,
                                                "targetPort": 8080}]))
    s.wait("web", lambda e: "p1" in e)
    (x,) = s.of("web")
    out = cluster.kubectl("get", "endpointslices", "-l", f"{SERVICE_LABEL}=web", check=True)
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    assert lines[1].split()[:4] == [x["metadata"]["name"], "IPv4", "8080", "10.244.1.10"]
    assert len(lines) == 2


def test_managed_slices_of_no_service_are_deleted(cluster):
    s = Slices(cluster)
    # As if the server had died between deleting a Service and deleting its slices.
    s.c.create(s.slices, "default", {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "gone-abcde",
                     "labels": {SERVICE_LABEL: "gone", MANAGED_BY: CONTROLLER}},
        "addressType": "IPv4", "endpoints": [], "ports": []})
    assert eventually(lambda: not s.of("gone"))


def test_a_restarted_server_rewrites_nothing(cluster):
    s = Slices(cluster)
    s.c.create(s.nodes, None, node("n1"))
    for i in range(3):
        s.c.create(s.pods, "default", pod(f"p{i}", {"app": "web"}))
        s.status(f"p{i}", f"10.244.1.{10 + i}", ready=True)
    s.c.create(s.services, "default", service("web", {"app": "web"}, [{"port": 80}]))
    s.wait("web", lambda e: len(e) == 3)
    before = {x["metadata"]["name"]: x["metadata"]["resourceVersion"] for x in s.of("web")}
    pid = cluster.state.read_pid()
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while lifecycle.pid_alive(pid) and time.monotonic() < deadline:
        lifecycle.reap(pid)
        time.sleep(0.05)
    lifecycle.up(cluster.name, cluster.root)
    s.c.close()
    time.sleep(1.0)
    assert {x["metadata"]["name"]: x["metadata"]["resourceVersion"] for x in s.of("web")} == \
        before
    # ... and it is running: a change still gets through.
    s.status("p0", "10.244.1.10", ready=False)
    s.wait("web", lambda e: not e["p0"]["conditions"]["ready"])
