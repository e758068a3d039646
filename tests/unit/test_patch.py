"""Tests for podnet.api.patch: RFC 7386, RFC 6902 and Kubernetes strategic merge patch.

The strategic cases use the shapes kubectl sends (three-way `apply` and `kubectl patch`); each
expected result was checked against `kubectl patch --local --type strategic` (kubectl 1.37),
which runs Kubernetes' own implementation. The two cases where podnet differs on purpose say so.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from podnet.api.patch import (
    MERGE_KEYS,
    PatchError,
    json_merge_patch,
    json_patch,
    merge_strategy,
    strategic_merge_patch,
)
from podnet.api.resources import RESOURCES

# ---------------------------------------------------------------------------------------------
# RFC 7386
# ---------------------------------------------------------------------------------------------

MERGE_VECTORS = [
    pytest.param({"a": "b"}, {"a": "c"}, {"a": "c"}, id="replace-member"),
    pytest.param({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}, id="add-member"),
    pytest.param({"a": "b"}, {"a": None}, {}, id="null-deletes"),
    pytest.param({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}, id="null-deletes-one"),
    pytest.param({"a": ["b"]}, {"a": "c"}, {"a": "c"}, id="scalar-replaces-array"),
    pytest.param({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}, id="array-replaces-scalar"),
    pytest.param({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}},
                 id="nested-merge"),
    pytest.param({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}, id="arrays-replace-whole"),
    pytest.param(["a", "b"], ["c", "d"], ["c", "d"], id="array-document"),
    pytest.param({"a": "b"}, ["c"], ["c"], id="array-patch-replaces-object"),
    pytest.param({"a": "foo"}, None, None, id="null-patch"),
    pytest.param({"a": "foo"}, "bar", "bar", id="string-patch"),
    pytest.param({"e": None}, {"a": 1}, {"e": None, "a": 1}, id="existing-null-kept"),
    pytest.param([1, 2], {"a": "b", "c": None}, {"a": "b"}, id="object-patch-on-array"),
    pytest.param({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}, id="nulls-in-new-object"),
    pytest.param({"a": [1, {"x": None}]}, {"b": [None]}, {"a": [1, {"x": None}], "b": [None]},
                 id="nulls-inside-arrays-are-values"),
]


@pytest.mark.parametrize(("target", "patch", "expected"), MERGE_VECTORS)
def test_json_merge_patch(target: Any, patch: Any, expected: Any) -> None:
    assert json_merge_patch(target, patch) == expected


def test_json_merge_patch_leaves_inputs_alone() -> None:
    target = {"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"x": [1]}}
    patch = {"metadata": {"labels": {"a": None, "c": {"d": "3"}}}, "spec": {"x": [2]}}
    before = copy.deepcopy((target, patch))
    result = json_merge_patch(target, patch)
    assert (target, patch) == before
    assert result == {"metadata": {"labels": {"b": "2", "c": {"d": "3"}}}, "spec": {"x": [2]}}
    result["metadata"]["labels"]["c"]["d"] = "changed"
    result["spec"]["x"].append(3)
    assert (target, patch) == before


def test_json_merge_patch_kubectl_label_removal() -> None:
    pod = {"metadata": {"name": "p", "labels": {"app": "web", "old": "x"}}}
    assert json_merge_patch(pod, {"metadata": {"labels": {"old": None}}}) == {
        "metadata": {"name": "p", "labels": {"app": "web"}}}


# ---------------------------------------------------------------------------------------------
# RFC 6902
# ---------------------------------------------------------------------------------------------

JSON_PATCH_VECTORS = [
    pytest.param({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}],
                 {"foo": "bar", "baz": "qux"}, id="add-member"),
    pytest.param({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}],
                 {"foo": ["bar", "qux", "baz"]}, id="add-array-element"),
    pytest.param({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}],
                 {"foo": "bar"}, id="remove-member"),
    pytest.param({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}],
                 {"foo": ["bar", "baz"]}, id="remove-array-element"),
    pytest.param({"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}],
                 {"baz": "boo", "foo": "bar"}, id="replace"),
    pytest.param({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
                 [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
                 {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
                 id="move-member"),
    pytest.param({"foo": ["all", "grass", "cows", "eat"]},
                 [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
                 {"foo": ["all", "cows", "eat", "grass"]}, id="move-array-element"),
    pytest.param({"baz": "qux", "foo": ["a", 2, "c"]},
                 [{"op": "test", "path": "/baz", "value": "qux"},
                  {"op": "test", "path": "/foo/1", "value": 2}],
                 {"baz": "qux", "foo": ["a", 2, "c"]}, id="test-success"),
    pytest.param({"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
                 {"foo": "bar", "child": {"grandchild": {}}}, id="add-nested-object"),
    pytest.param({"foo": "bar"},
                 [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
                 {"foo": "bar", "baz": "qux"}, id="unknown-members-ignored"),
    pytest.param({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}],
                 {"/": 9, "~1": 10}, id="tilde-escape"),
    pytest.param({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
                 {"foo": ["bar", ["abc", "def"]]}, id="dash-appends"),
    pytest.param({"a/b": 1}, [{"op": "replace", "path": "/a~1b", "value": 2}], {"a/b": 2},
                 id="slash-escape"),
    pytest.param({"a": 1}, [{"op": "replace", "path": "", "value": [1]}], [1],
                 id="replace-root"),
    pytest.param({"a": 1}, [{"op": "add", "path": "", "value": {"b": 2}}], {"b": 2},
                 id="add-root"),
    pytest.param({"a": {"b": [1]}}, [{"op": "copy", "from": "/a", "path": "/c"}],
                 {"a": {"b": [1]}, "c": {"b": [1]}}, id="copy"),
    pytest.param({"n": 1}, [{"op": "test", "path": "/n", "value": 1.0}], {"n": 1},
                 id="test-numbers-by-value"),
    pytest.param({"o": {"a": 1, "b": [1, {"c": None}]}},
                 [{"op": "test", "path": "/o", "value": {"b": [1, {"c": None}], "a": 1}}],
                 {"o": {"a": 1, "b": [1, {"c": None}]}}, id="test-objects-any-key-order"),
    pytest.param({"a": 1}, [{"op": "add", "path": "/a", "value": None}], {"a": None},
                 id="add-null-value"),
    pytest.param({"a": [1, 2]}, [{"op": "move", "from": "/a", "path": "/a"}], {"a": [1, 2]},
                 id="move-onto-itself"),
    pytest.param({"metadata": {"labels": {"app": "web"}}},
                 [{"op": "add", "path": "/metadata/labels/tier", "value": "fe"},
                  {"op": "remove", "path": "/metadata/labels/app"}],
                 {"metadata": {"labels": {"tier": "fe"}}}, id="ops-apply-in-order"),
]


@pytest.mark.parametrize(("target", "ops", "expected"), JSON_PATCH_VECTORS)
def test_json_patch(target: Any, ops: Any, expected: Any) -> None:
    assert json_patch(target, ops) == expected


JSON_PATCH_ERRORS = [
    pytest.param({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}],
                 "JSON patch operation 0 (\"add\" at '/baz/bat'): path '/baz' does not exist",
                 id="add-missing-parent"),
    pytest.param({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}],
                 "test failed: the value is 'qux', not 'bar'", id="test-fails"),
    pytest.param({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}],
                 "test failed: the value is 10, not '10'", id="test-number-is-not-string"),
    pytest.param({"a": 1}, [{"op": "test", "path": "/a", "value": True}],
                 "test failed: the value is 1, not True", id="test-true-is-not-1"),
    pytest.param({"a": 1}, [{"op": "test", "path": "/a", "value": 1},
                            {"op": "remove", "path": "/b"}],
                 "JSON patch operation 1 (\"remove\" at '/b'): path '/b' does not exist",
                 id="remove-missing-names-op-index"),
    pytest.param({"a": {}}, [{"op": "replace", "path": "/a/x", "value": 1}],
                 "path '/a/x' does not exist: no member 'x'", id="replace-missing"),
    pytest.param({"a": [1]}, [{"op": "add", "path": "/a/2", "value": 1}],
                 "index 2 is out of range for the array of length 1", id="add-past-end"),
    pytest.param({"a": [1]}, [{"op": "remove", "path": "/a/-"}],
                 "'-' is not an array index", id="remove-dash"),
    pytest.param({"a": [1]}, [{"op": "add", "path": "/a/01", "value": 1}],
                 "'01' is not an array index", id="leading-zero"),
    pytest.param({"a": [1]}, [{"op": "add", "path": "/a/-1", "value": 1}],
                 "'-1' is not an array index", id="negative-index"),
    pytest.param({"a": {"b": 1}}, [{"op": "move", "from": "/a", "path": "/a/b/c"}],
                 "cannot move '/a' into one of its own children", id="move-into-child"),
    pytest.param({"a": "s"}, [{"op": "add", "path": "/a/b", "value": 1}],
                 "the value at '/a' is a string, not an object or array", id="add-into-scalar"),
    pytest.param({"a": 1}, [{"op": "add", "path": "/b"}], "missing \"value\" member",
                 id="add-without-value"),
    pytest.param({"a": 1}, [{"op": "copy", "path": "/b"}], "missing \"from\" member",
                 id="copy-without-from"),
    pytest.param({"a": 1}, [{"op": "bogus", "path": "/a"}], "unknown op 'bogus'",
                 id="unknown-op"),
    pytest.param({"a": 1}, [{"path": "/a"}], "has no \"op\" member", id="no-op"),
    pytest.param({"a": 1}, [{"op": "remove"}], "missing \"path\" member", id="no-path"),
    pytest.param({"a": 1}, [{"op": "add", "path": "a", "value": 1}],
                 "must be empty or start with \"/\"", id="pointer-without-slash"),
    pytest.param({"a": 1}, [{"op": "add", "path": "/a~2", "value": 1}],
                 "has a '~' not followed by 0 or 1", id="bad-escape"),
    pytest.param({"a": 1}, [{"op": "remove", "path": ""}], "cannot remove the whole document",
                 id="remove-root"),
    pytest.param({"a": 1}, {"op": "add"}, "must be a list of operations, not object",
                 id="not-a-list"),
    pytest.param({"a": 1}, ["add"], "JSON patch operation 0 must be an object, not string",
                 id="op-not-object"),
]


@pytest.mark.parametrize(("target", "ops", "message"), JSON_PATCH_ERRORS)
def test_json_patch_errors(target: Any, ops: Any, message: str) -> None:
    with pytest.raises(PatchError) as caught:
        json_patch(target, ops)
    assert message in str(caught.value)


@pytest.mark.parametrize(("ops", "status"), [
    pytest.param({"op": "add"}, 400, id="not-a-list"),
    pytest.param([{"op": "nope", "path": "/a"}], 400, id="bad-op"),
    pytest.param([{"op": "remove", "path": "/zz"}], 422, id="missing-path"),
    pytest.param([{"op": "test", "path": "/a", "value": 2}], 422, id="failed-test"),
])
def test_json_patch_error_status(ops: Any, status: int) -> None:
    with pytest.raises(PatchError) as caught:
        json_patch({"a": 1}, ops)
    assert caught.value.status == status
    assert isinstance(caught.value, ValueError)


def test_json_patch_is_all_or_nothing_and_leaves_inputs_alone() -> None:
    target = {"spec": {"ports": [{"port": 80}]}}
    ops = [{"op": "add", "path": "/spec/ports/-", "value": {"port": 443}},
           {"op": "copy", "from": "/spec/ports/0", "path": "/spec/first"}]
    before = copy.deepcopy((target, ops))
    result = json_patch(target, ops)
    assert result == {"spec": {"ports": [{"port": 80}, {"port": 443}], "first": {"port": 80}}}
    result["spec"]["ports"][1]["port"] = 1
    result["spec"]["first"]["port"] = 2
    assert (target, ops) == before
    with pytest.raises(PatchError):
        json_patch(target, [*ops, {"op": "test", "path": "/spec/first/port", "value": 0}])
    assert (target, ops) == before


# ---------------------------------------------------------------------------------------------
# Strategic merge patch
# ---------------------------------------------------------------------------------------------


def pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "labels": {"app": "web", "old": "x"}, "finalizers": ["a/f"]},
        "spec": {
            "securityContext": {"runAsUser": 1000, "fsGroup": 2000},
            "volumes": [{"name": "data", "emptyDir": {}},
                        {"name": "creds", "secret": {"secretName": "s"}}],
            "containers": [
                {"name": "app", "image": "app:1", "args": ["--a", "--b"],
                 "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                 "ports": [{"name": "http", "containerPort": 80},
                           {"name": "https", "containerPort": 443}],
                 "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                {"name": "sidecar", "image": "proxy:1"},
            ],
            "tolerations": [{"key": "k", "operator": "Exists"}],
        },
        "status": {"conditions": [{"type": "Ready", "status": "False"},
                                  {"type": "Initialized", "status": "True"}],
                   "podIPs": [{"ip": "10.0.0.5"}]},
    }


def service() -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]},
    }


def node() -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
        "spec": {"podCIDRs": ["10.244.1.0/24"], "taints": [{"key": "a", "effect": "NoSchedule"}]},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.2"},
                                 {"type": "Hostname", "address": "n1"}],
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }


def with_(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of obj with the value at a dotted path (list indexes as numbers) replaced, or
    removed when value is ...  ."""
    out = copy.deepcopy(obj)
    *parents, last = path.split(".")
    where: Any = out
    for part in parents:
        where = where[int(part)] if isinstance(where, list) else where[part]
    key: Any = int(last) if isinstance(where, list) else last
    if value is ...:
        del where[key]
    else:
        where[key] = value
    return out


