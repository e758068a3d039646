"""The rendered HAProxy configuration, checked by the real HAProxy (Debian's haproxy 2.6).

`haproxy -c` accepts every configuration the renderer produces, hostile inputs included; then
HAProxy runs on 127.0.0.1 in front of small HTTP servers (one per Service, answering with the
Service's name and the request headers it got), and every request is routed where
`routes.match` says. Changes the Runtime API can make (endpoints, maps, certificates) are
applied through the stats socket, and the worker is checked to be the same process afterwards.

Address plan: everything on 127.0.0.1; HAProxy's ports and the backends' ports are free ports
picked at run time. Skipped when haproxy is not installed (scripts/install.sh installs it).
"""

from __future__ import annotations

import base64
import datetime
import http.client
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from podnet.cluster.state import ephemeral_port
from podnet.ingress import haproxy, routes

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed")

Obj = dict[str, Any]
LOCAL = "127.0.0.1"
T0 = "2024-01-01T00:00:00Z"
T1 = "2024-01-02T00:00:00Z"


# --- objects ------------------------------------------------------------------------------------

def _self_signed(cn: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


DEFAULT_CERT = b"".join(_self_signed("podnet-ingress-default"))


def backend(name: str) -> Obj:
    return {"service": {"name": name, "port": {"number": 80}}}


def paths(host: str | None, *items: tuple[str, str, str]) -> Obj:
    rule: Obj = {"http": {"paths": [{"path": p, "pathType": t, "backend": backend(s)}
                                    for p, t, s in items]}}
    if host is not None:
        rule["host"] = host
    return rule


def ingress(name: str, *rules: Obj, created: str = T0, **spec: Any) -> Obj:
    return {"metadata": {"namespace": "default", "name": name, "creationTimestamp": created},
            "spec": {"ingressClassName": "podnet", "rules": list(rules), **spec}}


def service(name: str) -> Obj:
    return {"metadata": {"namespace": "default", "name": name},
            "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}


def endpoint_slice(name: str, port: int, ready: bool = True, slice_name: str = "") -> Obj:
    """One endpoint, 127.0.0.1:<port>, for Service `name`."""
    return {"metadata": {"namespace": "default", "name": slice_name or f"{name}-x",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [LOCAL], "conditions": {"ready": ready}}]}


def tls_secret(name: str, crt: bytes, key: bytes) -> Obj:
    return {"metadata": {"namespace": "default", "name": name}, "type": routes.TLS_SECRET_TYPE,
            "data": {"tls.crt": base64.b64encode(crt).decode(),
                     "tls.key": base64.b64encode(key).decode()}}


# The Kubernetes docs' path-matching table: one host per row (row<i>.paths.test), its rules
# backed by Services r0, r1, r2 (index in the row); unmatched requests go to the default.
DOCS_ROWS: list[tuple[list[tuple[str, str]], list[str]]] = [
    ([("/", "Prefix")], ["/", "/aaa/bbb", "/aaa/bbb/"]),
    ([("/foo", "Exact")], ["/foo", "/bar", "/foo/", "/FOO"]),
    ([("/foo/", "Exact")], ["/foo", "/foo/"]),
    ([("/foo", "Prefix")], ["/foo", "/foo/", "/FOO", "/foobar"]),
    ([("/foo/", "Prefix")], ["/foo", "/foo/"]),
    ([("/aaa/bb", "Prefix")], ["/aaa/bbb"]),
    ([("/aaa/bbb", "Prefix")], ["/aaa/bbb", "/aaa/bbb/", "/aaa/bbb/ccc", "/aaa/bbbxyz"]),
    ([("/aaa/bbb/", "Prefix")], ["/aaa/bbb"]),
    ([("/", "Prefix"), ("/aaa", "Prefix")], ["/aaa/ccc"]),
    ([("/", "Prefix"), ("/aaa", "Prefix"), ("/aaa/bbb", "Prefix")], ["/aaa/bbb", "/ccc"]),
    ([("/aaa", "Prefix")], ["/ccc", "/aaaccc"]),
    ([("/foo", "Prefix"), ("/foo", "Exact")], ["/foo", "/foo/x"]),
    ([("/a;b", "ImplementationSpecific"), ("/%41", "Exact")], ["/a;b/c", "/%41", "/A"]),
]
SERVICES = ["r0", "r1", "r2", "default-backend", "foo", "wild", "exact", "h-api", "any-web",
            "web", "api", "empty"]


def objects(ports: dict[str, int], web_ports: list[int]) -> tuple[list[Obj], list[Obj]]:
    """The Ingresses and EndpointSlices of the live tests (Services from SERVICES)."""
    ingresses = [
        ingress("paths", *[paths(f"row{i}.paths.test",
                                 *[(p, t, f"r{j}") for j, (p, t) in enumerate(rules)])
                           for i, (rules, _) in enumerate(DOCS_ROWS)],
                defaultBackend=backend("default-backend")),
        ingress("hosts", paths("foo.bar.com", ("/", "Prefix", "foo")),
                paths("*.foo.com", ("/", "Prefix", "wild"), ("/api", "Prefix", "api")),
                paths("exact.foo.com", ("/", "Prefix", "exact")),
                paths("h.example.com", ("/api", "Prefix", "h-api")),
                paths(None, ("/web", "Prefix", "any-web"), ("/empty", "Prefix", "empty")),
                paths("web.example.com", ("/", "Prefix", "web")), created=T1),
    ]
    slices = [endpoint_slice(s, ports[s]) for s in SERVICES if s not in ("web", "empty")]
    slices.append(endpoint_slice("empty", ports["r0"], ready=False))
    slices += [endpoint_slice("web", p, slice_name=f"web-{p}") for p in web_ports]
    return ingresses, slices


def build(ingresses: list[Obj], slices: list[Obj], secrets: list[Obj] | None = None,
          extra_services: list[Obj] | None = None) -> routes.RouteTable:
    classes = [{"metadata": {"name": "podnet"}, "spec": {"controller": routes.CONTROLLER}}]
    return routes.build(ingresses, classes, [service(s) for s in SERVICES] +
                        (extra_services or []), slices, secrets or [])


# --- backends: one small HTTP server per Service ------------------------------------------------

class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        server: Any = self.server
        body = json.dumps({"service": server.name, "port": server.server_port, "path": self.path,
                           "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # HAProxy closing idle keep-alive connections when it stops


@pytest.fixture(scope="module")
def echo_servers() -> Iterator[dict[str, int]]:
    """Service name -> the port of its server; `web` has two (web, web-2)."""
    servers = []
    ports = {}
    for name in [*SERVICES, "web-2"]:
        server = _Server((LOCAL, 0), _Echo)
        server.name = "web" if name == "web-2" else name  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                         daemon=True).start()
        servers.append(server)
        ports[name] = server.server_address[1]
    yield ports
    for server in servers:
        server.shutdown()
        server.server_close()


# --- HAProxy ------------------------------------------------------------------------------------

def write(config: haproxy.Config, directory: Path) -> Path:
    (directory / haproxy.CERT_DIR).mkdir(parents=True, exist_ok=True)
    for name, data in config.files.items():
        (directory / name).write_bytes(data)
    cfg = directory / "haproxy.cfg"
    cfg.write_text(config.text)
    return cfg


def check(cfg: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True,
                          timeout=30)


def cli(sock: str, command: str) -> str:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(sock)
        s.sendall(command.encode())
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    return reply.decode()


@dataclass
class Proxy:
    directory: Path
    http_port: int
    https_port: int
    health_port: int
    config: haproxy.Config | None = None

    @property
    def socket(self) -> str:
        return str(self.directory / "admin.sock")

    def render(self, table: routes.RouteTable) -> haproxy.Config:
        return haproxy.render(table, directory=str(self.directory), socket=self.socket,
                              default_cert=DEFAULT_CERT, http_port=self.http_port,
                              https_port=self.https_port, health_port=self.health_port,
                              bind_address=LOCAL, previous=self.config)

    def apply(self, table: routes.RouteTable) -> None:
        """Take the running proxy to `table` through the Runtime API (no reload)."""
        new = self.render(table)
        assert self.config is not None
        assert not haproxy.needs_reload(self.config, new)
        write(new, self.directory)
        replies = []
        for op in haproxy.runtime_commands(self.config, new):
            if isinstance(op, haproxy.Command):
                replies.append(cli(self.socket, op.text))
                continue
            version = haproxy.parse_version(cli(self.socket, op.prepare().text))
            replies += [cli(self.socket, c.text) for c in op.fill(version)]
            replies.append(cli(self.socket, op.commit(version).text))
        for reply in replies:
            assert not any(w in reply.lower() for w in ("error", "unknown", "can't", "not ")), \
                reply
        self.config = new

    def worker_pid(self) -> str:
        info = cli(self.socket, "show info\n")
        return next(line for line in info.splitlines() if line.startswith("Pid:"))

    def get(self, host: str, path: str, headers: dict[str, str] | None = None
            ) -> tuple[int, Obj | None]:
        conn = http.client.HTTPConnection(LOCAL, self.http_port, timeout=5)
        try:
            conn.request("GET", path, headers={"Host": host, **(headers or {})})
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        if response.status == 200:
            return 200, json.loads(body)
        return response.status, None

    def served(self, host: str, path: str) -> str:
        status, body = self.get(host, path)
        return body["service"] if body else str(status)


@pytest.fixture
def start_proxy(tmp_path: Path) -> Iterator[Callable[[routes.RouteTable], Proxy]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(table: routes.RouteTable) -> Proxy:
        proxy = Proxy(tmp_path, ephemeral_port(LOCAL), ephemeral_port(LOCAL),
                      ephemeral_port(LOCAL))
        proxy.config = proxy.render(table)
        cfg = write(proxy.config, tmp_path)
        log = (tmp_path / "haproxy.log").open("wb")
        procs.append(subprocess.Popen(["haproxy", "-f", str(cfg)], stdout=log,
                                      stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection((LOCAL, proxy.health_port), timeout=1) as s:
                    s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
                    if s.recv(100).split(b"\r\n")[0].endswith(b" 200 OK"):
                        break
            except OSError:
                pass
            assert procs[-1].poll() is None, (tmp_path / "haproxy.log").read_text()
            assert time.monotonic() < deadline, "haproxy did not come up"
            time.sleep(0.05)
        return proxy

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- haproxy -c ---------------------------------------------------------------------------------

def _hostile() -> routes.RouteTable:
    evil = [
        ingress("evil", paths("a.example.com\n  bind :1", ("/x", "Prefix", "web")),
                paths(None, ("/y\nuse_backend podnet_404", "Exact", "web"),
                      ("/z w", "ImplementationSpecific", "web"),
                      ("/a;b\\c\"d'e%0A{f}", "ImplementationSpecific", "web"),
                      ("/ok", "Prefix", "web\n    server x 1.1.1.1:1")),
                tls=[{"hosts": ["a.example.com\nfoo"], "secretName": "tls"}],
                defaultBackend={"service": {"name": "web", "port": {"name": "http\n#"}}}),
    ]
    return build(evil, [], [tls_secret("tls", b"-----BEGIN CERTIFICATE-----\n\nx", b"\n\n")])


def _with_tls() -> routes.RouteTable:
    crt, key = _self_signed("a.example.com")
    ingresses, slices = objects({s: 10000 + i for i, s in enumerate(SERVICES)}, [10100, 10101])
    ingresses.append(ingress("tls", tls=[{"hosts": ["a.example.com", "*.b.example.com"],
                                          "secretName": "tls-a"},
                                         {"hosts": ["c.example.com"], "secretName": "gone"}],
                             created=T1))
    table = build(ingresses, slices, [tls_secret("tls-a", crt, key)])
    assert table.certificates and table.default_cert_hosts == ("c.example.com",)
    return table


@pytest.mark.parametrize("name", ["objects", "hostile", "empty", "http-only"])
def test_rendered_configurations_pass_haproxy_check(tmp_path: Path, name: str) -> None:
    tables: dict[str, Callable[[], routes.RouteTable]] = {
        "objects": _with_tls,
        "hostile": _hostile,
        "empty": routes.RouteTable,
        "http-only": lambda: build(*objects({s: 10000 for s in SERVICES}, [])),
    }
    config = haproxy.render(tables[name](), directory=str(tmp_path),
                            socket=str(tmp_path / "admin.sock"), default_cert=DEFAULT_CERT,
                            https_port=None if name == "http-only" else 443)
    result = check(write(config, tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout + result.stderr, result.stdout + result.stderr


# --- live routing -------------------------------------------------------------------------------

def test_haproxy_routes_as_routes_match(echo_servers: dict[str, int],
                                        start_proxy: Callable[[routes.RouteTable], Proxy]
                                        ) -> None:
    table = build(*objects(echo_servers, [echo_servers["web"]]))
    proxy = start_proxy(table)
    requests = [(f"row{i}.paths.test", p) for i, (_, ps) in enumerate(DOCS_ROWS) for p in ps]
    requests += [(h, "/anything") for h in (
        "foo.bar.com", "FOO.Bar.com:8080", "subdomain.bar.com", "bar.foo.com", "baz.bar.foo.com",
        "foo.com", "exact.foo.com", "foo.bar.com.")]
    requests += [("h.example.com", "/api/x"), ("h.example.com", "/web"),
                 ("h.example.com", "/other"), ("x.foo.com", "/api/v1"), ("x.foo.com", "/web"),
                 ("nohost.test", "/empty"), ("nohost.test", "/a%20b")]
    for host, path in requests:
        route = routes.match(table, host, path)
        expected = route.backend.service if route else "404"
        if expected == "empty":
            expected = "503"
        assert (host, path, proxy.served(host, path)) == (host, path, expected)


def test_runtime_changes_without_reload(echo_servers: dict[str, int],
                                        start_proxy: Callable[[routes.RouteTable], Proxy]
                                        ) -> None:
    ingresses, slices = objects(echo_servers, [echo_servers["web"]])
    proxy = start_proxy(build(ingresses, slices))
    pid = proxy.worker_pid()

    # A second endpoint for `web`: both answer (round robin), through server slots.
    _, two = objects(echo_servers, [echo_servers["web"], echo_servers["web-2"]])
    proxy.apply(build(ingresses, two))
    ports = set()
    for _ in range(4):
        status, body = proxy.get("web.example.com", "/")
        assert status == 200 and body is not None
        ports.add(body["port"])
    assert ports == {echo_servers["web"], echo_servers["web-2"]}
    assert proxy.config is not None
    slots = proxy.config.slots("svc_default_web_80")
    assert slots is not None
    assert sorted(e.port for e in slots.servers if e) == sorted(
        [echo_servers["web"], echo_servers["web-2"]])

    # A new route to an existing backend, and the defaultBackend gone: maps only.
    ingresses[0]["spec"].pop("defaultBackend")
    ingresses[1]["spec"]["rules"].append(paths("new.example.com", ("/", "Exact", "api")))
    proxy.apply(build(ingresses, two))
    assert proxy.served("new.example.com", "/") == "api"
    assert proxy.served("new.example.com", "/x") == "404"
    assert proxy.served("row1.paths.test", "/bar") == "404"

    # `web` loses all its endpoints: 503.
    proxy.apply(build(ingresses, [s for s in two if not s["metadata"]["name"].startswith(
        "web-")]))
    assert proxy.served("web.example.com", "/") == "503"
    assert proxy.worker_pid() == pid


def _served_cert(port: int, sni: str) -> x509.Certificate:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((LOCAL, port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=sni) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def _cn(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def test_tls_by_sni_and_rotation(echo_servers: dict[str, int],
                                 start_proxy: Callable[[routes.RouteTable], Proxy]) -> None:
    crt_a, key_a = _self_signed("a.example.com")
    crt_b, key_b = _self_signed("b.example.com")
    ingresses, slices = objects(echo_servers, [echo_servers["web"]])
    ingresses.append(ingress("tls", paths("a.example.com", ("/", "Prefix", "foo")),
                             created=T1, tls=[{"hosts": ["a.example.com"], "secretName": "a"},
                                              {"hosts": ["b.example.com"], "secretName": "b"},
                                              {"hosts": ["c.example.com"],
                                               "secretName": "missing"}]))
    secrets = [tls_secret("a", crt_a, key_a), tls_secret("b", crt_b, key_b)]
    proxy = start_proxy(build(ingresses, slices, secrets))
    pid = proxy.worker_pid()
    first_a = _served_cert(proxy.https_port, "a.example.com")
    assert _cn(first_a) == "a.example.com"
    assert _cn(_served_cert(proxy.https_port, "b.example.com")) == "b.example.com"
    assert _cn(_served_cert(proxy.https_port, "c.example.com")) == "podnet-ingress-default"
    assert _cn(_served_cert(proxy.https_port, "unknown.test")) == "podnet-ingress-default"

    crt_a2, key_a2 = _self_signed("a.example.com")
    proxy.apply(build(ingresses, slices, [tls_secret("a", crt_a2, key_a2), secrets[1]]))
    rotated = _served_cert(proxy.https_port, "a.example.com")
    assert rotated.serial_number != first_a.serial_number
    assert rotated == x509.load_pem_x509_certificate(crt_a2)
    assert proxy.worker_pid() == pid

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(LOCAL, proxy.https_port, timeout=5, context=context)
    conn.request("GET", "/x", headers={"Host": "a.example.com"})
    body = json.loads(conn.getresponse().read())
    conn.close()
    assert (body["service"], body["headers"]["x-forwarded-proto"]) == ("foo", "https")


def test_forwarded_headers_and_bad_requests(echo_servers: dict[str, int],
                                            start_proxy: Callable[[routes.RouteTable], Proxy]
                                            ) -> None:
    proxy = start_proxy(build(*objects(echo_servers, [echo_servers["web"]])))
    status, body = proxy.get("foo.bar.com:8080", "/p?q=1", {"X-Forwarded-For": "6.6.6.6",
                                                            "X-Forwarded-Proto": "https"})
    assert status == 200 and body is not None
    headers = body["headers"]
    assert (body["path"], headers["x-forwarded-for"], headers["x-forwarded-proto"],
            headers["x-forwarded-host"], headers["x-forwarded-port"]) == (
        "/p?q=1", LOCAL, "http", "foo.bar.com:8080", str(proxy.http_port))

    def raw(request: bytes) -> bytes:
        with socket.create_connection((LOCAL, proxy.http_port), timeout=5) as s:
            s.sendall(request)
            return s.recv(100)

    assert raw(b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert raw(b"GET /x HTTP/1.1\r\nHost: foo.bar.com/x\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert raw(b"GET /a#b HTTP/1.1\r\nHost: foo.bar.com\r\n\r\n").startswith(b"HTTP/1.1 400")
