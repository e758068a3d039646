"""Label and field selectors: parsing, canonical strings, matching, errors and field sets."""

from __future__ import annotations

from typing import Any

import pytest

from podnet.api.selectors import (
    FieldRequirement,
    FieldSelector,
    LabelSelector,
    Requirement,
    SelectorError,
    check_field_selector,
    convert_field_selector,
    field_set,
    label_selector_from_api,
    parse_field_selector,
    parse_label_selector,
    selector_from_map,
)

QNAME_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must "
             "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
             "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', "
             "'_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue', "
             " or 'my_value',  or '12345', regex used for validation is "
             "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
OPS = "in, notin, =, ==, !=, gt, lt"


# --- label selector strings ------------------------------------------------------------------

@pytest.mark.parametrize(("text", "canonical"), [
    pytest.param("", "", id="empty"),
    pytest.param("a=b", "a=b", id="equals"),
    pytest.param("a==b", "a==b", id="double-equals"),
    pytest.param("a!=b", "a!=b", id="not-equals"),
    pytest.param("a in (y,x)", "a in (x,y)", id="in-sorted"),
    pytest.param("a notin (x)", "a notin (x)", id="notin"),
    pytest.param("a", "a", id="exists"),
    pytest.param("!a", "!a", id="does-not-exist"),
    pytest.param("  b = 1 ,  a  ", "a,b=1", id="whitespace-and-sorted-by-key"),
    pytest.param("x in (foo,,baz),y,z notin ()", "x in (,baz,foo),y,z notin ()",
                 id="empty-values"),
    pytest.param("x in (a,a,b)", "x in (a,b)", id="dedup"),
    pytest.param("x in (,a)", "x in (,a)", id="leading-empty"),
    pytest.param("x in (a,)", "x in (,a)", id="trailing-empty"),
    pytest.param("a=", "a=", id="empty-exact-value"),
    pytest.param("in in (in,notin)", "in in (in,notin)", id="keywords-as-values"),
    pytest.param("example.com/app=web", "example.com/app=web", id="prefixed-key"),
    pytest.param("a>5,b<3", "a>5,b<3", id="gt-lt"),
    pytest.param("a\tin\n(x)", "a in (x)", id="tabs-newlines"),
])
def test_parse_label_selector_canonical(text: str, canonical: str) -> None:
    assert str(parse_label_selector(text)) == canonical


def test_parse_label_selector_requirements() -> None:
    sel = parse_label_selector("tier notin (b,a),app=web,!canary")
    assert sel.requirements == (
        Requirement("app", "=", ("web",)),
        Requirement("canary", "!", ()),
        Requirement("tier", "notin", ("a", "b")),
    )
    assert not sel.empty
    assert parse_label_selector("").empty
    assert parse_label_selector(" ").empty


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("a in (b", "unable to parse requirement: found '', expected: ',' or ')'",
                 id="unclosed"),
    pytest.param("a b", f"unable to parse requirement: found 'b', expected: {OPS}",
                 id="missing-operator"),
    pytest.param("a=b=c", "found '=', expected: ',' or 'end of string'", id="double-assign"),
    pytest.param("a=b c", "found 'c', expected: ',' or 'end of string'", id="junk-after"),
    pytest.param("a,", "found '', expected: identifier after ','", id="trailing-comma"),
    pytest.param(",a", "found ',', expected: !, identifier, or 'end of string'",
                 id="leading-comma"),
    pytest.param("(", "found '(', expected: !, identifier, or 'end of string'", id="paren"),
    pytest.param("a notin", "unable to parse requirement: found '' expected: '('",
                 id="notin-no-set"),
    pytest.param("a in (b c)", "unable to parse requirement: found 'c', expected: ',' or ')'",
                 id="space-in-set"),
    pytest.param("!a=b", "found '=', expected: ',' or 'end of string'", id="negated-with-value"),
    pytest.param("!", "unable to parse requirement: found '', expected: identifier",
                 id="bang-alone"),
    pytest.param("a=(", "unable to parse requirement: found '(', expected: identifier",
                 id="paren-value"),
    pytest.param("app:monolith",
                 f'unable to parse requirement: <nil>: Invalid value: "app:monolith": {QNAME_MSG}',
                 id="bad-key"),
    pytest.param("a=b@",
                 f'unable to parse requirement: values[0][a]: Invalid value: "b@": {VALUE_MSG}',
                 id="bad-value"),
    pytest.param("a in (x@,ok,y@)",
                 "unable to parse requirement: ["
                 f'values[1][a]: Invalid value: "x@": {VALUE_MSG}, '
                 f'values[2][a]: Invalid value: "y@": {VALUE_MSG}]',
                 id="bad-values-aggregated-sorted-index"),
    pytest.param("a>b", 'unable to parse requirement: values[0]: Invalid value: "b": '
                 "for 'Gt', 'Lt' operators, the value must be an integer", id="gt-not-int"),
])
def test_parse_label_selector_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_label_selector(text)
    assert str(info.value) == message


