"""The cluster state directory, its PKI and its kubeconfig, made in a temporary directory.

No sockets: port probing is replaced by fakes."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from podnet.client.http import Client
from podnet.cluster import pki, state
from podnet.cluster.state import ClusterConfig, ClusterState, StateError

NOW = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
SANS_DNS = {"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local"}


@pytest.fixture(autouse=True)
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every port is free; the kernel hands out 40000, 40001, ..."""
    counter = iter(range(40000, 41000))
    monkeypatch.setattr(state, "port_free", lambda bind, port: True)
    monkeypatch.setattr(state, "ephemeral_port", lambda bind: next(counter))
    monkeypatch.delenv(state.ENV_ROOT, raising=False)
    monkeypatch.delenv(state.ENV_NAME, raising=False)


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


# -- names and roots --------------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    pytest.param("podnet", id="default"),
    pytest.param("a", id="one-char"),
    pytest.param("t0123456789abcdef", id="test-style"),
    pytest.param("a" * 20, id="max-length"),
    pytest.param("my-cluster-1", id="dashes"),
])
def test_valid_cluster_names(name: str) -> None:
    assert state.name_problems(name) == []
    assert state.resolve_name(name) == name


@pytest.mark.parametrize("name,problem", [
    pytest.param("a" * 21, "must be no more than 20 characters", id="too-long"),
    pytest.param("Podnet", "a lowercase RFC 1123 label", id="upper-case"),
    pytest.param("-podnet", "a lowercase RFC 1123 label", id="leading-dash"),
    pytest.param("pod_net", "a lowercase RFC 1123 label", id="underscore"),
    pytest.param("pod.net", "a lowercase RFC 1123 label", id="dot"),
])
def test_invalid_cluster_names(name: str, problem: str) -> None:
    problems = state.name_problems(name)
    assert len(problems) == 1
    assert problems[0].startswith(problem)
    with pytest.raises(StateError, match=f"invalid cluster name '{name}'"):
        state.resolve_name(name)


def test_too_long_and_bad_name_reports_both() -> None:
    problems = state.name_problems("A" * 21)
    assert problems[0] == "must be no more than 20 characters"
    assert problems[1].startswith("a lowercase RFC 1123 label")
    assert len(problems) == 2


def test_name_and_root_come_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    assert state.resolve_name() == "podnet"
    assert state.resolve_root() == Path("/var/lib/podnet")
    monkeypatch.setenv("PODNET_CLUSTER", "envname")
    monkeypatch.setenv("PODNET_STATE_ROOT", str(tmp_path))
    assert state.resolve_name() == "envname"
    assert state.resolve_name("explicit") == "explicit"
    assert state.resolve_root() == tmp_path
    assert ClusterState.locate() == ClusterState("envname", tmp_path / "envname")


def test_state_paths(tmp_path: Path) -> None:
    s = ClusterState.locate("c1", tmp_path)
    d = tmp_path / "c1"
    assert s.dir == d
    assert [s.cluster_json, s.ca_crt, s.ca_key, s.server_crt, s.server_key, s.token_path,
            s.kubeconfig, s.store_db, s.server_log, s.server_pid] == [
        d / "cluster.json", d / "pki/ca.crt", d / "pki/ca.key", d / "pki/server.crt",
        d / "pki/server.key", d / "token", d / "kubeconfig", d / "store.db",
        d / "logs/server.log", d / "run/server.pid"]
    assert ClusterState.from_dir(d) == s


# -- ensure -----------------------------------------------------------------------------------


def test_ensure_creates_everything(tmp_path: Path) -> None:
    s = state.ensure("c1", tmp_path, now=NOW)
    assert json.loads(s.cluster_json.read_text()) == {
        "name": "c1", "bind": "127.0.0.1", "port": 6443, "service_cidr": "10.96.0.0/12",
        "cluster_cidr": "10.244.0.0/16", "node_port_range": "30000-32767",
        "created": "2030-01-02T03:04:05Z", "nodes": 0, "backend": "host-gw",
        "lan_cidr": "172.18.0.0/24", "cni": "podnet", "node_cidr_mask": 24,
    }
    for secret in (s.ca_key, s.server_key, s.token_path, s.kubeconfig):
        assert mode(secret) == 0o600, secret
    assert mode(s.dir) == 0o700
    assert mode(s.pki_dir) == 0o700
    assert len(s.read_token()) == 64
    assert s.logs_dir.is_dir()
    assert s.run_dir.is_dir()
    assert not s.store_db.exists()


def test_ensure_is_idempotent(tmp_path: Path) -> None:
    s = state.ensure("c1", tmp_path, now=NOW)
    before = {p: p.read_bytes() for p in (s.cluster_json, s.ca_crt, s.ca_key, s.server_crt,
                                          s.server_key, s.token_path, s.kubeconfig)}
    state.ensure("c1", tmp_path, now=NOW + dt.timedelta(days=1))
    after = {p: p.read_bytes() for p in before}
    assert after == before