APP = "spec.containers.0"

SMP_CASES = [
    # -- maps ------------------------------------------------------------------------------
    pytest.param(
        pod(), {"metadata": {"labels": {"old": None, "tier": "fe"}}},
        with_(pod(), "metadata.labels", {"app": "web", "tier": "fe"}),
        id="apply-removes-label-adds-another"),
    pytest.param(
        pod(), {"metadata": {"annotations": {"gone": None}}},
        with_(pod(), "metadata.annotations", {}),
        id="null-for-missing-key-is-dropped"),
    pytest.param(
        pod(), {"spec": {"securityContext": {"$patch": "replace", "runAsNonRoot": True}}},
        with_(pod(), "spec.securityContext", {"runAsNonRoot": True}),
        id="map-patch-replace"),
    pytest.param(
        pod(), {"spec": {"securityContext": {"$patch": "delete"}}},
        with_(pod(), "spec.securityContext", {}),
        id="map-patch-delete-leaves-empty-map-as-kubernetes"),
    # Kubernetes rejects `$patch: merge` in a map; podnet takes it for what it says.
    pytest.param(
        pod(), {"spec": {"securityContext": {"$patch": "merge", "fsGroup": 3}}},
        with_(pod(), "spec.securityContext", {"runAsUser": 1000, "fsGroup": 3}),
        id="map-patch-merge-is-the-default"),
    pytest.param(
        pod(), {"spec": {"dnsConfig": {"$patch": "delete", "nameservers": ["1.1.1.1"]}}}, pod(),
        id="map-patch-delete-on-absent-key-adds-nothing"),
    # Kubernetes drops a `$patch: replace` map where there is nothing to replace; podnet sets it.
    pytest.param(
        pod(), {"spec": {"dnsConfig": {"$patch": "replace", "nameservers": ["1.1.1.1"]}}},
        with_(pod(), "spec.dnsConfig", {"nameservers": ["1.1.1.1"]}),
        id="map-patch-replace-on-absent-key-sets-it"),
    pytest.param(
        pod(), {"spec": {"securityContext": {"$retainKeys": ["fsGroup"], "fsGroup": 3}}},
        with_(pod(), "spec.securityContext", {"fsGroup": 3}),
        id="retain-keys"),
    pytest.param(
        pod(), {"spec": {"securityContext": "none"}},
        with_(pod(), "spec.securityContext", "none"),
        id="type-change-replaces"),
    pytest.param(
        pod(), {"spec": {"nodeSelector": {"zone": "a", "gone": None, "x": {"$patch": "delete"}}}},
        with_(pod(), "spec.nodeSelector", {"zone": "a"}),
        id="new-map-drops-nulls-and-deleted-maps"),
    # -- keyed lists -------------------------------------------------------------------------
    pytest.param(
        pod(),
        {"spec": {"$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
                  "containers": [{"name": "app", "image": "app:2"}]}},
        with_(pod(), f"{APP}.image", "app:2"),
        id="apply-changes-image"),
    pytest.param(
        pod(), {"spec": {"containers": [{"name": "app", "ports": [
            {"$patch": "delete", "containerPort": 80}]}]}},
        with_(pod(), f"{APP}.ports", [{"name": "https", "containerPort": 443}]),
        id="patch-deletes-container-port"),
    pytest.param(
        pod(),
        {"spec": {"$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
                  "containers": [{"$setElementOrder/ports": [{"containerPort": 443}],
                                  "name": "app",
                                  "ports": [{"$patch": "delete", "containerPort": 80}]}]}},
        with_(pod(), f"{APP}.ports", [{"name": "https", "containerPort": 443}]),
        id="apply-deletes-container-port"),
    pytest.param(
        pod(),
        {"spec": {"$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
                  "containers": [{"$setElementOrder/env": [{"name": "A"}, {"name": "C"},
                                                            {"name": "B"}],
                                  "env": [{"name": "C", "value": "3"}], "name": "app"}]}},
        with_(pod(), f"{APP}.env", [{"name": "A", "value": "1"}, {"name": "C", "value": "3"},
                                    {"name": "B", "value": "2"}]),
        id="apply-inserts-env-in-config-order"),
    pytest.param(
        pod(), {"spec": {"containers": [{"name": "app", "env": [
            {"name": "A", "value": None, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
        ]}]}},
        with_(pod(), f"{APP}.env.0",
              {"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}),
        id="env-value-to-valueFrom"),
    pytest.param(
        pod(), {"spec": {"containers": [{"name": "debug", "image": "busybox"}]}},
        with_(pod(), "spec.containers",
              [{"name": "debug", "image": "busybox"}, *pod()["spec"]["containers"]]),
        id="new-element-goes-first-as-kubernetes-orders-it"),
    pytest.param(
        pod(), {"spec": {"containers": [{"name": "sidecar", "image": "proxy:2"},
                                        {"name": "app", "image": "app:2"}]}},
        with_(with_(pod(), "spec.containers.0", {**pod()["spec"]["containers"][1],
                                                 "image": "proxy:2"}),
              "spec.containers.1", {**pod()["spec"]["containers"][0], "image": "app:2"}),
        id="patch-order-wins-over-live-order"),
    pytest.param(
        pod(),
        {"spec": {"$setElementOrder/containers": [{"name": "app"}, {"name": "debug"}],
                  "containers": [{"name": "debug", "image": "busybox"}]}},
        with_(pod(), "spec.containers",
              [pod()["spec"]["containers"][0], {"name": "debug", "image": "busybox"},
               pod()["spec"]["containers"][1]]),
        id="set-element-order-places-new-element"),
    pytest.param(
        pod(), {"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}]}},
        with_(pod(), "spec.containers", pod()["spec"]["containers"][::-1]),
        id="set-element-order-alone-reorders"),
    pytest.param(
        pod(),
        {"spec": {"$setElementOrder/containers": [{"name": "web"}],
                  "containers": [{"name": "web", "image": "web:1"},
                                 {"$patch": "delete", "name": "app"}]}},
        with_(pod(), "spec.containers",
              [{"name": "sidecar", "image": "proxy:1"}, {"name": "web", "image": "web:1"}]),
        id="apply-renames-container-next-to-injected-sidecar"),
    pytest.param(
        pod(), {"spec": {"$setElementOrder/containers": [],
                         "containers": [{"name": "debug", "image": "busybox"}]}},
        with_(pod(), "spec.containers",
              [*pod()["spec"]["containers"], {"name": "debug", "image": "busybox"}]),
        id="empty-set-element-order-sorts-unlisted-new-element-last"),
    pytest.param(
        pod(), {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "o"}]}},
        with_(pod(), "spec.containers", [{"name": "only", "image": "o"}]),
        id="list-patch-replace"),
    pytest.param(
        pod(), {"spec": {"containers": [{"$patch": "delete", "name": "nope"}]}}, pod(),
        id="delete-of-missing-element-is-a-no-op"),
    pytest.param(
        pod(), {"spec": {"initContainers": [{"$patch": "delete", "name": "x"},
                                            {"name": "init", "image": "i", "ports": [
                                                {"$patch": "delete", "containerPort": 1}]}]}},
        with_(pod(), "spec.initContainers", [{"name": "init", "image": "i", "ports": []}]),
        id="new-list-drops-directive-elements"),
    pytest.param(
        pod(), {"spec": {"containers": []}}, pod(),
        id="empty-patch-list-changes-nothing"),
    pytest.param(
        pod(),
        {"spec": {"$setElementOrder/volumes": [{"name": "data"}, {"name": "creds"}],
                  "volumes": [{"$retainKeys": ["configMap", "name"], "configMap": {"name": "cm"},
                               "emptyDir": None, "name": "data"}]}},
        with_(pod(), "spec.volumes.0", {"name": "data", "configMap": {"name": "cm"}}),
        id="apply-changes-volume-source-with-retain-keys"),
    pytest.param(
        pod(),
        {"spec": {"$setElementOrder/volumes": [{"name": "creds"}],
                  "volumes": [{"$patch": "delete", "name": "data"}]}},
        with_(pod(), "spec.volumes", [{"name": "creds", "secret": {"secretName": "s"}}]),
        id="apply-deletes-volume"),
    pytest.param(
        pod(), {"status": {"conditions": [{"type": "Ready", "status": "True"},
                                          {"type": "PodScheduled", "status": "True"}]}},
        with_(pod(), "status.conditions",
              [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"},
               {"type": "Initialized", "status": "True"}]),
        id="status-conditions-merge-by-type"),
    pytest.param(
        pod(), {"status": {"podIPs": [{"ip": "fd00::5"}]}},
        with_(pod(), "status.podIPs", [{"ip": "fd00::5"}, {"ip": "10.0.0.5"}]),
        id="pod-ips-merge-by-ip"),
    pytest.param(
        pod(), {"metadata": {"ownerReferences": [
            {"apiVersion": "v1", "kind": "Node", "name": "n", "uid": "u1"}]}},
        with_(pod(), "metadata.ownerReferences",
              [{"apiVersion": "v1", "kind": "Node", "name": "n", "uid": "u1"}]),
        id="owner-references-new"),
    # -- atomic lists --------------------------------------------------------------------------
    pytest.param(
        pod(), {"spec": {"tolerations": [{"key": "other", "operator": "Exists"}]}},
        with_(pod(), "spec.tolerations", [{"key": "other", "operator": "Exists"}]),
        id="tolerations-are-atomic"),
    pytest.param(
        pod(), {"spec": {"containers": [{"name": "app", "args": ["--c"]}]}},
        with_(pod(), f"{APP}.args", ["--c"]),
        id="args-are-atomic"),
    pytest.param(
        pod(),
        {"spec": {"containers": [{"name": "app", "$deleteFromPrimitiveList/args": ["--a"]}]}},
        with_(pod(), f"{APP}.args", ["--b"]),
        id="delete-from-atomic-primitive-list"),
    # -- primitive lists that merge as sets ----------------------------------------------------
    pytest.param(
        pod(), {"metadata": {"finalizers": ["b/f"]}},
        with_(pod(), "metadata.finalizers", ["b/f", "a/f"]),
        id="finalizers-merge"),
    pytest.param(
        pod(), {"metadata": {"finalizers": ["a/f"]}}, pod(),
        id="finalizers-dedupe"),
    pytest.param(
        pod(), {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a/f", "zz"]}},
        with_(pod(), "metadata.finalizers", []),
        id="delete-from-primitive-list"),
    pytest.param(
        pod(),
        {"metadata": {"$setElementOrder/finalizers": ["b/f", "a/f"], "finalizers": ["b/f"]}},
        with_(pod(), "metadata.finalizers", ["b/f", "a/f"]),
        id="apply-adds-finalizer"),
    pytest.param(
        with_(pod(), "metadata.finalizers", ["a", "b", "c"]),
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"],
                      "$setElementOrder/finalizers": ["c", "a"]}},
        with_(pod(), "metadata.finalizers", ["c", "a"]),
        id="apply-removes-finalizer-and-reorders"),
    pytest.param(
        with_(pod(), "metadata.finalizers", ["a", "b", "c"]),
        {"metadata": {"finalizers": ["b", "z"]}},
        with_(pod(), "metadata.finalizers", ["a", "b", "z", "c"]),
        id="finalizers-interleave"),
    pytest.param(
        node(), {"spec": {"podCIDRs": ["fd00:1::/64"]}},
        with_(node(), "spec.podCIDRs", ["fd00:1::/64", "10.244.1.0/24"]),
        id="node-pod-cidrs-merge"),
    # -- other kinds ---------------------------------------------------------------------------
    pytest.param(
        service(),
        {"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
         "spec": {"$setElementOrder/ports": [{"port": 80}, {"port": 443}],
                  "ports": [{"name": "https", "port": 443, "targetPort": 8443}]}},
        with_(with_(service(), "metadata.annotations",
                    {"kubectl.kubernetes.io/last-applied-configuration": "{}"}),
              "spec.ports", [service()["spec"]["ports"][0],
                             {"name": "https", "port": 443, "targetPort": 8443}]),
        id="apply-adds-service-port"),
    pytest.param(
        service(),
        {"spec": {"$setElementOrder/ports": [{"port": 443}],
                  "ports": [{"name": "https", "port": 443}, {"$patch": "delete", "port": 80}]}},
        with_(service(), "spec.ports", [{"name": "https", "port": 443}]),
        id="apply-replaces-service-port"),
    pytest.param(
        service(), {"spec": {"ports": [{"port": 80, "protocol": "UDP", "name": "dns"}]}},
        with_(service(), "spec.ports",
              [{"name": "dns", "port": 80, "targetPort": 8080, "protocol": "UDP"}]),
        id="service-ports-merge-by-port-only"),
    pytest.param(
        service(), {"spec": {"selector": {"$patch": "replace", "app": "api"}}},
        with_(service(), "spec.selector", {"app": "api"}),
        id="service-selector-replace"),
    pytest.param(
        node(), {"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]},
                 "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.9"}]}},
        with_(with_(node(), "spec.taints", [{"key": "b", "effect": "NoExecute"}]),
              "status.addresses.0", {"type": "InternalIP", "address": "192.168.0.9"}),
        id="node-taints-atomic-addresses-by-type"),
    pytest.param(
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "n"},
         "spec": {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}},
        {"spec": {"ingress": [{"ports": [{"port": 80}]}]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "n"},
         "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]}},
        id="network-policy-lists-atomic"),
    pytest.param(
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "e"},
         "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}],
         "ports": [{"port": 80}]},
        {"endpoints": [{"addresses": ["10.0.0.2"]}]},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "e"},
         "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.2"]}],
         "ports": [{"port": 80}]},
        id="endpointslice-lists-atomic"),
]


