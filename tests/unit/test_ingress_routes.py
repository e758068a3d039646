"""Ingress objects -> the routing table, and requests routed through it with `match`.

Address plan: pods in 10.244.1.0/24 (node-1) and 10.244.2.0/24 (node-2); every backend pod
listens on 8080 behind Service port 80 (`http`). Ingresses live in `default` unless said
otherwise; `older` was created before `newer`. Hosts are under example.com and foo.com.
"""

from __future__ import annotations

import base64
import datetime
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from podnet.ingress import routes
from podnet.ingress.routes import (
    DEFAULT,
    EXACT,
    PREFIX,
    BackendRef,
    Endpoint,
    IngressRef,
    RouteWarning,
)

Obj = dict[str, Any]
T0 = "2024-01-01T00:00:00Z"
T1 = "2024-01-02T00:00:00Z"
T2 = "2024-01-03T00:00:00Z"

PODNET_CLASS = {"metadata": {"name": "podnet"}, "spec": {"controller": routes.CONTROLLER}}
DEFAULT_PODNET_CLASS = {
    "metadata": {"name": "podnet",
                 "annotations": {routes.DEFAULT_CLASS_ANNOTATION: "true"}},
    "spec": {"controller": routes.CONTROLLER}}
OTHER_CLASS = {"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}}
DEFAULT_OTHER_CLASS = {
    "metadata": {"name": "nginx", "annotations": {routes.DEFAULT_CLASS_ANNOTATION: "true"}},
    "spec": {"controller": "k8s.io/ingress-nginx"}}


def backend(service: str, port: int | str = 80) -> Obj:
    key = "number" if isinstance(port, int) else "name"
    return {"service": {"name": service, "port": {key: port}}}


def path(p: str | None, service: str, path_type: str = PREFIX, port: int | str = 80) -> Obj:
    item: Obj = {"pathType": path_type, "backend": backend(service, port)}
    if p is not None:
        item["path"] = p
    return item


def rule(host: str | None, *paths: Obj) -> Obj:
    out: Obj = {"http": {"paths": list(paths)}}
    if host is not None:
        out["host"] = host
    return out


def ingress(name: str, *rules: Obj, created: str = T0, namespace: str = "default",
            class_name: str | None = "podnet", annotations: dict[str, str] | None = None,
            default: Obj | None = None, tls: list[Obj] | None = None) -> Obj:
    spec: Obj = {"rules": list(rules)}
    if class_name is not None:
        spec["ingressClassName"] = class_name
    if default is not None:
        spec["defaultBackend"] = default
    if tls is not None:
        spec["tls"] = tls
    meta: Obj = {"namespace": namespace, "name": name, "creationTimestamp": created}
    if annotations is not None:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": spec}


def service(name: str, *ports: tuple[str, int, str], namespace: str = "default",
            **spec: Any) -> Obj:
    return {"metadata": {"namespace": namespace, "name": name},
            "spec": {"ports": [{"name": n, "port": p, "protocol": proto}
                               for n, p, proto in ports or [("http", 80, "TCP")]], **spec}}


def endpoint(ip: str, **conditions: bool) -> Obj:
    return {"addresses": [ip], "conditions": conditions or {"ready": True}}


def endpoint_slice(service_name: str, *endpoints: Obj, port: int = 8080, name: str = "http",
                   namespace: str = "default") -> Obj:
    return {"metadata": {"namespace": namespace, "name": f"{service_name}-x",
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4", "ports": [{"name": name, "port": port, "protocol": "TCP"}],
            "endpoints": list(endpoints)}


def build(*ingresses: Obj, classes: list[Obj] | None = None, services: list[Obj] | None = None,
          slices: list[Obj] | None = None, secrets: list[Obj] | None = None) -> routes.RouteTable:
    return routes.build(list(ingresses), [PODNET_CLASS] if classes is None else classes,
                        services or [], slices or [], secrets or [])


def routed(table: routes.RouteTable, host: str, request_path: str) -> str | None:
    """The Service a request reaches (`kind:service`), or None for podnet's 404."""
    route = routes.match(table, host, request_path)
    return None if route is None else f"{route.kind}:{route.backend.service}"


# --- which Ingresses are ours -------------------------------------------------------------------

@pytest.mark.parametrize(("obj", "classes", "ours"), [
    pytest.param(ingress("a"), [PODNET_CLASS], True, id="class-podnet"),
    pytest.param(ingress("a", class_name="edge"),
                 [{"metadata": {"name": "edge"}, "spec": {"controller": routes.CONTROLLER}}],
                 True, id="another-class-of-our-controller"),
    pytest.param(ingress("a", class_name="nginx"), [PODNET_CLASS, OTHER_CLASS], False,
                 id="class-of-another-controller"),
    pytest.param(ingress("a", class_name="missing"), [PODNET_CLASS], False,
                 id="class-that-does-not-exist"),
    pytest.param(ingress("a", class_name=None, annotations={routes.CLASS_ANNOTATION: "podnet"}),
                 [], True, id="deprecated-annotation-podnet"),
    pytest.param(ingress("a", class_name=None, annotations={routes.CLASS_ANNOTATION: "nginx"}),
                 [DEFAULT_PODNET_CLASS], False, id="deprecated-annotation-other-beats-default"),
    pytest.param(ingress("a", annotations={routes.CLASS_ANNOTATION: "nginx"}), [PODNET_CLASS],
                 True, id="class-field-beats-annotation"),
    pytest.param(ingress("a", class_name=None), [DEFAULT_PODNET_CLASS], True,
                 id="no-class-our-default"),
    pytest.param(ingress("a", class_name=None), [PODNET_CLASS], False,
                 id="no-class-no-default"),
    pytest.param(ingress("a", class_name=None), [PODNET_CLASS, DEFAULT_OTHER_CLASS], False,
                 id="no-class-other-default"),
    pytest.param(ingress("a", class_name=None),
                 [{**PODNET_CLASS, "metadata": {"name": "podnet", "annotations": {
                     routes.DEFAULT_CLASS_ANNOTATION: "True"}}}], False,
                 id="default-annotation-must-be-lowercase-true"),
])
def test_class_rules(obj: Obj, classes: list[Obj], ours: bool) -> None:
    assert routes.is_ours(obj, routes.our_classes(classes)) is ours


def test_only_our_ingresses_are_routed_and_listed() -> None:
    table = build(ingress("mine", rule("a.example.com", path("/", "web"))),
                  ingress("theirs", rule("a.example.com", path("/", "other")),
                          class_name="nginx"),
                  classes=[PODNET_CLASS, OTHER_CLASS])
    assert table.ingresses == (IngressRef("default", "mine"),)
    assert routed(table, "a.example.com", "/") == "Prefix:web"
    assert [b.ref.service for b in table.backends] == ["web"]


# --- hosts --------------------------------------------------------------------------------------

HOSTS = build(ingress(
    "hosts",
    rule("foo.bar.com", path("/", "foo-bar-com")),
    rule("*.foo.com", path("/", "wildcard-foo-com")),
    rule("exact.foo.com", path("/", "exact-foo-com")),
    rule("MiXed.Example.COM", path("/", "mixed"))))


@pytest.mark.parametrize(("host", "expected"), [
    pytest.param("foo.bar.com", "Prefix:foo-bar-com", id="exact-host"),
    pytest.param("FOO.Bar.com", "Prefix:foo-bar-com", id="case-insensitive"),
    pytest.param("foo.bar.com:8080", "Prefix:foo-bar-com", id="port-ignored"),
    pytest.param("subdomain.bar.com", None, id="other-host-404"),
    pytest.param("bar.foo.com", "Prefix:wildcard-foo-com", id="wildcard-one-label"),
    pytest.param("BAR.foo.com:443", "Prefix:wildcard-foo-com", id="wildcard-case-and-port"),
    pytest.param("baz.bar.foo.com", None, id="wildcard-not-two-labels"),
    pytest.param("foo.com", None, id="wildcard-not-the-apex"),
    pytest.param("exact.foo.com", "Prefix:exact-foo-com", id="exact-beats-wildcard"),
    pytest.param("mixed.example.com", "Prefix:mixed", id="rule-host-lowercased"),
    pytest.param("foo.bar.com.", None, id="trailing-dot-is-another-name"),
    pytest.param("", None, id="no-host-header"),
])
def test_hosts_and_wildcards(host: str, expected: str | None) -> None:
    assert routed(HOSTS, host, "/anything") == expected


def test_rule_without_host_matches_every_host() -> None:
    table = build(ingress("any", rule(None, path("/", "everything"))))
    for host in ("a.example.com", "10.0.0.1", "", "x:1"):
        assert routed(table, host, "/x") == "Prefix:everything"


@pytest.mark.parametrize(("header", "normalized"), [
    pytest.param("Foo.COM:8080", "foo.com", id="port-and-case"),
    pytest.param("foo.com:", "foo.com", id="empty-port"),
    pytest.param("foo.com:abc", "foo.com", id="non-numeric-port-dropped-like-host_only"),
    pytest.param("[::1]:80", "[::1]", id="ipv6-with-port"),
    pytest.param("[::1]", "[::1]", id="ipv6"),
    pytest.param("a.bar.com:80:90", "a.bar.com:80", id="last-colon-only"),
])
def test_normalize_host(header: str, normalized: str) -> None:
    assert routes.normalize_host(header) == normalized


@pytest.mark.parametrize(("host", "wildcard"), [
    pytest.param("a.foo.com", "*.foo.com", id="first-label"),
    pytest.param("foo.com", "*.com", id="two-labels"),
    pytest.param("localhost", "localhost", id="one-label-unchanged"),
    pytest.param(".foo.com", ".foo.com", id="empty-first-label-unchanged"),
])
def test_wildcard_of(host: str, wildcard: str) -> None:
    assert routes.wildcard_of(host) == wildcard


def test_host_with_slash_is_refused() -> None:
    with pytest.raises(ValueError, match="400"):
        routes.match(HOSTS, "foo.bar.com/x", "/y")


# --- paths: the Kubernetes docs' examples table, row by row -------------------------------------
# Each row: the rule paths (one Ingress, no host), the request path, and the index of the rule
# that must win (its Service is r<index>), or None: not matched, so the defaultBackend answers.

DOCS_TABLE = [
    ("prefix-root-all-paths-1", [("/", PREFIX)], "/", 0),
    ("prefix-root-all-paths-2", [("/", PREFIX)], "/aaa/bbb", 0),
    ("prefix-root-all-paths-3", [("/", PREFIX)], "/aaa/bbb/", 0),
    ("exact-foo-foo", [("/foo", EXACT)], "/foo", 0),
    ("exact-foo-bar", [("/foo", EXACT)], "/bar", None),
    ("exact-foo-foo-slash", [("/foo", EXACT)], "/foo/", None),
    ("exact-foo-slash-foo", [("/foo/", EXACT)], "/foo", None),
    ("prefix-foo-foo", [("/foo", PREFIX)], "/foo", 0),
    ("prefix-foo-foo-slash", [("/foo", PREFIX)], "/foo/", 0),
    ("prefix-foo-slash-foo", [("/foo/", PREFIX)], "/foo", 0),
    ("prefix-foo-slash-foo-slash", [("/foo/", PREFIX)], "/foo/", 0),
    ("prefix-aaa-bb-aaa-bbb", [("/aaa/bb", PREFIX)], "/aaa/bbb", None),
    ("prefix-aaa-bbb-aaa-bbb", [("/aaa/bbb", PREFIX)], "/aaa/bbb", 0),
    ("prefix-ignores-rule-trailing-slash", [("/aaa/bbb/", PREFIX)], "/aaa/bbb", 0),
    ("prefix-matches-request-trailing-slash", [("/aaa/bbb", PREFIX)], "/aaa/bbb/", 0),
    ("prefix-matches-subpath", [("/aaa/bbb", PREFIX)], "/aaa/bbb/ccc", 0),
    ("prefix-not-string-prefix", [("/aaa/bbb", PREFIX)], "/aaa/bbbxyz", None),
    ("prefix-root-and-aaa", [("/", PREFIX), ("/aaa", PREFIX)], "/aaa/ccc", 1),
    ("prefix-three-longest", [("/", PREFIX), ("/aaa", PREFIX), ("/aaa/bbb", PREFIX)],
     "/aaa/bbb", 2),
    ("prefix-three-root", [("/", PREFIX), ("/aaa", PREFIX), ("/aaa/bbb", PREFIX)], "/ccc", 0),
    ("prefix-no-match-default-backend", [("/aaa", PREFIX)], "/ccc", None),
    ("mixed-prefers-exact", [("/foo", PREFIX), ("/foo", EXACT)], "/foo", 1),
    # The conformance suite's extra rows.
    ("exact-case-sensitive", [("/foo", EXACT)], "/FOO", None),
    ("prefix-case-sensitive", [("/foo", PREFIX)], "/FOO", None),
    ("prefix-aaa-not-aaaccc", [("/aaa", PREFIX)], "/aaaccc", None),
    ("implementation-specific-is-prefix", [("/foo", routes.IMPLEMENTATION_SPECIFIC)],
     "/foo/bar", 0),
    ("exact-foo-slash-foo-slash", [("/foo/", EXACT)], "/foo/", 0),
    ("mixed-longer-prefix-beats-exact-elsewhere", [("/a", EXACT), ("/a/b", PREFIX)], "/a/b/c",
     1),
    ("prefix-with-double-slash-request", [("/foo/bar", PREFIX)], "/foo//bar", None),
    ("prefix-percent-encoding-is-raw", [("/a b", routes.IMPLEMENTATION_SPECIFIC)], "/a%20b",
     None),
]


@pytest.mark.parametrize(("rules", "request_path", "winner"),
                         [pytest.param(r, p, w, id=i) for i, r, p, w in DOCS_TABLE])
def test_docs_path_matching_table(rules: list[tuple[str, str]], request_path: str,
                                  winner: int | None) -> None:
    table = build(ingress("paths",
                          rule(None, *[path(p, f"r{i}", t) for i, (p, t) in enumerate(rules)]),
                          default=backend("default-backend")))
    route = routes.match(table, "paths.example.com", request_path)
    assert route is not None
    if winner is None:
        assert (route.kind, route.backend.service) == (DEFAULT, "default-backend")
    else:
        kind = EXACT if rules[winner][1] == EXACT else PREFIX
        assert (route.kind, route.backend.service) == (kind, f"r{winner}")


# --- merging, conflicts and fall-through --------------------------------------------------------

def test_exact_beats_prefix_across_ingresses() -> None:
    table = build(ingress("older", rule("m.example.com", path("/foo", "prefix-foo")),
                          created=T0),
                  ingress("newer", rule("m.example.com", path("/foo", "exact-foo", EXACT),
                                        path("/foo/bar", "prefix-foo-bar")), created=T1))
    assert routed(table, "m.example.com", "/foo") == "Exact:exact-foo"
    assert routed(table, "m.example.com", "/foo/") == "Prefix:prefix-foo"
    assert routed(table, "m.example.com", "/foo/bar/baz") == "Prefix:prefix-foo-bar"
    assert routed(table, "m.example.com", "/foo/baz") == "Prefix:prefix-foo"
    assert table.warnings == ()


@pytest.mark.parametrize(("first", "second", "winner"), [
    pytest.param(("a", T1), ("b", T0), "b", id="older-timestamp-wins"),
    pytest.param(("a", T0), ("b", T0), "a", id="same-time-name-decides"),
    pytest.param(("b", T0), ("a", T0), "a", id="same-time-name-decides-any-order"),
])
def test_conflicting_rules_oldest_wins(first: tuple[str, str], second: tuple[str, str],
                                       winner: str) -> None:
    table = build(*(ingress(name, rule("c.example.com", path("/api", f"svc-{name}")),
                            created=created) for name, created in (first, second)))
    loser = "a" if winner == "b" else "b"
    assert routed(table, "c.example.com", "/api/v1") == f"Prefix:svc-{winner}"
    assert table.warnings == (RouteWarning(
        f"default/{loser}", f"spec.rules[0].http.paths[0]: Prefix '/api' on host "
        f"'c.example.com' is already routed by default/{winner} (older or earlier); ignored"),)


def test_prefix_with_and_without_trailing_slash_are_the_same_rule() -> None:
    table = build(ingress("older", rule(None, path("/foo", "first")), created=T0),
                  ingress("newer", rule(None, path("/foo/", "second")), created=T1))
    assert routed(table, "x", "/foo/") == "Prefix:first"
    assert [str(w) for w in table.warnings] == [
        "default/newer: spec.rules[0].http.paths[0]: Prefix '/foo/' on any host is already "
        "routed by default/older (older or earlier); ignored"]


FALLTHROUGH = build(
    ingress("hosted", rule("h.example.com", path("/api", "h-api")),
            rule("*.example.com", path("/wild", "wild")), created=T0),
    ingress("hostless", rule(None, path("/web", "any-web"), path("/api/v2", "any-api-v2")),
            created=T1, default=backend("fallback")))


@pytest.mark.parametrize(("host", "request_path", "expected"), [
    pytest.param("h.example.com", "/api/x", "Prefix:h-api", id="host-rule"),
    pytest.param("h.example.com", "/wild", "Prefix:wild", id="falls-to-wildcard"),
    pytest.param("h.example.com", "/web", "Prefix:any-web", id="falls-to-hostless"),
    pytest.param("h.example.com", "/api/v2", "Prefix:h-api",
                 id="host-rule-beats-longer-hostless"),
    pytest.param("h.example.com", "/nothing", "Default:fallback", id="falls-to-default"),
    pytest.param("w.example.com", "/api/x", "Default:fallback", id="other-host-no-host-rule"),
    pytest.param("w.example.com", "/api/v2/x", "Prefix:any-api-v2", id="other-host-hostless"),
])
def test_host_rules_fall_through(host: str, request_path: str, expected: str) -> None:
    assert routed(FALLTHROUGH, host, request_path) == expected


def test_oldest_default_backend_wins() -> None:
    table = build(ingress("newer", created=T1, default=backend("newer-default")),
                  ingress("older", created=T0, default=backend("older-default")))
    assert routes.match(table, "x", "/") == routes.Route(
        BackendRef("default", "older-default", 80), IngressRef("default", "older"), "", "",
        DEFAULT)
    assert [str(w) for w in table.warnings] == [
        "default/newer: spec.defaultBackend ignored: default/older is older and has one"]


def test_no_default_backend_means_404() -> None:
    table = build(ingress("only", rule(None, path("/a", "a"))))
    assert routes.match(table, "x", "/b") is None


def test_hosts_are_sorted_and_rules_in_precedence_order() -> None:
    table = build(ingress("i", rule("b.example.com", path("/", "root"),
                                    path("/x", "x-exact", EXACT), path("/x", "x-prefix"),
                                    path("/long/er", "longer")),
                          rule(None, path("/", "any"))))
    assert [h.host for h in table.hosts] == ["", "b.example.com"]
    b = table.host("b.example.com")
    assert b is not None
    assert [(r.kind, r.path, r.written) for r in b.rules] == [
        (PREFIX, "/long/er", "/long/er"), (EXACT, "/x", "/x"), (PREFIX, "/x", "/x"),
        (PREFIX, "", "/")]


# --- backends -----------------------------------------------------------------------------------

SERVICES = [
    service("web"),
    service("named", ("web", 8000, "TCP")),
    service("empty"),
    service("udp", ("dns", 53, "UDP")),
    service("ext", type="ExternalName", externalName="example.org"),
    service("web", namespace="other"),
]
SLICES = [
    endpoint_slice("web", endpoint("10.244.1.10"), endpoint("10.244.1.9"),
                   endpoint("10.244.2.5", ready=False),
                   endpoint("10.244.2.6", ready=False, serving=True, terminating=True)),
    endpoint_slice("named", endpoint("10.244.2.7"), port=9000, name="web"),
    endpoint_slice("empty", endpoint("10.244.2.8", ready=False)),
    endpoint_slice("web", endpoint("10.244.2.99"), namespace="other"),
]


@pytest.mark.parametrize(("service_name", "port", "endpoints", "problem"), [
    pytest.param("web", 80, [("10.244.1.9", 8080), ("10.244.1.10", 8080)], "",
                 id="by-number-ready-only-sorted"),
    pytest.param("web", "http", [("10.244.1.9", 8080), ("10.244.1.10", 8080)], "",
                 id="by-name"),
    pytest.param("named", 8000, [("10.244.2.7", 9000)], "", id="target-port-from-slice"),
    pytest.param("named", "web", [("10.244.2.7", 9000)], "", id="named-port-by-name"),
    pytest.param("web", 81, [], "service default/web has no port 81", id="missing-port"),
    pytest.param("web", "https", [], "service default/web has no port https",
                 id="missing-port-name"),
    pytest.param("gone", 80, [], "service default/gone not found", id="missing-service"),
    pytest.param("empty", 80, [], "no ready endpoints", id="no-ready-endpoints"),
    pytest.param("udp", 53, [], "port 53 is not TCP", id="udp-port"),
    pytest.param("ext", 80, [], "ExternalName services are not supported", id="external-name"),
])
def test_backends(service_name: str, port: int | str, endpoints: list[tuple[str, int]],
                  problem: str) -> None:
    table = build(ingress("b", rule(None, path("/", service_name, port=port))),
                  services=SERVICES, slices=SLICES)
    assert table.backends == (routes.Backend(
        BackendRef("default", service_name, port),
        tuple(Endpoint(ip, p) for ip, p in endpoints), problem),)


# --- TLS ----------------------------------------------------------------------------------------

def _self_signed(cn: str) -> tuple[bytes, bytes, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=3650))
            .sign(key, hashes.SHA256()))
    # The key as `openssl ecparam` writes it (SEC1); the table holds it as PKCS#8.
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM,
                              serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption()), key)


