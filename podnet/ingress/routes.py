"""Ingress objects -> podnet's routing table (pure).

`build(ingresses, classes, services, slices, secrets)` takes the objects as the API returns
them (plain dicts) and returns a `RouteTable`; `match(table, host, path)` is the routing
decision for one request, with exactly the semantics the HAProxy configuration implements
(haproxy.py), so tests and docs can check routing without a proxy.

Which Ingresses are ours. Our IngressClasses are those whose spec.controller is
`podnet.dev/ingress-controller` (the class podnet installs is named `podnet`). An Ingress is
ours when its spec.ingressClassName names one of them; without ingressClassName, when its
deprecated `kubernetes.io/ingress.class` annotation is `podnet`; with neither, when one of our
IngressClasses carries `ingressclass.kubernetes.io/is-default-class: "true"`. Other Ingresses
are left alone: they are not routed and get no status.

Hosts. A rule's host is an exact name, compared case-insensitively, or a wildcard `*.foo.com`
that covers exactly one label (`a.foo.com`, not `foo.com`, not `a.b.foo.com`). A rule without
a host applies to every host. The request's Host header is lowercased and its port dropped
(HAProxy's `host_only`: everything from the last `:` outside an IPv6 literal's brackets).

Paths. Exact compares the path with the request's path, byte for byte. Prefix compares path
elements: `/foo` matches `/foo`, `/foo/` and `/foo/bar`, not `/foobar`; trailing slashes of
the rule are ignored and `/` matches every path. ImplementationSpecific is Prefix here (an
empty path is `/`). The request's path is the raw one, as sent (no percent-decoding, no `//`
merging), from the first `/` up to the `?`.

Precedence, for one request. The candidate rule sets are tried in this order: the rules of the
request's exact host, then those of the wildcard that covers it, then the host-less rules; in
each, all Ingresses' rules for that host are merged, and the longest matching path wins, Exact
before Prefix on a tie (a Prefix path counts without its trailing slash, so an Exact match, when
there is one, always wins). A request whose host has rules but none of whose paths match falls
through to the next set: the Kubernetes docs say a request goes to a backend when both the
host and the path of a rule match, and a host-less rule matches every host. When no rule
matches, the defaultBackend is used, and without one the answer is podnet's 404.

Conflicts. Two rules for the same host, path and type in different Ingresses: the oldest
Ingress wins (creationTimestamp, then namespace/name); within one Ingress, the first rule.
Several Ingresses with a defaultBackend: the oldest one's is used. Several Ingresses naming a
TLS host: the oldest one's Secret is used. Each loser is reported in `warnings`.

Backends. A Service port, by number or by name, in the Ingress's namespace. Its endpoints are
the ready ones of the Service's EndpointSlices, on the slice port named like the Service port
(the targetPort resolved). A missing Service, a missing port, an ExternalName Service or no
ready endpoint leaves the backend without endpoints: the proxy answers 503. `resource`
backends are not supported (warning; the path is dropped).

TLS. Each spec.tls entry names hosts and a `kubernetes.io/tls` Secret in the Ingress's
namespace. The certificate (with its chain) and key are parsed, checked to belong together and
written back as clean PEM; a missing, mistyped or invalid Secret leaves its hosts on podnet's
default (self-signed) certificate, with a warning. The certificate is chosen by SNI; the Host
header routes.

Anything that could never match a request, or that does not follow the API's grammar (a host
that is not a lowercase DNS name, a path with a character outside visible ASCII, or with `?`
or `#`, or longer than 4096 characters, a malformed Service name or port) is dropped with a
warning. The API rejects most of
this already; this module does not rely on it, so what reaches the proxy is always clean.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from podnet.proxy.model import slice_endpoints, slice_service

Obj = dict[str, Any]

CLASS_NAME = "podnet"
CONTROLLER = "podnet.dev/ingress-controller"
CLASS_ANNOTATION = "kubernetes.io/ingress.class"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
TLS_SECRET_TYPE = "kubernetes.io/tls"

EXACT = "Exact"
PREFIX = "Prefix"
IMPLEMENTATION_SPECIFIC = "ImplementationSpecific"
DEFAULT = "Default"  # the kind of a Route that comes from a defaultBackend

_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_WILDCARD = re.compile(rf"\*\.{_LABEL}(?:\.{_LABEL})*")
_SERVICE_NAME = re.compile(_LABEL)
_PORT_NAME = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
_SECRET_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_PATH_CHARS = re.compile(r"/[\x21-\x7e]*")  # visible ASCII: what a request-target can carry
_FIRST_LABEL = re.compile(r"^[^.]+\.")
_NEVER_IN_PATH = ("?", "#")  # the query starts at `?`; a request with `#` is refused (400)
_MAX_HOST = 253
MAX_PATH = 4096  # a map line (host, path, backend) must fit HAProxy's 16 kB line buffer


# --- the table ----------------------------------------------------------------------------------

@dataclass(frozen=True, order=True)
class IngressRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, order=True)
class BackendRef:
    """A Service port as an Ingress names it: `port` is a number or a port name."""

    namespace: str
    service: str
    port: int | str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.service}:{self.port}"


@dataclass(frozen=True, order=True)
class Endpoint:
    ip: str
    port: int


@dataclass(frozen=True)
class Backend:
    """A Service port and its ready endpoints (sorted). `problem` says why there are none."""

    ref: BackendRef
    endpoints: tuple[Endpoint, ...] = ()
    problem: str = ""


@dataclass(frozen=True)
class PathRule:
    """One path of one host. `path` is what is compared: an Exact path as written, a Prefix
    path without its trailing slashes (`""` for `/`). `written` and `path_type` are the
    Ingress's own."""

    path: str
    kind: str  # EXACT or PREFIX
    backend: BackendRef
    ingress: IngressRef
    written: str
    path_type: str


