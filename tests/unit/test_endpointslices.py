"""The EndpointSlice reconciler (podnet.api.endpointslices): what slices a Service gets."""

from __future__ import annotations

import copy
import itertools

import pytest

from podnet.api import endpointslices as es
from podnet.api.defaults import apply_defaults
from podnet.api.validation import validate

SVC_UID = "11111111-2222-3333-4444-555555555555"
OWNER = {"apiVersion": "v1", "kind": "Service", "name": "web", "uid": SVC_UID,
         "controller": True, "blockOwnerDeletion": True}
MANAGED = {"kubernetes.io/service-name": "web",
           "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}


def svc(name="web", ns="default", selector=None, ports=None, uid=SVC_UID, **spec):
    spec = {"selector": {"app": "web"} if selector is None else selector,
            "ports": ports if ports is not None else [
                {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
            "clusterIP": "10.96.0.20", "ipFamilies": ["IPv4"], "type": "ClusterIP", **spec}
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "uid": uid}, "spec": spec}


def pod(name, ip="10.244.1.5", ready=True, ns="default", labels=None, ports=None,
        node="node-a", phase="Running", deleting=False, **spec):
    meta = {"name": name, "namespace": ns, "uid": f"uid-{name}",
            "labels": {"app": "web"} if labels is None else labels}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    status = {"phase": phase,
              "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    spec = {"containers": [{"name": "c", "image": "x", "ports": ports or []}], **spec}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def node(name, zone=None):
    labels = {"topology.kubernetes.io/zone": zone} if zone else {}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}}


NODES = {"node-a": node("node-a", zone="zone-1"), "node-b": node("node-b")}


def pods(n, start=0, **kw):
    return [pod(f"p{i}", ip=f"10.244.{i // 200}.{i % 200 + 2}", **kw)
            for i in range(start, start + n)]


class FakeApi:
    """Slices as the API server would keep them: named, defaulted, validated, versioned."""

    def __init__(self):
        self.slices: dict[str, dict] = {}
        self.rv = itertools.count(100)
        self.names = itertools.count(1)
        self.writes = 0

    def apply(self, changes: es.SliceChanges) -> None:
        for s in changes.create:
            s = copy.deepcopy(s)
            assert "name" not in s["metadata"]
            s["metadata"]["name"] = f"{s['metadata']['generateName']}{next(self.names):05d}"
            self._put(s, None)
        for s in changes.update:
            old = self.slices[s["metadata"]["name"]]
            assert s["metadata"].get("resourceVersion") == old["metadata"]["resourceVersion"]
            self._put(copy.deepcopy(s), old)
        for s in changes.delete:
            del self.slices[s["metadata"]["name"]]
            self.writes += 1

    def _put(self, s, old):
        apply_defaults(s)
        assert validate(s, old, node_port_range=None) == []
        s["metadata"]["resourceVersion"] = str(next(self.rv))
        self.slices[s["metadata"]["name"]] = s
        self.writes += 1

    def sync(self, service, pod_list, nodes=NODES, **kw) -> es.SliceChanges:
        changes = es.desired_slices(service, pod_list, list(self.slices.values()), nodes, **kw)
        self.apply(changes)
        return changes

    def endpoints(self):
        """slice name -> sorted addresses."""
        return {n: sorted(a for e in s["endpoints"] for a in e["addresses"])
                for n, s in sorted(self.slices.items())}


def summary(changes):
    return (len(changes.create), len(changes.update), len(changes.delete))


# --- selectors ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("service", "p", "want"), [
    pytest.param(svc(), pod("a"), True, id="match"),
    pytest.param(svc(), pod("a", labels={"app": "web", "tier": "x"}), True, id="extra-labels"),
    pytest.param(svc(selector={"app": "web", "tier": "x"}), pod("a"), False,
                 id="missing-label"),
    pytest.param(svc(), pod("a", labels={"app": "db"}), False, id="other-value"),
    pytest.param(svc(), pod("a", ns="other"), False, id="other-namespace"),
    pytest.param(svc(selector={}), pod("a"), False, id="empty-selector"),
    pytest.param(svc(type="ExternalName", externalName="example.com"), pod("a"), False,
                 id="external-name"),
])
def test_selects(service, p, want):
    assert es.selects(service, p) is want


@pytest.mark.parametrize(("service", "want"), [
    pytest.param(svc(), True, id="selector"),
    pytest.param(svc(selector={}), False, id="no-selector"),
    pytest.param(svc(type="ExternalName"), False, id="external-name"),
])
def test_manages(service, want):
    assert es.manages(service) is want