def test_selector_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unable to parse requirement"):
        parse_label_selector("a in (")


LABELS = {"app": "web", "tier": "front", "n": "5"}


@pytest.mark.parametrize(("text", "labels", "expected"), [
    pytest.param("", {}, True, id="empty-matches-nothing-labelled"),
    pytest.param("", LABELS, True, id="empty-matches-all"),
    pytest.param("app=web", LABELS, True, id="eq"),
    pytest.param("app==web", LABELS, True, id="eqeq"),
    pytest.param("app=db", LABELS, False, id="eq-other"),
    pytest.param("app=web", {}, False, id="eq-missing"),
    pytest.param("app!=db", LABELS, True, id="ne"),
    pytest.param("app!=web", LABELS, False, id="ne-same"),
    pytest.param("app!=web", {}, True, id="ne-missing"),
    pytest.param("tier in (back,front)", LABELS, True, id="in"),
    pytest.param("tier in (back)", LABELS, False, id="in-other"),
    pytest.param("tier in (front)", {}, False, id="in-missing"),
    pytest.param("tier notin (back)", LABELS, True, id="notin"),
    pytest.param("tier notin (front)", LABELS, False, id="notin-same"),
    pytest.param("tier notin (front)", {}, True, id="notin-missing"),
    pytest.param("app", LABELS, True, id="exists"),
    pytest.param("db", LABELS, False, id="exists-missing"),
    pytest.param("!db", LABELS, True, id="not-exists"),
    pytest.param("!app", LABELS, False, id="not-exists-present"),
    pytest.param("app=", {"app": ""}, True, id="empty-value"),
    pytest.param("app=", LABELS, False, id="empty-value-other"),
    pytest.param("app=web,tier=back", LABELS, False, id="and"),
    pytest.param("app=web,tier=front", LABELS, True, id="and-all"),
    pytest.param("n>4", LABELS, True, id="gt"),
    pytest.param("n>5", LABELS, False, id="gt-equal"),
    pytest.param("n<6", LABELS, True, id="lt"),
    pytest.param("app>1", LABELS, False, id="gt-non-int-label"),
])
def test_label_selector_matches(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_label_selector(text).matches(labels) is expected


def test_requires_exact_match() -> None:
    sel = parse_label_selector("app=web,tier in (a),x in (a,b),y!=z")
    assert sel.requires_exact_match("app") == "web"
    assert sel.requires_exact_match("tier") == "a"
    assert sel.requires_exact_match("x") is None
    assert sel.requires_exact_match("y") is None
    assert sel.requires_exact_match("nope") is None


# --- label selectors from objects -------------------------------------------------------------

@pytest.mark.parametrize(("sel", "canonical", "empty"), [
    pytest.param({}, "", True, id="empty-dict"),
    pytest.param({"matchLabels": {}}, "", True, id="empty-matchLabels"),
    pytest.param({"matchLabels": {"b": "2", "a": "1"}}, "a=1,b=2", False, id="matchLabels"),
    pytest.param({"matchExpressions": [
        {"key": "t", "operator": "In", "values": ["y", "x"]},
        {"key": "s", "operator": "NotIn", "values": ["z"]},
        {"key": "r", "operator": "Exists"},
        {"key": "q", "operator": "DoesNotExist", "values": []},
    ]}, "!q,r,s notin (z),t in (x,y)", False, id="expressions"),
    pytest.param({"matchLabels": {"app": "web"},
                  "matchExpressions": [{"key": "app", "operator": "Exists"}]},
                 "app=web,app", False, id="same-key-both"),
])
def test_label_selector_from_api(sel: dict[str, Any], canonical: str, empty: bool) -> None:
    parsed = label_selector_from_api(sel)
    assert str(parsed) == canonical
    assert parsed.empty is empty


def test_label_selector_from_api_none_selects_nothing() -> None:
    sel = label_selector_from_api(None)
    assert sel == LabelSelector(nothing=True)
    assert not sel.empty
    assert not sel.matches({})
    assert not sel.matches({"a": "b"})
    assert str(sel) == ""


def test_label_selector_from_api_matches() -> None:
    sel = label_selector_from_api({
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}],
    })
    assert sel.matches({"app": "web"})
    assert sel.matches({"app": "web", "env": "dev"})
    assert not sel.matches({"app": "web", "env": "prod"})
    assert not sel.matches({"env": "dev"})
    assert label_selector_from_api({}).matches({"anything": "x"})