@dataclass(frozen=True)
class HostRules:
    """The merged rules of one host: `""` (any host), `*.foo.com` or `foo.com`. `rules` is in
    precedence order: longest path first, Exact before Prefix."""

    host: str
    rules: tuple[PathRule, ...]
    _index: Mapping[tuple[str, str], PathRule] = field(default_factory=dict, init=False,
                                                       repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {(r.kind, r.path): r for r in self.rules})

    def exact(self, path: str) -> PathRule | None:
        return self._index.get((EXACT, path))

    def prefix(self, path: str) -> PathRule | None:
        """The Prefix rule whose (normalized) path is `path`."""
        return self._index.get((PREFIX, path))


@dataclass(frozen=True)
class Route:
    """Where a request goes: the backend, the Ingress and rule that sent it there (`kind` is
    DEFAULT, `host` and `path` empty, for a defaultBackend)."""

    backend: BackendRef
    ingress: IngressRef
    host: str
    path: str
    kind: str


@dataclass(frozen=True)
class Certificate:
    """A TLS Secret ready for the proxy: `pem` is the certificate, its chain and the key, as
    clean PEM. `name` is safe in a file name: `<namespace>_<secret>`."""

    name: str
    secret: tuple[str, str]
    pem: bytes
    hosts: tuple[str, ...]


@dataclass(frozen=True)
class RouteWarning:
    """Something in an Ingress that podnet did not follow, and why."""

    ingress: str  # namespace/name
    message: str

    def __str__(self) -> str:
        return f"{self.ingress}: {self.message}"


