"""The routing table -> HAProxy configuration, and the changes between two configurations.

Address plan: pods 10.244.1.0/24 and 10.244.2.0/24, each serving on 8080 behind Service port
80 (`http`); the files live in /run/podnet-ingress, the Runtime API socket is
/run/podnet-ingress/admin.sock. Certificates are stand-in PEM text: routes.py is what parses
real ones (tests/unit/test_ingress_routes.py).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from podnet.ingress import haproxy, routes
from podnet.ingress.haproxy import Command, MapReplace
from podnet.ingress.routes import (
    EXACT,
    PREFIX,
    Backend,
    BackendRef,
    Certificate,
    Endpoint,
    HostRules,
    IngressRef,
    PathRule,
    Route,
    RouteTable,
)

Obj = dict[str, Any]
DIR = "/run/podnet-ingress"
SOCKET = f"{DIR}/admin.sock"
DEFAULT_PEM = (b"-----BEGIN CERTIFICATE-----\nZGVmYXVsdA==\n-----END CERTIFICATE-----\n"
               b"-----BEGIN PRIVATE KEY-----\nZGVmYXVsdA==\n-----END PRIVATE KEY-----\n")
PEM_A = (b"-----BEGIN CERTIFICATE-----\nYQ==\n-----END CERTIFICATE-----\n"
         b"-----BEGIN PRIVATE KEY-----\nYQ==\n-----END PRIVATE KEY-----\n")
PEM_A2 = PEM_A.replace(b"YQ==", b"YTI=")
ING = IngressRef("default", "web")
WEB = BackendRef("default", "web", 80)
API = BackendRef("default", "api", "http")
GONE = BackendRef("default", "gone", 80)


def eps(*ips: str, port: int = 8080) -> tuple[Endpoint, ...]:
    return tuple(Endpoint(ip, port) for ip in ips)


def prule(p: str, backend: BackendRef, kind: str = PREFIX) -> PathRule:
    normalized = p if kind == EXACT else p.rstrip("/")
    return PathRule(normalized, kind, backend, ING, p, kind)


def table(hosts: dict[str, list[PathRule]] | None = None,
          backends: dict[BackendRef, tuple[Endpoint, ...]] | None = None,
          default: BackendRef | None = None, certificates: tuple[Certificate, ...] = (),
          default_cert_hosts: tuple[str, ...] = ()) -> RouteTable:
    hosts = {"a.example.com": [prule("/", WEB), prule("/api", API),
                               prule("/api/health", WEB, EXACT)],
             "*.example.com": [prule("/", API)],
             "": [prule("/gone", GONE)]} if hosts is None else hosts
    backends = {WEB: eps("10.244.1.5", "10.244.2.5"), API: eps("10.244.2.7", port=9000),
                GONE: ()} if backends is None else backends
    return RouteTable(
        hosts=tuple(HostRules(h, tuple(r)) for h, r in sorted(hosts.items())),
        default=Route(default, ING, "", "", routes.DEFAULT) if default else None,
        backends=tuple(Backend(ref, e) for ref, e in sorted(backends.items(), key=str)),
        certificates=certificates, default_cert_hosts=default_cert_hosts)


def render(t: RouteTable, previous: haproxy.Config | None = None,
           **options: Any) -> haproxy.Config:
    return haproxy.render(t, directory=DIR, socket=SOCKET, default_cert=DEFAULT_PEM,
                          previous=previous, **options)


CERT_A = Certificate("default_tls-a", ("default", "tls-a"), PEM_A, ("a.example.com",))
BASE = table(default=WEB, certificates=(CERT_A,), default_cert_hosts=("b.example.com",))

GOLDEN_CFG = f"""\
# HAProxy configuration of podnet's ingress, rendered by podnet.ingress.haproxy:
# do not edit. Routes are in the map files, not here (see that module).
global
    master-worker
    stats socket {SOCKET} mode 600 level admin expose-fd listeners
    stats timeout 30s
    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets
    tune.ssl.default-dh-param 2048

