"""What the ingress integration tests share: a lab with the ingress kept for a module, a
namespace per test (removed afterwards, also on failure), echo backends, Ingress builders,
TLS certificates, and HTTP from the external host with the real curl.

Address plan (the lab's defaults):

    LAN 172.18.0.0/24           the external host .2, node-i .(10+i), LoadBalancer pool .200-.249
    ingress-podnet/podnet-ingress   the LoadBalancer Service: its address (the pool's first,
                                 172.18.0.200, on a fresh lab) is what curl connects to
    pods 10.244.0.0/16          the ingress pod on node-1; echo pods on both nodes, port 8080,
                                 behind Services on port 80 (labkit's)

Requests go out as one curl process per batch (`curl A --next B --next C`), each request with
its own options: `--resolve host:port:LB` for names (so SNI is the name), `-H Host:` for Host
headers curl would not send from a URL (a port, upper case), `--path-as-is` always.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import importlib.util
import json
import re
import secrets
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from conftest import TestCluster, module_lab
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from labkit import SVC_PORT, echo_pod, ready_endpoints, service, wait_for

from podnet import runtime
from podnet.api.resources import Resource, lookup
from podnet.client.http import ApiError, Client
from podnet.cluster import addons, lifecycle
from podnet.cluster.state import ClusterState
from podnet.ingress import haproxy, routes
from podnet.lab import names as lab_names

EXTERNAL_IP = "172.18.0.2"
NOT_FOUND_BODY = "404 page not found (podnet ingress)"
MARK = "\n@@podnet-curl@@"  # ends each request's output: body, MARK, "<status> <verify>"
ROUTE_TIMEOUT = 20.0  # seconds a change may take to show at the ingress


def res(kind: str) -> Resource:
    r = lookup(kind)
    assert r is not None, kind
    return r


POD, SVC, NS, ING, ING_CLASS, SECRET, SLICE = (
    res("Pod"), res("Service"), res("Namespace"), res("Ingress"), res("IngressClass"),
    res("Secret"), res("EndpointSlice"))


# -- the lab ----------------------------------------------------------------------------------


def ingress_lab(root: Path, nodes: int = 2) -> contextlib.AbstractContextManager[TestCluster]:
    """A lab with the ingress, kept for a module (conftest.module_lab); no HAProxy of it may
    outlive it."""
    def haproxy_left(state: ClusterState) -> list[str]:
        return [f"haproxy pid {pid}" for pid in haproxy_pids(state)]
    return module_lab(root, "i", nodes=nodes, ingress=True, leftovers=haproxy_left)


def haproxy_pids(state: ClusterState) -> list[int]:
    """HAProxy processes running this cluster's ingress configuration."""
    config = str(state.dir / lifecycle.INGRESS_DIR)
    return [pid for pid in map(int, (p.name for p in Path("/proc").iterdir()
                                     if p.name.isdigit()))
            if (args := lifecycle.cmdline(pid)) and Path(args[0]).name == "haproxy"
            and any(a.startswith(config) for a in args)]


def lb_ip(lab: TestCluster) -> str:
    """The ingress Service's LoadBalancer address."""
    def address() -> str | None:
        svc = lab.client.get(SVC, addons.INGRESS_NAMESPACE, addons.INGRESS_NAME)
        return addons.ingress_address(svc)
    found: str = wait_for("the ingress's LoadBalancer address", address, timeout=30)
    return found


def ingress_pod(lab: TestCluster) -> dict[str, Any]:
    return lab.client.get(POD, addons.INGRESS_NAMESPACE, addons.INGRESS_NAME)


def in_pod(lab: TestCluster, pod: dict[str, Any], *argv: str,
           timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run argv in a pod's namespaces (what `podnet exec` does)."""
    prefix = runtime.exec_argv(lab.state.node_dir(pod["spec"]["nodeName"]),
                               pod["metadata"]["uid"])
    return subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=timeout)


def metrics(lab: TestCluster) -> dict[str, float]:
    """The controller's /metrics, read inside its pod."""
    r = in_pod(lab, ingress_pod(lab), "curl", "-sS", "--max-time", "5",
               f"http://127.0.0.1:{addons.INGRESS_HEALTH_PORT}/metrics")
    assert r.returncode == 0, r.stderr
    out = {}
    for line in r.stdout.splitlines():
        if line and not line.startswith("#"):
            key, value = line.split()
            out[key.removeprefix("podnet_ingress_")] = float(value)
    return out


def controller_log(lab: TestCluster) -> str:
    pod = ingress_pod(lab)
    path = runtime.log_path(lab.state.node_dir(pod["spec"]["nodeName"]),
                            pod["metadata"]["uid"], addons.INGRESS_CONTAINER)
    return path.read_text(errors="replace")