@pytest.mark.parametrize(("target", "patch", "expected"), SMP_CASES)
def test_strategic_merge_patch(target: dict[str, Any], patch: dict[str, Any],
                               expected: dict[str, Any]) -> None:
    result = strategic_merge_patch(target, patch, target["apiVersion"], target["kind"])
    assert result == expected
    # list order matters and dict equality ignores it only for maps: compare the JSON too
    assert json.dumps(result, sort_keys=True) == json.dumps(expected, sort_keys=True)


def test_strategic_merge_patch_leaves_inputs_alone() -> None:
    target = pod()
    patch = {"metadata": {"labels": {"old": None}, "$deleteFromPrimitiveList/finalizers": ["a/f"]},
             "spec": {"$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
                      "containers": [{"name": "app", "ports": [
                          {"$patch": "delete", "containerPort": 80},
                          {"containerPort": 8080, "name": "alt"}]}],
                      "volumes": [{"$retainKeys": ["name", "hostPath"], "name": "data",
                                   "hostPath": {"path": "/x"}, "emptyDir": None}],
                      "securityContext": {"$patch": "replace", "runAsUser": 1},
                      "newThing": {"a": [{"b": None}]}}}
    before = copy.deepcopy((target, patch))
    result = strategic_merge_patch(target, patch, "v1", "Pod")
    assert (target, patch) == before
    assert result["spec"]["containers"][0]["ports"] == [
        {"containerPort": 8080, "name": "alt"}, {"name": "https", "containerPort": 443}]
    assert result["spec"]["newThing"] == {"a": [{}]}
    result["spec"]["containers"][0]["ports"][0]["containerPort"] = 1
    result["spec"]["newThing"]["a"].append(1)
    result["spec"]["securityContext"]["runAsUser"] = 2
    result["spec"]["volumes"][0]["hostPath"]["path"] = "/y"
    assert (target, patch) == before