CRT_A, KEY_A, PRIVATE_A = _self_signed("a.example.com")
CRT_B, KEY_B, _ = _self_signed("b.example.com")
CLEAN_A = CRT_A + PRIVATE_A.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption())


def tls_secret(name: str, crt: bytes, key: bytes, secret_type: str = routes.TLS_SECRET_TYPE,
               namespace: str = "default") -> Obj:
    return {"metadata": {"namespace": namespace, "name": name}, "type": secret_type,
            "data": {"tls.crt": base64.b64encode(crt).decode(),
                     "tls.key": base64.b64encode(key).decode()}}


def test_tls_secret_becomes_clean_pem_for_its_hosts() -> None:
    table = build(ingress("t", rule("a.example.com", path("/", "web")),
                          tls=[{"hosts": ["a.example.com", "*.a.example.com"],
                                "secretName": "tls-a"}]),
                  secrets=[tls_secret("tls-a", CRT_A, KEY_A)])
    assert table.certificates == (routes.Certificate(
        "default_tls-a", ("default", "tls-a"), CLEAN_A, ("*.a.example.com", "a.example.com")),)
    assert table.default_cert_hosts == ()
    assert b"\n\n" not in CLEAN_A


@pytest.mark.parametrize(("secret", "warning"), [
    pytest.param(None, "secret default/tls-a not found", id="missing"),
    pytest.param(tls_secret("tls-a", CRT_A, KEY_A, secret_type="Opaque"),
                 "secret default/tls-a is not of type kubernetes.io/tls", id="wrong-type"),
    pytest.param(tls_secret("tls-a", CRT_A, KEY_A, namespace="other"),
                 "secret default/tls-a not found", id="other-namespace"),
    pytest.param(tls_secret("tls-a", CRT_A, KEY_B),
                 "secret default/tls-a: tls.key does not belong to the certificate in tls.crt",
                 id="key-mismatch"),
    pytest.param(tls_secret("tls-a", b"not a certificate", KEY_A),
                 "secret default/tls-a: tls.crt or tls.key is not a PEM certificate and key",
                 id="garbage-pem"),
    pytest.param({"metadata": {"namespace": "default", "name": "tls-a"},
                  "type": routes.TLS_SECRET_TYPE, "data": {"tls.crt": "!!", "tls.key": "!!"}},
                 "secret default/tls-a: tls.crt or tls.key is not base64", id="not-base64"),
    pytest.param({"metadata": {"namespace": "default", "name": "tls-a"},
                  "type": routes.TLS_SECRET_TYPE, "data": {}},
                 "secret default/tls-a: tls.crt or tls.key is not a PEM certificate and key",
                 id="empty-data"),
])
def test_unusable_secret_falls_back_to_default_certificate(secret: Obj | None,
                                                           warning: str) -> None:
    table = build(ingress("t", rule("a.example.com", path("/", "web")),
                          tls=[{"hosts": ["a.example.com"], "secretName": "tls-a"}]),
                  secrets=[secret] if secret else [])
    assert table.certificates == ()
    assert table.default_cert_hosts == ("a.example.com",)
    assert [str(w) for w in table.warnings] == [
        f"default/t: {warning}: its hosts get podnet's default certificate"]


