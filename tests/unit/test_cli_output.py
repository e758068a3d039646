"""How the CLI prints (tables, YAML, JSON, names) and how it reads its arguments."""

from __future__ import annotations

from typing import Any

import pytest

from podnet.api.resources import lookup
from podnet.cli import main as cli
from podnet.cli import output
from podnet.client.http import ApiError, resource_path


def res(name: str) -> Any:
    r = lookup(name)
    assert r is not None
    return r


SERVICE_TABLE: dict[str, Any] = {
    "kind": "Table",
    "apiVersion": "meta.k8s.io/v1",
    "columnDefinitions": [
        {"name": "Name", "type": "string", "format": "name", "priority": 0},
        {"name": "Type", "type": "string", "priority": 0},
        {"name": "Cluster-IP", "type": "string", "priority": 0},
        {"name": "Port(s)", "type": "string", "priority": 0},
        {"name": "Age", "type": "string", "priority": 0},
        {"name": "Selector", "type": "string", "priority": 1},
    ],
    "rows": [
        {"cells": ["kubernetes", "ClusterIP", "10.96.0.1", "443/TCP", "5m", "<none>"],
         "object": {"metadata": {"name": "kubernetes", "namespace": "default",
                                 "labels": {"provider": "kubernetes",
                                            "component": "apiserver"}}}},
        {"cells": ["web", "NodePort", "10.96.12.7", "80:30080/TCP", "12s", "app=web"],
         "object": {"metadata": {"name": "web", "namespace": "demo"}}},
    ],
}


# -- tables -----------------------------------------------------------------------------------


def test_tabulate_pads_to_widest_plus_three_and_leaves_the_last_column() -> None:
    assert output.tabulate([["NAME", "AGE"], ["kubernetes", "5m"], ["a", "12s"]]) == (
        "NAME         AGE\n"
        "kubernetes   5m\n"
        "a            12s\n")


def test_tabulate_columns_are_at_least_six_wide() -> None:
    assert output.tabulate([["A", "B", "C"], ["x", "", "z"]]) == (
        "A     B     C\n"
        "x           z\n")


def test_tabulate_nothing() -> None:
    assert output.tabulate([]) == ""


@pytest.mark.parametrize("value,text", [
    pytest.param(None, "", id="null"),
    pytest.param("Running", "Running", id="string"),
    pytest.param(3, "3", id="int"),
    pytest.param(3.0, "3", id="integral-float"),
    pytest.param(1.5, "1.5", id="float"),
    pytest.param(True, "true", id="true"),
    pytest.param(False, "false", id="false"),
    pytest.param("line1\nline2", "line1...", id="newline-cuts"),
    pytest.param("a\rb", "a...", id="carriage-return-cuts"),
    pytest.param(["a", 1], '["a",1]', id="list"),
])
def test_cell_text(value: Any, text: str) -> None:
    assert output.cell_text(value) == text


def test_format_table_hides_priority_columns() -> None:
    assert output.format_table(SERVICE_TABLE) == (
        "NAME         TYPE        CLUSTER-IP   PORT(S)        AGE\n"
        "kubernetes   ClusterIP   10.96.0.1    443/TCP        5m\n"
        "web          NodePort    10.96.12.7   80:30080/TCP   12s\n")


def test_format_table_wide_shows_them() -> None:
    assert output.format_table(SERVICE_TABLE, wide=True).splitlines() == [
        "NAME         TYPE        CLUSTER-IP   PORT(S)        AGE   SELECTOR",
        "kubernetes   ClusterIP   10.96.0.1    443/TCP        5m    <none>",
        "web          NodePort    10.96.12.7   80:30080/TCP   12s   app=web",
    ]


def test_format_table_with_namespace_and_labels() -> None:
    assert output.format_table(SERVICE_TABLE, with_namespace=True,
                               show_labels=True).splitlines() == [
        "NAMESPACE   NAME         TYPE        CLUSTER-IP   PORT(S)        AGE   LABELS",
        "default     kubernetes   ClusterIP   10.96.0.1    443/TCP        5m    "
        "component=apiserver,provider=kubernetes",
        "demo        web          NodePort    10.96.12.7   80:30080/TCP   12s   <none>",
    ]