defaults
    mode http
    option http-keep-alive
    option idle-close-on-response
    option redispatch 1
    retries 3
    retry-on conn-failure
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 60s
    timeout queue 10s
    timeout tunnel 1h
    timeout client-fin 10s
    timeout server-fin 10s

frontend healthz
    bind :10254
    monitor-uri /healthz

frontend ingress
    bind :80
    bind :443 ssl crt-list {DIR}/certificates.list alpn h2,http/1.1
    http-request set-header X-Forwarded-Proto https if {{ ssl_fc }}
    http-request set-header X-Forwarded-Proto http unless {{ ssl_fc }}
    http-request set-header X-Forwarded-For %[src]
    http-request set-header X-Forwarded-Host %[req.hdr(host)] if {{ req.hdr(host) -m found }}
    http-request del-header X-Forwarded-Host unless {{ req.hdr(host) -m found }}
    http-request set-header X-Forwarded-Port %[dst_port]
    http-request deny deny_status 400 if {{ req.ver 1.1 }} !{{ req.hdr_cnt(host) gt 0 }}
    http-request set-var(txn.host) req.hdr(host),host_only
    http-request deny deny_status 400 if {{ var(txn.host) -m sub / }}
    http-request set-var(txn.path) path
    http-request set-var(txn.hkey) str(),concat(,txn.host,),concat(,txn.path,)
    http-request set-var(txn.wkey) var(txn.host),regsub('^[^.]+[.]','*.'),concat(,txn.path,)
    http-request set-var(txn.pkey) str(),concat(,txn.path,)
    http-request set-var(txn.backend) var(txn.hkey),map_str({DIR}/routes-exact.map)
    http-request set-var(txn.backend) var(txn.hkey),concat(/),map_beg({DIR}/routes-prefix.map) \
unless {{ var(txn.backend) -m found }}
    http-request set-var(txn.backend) var(txn.wkey),map_str({DIR}/routes-exact.map) \
unless {{ var(txn.backend) -m found }}
    http-request set-var(txn.backend) var(txn.wkey),concat(/),map_beg({DIR}/routes-prefix.map) \
unless {{ var(txn.backend) -m found }}
    http-request set-var(txn.backend) var(txn.pkey),map_str({DIR}/routes-exact.map) \
unless {{ var(txn.backend) -m found }}
    http-request set-var(txn.backend) var(txn.pkey),concat(/),map_beg({DIR}/routes-prefix.map) \
unless {{ var(txn.backend) -m found }}
    http-request set-var(txn.backend) str(default),map_str({DIR}/default.map) \
unless {{ var(txn.backend) -m found }}
    use_backend %[var(txn.backend)] if {{ var(txn.backend) -m found }}
    default_backend podnet_404

backend podnet_404
    http-request return status 404 content-type text/plain string "404 page not found \
(podnet ingress)"

backend svc_default_api_http
    balance roundrobin
    server s1 10.244.2.7:9000
    server s2 0.0.0.0:1 disabled
    server s3 0.0.0.0:1 disabled
    server s4 0.0.0.0:1 disabled
    server s5 0.0.0.0:1 disabled
    server s6 0.0.0.0:1 disabled
    server s7 0.0.0.0:1 disabled
    server s8 0.0.0.0:1 disabled

backend svc_default_gone_80
    balance roundrobin
    server s1 0.0.0.0:1 disabled
    server s2 0.0.0.0:1 disabled
    server s3 0.0.0.0:1 disabled
    server s4 0.0.0.0:1 disabled
    server s5 0.0.0.0:1 disabled
    server s6 0.0.0.0:1 disabled
    server s7 0.0.0.0:1 disabled
    server s8 0.0.0.0:1 disabled

backend svc_default_web_80
    balance roundrobin
    server s1 10.244.1.5:8080
    server s2 10.244.2.5:8080
    server s3 0.0.0.0:1 disabled
    server s4 0.0.0.0:1 disabled
    server s5 0.0.0.0:1 disabled
    server s6 0.0.0.0:1 disabled
    server s7 0.0.0.0:1 disabled
    server s8 0.0.0.0:1 disabled
