"""Object life cycles through the API: finalizers, namespace deletion, status subresources,
selectors, paging and delete-collection."""

from __future__ import annotations

import time

import pytest

from podnet.client.http import ApiError

pytestmark = pytest.mark.integration


def pod(name: str, ns: str = "default", node: str | None = None, **labels: str) -> dict:
    spec: dict = {"containers": [{"name": "c", "image": "x"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels}, "spec": spec}


def wait_gone(cluster, kind, ns, name, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            cluster.client.get(cluster.res(kind), ns, name)
        except ApiError as e:
            if e.status == 404:
                return True
            raise
        time.sleep(0.1)
    return False


def test_finalizers_hold_a_delete_until_they_are_removed(cluster):
    c, sec = cluster.client, cluster.res("Secret")
    c.create(sec, "default", {"apiVersion": "v1", "kind": "Secret",
                              "metadata": {"name": "held", "finalizers": ["example.com/hold"]}})
    deleted = c.delete(sec, "default", "held")
    assert deleted["metadata"]["deletionTimestamp"]
    still = c.get(sec, "default", "held")
    assert still["metadata"]["deletionTimestamp"] == deleted["metadata"]["deletionTimestamp"]
    # Finalizers can't be added once deletion started; removing the last one deletes.
    c.patch(sec, "default", "held", {"metadata": {"finalizers": None}},
            patch_type="application/merge-patch+json")
    assert wait_gone(cluster, "Secret", "default", "held", timeout=1)


def test_deleting_a_namespace_deletes_what_is_in_it(cluster):
    c = cluster.client
    c.create(cluster.res("Namespace"), None, {"apiVersion": "v1", "kind": "Namespace",
                                              "metadata": {"name": "doomed"}})
    ns = c.get(cluster.res("Namespace"), None, "doomed")
    assert ns["metadata"]["labels"]["kubernetes.io/metadata.name"] == "doomed"
    c.create(cluster.res("Pod"), "doomed", pod("p", "doomed"))
    svc = c.create(cluster.res("Service"), "doomed", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"type": "NodePort", "ports": [{"port": 80}]}})
    c.delete(cluster.res("Namespace"), None, "doomed")
    # While it terminates, nothing new may be created in it.
    with pytest.raises(ApiError) as e:
        c.create(cluster.res("Secret"), "doomed", {"apiVersion": "v1", "kind": "Secret",
                                                   "metadata": {"name": "late"}})
    assert e.value.status in (403, 404)
    assert wait_gone(cluster, "Namespace", None, "doomed")
    with pytest.raises(ApiError):
        c.get(cluster.res("Service"), "doomed", "s")
    # The service's node port and IP were released with it.
    again = c.create(cluster.res("Service"), "default", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "again"},
        "spec": {"type": "NodePort", "clusterIP": svc["spec"]["clusterIP"],
                 "ports": [{"port": 80, "nodePort": svc["spec"]["ports"][0]["nodePort"]}]}})
    assert again["spec"]["clusterIP"] == svc["spec"]["clusterIP"]


def test_status_is_written_only_through_the_status_subresource(cluster):
    c, res = cluster.client, cluster.res("Pod")
    # Bound to a node that has no agent, so nothing else writes to it during the test.
    created = c.create(res, "default", pod("p", node="node-x"))
    assert created["status"]["phase"] == "Pending"
    created["status"] = {"phase": "Running"}
    created["metadata"]["labels"] = {"changed": "yes"}
    updated = c.replace(res, "default", "p", created)
    assert updated["status"]["phase"] == "Pending"  # ignored on the main resource
    assert updated["metadata"]["labels"] == {"changed": "yes"}
    updated["status"] = {"phase": "Running", "podIP": "10.244.1.5",
                         "podIPs": [{"ip": "10.244.1.5"}]}
    after = c.request("PUT", "/api/v1/namespaces/default/pods/p/status", body=updated).json()
    assert after["status"]["phase"] == "Running" and after["status"]["podIP"] == "10.244.1.5"
    bad = dict(after, status={"podIP": "not-an-ip"})
    with pytest.raises(ApiError) as e:
        c.request("PUT", "/api/v1/namespaces/default/pods/p/status", body=bad)
    assert e.value.status == 422 and "status.podIP" in e.value.message


