"""A routing table -> HAProxy's configuration, and the changes between two of them (pure).

`render(table, directory=..., socket=..., default_cert=...)` returns a `Config`: haproxy.cfg's
text, the files it reads (map files, the crt-list, certificates) and what the Runtime API can
change later. `needs_reload(old, new)` says whether going from `old` to `new` needs a reload;
when it does not, `runtime_commands(old, new)` lists the Runtime API commands that apply it.
Written for HAProxy 2.6 (Debian bookworm). The configuration turns master-worker mode on:
start `haproxy -f haproxy.cfg`, reload with SIGUSR2 to the master.

Why HAProxy. Its Runtime API changes what changes most without a reload: server addresses and
states (fixed server slots per backend), map contents (atomically: `prepare map`, `add map
@<version>`, `commit map`) and certificates (`set ssl cert` + `commit ssl cert`). A reload, when
one is needed, is seamless in master-worker mode: the new worker takes over the listening
sockets from the master and the old worker finishes the connections it has, so long-lived
connections survive. Open-source nginx needs a reload for every upstream change.

How a request is routed. No host, path or object name is ever written into haproxy.cfg: the
routes live in two map files, which are data (one `key value` per line), and haproxy.cfg holds
fixed rules that look them up:

- routes-exact.map: `<host><path> <backend>` for every Exact rule;
- routes-prefix.map: `<host><path>/ <backend>` for every Prefix rule (path without its
  trailing slash, so `/` gives `<host>/`), looked up with `map_beg`, the longest match (HAProxy
  keeps `beg` keys in a prefix tree; the file is sorted longest key first too, so a lookup in
  file order would agree). A request's path with `/` appended begins with `<path>/` exactly
  when the rule matches it element by element;
- default.map: `default <backend>` for the defaultBackend, if any.

Host-less rules have an empty host (keys start with `/`); a host never contains `/` (the
frontend answers 400 to a Host header with one), so `<host><path>` is unambiguous. The
frontend computes three keys: the request's host (`host_only`: lowercased, port dropped) with
its path, the covering wildcard (first label replaced by `*`) with its path, and the path alone;
it tries, in order, exact then prefix for each key, then default.map, and the first hit names
the backend (`use_backend %[var(txn.backend)]`). Nothing found: `podnet_404`. An Exact match,
when there is one, is never shorter than a Prefix match, so exact-before-prefix per key is the
rule "longest first, Exact wins ties". This is routes.match, step for step.

Backends. One per Service port (`svc_<namespace>_<service>_<port>`), `balance roundrobin`, with
a fixed number of server slots `s1..sN` (at least twice the endpoints, a power of two, at
least 8): each ready endpoint holds a slot, the others are `disabled` at 0.0.0.0:1. A backend
with no endpoint (no ready pod, missing Service) answers 503. Endpoint changes fill or empty
slots at run time (`set server ... addr`, `state ready|maint`); a slot keeps its endpoint
across renders (`previous`), and new endpoints prefer slots that were already empty. A backend
no route uses any more stays (emptied) until the next reload, so removing a route needs none;
a new backend, or more endpoints than slots, needs a reload.

TLS. One `bind ... ssl crt-list`: podnet's default certificate first with the filter `!*` (it
is the fallback and never matches by its own names), then each Secret's PEM with its hosts as
SNI filters. Hosts whose Secret is unusable are listed after the default certificate.

Injection. What reaches haproxy.cfg is fixed text, numbers, validated IPv4 addresses, backend
names built from a strict grammar (else a hash), and the directory and socket paths, which must
match `[A-Za-z0-9._/-]+`. Map keys must be visible ASCII without a leading `#` (no whitespace,
so no second field or line); crt-list SNI filters must be DNS names; certificates are PEM
re-serialized by routes.py. Runtime API commands carry the same values; map entries and
certificates go in payloads (`<<`), which the CLI takes literally up to an empty line.

Forwarded headers: X-Forwarded-For (the client's address; what the client sent is replaced),
-Proto, -Host (the Host header as received), -Port. Malformed requests get HAProxy's own 400.
`timeout tunnel` keeps WebSocket and other upgraded connections for an hour of silence. The
health endpoint is `GET /healthz` on the health port; the Runtime API is the stats socket.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from podnet.ingress.routes import (
    EXACT,
    MAX_PATH,
    Backend,
    BackendRef,
    Endpoint,
    RouteTable,
    valid_host,
)

MIN_SLOTS = 8
RUNTIME_PAYLOAD_MAX = 12_000  # bytes per command: the CLI reads a command into one 16 kB buffer
NOT_FOUND_BACKEND = "podnet_404"
EXACT_MAP = "routes-exact.map"
PREFIX_MAP = "routes-prefix.map"
DEFAULT_MAP = "default.map"
DEFAULT_KEY = "default"
CRT_LIST = "certificates.list"
DEFAULT_CERT = "default.pem"
CERT_DIR = "certs"
EMPTY_SLOT = "0.0.0.0:1"

_PATH = re.compile(r"/[A-Za-z0-9._/-]*")
_NAME_PART = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
_CERT_NAME = re.compile(r"[a-z0-9][-a-z0-9._]*")
_BACKEND_NAME = re.compile(r"[a-z0-9_.-]+")
_MAP_KEY = re.compile(rf"[\x21-\x7e]{{1,{MAX_PATH + 254}}}")  # host (253) + path + "/"
_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
                   r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])")
_VERSION = re.compile(r"New version created:\s*(\d+)")

MapEntries = tuple[tuple[str, str], ...]


# --- the configuration --------------------------------------------------------------------------

@dataclass(frozen=True)
class ServerSlots:
    """A backend's server slots: slot i (server `s<i+1>`) holds an endpoint or nothing."""

    backend: str
    ref: BackendRef | None
    servers: tuple[Endpoint | None, ...]