@pytest.mark.parametrize(("sel", "message"), [
    pytest.param({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["b"]}]},
                 '"Equals" is not a valid label selector operator', id="bad-operator"),
    pytest.param({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
                 "values: Invalid value: []string{}: for 'in', 'notin' operators, "
                 "values set can't be empty", id="in-empty"),
    pytest.param({"matchExpressions": [{"key": "a", "operator": "NotIn"}]},
                 "values: Invalid value: []string(nil): for 'in', 'notin' operators, "
                 "values set can't be empty", id="notin-missing"),
    pytest.param({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["b"]}]},
                 'values: Invalid value: []string{"b"}: values set must be empty for exists '
                 "and does not exist", id="exists-with-values"),
    pytest.param({"matchLabels": {"bad key": "v"}},
                 f'key: Invalid value: "bad key": {QNAME_MSG}', id="bad-key"),
    pytest.param({"matchLabels": {"k": "bad value"}},
                 f'values[0][k]: Invalid value: "bad value": {VALUE_MSG}', id="bad-value"),
    pytest.param({"matchExpressions": [{"key": "k", "operator": "In", "values": ["ok", "b@"]}]},
                 f'values[1][k]: Invalid value: "b@": {VALUE_MSG}', id="bad-value-index"),
])
def test_label_selector_from_api_errors(sel: dict[str, Any], message: str) -> None:
    with pytest.raises(SelectorError) as info:
        label_selector_from_api(sel)
    assert str(info.value) == message


def test_selector_from_map() -> None:
    sel = selector_from_map({"tier": "front", "app": "web"})
    assert str(sel) == "app=web,tier=front"
    assert sel.matches({"app": "web", "tier": "front", "extra": "x"})
    assert not sel.matches({"app": "web"})
    assert selector_from_map({}).empty
    assert selector_from_map({}).matches({"a": "b"})


# --- field selectors --------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "reqs", "canonical"), [
    pytest.param("", (), "", id="empty"),
    pytest.param("metadata.name=web", (FieldRequirement("metadata.name", "=", "web"),),
                 "metadata.name=web", id="eq"),
    pytest.param("a==x", (FieldRequirement("a", "==", "x"),), "a=x", id="eqeq"),
    pytest.param("b=1,a!=2", (FieldRequirement("a", "!=", "2"), FieldRequirement("b", "=", "1")),
                 "a!=2,b=1", id="sorted-terms"),
    pytest.param(r"a=x\,y\=z\\w", (FieldRequirement("a", "=", "x,y=z\\w"),),
                 r"a=x\,y\=z\\w", id="escapes"),
    pytest.param(",,a=b,", (FieldRequirement("a", "=", "b"),), "a=b", id="empty-terms"),
    pytest.param("a=", (FieldRequirement("a", "=", ""),), "a=", id="empty-value"),
    pytest.param("a= b", (FieldRequirement("a", "=", " b"),), "a= b", id="no-trimming"),
])
def test_parse_field_selector(text: str, reqs: tuple[FieldRequirement, ...],
                              canonical: str) -> None:
    sel = parse_field_selector(text)
    assert sel.requirements == reqs
    assert str(sel) == canonical
    assert sel.empty is (not reqs)


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("foo", "invalid selector: 'foo'; can't understand 'foo'", id="no-operator"),
    pytest.param("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'", id="bad-term"),
    pytest.param("a=b=c", "invalid field selector: unescaped character in value: 61",
                 id="unescaped-equals"),
    pytest.param("a!==b", "invalid field selector: unescaped character in value: 61",
                 id="ne-then-equals"),
    pytest.param("a=b\\", "invalid field selector: invalid escape sequence: \\",
                 id="trailing-backslash"),
    pytest.param("a=b\\x", "invalid field selector: invalid escape sequence: \\x",
                 id="unknown-escape"),
])
def test_parse_field_selector_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_field_selector(text)
    assert str(info.value) == message