def test_ensure_restores_missing_pieces_keeping_the_ca(tmp_path: Path) -> None:
    s = state.ensure("c1", tmp_path, now=NOW)
    ca, token = s.ca_crt.read_bytes(), s.read_token()
    s.server_crt.unlink()
    s.kubeconfig.unlink()
    state.ensure("c1", tmp_path, now=NOW)
    assert s.ca_crt.read_bytes() == ca
    assert s.read_token() == token
    server = x509.load_pem_x509_certificate(s.server_crt.read_bytes())
    server.verify_directly_issued_by(x509.load_pem_x509_certificate(ca))
    assert s.kubeconfig.is_file()


def test_ensure_reissues_the_server_cert_for_new_ips(tmp_path: Path) -> None:
    s = state.ensure("c1", tmp_path, now=NOW)
    ca, old = s.ca_crt.read_bytes(), s.server_crt.read_bytes()
    state.ensure("c1", tmp_path, extra_ips=["192.168.5.1"], now=NOW)
    assert s.ca_crt.read_bytes() == ca
    assert s.server_crt.read_bytes() != old
    _, ips = pki.cert_sans(x509.load_pem_x509_certificate(s.server_crt.read_bytes()))
    assert ipaddress.ip_address("192.168.5.1") in ips


def test_ensure_reissues_a_server_cert_about_to_expire(tmp_path: Path) -> None:
    s = state.ensure("c1", tmp_path, now=NOW)
    old = s.server_crt.read_bytes()
    state.ensure("c1", tmp_path, now=NOW + dt.timedelta(days=340))
    assert s.server_crt.read_bytes() != old


def test_second_cluster_gets_another_port(tmp_path: Path) -> None:
    a = state.ensure("a", tmp_path, now=NOW)
    b = state.ensure("b", tmp_path, now=NOW)
    assert a.load().port == 6443
    assert b.load().port == 40000
    assert state.claimed_ports(tmp_path) == {6443, 40000}


def test_taken_default_port_falls_back_to_a_kernel_port(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "port_free", lambda bind, port: port != 6443)
    assert state.ensure("c1", tmp_path, now=NOW).load().port == 40000


def test_choose_port_skips_ports_of_other_clusters() -> None:
    assert state.choose_port("127.0.0.1", taken={6443, 40000, 40001}) == 40002


def test_ensure_refuses_a_directory_of_another_cluster(tmp_path: Path) -> None:
    s = state.ensure("c1", tmp_path, now=NOW)
    s.save(ClusterConfig(name="other", port=1234))
    with pytest.raises(StateError, match="belongs to cluster 'other'"):
        state.ensure("c1", tmp_path, now=NOW)


# -- cluster.json, pid file, atomic writes ------------------------------------------------------


def test_config_round_trip_and_url() -> None:
    c = ClusterConfig(name="x", port=7000, created="t")
    assert ClusterConfig.from_dict(c.to_dict()) == c
    assert list(c.to_dict()) == ["name", "bind", "port", "service_cidr", "cluster_cidr",
                                 "node_port_range", "created", "nodes", "backend",
                                 "lan_cidr", "cni", "node_cidr_mask"]
    assert c.server_url == "https://127.0.0.1:7000"
    assert ClusterConfig(name="x", port=1, bind="::1").server_url == "https://[::1]:1"


@pytest.mark.parametrize("data", [
    pytest.param({"port": 1}, id="no-name"),
    pytest.param({"name": "x"}, id="no-port"),
    pytest.param({"name": "x", "port": "many"}, id="bad-port"),
])
def test_bad_config(data: dict[str, object]) -> None:
    with pytest.raises(StateError, match=r"bad cluster\.json"):
        ClusterConfig.from_dict(data)


def test_load_of_a_missing_cluster(tmp_path: Path) -> None:
    s = ClusterState.locate("nope", tmp_path)
    assert not s.exists()
    with pytest.raises(StateError, match=r'cluster "nope" does not exist'):
        s.load()


@pytest.mark.parametrize("content,pid", [
    pytest.param("1234\n", 1234, id="pid"),
    pytest.param("", None, id="empty"),
    pytest.param("garbage", None, id="garbage"),
    pytest.param("0", None, id="zero"),
])
def test_read_pid(tmp_path: Path, content: str, pid: int | None) -> None:
    s = ClusterState.locate("c1", tmp_path)
    s.run_dir.mkdir(parents=True)
    s.server_pid.write_text(content)
    assert s.read_pid() == pid


def test_write_and_clear_pid(tmp_path: Path) -> None:
    s = ClusterState.locate("c1", tmp_path)
    assert s.read_pid() is None
    s.write_pid(42)
    assert s.server_pid.read_text() == "42\n"
    s.clear_pid()
    s.clear_pid()
    assert not s.server_pid.exists()