"""


def test_golden_configuration() -> None:
    config = render(BASE)
    assert config.text == GOLDEN_CFG
    assert config.warnings == ()


def test_golden_files() -> None:
    files = render(BASE).files
    assert dict(files) == {
        "routes-exact.map": b"a.example.com/api/health svc_default_web_80\n",
        "routes-prefix.map": (b"a.example.com/api/ svc_default_api_http\n"
                              b"*.example.com/ svc_default_api_http\n"
                              b"a.example.com/ svc_default_web_80\n"
                              b"/gone/ svc_default_gone_80\n"),
        "default.map": b"default svc_default_web_80\n",
        "certificates.list": (f"{DIR}/default.pem !*\n"
                              f"{DIR}/certs/default_tls-a.pem a.example.com\n"
                              f"{DIR}/default.pem b.example.com\n").encode(),
        "default.pem": DEFAULT_PEM,
        "certs/default_tls-a.pem": PEM_A,
    }


def test_options_change_binds_and_global() -> None:
    text = render(BASE, http_port=8080, https_port=None, health_port=9000,
                  bind_address="10.0.0.1", maxconn=500, nbthread=2).text
    assert "    bind 10.0.0.1:8080\n" in text
    assert "ssl crt-list" not in text
    assert "    bind 10.0.0.1:9000\n" in text
    assert "    tune.ssl.default-dh-param 2048\n    maxconn 500\n    nbthread 2\n" in text
    assert "maxconn" not in render(BASE).text


@pytest.mark.parametrize(("options", "message"), [
    pytest.param({"directory": "/run/x y"}, "directory '/run/x y'", id="dir-with-space"),
    pytest.param({"directory": "/run/x\nglobal"}, "directory '/run/x\\nglobal'",
                 id="dir-with-newline"),
    pytest.param({"directory": "run/x"}, "directory 'run/x'", id="dir-relative"),
    pytest.param({"socket": "/run/a.sock level admin"}, "socket '/run/a.sock level admin'",
                 id="socket-with-words"),
    pytest.param({"http_port": 0}, "http_port 0", id="port-zero"),
    pytest.param({"https_port": 70000}, "https_port 70000", id="port-too-big"),
    pytest.param({"bind_address": "0.0.0.0\n"}, "bind_address '0.0.0.0\\n'",
                 id="address-with-newline"),
    pytest.param({"default_cert": b"junk"}, "default_cert", id="default-cert-not-pem"),
    pytest.param({"default_cert": DEFAULT_PEM.replace(b"\n-----BEGIN P", b"\n\n-----BEGIN P")},
                 "default_cert", id="default-cert-blank-line"),
    pytest.param({"maxconn": 0}, "maxconn 0", id="maxconn-zero"),
])
def test_render_refuses_bad_options(options: Obj, message: str) -> None:
    kwargs: Obj = {"directory": DIR, "socket": SOCKET, "default_cert": DEFAULT_PEM, **options}
    with pytest.raises(ValueError, match=re.escape(message)):
        haproxy.render(BASE, **kwargs)


# --- names and slots ----------------------------------------------------------------------------

@pytest.mark.parametrize(("ref", "name"), [
    pytest.param(BackendRef("default", "web", 80), "svc_default_web_80", id="number"),
    pytest.param(BackendRef("shop", "cart-api", "http-alt"), "svc_shop_cart-api_http-alt",
                 id="name"),
    pytest.param(BackendRef("a\nb", "web", 80), "svc_x4184c3201dfb91a8", id="newline-hashed"),
    pytest.param(BackendRef("default", "we b", 80), "svc_x258b4b6a9e682c8e",
                 id="space-hashed"),
    pytest.param(BackendRef("default", "Web", 80), "svc_x71aed92017d27176",
                 id="uppercase-hashed"),
])
def test_backend_name(ref: BackendRef, name: str) -> None:
    assert haproxy.backend_name(ref) == name


def test_backend_names_are_unambiguous() -> None:
    assert haproxy.backend_name(BackendRef("a-b", "c", 80)) != \
        haproxy.backend_name(BackendRef("a", "b-c", 80))


@pytest.mark.parametrize(("endpoints", "previous", "slots"), [
    pytest.param(0, 0, 8, id="none"),
    pytest.param(4, 0, 8, id="four"),
    pytest.param(5, 0, 16, id="five-doubles"),
    pytest.param(10, 0, 32, id="ten"),
    pytest.param(10, 16, 16, id="keeps-previous-that-fits"),
    pytest.param(17, 16, 64, id="grows"),
    pytest.param(1, 32, 32, id="keeps-while-not-four-times-too-big"),
    pytest.param(1, 64, 8, id="shrinks-when-far-too-big"),
])
def test_slot_count(endpoints: int, previous: int, slots: int) -> None:
    assert haproxy.slot_count(endpoints, previous) == slots


E1, E2, E3, E4 = eps("10.244.1.1", "10.244.1.2", "10.244.1.3", "10.244.1.4")


@pytest.mark.parametrize(("endpoints", "previous", "expected"), [
    pytest.param((E1, E2), (), (E1, E2, None, None, None, None, None, None), id="fresh"),
    pytest.param((E2, E3), (E1, E2, None, None, None, None, None, None),
                 (None, E2, E3, None, None, None, None, None), id="kept-new-avoids-freed"),
    pytest.param((E3, E4), (E1, E2, E3, E4, E1, E2, E3, E4),
                 (None, None, E3, E4, None, None, None, None), id="duplicates-in-previous"),
    pytest.param((E1, E2, E3), (None, None, E3, None, None, None, None, None),
                 (E1, E2, E3, None, None, None, None, None), id="fills-lowest"),
])
def test_assign_slots(endpoints: tuple[Endpoint, ...], previous: tuple[Endpoint | None, ...],
                      expected: tuple[Endpoint | None, ...]) -> None:
    assert haproxy.assign_slots(endpoints, previous) == expected


def test_previous_keeps_endpoints_in_their_slots() -> None:
    first = render(BASE)
    changed = table(default=WEB, backends={WEB: eps("10.244.2.5", "10.244.2.6"),
                                           API: eps("10.244.2.7", port=9000), GONE: ()},
                    certificates=(CERT_A,), default_cert_hosts=("b.example.com",))
    slots = render(changed, previous=first).slots("svc_default_web_80")
    assert slots is not None
    assert slots.servers[:3] == (None, Endpoint("10.244.2.5", 8080),
                                 Endpoint("10.244.2.6", 8080))


# --- injection ----------------------------------------------------------------------------------
# Tables built by hand, past routes.py's own checks: the renderer must stand on its own.

HOSTILE = [
    "/a b",
    "/a\n    server evil 1.2.3.4:80",
    "/a\r\nbackend evil",
    "/a\tb",
    "/a\x00b",
    "/\u00e9",
    "/" + "x" * 5000,
]


@pytest.mark.parametrize("bad_path", [pytest.param(p, id=repr(p)[:20]) for p in HOSTILE])
def test_hostile_paths_never_reach_a_file(bad_path: str) -> None:
    config = render(table(hosts={"a.example.com": [prule(bad_path, WEB, EXACT),
                                                   prule("/ok", WEB, EXACT)]}))
    assert config.files["routes-exact.map"] == b"a.example.com/ok svc_default_web_80\n"
    assert config.warnings == (f"route {'a.example.com' + bad_path!r} refused: not a valid "
                               "map key",)
    assert bad_path not in config.text


@pytest.mark.parametrize("bad_host", [
    pytest.param("a.example.com\nfrontend evil", id="newline"),
    pytest.param("a.example.com ", id="space"),
    pytest.param("#a.example.com", id="comment"),
    pytest.param("A.example.com", id="uppercase"),
])
def test_hostile_hosts_never_reach_a_file(bad_host: str) -> None:
    config = render(table(hosts={bad_host: [prule("/", WEB)]},
                          certificates=(Certificate("default_x", ("default", "x"), PEM_A,
                                                    (bad_host,)),),
                          default_cert_hosts=(bad_host,)))
    assert config.files["routes-prefix.map"] == b""
    assert config.files["certificates.list"] == f"{DIR}/default.pem !*\n".encode()
    assert config.warnings == (f"route {bad_host + '/'!r} refused: not a valid map key",
                               "certificate 'default_x' refused")


def test_special_characters_in_valid_paths_are_map_data() -> None:
    odd = ["/a;b", "/a\\b", "/a%0Ab", "/a\"b", "/a'b", "/{x}", "/a#b", "/%"]
    config = render(table(hosts={"": [prule(p, WEB, EXACT) for p in odd]}))
    assert config.files["routes-exact.map"].decode().splitlines() == sorted(
        f"{p} svc_default_web_80" for p in odd)
    assert config.text == render(table(hosts={})).text


def test_hostile_names_and_addresses() -> None:
    evil = BackendRef("default", "web\n    server evil 6.6.6.6:80", 80)
    config = render(table(hosts={"": [prule("/", evil)]},
                          backends={evil: (Endpoint("10.0.0.1\nbind :1", 80),
                                           Endpoint("10.0.0.2", 80))},
                          certificates=(Certificate("../../etc/x", ("default", "x"), PEM_A,
                                                    ("a.example.com",)),)))
    assert "evil" not in config.text
    assert "6.6.6.6" not in config.text
    assert "10.0.0.1" not in config.text
    assert "\nbackend svc_x797976868b0001b6\n    balance roundrobin\n    server s1 10.0.0.2:80\n" \
        "    server s2 0.0.0.0:1 disabled\n" in config.text
    assert config.files["certificates.list"] == f"{DIR}/default.pem !*\n".encode()
    assert "certs/../../etc/x.pem" not in config.files


def test_certificate_with_blank_line_is_refused() -> None:
    bad = Certificate("default_b", ("default", "b"), PEM_A.replace(b"\n-----BEGIN P",
                                                                   b"\n\n-----BEGIN P"),
                      ("b.example.com",))
    config = render(table(certificates=(bad,)))
    assert config.warnings == ("certificate 'default_b' refused",)
    assert "certs/default_b.pem" not in config.files


def test_every_config_line_is_from_the_template() -> None:
    """Whatever the table holds, each line of haproxy.cfg has one of the template's shapes."""
    config = render(routes.build(
        [{"metadata": {"namespace": "default", "name": "evil"},
          "spec": {"ingressClassName": "podnet", "rules": [
              {"host": "a.example.com\n  bind :1", "http": {"paths": [
                  {"path": "/x", "pathType": "Prefix", "backend": {"service": {
                      "name": "web", "port": {"number": 80}}}}]}},
              {"http": {"paths": [{"path": "/y\nuse_backend x", "pathType": "Exact",
                                   "backend": {"service": {"name": "web",
                                                           "port": {"number": 80}}}}]}}],
                   "defaultBackend": {"service": {"name": "web\n#", "port": {"number": 1}}}},
          }],
        [{"metadata": {"name": "podnet"}, "spec": {"controller": routes.CONTROLLER}}],
        [], [], []))
    shapes = re.compile(
        r"|#.*|global|defaults|frontend (healthz|ingress)|backend (podnet_404|svc_[a-z0-9_-]+)"
        r"|    [a-z].*")
    for line in config.text.splitlines():
        assert shapes.fullmatch(line), line
    assert config.files["routes-exact.map"] == b""
    assert config.files["routes-prefix.map"] == b""
    assert config.files["default.map"] == b""