@dataclass(frozen=True)
class Config:
    """haproxy.cfg (`text`), the files it reads (`files`: name relative to the directory ->
    bytes), and the parts the Runtime API can change: server slots, map entries (by map path
    as HAProxy knows it) and certificates (by path). `skeleton` is everything a change of
    needs a reload."""

    text: str
    files: Mapping[str, bytes]
    backends: tuple[ServerSlots, ...]
    maps: Mapping[str, MapEntries]
    certificates: Mapping[str, bytes]
    skeleton: str
    warnings: tuple[str, ...] = ()

    def slots(self, backend: str) -> ServerSlots | None:
        return next((b for b in self.backends if b.backend == backend), None)


def backend_name(ref: BackendRef) -> str:
    """`svc_<namespace>_<service>_<port>`; a hash when a part is not a DNS label (no `_` in
    any part, so the name is unambiguous)."""
    parts = (ref.namespace, ref.service, str(ref.port))
    if all(_NAME_PART.fullmatch(p) for p in parts):
        return "svc_" + "_".join(parts)
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]
    return f"svc_x{digest}"


def slot_count(endpoints: int, previous: int = 0) -> int:
    """Slots for a backend: the previous number while it fits and is not four times too big,
    else at least twice the endpoints, rounded up to a power of two, and at least MIN_SLOTS."""
    ideal = max(MIN_SLOTS, 1 << max(0, 2 * endpoints - 1).bit_length())
    if previous and endpoints <= previous <= 4 * ideal:
        return previous
    return ideal


def assign_slots(endpoints: tuple[Endpoint, ...],
                 previous: tuple[Endpoint | None, ...] = ()) -> tuple[Endpoint | None, ...]:
    """Endpoints into slots: an endpoint keeps its previous slot; new ones take the lowest
    free slot, those that were already empty before those just freed."""
    size = slot_count(len(endpoints), len(previous))
    slots: list[Endpoint | None] = [None] * size
    wanted = set(endpoints)
    for i, ep in enumerate(previous[:size]):
        if ep is not None and ep in wanted:
            slots[i] = ep
            wanted.discard(ep)
    just_freed = {i for i, ep in enumerate(previous) if ep is not None}
    free = sorted((i for i in range(size) if slots[i] is None),
                  key=lambda i: (i in just_freed, i))
    for ep, i in zip((e for e in endpoints if e in wanted), free, strict=False):
        slots[i] = ep
    return tuple(slots)