@dataclass(frozen=True)
class RouteTable:
    hosts: tuple[HostRules, ...] = ()  # sorted by host; "" (any host) first
    default: Route | None = None
    backends: tuple[Backend, ...] = ()  # every backend a rule or the default uses, sorted
    certificates: tuple[Certificate, ...] = ()
    default_cert_hosts: tuple[str, ...] = ()  # TLS hosts served with podnet's certificate
    ingresses: tuple[IngressRef, ...] = ()  # ours, oldest first: those that get a status
    warnings: tuple[RouteWarning, ...] = ()
    _by_host: Mapping[str, HostRules] = field(default_factory=dict, init=False, repr=False,
                                              compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_host", {h.host: h for h in self.hosts})

    def host(self, name: str) -> HostRules | None:
        return self._by_host.get(name)

    def backend(self, ref: BackendRef) -> Backend | None:
        return next((b for b in self.backends if b.ref == ref), None)


# --- reading objects ----------------------------------------------------------------------------

def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _meta(obj: Obj) -> Obj:
    return _dict(obj.get("metadata"))


def ingress_ref(ingress: Obj) -> IngressRef:
    meta = _meta(ingress)
    return IngressRef(_str(meta.get("namespace")), _str(meta.get("name")))


def _age(ingress: Obj) -> tuple[str, str, str]:
    """Oldest first: creationTimestamp (RFC 3339 in UTC sorts as text), then namespace/name.
    An Ingress without a timestamp sorts last."""
    ref = ingress_ref(ingress)
    return (_str(_meta(ingress).get("creationTimestamp")) or "~", ref.namespace, ref.name)


# --- classes ------------------------------------------------------------------------------------

def our_classes(classes: Iterable[Obj],
                controller: str = CONTROLLER) -> tuple[frozenset[str], bool]:
    """The names of the IngressClasses handled by `controller`, and whether one of them is the
    cluster's default class."""
    names: set[str] = set()
    default = False
    for cls in classes:
        if _str(_dict(cls.get("spec")).get("controller")) != controller:
            continue
        meta = _meta(cls)
        names.add(_str(meta.get("name")))
        if _str(_dict(meta.get("annotations")).get(DEFAULT_CLASS_ANNOTATION)) == "true":
            default = True
    return frozenset(names), default


def is_ours(ingress: Obj, classes: tuple[frozenset[str], bool],
            class_name: str = CLASS_NAME) -> bool:
    """Whether the Ingress belongs to podnet; `classes` is what `our_classes` returns."""
    names, default = classes
    class_field = _dict(ingress.get("spec")).get("ingressClassName")
    if isinstance(class_field, str) and class_field:
        return class_field in names
    annotations = _dict(_meta(ingress).get("annotations"))
    if CLASS_ANNOTATION in annotations:
        return bool(annotations[CLASS_ANNOTATION] == class_name)
    return default


# --- hosts and paths ----------------------------------------------------------------------------

def valid_host(host: str) -> bool:
    """A lowercase DNS name, or a wildcard one (`*.foo.com`), at most 253 characters."""
    return len(host) <= _MAX_HOST and bool(_HOST.fullmatch(host) or _WILDCARD.fullmatch(host))


def normalize_host(header: str) -> str:
    """The Host header as routing sees it: lowercased, without its port (HAProxy's
    `host_only`: the part after the last `:` is dropped unless it is inside `[...]`)."""
    colon = header.rfind(":")
    if colon >= 0 and "]" not in header[colon:]:
        header = header[:colon]
    return header.lower()


def wildcard_of(host: str) -> str:
    """The wildcard that covers `host`: its first label replaced with `*`."""
    return _FIRST_LABEL.sub("*.", host, count=1)


def prefix_matches(rule: str, path: str) -> bool:
    """Whether a Prefix rule (normalized: no trailing slash, `""` for `/`) matches `path`
    element by element."""
    return (path + "/").startswith(rule + "/")


def _path_problem(path: str) -> str:
    if len(path) > MAX_PATH:
        return f"longer than {MAX_PATH} characters"
    if not _PATH_CHARS.fullmatch(path):
        return ("must start with '/' and hold only visible ASCII characters (a request path "
                "cannot carry others)")
    for ch in _NEVER_IN_PATH:
        if ch in path:
            return f"contains '{ch}', which is never part of a request's path"
    return ""


# --- building the table -------------------------------------------------------------------------

@dataclass
class _Builder:
    services: Mapping[tuple[str, str], Obj]
    slices: Mapping[tuple[str, str], list[Obj]]
    secrets: Mapping[tuple[str, str], Obj]
    hosts: dict[str, dict[tuple[str, str], PathRule]] = field(default_factory=dict)
    default: Route | None = None
    refs: set[BackendRef] = field(default_factory=set)
    tls: dict[str, tuple[IngressRef, tuple[str, str] | None]] = field(default_factory=dict)
    warnings: list[RouteWarning] = field(default_factory=list)

    def warn(self, ref: IngressRef, message: str) -> None:
        self.warnings.append(RouteWarning(str(ref), message))

    def backend_ref(self, ref: IngressRef, backend: Obj, where: str) -> BackendRef | None:
        if "resource" in backend:
            self.warn(ref, f"{where}: resource backends are not supported")
            return None
        service = _dict(backend.get("service"))
        name = _str(service.get("name"))
        if not _SERVICE_NAME.fullmatch(name) or len(name) > 63:
            self.warn(ref, f"{where}: invalid service name {name!r}")
            return None
        port = _dict(service.get("port"))
        number, port_name = port.get("number"), _str(port.get("name"))
        if isinstance(number, int) and not isinstance(number, bool) and 0 < number < 65536:
            return BackendRef(ref.namespace, name, number)
        if port_name and _PORT_NAME.fullmatch(port_name) and len(port_name) <= 15:
            return BackendRef(ref.namespace, name, port_name)
        self.warn(ref, f"{where}: invalid service port {port!r}")
        return None

    def add_ingress(self, ingress: Obj) -> None:
        ref = ingress_ref(ingress)
        spec = _dict(ingress.get("spec"))
        if "defaultBackend" in spec:
            backend = self.backend_ref(ref, _dict(spec["defaultBackend"]), "spec.defaultBackend")
            if backend is not None and self.default is None:
                self.default = Route(backend, ref, "", "", DEFAULT)
                self.refs.add(backend)
            elif backend is not None and self.default is not None:
                self.warn(ref, f"spec.defaultBackend ignored: {self.default.ingress} is older "
                               "and has one")
        for i, rule in enumerate(_list(spec.get("rules"))):
            self.add_rule(ref, _dict(rule), f"spec.rules[{i}]")
        for i, tls in enumerate(_list(spec.get("tls"))):
            self.add_tls(ref, _dict(tls), f"spec.tls[{i}]")

    def add_rule(self, ref: IngressRef, rule: Obj, where: str) -> None:
        host = _str(rule.get("host")).lower()
        if host and not valid_host(host):
            self.warn(ref, f"{where}.host: invalid host {rule.get('host')!r}")
            return
        for j, item in enumerate(_list(_dict(rule.get("http")).get("paths"))):
            self.add_path(ref, host, _dict(item), f"{where}.http.paths[{j}]")

    def add_path(self, ref: IngressRef, host: str, item: Obj, where: str) -> None:
        path_type = _str(item.get("pathType"))
        written = _str(item.get("path"))
        if path_type == IMPLEMENTATION_SPECIFIC and not written:
            written = "/"
        if path_type not in (EXACT, PREFIX, IMPLEMENTATION_SPECIFIC):
            self.warn(ref, f"{where}.pathType: unsupported {path_type!r}")
            return
        problem = _path_problem(written)
        if problem:
            self.warn(ref, f"{where}.path {written!r}: {problem}")
            return
        backend = self.backend_ref(ref, _dict(item.get("backend")), f"{where}.backend")
        if backend is None:
            return
        kind = EXACT if path_type == EXACT else PREFIX
        path = written if kind == EXACT else written.rstrip("/")
        rules = self.hosts.setdefault(host, {})
        taken = rules.get((kind, path))
        if taken is not None:
            on = f"host {host!r}" if host else "any host"
            self.warn(ref, f"{where}: {kind} {written!r} on {on} is already routed by "
                           f"{taken.ingress} (older or earlier); ignored")
            return
        rules[(kind, path)] = PathRule(path, kind, backend, ref, written, path_type)
        self.refs.add(backend)

    def add_tls(self, ref: IngressRef, tls: Obj, where: str) -> None:
        hosts = [_str(h).lower() for h in _list(tls.get("hosts"))]
        if not hosts:
            self.warn(ref, f"{where}: no hosts; ignored")
            return
        secret_name = _str(tls.get("secretName"))
        secret: tuple[str, str] | None = (ref.namespace, secret_name)
        if not secret_name:
            self.warn(ref, f"{where}: no secretName: its hosts get podnet's default "
                           "certificate")
            secret = None
        for host in hosts:
            if not valid_host(host):
                self.warn(ref, f"{where}.hosts: invalid host {host!r}")
                continue
            taken = self.tls.get(host)
            if taken is None:
                self.tls[host] = (ref, secret)
            elif taken[1] != secret:
                self.warn(ref, f"{where}: TLS host {host!r} already has a certificate from "
                               f"{taken[0]} (older); ignored")

    def certificates(self) -> tuple[tuple[Certificate, ...], tuple[str, ...]]:
        by_secret: dict[tuple[str, str], list[str]] = {}
        fallback: list[str] = []
        errors: dict[tuple[str, str], str] = {}
        pems: dict[tuple[str, str], bytes] = {}
        for host, (ref, secret) in sorted(self.tls.items()):
            if secret is None:
                fallback.append(host)
                continue
            if secret not in pems and secret not in errors:
                pem, error = load_tls_secret(self.secrets.get(secret), secret)
                if error:
                    errors[secret] = error
                    self.warn(ref, f"{error}: its hosts get podnet's default certificate")
                else:
                    pems[secret] = pem
            if secret in pems:
                by_secret.setdefault(secret, []).append(host)
            else:
                fallback.append(host)
        certs = tuple(Certificate(f"{ns}_{name}", (ns, name), pems[(ns, name)], tuple(hosts))
                      for (ns, name), hosts in sorted(by_secret.items()))
        return certs, tuple(sorted(fallback))

    def resolve(self, ref: BackendRef) -> Backend:
        service = self.services.get((ref.namespace, ref.service))
        if service is None:
            return Backend(ref, (), f"service {ref.namespace}/{ref.service} not found")
        spec = _dict(service.get("spec"))
        if spec.get("type") == "ExternalName":
            return Backend(ref, (), "ExternalName services are not supported")
        for port in map(_dict, _list(spec.get("ports"))):
            if port.get("port" if isinstance(ref.port, int) else "name") != ref.port:
                continue
            if _str(port.get("protocol")) not in ("", "TCP"):
                return Backend(ref, (), f"port {ref.port} is not TCP")
            slices = self.slices.get((ref.namespace, ref.service), [])
            found = slice_endpoints(slices, _str(port.get("name")), "TCP")
            endpoints = sorted({Endpoint(e.ip, e.port) for e in found if e.ready},
                               key=lambda e: (tuple(int(x) for x in e.ip.split(".")), e.port))
            return Backend(ref, tuple(endpoints), "" if endpoints else "no ready endpoints")
        return Backend(ref, (), f"service {ref.namespace}/{ref.service} has no port {ref.port}")


def load_tls_secret(secret: Obj | None, key: tuple[str, str]) -> tuple[bytes, str]:
    """(clean PEM: certificate, chain, then key; "") or (b"", the reason it is unusable)."""
    where = f"secret {key[0]}/{key[1]}"
    if secret is None:
        return b"", f"{where} not found"
    if secret.get("type") != TLS_SECRET_TYPE:
        return b"", f"{where} is not of type {TLS_SECRET_TYPE}"
    data = _dict(secret.get("data"))
    try:
        crt = base64.b64decode(_str(data.get("tls.crt")), validate=True)
        key_pem = base64.b64decode(_str(data.get("tls.key")), validate=True)
    except (binascii.Error, ValueError):
        return b"", f"{where}: tls.crt or tls.key is not base64"
    try:
        chain = x509.load_pem_x509_certificates(crt)
        private = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        return b"", f"{where}: tls.crt or tls.key is not a PEM certificate and key"
    if not isinstance(private, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey |
                      ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return b"", f"{where}: unsupported key type"
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if private.public_key().public_bytes(*spki) != chain[0].public_key().public_bytes(*spki):
        return b"", f"{where}: tls.key does not belong to the certificate in tls.crt"
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    pem += private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    return pem, ""


def _index(objs: Iterable[Obj]) -> dict[tuple[str, str], Obj]:
    out: dict[tuple[str, str], Obj] = {}
    for obj in objs:
        ref = ingress_ref(obj)
        out[(ref.namespace, ref.name)] = obj
    return out


def _precedence(rule: PathRule) -> tuple[int, int, str]:
    return (-len(rule.path), 0 if rule.kind == EXACT else 1, rule.path)


def build(ingresses: Iterable[Obj], classes: Iterable[Obj], services: Iterable[Obj],
          slices: Iterable[Obj], secrets: Iterable[Obj], *, controller: str = CONTROLLER,
          class_name: str = CLASS_NAME) -> RouteTable:
    """The routing table of the Ingresses that are ours."""
    ours_classes = our_classes(classes, controller)
    ours = sorted((i for i in ingresses if is_ours(i, ours_classes, class_name)), key=_age)
    by_service: dict[tuple[str, str], list[Obj]] = {}
    for s in slices:
        owner = slice_service(s)
        if owner is not None:
            by_service.setdefault(owner, []).append(s)
    builder = _Builder(_index(services), by_service, _index(secrets))
    for ingress in ours:
        builder.add_ingress(ingress)
    hosts = tuple(HostRules(host, tuple(sorted(rules.values(), key=_precedence)))
                  for host, rules in sorted(builder.hosts.items()) if rules)
    certificates, fallback = builder.certificates()
    return RouteTable(
        hosts=hosts,
        default=builder.default,
        backends=tuple(builder.resolve(r) for r in sorted(builder.refs, key=_ref_order)),
        certificates=certificates,
        default_cert_hosts=fallback,
        ingresses=tuple(ingress_ref(i) for i in ours),
        warnings=tuple(builder.warnings),
    )


def _ref_order(ref: BackendRef) -> tuple[str, str, int, str]:
    return (ref.namespace, ref.service, ref.port if isinstance(ref.port, int) else -1,
            ref.port if isinstance(ref.port, str) else "")


# --- routing one request ------------------------------------------------------------------------

def _match_rules(rules: HostRules, path: str) -> PathRule | None:
    exact = rules.exact(path)
    if exact is not None:
        return exact
    # The candidate Prefix rules, longest first: the path itself, then each part before a '/'.
    cuts = [path] + [path[:i] for i in range(len(path) - 1, -1, -1) if path[i] == "/"]
    for cut in cuts:
        rule = rules.prefix(cut)
        if rule is not None:
            return rule
    return None


def host_candidates(host: str) -> tuple[str, ...]:
    """The host keys a request's (normalized) host is looked up under, in order."""
    wildcard = wildcard_of(host)
    return tuple(dict.fromkeys((host, wildcard, "")))


def match(table: RouteTable, host: str, path: str) -> Route | None:
    """Where a request for `host` (a Host header, port and case allowed) and `path` (the raw
    path, without the query) goes; None means podnet's 404. A host containing '/' is refused
    by the proxy (400) before routing: ValueError here."""
    name = normalize_host(host)
    if "/" in name:
        raise ValueError(f"host {host!r}: the proxy answers 400")
    for candidate in host_candidates(name):
        rules = table.host(candidate)
        found = _match_rules(rules, path) if rules is not None else None
        if found is not None:
            return Route(found.backend, found.ingress, candidate, found.path, found.kind)
    return table.default