# --- changes: reload or Runtime API -------------------------------------------------------------

def changes(old: RouteTable, new: RouteTable) -> tuple[bool, tuple[haproxy.RuntimeOp, ...]]:
    before = render(old)
    after = render(new, previous=before)
    return haproxy.needs_reload(before, after), haproxy.runtime_commands(before, after)


def with_backends(**changes: tuple[Endpoint, ...]) -> RouteTable:
    backends = {WEB: eps("10.244.1.5", "10.244.2.5"), API: eps("10.244.2.7", port=9000),
                GONE: ()}
    by_name = {"web": WEB, "api": API, "gone": GONE}
    backends.update({by_name[k]: v for k, v in changes.items()})
    return table(default=WEB, backends=backends, certificates=(CERT_A,),
                 default_cert_hosts=("b.example.com",))


def test_first_render_needs_a_start() -> None:
    assert haproxy.needs_reload(None, render(BASE))


def test_nothing_changed() -> None:
    assert changes(BASE, BASE) == (False, ())


def test_endpoint_added_and_removed_at_run_time() -> None:
    reload, ops = changes(BASE, with_backends(web=eps("10.244.2.5", "10.244.2.9"),
                                              gone=eps("10.244.1.20")))
    assert not reload
    assert ops == (
        Command("set server svc_default_gone_80/s1 addr 10.244.1.20 port 8080\n"),
        Command("set server svc_default_gone_80/s1 state ready\n"),
        Command("set server svc_default_web_80/s3 addr 10.244.2.9 port 8080\n"),
        Command("set server svc_default_web_80/s3 state ready\n"),
        Command("set server svc_default_web_80/s1 state maint\n"),
    )