# --- rendering ----------------------------------------------------------------------------------

def _check_path(what: str, value: str) -> str:
    if not _PATH.fullmatch(value) or "//" in value:
        raise ValueError(f"{what} {value!r}: must be an absolute path of [A-Za-z0-9._/-]")
    return value.rstrip("/") or "/"


def _check_port(what: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ValueError(f"{what} {value!r}: not a port number")
    return value


def _entries(table: RouteTable, warnings: list[str]) -> tuple[MapEntries, MapEntries]:
    exact: list[tuple[str, str]] = []
    prefix: list[tuple[str, str]] = []
    for host in table.hosts:
        for rule in host.rules:
            key = host.host + rule.path + ("" if rule.kind == EXACT else "/")
            if (host.host and not valid_host(host.host)) or not _MAP_KEY.fullmatch(key) or \
                    key.startswith("#"):
                warnings.append(f"route {key!r} refused: not a valid map key")
                continue
            (exact if rule.kind == EXACT else prefix).append((key, backend_name(rule.backend)))
    return (tuple(sorted(exact)), tuple(sorted(prefix, key=lambda e: (-len(e[0]), e[0]))))


def _map_file(entries: MapEntries) -> bytes:
    return "".join(f"{key} {value}\n" for key, value in entries).encode()


def _crt_list(table: RouteTable, directory: str, warnings: list[str]) -> tuple[str, dict[str,
                                                                                      bytes]]:
    default = f"{directory}/{DEFAULT_CERT}"
    lines = [f"{default} !*"]
    certs: dict[str, bytes] = {}
    for cert in table.certificates:
        hosts = [h for h in cert.hosts if valid_host(h)]
        if not _CERT_NAME.fullmatch(cert.name) or not hosts or b"\n\n" in cert.pem:
            warnings.append(f"certificate {cert.name!r} refused")
            continue
        path = f"{directory}/{CERT_DIR}/{cert.name}.pem"
        certs[path] = cert.pem
        lines.append(" ".join([path, *hosts]))
    fallback = [h for h in table.default_cert_hosts if valid_host(h)]
    if fallback:
        lines.append(" ".join([default, *fallback]))
    return "".join(line + "\n" for line in lines), certs


def _server_lines(slots: tuple[Endpoint | None, ...], masked: bool) -> list[str]:
    lines = []
    for i, ep in enumerate(slots, 1):
        if masked:
            lines.append(f"    server s{i} <slot>")
        elif ep is None or not _IPV4.fullmatch(ep.ip) or not 0 < ep.port < 65536:
            lines.append(f"    server s{i} {EMPTY_SLOT} disabled")
        else:
            lines.append(f"    server s{i} {ep.ip}:{ep.port}")
    return lines


def _global(socket: str, maxconn: int | None, nbthread: int | None) -> list[str]:
    lines = [
        "global",
        "    master-worker",
        f"    stats socket {socket} mode 600 level admin expose-fd listeners",
        "    stats timeout 30s",
        "    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets",
        "    tune.ssl.default-dh-param 2048",
    ]
    if maxconn is not None:  # else HAProxy derives it from the open-files limit
        lines.append(f"    maxconn {maxconn}")
    if nbthread is not None:
        lines.append(f"    nbthread {nbthread}")
    return lines


_DEFAULTS = [
    "defaults",
    "    mode http",
    "    option http-keep-alive",
    # A reload soft-stops the old worker: by default it closes its idle keep-alive
    # connections at once, and a client that sent its next request meanwhile sees the
    # connection reset (wrk counted 3 read errors in 8 reloads). With this option the old
    # worker answers that request, with `Connection: close`, then closes.
    "    option idle-close-on-response",
    "    option redispatch 1",
    "    retries 3",
    "    retry-on conn-failure",
    "    timeout connect 5s",
    "    timeout client 60s",
    "    timeout server 60s",
    "    timeout http-request 10s",
    "    timeout http-keep-alive 60s",
    "    timeout queue 10s",
    "    timeout tunnel 1h",
    "    timeout client-fin 10s",
    "    timeout server-fin 10s",
]

_FORWARDED = [
    "    http-request set-header X-Forwarded-Proto https if { ssl_fc }",
    "    http-request set-header X-Forwarded-Proto http unless { ssl_fc }",
    "    http-request set-header X-Forwarded-For %[src]",
    "    http-request set-header X-Forwarded-Host %[req.hdr(host)] if { req.hdr(host) -m found }",
    "    http-request del-header X-Forwarded-Host unless { req.hdr(host) -m found }",
    "    http-request set-header X-Forwarded-Port %[dst_port]",
]


def _routing(directory: str) -> list[str]:
    exact, prefix = f"{directory}/{EXACT_MAP}", f"{directory}/{PREFIX_MAP}"
    unset = " unless { var(txn.backend) -m found }"
    lines = [
        # RFC 9112 3.2: an HTTP/1.1 request without a Host header is a 400 (HTTP/1.0 may omit
        # it and meets the rules without a host; HTTP/2's :authority becomes the Host header).
        "    http-request deny deny_status 400 if { req.ver 1.1 } !{ req.hdr_cnt(host) gt 0 }",
        "    http-request set-var(txn.host) req.hdr(host),host_only",
        "    http-request deny deny_status 400 if { var(txn.host) -m sub / }",
        "    http-request set-var(txn.path) path",
        "    http-request set-var(txn.hkey) str(),concat(,txn.host,),concat(,txn.path,)",
        "    http-request set-var(txn.wkey) "
        "var(txn.host),regsub('^[^.]+[.]','*.'),concat(,txn.path,)",
        "    http-request set-var(txn.pkey) str(),concat(,txn.path,)",
    ]
    first = True
    for key in ("hkey", "wkey", "pkey"):
        lines.append(f"    http-request set-var(txn.backend) var(txn.{key}),map_str({exact})"
                     + ("" if first else unset))
        lines.append(f"    http-request set-var(txn.backend) "
                     f"var(txn.{key}),concat(/),map_beg({prefix})" + unset)
        first = False
    lines += [
        f"    http-request set-var(txn.backend) str({DEFAULT_KEY}),"
        f"map_str({directory}/{DEFAULT_MAP})" + unset,
        "    use_backend %[var(txn.backend)] if { var(txn.backend) -m found }",
        f"    default_backend {NOT_FOUND_BACKEND}",
    ]
    return lines


def _backends(table: RouteTable, previous: Config | None, compact: bool,
              warnings: list[str]) -> tuple[ServerSlots, ...]:
    out: dict[str, ServerSlots] = {}
    for backend in table.backends:
        name = backend_name(backend.ref)
        if name in out or not _BACKEND_NAME.fullmatch(name):
            warnings.append(f"backend {backend.ref} refused: duplicate or invalid name")
            continue
        old = previous.slots(name) if previous is not None else None
        out[name] = ServerSlots(name, backend.ref,
                                assign_slots(_usable(backend), old.servers if old else ()))
    if previous is not None and not compact:
        for old in previous.backends:  # unused now: kept, emptied, until a reload
            if old.backend not in out:
                out[old.backend] = ServerSlots(old.backend, old.ref, (None,) * len(old.servers))
    return tuple(out[n] for n in sorted(out))


def _usable(backend: Backend) -> tuple[Endpoint, ...]:
    return tuple(e for e in backend.endpoints if _IPV4.fullmatch(e.ip) and 0 < e.port < 65536)


def _text(backends: tuple[ServerSlots, ...], head: list[str], masked: bool) -> str:
    lines = list(head)
    for b in backends:
        lines += ["", f"backend {b.backend}", "    balance roundrobin"]
        lines += _server_lines(b.servers, masked)
    return "\n".join(lines) + "\n"


def render(table: RouteTable, *, directory: str, socket: str, default_cert: bytes,
           http_port: int = 80, https_port: int | None = 443, health_port: int = 10254,
           bind_address: str = "", maxconn: int | None = None, nbthread: int | None = None,
           previous: Config | None = None, compact: bool = False) -> Config:
    """The configuration for `table`. `directory` is where the files are written (the text
    names them by absolute path), `socket` the Runtime API's unix socket, `default_cert` the
    PEM (certificate and key) served when no Secret's certificate matches.

    `previous`, the configuration running now, keeps endpoints in their server slots, and its
    backends that no route uses any more (emptied), so that removing a route needs no reload.
    `compact` drops those: render again with it when `needs_reload` says a reload is due."""
    directory = _check_path("directory", directory)
    socket = _check_path("socket", socket)
    for what, port in (("http_port", http_port), ("health_port", health_port)):
        _check_port(what, port)
    if https_port is not None:
        _check_port("https_port", https_port)
    if bind_address and not _IPV4.fullmatch(bind_address):
        raise ValueError(f"bind_address {bind_address!r}: not an IPv4 address")
    if b"-----BEGIN CERTIFICATE-----" not in default_cert or b"\n\n" in default_cert:
        raise ValueError("default_cert: not a PEM certificate and key without blank lines")
    for what, number in (("maxconn", maxconn), ("nbthread", nbthread)):
        if number is not None and (isinstance(number, bool) or number < 1):
            raise ValueError(f"{what} {number!r}: must be a positive number")

    warnings: list[str] = []
    exact, prefix = _entries(table, warnings)
    default: MapEntries = ()
    if table.default is not None:
        default = ((DEFAULT_KEY, backend_name(table.default.backend)),)
    crt_list, certs = _crt_list(table, directory, warnings)
    backends = _backends(table, previous, compact, warnings)

    frontend = ["", "frontend ingress", f"    bind {bind_address}:{http_port}"]
    if https_port is not None:
        frontend.append(f"    bind {bind_address}:{https_port} ssl crt-list "
                        f"{directory}/{CRT_LIST} alpn h2,http/1.1")
    head = [
        "# HAProxy configuration of podnet's ingress, rendered by podnet.ingress.haproxy:",
        "# do not edit. Routes are in the map files, not here (see that module).",
        *_global(socket, maxconn, nbthread),
        "",
        *_DEFAULTS,
        "",
        "frontend healthz",
        f"    bind {bind_address}:{health_port}",
        "    monitor-uri /healthz",
        *frontend,
        *_FORWARDED,
        *_routing(directory),
        "",
        f"backend {NOT_FOUND_BACKEND}",
        "    http-request return status 404 content-type text/plain "
        "string \"404 page not found (podnet ingress)\"",
    ]
    files: dict[str, bytes] = {
        EXACT_MAP: _map_file(exact),
        PREFIX_MAP: _map_file(prefix),
        DEFAULT_MAP: _map_file(default),
        CRT_LIST: crt_list.encode(),
        DEFAULT_CERT: default_cert,
    }
    for path, pem in certs.items():
        files[path[len(directory) + 1:]] = pem
    certificates = dict(certs)
    certificates[f"{directory}/{DEFAULT_CERT}"] = default_cert
    return Config(
        text=_text(backends, head, masked=False),
        files=files,
        backends=backends,
        maps={f"{directory}/{EXACT_MAP}": exact, f"{directory}/{PREFIX_MAP}": prefix,
              f"{directory}/{DEFAULT_MAP}": default},
        certificates=certificates,
        skeleton=_text(backends, head, masked=True) + crt_list,
        warnings=tuple(warnings),
    )


# --- changes ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Command:
    """One Runtime API command, payload included, newline-terminated: send it as it is on a
    new connection to the stats socket and read the answer to the end."""

    text: str


@dataclass(frozen=True)
class MapReplace:
    """Replace a map's entries atomically: send `prepare()`, read the version from its answer
    (`parse_version`), send each of `fill(version)`, then `commit(version)`."""

    path: str
    entries: MapEntries = field(default=())

    def prepare(self) -> Command:
        return Command(f"prepare map {self.path}\n")

    def fill(self, version: int) -> tuple[Command, ...]:
        head = f"add map @{version} {self.path} <<\n"
        commands: list[Command] = []
        chunk: list[str] = []
        size = len(head)
        for key, value in self.entries:
            line = f"{key} {value}\n"
            if chunk and size + len(line) + 1 > RUNTIME_PAYLOAD_MAX:
                commands.append(Command(head + "".join(chunk) + "\n"))
                chunk, size = [], len(head)
            chunk.append(line)
            size += len(line)
        if chunk:
            commands.append(Command(head + "".join(chunk) + "\n"))
        return tuple(commands)

    def commit(self, version: int) -> Command:
        return Command(f"commit map @{version} {self.path}\n")


RuntimeOp = Command | MapReplace


def parse_version(reply: str) -> int:
    """The version number in the answer to `prepare map`."""
    found = _VERSION.search(reply)
    if found is None:
        raise ValueError(f"not an answer to prepare map: {reply!r}")
    return int(found.group(1))


def _runtime_cert(pem: bytes) -> bool:
    """Whether a certificate can go through `set ssl cert`: no blank line (the end of a
    payload) and small enough for the CLI's buffer."""
    return b"\n\n" not in pem and pem.endswith(b"\n") and len(pem) < RUNTIME_PAYLOAD_MAX


def needs_reload(old: Config | None, new: Config) -> bool:
    """Whether `new` needs a (seamless) reload rather than Runtime API commands: anything but
    endpoints in existing slots, map contents and certificate contents changed."""
    if old is None or old.skeleton != new.skeleton:
        return True
    return _certificates_need_reload(old, new)


def _certificates_need_reload(old: Config, new: Config) -> bool:
    """A certificate changed that the Runtime API cannot replace in place."""
    return any(old.certificates.get(path) != pem and not _runtime_cert(pem)
               for path, pem in new.certificates.items())


def reload_reasons(old: Config | None, new: Config) -> list[str]:
    """Why going from `old` to `new` needs a reload, in words (for the log): backends added or
    dropped, slots grown or shrunk, other configuration, certificates the Runtime API cannot
    replace. Empty when `needs_reload(old, new)` is false."""
    if old is None:
        return ["first configuration"]
    reasons: list[str] = []
    before = {b.backend: len(b.servers) for b in old.backends}
    after = {b.backend: len(b.servers) for b in new.backends}
    added = sorted(set(after) - set(before))
    dropped = sorted(set(before) - set(after))
    resized = sorted(f"{n} {before[n]}->{after[n]} slots" for n in set(before) & set(after)
                     if before[n] != after[n])
    if added:
        reasons.append("new backends " + ", ".join(added))
    if dropped:
        reasons.append("backends dropped " + ", ".join(dropped))
    if resized:
        reasons.append(", ".join(resized))
    if not reasons and old.skeleton != new.skeleton:
        reasons.append("other configuration")
    if _certificates_need_reload(old, new):
        reasons.append("certificates")
    return reasons


def runtime_commands(old: Config, new: Config) -> tuple[RuntimeOp, ...]:
    """The Runtime API operations that take a running `old` to `new`, in the order to apply
    them: certificates, endpoints that appear, maps, then endpoints that go (so a backend
    never lacks a server in between). Only meaningful when `needs_reload(old, new)` is false;
    the files must be written first, so that a later reload starts from the same state."""
    certs: list[RuntimeOp] = []
    for path, pem in sorted(new.certificates.items()):
        if path in old.certificates and old.certificates[path] != pem and _runtime_cert(pem):
            certs.append(Command(f"set ssl cert {path} <<\n{pem.decode()}\n"))
            certs.append(Command(f"commit ssl cert {path}\n"))
    adds: list[RuntimeOp] = []
    removes: list[RuntimeOp] = []
    for slots in new.backends:
        before = old.slots(slots.backend)
        if before is None or len(before.servers) != len(slots.servers):
            continue
        for i, (was, now) in enumerate(zip(before.servers, slots.servers, strict=True), 1):
            server = f"{slots.backend}/s{i}"
            if now is not None and now != was:
                adds.append(Command(f"set server {server} addr {now.ip} port {now.port}\n"))
                adds.append(Command(f"set server {server} state ready\n"))
            elif now is None and was is not None:
                removes.append(Command(f"set server {server} state maint\n"))
    maps: list[RuntimeOp] = [MapReplace(path, entries)
                             for path, entries in sorted(new.maps.items())
                             if old.maps.get(path) != entries]
    return (*certs, *adds, *maps, *removes)
