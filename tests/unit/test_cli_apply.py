"""Client-side apply: reading manifests, the three-way merge patch, and the apply loop
against an in-memory fake of the API."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, cast

import pytest

from podnet.api.resources import Resource, lookup
from podnet.cli import apply
from podnet.cli.apply import LAST_APPLIED, ManifestError, Target, three_way_merge_patch
from podnet.client.http import ApiError, Client


def res(name: str) -> Resource:
    r = lookup(name)
    assert r is not None
    return r


# -- the three-way merge patch ----------------------------------------------------------------


@pytest.mark.parametrize("original,modified,current,patch", [
    pytest.param({}, {"a": 1}, {"a": 1}, {}, id="nothing-to-do"),
    pytest.param({}, {"a": 1}, {}, {"a": 1}, id="add"),
    pytest.param({"a": 1}, {"a": 2}, {"a": 1}, {"a": 2}, id="change"),
    pytest.param({"a": 1, "b": 2}, {"a": 1}, {"a": 1, "b": 2}, {"b": None},
                 id="removed-from-manifest-is-deleted"),
    pytest.param({"a": 1, "b": 2}, {"a": 1}, {"a": 1}, {},
                 id="removed-and-already-gone"),
    pytest.param({}, {"a": 1}, {"a": 1, "s": "server"}, {}, id="server-fields-kept"),
    pytest.param({"a": 1}, {"a": 1}, {"a": 5}, {"a": 1}, id="live-edit-is-reverted"),
    pytest.param({"m": {"x": 1, "y": 2}}, {"m": {"x": 1}}, {"m": {"x": 1, "y": 2, "z": 3}},
                 {"m": {"y": None}}, id="nested-deletion"),
    pytest.param({"m": 1}, {"m": {"x": 1}}, {"m": 1}, {"m": {"x": 1}}, id="scalar-to-map"),
    pytest.param({"m": {"x": 1}}, {"m": 1}, {"m": {"x": 1}}, {"m": 1}, id="map-to-scalar"),
    pytest.param({"l": [{"p": 80}]}, {"l": [{"p": 80}]}, {"l": [{"p": 80, "proto": "TCP"}]},
                 {}, id="list-with-server-defaults-is-unchanged"),
    pytest.param({"l": [{"p": 80}]}, {"l": [{"p": 81}]}, {"l": [{"p": 80, "proto": "TCP"}]},
                 {"l": [{"p": 81}]}, id="changed-list-is-replaced"),
    pytest.param({"l": [{"p": 80, "n": "a"}]}, {"l": [{"p": 80}]},
                 {"l": [{"p": 80, "n": "a"}]}, {"l": [{"p": 80}]},
                 id="field-dropped-from-list-element"),
    pytest.param({}, {"l": [1]}, {"l": [1, 2]}, {"l": [1]}, id="list-never-applied"),
    pytest.param({"b": True}, {"b": True}, {"b": 1}, {"b": True}, id="bool-is-not-int"),
    pytest.param({}, {"f": 1}, {"f": 1.0}, {}, id="int-equals-float"),
])
def test_three_way_merge_patch(original: dict[str, Any], modified: dict[str, Any],
                               current: dict[str, Any], patch: dict[str, Any]) -> None:
    assert three_way_merge_patch(original, modified, current) == patch


def test_last_applied_value_is_kubectls() -> None:
    doc = {"kind": "Service", "apiVersion": "v1",
           "metadata": {"name": "web", "namespace": "demo",
                        "annotations": {LAST_APPLIED: "old"}},
           "spec": {"ports": [{"port": 80}]}}
    assert apply.last_applied_value(doc) == (
        '{"apiVersion":"v1","kind":"Service","metadata":{"annotations":{},"name":"web",'
        '"namespace":"demo"},"spec":{"ports":[{"port":80}]}}\n')
    assert doc["metadata"]["annotations"] == {LAST_APPLIED: "old"}  # not changed in place


def test_with_last_applied_keeps_other_annotations() -> None:
    doc = {"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": "n", "annotations": {"a": "b"}}}
    out = apply.with_last_applied(doc)
    assert out["metadata"]["annotations"] == {
        "a": "b",
        LAST_APPLIED: '{"apiVersion":"v1","kind":"Namespace","metadata":{"annotations":'
                      '{"a":"b"},"name":"n"}}\n',
    }
    assert apply.last_applied_of(out) == doc


@pytest.mark.parametrize("live", [
    pytest.param({}, id="no-metadata"),
    pytest.param({"metadata": {"annotations": {LAST_APPLIED: "{nope"}}}, id="bad-json"),
    pytest.param({"metadata": {"annotations": {LAST_APPLIED: "[1]"}}}, id="not-an-object"),
])
def test_last_applied_of_without_a_usable_annotation(live: dict[str, Any]) -> None:
    assert apply.last_applied_of(live) == {}


# -- documents --------------------------------------------------------------------------------


def test_parse_documents() -> None:
    text = ("---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\n"
            "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, "
            "metadata: {name: b}}\n- {apiVersion: v1, kind: Namespace, metadata: {name: c}}\n"
            "---\n- not\n- an object\n")
    ms = apply.parse_documents(text, "f.yaml")
    assert [m.doc["metadata"]["name"] if m.doc else None for m in ms] == ["a", "b", "c", None]
    assert ms[3].error == ('error: error validating "f.yaml": error validating data: '
                           "not an object")


def test_parse_documents_bad_yaml() -> None:
    (m,) = apply.parse_documents("a: [\n", "f.yaml")
    assert m.doc is None
    assert m.error is not None
    assert m.error.startswith("error: error parsing f.yaml: ")


def test_load_manifests_from_a_directory(tmp_path: Path) -> None:
    (tmp_path / "b.yml").write_text("kind: B\n")
    (tmp_path / "a.yaml").write_text("kind: A1\n---\nkind: A2\n")
    (tmp_path / "c.json").write_text('{"kind": "C"}')
    (tmp_path / "notes.txt").write_text("kind: X\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.yaml").write_text("kind: D\n")
    ms = apply.load_manifests([str(tmp_path)])
    assert [(Path(m.source).name, m.doc) for m in ms] == [
        ("a.yaml", {"kind": "A1"}), ("a.yaml", {"kind": "A2"}), ("b.yml", {"kind": "B"}),
        ("c.json", {"kind": "C"})]


def test_load_manifests_from_stdin_and_a_missing_path(tmp_path: Path) -> None:
    ms = apply.load_manifests(["-", str(tmp_path / "nope.yaml")], io.StringIO("kind: S\n"))
    assert (ms[0].source, ms[0].doc) == ("STDIN", {"kind": "S"})
    assert ms[1].error == f'error: the path "{tmp_path / "nope.yaml"}" does not exist'


SVC = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}}


@pytest.mark.parametrize("doc,ns,explicit,target", [
    pytest.param(SVC, "default", False, ("services", "default", "web"), id="default-namespace"),
    pytest.param({**SVC, "metadata": {"name": "web", "namespace": "demo"}}, "default", False,
                 ("services", "demo", "web"), id="namespace-from-document"),
    pytest.param(SVC, "other", True, ("services", "other", "web"), id="namespace-from-flag"),
    pytest.param({"apiVersion": "v1", "kind": "Namespace",
                  "metadata": {"name": "n", "namespace": "x"}}, "default", False,
                 ("namespaces", None, "n"), id="cluster-scoped"),
    pytest.param({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                  "metadata": {"name": "i"}}, "default", False,
                 ("ingresses", "default", "i"), id="group"),
])
def test_doc_target(doc: dict[str, Any], ns: str, explicit: bool,
                    target: tuple[str, str | None, str]) -> None:
    t = apply.doc_target(doc, "f.yaml", ns, explicit)
    assert (t.res.plural, t.namespace, t.name) == target


@pytest.mark.parametrize("doc,message", [
    pytest.param({"metadata": {"name": "x"}},
                 'error: error validating "f.yaml": error validating data: '
                 "[apiVersion not set, kind not set]", id="no-type"),
    pytest.param({"apiVersion": "v1", "kind": "Service", "metadata": {}},
                 'error: error validating "f.yaml": error validating data: metadata.name '
                 "not set", id="no-name"),
    pytest.param({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}},
                 'error: resource mapping not found for name: "d" namespace: "" from '
                 '"f.yaml": no matches for kind "Deployment" in version "apps/v1"\n'
                 "ensure CRDs are installed first", id="unknown-kind"),
    pytest.param({**SVC, "metadata": {"name": "web", "namespace": "a"}},
                 'error: the namespace from the provided object "a" does not match the '
                 "namespace \"b\". You must pass '--namespace=a' to perform this operation.",
                 id="namespace-mismatch"),
])
def test_doc_target_errors(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ManifestError) as e:
        apply.doc_target(doc, "f.yaml", "b", True)
    assert str(e.value) == message


def test_normalized_sets_or_drops_the_namespace() -> None:
    t = Target(res("svc"), "demo", "web")
    assert apply.normalized(SVC, t)["metadata"] == {"name": "web", "namespace": "demo"}
    assert "metadata" in SVC and SVC["metadata"] == {"name": "web"}
    ns_doc = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n",
                                                                    "namespace": "x"}}
    assert apply.normalized(ns_doc, Target(res("ns"), None, "n"))["metadata"] == {"name": "n"}


# -- the apply loop ---------------------------------------------------------------------------


class FakeClient:
    """Objects in a dict; the server 'defaults' a protocol into service ports."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        self.calls: list[str] = []

    def _not_found(self, r: Resource, name: str) -> ApiError:
        return ApiError(404, "NotFound", f'{r.plural} "{name}" not found')

    def get(self, r: Resource, ns: str | None, name: str) -> dict[str, Any]:
        self.calls.append(f"GET {name}")
        try:
            return json.loads(json.dumps(self.objects[(r.plural, ns, name)]))
        except KeyError:
            raise self._not_found(r, name) from None

    def create(self, r: Resource, ns: str | None, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(f"POST {body['metadata']['name']}")
        if body.get("spec", {}).get("bad"):
            raise ApiError(422, "Invalid", f'Service "{body["metadata"]["name"]}" is invalid: '
                                           "spec.bad: Forbidden: no")
        obj = json.loads(json.dumps(body))
        for p in obj.get("spec", {}).get("ports", []):
            p.setdefault("protocol", "TCP")
        obj["metadata"]["uid"] = "u1"
        self.objects[(r.plural, ns, body["metadata"]["name"])] = obj
        return obj

    def patch(self, r: Resource, ns: str | None, name: str, patch: dict[str, Any],
              patch_type: str) -> dict[str, Any]:
        assert patch_type == "merge"
        self.calls.append(f"PATCH {name} {json.dumps(patch, sort_keys=True)}")
        obj = self.objects[(r.plural, ns, name)]
        merge(obj, patch)
        return obj


def merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            merge(target[k], v)
        else:
            target[k] = v


def run(client: FakeClient, text: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    manifests = apply.parse_documents(text, "app.yaml")
    rc = apply.apply_manifests(cast(Client, client), manifests, "default", False, out, err)
    return rc, out.getvalue(), err.getvalue()


APP = """
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo, labels: {a: b}}
spec:
  selector: {app: web}
  ports: [{port: 80}]
"""


def test_apply_creates_then_is_unchanged_then_configures() -> None:
    c = FakeClient()
    assert run(c, APP) == (0, "namespace/demo created\nservice/web created\n", "")
    svc = c.objects[("services", "demo", "web")]
    assert apply.last_applied_of(svc) == {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"annotations": {}, "labels": {"a": "b"}, "name": "web",
                     "namespace": "demo"},
        "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}}}

    c.calls.clear()
    assert run(c, APP) == (0, "namespace/demo unchanged\nservice/web unchanged\n", "")
    assert c.calls == ["GET demo", "GET web"]

    changed = APP.replace("labels: {a: b}", "labels: {c: d}").replace("  selector: {app: web}\n",
                                                                      "")
    c.calls.clear()
    assert run(c, changed) == (0, "namespace/demo unchanged\nservice/web configured\n", "")
    patch = json.loads(c.calls[-1].split(" ", 2)[2])
    assert patch["metadata"]["labels"] == {"a": None, "c": "d"}
    assert patch["spec"] == {"selector": None}
    assert set(patch["metadata"]["annotations"]) == {LAST_APPLIED}
    assert "selector" not in svc["spec"]
    assert svc["spec"]["ports"] == [{"port": 80, "protocol": "TCP"}]
    assert run(c, changed)[1] == "namespace/demo unchanged\nservice/web unchanged\n"


def test_a_bad_document_does_not_stop_the_others() -> None:
    text = APP + """---
apiVersion: v1
kind: Service
metadata: {name: broken, namespace: demo}
spec: {bad: true}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
---
apiVersion: v1
kind: Service
metadata: {name: last, namespace: demo}
"""
    rc, out, err = run(FakeClient(), text)
    assert rc == 1
    assert out == ("namespace/demo created\nservice/web created\nservice/last created\n")
    assert err == (
        'Error from server (Invalid): error when creating "app.yaml": Service "broken" is '
        "invalid: spec.bad: Forbidden: no\n"
        'error: resource mapping not found for name: "d" namespace: "" from "app.yaml": no '
        'matches for kind "Deployment" in version "apps/v1"\nensure CRDs are installed first\n')


def test_objects_created_without_apply_get_the_annotation() -> None:
    c = FakeClient()
    c.objects[("namespaces", None, "demo")] = {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo", "uid": "u"}}
    rc, out, _ = run(c, APP.split("---")[0])
    assert (rc, out) == (0, "namespace/demo configured\n")
    assert LAST_APPLIED in c.objects[("namespaces", None, "demo")]["metadata"]["annotations"]