def test_endpoints_beyond_the_slots_need_a_reload() -> None:
    many = eps(*(f"10.244.1.{i}" for i in range(1, 10)))
    reload, _ = changes(BASE, with_backends(web=many))
    assert reload


def test_route_between_existing_backends_changes_maps_only() -> None:
    new = table(hosts={"a.example.com": [prule("/", WEB), prule("/api", API),
                                         prule("/api/health", WEB, EXACT),
                                         prule("/v2", API)],
                       "*.example.com": [prule("/", API)], "": [prule("/gone", GONE)]},
                default=API, certificates=(CERT_A,), default_cert_hosts=("b.example.com",))
    reload, ops = changes(BASE, new)
    assert not reload
    assert ops == (
        MapReplace(f"{DIR}/default.map", (("default", "svc_default_api_http"),)),
        MapReplace(f"{DIR}/routes-prefix.map", (
            ("a.example.com/api/", "svc_default_api_http"),
            ("a.example.com/v2/", "svc_default_api_http"),
            ("*.example.com/", "svc_default_api_http"),
            ("a.example.com/", "svc_default_web_80"),
            ("/gone/", "svc_default_gone_80"))),
    )


def test_new_backend_needs_a_reload() -> None:
    new = table(hosts={"": [prule("/new", BackendRef("default", "new", 80))]},
                backends={BackendRef("default", "new", 80): ()})
    reload, _ = changes(BASE, new)
    assert reload