def test_format_table_without_headers() -> None:
    assert output.format_table(SERVICE_TABLE, headers=False) == (
        "kubernetes   ClusterIP   10.96.0.1    443/TCP        5m\n"
        "web          NodePort    10.96.12.7   80:30080/TCP   12s\n")


def test_empty_table_prints_nothing_not_even_headers() -> None:
    assert output.format_table({**SERVICE_TABLE, "rows": []}) == ""


def test_short_rows_are_filled_with_empty_cells() -> None:
    table = {"columnDefinitions": [{"name": "Name"}, {"name": "Status"}],
             "rows": [{"cells": ["a"]}]}
    assert output.format_table(table) == "NAME   STATUS\na      \n"


def test_merge_and_fallback_tables() -> None:
    one = {**SERVICE_TABLE, "rows": SERVICE_TABLE["rows"][:1]}
    two = {**SERVICE_TABLE, "rows": SERVICE_TABLE["rows"][1:]}
    assert output.merge_tables([one, two])["rows"] == SERVICE_TABLE["rows"]
    fb = output.fallback_table([{"metadata": {"name": "x", "namespace": "n"}}])
    assert output.format_table(fb, with_namespace=True) == "NAMESPACE   NAME\nn           x\n"


# -- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,ref", [
    pytest.param("svc", "service/web", id="core"),
    pytest.param("ns", "namespace/web", id="cluster-scoped"),
    pytest.param("ingresses", "ingress.networking.k8s.io/web", id="group"),
    pytest.param("netpol", "networkpolicy.networking.k8s.io/web", id="short-name"),
])
def test_object_ref(kind: str, ref: str) -> None:
    assert output.object_ref(res(kind), "web") == ref


# -- documents --------------------------------------------------------------------------------


