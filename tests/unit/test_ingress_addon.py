"""The ingress's objects (podnet.cluster.addons), its setting in the state directory, the
`--no-ingress` option, and the controller's pure helpers (podnet.ingress.controller).

Address plan: the state directory /var/lib/podnet/c1 (the ingress pod's files in
/var/lib/podnet/c1/ingress/podnet-ingress), nodes node-1 .. node-3; the ingress's
LoadBalancer address 172.18.0.200 (the default pool's first), another controller's 192.0.2.9.
"""

from __future__ import annotations

import base64
import copy
import datetime
from pathlib import Path
from typing import Any

import pytest

from podnet.api.defaults import apply_defaults
from podnet.api.validation import validate
from podnet.cluster import addons, lifecycle, state
from podnet.cluster.addons import IngressSettings
from podnet.cluster.state import LabSettings, StateError
from podnet.ingress import controller, haproxy, routes
from podnet.ingress.controller import Metrics, StatusChange, status_changes
from podnet.ingress.routes import IngressRef

SETTINGS = IngressSettings(
    python="/work/main/.venv/bin/python", pythonpath="/work/main",
    api_socket="/var/lib/podnet/c1/api.sock", token_file="/var/lib/podnet/c1/token",
    state_dir="/var/lib/podnet/c1/ingress/podnet-ingress")
LB = "172.18.0.200"
NOW = state.utc_now()


# -- the objects --------------------------------------------------------------------------------


def test_names_agree_with_the_controllers() -> None:
    assert (addons.INGRESS_CLASS, addons.INGRESS_CONTROLLER) == (routes.CLASS_NAME,
                                                                  routes.CONTROLLER)


def test_namespace_and_class() -> None:
    assert addons.ingress_namespace() == {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "ingress-podnet",
                     "labels": {"app.kubernetes.io/name": "podnet-ingress"}}}
    # Not the default class: a user marks it so.
    assert addons.ingress_class() == {
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": "podnet",
                     "labels": {"app.kubernetes.io/name": "podnet-ingress",
                                "app.kubernetes.io/component": "controller"}},
        "spec": {"controller": "podnet.dev/ingress-controller"}}


def test_the_service_is_a_load_balancer_keeping_client_addresses() -> None:
    assert addons.ingress_service() == {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "podnet-ingress", "namespace": "ingress-podnet",
                     "labels": {"app.kubernetes.io/name": "podnet-ingress",
                                "app.kubernetes.io/component": "controller"}},
        "spec": {
            "type": "LoadBalancer",
            "externalTrafficPolicy": "Local",
            "selector": {"app.kubernetes.io/name": "podnet-ingress",
                         "app.kubernetes.io/component": "controller"},
            "ports": [
                {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"},
                {"name": "https", "port": 443, "protocol": "TCP", "targetPort": "https"},
            ],
        },
    }


