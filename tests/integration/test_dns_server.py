"""The cluster DNS server (python -m podnet.dns.main) against a real control plane, queried with
the real `dig` over UDP and TCP.

Address plan (two namespaces of the test's own, joined by one veth pair):

    podnet-<cluster>-dnstest   eth0 10.53.0.1/24   the DNS server (53 udp/tcp, 8080 /health,
                                                   8181 /ready, 9153 /metrics); it reaches the
                                                   API through the cluster's api.sock
    podnet-<cluster>-dnsup     eth0 10.53.0.2/24   the fake upstream (tools/fake_upstream.py),
                                    10.53.0.3/24   a silent upstream (never answers), and the
                                                   clients: dig, curl, the fuzzer

The server's upstreams are 10.53.0.3 then 10.53.0.2, so every first forward also shows the
retry on timeout. Nothing leaves the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from dnskit import Dig, parse_dig
from labkit import wait_for

from podnet.dns.forward import encode_query
from podnet.dns.wire import parse_response

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FAKE_UPSTREAM = Path(__file__).parent / "tools" / "fake_upstream.py"
SERVER, UPSTREAM, SILENT = "10.53.0.1", "10.53.0.2", "10.53.0.3"
ZONE = "cluster.local"


# --- the lab -------------------------------------------------------------------------------------

def sh(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check,
                          timeout=timeout)


@dataclass
class DnsLab:
    cluster: Any
    server_ns: str
    client_ns: str
    tmp: Path
    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    server: subprocess.Popen[str] | None = None
    server_log: Path | None = None

    @property
    def upstream_log(self) -> Path:
        return self.tmp / "upstream.log"

    def start_upstream(self) -> None:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.client_ns, sys.executable, str(FAKE_UPSTREAM),
             "--listen", UPSTREAM, "--silent", SILENT, "--log", str(self.upstream_log)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)})
        self.procs.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"

    def start_server(self, *extra: str, upstreams: tuple[str, ...] = (SILENT, UPSTREAM),
                     token_file: Path | None = None, wait_ready: bool = True) -> None:
        self.stop_server()
        state = self.cluster.state
        self.server_log = self.tmp / f"server-{len(self.procs)}.log"
        argv = ["ip", "netns", "exec", self.server_ns, sys.executable, "-m", "podnet.dns.main",
                "--api", f"unix://{state.api_socket}",
                "--token-file", str(token_file or state.token_path),
                "--listen", "0.0.0.0", "--port", "53", "--zone", ZONE,
                "--service-cidr", "10.96.0.0/12", "--cluster-cidr", "10.244.0.0/16",
                "--forward-timeout", "0.5", "--log-level", "debug"]
        for up in upstreams:
            argv += ["--upstream", up]
        with open(self.server_log, "w") as out:
            self.server = subprocess.Popen([*argv, *extra], stdout=out, stderr=subprocess.STDOUT,
                                           text=True, cwd=REPO)
        self.procs.append(self.server)
        wait_for("the DNS server to listen", lambda: self.http(8080, "/health")[0] == 200,
                 timeout=20)
        if wait_ready:
            wait_for("the DNS server to be ready", lambda: self.http(8181, "/ready")[0] == 200,
                     timeout=20)

    def stop_server(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(10)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        self.server = None

    def log(self) -> str:
        return self.server_log.read_text() if self.server_log else ""

    def http(self, port: int, path: str) -> tuple[int, str]:
        out = sh("ip", "netns", "exec", self.client_ns, "curl", "-s", "-m", "2", "-w",
                 "\n%{http_code}", f"http://{SERVER}:{port}{path}", check=False)
        body, _, code = out.stdout.rpartition("\n")
        return int(code or 0), body

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the series of metric `name` that have these labels."""
        _, text = self.http(9153, "/metrics")
        total = 0.0
        for line in text.splitlines():
            m = re.match(r"([a-z_]+)(?:\{(.*)\})? (\S+)$", line)
            if m is None or m.group(1) != name:
                continue
            have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            if all(have.get(k) == v for k, v in labels.items()):
                total += float(m.group(3))
        return total

    def dig(self, *args: str) -> Dig:
        out = sh("ip", "netns", "exec", self.client_ns, "dig", f"@{SERVER}", "+time=3",
                 "+tries=1", *args, check=False)
        return parse_dig(out.stdout)

    def raw_udp(self, packet: bytes) -> bytes:
        """Send one packet over UDP from the client namespace; the response's bytes."""
        code = ("import socket,sys; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); "
                "s.settimeout(3); s.sendto(bytes.fromhex(sys.argv[2]),(sys.argv[1],53)); "
                "print(s.recv(65535).hex())")
        out = sh("ip", "netns", "exec", self.client_ns, sys.executable, "-c", code, SERVER,
                 packet.hex())
        return bytes.fromhex(out.stdout.strip())

    def raw_tcp(self, packets: list[bytes]) -> list[bytes]:
        """Send queries down one TCP connection, all at once; the responses, in order."""
        code = ("import socket,sys; c=socket.create_connection((sys.argv[1],53),timeout=5); "
                "qs=[bytes.fromhex(h) for h in sys.argv[2:]]; "
                "c.sendall(b''.join(len(q).to_bytes(2,'big')+q for q in qs)); f=c.makefile('rb')\n"
                "for _ in qs:\n n=int.from_bytes(f.read(2),'big'); print(f.read(n).hex())")
        out = sh("ip", "netns", "exec", self.client_ns, sys.executable, "-c", code, SERVER,
                 *(p.hex() for p in packets))
        return [bytes.fromhex(line) for line in out.stdout.split()]

    def upstream_queries(self, name: str) -> int:
        if not self.upstream_log.exists():
            return 0
        return sum(1 for line in self.upstream_log.read_text().splitlines()
                   if line.split()[1].lower() == name.lower())

    def res(self, kind: str) -> Any:
        return self.cluster.res(kind)