def test_services_without_selector_get_nothing_and_keep_user_slices():
    user = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "endpoints": [{"addresses": ["192.168.1.1"]}], "ports": []}
    changes = es.desired_slices(svc(selector={}), [pod("a")], [user], NODES)
    assert summary(changes) == (0, 0, 0)
    # A Service with a selector ignores slices it doesn't manage, too.
    changes = es.desired_slices(svc(), [pod("a")], [user], NODES)
    assert summary(changes) == (1, 0, 0)


# --- ports -------------------------------------------------------------------------------------

NAMED = [{"name": "web", "containerPort": 8080, "protocol": "TCP"},
         {"name": "dns", "containerPort": 5353, "protocol": "UDP"}]


@pytest.mark.parametrize(("port", "spec", "want"), [
    pytest.param({"port": 80, "targetPort": 9000}, {}, 9000, id="number"),
    pytest.param({"port": 80}, {}, 80, id="unset-is-port"),
    pytest.param({"port": 80, "targetPort": "web", "protocol": "TCP"}, {}, 8080, id="named"),
    pytest.param({"port": 80, "targetPort": "web"}, {}, 8080, id="named-default-tcp"),
    pytest.param({"port": 53, "targetPort": "dns", "protocol": "UDP"}, {}, 5353,
                 id="named-udp"),
    pytest.param({"port": 53, "targetPort": "dns", "protocol": "TCP"}, {}, None,
                 id="named-wrong-protocol"),
    pytest.param({"port": 80, "targetPort": "metrics"}, {}, None, id="name-not-declared"),
    pytest.param({"port": 80, "targetPort": "side"},
                 {"initContainers": [{"name": "i", "restartPolicy": "Always",
                                      "ports": [{"name": "side", "containerPort": 7000}]}]},
                 7000, id="sidecar-init-container"),
    pytest.param({"port": 80, "targetPort": "side"},
                 {"initContainers": [{"name": "i",
                                      "ports": [{"name": "side", "containerPort": 7000}]}]},
                 None, id="plain-init-container"),
])
def test_find_port(port, spec, want):
    assert es.find_port(pod("a", ports=NAMED, **spec), port) == want


def test_named_port_resolved_per_pod_and_pods_without_it_get_their_own_slice():
    service = svc(ports=[
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "web",
         "appProtocol": "http"},
        {"name": "raw", "port": 81, "protocol": "TCP", "targetPort": 9999}])
    api = FakeApi()
    api.sync(service, [
        pod("a", ip="10.244.1.2", ports=[{"name": "web", "containerPort": 8080,
                                          "protocol": "TCP"}]),
        pod("b", ip="10.244.1.3", ports=[{"name": "web", "containerPort": 8081,
                                          "protocol": "TCP"}]),
        pod("c", ip="10.244.1.4")])
    got = sorted((es.port_key(s["ports"]), sorted(e["addresses"][0] for e in s["endpoints"]))
                 for s in api.slices.values())
    assert got == [
        ((("http", 8080, "TCP", "http"), ("raw", 9999, "TCP", "")), ["10.244.1.2"]),
        ((("http", 8081, "TCP", "http"), ("raw", 9999, "TCP", "")), ["10.244.1.3"]),
        ((("raw", 9999, "TCP", ""),), ["10.244.1.4"]),
    ]


def test_headless_service_without_ports():
    service = svc(ports=[], clusterIP="None")
    api = FakeApi()
    api.sync(service, [pod("a")])
    (s,) = api.slices.values()
    assert s["ports"] == [] and s["endpoints"][0]["addresses"] == ["10.244.1.5"]
    assert s["metadata"]["labels"]["service.kubernetes.io/headless"] == ""


# --- endpoints ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("ready", "deleting", "publish", "want"), [
    pytest.param(True, False, False, (True, True, False), id="ready"),
    pytest.param(False, False, False, (False, False, False), id="not-ready"),
    pytest.param(True, True, False, (False, True, True), id="terminating-ready"),
    pytest.param(False, True, False, (False, False, True), id="terminating-not-ready"),
    pytest.param(False, False, True, (True, False, False), id="publish-not-ready"),
    pytest.param(True, True, True, (True, True, True), id="publish-terminating"),
])
def test_conditions(ready, deleting, publish, want):
    service = svc(publishNotReadyAddresses=publish)
    ep = es.pod_endpoint(pod("a", ready=ready, deleting=deleting), service, "IPv4")
    c = ep["conditions"]
    assert (c["ready"], c["serving"], c["terminating"]) == want