def reload_counted(lab: TestCluster, ns: str, service: str, port: int = SVC_PORT) -> bool:
    """Whether the controller has logged (so counted: it counts first) the reload that gave
    the Service `service` its backend. A route answers as soon as the new worker serves, a
    moment before the controller, polling `show info`, sees that worker and counts it."""
    backend = haproxy.backend_name(routes.BackendRef(ns, service, port))
    return any("reloaded haproxy" in line and backend in line
               for line in controller_log(lab).splitlines())


def haproxy_dir(lab: TestCluster) -> Path:
    return lab.state.dir / lifecycle.INGRESS_DIR / addons.INGRESS_NAME


# -- a namespace per test ---------------------------------------------------------------------


@dataclass
class Scope:
    """A test's own namespace and the cluster-scoped objects it made; `close` removes them
    and waits until they are gone."""

    lab: TestCluster
    ns: str
    classes: list[str] = field(default_factory=list)

    @property
    def client(self) -> Client:
        return self.lab.client

    def create(self, r: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        if r is ING_CLASS:
            self.classes.append(obj["metadata"]["name"])
            return self.client.create(r, None, obj)
        return self.client.create(r, self.ns, obj)

    def close(self) -> None:
        for name in self.classes:
            with contextlib.suppress(ApiError):
                self.client.delete(ING_CLASS, None, name)
        with contextlib.suppress(ApiError):
            self.client.delete(NS, None, self.ns)

        def gone() -> bool:
            try:
                self.client.get(NS, None, self.ns)
            except ApiError as e:
                return e.status == 404
            return False
        wait_for(f"namespace {self.ns} gone", gone, timeout=90)


@contextlib.contextmanager
def scope(lab: TestCluster) -> Iterator[Scope]:
    s = Scope(lab, "t-" + secrets.token_hex(3))
    lab.client.create(NS, None, {"apiVersion": "v1", "kind": "Namespace",
                                 "metadata": {"name": s.ns}})
    try:
        yield s
    finally:
        s.close()


# -- backends ---------------------------------------------------------------------------------


def echo_backends(s: Scope, *names: str, pods: int = 1, nodes: Sequence[str] = ("node-1",
                                                                                  "node-2"),
                  ) -> None:
    """For each name: a Service and `pods` echo pods (<name>-<i>, spread over `nodes`);
    returns once every Service has all its pods as ready endpoints."""
    for name in names:
        s.create(SVC, service(name, {"app": name}))
        for i in range(1, pods + 1):
            pod = echo_pod(f"{name}-{i}", nodes[(i - 1) % len(nodes)], {"app": name}, grace=1)
            s.create(POD, pod)
    for name in names:
        wait_for(f"{pods} ready endpoints of {name}",
                 lambda n=name: len(ready_endpoints(s.lab, n, s.ns)) == pods, timeout=60)


# -- Ingress builders -------------------------------------------------------------------------


def backend(service: str, port: int | str = 80) -> dict[str, Any]:
    key = "number" if isinstance(port, int) else "name"
    return {"service": {"name": service, "port": {key: port}}}


def path(p: str, service: str, path_type: str = "Prefix",
         port: int | str = 80) -> dict[str, Any]:
    return {"path": p, "pathType": path_type, "backend": backend(service, port)}


def rule(host: str | None, *paths: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"http": {"paths": list(paths)}}
    if host is not None:
        out["host"] = host
    return out


def ingress(name: str, *rules: dict[str, Any], cls: str | None = "podnet",
            annotations: dict[str, str] | None = None, default: str | None = None,
            tls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if rules:
        spec["rules"] = list(rules)
    if cls is not None:
        spec["ingressClassName"] = cls
    if default is not None:
        spec["defaultBackend"] = backend(default)
    if tls is not None:
        spec["tls"] = tls
    meta: dict[str, Any] = {"name": name}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta,
            "spec": spec}


def ingress_class(name: str, controller: str, default: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if default:
        meta["annotations"] = {"ingressclass.kubernetes.io/is-default-class": "true"}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": meta,
            "spec": {"controller": controller}}


def status_ips(s: Scope, name: str) -> list[str]:
    obj = s.client.get(ING, s.ns, name)
    return [i.get("ip") for i in
            ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]


# -- TLS --------------------------------------------------------------------------------------


def self_signed(host: str) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for `host`, its own CA (so curl --cacert verifies it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def tls_secret(name: str, crt: bytes, key: bytes) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": base64.b64encode(crt).decode(),
                     "tls.key": base64.b64encode(key).decode()}}