def _cleanup(lab: DnsLab) -> None:
    lab.stop_server()
    for proc in lab.procs:
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(Exception):
            proc.wait(5)
    for ns in (lab.server_ns, lab.client_ns):
        sh("ip", "netns", "del", ns, check=False)


@pytest.fixture
def dnslab(cluster: Any, tmp_path: Path) -> Iterator[DnsLab]:
    prefix = f"podnet-{cluster.name}-"
    lab = DnsLab(cluster, prefix + "dnstest", prefix + "dnsup", tmp_path)
    try:
        for ns in (lab.server_ns, lab.client_ns):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", lab.server_ns, "link", "add", "eth0", "type", "veth", "peer", "name",
           "eth0", "netns", lab.client_ns)
        sh("ip", "-n", lab.server_ns, "addr", "add", f"{SERVER}/24", "dev", "eth0")
        sh("ip", "-n", lab.client_ns, "addr", "add", f"{UPSTREAM}/24", "dev", "eth0")
        sh("ip", "-n", lab.client_ns, "addr", "add", f"{SILENT}/24", "dev", "eth0")
        for ns in (lab.server_ns, lab.client_ns):
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
        lab.start_upstream()
        yield lab
    except BaseException:
        if lab.server_log is not None and lab.server_log.exists():
            print("--- DNS server log ---\n" + lab.log()[-20000:])
        raise
    finally:
        _cleanup(lab)
        left = sh("ip", "netns", "list").stdout
        assert lab.server_ns not in left and lab.client_ns not in left


# --- objects -------------------------------------------------------------------------------

def svc(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def endpoint_slice(name: str, service: str, endpoints: list[dict[str, Any]], *,
                   address_type: str = "IPv4",
                   ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service}},
            "addressType": address_type, "endpoints": endpoints,
            "ports": ports if ports is not None else [
                {"name": "http", "port": 8080, "protocol": "TCP"}]}


def ep(ip: str, *, ready: bool = True, hostname: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"addresses": [ip], "conditions": {"ready": ready}}
    if hostname:
        out["hostname"] = hostname
    return out


