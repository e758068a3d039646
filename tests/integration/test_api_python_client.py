"""The official Kubernetes Python client against a podnet API server."""

from __future__ import annotations

import threading
import time

import pytest
from kubernetes import client as k8s
from kubernetes import config, watch
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.integration


@pytest.fixture
def core(cluster):
    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    yield k8s.CoreV1Api(api_client)
    api_client.close()


def svc(name: str, port: int = 80) -> k8s.V1Service:
    return k8s.V1Service(
        metadata=k8s.V1ObjectMeta(name=name, labels={"app": name}),
        spec=k8s.V1ServiceSpec(selector={"app": name},
                               ports=[k8s.V1ServicePort(name="http", port=port)]))


def test_lists_the_system_namespaces_with_their_name_label(core):
    items = {ns.metadata.name: ns for ns in core.list_namespace().items}
    for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert items[name].metadata.labels["kubernetes.io/metadata.name"] == name
        assert items[name].status.phase == "Active"
    kubernetes = core.read_namespaced_service("kubernetes", "default")
    assert kubernetes.spec.cluster_ip == "10.96.0.1"


def test_creates_patches_and_lists(core):
    created = core.create_namespaced_service("default", svc("a"))
    assert created.spec.cluster_ip.startswith("10.")
    assert created.spec.ports[0].target_port == 80
    patched = core.patch_namespaced_service(
        "a", "default", {"metadata": {"labels": {"tier": "x"}},
                         "spec": {"ports": [{"name": "metrics", "port": 9090}]}})
    assert patched.metadata.labels == {"app": "a", "tier": "x"}
    # Service ports merge by port number in a strategic merge patch.
    assert sorted(p.port for p in patched.spec.ports) == [80, 9090]
    assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)
    listed = core.list_namespaced_service("default", label_selector="tier=x")
    assert [s.metadata.name for s in listed.items] == ["a"]


def test_watch_from_a_resource_version_sees_what_came_after(core):
    core.create_namespaced_service("default", svc("before"))
    rv = core.list_namespaced_service("default").metadata.resource_version
    core.create_namespaced_service("default", svc("after"))
    core.delete_namespaced_service("before", "default")
    w = watch.Watch()
    seen = []
    for ev in w.stream(core.list_namespaced_service, "default", resource_version=rv,
                       timeout_seconds=10):
        seen.append((ev["type"], ev["object"].metadata.name))
        if len(seen) == 2:
            w.stop()
    assert seen == [("ADDED", "after"), ("DELETED", "before")]


def test_watch_delivers_live_events(core):
    w = watch.Watch()
    seen: list[tuple[str, str]] = []

    def consume() -> None:
        for ev in w.stream(core.list_namespaced_service, "default", timeout_seconds=15):
            seen.append((ev["type"], ev["object"].metadata.name))
            if ev["type"] == "DELETED":
                w.stop()

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.5)
    core.create_namespaced_service("default", svc("live"))
    core.delete_namespaced_service("live", "default")
    t.join(20)
    assert not t.is_alive()
    assert ("ADDED", "live") in seen and seen[-1] == ("DELETED", "live")


def test_conflict_on_a_stale_update(core):
    created = core.create_namespaced_service("default", svc("c"))
    core.patch_namespaced_service("c", "default", {"metadata": {"labels": {"v": "2"}}})
    created.metadata.labels = {"v": "stale"}
    with pytest.raises(ApiException) as e:
        core.replace_namespaced_service("c", "default", created)
    assert e.value.status == 409
    assert core.read_namespaced_service("c", "default").metadata.labels == {"app": "c", "v": "2"}


@pytest.fixture
def fast_compaction(monkeypatch):
    """Servers started while this is active compact their history every second."""
    monkeypatch.setenv("PODNET_COMPACTION_INTERVAL", "1")


def test_relists_after_410_gone(fast_compaction, cluster, core):
    core.create_namespaced_service("default", svc("old"))
    old_rv = core.list_namespaced_service("default").metadata.resource_version
    core.create_namespaced_service("default", svc("newer"))
    # The server compacts every second up to what it saw a second before.
    deadline = time.monotonic() + 15
    gone = False
    while time.monotonic() < deadline and not gone:
        time.sleep(1)
        try:
            for _ in watch.Watch().stream(core.list_namespaced_service, "default",
                                          resource_version=old_rv, timeout_seconds=1):
                pass
        except ApiException as e:
            gone = e.status == 410
    assert gone, "the watch from a compacted resourceVersion never got 410"
    # What a client does on 410: list again, and watch from the new list's version.
    fresh = core.list_namespaced_service("default")
    assert {s.metadata.name for s in fresh.items} >= {"old", "newer"}
    core.delete_namespaced_service("newer", "default")
    w = watch.Watch()
    for ev in w.stream(core.list_namespaced_service, "default",
                       resource_version=fresh.metadata.resource_version, timeout_seconds=10):
        assert (ev["type"], ev["object"].metadata.name) == ("DELETED", "newer")
        w.stop()