def test_unknown_fields_behave_as_plain_maps_and_atomic_lists() -> None:
    target = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
              "spec": {"extra": {"list": [{"name": "a", "v": 1}], "m": {"x": 1}}}}
    patch = {"spec": {"extra": {"list": [{"name": "b"}], "m": {"y": 2}}}}
    assert strategic_merge_patch(target, patch, "v1", "Pod")["spec"] == {
        "extra": {"list": [{"name": "b"}], "m": {"x": 1, "y": 2}}}


def test_unknown_kind_still_merges_object_meta() -> None:
    target = {"apiVersion": "example.com/v1", "kind": "Widget",
              "metadata": {"name": "w", "finalizers": ["a"]}, "spec": {"items": [{"name": "a"}]}}
    patch = {"metadata": {"finalizers": ["b"]}, "spec": {"items": [{"name": "b"}]}}
    result = strategic_merge_patch(target, patch, "example.com/v1", "Widget")
    assert result["metadata"]["finalizers"] == ["b", "a"]
    assert result["spec"]["items"] == [{"name": "b"}]


def test_patch_delete_at_top_level_empties_the_object() -> None:
    assert strategic_merge_patch(pod(), {"$patch": "delete"}, "v1", "Pod") == {}


SMP_ERRORS = [
    pytest.param({"spec": {"containers": [{"image": "x"}]}},
                 "spec.containers[0]: list element {'image': 'x'} has no merge key 'name'", 422,
                 id="element-without-merge-key"),
    pytest.param({"spec": {"containers": [{"$patch": "delete"}]}},
                 "spec.containers[0]: $patch: delete needs the merge key 'name'", 422,
                 id="delete-without-merge-key"),
    pytest.param({"spec": {"containers": [{"name": "app", "ports": [{"$patch": "merge"}]}]}},
                 "spec.containers[name='app'].ports[0]: $patch: merge is not supported as a "
                 "list element", 422, id="merge-directive-in-list"),
    pytest.param({"spec": {"containers": [{"$patch": "bogus", "name": "app"}]}},
                 "spec.containers[0]: unknown $patch directive 'bogus' in a list", 422,
                 id="bogus-list-directive"),
    pytest.param({"spec": {"securityContext": {"$patch": "bogus"}}},
                 "spec.securityContext: unknown $patch directive 'bogus'; expected replace, "
                 "delete or merge", 422, id="bogus-map-directive"),
    pytest.param({"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
                           "containers": [{"name": "app"}, {"name": "sidecar"}]}},
                 "spec.$setElementOrder/containers: the patch list", 422,
                 id="patch-list-against-set-element-order"),
    pytest.param({"spec": {"$setElementOrder/containers": [{"image": "x"}]}},
                 "spec.$setElementOrder/containers: list element {'image': 'x'} has no merge key "
                 "'name'", 422, id="set-element-order-without-merge-key"),
    pytest.param({"spec": {"$setElementOrder/containers": "app"}},
                 "spec.$setElementOrder/containers: must be a list, not string", 400,
                 id="set-element-order-not-a-list"),
    pytest.param({"metadata": {"$retainKeys": ["name"], "labels": {"a": "b"}}},
                 "metadata: field 'labels' is set by the patch but not listed in $retainKeys",
                 400, id="retain-keys-misses-patched-field"),
    pytest.param({"metadata": {"$retainKeys": "name"}},
                 "metadata: $retainKeys must be a list of field names, not string", 400,
                 id="retain-keys-not-a-list"),
    pytest.param({"metadata": {"$deleteFromPrimitiveList/finalizers": "a/f"}},
                 "metadata.$deleteFromPrimitiveList/finalizers: must be a list of values to "
                 "delete, not string", 400, id="delete-list-not-a-list"),
    pytest.param({"metadata": {"finalizers": [1]}},
                 "metadata.finalizers: list elements are not all of the same type (number, "
                 "string)", 422, id="mixed-element-types"),
    pytest.param({"metadata": {"finalizers": [["x"]]}},
                 "metadata.finalizers: lists of lists cannot be merged", 422,
                 id="list-of-lists"),
]