def headless(name: str, **spec: Any) -> dict[str, Any]:
    """A selector-less headless Service (its EndpointSlices are written by the test)."""
    return svc(name, clusterIP="None",
               ports=[{"name": "http", "port": 8080, "protocol": "TCP"}], **spec)


def fqdn(name: str) -> str:
    return f"{name}.default.svc.{ZONE}."


# --- the tests -----------------------------------------------------------------------------

def test_every_record_kind_over_udp_and_tcp(dnslab: DnsLab) -> None:
    lab = dnslab
    c = lab.cluster.client
    web = c.create(lab.res("Service"), "default", svc(
        "web", ports=[{"name": "http", "port": 80, "protocol": "TCP"},
                      {"name": "dns", "port": 53, "protocol": "UDP"}]))
    web_ip = web["spec"]["clusterIP"]
    plain = c.create(lab.res("Service"), "default", svc("plain", ports=[{"port": 81}]))
    c.create(lab.res("Service"), "default", headless("db"))
    c.create(lab.res("EndpointSlice"), "default", endpoint_slice("db-1", "db", [
        ep("10.244.1.5", hostname="db-0"), ep("10.244.1.6"),
        ep("10.244.1.7", ready=False)]))
    c.create(lab.res("EndpointSlice"), "default", endpoint_slice(
        "db-v6", "db", [ep("fd00:10:244::5", hostname="db-6")], address_type="IPv6"))
    c.create(lab.res("Service"), "default", headless("pub", publishNotReadyAddresses=True))
    c.create(lab.res("EndpointSlice"), "default", endpoint_slice(
        "pub-1", "pub", [ep("10.244.2.1", ready=False)]))
    c.create(lab.res("Service"), "default", svc("ext", type="ExternalName",
                                                externalName="www.example.com"))
    c.create(lab.res("Service"), "default", svc("inner", type="ExternalName",
                                                externalName=f"web.default.svc.{ZONE}"))
    many = [ep(f"10.244.3.{i}") for i in range(1, 101)]
    c.create(lab.res("Service"), "default", headless("many"))
    c.create(lab.res("EndpointSlice"), "default", endpoint_slice("many-1", "many", many))
    lab.start_server()
    wait_for("the Services in DNS", lambda: lab.dig(fqdn("many")).status == "NOERROR",
             timeout=10)

    for proto in ("+notcp", "+tcp"):
        # A for a ClusterIP Service; the question's case is echoed in the answer.
        d = lab.dig(proto, "WeB.Default.SVC.cluster.LOCAL")
        assert (d.status, d.answer) == ("NOERROR", [f"WeB.Default.SVC.cluster.LOCAL. A {web_ip}"])
        assert {"qr", "aa", "rd", "ra"} <= d.flags and d.ttls == [30]
        # SRV for named ports only, with the target's address in additional.
        d = lab.dig(proto, f"_http._tcp.{fqdn('web')}", "SRV")
        assert d.answer == [f"_http._tcp.{fqdn('web')} SRV 0 100 80 {fqdn('web')}"]
        assert d.additional == [f"{fqdn('web')} A {web_ip}"]
        assert lab.dig(proto, f"_dns._udp.{fqdn('web')}", "SRV").rdata("SRV") == [
            f"0 100 53 {fqdn('web')}"]
        assert lab.dig(proto, f"_http._tcp.{fqdn('plain')}", "SRV").status == "NXDOMAIN"
        assert lab.dig(proto, fqdn("plain")).rdata("A") == [plain["spec"]["clusterIP"]]
        # PTR for cluster IPs and for headless endpoints.
        assert lab.dig(proto, "-x", web_ip).rdata("PTR") == [fqdn("web")]
        assert lab.dig(proto, "-x", "10.244.1.5").rdata("PTR") == [f"db-0.{fqdn('db')}"]
        assert lab.dig(proto, "-x", "10.244.1.99").status == "NXDOMAIN"
        # Headless: ready endpoints only, by hostname or by dashed address; AAAA too.
        assert lab.dig(proto, fqdn("db")).rdata("A") == ["10.244.1.5", "10.244.1.6"]
        assert lab.dig(proto, fqdn("db"), "AAAA").rdata("AAAA") == ["fd00:10:244::5"]
        assert lab.dig(proto, f"db-0.{fqdn('db')}").rdata("A") == ["10.244.1.5"]
        assert lab.dig(proto, f"10-244-1-6.{fqdn('db')}").rdata("A") == ["10.244.1.6"]
        assert lab.dig(proto, f"10-244-1-7.{fqdn('db')}").status == "NXDOMAIN"
        assert lab.dig(proto, f"db-6.{fqdn('db')}", "AAAA").rdata("AAAA") == ["fd00:10:244::5"]
        assert lab.dig(proto, f"_http._tcp.{fqdn('db')}", "SRV").rdata("SRV") == sorted(
            f"0 33 8080 {h}.{fqdn('db')}" for h in ("db-0", "10-244-1-6", "db-6"))
        assert lab.dig(proto, fqdn("pub")).rdata("A") == ["10.244.2.1"]
        # ExternalName: the CNAME, and the target resolved upstream in the same answer.
        d = lab.dig(proto, fqdn("ext"))
        assert d.status == "NOERROR" and d.answer == [
            f"{fqdn('ext')} CNAME www.example.com.", "www.example.com. A 192.0.2.10"]
        d = lab.dig(proto, fqdn("inner"))
        assert d.answer == [f"{fqdn('inner')} CNAME {fqdn('web')}", f"{fqdn('web')} A {web_ip}"]
        # Pod records (insecure mode): any address in an existing namespace.
        assert lab.dig(proto, f"10-244-7-9.default.pod.{ZONE}").rdata("A") == ["10.244.7.9"]
        assert lab.dig(proto, f"10-244-7-9.nosuchns.pod.{ZONE}").status == "NXDOMAIN"
        # SOA, NS, dns-version.
        d = lab.dig(proto, ZONE, "SOA")
        assert d.answer and d.answer[0].startswith(
            f"{ZONE}. SOA ns.dns.{ZONE}. hostmaster.{ZONE}. ")
        assert lab.dig(proto, ZONE, "NS").rdata("NS") == [f"ns.dns.{ZONE}."]
        assert lab.dig(proto, f"dns-version.{ZONE}", "TXT").rdata("TXT") == ['"1.1.0"']
        # NXDOMAIN versus NODATA, each with the SOA.
        d = lab.dig(proto, fqdn("nothere"))
        assert (d.status, d.answer) == ("NXDOMAIN", [])
        assert d.authority[0].startswith(f"{ZONE}. SOA ns.dns.{ZONE}.")
        for name, rtype in ((fqdn("web"), "TXT"), (fqdn("web"), "AAAA"),
                            (f"default.svc.{ZONE}.", "A"), (fqdn("web"), "TYPE999")):
            d = lab.dig(proto, name, rtype)
            assert (d.status, d.answer) == ("NOERROR", []), (name, rtype)
            assert d.authority[0].startswith(f"{ZONE}. SOA"), (name, rtype)
        # Forwarded names: the upstream's answer, not authoritative.
        d = lab.dig(proto, "www.example.com")
        assert (d.status, d.answer) == ("NOERROR", ["www.example.com. A 192.0.2.10"])
        assert "aa" not in d.flags
        d = lab.dig(proto, "nothere.example.com")
        assert d.status == "NXDOMAIN" and d.authority[0].startswith("example.com. SOA")

    # Zone transfers are refused.
    axfr = sh("ip", "netns", "exec", lab.client_ns, "dig", f"@{SERVER}", ZONE, "AXFR",
              check=False).stdout
    assert "Transfer failed" in axfr and "SOA" not in axfr.split("Transfer failed")[0].split(
        "global options")[-1]
    ixfr = lab.raw_udp(struct.pack(">HHHHHH", 0x1234, 0, 1, 0, 0, 0)
                       + b"\x07cluster\x05local\x00" + struct.pack(">HH", 251, 1))
    assert ixfr[:4] == bytes([0x12, 0x34, 0x80, 0x85])  # QR, RA, REFUSED

    # Several queries on one TCP connection, sent at once (cached and not, forwarded).
    names = [fqdn("web"), fqdn("db"), "www.example.com", fqdn("web")]
    out = lab.raw_tcp([encode_query(i, n, 1) for i, n in enumerate(names)])
    got = [parse_response(r) for r in out]
    assert [(r.id, r.rcode, sorted(str(a.rdata) for a in r.answer)) for r in got] == [
        (0, 0, [web_ip]), (1, 0, ["10.244.1.5", "10.244.1.6"]), (2, 0, ["192.0.2.10"]),
        (3, 0, [web_ip])]

    # Truncation: 100 endpoints do not fit in 1232 octets over UDP; dig retries over TCP.
    d = lab.dig("+notcp", "+ignore", fqdn("many"))
    assert "tc" in d.flags and len(d.answer) < 100
    assert len(lab.dig("+notcp", fqdn("many")).answer) == 100  # TC, then dig's TCP retry
    assert len(lab.dig("+tcp", fqdn("many")).answer) == 100
    d = lab.dig("+notcp", "+ignore", "+noedns", fqdn("many"))
    assert "tc" in d.flags and len(d.answer) < 32

    # An upstream answer too big for UDP: the server asks the upstream again over TCP.
    assert len(lab.dig("+tcp", "big.example.com").answer) == 120
    assert any(line.startswith("tcp big.example.com")
               for line in lab.upstream_log.read_text().splitlines())

    # Forwarded answers are cached by TTL: positive and negative.
    before = lab.upstream_queries("www.example.com")
    for _ in range(3):
        d = lab.dig("www.example.com")
        assert d.answer == ["www.example.com. A 192.0.2.10"] and d.ttls[0] <= 300
    assert lab.upstream_queries("www.example.com") == before
    before = lab.upstream_queries("nothere.example.com")
    assert lab.dig("nothere.example.com").status == "NXDOMAIN"
    assert lab.upstream_queries("nothere.example.com") == before
    # ... and for no longer than the TTL (2 s here).
    assert lab.dig("short.example.com").rdata("A") == ["192.0.2.30"]
    first = lab.upstream_queries("short.example.com")
    time.sleep(2.5)
    assert lab.dig("short.example.com").rdata("A") == ["192.0.2.30"]
    assert lab.upstream_queries("short.example.com") == first + 1

    # The silent upstream was tried (timeouts counted), the answers came from the other one.
    assert lab.metric("podnet_dns_forward_failures_total", upstream="10.53.0.3:53",
                      reason="timeout") >= 1

    # Health, ready and metrics.
    assert lab.http(8080, "/health") == (200, "OK")
    assert lab.http(8181, "/ready") == (200, "OK")
    assert lab.metric("podnet_dns_requests_total") > 60
    assert lab.metric("podnet_dns_responses_total", proto="tcp", rcode="NXDOMAIN") >= 1
    assert lab.metric("podnet_dns_cache_hits_total", cache="response") >= 1
    assert lab.metric("podnet_dns_cache_hits_total", cache="forward") >= 1
    assert lab.metric("podnet_dns_request_duration_seconds_count") > 10
    assert lab.metric("podnet_dns_ready") == 1
    assert lab.metric("podnet_dns_dropped_total", reason="error") == 0
    assert "Traceback" not in lab.log()