def test_pod_without_ready_condition_is_not_ready():
    p = pod("a")
    p["status"]["conditions"] = []
    assert es.pod_endpoint(p, svc(), "IPv4")["conditions"] == {
        "ready": False, "serving": False, "terminating": False}


@pytest.mark.parametrize(("p", "included"), [
    pytest.param(pod("a"), True, id="running"),
    pytest.param(pod("a", ip=""), False, id="no-ip"),
    pytest.param(pod("a", phase="Succeeded"), False, id="succeeded"),
    pytest.param(pod("a", phase="Failed"), False, id="failed"),
    pytest.param(pod("a", phase="Pending", ready=False), True, id="pending-with-ip"),
    pytest.param(pod("a", deleting=True), True, id="terminating"),
])
def test_which_pods_are_endpoints(p, included):
    changes = es.desired_slices(svc(), [p], [], NODES)
    (s,) = changes.create
    assert [e["targetRef"]["name"] for e in s["endpoints"]] == (["a"] if included else [])


def test_a_slice_as_kubernetes_writes_it():
    service = svc(ports=[{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "web",
                          "appProtocol": "kubernetes.io/h2c"}])
    service["metadata"]["labels"] = {"team": "a", "kubernetes.io/service-name": "spoof"}
    p = pod("a", ports=[{"name": "web", "containerPort": 8080, "protocol": "TCP"}],
            hostname="a-host", subdomain="web")
    changes = es.desired_slices(service, [p], [], NODES)
    assert summary(changes) == (1, 0, 0)
    assert changes.create[0] == {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"generateName": "web-", "namespace": "default",
                     "labels": {"team": "a", **MANAGED}, "ownerReferences": [OWNER]},
        "addressType": "IPv4",
        "endpoints": [{
            "addresses": ["10.244.1.5"],
            "conditions": {"ready": True, "serving": True, "terminating": False},
            "hostname": "a-host",
            "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"},
            "nodeName": "node-a", "zone": "zone-1"}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP",
                   "appProtocol": "kubernetes.io/h2c"}],
    }


@pytest.mark.parametrize(("spec", "want"), [
    pytest.param({"hostname": "h", "subdomain": "web"}, "h", id="subdomain-is-service"),
    pytest.param({"hostname": "h", "subdomain": "other"}, None, id="other-subdomain"),
    pytest.param({"hostname": "h"}, None, id="no-subdomain"),
    pytest.param({"subdomain": "web"}, None, id="no-hostname"),
])
def test_hostname(spec, want):
    assert es.pod_endpoint(pod("a", **spec), svc(), "IPv4").get("hostname") == want


def test_pods_on_unknown_nodes_are_left_out_unless_publishing_not_ready():
    p = [pod("a", node="node-a"), pod("b", ip="10.244.1.6", node="gone")]
    changes = es.desired_slices(svc(), p, [], NODES)
    assert [e["targetRef"]["name"] for e in changes.create[0]["endpoints"]] == ["a"]
    assert changes.skipped == ["default/b"]
    changes = es.desired_slices(svc(publishNotReadyAddresses=True), p, [], NODES)
    assert [e["targetRef"]["name"] for e in changes.create[0]["endpoints"]] == ["a", "b"]
    assert "zone" not in changes.create[0]["endpoints"][1]
    # Without nodes nothing is checked and no zone is set.
    changes = es.desired_slices(svc(), p, [], None)
    assert [e.get("zone") for e in changes.create[0]["endpoints"]] == [None, None]


def test_dual_stack_gets_a_slice_per_family():
    service = svc(ipFamilies=["IPv4", "IPv6"])
    p = pod("a")
    p["status"]["podIPs"] = [{"ip": "10.244.1.5"}, {"ip": "fd00:0::5"}]
    changes = es.desired_slices(service, [p], [], NODES)
    got = sorted((s["addressType"], s["endpoints"][0]["addresses"]) for s in changes.create)
    assert got == [("IPv4", ["10.244.1.5"]), ("IPv6", ["fd00::5"])]