@pytest.mark.parametrize(("text", "fields", "expected"), [
    pytest.param("", {"a": "1"}, True, id="empty"),
    pytest.param("a=1", {"a": "1"}, True, id="eq"),
    pytest.param("a==1", {"a": "2"}, False, id="eqeq-other"),
    pytest.param("a!=1", {"a": "2"}, True, id="ne"),
    pytest.param("a!=1", {"a": "1"}, False, id="ne-same"),
    pytest.param("a=", {}, True, id="missing-is-empty"),
    pytest.param("a!=", {}, False, id="missing-ne-empty"),
    pytest.param("a=1,b=2", {"a": "1", "b": "3"}, False, id="and"),
    pytest.param(r"a=x\,y", {"a": "x,y"}, True, id="escaped-value"),
])
def test_field_selector_matches(text: str, fields: dict[str, str], expected: bool) -> None:
    assert parse_field_selector(text).matches(fields) is expected


def test_field_selector_requires_exact_match() -> None:
    sel = parse_field_selector("metadata.name=web,spec.nodeName!=n1")
    assert sel.requires_exact_match("metadata.name") == "web"
    assert sel.requires_exact_match("spec.nodeName") is None
    assert sel.requires_exact_match("metadata.namespace") is None


# --- supported field labels -------------------------------------------------------------------

@pytest.mark.parametrize(("api_version", "kind", "text"), [
    pytest.param("v1", "Pod", "spec.nodeName=n1,status.phase=Running,status.podIP=10.0.0.1",
                 id="pod"),
    pytest.param("v1", "Pod", "spec.hostNetwork=true,spec.restartPolicy=Always,"
                 "spec.schedulerName=s,spec.serviceAccountName=sa,status.nominatedNodeName=n,"
                 "status.podIPs=x,metadata.namespace=d", id="pod-all"),
    pytest.param("v1", "Event", "involvedObject.kind=Pod,involvedObject.name=x,reason=Started,"
                 "type=Normal,source=kubelet,reportingComponent=k,involvedObject.uid=u,"
                 "involvedObject.namespace=d,involvedObject.apiVersion=v1,"
                 "involvedObject.resourceVersion=1,involvedObject.fieldPath=f", id="event"),
    pytest.param("v1", "Secret", "type=Opaque,metadata.namespace=d", id="secret"),
    pytest.param("v1", "Namespace", "status.phase=Active,metadata.name=d", id="namespace"),
    pytest.param("v1", "Node", "spec.unschedulable=false,metadata.name=n", id="node"),
    pytest.param("v1", "Service", "spec.type=ClusterIP,spec.clusterIP=None", id="service"),
    pytest.param("networking.k8s.io/v1", "Ingress", "metadata.name=a,metadata.namespace=b",
                 id="ingress"),
    pytest.param("networking.k8s.io/v1", "IngressClass", "metadata.namespace=", id="ingclass"),
])
def test_check_field_selector_accepts(api_version: str, kind: str, text: str) -> None:
    check_field_selector(api_version, kind, parse_field_selector(text))


@pytest.mark.parametrize(("api_version", "kind", "text", "message"), [
    pytest.param("v1", "Pod", "spec.foo=x", "field label not supported: spec.foo", id="pod"),
    pytest.param("v1", "Node", "metadata.namespace=x",
                 "field label not supported: metadata.namespace", id="node-namespace"),
    pytest.param("v1", "Namespace", "metadata.namespace=x",
                 "field label not supported: metadata.namespace", id="namespace-namespace"),
    pytest.param("v1", "Secret", "data.x=y", "field label not supported: data.x", id="secret"),
    pytest.param("networking.k8s.io/v1", "Ingress", "foo.bar=baz",
                 '"foo.bar" is not a known field selector: only "metadata.name", '
                 '"metadata.namespace"', id="default-kind"),
    pytest.param("discovery.k8s.io/v1", "EndpointSlice", "addressType=IPv4",
                 '"addressType" is not a known field selector: only "metadata.name", '
                 '"metadata.namespace"', id="endpointslice"),
])
def test_check_field_selector_rejects(api_version: str, kind: str, text: str,
                                      message: str) -> None:
    with pytest.raises(SelectorError) as info:
        check_field_selector(api_version, kind, parse_field_selector(text))
    assert str(info.value) == message