def test_answers_follow_the_api(dnslab: DnsLab) -> None:
    lab = dnslab
    c = lab.cluster.client
    SLICE, SVC = lab.res("EndpointSlice"), lab.res("Service")
    c.create(SVC, "default", headless("hl"))
    c.create(SLICE, "default", endpoint_slice("hl-1", "hl", [ep("10.244.5.1")]))
    c.create(SVC, "default", svc("ext", type="ExternalName", externalName="www.example.com"))
    web = c.create(SVC, "default", svc("web", ports=[{"port": 80}]))
    lab.start_server()

    def answers(name: str, *args: str) -> tuple[str, list[str]]:
        d = lab.dig(*args, name)
        return d.status, d.answer

    def becomes(name: str, want: tuple[str, list[str]], *args: str) -> float:
        start = time.monotonic()
        wait_for(f"{name} -> {want}", lambda: answers(name, *args) == want, timeout=5,
                 every=0.02)
        return time.monotonic() - start

    hl = fqdn("hl")
    assert answers(hl) == ("NOERROR", [f"{hl} A 10.244.5.1"])
    # A headless Service gaining ready endpoints ...
    c.replace(SLICE, "default", "hl-1", {**c.get(SLICE, "default", "hl-1"), "endpoints": [
        ep("10.244.5.1"), ep("10.244.5.2"), ep("10.244.5.3", ready=False)]})
    becomes(hl, ("NOERROR", [f"{hl} A 10.244.5.1", f"{hl} A 10.244.5.2"]), "+tcp")
    c.create(SLICE, "default", endpoint_slice("hl-2", "hl", [ep("10.244.5.4")]))
    becomes(hl, ("NOERROR", [f"{hl} A 10.244.5.1", f"{hl} A 10.244.5.2",
                             f"{hl} A 10.244.5.4"]))
    # ... and losing them: not ready, then no slice at all -> NXDOMAIN.
    c.replace(SLICE, "default", "hl-1", {**c.get(SLICE, "default", "hl-1"), "endpoints": [
        ep("10.244.5.1", ready=False)]})
    becomes(hl, ("NOERROR", [f"{hl} A 10.244.5.4"]))
    c.delete(SLICE, "default", "hl-2")
    becomes(hl, ("NXDOMAIN", []))
    becomes(f"10-244-5-4.{hl}", ("NXDOMAIN", []), "+tcp")
    c.replace(SLICE, "default", "hl-1", {**c.get(SLICE, "default", "hl-1"), "endpoints": [
        ep("10.244.5.1")]})
    becomes(hl, ("NOERROR", [f"{hl} A 10.244.5.1"]))

    # An ExternalName Service changing its target.
    ext = fqdn("ext")
    assert answers(ext) == ("NOERROR", [f"{ext} CNAME www.example.com.",
                                        "www.example.com. A 192.0.2.10"])
    c.patch(SVC, "default", "ext", {"spec": {"externalName": "www.example.org"}})
    becomes(ext, ("NOERROR", [f"{ext} CNAME www.example.org.", "www.example.org. A 192.0.2.20"]))

    # A deleted Service becomes NXDOMAIN, its reverse record too; the SOA serial moves on.
    serial = int(lab.dig(ZONE, "SOA").answer[0].split()[4])
    assert answers(fqdn("web")) == ("NOERROR", [f"{fqdn('web')} A {web['spec']['clusterIP']}"])
    c.delete(SVC, "default", "web")
    becomes(fqdn("web"), ("NXDOMAIN", []))
    becomes(fqdn("web"), ("NXDOMAIN", []), "+tcp")
    assert lab.dig("-x", web["spec"]["clusterIP"]).status == "NXDOMAIN"
    assert int(lab.dig(ZONE, "SOA").answer[0].split()[4]) > serial
    # A new namespace's names exist at once (pod records, the empty non-terminal).
    c.create(lab.res("Namespace"), None, {"apiVersion": "v1", "kind": "Namespace",
                                          "metadata": {"name": "fresh"}})
    becomes(f"10-244-0-9.fresh.pod.{ZONE}", ("NOERROR", [f"10-244-0-9.fresh.pod.{ZONE}. A "
                                                          "10.244.0.9"]))
    assert lab.metric("podnet_dns_index_updates_total") >= 8
    assert 0 < lab.metric("podnet_dns_programming_latency_seconds") < 0.1
    assert "Traceback" not in lab.log()