@pytest.mark.parametrize(("spec", "want"), [
    pytest.param({"ipFamilies": ["IPv6"]}, ["IPv6"], id="families"),
    pytest.param({"ipFamilies": [], "clusterIP": "10.96.0.9"}, ["IPv4"], id="cluster-ip"),
    pytest.param({"ipFamilies": [], "clusterIP": "fd00::9"}, ["IPv6"], id="cluster-ip-v6"),
    pytest.param({"ipFamilies": [], "clusterIP": "None"}, ["IPv4", "IPv6"], id="headless"),
])
def test_address_types(spec, want):
    assert es.address_types(svc(**spec)) == want


# --- reconciling -------------------------------------------------------------------------------

def test_stable_when_nothing_changed():
    api = FakeApi()
    service = svc()
    assert summary(api.sync(service, pods(5))) == (1, 0, 0)
    before = copy.deepcopy(api.slices)
    for order in (pods(5), list(reversed(pods(5)))):
        changes = api.sync(service, order)
        assert summary(changes) == (0, 0, 0) and not changes
    assert api.slices == before


def test_placeholder_for_no_endpoints_then_filled_in_place():
    api = FakeApi()
    service = svc()
    assert summary(api.sync(service, [])) == (1, 0, 0)
    (name,) = api.slices
    assert api.slices[name]["endpoints"] == [] and api.slices[name]["ports"] == []
    assert summary(api.sync(service, [])) == (0, 0, 0)
    # A pod appears: the placeholder is rewritten, not deleted and replaced.
    assert summary(api.sync(service, [pod("a")])) == (0, 1, 0)
    assert api.endpoints() == {name: ["10.244.1.5"]}
    assert api.slices[name]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    # ... and when it goes, the slice becomes the placeholder again.
    assert summary(api.sync(service, [])) == (0, 1, 0)
    assert api.endpoints() == {name: []} and api.slices[name]["ports"] == []


def test_readiness_change_updates_the_same_slice():
    api = FakeApi()
    service = svc()
    api.sync(service, [pod("a", ready=False), pod("b", ip="10.244.1.6")])
    (name,) = api.slices
    assert [e["conditions"]["ready"] for e in api.slices[name]["endpoints"]] == [False, True]
    assert summary(api.sync(service, [pod("a"), pod("b", ip="10.244.1.6")])) == (0, 1, 0)
    assert [e["conditions"]["ready"] for e in api.slices[name]["endpoints"]] == [True, True]


def test_more_than_100_endpoints_are_split_and_churn_stays_small():
    api = FakeApi()
    service = svc()
    assert summary(api.sync(service, pods(250))) == (3, 0, 0)
    assert sorted(len(s["endpoints"]) for s in api.slices.values()) == [50, 100, 100]
    assert summary(api.sync(service, pods(250))) == (0, 0, 0)
    # One pod goes: its slice is rewritten.
    assert summary(api.sync(service, pods(249))) == (0, 1, 0)
    assert sorted(len(s["endpoints"]) for s in api.slices.values()) == [50, 99, 100]
    # 30 pods come: all into the one slice they fit best (not 99 + a new one).
    assert summary(api.sync(service, pods(279))) == (0, 1, 0)
    assert sorted(len(s["endpoints"]) for s in api.slices.values()) == [80, 99, 100]
    assert summary(api.sync(service, pods(279))) == (0, 0, 0)
    all_addresses = [a for v in api.endpoints().values() for a in v]
    assert len(all_addresses) == len(set(all_addresses)) == 279
    # Everything goes: one placeholder is left.
    assert summary(api.sync(service, [])) == (0, 1, 2)
    assert [len(s["endpoints"]) for s in api.slices.values()] == [0]


def test_a_replaced_pod_takes_the_place_of_the_one_gone():
    api = FakeApi()
    service = svc()
    api.sync(service, pods(250))
    before = set(api.slices)
    swapped = [p for p in pods(251) if p["metadata"]["name"] != "p100"]
    assert summary(api.sync(service, swapped)) == (0, 1, 0)
    assert set(api.slices) == before
    assert sorted(len(s["endpoints"]) for s in api.slices.values()) == [50, 100, 100]


def test_max_endpoints_is_a_setting():
    api = FakeApi()
    api.sync(svc(), pods(7), max_endpoints=3)
    assert sorted(len(s["endpoints"]) for s in api.slices.values()) == [1, 3, 3]


def test_new_endpoints_fill_the_unchanged_slice_they_fit_best():
    api = FakeApi()
    service = svc()
    api.sync(service, pods(190))  # 100 + 90
    assert summary(api.sync(service, pods(195))) == (0, 1, 0)
    assert sorted(len(s["endpoints"]) for s in api.slices.values()) == [95, 100]
    assert summary(api.sync(service, pods(215))) == (1, 0, 0)


