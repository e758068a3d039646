"""The cluster DNS's objects (podnet.cluster.addons) and its settings in cluster.json.

Address plan: service CIDR 10.96.0.0/12 (the DNS at 10.96.0.10), cluster CIDR 10.244.0.0/16,
the state directory /var/lib/podnet/c1, nodes node-1 .. node-3.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from podnet.api.defaults import apply_defaults
from podnet.api.validation import validate
from podnet.cluster import addons, state
from podnet.cluster.addons import AddonError, DnsSettings
from podnet.cluster.state import ClusterConfig, LabSettings, StateError

SETTINGS = DnsSettings(
    python="/work/main/.venv/bin/python", pythonpath="/work/main",
    api_socket="/var/lib/podnet/c1/api.sock", token_file="/var/lib/podnet/c1/token",
    service_cidr="10.96.0.0/12", cluster_cidr="10.244.0.0/16",
    upstreams=("172.18.0.2:5300", "192.0.2.53"))
NOW = state.utc_now()


# -- addresses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("cidr", "ip"), [
    pytest.param("10.96.0.0/12", "10.96.0.10", id="default"),
    pytest.param("10.100.0.0/16", "10.100.0.10", id="other"),
    pytest.param("10.96.5.7/12", "10.96.0.10", id="host-bits"),
    pytest.param("fd00:10:96::/108", "fd00:10:96::a", id="ipv6"),
])
def test_dns_service_ip_is_the_tenth_address(cidr: str, ip: str) -> None:
    assert addons.dns_service_ip(cidr) == ip


@pytest.mark.parametrize(("text", "canonical"), [
    pytest.param("192.0.2.53", "192.0.2.53", id="ipv4"),
    pytest.param(" 192.0.2.53 ", "192.0.2.53", id="spaces"),
    pytest.param("192.0.2.53:53", "192.0.2.53", id="port-53-left-out"),
    pytest.param("172.18.0.2:5300", "172.18.0.2:5300", id="ipv4-port"),
    pytest.param("2001:db8::53", "2001:db8::53", id="ipv6"),
    pytest.param("2001:DB8:0::53", "2001:db8::53", id="ipv6-compressed"),
    pytest.param("[2001:db8::53]", "2001:db8::53", id="ipv6-brackets"),
    pytest.param("[2001:db8::53]:5300", "[2001:db8::53]:5300", id="ipv6-port"),
    pytest.param("[2001:db8::53]:53", "2001:db8::53", id="ipv6-port-53"),
])
def test_parse_upstream(text: str, canonical: str) -> None:
    assert addons.parse_upstream(text) == canonical


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("", "invalid DNS upstream '': '' is not an IP address", id="empty"),
    pytest.param("dns.example", "invalid DNS upstream 'dns.example': 'dns.example' is not an "
                 "IP address", id="hostname"),
    pytest.param("192.0.2.53:0", "invalid DNS upstream '192.0.2.53:0': the port must be "
                 "1-65535", id="port-0"),
    pytest.param("192.0.2.53:65536", "invalid DNS upstream '192.0.2.53:65536': the port must "
                 "be 1-65535", id="port-too-big"),
    pytest.param("192.0.2.53:x", "invalid DNS upstream '192.0.2.53:x': the port must be "
                 "1-65535", id="port-not-a-number"),
    pytest.param("[2001:db8::53", "invalid DNS upstream '[2001:db8::53': expected IP, IP:PORT "
                 "or [IPv6]:PORT", id="unclosed-bracket"),
    pytest.param("[2001:db8::53]5300", "invalid DNS upstream '[2001:db8::53]5300': expected "
                 "IP, IP:PORT or [IPv6]:PORT", id="no-colon-after-bracket"),
    pytest.param("127.0.0.53", "invalid DNS upstream '127.0.0.53': a loopback or unspecified "
                 "address would be the DNS pod itself", id="loopback"),
    pytest.param("[::1]:53", "invalid DNS upstream '[::1]:53': a loopback or unspecified "
                 "address would be the DNS pod itself", id="ipv6-loopback"),
    pytest.param("0.0.0.0", "invalid DNS upstream '0.0.0.0': a loopback or unspecified "
                 "address would be the DNS pod itself", id="unspecified"),
])
def test_parse_upstream_refuses(text: str, message: str) -> None:
    with pytest.raises(AddonError) as e:
        addons.parse_upstream(text)
    assert str(e.value) == message


@pytest.mark.parametrize(("text", "usable", "skipped"), [
    pytest.param("nameserver 10.255.255.53\n", ("10.255.255.53",), (), id="one"),
    pytest.param("# generated\nsearch example.com\nnameserver 192.0.2.1\n"
                 "nameserver 2001:db8::1\noptions edns0\n",
                 ("192.0.2.1", "2001:db8::1"), (), id="two-families"),
    pytest.param("nameserver 127.0.0.53\noptions edns0 trust-ad\n", (), ("127.0.0.53",),
                 id="systemd-resolved"),
    pytest.param("nameserver 127.0.0.1\nnameserver 192.0.2.1\nnameserver 192.0.2.1\n",
                 ("192.0.2.1",), ("127.0.0.1",), id="loopback-and-duplicate"),
    pytest.param("nameserver fe80::1%eth0\n", ("fe80::1",), (), id="zone-index"),
    pytest.param("nameserver 192.0.2.1 # primary\n;nameserver 192.0.2.2\nnameserver\n",
                 ("192.0.2.1",), (), id="comments"),
    pytest.param("nameserver bogus\n", (), ("bogus",), id="garbage"),
    pytest.param("", (), (), id="empty"),
])
def test_upstreams_from_resolv_conf(text: str, usable: tuple[str, ...],
                                    skipped: tuple[str, ...]) -> None:
    assert addons.upstreams_from_resolv_conf(text) == (usable, skipped)


# -- the objects --------------------------------------------------------------------------------


@pytest.mark.parametrize(("nodes", "placed"), [
    pytest.param([], [], id="control-plane-only"),
    pytest.param(["node-1"], [("podnet-dns-1", "node-1")], id="one-node"),
    pytest.param(["node-1", "node-2"], [("podnet-dns-1", "node-1"), ("podnet-dns-2", "node-2")],
                 id="two-nodes"),
    pytest.param(["node-1", "node-2", "node-3"],
                 [("podnet-dns-1", "node-1"), ("podnet-dns-2", "node-2")], id="three-nodes"),
])
def test_two_replicas_one_per_node(nodes: list[str], placed: list[tuple[str, str]]) -> None:
    objs = addons.dns_objects(SETTINGS, nodes)
    assert [(p["metadata"]["name"], p["spec"]["nodeName"]) for p in objs.pods] == placed
    assert objs.service["metadata"]["name"] == "kube-dns"


def test_the_service_is_kubeadms_with_podnets_name() -> None:
    assert addons.dns_service(SETTINGS) == {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": "kube-dns", "namespace": "kube-system",
            "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
                       "kubernetes.io/name": "podnet-dns"},
            "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"},
        },
        "spec": {
            "type": "ClusterIP", "clusterIP": "10.96.0.10", "selector": {"k8s-app": "kube-dns"},
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153},
            ],
        },
    }


def test_the_pod() -> None:
    assert addons.dns_pod(SETTINGS, 2, "node-2") == {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "podnet-dns-2", "namespace": "kube-system",
                     "labels": {"k8s-app": "kube-dns"}},
        "spec": {
            "nodeName": "node-2",
            "dnsPolicy": "Default",
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": "dns",
                "image": "podnet/dns",
                "command": [
                    "/work/main/.venv/bin/python", "-m", "podnet.dns.main",
                    "--api", "unix:///var/lib/podnet/c1/api.sock",
                    "--token-file", "/var/lib/podnet/c1/token",
                    "--listen", "0.0.0.0", "--port", "53", "--zone", "cluster.local",
                    "--upstream", "172.18.0.2:5300", "--upstream", "192.0.2.53",
                    "--pod-records", "insecure",
                    "--health-port", "8080", "--ready-port", "8181", "--metrics-port", "9153",
                    "--service-cidr", "10.96.0.0/12", "--cluster-cidr", "10.244.0.0/16"],
                "env": [{"name": "PYTHONPATH", "value": "/work/main"},
                        {"name": "PYTHONUNBUFFERED", "value": "1"}],
                "ports": [
                    {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                    {"name": "metrics", "containerPort": 9153, "protocol": "TCP"},
                ],
                "readinessProbe": {
                    "httpGet": {"path": "/ready", "port": 8181, "scheme": "HTTP"},
                    "periodSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 3},
                "livenessProbe": {
                    "httpGet": {"path": "/health", "port": 8080, "scheme": "HTTP"},
                    "initialDelaySeconds": 60, "periodSeconds": 10, "timeoutSeconds": 5,
                    "failureThreshold": 5},
            }],
        },
    }


def test_command_without_upstreams_and_pod_records_disabled() -> None:
    s = DnsSettings(python="py", pythonpath="", api_socket="/s/api.sock", token_file="/s/token",
                    service_cidr="10.96.0.0/12", cluster_cidr="10.244.0.0/16", upstreams=(),
                    pod_records="disabled")
    argv = addons.dns_command(s)
    assert "--upstream" not in argv
    assert argv[argv.index("--pod-records") + 1] == "disabled"
    pod = addons.dns_pod(s, 1, "node-1")
    assert pod["spec"]["containers"][0]["env"] == [{"name": "PYTHONUNBUFFERED", "value": "1"}]


def _validation_errors(obj: dict[str, Any]) -> list[str]:
    obj = copy.deepcopy(obj)
    apply_defaults(obj)
    return [str(e) for e in validate(obj, None)]


def test_the_objects_pass_the_api_servers_validation() -> None:
    objs = addons.dns_objects(SETTINGS, ["node-1", "node-2"])
    for obj in (objs.service, *objs.pods):
        assert _validation_errors(obj) == []


def test_selector_matches_the_pods_and_the_service_port_names_match_the_containers() -> None:
    objs = addons.dns_objects(SETTINGS, ["node-1"])
    selector = objs.service["spec"]["selector"]
    pod = objs.pods[0]
    assert selector.items() <= pod["metadata"]["labels"].items()
    assert addons.label_selector() == "k8s-app=kube-dns"
    svc_ports = {(p["name"], p["protocol"], p["targetPort"])
                 for p in objs.service["spec"]["ports"]}
    ctr_ports = {(p["name"], p["protocol"], p["containerPort"])
                 for p in pod["spec"]["containers"][0]["ports"]}
    assert svc_ports == ctr_ports


@pytest.mark.parametrize(("pod", "ready"), [
    pytest.param({}, False, id="no-status"),
    pytest.param({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}, False,
                 id="not-ready"),
    pytest.param({"status": {"conditions": [{"type": "PodScheduled", "status": "True"},
                                            {"type": "Ready", "status": "True"}]}}, True,
                 id="ready"),
])
def test_pod_ready(pod: dict[str, Any], ready: bool) -> None:
    assert addons.pod_ready(pod) is ready


# -- the settings in cluster.json ---------------------------------------------------------------


def test_config_keeps_dns_settings_only_when_chosen() -> None:
    plain = ClusterConfig(name="x", port=1)
    assert not {"dns", "dns_upstreams", "dns_pod_records"} & set(plain.to_dict())
    assert (plain.dns, plain.dns_upstreams, plain.dns_pod_records) == (False, (), "insecure")
    assert (plain.cluster_dns, plain.cluster_domain) == ("10.96.0.10", "cluster.local")
    chosen = ClusterConfig(name="x", port=1, dns=True, dns_upstreams=("172.18.0.2:5300",),
                           dns_pod_records="disabled")
    d = chosen.to_dict()
    assert (d["dns"], d["dns_upstreams"], d["dns_pod_records"]) == (
        True, ["172.18.0.2:5300"], "disabled")
    assert ClusterConfig.from_dict(d) == chosen


def test_ensure_stores_the_dns_settings_of_a_new_cluster(tmp_path: Path) -> None:
    s = state.ensure("c1", tmp_path, now=NOW, lab=LabSettings(
        nodes=2, dns=True,
        dns_upstreams=("172.18.0.2:5300", "172.18.0.2:5300", "[2001:db8::1]:53"),
        dns_pod_records="disabled"))
    config = s.load()
    assert config.dns is True
    assert config.dns_upstreams == ("172.18.0.2:5300", "2001:db8::1")
    assert config.dns_pod_records == "disabled"
    # Asked again the same (in another spelling) or not at all: no change, no error.
    state.ensure("c1", tmp_path, now=NOW, lab=LabSettings(
        dns=True, dns_upstreams=("172.18.0.2:5300", "2001:db8::1")))
    state.ensure("c1", tmp_path, now=NOW, lab=LabSettings())
    assert s.load() == config


def test_a_new_cluster_has_no_cluster_dns_unless_asked(tmp_path: Path) -> None:
    assert state.ensure("c1", tmp_path, now=NOW, lab=LabSettings(nodes=2)).load().dns is False


@pytest.mark.parametrize(("lab", "message"), [
    pytest.param(LabSettings(dns=False),
                 'cluster "c1" exists with the cluster DNS on; remove it (podnet down) to '
                 "change that", id="dns-off"),
    pytest.param(LabSettings(dns_upstreams=("192.0.2.9",)),
                 'cluster "c1" exists with DNS upstreams 172.18.0.2:5300; remove it (podnet '
                 "down) to change that", id="upstreams"),
    pytest.param(LabSettings(dns_pod_records="disabled"),
                 'cluster "c1" exists with DNS pod records insecure; remove it (podnet down) '
                 "to change that", id="pod-records"),
])
def test_ensure_refuses_to_change_the_dns_settings(tmp_path: Path, lab: LabSettings,
                                                   message: str) -> None:
    state.ensure("c1", tmp_path, now=NOW, lab=LabSettings(
        nodes=1, dns=True, dns_upstreams=("172.18.0.2:5300",)))
    with pytest.raises(StateError) as e:
        state.ensure("c1", tmp_path, now=NOW, lab=lab)
    assert str(e.value) == message


def test_ensure_names_the_default_upstreams_when_refusing(tmp_path: Path) -> None:
    state.ensure("c1", tmp_path, now=NOW, lab=LabSettings(nodes=1))
    with pytest.raises(StateError) as e:
        state.ensure("c1", tmp_path, now=NOW, lab=LabSettings(dns_upstreams=("192.0.2.9",)))
    assert str(e.value) == ('cluster "c1" exists with DNS upstreams from the node\'s '
                            "resolv.conf; remove it (podnet down) to change that")


@pytest.mark.parametrize(("lab", "message"), [
    pytest.param(LabSettings(nodes=1, dns_upstreams=("127.0.0.1",)),
                 "invalid DNS upstream '127.0.0.1': a loopback or unspecified address would be "
                 "the DNS pod itself", id="loopback"),
    pytest.param(LabSettings(nodes=1, dns_pod_records="verified"),
                 "DNS pod records must be one of insecure, disabled, not 'verified'",
                 id="pod-records"),
])
def test_ensure_refuses_bad_dns_settings(tmp_path: Path, lab: LabSettings,
                                         message: str) -> None:
    with pytest.raises(StateError) as e:
        state.ensure("c1", tmp_path, now=NOW, lab=lab)
    assert str(e.value) == message
    assert not (tmp_path / "c1" / "cluster.json").exists()


# -- where the settings come from: the command line, the nodes' resolv.conf -------------------


def test_up_options() -> None:
    from podnet.cli.main import build_parser

    args = build_parser().parse_args(["up", "--dns-upstream", "172.18.0.2:5300",
                                      "--dns-upstream", "192.0.2.53", "--no-pod-records",
                                      "--no-dns"])
    assert (args.dns_upstream, args.no_pod_records, args.no_dns) == (
        ["172.18.0.2:5300", "192.0.2.53"], True, True)
    args = build_parser().parse_args(["up"])
    assert (args.dns_upstream, args.no_pod_records, args.no_dns) == (None, False, False)


def test_upstreams_are_the_clusters_or_else_the_nodes_resolv_conf(tmp_path: Path) -> None:
    from podnet.cluster.lifecycle import dns_upstreams

    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.53\nnameserver 192.0.2.1\n")
    assert dns_upstreams(ClusterConfig(name="x", port=1), resolv) == (("192.0.2.1",),
                                                                      ("127.0.0.53",))
    chosen = ClusterConfig(name="x", port=1, dns_upstreams=("172.18.0.2:5300",))
    assert dns_upstreams(chosen, resolv) == (("172.18.0.2:5300",), ())
    assert dns_upstreams(ClusterConfig(name="x", port=1), tmp_path / "missing") == ((), ())