@pytest.mark.parametrize(("patch", "message", "status"), SMP_ERRORS)
def test_strategic_merge_patch_errors(patch: dict[str, Any], message: str, status: int) -> None:
    with pytest.raises(PatchError) as caught:
        strategic_merge_patch(pod(), patch, "v1", "Pod")
    assert message in str(caught.value)
    assert caught.value.status == status


def test_strategic_merge_patch_rejects_non_object_patch() -> None:
    with pytest.raises(PatchError) as caught:
        strategic_merge_patch(pod(), [{"op": "add"}], "v1", "Pod")  # type: ignore[arg-type]
    assert caught.value.status == 400
    assert "must be a JSON object, not array" in str(caught.value)


# ---------------------------------------------------------------------------------------------
# The merge-key table
# ---------------------------------------------------------------------------------------------

MERGE_RULES = [
    pytest.param("v1", "Pod", ("metadata", "finalizers"), ("merge", "")),
    pytest.param("v1", "Pod", ("metadata", "ownerReferences"), ("merge", "uid")),
    pytest.param("v1", "Pod", ("spec", "containers"), ("merge", "name")),
    pytest.param("v1", "Pod", ("spec", "initContainers"), ("merge", "name")),
    pytest.param("v1", "Pod", ("spec", "ephemeralContainers"), ("merge", "name")),
    pytest.param("v1", "Pod", ("spec", "volumes"), ("merge,retainKeys", "name")),
    pytest.param("v1", "Pod", ("spec", "imagePullSecrets"), ("merge", "name")),
    pytest.param("v1", "Pod", ("spec", "hostAliases"), ("merge", "ip")),
    pytest.param("v1", "Pod", ("spec", "topologySpreadConstraints"), ("merge", "topologyKey")),
    pytest.param("v1", "Pod", ("spec", "containers", "*", "ports"), ("merge", "containerPort")),
    pytest.param("v1", "Pod", ("spec", "initContainers", "*", "env"), ("merge", "name")),
    pytest.param("v1", "Pod", ("spec", "ephemeralContainers", "*", "volumeMounts"),
                 ("merge", "mountPath")),
    pytest.param("v1", "Pod", ("spec", "containers", "*", "volumeDevices"),
                 ("merge", "devicePath")),
    pytest.param("v1", "Pod", ("status", "conditions"), ("merge", "type")),
    pytest.param("v1", "Pod", ("status", "podIPs"), ("merge", "ip")),
    pytest.param("v1", "Pod", ("status", "hostIPs"), ("merge", "ip")),
    pytest.param("v1", "Pod", ("spec", "tolerations"), None),
    pytest.param("v1", "Pod", ("spec", "containers", "*", "args"), None),
    pytest.param("v1", "Pod", ("status", "containerStatuses"), None),
    pytest.param("v1", "Service", ("spec", "ports"), ("merge", "port")),
    pytest.param("v1", "Service", ("status", "conditions"), ("merge", "type")),
    pytest.param("v1", "Node", ("spec", "podCIDRs"), ("merge", "")),
    pytest.param("v1", "Node", ("spec", "taints"), None),
    pytest.param("v1", "Node", ("status", "conditions"), ("merge", "type")),
    pytest.param("v1", "Node", ("status", "addresses"), ("merge", "type")),
    pytest.param("v1", "Namespace", ("status", "conditions"), ("merge", "type")),
    pytest.param("v1", "Namespace", ("spec", "finalizers"), None),
    pytest.param("networking.k8s.io/v1", "Ingress", ("spec", "rules"), None),
    pytest.param("networking.k8s.io/v1", "NetworkPolicy", ("spec", "ingress"), None),
    pytest.param("discovery.k8s.io/v1", "EndpointSlice", ("endpoints",), None),
    pytest.param("discovery.k8s.io/v1", "EndpointSlice", ("metadata", "ownerReferences"),
                 ("merge", "uid")),
    pytest.param("example.com/v1", "Widget", ("metadata", "finalizers"), ("merge", "")),
    pytest.param("example.com/v1", "Widget", ("spec", "containers"), None),
]


@pytest.mark.parametrize(("api_version", "kind", "path", "expected"), MERGE_RULES)
def test_merge_strategy(api_version: str, kind: str, path: tuple[str, ...],
                        expected: tuple[str, str] | None) -> None:
    assert merge_strategy(api_version, kind, path) == expected


def test_every_served_kind_has_a_merge_key_table() -> None:
    assert {(r.api_version, r.kind) for r in RESOURCES} == set(MERGE_KEYS)


@pytest.mark.parametrize("kind", [
    ("v1", "Secret"), ("v1", "Event"), ("discovery.k8s.io/v1", "EndpointSlice"),
    ("networking.k8s.io/v1", "Ingress"), ("networking.k8s.io/v1", "IngressClass"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
])
def test_kinds_without_merge_keys_outside_metadata(kind: tuple[str, str]) -> None:
    assert sorted(MERGE_KEYS[kind]) == [("metadata", "finalizers"),
                                        ("metadata", "ownerReferences")]