def test_write_atomic_sets_the_mode_and_leaves_no_temp_file(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_text("old")
    p.chmod(0o644)
    state.write_atomic(p, b"secret", 0o600)
    assert p.read_bytes() == b"secret"
    assert mode(p) == 0o600
    assert [x.name for x in tmp_path.iterdir()] == ["f"]


# -- PKI --------------------------------------------------------------------------------------


def test_ca_certificate(tmp_path: Path) -> None:
    s = state.ensure("c1", tmp_path, now=NOW)
    ca = x509.load_pem_x509_certificate(s.ca_crt.read_bytes())
    assert ca.subject.rfc4514_string() == "CN=c1-ca,O=podnet"
    assert ca.issuer == ca.subject
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign is True
    assert ca.not_valid_after_utc - NOW == dt.timedelta(days=3650)
    assert ca.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]


def test_server_certificate(tmp_path: Path) -> None:
    s = state.ensure("c1", tmp_path, now=NOW)
    ca = x509.load_pem_x509_certificate(s.ca_crt.read_bytes())
    srv = x509.load_pem_x509_certificate(s.server_crt.read_bytes())
    srv.verify_directly_issued_by(ca)
    dns, ips = pki.cert_sans(srv)
    assert dns == SANS_DNS
    assert ips == {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("10.96.0.1")}
    assert srv.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    eku = srv.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]
    assert srv.not_valid_after_utc - NOW == dt.timedelta(days=365)


@pytest.mark.parametrize("cidr,first", [
    pytest.param("10.96.0.0/12", "10.96.0.1", id="default"),
    pytest.param("10.100.0.0/16", "10.100.0.1", id="other"),
    pytest.param("fd00:10:96::/112", "fd00:10:96::1", id="ipv6"),
])
def test_first_service_ip(cidr: str, first: str) -> None:
    assert pki.first_service_ip(cidr) == ipaddress.ip_address(first)


def test_server_ips_are_ordered_and_unique() -> None:
    assert [str(i) for i in pki.server_ips("10.96.0.0/12", ["10.0.0.5", "127.0.0.1"])] == [
        "127.0.0.1", "10.96.0.1", "10.0.0.5"]


def test_server_cert_ok() -> None:
    ca = pki.make_ca("x-ca", NOW)
    other_ca = pki.make_ca("y-ca", NOW)
    ips = pki.server_ips("10.96.0.0/12")
    srv = pki.make_server_cert(ca, common_name="x", dns_names=pki.SERVER_DNS_NAMES, ips=ips,
                               now=NOW)
    dns = pki.SERVER_DNS_NAMES
    assert pki.server_cert_ok(srv, ca.cert_pem, dns_names=dns, ips=ips, now=NOW)
    assert not pki.server_cert_ok(srv, other_ca.cert_pem, dns_names=dns, ips=ips, now=NOW)
    later = NOW + dt.timedelta(days=340)
    assert not pki.server_cert_ok(srv, ca.cert_pem, dns_names=dns, ips=ips, now=later)
    assert not pki.server_cert_ok(srv, ca.cert_pem, dns_names=["extra.example"], ips=ips,
                                  now=NOW)
    mixed = pki.CertKey(srv.cert_pem, other_ca.key_pem)
    assert not pki.server_cert_ok(mixed, ca.cert_pem, dns_names=dns, ips=ips, now=NOW)
    assert pki.is_ca_pair(ca)
    assert not pki.is_ca_pair(pki.CertKey(ca.cert_pem, other_ca.key_pem))


# -- kubeconfig -------------------------------------------------------------------------------


def test_kubeconfig_contents(tmp_path: Path) -> None:
    s = state.ensure("c1", tmp_path, now=NOW)
    kc = yaml.safe_load(s.kubeconfig.read_text())
    ca_data = kc["clusters"][0]["cluster"].pop("certificate-authority-data")
    assert base64.b64decode(ca_data) == s.ca_crt.read_bytes()
    assert kc == {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c1", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "c1-admin", "user": {"token": s.read_token()}}],
        "contexts": [{"name": "c1", "context": {"cluster": "c1", "user": "c1-admin"}}],
        "current-context": "c1",
        "preferences": {},
    }


def test_client_from_kubeconfig_and_state(tmp_path: Path) -> None:
    s = state.ensure("c1", tmp_path, now=NOW)
    for c in (Client.from_kubeconfig(s.kubeconfig), Client.from_state(s)):
        assert (c.scheme, c.host, c.port) == ("https", "127.0.0.1", 6443)
        assert c.token == s.read_token()
        assert c.ssl_context is not None
        assert c.ssl_context.check_hostname is True


def test_an_explicit_port_is_kept_and_cannot_change(tmp_path: Path) -> None:
    assert state.ensure("c1", tmp_path, port=7443, now=NOW).load().port == 7443
    assert state.ensure("c1", tmp_path, now=NOW).load().port == 7443
    with pytest.raises(StateError, match='cluster "c1" exists with port 7443'):
        state.ensure("c1", tmp_path, port=8443, now=NOW)