FUZZ = r'''
import json, os, random, select, socket, struct, sys
server, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)

def name(labels):
    return b"".join(bytes([len(l)]) + l for l in labels) + b"\0"

def query(qname, qtype, flags=0x0100, opt=True, qd=1):
    q = struct.pack(">HHHHHH", rng.getrandbits(16), flags, qd, 0, 0, 1 if opt else 0)
    q += name(qname) + struct.pack(">HH", qtype, 1)
    if opt:
        q += b"\0" + struct.pack(">HHIH", 41, 1232, 0, 0)
    return q

seeds = [query([b"web", b"default", b"svc", b"cluster", b"local"], 1),
         query([b"www", b"example", b"com"], 1),
         query([b"_http", b"_tcp", b"db", b"default", b"svc", b"cluster", b"local"], 33),
         query([b"5", b"1", b"244", b"10", b"in-addr", b"arpa"], 12, opt=False),
         query([b"cluster", b"local"], 252),
         query([b"a" * 63] * 4, 1),
         query([b"x"], 1, flags=0x2800)]

def mutate(pkt):
    b = bytearray(pkt)
    r = rng.random()
    if r < 0.3:
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.getrandbits(8)
    elif r < 0.45:
        b = b[:rng.randrange(len(b))]
    elif r < 0.6:
        b += bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 40)))
    elif r < 0.7:
        i = rng.randrange(12, len(b)) if len(b) > 12 else 0
        b[i:i] = bytes([0xC0 | rng.getrandbits(6), rng.getrandbits(8)])
    elif r < 0.8:
        b = bytearray(rng.getrandbits(8) for _ in range(rng.randint(0, 600)))
    elif r < 0.9:
        b[2:4] = struct.pack(">H", rng.getrandbits(16))  # flags: QR, opcodes, bits
    else:
        b[4:12] = bytes(rng.getrandbits(8) for _ in range(8))  # counts
    return bytes(b)

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
s.connect((server, 53))
rcodes, answered, bad, unsent, markers = {}, 0, 0, 0, 0
MARKER = 0xFFFF  # the ID of the valid query that closes each batch
marker = bytearray(seeds[0]); marker[0:2] = b"\xff\xff"; marker[2:4] = b"\x00\x00"

def collect(data):
    global answered, bad
    answered += 1
    if len(data) < 12 or not data[2] & 0x80:
        bad += 1
    else:
        rc = data[3] & 0xF
        rcodes[rc] = rcodes.get(rc, 0) + 1

# Flow control: after each batch, a valid query whose answer comes after the answers to the
# batch (one socket, in order), so nothing is lost to a full receive buffer.
sent = 0
while sent < count:
    for _ in range(min(100, count - sent)):
        pkt = mutate(rng.choice(seeds))
        if len(pkt) >= 2 and pkt[0] == 0xFF and pkt[1] == 0xFF:
            pkt = b"\x00\x00" + pkt[2:]
        try:
            s.send(pkt)
        except OSError:
            unsent += 1
        sent += 1
    s.send(bytes(marker))
    while select.select([s], [], [], 2.0)[0]:
        data = s.recv(65535)
        if data[:2] == b"\xff\xff" and len(data) > 3 and data[2] & 0x80 and not data[3] & 0xF:
            markers += 1
            break
        collect(data)
    else:
        break  # the marker did not come back: the server stalled
print(json.dumps({"sent": sent, "answered": answered, "bad": bad, "rcodes": rcodes,
                  "unsent": unsent, "markers": markers}))
'''