def test_tls_host_claimed_twice_oldest_wins() -> None:
    table = build(ingress("newer", tls=[{"hosts": ["a.example.com"], "secretName": "tls-b"}],
                          created=T2, default=backend("web")),
                  ingress("older", tls=[{"hosts": ["a.example.com"], "secretName": "tls-a"}],
                          created=T0),
                  secrets=[tls_secret("tls-a", CRT_A, KEY_A), tls_secret("tls-b", CRT_B, KEY_B)])
    assert [(c.name, c.hosts) for c in table.certificates] == [("default_tls-a",
                                                                ("a.example.com",))]
    assert [str(w) for w in table.warnings] == [
        "default/newer: spec.tls[0]: TLS host 'a.example.com' already has a certificate from "
        "default/older (older); ignored"]


def test_tls_without_secret_name_or_hosts() -> None:
    table = build(ingress("t", tls=[{"hosts": ["a.example.com"]}, {"secretName": "tls-a"}],
                          default=backend("web")))
    assert table.certificates == ()
    assert table.default_cert_hosts == ("a.example.com",)
    assert [str(w) for w in table.warnings] == [
        "default/t: spec.tls[0]: no secretName: its hosts get podnet's default certificate",
        "default/t: spec.tls[1]: no hosts; ignored"]