def served_subject(lab: TestCluster, ip: str, sni: str) -> str:
    """The subject CN of the certificate the ingress serves for `sni` (openssl s_client from
    the external host)."""
    r = subprocess.run(["ip", "netns", "exec", lab_names.external_netns(lab.name), "openssl",
                        "s_client", "-connect", f"{ip}:443", "-servername", sni],
                       input="", capture_output=True, text=True, timeout=20)
    found = re.search(r"^subject=.*?CN ?= ?([^,\n]+)", r.stdout, re.M)
    assert found, r.stdout + r.stderr
    return found.group(1).strip()


# -- HTTP from the external host --------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One request: to `host` (resolved to the ingress's address, so it is also the SNI name
    over HTTPS), `path` sent raw, with `header_host` as the Host header when given."""

    host: str
    path: str = "/"
    tls: bool = False
    header_host: str | None = None
    cacert: Path | None = None  # verify the server's certificate with it (else -k)


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    verified: bool  # the TLS certificate verified (always True over HTTP)

    @property
    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.body)
        return out

    @property
    def pod(self) -> str:
        """Which echo pod answered; or the status for anything but a 200."""
        return str(self.json["pod"]) if self.status == 200 else str(self.status)

    @property
    def service(self) -> str:
        """Which Service answered (its pods are <service>-<i>); or the status."""
        return self.pod.rsplit("-", 1)[0] if self.status == 200 else str(self.status)


def curl_args(ip: str, req: Request) -> list[str]:
    port, scheme = (443, "https") if req.tls else (80, "http")
    args = ["-s", "-g", "--path-as-is", "--max-time", "10", "-w",
            MARK + "%{http_code} %{ssl_verify_result}\n", "--resolve", f"{req.host}:{port}:{ip}"]
    if req.header_host is not None:
        args += ["-H", f"Host: {req.header_host}"]
    if req.tls:
        args += ["--cacert", str(req.cacert)] if req.cacert else ["-k"]
    return [*args, f"{scheme}://{req.host}{req.path}"]


def curl(lab: TestCluster, ip: str, requests: Sequence[Request],
         extra: Sequence[str] = ()) -> list[Answer]:
    """The requests, in order, from the external host with one curl process."""
    argv = ["ip", "netns", "exec", lab_names.external_netns(lab.name), "curl"]
    for i, req in enumerate(requests):
        argv += [*(["--next"] if i else []), *curl_args(ip, req), *extra]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    parts = r.stdout.split(MARK)
    answers = []
    for i in range(len(requests)):
        status_line = parts[i + 1].split("\n", 1)[0] if i + 1 < len(parts) else "0 1"
        code, verify = status_line.split()
        body = parts[i].split("\n", 1)[1] if i else parts[i]
        answers.append(Answer(int(code), body.strip(), verify == "0"))
    return answers


def get(lab: TestCluster, ip: str, host: str, p: str = "/", **options: Any) -> Answer:
    return curl(lab, ip, [Request(host, p, **options)])[0]


def routed(lab: TestCluster, ip: str, requests: Sequence[Request],
           expected: Sequence[str], timeout: float = ROUTE_TIMEOUT) -> list[Answer]:
    """Wait until the requests are answered by `expected` (Answer.service of each), then
    return the answers; AssertionError with the last answers otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        answers = curl(lab, ip, requests)
        got = [a.service for a in answers]
        if got == list(expected):
            return answers
        if time.monotonic() > deadline:
            rows = [f"{r.header_host or r.host}{r.path}: got {g}, want {w}"
                    for r, g, w in zip(requests, got, expected, strict=True) if g != w]
            raise AssertionError("not routed as expected:\n" + "\n".join(rows))
        time.sleep(0.2)


def raw_http(lab: TestCluster, ip: str, request: bytes) -> bytes:
    """Bytes sent as they are (malformed requests curl will not send), from the external
    host; the first line of the answer."""
    code = ("import socket,sys\n"
            "s=socket.create_connection((sys.argv[1],80),timeout=5)\n"
            "s.sendall(sys.stdin.buffer.read())\n"
            "print(s.recv(200).split(b'\\r\\n')[0].decode())\n")
    r = subprocess.run(["ip", "netns", "exec", lab_names.external_netns(lab.name), "python3",
                        "-I", "-S", "-c", code, ip], input=request, capture_output=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


# -- the unit tests' path table -----------------------------------------------------------------


def unit_routes_module() -> ModuleType:
    """tests/unit/test_ingress_routes.py, for its DOCS_TABLE (the Kubernetes docs' path
    examples, row by row)."""
    file = Path(__file__).resolve().parents[1] / "unit" / "test_ingress_routes.py"
    spec = importlib.util.spec_from_file_location("ingress_routes_table", file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