TCP_FUZZ = r'''
import random, socket, struct, sys
server, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
for i in range(count):
    c = socket.create_connection((server, 53), timeout=2)
    try:
        for _ in range(rng.randint(1, 5)):
            body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
            size = len(body) if rng.random() < 0.7 else rng.getrandbits(16)
            c.sendall(struct.pack(">H", size) + body)
        if rng.random() < 0.5:
            c.sendall(b"\x00")  # half a length prefix, then gone
    except OSError:
        pass
    finally:
        c.close()
print("done")
'''


def test_fuzz_over_the_network(dnslab: DnsLab) -> None:
    lab = dnslab
    lab.cluster.client.create(lab.res("Service"), "default", svc("web", ports=[{"port": 80}]))
    lab.start_server()
    out = sh("ip", "netns", "exec", lab.client_ns, sys.executable, "-c", FUZZ, SERVER, "100000",
             "1", timeout=600)
    got = json.loads(out.stdout)
    # Every packet reached the server and was answered or dropped on purpose (the kernel
    # dropped none: the fuzzer keeps at most 64 in flight).
    def handled() -> float:
        return (lab.metric("podnet_dns_responses_total", proto="udp")
                + lab.metric("podnet_dns_dropped_total") - got["markers"])

    # (forwarded ones may still be on their way back from the upstream)
    wait_for("every packet answered or dropped", lambda: handled() == 100000, timeout=10)
    assert got["sent"] == 100000 and got["bad"] == 0 and got["unsent"] == 0, got
    assert got["markers"] == 1000, got  # it never stalled
    assert got["answered"] > 10000, got  # many are answered (FORMERR, NOTIMP, ...), others dropped
    assert set(got["rcodes"]) >= {"0", "1", "4"}, got  # NOERROR, FORMERR, NOTIMP among them
    sh("ip", "netns", "exec", lab.client_ns, sys.executable, "-c", TCP_FUZZ, SERVER, "300", "2",
       timeout=300)
    assert lab.server is not None and lab.server.poll() is None, "the server died"
    # Still answering, over both transports, and nothing raised inside.
    assert lab.dig(fqdn("web")).status == "NOERROR"
    assert lab.dig("+tcp", fqdn("web")).status == "NOERROR"
    assert lab.dig("www.example.com").answer == ["www.example.com. A 192.0.2.10"]
    # Oversized names: a 255+ octet name is FORMERR, never a crash.
    long_name = ".".join(["a" * 63] * 4) + ".example.com"
    assert lab.dig(long_name).status in ("FORMERR", "NONE")
    assert lab.metric("podnet_dns_dropped_total", reason="error") == 0
    assert lab.metric("podnet_dns_responses_total", proto="udp", rcode="FORMERR") > 1000
    assert "Traceback" not in lab.log()