# --- what is dropped ----------------------------------------------------------------------------

@pytest.mark.parametrize(("item", "host", "warning"), [
    pytest.param(path("/ok", "web"), "a.example.com\nbind :1",
                 "spec.rules[0].host: invalid host 'a.example.com\\nbind :1'",
                 id="host-with-newline"),
    pytest.param(path("/ok", "web"), "a.example.com\n",
                 "spec.rules[0].host: invalid host 'a.example.com\\n'",
                 id="host-with-trailing-newline"),
    pytest.param(path("/ok", "web"), "a example.com",
                 "spec.rules[0].host: invalid host 'a example.com'", id="host-with-space"),
    pytest.param(path("/ok", "web"), "*.*.example.com",
                 "spec.rules[0].host: invalid host '*.*.example.com'", id="double-wildcard"),
    pytest.param(path("/a b", "web", routes.IMPLEMENTATION_SPECIFIC), None,
                 "spec.rules[0].http.paths[0].path '/a b': must start with '/' and hold only "
                 "visible ASCII characters (a request path cannot carry others)",
                 id="path-with-space"),
    pytest.param(path("/a\n    server evil 1.2.3.4:80", "web", routes.IMPLEMENTATION_SPECIFIC),
                 None, "spec.rules[0].http.paths[0].path '/a\\n    server evil 1.2.3.4:80': "
                 "must start with '/' and hold only visible ASCII characters (a request path "
                 "cannot carry others)", id="path-with-newline"),
    pytest.param(path("/caf\u00e9", "web", routes.IMPLEMENTATION_SPECIFIC), None,
                 "spec.rules[0].http.paths[0].path '/caf\u00e9': must start with '/' and hold "
                 "only visible ASCII characters (a request path cannot carry others)",
                 id="path-non-ascii"),
    pytest.param(path("/a?b=1", "web", EXACT), None,
                 "spec.rules[0].http.paths[0].path '/a?b=1': contains '?', which is never part "
                 "of a request's path", id="path-with-query"),
    pytest.param(path("/a#frag", "web", EXACT), None,
                 "spec.rules[0].http.paths[0].path '/a#frag': contains '#', which is never "
                 "part of a request's path", id="path-with-fragment"),
    pytest.param(path("relative", "web", routes.IMPLEMENTATION_SPECIFIC), None,
                 "spec.rules[0].http.paths[0].path 'relative': must start with '/' and hold "
                 "only visible ASCII characters (a request path cannot carry others)",
                 id="relative-path"),
    pytest.param(path(None, "web", EXACT), None,
                 "spec.rules[0].http.paths[0].path '': must start with '/' and hold only "
                 "visible ASCII characters (a request path cannot carry others)",
                 id="exact-without-path"),
    pytest.param(path("/" + "a" * 4096, "web", EXACT), None,
                 f"spec.rules[0].http.paths[0].path {'/' + 'a' * 4096!r}: longer than 4096 "
                 "characters", id="path-too-long"),
    pytest.param(path("/x", "web", "Regex"), None,
                 "spec.rules[0].http.paths[0].pathType: unsupported 'Regex'",
                 id="unknown-path-type"),
    pytest.param({"pathType": PREFIX, "path": "/x", "backend": {"resource": {
        "kind": "StorageBucket", "name": "b"}}}, None,
                 "spec.rules[0].http.paths[0].backend: resource backends are not supported",
                 id="resource-backend"),
    pytest.param(path("/x", "web\nbackend evil"), None,
                 "spec.rules[0].http.paths[0].backend: invalid service name "
                 "'web\\nbackend evil'", id="service-name-with-newline"),
    pytest.param(path("/x", "web", port="http\n"), None,
                 "spec.rules[0].http.paths[0].backend: invalid service port {'name': 'http\\n'}",
                 id="port-name-with-newline"),
    pytest.param(path("/x", "web", port=0), None,
                 "spec.rules[0].http.paths[0].backend: invalid service port {'number': 0}",
                 id="port-zero"),
])
def test_unusable_rules_are_dropped_with_a_warning(item: Obj, host: str | None,
                                                    warning: str) -> None:
    table = build(ingress("bad", rule(host, item)))
    assert table.hosts == ()
    assert table.backends == ()
    assert [str(w) for w in table.warnings] == [f"default/bad: {warning}"]


def test_implementation_specific_without_path_is_root() -> None:
    table = build(ingress("i", rule(None, path(None, "web", routes.IMPLEMENTATION_SPECIFIC))))
    assert routed(table, "x", "/any/thing") == "Prefix:web"
    assert table.warnings == ()


def test_prefix_matches() -> None:
    assert routes.prefix_matches("", "/anything")
    assert routes.prefix_matches("/a", "/a")
    assert routes.prefix_matches("/a", "/a/")
    assert not routes.prefix_matches("/a", "/ab")