def test_removed_route_keeps_its_backend_until_a_reload() -> None:
    fewer = table(hosts={"a.example.com": [prule("/", WEB)]},
                  backends={WEB: eps("10.244.1.5", "10.244.2.5")}, default=WEB,
                  certificates=(CERT_A,), default_cert_hosts=("b.example.com",))
    before = render(BASE)
    after = render(fewer, previous=before)
    assert not haproxy.needs_reload(before, after)
    api = after.slots("svc_default_api_http")
    assert api == haproxy.ServerSlots("svc_default_api_http", API, (None,) * 8)
    assert haproxy.runtime_commands(before, after) == (
        MapReplace(f"{DIR}/routes-exact.map", ()),
        MapReplace(f"{DIR}/routes-prefix.map", (("a.example.com/", "svc_default_web_80"),)),
        Command("set server svc_default_api_http/s1 state maint\n"),
    )
    compacted = render(fewer, previous=before, compact=True)
    assert [b.backend for b in compacted.backends] == ["svc_default_web_80"]


def test_certificate_rotation_at_run_time() -> None:
    rotated = table(default=WEB, certificates=(Certificate(
        "default_tls-a", ("default", "tls-a"), PEM_A2, ("a.example.com",)),),
        default_cert_hosts=("b.example.com",))
    reload, ops = changes(BASE, rotated)
    path = f"{DIR}/certs/default_tls-a.pem"
    assert not reload
    assert ops == (Command(f"set ssl cert {path} <<\n{PEM_A2.decode()}\n"),
                   Command(f"commit ssl cert {path}\n"))