def test_field_and_label_selectors(cluster):
    c, res = cluster.client, cluster.res("Pod")
    c.create(res, "default", pod("on-a", node="node-a", app="x"))
    c.create(res, "default", pod("on-b", node="node-b", app="x"))
    c.create(res, "default", pod("loose", app="y"))
    names = lambda out: sorted(o["metadata"]["name"] for o in out["items"])  # noqa: E731
    assert names(c.list(res, None, field_selector="spec.nodeName=node-a")) == ["on-a"]
    assert names(c.list(res, "default", field_selector="spec.nodeName=")) == ["loose"]
    assert names(c.list(res, "default", field_selector="metadata.name=on-b")) == ["on-b"]
    assert names(c.list(res, None, field_selector="metadata.namespace=default",
                        label_selector="app in (x),app!=y")) == ["on-a", "on-b"]
    with pytest.raises(ApiError) as e:
        c.list(res, "default", field_selector="spec.bogus=1")
    assert e.value.status == 400 and "spec.bogus" in e.value.message


def test_paging_with_limit_and_continue_is_consistent(cluster):
    c, res = cluster.client, cluster.res("Secret")
    for i in range(7):
        c.create(res, "default", {"apiVersion": "v1", "kind": "Secret",
                                  "metadata": {"name": f"s{i}"}})
    first = c.list(res, "default", params={"limit": 3})
    assert [o["metadata"]["name"] for o in first["items"]] == ["s0", "s1", "s2"]
    # A write between pages doesn't show: the pages are read at the first page's version.
    c.create(res, "default", {"apiVersion": "v1", "kind": "Secret",
                              "metadata": {"name": "s3a"}})
    names = [o["metadata"]["name"] for o in first["items"]]
    token = first["metadata"]["continue"]
    while token:
        page = c.list(res, "default", params={"limit": 3, "continue": token})
        names += [o["metadata"]["name"] for o in page["items"]]
        token = page["metadata"].get("continue")
    assert names == [f"s{i}" for i in range(7)]


def test_delete_collection_removes_the_selected(cluster):
    c, res = cluster.client, cluster.res("Pod")
    for name, app in (("a", "x"), ("b", "x"), ("c", "y")):
        c.create(res, "default", pod(name, app=app))
    out = c.request("DELETE", "/api/v1/namespaces/default/pods",
                    params={"labelSelector": "app=x"}).json()
    assert sorted(o["metadata"]["name"] for o in out["items"]) == ["a", "b"]
    assert [o["metadata"]["name"] for o in c.list(res, "default")["items"]] == ["c"]


def test_pods_on_a_node_are_deleted_gracefully(cluster):
    c, res = cluster.client, cluster.res("Pod")
    c.create(res, "default", pod("bound", node="node-a"))
    marked = c.delete(res, "default", "bound")
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 30
    assert c.get(res, "default", "bound")["metadata"]["deletionTimestamp"]
    # The node's agent finishes it with grace 0, as kubelet does.
    c.request("DELETE", "/api/v1/namespaces/default/pods/bound",
              body={"gracePeriodSeconds": 0})
    assert wait_gone(cluster, "Pod", "default", "bound", timeout=1)


def test_kubectl_lists_in_chunks_and_deletes_all(cluster):
    for i in range(12):
        cluster.client.create(cluster.res("Secret"), "default", {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"k{i:02d}"}})
    out = cluster.kubectl("get", "secrets", "--chunk-size=5", "-o", "name", check=True)
    assert out.stdout.split() == [f"secret/k{i:02d}" for i in range(12)]
    cluster.kubectl("delete", "secrets", "--all", check=True)
    assert cluster.kubectl("get", "secrets", "-o", "name", check=True).stdout.strip() == ""