def test_slices_of_another_service_uid_are_deleted_and_a_deleted_one_is_reused():
    api = FakeApi()
    api.sync(svc(uid="old-uid"), pods(3))
    (old_name,) = api.slices
    changes = api.sync(svc(), pods(3))
    # Not ours: not reused (it may belong to a Service being deleted), but deleted.
    assert summary(changes) == (1, 0, 1)
    (name,) = api.slices
    assert name != old_name
    assert api.slices[name]["metadata"]["ownerReferences"] == [OWNER]


def test_address_type_no_longer_served_is_deleted():
    api = FakeApi()
    p = pod("a")
    p["status"]["podIPs"] = [{"ip": "10.244.1.5"}, {"ip": "fd00::5"}]
    api.sync(svc(ipFamilies=["IPv4", "IPv6"]), [p])
    assert sorted(s["addressType"] for s in api.slices.values()) == ["IPv4", "IPv6"]
    assert summary(api.sync(svc(ipFamilies=["IPv4"]), [p])) == (0, 0, 1)
    assert [s["addressType"] for s in api.slices.values()] == ["IPv4"]


def test_port_change_rewrites_the_slice_under_its_name():
    api = FakeApi()
    api.sync(svc(), pods(2))
    (name,) = api.slices
    moved = svc(ports=[{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 9090}])
    assert summary(api.sync(moved, pods(2))) == (0, 1, 0)
    assert api.slices[name]["ports"][0]["port"] == 9090


def test_service_labels_are_mirrored():
    api = FakeApi()
    service = svc()
    api.sync(service, pods(1))
    (name,) = api.slices
    service["metadata"]["labels"] = {"team": "b"}
    assert summary(api.sync(service, pods(1))) == (0, 1, 0)
    assert api.slices[name]["metadata"]["labels"] == {"team": "b", **MANAGED}


def test_slices_being_deleted_are_ignored():
    api = FakeApi()
    api.sync(svc(), pods(1))
    (s,) = api.slices.values()
    s["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    changes = es.desired_slices(svc(), pods(1), [s], NODES)
    assert summary(changes) == (1, 0, 0)


def test_no_creates_while_the_service_is_being_deleted():
    service = svc()
    service["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    assert summary(es.desired_slices(service, pods(3), [], NODES)) == (0, 0, 0)


def test_inputs_are_not_modified():
    api = FakeApi()
    api.sync(svc(), pods(3))
    existing = copy.deepcopy(list(api.slices.values()))
    frozen = copy.deepcopy(existing)
    p = pods(4, ready=False)
    p_before = copy.deepcopy(p)
    es.desired_slices(svc(), p, existing, NODES)
    assert existing == frozen and p == p_before


@pytest.mark.parametrize(("present", "want"), [
    pytest.param(False, ["web-a", "web-b"], id="service-gone"),
    pytest.param(True, ["web-b"], id="older-service"),
])
def test_stale_slices(present, want):
    def managed(name, uid, service="web"):
        labels = {**MANAGED, "kubernetes.io/service-name": service}
        return {"metadata": {"name": name, "namespace": "default", "labels": labels,
                             "ownerReferences": [{**OWNER, "uid": uid}]}}

    slices = [managed("web-a", SVC_UID), managed("web-b", "old"),
              managed("db-a", "x", service="db"),
              {"metadata": {"name": "user", "namespace": "default",
                            "labels": {"kubernetes.io/service-name": "web"}}}]
    got = es.stale_slices("default", "web", svc() if present else None, slices)
    assert [s["metadata"]["name"] for s in got] == want


def test_endpoint_inputs_see_what_matters_only():
    p = pod("a")
    base = es.endpoint_inputs(p)
    noise = copy.deepcopy(p)
    noise["status"]["containerStatuses"] = [{"name": "c", "restartCount": 3}]
    noise["metadata"]["annotations"] = {"x": "y"}
    assert es.endpoint_inputs(noise) == base
    for change in (lambda q: q["status"]["conditions"][0].update(status="False"),
                   lambda q: q["metadata"]["labels"].update(app="db"),
                   lambda q: q["metadata"].update(deletionTimestamp="2024-01-01T00:00:00Z"),
                   lambda q: q["status"].update(podIPs=[{"ip": "10.244.9.9"}]),
                   lambda q: q["status"].update(phase="Failed")):
        q = copy.deepcopy(p)
        change(q)
        assert es.endpoint_inputs(q) != base