def test_convert_field_selector_renames_spec_host() -> None:
    sel = convert_field_selector("v1", "Pod", parse_field_selector("spec.host=n1"))
    assert sel == FieldSelector((FieldRequirement("spec.nodeName", "=", "n1"),))


# --- field sets -------------------------------------------------------------------------------

def test_field_set_pod() -> None:
    pod = {
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"nodeName": "n1", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                 "serviceAccountName": "default", "hostNetwork": True},
        "status": {"phase": "Running", "podIP": "10.0.0.9",
                   "podIPs": [{"ip": "10.0.0.9"}, {"ip": "fd00::9"}],
                   "nominatedNodeName": "n2"},
    }
    assert field_set("v1", "Pod", pod) == {
        "metadata.name": "web", "metadata.namespace": "default",
        "spec.nodeName": "n1", "spec.restartPolicy": "Always",
        "spec.schedulerName": "default-scheduler", "spec.serviceAccountName": "default",
        "spec.hostNetwork": "true", "status.phase": "Running", "status.podIP": "10.0.0.9",
        "status.nominatedNodeName": "n2",
    }


def test_field_set_bare_pod_defaults() -> None:
    fields = field_set("v1", "Pod", {"metadata": {"name": "p", "namespace": "d"}})
    assert fields["spec.hostNetwork"] == "false"
    assert fields["spec.nodeName"] == ""
    assert fields["status.podIP"] == ""
    assert parse_field_selector("spec.nodeName=").matches(fields)


def test_field_set_event() -> None:
    event = {
        "metadata": {"name": "web.17a", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web", "uid": "u1",
                           "apiVersion": "v1", "resourceVersion": "42",
                           "fieldPath": "spec.containers{app}"},
        "reason": "Started", "type": "Normal", "reportingComponent": "kubelet",
        "source": {"component": "kubelet", "host": "n1"},
    }
    assert field_set("v1", "Event", event) == {
        "metadata.name": "web.17a", "metadata.namespace": "default",
        "involvedObject.kind": "Pod", "involvedObject.namespace": "default",
        "involvedObject.name": "web", "involvedObject.uid": "u1",
        "involvedObject.apiVersion": "v1", "involvedObject.resourceVersion": "42",
        "involvedObject.fieldPath": "spec.containers{app}", "reason": "Started",
        "reportingComponent": "kubelet", "source": "kubelet", "type": "Normal",
    }


def test_field_set_event_source_falls_back_to_reporting_component() -> None:
    fields = field_set("v1", "Event", {"metadata": {"name": "e", "namespace": "d"},
                                       "reportingComponent": "podnet-controller"})
    assert fields["source"] == "podnet-controller"


@pytest.mark.parametrize(("api_version", "kind", "obj", "expected"), [
    pytest.param("v1", "Secret", {"metadata": {"name": "s", "namespace": "d"},
                                  "type": "Opaque"},
                 {"metadata.name": "s", "metadata.namespace": "d", "type": "Opaque"},
                 id="secret"),
    pytest.param("v1", "Namespace", {"metadata": {"name": "d"}, "status": {"phase": "Active"}},
                 {"metadata.name": "d", "status.phase": "Active"}, id="namespace"),
    pytest.param("v1", "Node", {"metadata": {"name": "n1"}, "spec": {"unschedulable": True}},
                 {"metadata.name": "n1", "spec.unschedulable": "true"}, id="node"),
    pytest.param("v1", "Node", {"metadata": {"name": "n1"}},
                 {"metadata.name": "n1", "spec.unschedulable": "false"}, id="node-default"),
    pytest.param("v1", "Service", {"metadata": {"name": "s", "namespace": "d"},
                                   "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1"}},
                 {"metadata.name": "s", "metadata.namespace": "d", "spec.type": "ClusterIP",
                  "spec.clusterIP": "10.96.0.1"}, id="service"),
    pytest.param("networking.k8s.io/v1", "IngressClass", {"metadata": {"name": "nginx"}},
                 {"metadata.name": "nginx"}, id="cluster-scoped"),
    pytest.param("networking.k8s.io/v1", "NetworkPolicy",
                 {"metadata": {"name": "deny", "namespace": "d"}, "spec": {}},
                 {"metadata.name": "deny", "metadata.namespace": "d"}, id="namespaced"),
])
def test_field_set_kinds(api_version: str, kind: str, obj: dict[str, Any],
                         expected: dict[str, str]) -> None:
    assert field_set(api_version, kind, obj) == expected