def test_not_ready_then_a_forwarding_loop_is_detected(dnslab: DnsLab, tmp_path: Path) -> None:
    lab = dnslab
    # Before the cluster is listed (here: never, the token is wrong) the zone gets SERVFAIL
    # and /ready says no; names outside it are still forwarded.
    bad = tmp_path / "bad-token"
    bad.write_text("wrong\n")
    lab.start_server(token_file=bad, wait_ready=False)
    assert lab.http(8181, "/ready")[0] == 503
    assert lab.http(8080, "/health") == (200, "OK")
    assert lab.dig(f"kubernetes.default.svc.{ZONE}").status == "SERVFAIL"
    assert lab.dig("www.example.com").answer == ["www.example.com. A 192.0.2.10"]

    # Upstream = the server itself: the probe comes back, forwarding stops, the log names it.
    lab.start_server(upstreams=(f"{SERVER}:53",))
    wait_for("the loop to be detected",
             lambda: "forwarding loop detected" in lab.log(), timeout=15)
    assert f"upstream {SERVER}:53" in lab.log()
    assert lab.metric("podnet_dns_forward_loop_detected") == 1
    assert lab.metric("podnet_dns_healthy") == 0
    start = time.monotonic()
    assert lab.dig("www.example.com").status == "SERVFAIL"
    assert time.monotonic() - start < 1.0  # at once: nothing is forwarded any more
    assert lab.dig(f"kubernetes.default.svc.{ZONE}").status == "NOERROR"
    assert lab.server is not None and lab.server.poll() is None