def test_yaml_sorts_keys_quotes_like_go_and_keeps_blocks() -> None:
    obj = {"metadata": {"resourceVersion": "8", "name": "web", "annotations": {
        "a": '{"x":1}\n'}, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "kind": "Service", "apiVersion": "v1", "spec": {"ports": [{"port": 80}],
                                                     "flag": "true", "empty": ""}}
    assert output.to_yaml(obj) == (
        "apiVersion: v1\n"
        "kind: Service\n"
        "metadata:\n"
        "  annotations:\n"
        "    a: |\n"
        '      {"x":1}\n'
        '  creationTimestamp: "2026-01-01T00:00:00Z"\n'
        "  name: web\n"
        '  resourceVersion: "8"\n'
        "spec:\n"
        '  empty: ""\n'
        '  flag: "true"\n'
        "  ports:\n"
        "  - port: 80\n")


def test_json_sorts_keys_and_indents_by_four() -> None:
    assert output.to_json({"b": 1, "a": {"d": [1], "c": "é"}}) == (
        '{\n    "a": {\n        "c": "é",\n        "d": [\n            1\n        ]\n    },\n'
        '    "b": 1\n}\n')


def test_list_and_types() -> None:
    item = output.with_type(res("svc"), {"metadata": {"name": "a"}})
    assert item == {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"}}
    assert output.with_type(res("ing"), {"kind": "Wrong"})["kind"] == "Ingress"
    assert output.as_list([item]) == {"apiVersion": "v1", "items": [item], "kind": "List",
                                      "metadata": {"resourceVersion": ""}}


# -- REST paths and errors --------------------------------------------------------------------


@pytest.mark.parametrize("kind,ns,name,path", [
    pytest.param("svc", "demo", None, "/api/v1/namespaces/demo/services", id="core-list"),
    pytest.param("svc", None, None, "/api/v1/services", id="core-all-namespaces"),
    pytest.param("svc", "demo", "web", "/api/v1/namespaces/demo/services/web", id="core-get"),
    pytest.param("ns", "ignored", "demo", "/api/v1/namespaces/demo", id="cluster-scoped"),
    pytest.param("ing", "demo", "x", "/apis/networking.k8s.io/v1/namespaces/demo/ingresses/x",
                 id="group"),
    pytest.param("ingressclasses", None, None, "/apis/networking.k8s.io/v1/ingressclasses",
                 id="group-cluster-scoped"),
])
def test_resource_path(kind: str, ns: str | None, name: str | None, path: str) -> None:
    assert resource_path(res(kind), ns, name) == path


def test_api_error_from_status_body() -> None:
    body = (b'{"kind":"Status","apiVersion":"v1","status":"Failure","message":'
            b'"services \\"x\\" not found","reason":"NotFound","code":404}')
    e = ApiError.from_body(404, body, "Not Found")
    assert (e.status, e.reason, e.message) == (404, "NotFound", 'services "x" not found')
    assert e.kubectl_message() == 'Error from server (NotFound): services "x" not found'


@pytest.mark.parametrize("status,body,line", [
    pytest.param(401, b"", "error: You must be logged in to the server (Unauthorized)",
                 id="unauthorized"),
    pytest.param(500, b"boom", "Error from server (InternalError): boom", id="text-body"),
    pytest.param(418, b"", "Error from server: I'm a teapot", id="unknown-status"),
])
def test_api_error_without_status_body(status: int, body: bytes, line: str) -> None:
    reason = {401: "Unauthorized", 500: "Internal Server Error", 418: "I'm a teapot"}[status]
    assert ApiError.from_body(status, body, reason).kubectl_message() == line


# -- arguments --------------------------------------------------------------------------------


def test_kind_and_names() -> None:
    svc = res("svc")
    assert cli.split_kind_names(["svc"]) == [(svc, None)]
    assert cli.split_kind_names(["services", "a", "b"]) == [(svc, "a"), (svc, "b")]
    assert cli.split_kind_names(["svc/a", "po/b"]) == [(svc, "a"), (res("pod"), "b")]


@pytest.mark.parametrize("words,message", [
    pytest.param(["foo"], 'error: the server doesn\'t have a resource type "foo"', id="unknown"),
    pytest.param(["svc", "svc/a"], "error: there is no need to specify a resource type",
                 id="mixed-forms"),
    pytest.param(["svc/"], "error: arguments in resource/name form must have", id="no-name"),
])
def test_kind_and_names_errors(words: list[str], message: str) -> None:
    with pytest.raises(cli.CommandError) as e:
        cli.split_kind_names(words)
    assert str(e.value).startswith(message)


@pytest.mark.parametrize("argv,name,namespace", [
    pytest.param(["get", "pods"], None, None, id="defaults"),
    pytest.param(["--name", "c", "-n", "x", "get", "pods"], "c", "x", id="before"),
    pytest.param(["get", "pods", "--name", "c", "-n", "x"], "c", "x", id="after"),
    pytest.param(["-n", "x", "get", "-n", "y", "pods"], None, "y", id="after-wins"),
])
def test_global_options_anywhere(argv: list[str], name: str | None,
                                 namespace: str | None) -> None:
    args = cli.build_parser().parse_args(argv)
    assert (args.name, args.namespace) == (name, namespace)


@pytest.mark.parametrize("argv", [
    pytest.param([], id="no-command"),
    pytest.param(["get"], id="no-kind"),
    pytest.param(["get", "pods", "-o", "xml"], id="bad-output"),
    pytest.param(["apply"], id="apply-without-file"),
    pytest.param(["frobnicate"], id="unknown-command"),
])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    assert capsys.readouterr().out == ""


def test_delete_needs_a_file_or_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["delete"]) == 1
    assert capsys.readouterr().err == (
        "error: you must provide either -f FILE or KIND NAME... (not both)\n")


def test_get_of_an_unknown_kind_fails_before_connecting(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["get", "frobs"]) == 1
    assert capsys.readouterr().err == 'error: the server doesn\'t have a resource type "frobs"\n'