def test_new_tls_host_needs_a_reload() -> None:
    more = table(default=WEB, certificates=(Certificate(
        "default_tls-a", ("default", "tls-a"), PEM_A, ("a.example.com", "c.example.com")),),
        default_cert_hosts=("b.example.com",))
    reload, _ = changes(BASE, more)
    assert reload


def test_oversized_certificate_needs_a_reload() -> None:
    big = PEM_A + b"-----BEGIN CERTIFICATE-----\n" + b"QUFB\n" * 3000 + \
        b"-----END CERTIFICATE-----\n"
    rotated = table(default=WEB, certificates=(Certificate(
        "default_tls-a", ("default", "tls-a"), big, ("a.example.com",)),),
        default_cert_hosts=("b.example.com",))
    reload, ops = changes(BASE, rotated)
    assert reload
    assert ops == ()


def test_map_replace_commands() -> None:
    op = MapReplace("/run/m.map", (("a.example.com/x", "svc_a"), ("/y;z", "svc_b")))
    assert op.prepare() == Command("prepare map /run/m.map\n")
    assert op.fill(7) == (Command("add map @7 /run/m.map <<\na.example.com/x svc_a\n"
                                  "/y;z svc_b\n\n"),)
    assert op.commit(7) == Command("commit map @7 /run/m.map\n")
    assert MapReplace("/run/m.map").fill(3) == ()


def test_map_replace_is_chunked_under_the_cli_buffer() -> None:
    entries = tuple((f"host-{i:05d}.example.com/some/long/path/{i}", f"svc_default_s{i}_80")
                    for i in range(2000))
    commands = MapReplace(f"{DIR}/routes-exact.map", entries).fill(1)
    assert len(commands) > 1
    lines: list[str] = []
    for c in commands:
        assert len(c.text) <= haproxy.RUNTIME_PAYLOAD_MAX
        head, _, body = c.text.partition("\n")
        assert head == f"add map @1 {DIR}/routes-exact.map <<"
        assert body.endswith("\n\n") and "\n\n" not in body[:-2]
        lines += body[:-2].split("\n")
    assert lines == [f"{k} {v}" for k, v in entries]


@pytest.mark.parametrize(("reply", "version"), [
    pytest.param("New version created: 5\n", 5, id="plain"),
    pytest.param("New version created: 4294967295\n\n", 4294967295, id="large"),
])
def test_parse_version(reply: str, version: int) -> None:
    assert haproxy.parse_version(reply) == version


def test_parse_version_refuses_other_answers() -> None:
    with pytest.raises(ValueError, match="not an answer to prepare map"):
        haproxy.parse_version("Unknown map identifier.\n")


def test_reload_reasons_say_what_changed() -> None:
    before = render(BASE)
    assert haproxy.reload_reasons(None, before) == ["first configuration"]
    assert haproxy.reload_reasons(before, render(BASE, previous=before)) == []
    new = table(hosts={"": [prule("/new", BackendRef("default", "new", 80))]},
                backends={BackendRef("default", "new", 80): ()})
    assert haproxy.reload_reasons(before, render(new, previous=before)) == [
        "new backends svc_default_new_80"]
    many = eps(*(f"10.244.1.{i}" for i in range(1, 10)))
    grown = render(with_backends(web=many), previous=before)
    assert haproxy.reload_reasons(before, grown) == ["svc_default_web_80 8->32 slots"]
    fewer = table(hosts={"a.example.com": [prule("/", WEB)]},
                  backends={WEB: eps("10.244.1.5", "10.244.2.5")}, default=WEB,
                  certificates=(CERT_A,), default_cert_hosts=("b.example.com",))
    compacted = render(fewer, previous=before, compact=True)
    assert haproxy.reload_reasons(before, compacted) == [
        "backends dropped svc_default_api_http, svc_default_gone_80"]