def test_the_pod() -> None:
    assert addons.ingress_pod(SETTINGS, "node-1") == {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "podnet-ingress", "namespace": "ingress-podnet",
                     "labels": {"app.kubernetes.io/name": "podnet-ingress",
                                "app.kubernetes.io/component": "controller"}},
        "spec": {
            "nodeName": "node-1",
            "dnsPolicy": "Default",
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 10,
            "containers": [{
                "name": "controller",
                "image": "podnet/ingress",
                "command": [
                    "/work/main/.venv/bin/python", "-m", "podnet.ingress.main",
                    "--api", "unix:///var/lib/podnet/c1/api.sock",
                    "--token-file", "/var/lib/podnet/c1/token",
                    "--state-dir", "/var/lib/podnet/c1/ingress/podnet-ingress",
                    "--publish-service", "ingress-podnet/podnet-ingress",
                    "--ingress-class", "podnet",
                    "--controller-name", "podnet.dev/ingress-controller",
                    "--http-port", "80", "--https-port", "443", "--health-port", "10254"],
                "env": [
                    {"name": "PYTHONPATH", "value": "/work/main"},
                    {"name": "PYTHONUNBUFFERED", "value": "1"},
                    {"name": "POD_NAME",
                     "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "POD_NAMESPACE",
                     "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
                "ports": [
                    {"name": "http", "containerPort": 80, "protocol": "TCP"},
                    {"name": "https", "containerPort": 443, "protocol": "TCP"},
                    {"name": "metrics", "containerPort": 10254, "protocol": "TCP"},
                ],
                "readinessProbe": {
                    "httpGet": {"path": "/healthz", "port": 10254, "scheme": "HTTP"},
                    "periodSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 3},
                "livenessProbe": {
                    "httpGet": {"path": "/healthz", "port": 10254, "scheme": "HTTP"},
                    "initialDelaySeconds": 10, "periodSeconds": 10, "timeoutSeconds": 1,
                    "failureThreshold": 5},
            }],
        },
    }


def test_the_command_parses_with_the_controllers_own_options() -> None:
    from podnet.ingress.main import parse_args

    args = parse_args(addons.ingress_command(SETTINGS)[3:])
    assert (args.api, args.state_dir, args.publish_service, args.ingress_class,
            args.controller_name, args.http_port, args.https_port, args.health_port) == (
        "unix:///var/lib/podnet/c1/api.sock", Path("/var/lib/podnet/c1/ingress/podnet-ingress"),
        "ingress-podnet/podnet-ingress", "podnet", "podnet.dev/ingress-controller", 80, 443,
        10254)


@pytest.mark.parametrize(("nodes", "node"), [
    pytest.param([], None, id="no-nodes"),
    pytest.param(["node-1"], "node-1", id="one"),
    pytest.param(["node-1", "node-2", "node-3"], "node-1", id="three"),
])
def test_the_pod_goes_to_the_first_node(nodes: list[str], node: str | None) -> None:
    objs = addons.ingress_objects(SETTINGS, nodes)
    assert (objs.pod or {}).get("spec", {}).get("nodeName") == node
    assert objs.service["metadata"]["name"] == "podnet-ingress"


def _validation_errors(obj: dict[str, Any]) -> list[str]:
    obj = copy.deepcopy(obj)
    apply_defaults(obj)
    return [str(e) for e in validate(obj, None)]


def test_the_objects_pass_the_api_servers_validation() -> None:
    objs = addons.ingress_objects(SETTINGS, ["node-1"])
    assert objs.pod is not None
    for obj in (objs.namespace, objs.ingress_class, objs.service, objs.pod):
        assert _validation_errors(obj) == [], obj["kind"]


def test_selector_matches_the_pod_and_the_service_ports_name_its_ports() -> None:
    objs = addons.ingress_objects(SETTINGS, ["node-1"])
    assert objs.pod is not None
    selector = objs.service["spec"]["selector"]
    assert selector.items() <= objs.pod["metadata"]["labels"].items()
    assert addons.ingress_label_selector() == (
        "app.kubernetes.io/name=podnet-ingress,app.kubernetes.io/component=controller")
    named = {p["name"]: p["containerPort"] for p in objs.pod["spec"]["containers"][0]["ports"]}
    assert [(p["port"], named[p["targetPort"]]) for p in objs.service["spec"]["ports"]] == [
        (80, 80), (443, 443)]


@pytest.mark.parametrize(("service", "address"), [
    pytest.param({}, None, id="no-status"),
    pytest.param({"status": {"loadBalancer": {}}}, None, id="not-yet"),
    pytest.param({"status": {"loadBalancer": {"ingress": [{"hostname": "lb.example"}]}}}, None,
                 id="hostname-only"),
    pytest.param({"status": {"loadBalancer": {"ingress": [{"ip": LB, "ipMode": "VIP"}]}}}, LB,
                 id="ip"),
])
def test_ingress_address(service: dict[str, Any], address: str | None) -> None:
    assert addons.ingress_address(service) == address


# -- the setting in the state directory, and the option ----------------------------------------


def test_a_new_cluster_records_its_choice_and_keeps_it(tmp_path: Path) -> None:
    s = state.ensure("c1", tmp_path, now=NOW, lab=LabSettings(nodes=1))
    ingress = lifecycle.ClusterIngress()
    assert ingress.enabled(s) is False  # clusters made before the ingress: none
    ingress.configure(s, True, new=True)
    assert (s.dir / "ingress" / "addon.json").read_text() == '{"enabled": true}\n'
    assert ingress.enabled(s) is True
    ingress.configure(s, None, new=False)  # as the cluster has it
    ingress.configure(s, True, new=False)
    with pytest.raises(StateError) as e:
        ingress.configure(s, False, new=False)
    assert str(e.value) == ('cluster "c1" exists with the ingress on; remove it (podnet down) '
                            "to change that")
    assert ingress.enabled(s) is True


def test_a_new_cluster_has_no_ingress_unless_asked(tmp_path: Path) -> None:
    s = state.ensure("c1", tmp_path, now=NOW, lab=LabSettings(nodes=1))
    ingress = lifecycle.ClusterIngress()
    ingress.configure(s, None, new=True)
    assert ingress.enabled(s) is False
    with pytest.raises(StateError) as e:
        ingress.configure(s, True, new=False)
    assert str(e.value) == ('cluster "c1" exists with the ingress off; remove it (podnet '
                            "down) to change that")


def test_without_haproxy_the_ingress_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    s = state.ensure("c1", tmp_path, now=NOW, lab=LabSettings(nodes=2))
    ingress = lifecycle.ClusterIngress()
    ingress.configure(s, True, new=True)
    monkeypatch.setattr(lifecycle, "haproxy_available", lambda: False)
    assert ingress.wanted(s) is None
    status = ingress.status(s)
    assert (status.healthy, status.lines) == (False, [
        ("ingress", "not running: HAProxy is not installed (scripts/install.sh installs it)")])
    lifecycle._ingress_warnings(s)
    assert capsys.readouterr().err == (
        "warning: HAProxy is not installed (apt-get install haproxy; scripts/install.sh "
        "does): the cluster has no ingress\n")


def test_the_ingress_directory_belongs_to_a_state_directory() -> None:
    known = {".lock"}.union(*(c.files for c in lifecycle.COMPONENTS))
    assert "ingress" in known
    assert lifecycle.COMPONENTS[-1] is lifecycle.CLUSTER_INGRESS


def test_up_options() -> None:
    from podnet.cli.main import build_parser

    assert build_parser().parse_args(["up", "--no-ingress"]).no_ingress is True
    assert build_parser().parse_args(["up"]).no_ingress is False


# -- the controller's pure helpers ------------------------------------------------------------


def _ingress(name: str, ips: list[str] | None = None, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": "default", "name": name}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    obj: dict[str, Any] = {"metadata": meta, "spec": {}}
    if ips is not None:
        obj["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}
    return obj


def ref(name: str) -> IngressRef:
    return IngressRef("default", name)


@pytest.mark.parametrize(("ingress", "ours", "addresses", "announced", "change"), [
    pytest.param(_ingress("new"), True, [LB], [], (LB,), id="ours-gets-the-address"),
    pytest.param(_ingress("done", [LB]), True, [LB], [], None, id="ours-already-has-it"),
    pytest.param(_ingress("moved", ["172.18.0.201"]), True, [LB], ["172.18.0.201"], (LB,),
                 id="ours-address-changed"),
    pytest.param(_ingress("lost", [LB]), True, [], [LB], (), id="ours-no-address-any-more"),
    pytest.param(_ingress("waiting"), True, [], [], None, id="ours-no-address-yet"),
    pytest.param(_ingress("other"), False, [LB], [], None, id="other-class-untouched"),
    pytest.param(_ingress("foreign", ["192.0.2.9"]), False, [LB], [LB], None,
                 id="other-controllers-status-untouched"),
    pytest.param(_ingress("left", [LB]), False, [LB], [LB], (), id="no-longer-ours-cleared"),
    pytest.param(_ingress("left-old", ["172.18.0.201"]), False, [LB], ["172.18.0.201", LB], (),
                 id="no-longer-ours-earlier-address-cleared"),
    pytest.param(_ingress("gone", deleting=True), True, [LB], [], None,
                 id="deleting-untouched"),
])
def test_status_changes(ingress: dict[str, Any], ours: bool, addresses: list[str],
                        announced: list[str], change: tuple[str, ...] | None) -> None:
    name = ingress["metadata"]["name"]
    out = status_changes([ingress], {ref(name)} if ours else set(), addresses, announced)
    assert out == ([] if change is None else [StatusChange(ref(name), change)])


def test_status_changes_are_sorted_and_patches_are_merge_patches() -> None:
    out = status_changes([_ingress("b"), _ingress("a")], {ref("a"), ref("b")}, [LB], [])
    assert [c.ref.name for c in out] == ["a", "b"]
    assert out[0].patch() == {"status": {"loadBalancer": {"ingress": [{"ip": LB}]}}}
    assert StatusChange(ref("a"), ()).patch() == {"status": {"loadBalancer": {"ingress": None}}}


@pytest.mark.parametrize(("reply", "failed"), [
    pytest.param("\n", False, id="empty"),
    pytest.param("IP changed from '0.0.0.0' to '10.244.1.5', port changed from '1' to '8080' "
                 "by 'stats socket command'\n\n", False, id="set-server-addr"),
    pytest.param("no need to change the addr\n\n", False, id="set-server-same-addr"),
    pytest.param("New version created: 3\n\n", False, id="prepare-map"),
    pytest.param("Transaction created for certificate /d/certs/a_b.pem!\n\n", False,
                 id="set-ssl-cert"),
    pytest.param("Committing /d/certs/a_b.pem.\nSuccess!\n\n", False, id="commit-ssl-cert"),
    pytest.param("No such server.\n\n", True, id="no-server"),
    pytest.param("No such backend.\n\n", True, id="no-backend"),
    pytest.param("Version number out of range.\n\n", True, id="map-version"),
    pytest.param("No ongoing transaction! !\nCan't commit /d/x.pem!\n\n", True,
                 id="commit-without-set"),
    pytest.param("Unknown command. Please enter one of the following commands only :\n", True,
                 id="unknown-command"),
])
def test_reply_failed(reply: str, failed: bool) -> None:
    assert controller.reply_failed(reply) is failed


@pytest.mark.parametrize(("text", "parsed"), [
    pytest.param("ingress-podnet/podnet-ingress", ("ingress-podnet", "podnet-ingress"),
                 id="ok"),
    pytest.param("podnet-ingress", None, id="no-namespace"),
    pytest.param("/x", None, id="empty-namespace"),
    pytest.param("a/", None, id="empty-name"),
    pytest.param("a/b/c", None, id="too-many"),
])
def test_parse_service_ref(text: str, parsed: tuple[str, str] | None) -> None:
    if parsed is None:
        with pytest.raises(ValueError):
            controller.parse_service_ref(text)
    else:
        assert controller.parse_service_ref(text) == parsed


def test_info_pid() -> None:
    reply = "Name: HAProxy\nVersion: 2.6.12\nNbthread: 2\nPid: 4242\nUptime: 0d 0h00m01s\n"
    assert controller.info_pid(reply) == "4242"
    assert controller.info_pid("Unknown command\n") == ""


def test_metrics_text() -> None:
    m = Metrics(syncs=3, reloads=1, runtime_updates=2, runtime_commands=7, errors=0,
                status_writes=4, ingresses=2, backends=5, last_sync_seconds=0.25)
    values = [line for line in m.text().splitlines() if not line.startswith("#")]
    assert values == [
        "podnet_ingress_syncs_total 3", "podnet_ingress_reloads_total 1",
        "podnet_ingress_runtime_updates_total 2", "podnet_ingress_runtime_commands_total 7",
        "podnet_ingress_errors_total 0", "podnet_ingress_status_writes_total 4",
        "podnet_ingress_ingresses 2", "podnet_ingress_backends 5",
        "podnet_ingress_last_sync_seconds 0.25"]
    assert "# TYPE podnet_ingress_reloads_total counter" in m.text()


def test_the_default_certificate_is_usable_by_the_renderer() -> None:
    pem = controller.default_certificate(datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC))
    assert b"\n\n" not in pem
    crt, end, key = pem.partition(b"-----END CERTIFICATE-----\n")
    secret = {"type": routes.TLS_SECRET_TYPE,
              "data": {"tls.crt": base64.b64encode(crt + end).decode(),
                       "tls.key": base64.b64encode(key).decode()}}
    clean, error = routes.load_tls_secret(secret, ("ingress-podnet", "default"))
    assert (error, clean) == ("", pem)
    config = haproxy.render(routes.RouteTable(), directory="/d", socket="/d/admin.sock",
                            default_cert=pem)
    assert config.files[haproxy.DEFAULT_CERT] == pem


def test_config_files_are_written_when_changed_and_stale_certificates_removed(
        tmp_path: Path) -> None:
    def config(files: dict[str, bytes], text: str) -> haproxy.Config:
        return haproxy.Config(text=text, files=files, backends=(), maps={}, certificates={},
                              skeleton="")

    files = controller.ConfigFiles(tmp_path)
    assert files.write(config({"a.map": b"x\n", "certs/ns_a.pem": b"A"}, "cfg1")) == 3
    assert (tmp_path / "haproxy.cfg").read_text() == "cfg1"
    assert (tmp_path / "certs" / "ns_a.pem").stat().st_mode & 0o777 == 0o600
    assert files.write(config({"a.map": b"x\n", "certs/ns_b.pem": b"B"}, "cfg1")) == 1
    assert sorted(p.name for p in (tmp_path / "certs").iterdir()) == ["ns_b.pem"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.map", "certs", "haproxy.cfg"]
