"""Pods resolve through the cluster DNS that `podnet up` runs.

Address plan (make_lab's defaults):

    LAN 172.18.0.0/24          node-i at 172.18.0.(10+i); the external host at 172.18.0.2
    service CIDR 10.96.0.0/12  the cluster DNS (kube-system/kube-dns) at 10.96.0.10
    cluster CIDR 10.244.0.0/16 one /24 per node
    fake upstream              172.18.0.2:5300 (UDP and TCP), in the external host's namespace

Nothing leaves the machine: every lab is given the fake upstream (`dns_upstreams`), which
answers every A question with 192.0.2.77, and records the names it was asked, so the tests also
show that no cluster name is ever forwarded. The external host gets routes to the nodes' pod
CIDRs (the lab has no gateway), so the DNS pods' forwarded queries come back.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dnskit import Dig, parse_dig
from labkit import echo_pod, service, wait_for

from podnet import runtime
from podnet.api.resources import lookup
from podnet.client.http import Client
from podnet.cluster import addons, lifecycle
from podnet.cluster.state import ClusterState, ephemeral_port
from podnet.lab import names, topology

pytestmark = pytest.mark.integration

EXTERNAL = topology.external_address(topology.DEFAULT_LAN_CIDR)
UPSTREAM_PORT = 5300
UPSTREAM = f"{EXTERNAL}:{UPSTREAM_PORT}"
FAKE_ANSWER = "192.0.2.77"
DNS_IP = "10.96.0.10"

# A DNS server for names outside the cluster: A -> FAKE_ANSWER, anything else NODATA; each
# question is printed as a JSON line (name, type, transport).
FAKE_UPSTREAM = r'''
import asyncio, json, struct, sys
from podnet.dns import wire
from podnet.dns.model import A, Answer, Record

ANSWER = sys.argv[3]

def respond(data, transport, max_size=None):
    try:
        q = wire.parse_query(data)
    except wire.WireError:
        return None
    print(json.dumps({"name": q.question.name, "type": q.question.qtype,
                      "via": transport}), flush=True)
    records = ((Record(q.question.name, A, 60, ANSWER),) if q.question.qtype == A else ())
    return wire.encode_response(q, Answer(answer=records, authoritative=False),
                                max_size=max_size)

class Udp(asyncio.DatagramProtocol):
    def connection_made(self, t):
        self.t = t
    def datagram_received(self, data, addr):
        out = respond(data, "udp")
        if out:
            self.t.sendto(out, addr)

async def tcp(reader, writer):
    try:
        while True:
            size = struct.unpack(">H", await reader.readexactly(2))[0]
            out = respond(await reader.readexactly(size), "tcp", 65535)
            if out:
                writer.write(struct.pack(">H", len(out)) + out)
                await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()

async def main():
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(Udp, local_addr=(sys.argv[1], int(sys.argv[2])))
    server = await asyncio.start_server(tcp, sys.argv[1], int(sys.argv[2]))
    print(json.dumps({"listening": True}), flush=True)
    await server.serve_forever()

asyncio.run(main())
'''

# glibc's getaddrinfo, A and AAAA in parallel on one socket (its default), timed one by one.
LOOKUPS = r'''
import json, socket, sys, time
from concurrent.futures import ThreadPoolExecutor

name, count, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def one(_):
    t = time.monotonic()
    try:
        addrs = sorted({a[4][0] for a in socket.getaddrinfo(name, 80, proto=socket.IPPROTO_TCP)})
    except socket.gaierror as e:
        addrs = ["error: " + str(e)]
    return time.monotonic() - t, addrs

with ThreadPoolExecutor(threads) as pool:
    results = list(pool.map(one, range(count)))
times = sorted(t for t, _ in results)
answers = {}
for _, addrs in results:
    answers[" ".join(addrs)] = answers.get(" ".join(addrs), 0) + 1
print(json.dumps({"count": len(times), "max": times[-1], "p50": times[len(times) // 2],
                  "p99": times[int(len(times) * 0.99) - 1],
                  "over_1s": sum(t >= 1 for t in times), "answers": answers}))
'''


class FakeUpstream:
    """The fake upstream resolver, running in the external host's namespace."""

    def __init__(self, cluster: str, log: Path) -> None:
        self.log = log
        self.out = log.open("w")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", names.external_netns(cluster), sys.executable, "-c",
             FAKE_UPSTREAM, EXTERNAL, str(UPSTREAM_PORT), FAKE_ANSWER],
            stdout=self.out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for("the fake upstream", lambda: "listening" in self.log.read_text(), timeout=20)

    def questions(self) -> list[dict[str, Any]]:
        return [q for q in map(json.loads, self.log.read_text().splitlines()) if "name" in q]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.out.close()


@pytest.fixture
def dns_lab(make_lab: Any, tmp_path: Path) -> Iterator[tuple[Any, FakeUpstream]]:
    """A 2-node lab whose cluster DNS forwards to the fake upstream, with the DNS Ready."""
    lab = make_lab(nodes=2, dns=True, dns_upstreams=[UPSTREAM])  # returns with the DNS Ready
    upstream = FakeUpstream(lab.name, tmp_path / "upstream.log")
    try:
        route_external_to_pods(lab)
        yield lab, upstream
    finally:
        upstream.stop()


def route_external_to_pods(lab: Any) -> None:
    """The external host's routes back to the pods (their forwarded queries come from pod
    IPs): each node's podCIDR via that node."""
    nodes = lab.client.list(lab.res("Node"))["items"]
    for node in nodes:
        cidr = node["spec"]["podCIDR"]
        ip = next(a["address"] for a in node["status"]["addresses"]
                  if a["type"] == "InternalIP")
        subprocess.run(["ip", "-n", names.external_netns(lab.name), "route", "replace", cidr,
                        "via", ip], check=True)


# -- helpers ----------------------------------------------------------------------------------


def pod(lab: Any, name: str, namespace: str = "default") -> dict[str, Any]:
    return lab.client.get(lab.res("Pod"), namespace, name)


def running(lab: Any, name: str, namespace: str = "default") -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        p = pod(lab, name, namespace)
        return p if addons.pod_ready(p) else None
    found: dict[str, Any] = wait_for(f"pod {name} Ready", ready, timeout=60)
    return found


def in_pod(lab: Any, name: str, *argv: str, namespace: str = "default",
           timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run argv in the pod's namespaces (what `podnet exec` does, without the CLI)."""
    p = pod(lab, name, namespace)
    prefix = runtime.exec_argv(lab.state.node_dir(p["spec"]["nodeName"]), p["metadata"]["uid"])
    return subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=timeout)


def out(lab: Any, name: str, *argv: str, namespace: str = "default") -> str:
    r = in_pod(lab, name, *argv, namespace=namespace)
    assert r.returncode == 0, (argv, r.stdout, r.stderr)
    return r.stdout


def client_pod(name: str, node: str, **spec: Any) -> dict[str, Any]:
    p = echo_pod(name, node, {"app": "client"})
    p["spec"].update(spec)
    return p


# -- what `podnet up` creates -----------------------------------------------------------------


def test_up_runs_the_cluster_dns_and_pods_resolve_through_it(dns_lab: Any) -> None:
    lab, upstream = dns_lab
    svc = lab.client.get(lab.res("Service"), "kube-system", "kube-dns")
    assert svc["spec"]["clusterIP"] == DNS_IP
    assert [(p["name"], p["port"], p["protocol"]) for p in svc["spec"]["ports"]] == [
        ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")]
    dns_pods = lifecycle.dns_pods(lab.client)
    assert {n: (p["spec"]["nodeName"], p["spec"]["dnsPolicy"]) for n, p in dns_pods.items()} \
        == {"podnet-dns-1": ("node-1", "Default"), "podnet-dns-2": ("node-2", "Default")}
    cmd = dns_pods["podnet-dns-1"]["spec"]["containers"][0]["command"]
    assert cmd[cmd.index("--upstream") + 1] == UPSTREAM
    assert cmd[cmd.index("--api") + 1] == f"unix://{lab.state.api_socket}"

    # The DNS pods' own resolv.conf is the node's: the server never asks itself.
    host_resolv = Path("/etc/resolv.conf").read_text()
    assert out(lab, "podnet-dns-1", "cat", "/etc/resolv.conf", namespace="kube-system") \
        == host_resolv

    # Every DNS pod is an endpoint of kube-dns, ready.
    def endpoints() -> set[str]:
        slices = lab.client.list(lab.res("EndpointSlice"), "kube-system",
                                 label_selector="kubernetes.io/service-name=kube-dns")["items"]
        return {a for s in slices for e in s.get("endpoints") or []
                if (e.get("conditions") or {}).get("ready") for a in e["addresses"]}
    pod_ips = {p["status"]["podIP"] for p in lifecycle.dns_pods(lab.client).values()}
    wait_for("kube-dns endpoints", lambda: endpoints() == pod_ips)

    # `podnet up` again: nothing to do, and quick.
    t = time.monotonic()
    r = lab.podnet("up")
    took = time.monotonic() - t
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f'cluster "{lab.name}" is already running at ')
    assert took < 5.0, f"podnet up on a running cluster took {took:.2f}s"

    # A Service and a client pod on each node.
    lab.client.create(lab.res("Service"), "default", service("web", {"app": "web"}))
    lab.client.create(lab.res("Pod"), "default", echo_pod("web-1", "node-1", {"app": "web"}))
    for i in (1, 2):
        lab.client.create(lab.res("Pod"), "default", client_pod(f"client-{i}", f"node-{i}"))
    web_ip = lab.client.get(lab.res("Service"), "default", "web")["spec"]["clusterIP"]
    running(lab, "web-1")
    for i in (1, 2):
        running(lab, f"client-{i}")

    assert out(lab, "client-1", "cat", "/etc/resolv.conf") == (
        "search default.svc.cluster.local svc.cluster.local cluster.local\n"
        f"nameserver {DNS_IP}\n"
        "options ndots:5\n")
    for client in ("client-1", "client-2"):
        assert out(lab, client, "getent", "hosts", "web").split() == [
            web_ip, "web.default.svc.cluster.local"]
        answer = json.loads(out(lab, client, "curl", "-sS", "--max-time", "10",
                                "http://web:80/"))
        assert (answer["pod"], answer["host"]) == ("web-1", "web")
        for transport in ("+notcp", "+tcp"):
            assert out(lab, client, "dig", transport, "+short", "+time=3", "+tries=1",
                       "web.default.svc.cluster.local").split() == [web_ip]
        full = out(lab, client, "dig", "+tcp", "+time=3", "+tries=1",
                   "web.default.svc.cluster.local")
        assert "status: NOERROR" in full and f"SERVER: {DNS_IP}#53(" in full
        assert "(TCP)" in full

    # Names outside the zone go to the upstream, and only those.
    for transport in ("+notcp", "+tcp"):
        assert out(lab, "client-1", "dig", transport, "+short", "+time=3", "+tries=1",
                   "www.example.test").split() == [FAKE_ANSWER]
    assert out(lab, "client-2", "getent", "hosts", "other.example.test").split() == [
        FAKE_ANSWER, "other.example.test"]
    nx = out(lab, "client-1", "dig", "+time=3", "+tries=1", "nothing.default.svc.cluster.local")
    assert "status: NXDOMAIN" in nx
    asked = {q["name"].lower() for q in upstream.questions()}
    assert {"www.example.test", "other.example.test"} <= asked
    assert not [n for n in asked if n.endswith("cluster.local")], asked


def test_dns_policies_and_hosts_file(dns_lab: Any) -> None:
    lab, _ = dns_lab
    lab.client.create(lab.res("Service"), "default", service("web", {"app": "web"}))
    lab.client.create(lab.res("Pod"), "default", echo_pod("web-1", "node-2", {"app": "web"}))
    web_ip = lab.client.get(lab.res("Service"), "default", "web")["spec"]["clusterIP"]
    host_resolv = Path("/etc/resolv.conf").read_text()
    pods = {
        "default": client_pod("default", "node-1", dnsPolicy="Default"),
        "none": client_pod("none", "node-1", dnsPolicy="None", dnsConfig={
            "nameservers": [DNS_IP], "searches": ["svc.cluster.local"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}),
        "first-extra": client_pod("first-extra", "node-2", dnsConfig={
            "searches": ["example.test"], "options": [{"name": "ndots", "value": "1"}]}),
        "hostnet": client_pod("hostnet", "node-1", hostNetwork=True,
                              dnsPolicy="ClusterFirstWithHostNet"),
        "hostnet-first": client_pod("hostnet-first", "node-2", hostNetwork=True),
        "named": client_pod("named", "node-2", hostname="h1", subdomain="sub"),
    }
    for p in pods.values():
        for c in p["spec"]["containers"]:  # host-network pods share the node's ports
            c["ports"] = [{"containerPort": 18000 + len(p["metadata"]["name"])}]
    for p in pods.values():
        lab.client.create(lab.res("Pod"), "default", p)
    for name in [*pods, "web-1"]:
        running(lab, name)

    resolv = {name: out(lab, name, "cat", "/etc/resolv.conf") for name in pods}
    assert resolv["default"] == host_resolv
    assert resolv["none"] == (f"search svc.cluster.local\nnameserver {DNS_IP}\n"
                              "options ndots:2 edns0\n")
    assert resolv["first-extra"] == (
        "search default.svc.cluster.local svc.cluster.local cluster.local example.test\n"
        f"nameserver {DNS_IP}\noptions ndots:1\n")
    assert resolv["hostnet"] == (
        "search default.svc.cluster.local svc.cluster.local cluster.local\n"
        f"nameserver {DNS_IP}\noptions ndots:5\n")
    assert resolv["hostnet-first"] == host_resolv  # ClusterFirst on the host network: Default

    # None: only its own search path, `web.default` then needs the svc suffix.
    assert out(lab, "none", "getent", "hosts", "web.default").split() == [
        web_ip, "web.default.svc.cluster.local"]
    assert out(lab, "first-extra", "getent", "hosts", "web").split()[0] == web_ip
    # A host-network pod reaches the ClusterIP from the node's own namespace.
    assert out(lab, "hostnet", "getent", "hosts", "web").split()[0] == web_ip

    # /etc/hosts: the pod's own hostname.subdomain line; the hostname is spec.hostname.
    named = pod(lab, "named")
    ip = named["status"]["podIP"]
    hosts = out(lab, "named", "cat", "/etc/hosts")
    assert f"{ip}\th1.sub.default.svc.cluster.local\th1\n" in hosts
    assert out(lab, "named", "hostname").strip() == "h1"
    assert out(lab, "named", "getent", "hosts", "h1.sub.default.svc.cluster.local").split() \
        == [ip, "h1.sub.default.svc.cluster.local", "h1"]


ZONE = "cluster.local"


def fq(name: str, ns: str = "default") -> str:
    return f"{name}.{ns}.svc.{ZONE}."


def dig(lab: Any, pod_name: str, *args: str) -> Dig:
    """The real dig inside a pod, through its resolv.conf's nameserver (the kube-dns ClusterIP)."""
    r = in_pod(lab, pod_name, "dig", "+time=3", "+tries=1", *args)
    assert "SERVER: " + DNS_IP + "#53(" in r.stdout or r.returncode != 0, r.stdout
    return parse_dig(r.stdout)


def headless_svc(name: str, selector: dict[str, str] | None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"clusterIP": "None", "ports": [
        {"name": "http", "port": 8080, "targetPort": 8080, "protocol": "TCP"}], **spec}
    if selector is not None:
        body["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": body}


def test_dig_in_a_pod_every_record_kind_over_udp_and_tcp_and_changes(dns_lab: Any) -> None:
    """The record kinds of the DNS specification, asked with the real dig from inside a pod
    (through the kube-dns ClusterIP, as the pod's resolv.conf says), over UDP and TCP, for
    Services backed by real pods; then the answers following the API."""
    lab, _ = dns_lab
    SVC, POD = lab.res("Service"), lab.res("Pod")
    flag = lab.root / "dns-slow-ready"  # db-slow is ready while this file exists
    never = lab.root / "never-ready"
    web = lab.client.create(SVC, "default", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [
            {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
            {"name": "dns", "port": 53, "targetPort": 5353, "protocol": "UDP"}]}})
    web_ip = web["spec"]["clusterIP"]
    plain = lab.client.create(SVC, "default", service("plain", {"app": "web"}))  # unnamed port
    lab.client.create(SVC, "default", headless_svc("db", {"app": "db"}))
    lab.client.create(SVC, "default", headless_svc("pub", {"app": "pub"},
                                                   publishNotReadyAddresses=True))
    lab.client.create(SVC, "default", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext"},
        "spec": {"type": "ExternalName", "externalName": "www.example.test"}})
    # A headless Service without a selector, its 100 endpoints written by hand (too many for
    # a UDP answer).
    lab.client.create(SVC, "default", headless_svc("many", None))
    lab.client.create(lab.res("EndpointSlice"), "default", {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "many-1", "labels": {"kubernetes.io/service-name": "many"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [f"10.244.200.{i}"], "conditions": {"ready": True}}
                      for i in range(1, 101)],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]})

    def probe(path: Path) -> dict[str, Any]:
        return {"exec": {"command": ["test", "-f", str(path)]}, "periodSeconds": 1,
                "failureThreshold": 1}

    pods = [
        echo_pod("web-1", "node-2", {"app": "web"}),
        echo_pod("db-0", "node-1", {"app": "db"}),
        echo_pod("db-x", "node-2", {"app": "db"}),
        echo_pod("db-slow", "node-2", {"app": "db"}, readinessProbe=probe(flag)),
        echo_pod("pub-0", "node-1", {"app": "pub"}, readinessProbe=probe(never)),
        client_pod("client", "node-1"),
    ]
    pods[1]["spec"].update(hostname="db-0", subdomain="db")
    for p in pods:
        lab.client.create(POD, "default", p)
    for name in ("web-1", "db-0", "db-x", "client"):
        running(lab, name)
    ip = {name: wait_for(f"{name}'s IP", lambda n=name: pod(lab, n)["status"].get("podIP"))
          for name in ("web-1", "db-0", "db-x", "db-slow", "pub-0", "client")}
    wait_for("db's two ready endpoints in DNS", lambda: dig(
        lab, "client", fq("db")).rdata("A") == sorted([ip["db-0"], ip["db-x"]]), timeout=30)
    wait_for("pub's unready endpoint in DNS", lambda: dig(
        lab, "client", fq("pub")).rdata("A") == [ip["pub-0"]], timeout=30)

    def dashed(addr: str) -> str:
        return addr.replace(".", "-")

    for proto in ("+notcp", "+tcp"):
        def ask(*args: str, proto: str = proto) -> Dig:
            return dig(lab, "client", proto, *args)

        # A for a ClusterIP Service; the question's case comes back as asked.
        d = ask("WeB.Default.SVC.Cluster.Local")
        assert (d.status, d.answer) == ("NOERROR", [f"WeB.Default.SVC.Cluster.Local. A {web_ip}"])
        assert {"qr", "aa"} <= d.flags, d.raw
        # SRV for named ports (TCP and UDP), none for an unnamed port.
        d = ask(f"_http._tcp.{fq('web')}", "SRV")
        assert d.answer == [f"_http._tcp.{fq('web')} SRV 0 100 80 {fq('web')}"], d.raw
        assert d.additional == [f"{fq('web')} A {web_ip}"], d.raw
        assert ask(f"_dns._udp.{fq('web')}", "SRV").rdata("SRV") == [f"0 100 53 {fq('web')}"]
        assert ask(f"_http._tcp.{fq('plain')}", "SRV").status == "NXDOMAIN"
        assert ask(fq("plain")).rdata("A") == [plain["spec"]["clusterIP"]]
        # PTR: a ClusterIP, a headless endpoint with a hostname, one without.
        assert ask("-x", web_ip).rdata("PTR") == [fq("web")]
        assert ask("-x", ip["db-0"]).rdata("PTR") == [f"db-0.{fq('db')}"]
        assert ask("-x", ip["db-x"]).rdata("PTR") == [f"{dashed(ip['db-x'])}.{fq('db')}"]
        # Headless: one record per ready endpoint (db-slow is not ready), by hostname or by
        # the dashed address; SRV is N endpoints x M named ports.
        assert ask(fq("db")).rdata("A") == sorted([ip["db-0"], ip["db-x"]])
        assert ask(f"db-0.{fq('db')}").rdata("A") == [ip["db-0"]]
        assert ask(f"{dashed(ip['db-x'])}.{fq('db')}").rdata("A") == [ip["db-x"]]
        assert ask(f"{dashed(ip['db-slow'])}.{fq('db')}").status == "NXDOMAIN"
        assert ask(f"_http._tcp.{fq('db')}", "SRV").rdata("SRV") == sorted(
            f"0 50 8080 {h}.{fq('db')}" for h in ("db-0", dashed(ip["db-x"])))
        # publishNotReadyAddresses: the unready pod is published.
        assert ask(fq("pub")).rdata("A") == [ip["pub-0"]]
        # ExternalName: the CNAME, and its target resolved (by the upstream) in the answer.
        d = ask(fq("ext"))
        assert (d.status, d.answer) == ("NOERROR", [f"{fq('ext')} CNAME www.example.test.",
                                                    f"www.example.test. A {FAKE_ANSWER}"]), d.raw
        # Pod records: the client's own dashed address in its namespace.
        assert ask(f"{dashed(ip['client'])}.default.pod.{ZONE}").rdata("A") == [ip["client"]]
        # The zone's SOA and NS, and the schema version.
        d = ask(ZONE, "SOA")
        assert d.answer[0].startswith(f"{ZONE}. SOA ns.dns.{ZONE}. hostmaster.{ZONE}. "), d.raw
        assert ask(ZONE, "NS").rdata("NS") == [f"ns.dns.{ZONE}."]
        assert ask(f"dns-version.{ZONE}", "TXT").rdata("TXT") == ['"1.1.0"']
        # NXDOMAIN for a name that does not exist, NODATA for a type a name lacks; both carry
        # the SOA.
        d = ask(fq("nothere"))
        assert (d.status, d.answer) == ("NXDOMAIN", []) and d.authority[0].startswith(
            f"{ZONE}. SOA"), d.raw
        for name, rtype in ((fq("web"), "AAAA"), (fq("web"), "TXT"), (fq("db"), "MX")):
            d = ask(name, rtype)
            assert (d.status, d.answer) == ("NOERROR", []), (name, rtype, d.raw)
            assert d.authority[0].startswith(f"{ZONE}. SOA"), (name, rtype, d.raw)

    # 100 endpoints do not fit a UDP answer: TC; dig then asks over TCP and gets them all.
    d = dig(lab, "client", "+notcp", "+ignore", fq("many"))
    assert "tc" in d.flags and len(d.answer) < 100, d.raw
    assert len(dig(lab, "client", "+notcp", fq("many")).answer) == 100
    assert len(dig(lab, "client", "+tcp", fq("many")).answer) == 100

    # -- over time ---------------------------------------------------------------------------
    def a(name: str) -> tuple[str, list[str]]:
        d = dig(lab, "client", name)
        return d.status, d.rdata("A")

    # The headless Service gains a ready endpoint, then loses it again.
    flag.touch()
    wait_for("db-slow ready and in DNS", lambda: a(fq("db")) == (
        "NOERROR", sorted([ip["db-0"], ip["db-x"], ip["db-slow"]])), timeout=30)
    flag.unlink()
    wait_for("db-slow out of DNS", lambda: a(fq("db")) == (
        "NOERROR", sorted([ip["db-0"], ip["db-x"]])), timeout=30)
    # ... and NXDOMAIN once no endpoint is ready.
    for name in ("db-0", "db-x", "db-slow"):
        lab.client.delete(POD, "default", name, params={"gracePeriodSeconds": "0"})
    wait_for("db without endpoints: NXDOMAIN", lambda: a(fq("db"))[0] == "NXDOMAIN", timeout=30)

    # The ExternalName Service changes its target.
    lab.client.patch(SVC, "default", "ext", {"spec": {"externalName": "other.example.test"}})
    wait_for("the new CNAME", lambda: dig(lab, "client", fq("ext")).answer == [
        f"{fq('ext')} CNAME other.example.test.", f"other.example.test. A {FAKE_ANSWER}"],
        timeout=30)

    # A deleted Service becomes NXDOMAIN, over UDP and TCP.
    lab.client.delete(SVC, "default", "web")
    wait_for("web gone", lambda: a(fq("web"))[0] == "NXDOMAIN", timeout=30)
    d = dig(lab, "client", "+tcp", fq("web"))
    assert (d.status, d.answer) == ("NXDOMAIN", []), d.raw
    assert dig(lab, "client", "-x", web_ip).status == "NXDOMAIN"


def test_a_thousand_lookups_through_the_cluster_ip_never_stall(dns_lab: Any) -> None:
    """The DNAT conntrack race: glibc sends A and AAAA at once from one socket; if the second
    packet loses the race to confirm its conntrack entry it is dropped, and the lookup waits
    for glibc's 5 s timeout. With two DNS pods behind the ClusterIP, none may."""
    lab, _ = dns_lab
    lab.client.create(lab.res("Service"), "default", service("web", {"app": "web"}))
    lab.client.create(lab.res("Pod"), "default", client_pod("client", "node-1"))
    web_ip = lab.client.get(lab.res("Service"), "default", "web")["spec"]["clusterIP"]
    running(lab, "client")
    r = in_pod(lab, "client", sys.executable, "-c", LOOKUPS, "web", "1000", "4", timeout=600)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    print(f"\n1,000 getaddrinfo lookups: max {result['max'] * 1000:.1f} ms, p99 "
          f"{result['p99'] * 1000:.1f} ms, p50 {result['p50'] * 1000:.2f} ms")
    assert result["answers"] == {web_ip: 1000}, result
    assert result["over_1s"] == 0, result
    assert result["max"] < 5.0, result


# -- cluster shapes ---------------------------------------------------------------------------


def test_one_node_gets_one_dns_pod_and_pod_records_can_be_off(make_lab: Any) -> None:
    lab = make_lab(nodes=1, dns=True, dns_upstreams=[UPSTREAM], dns_pod_records="disabled")
    dns_pods = lifecycle.dns_pods(lab.client)
    assert addons.pod_ready(dns_pods["podnet-dns-1"])
    assert list(dns_pods) == ["podnet-dns-1"]
    cmd = dns_pods["podnet-dns-1"]["spec"]["containers"][0]["command"]
    assert cmd[cmd.index("--pod-records") + 1] == "disabled"

    # A deleted DNS pod comes back with the next `podnet up`, which waits for it.
    lab.client.delete(lab.res("Pod"), "kube-system", "podnet-dns-1",
                      params={"gracePeriodSeconds": "0"})
    wait_for("the DNS pod gone", lambda: "podnet-dns-1" not in lifecycle.dns_pods(lab.client))
    r = lab.podnet("up")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f'cluster "{lab.name}" is up at ')
    assert addons.pod_ready(lifecycle.dns_pods(lab.client)["podnet-dns-1"])
    status = lab.podnet("status")
    assert status.returncode == 0, status.stdout
    fields = dict(re.split(r":\s+", line, maxsplit=1) for line in status.stdout.splitlines())
    assert fields["dns upstreams"] == UPSTREAM
    assert fields["dns"] == f"{DNS_IP} (kube-system/kube-dns), podnet-dns-1 on node-1 Ready"


def test_without_the_cluster_dns_cluster_first_pods_fall_back_to_default(make_lab: Any) -> None:
    """kubelet without a cluster DNS: a ClusterFirst pod gets the node's resolv.conf and a
    MissingClusterDNS warning, rather than a nameserver nobody answers on."""
    lab = make_lab(nodes=1)  # no cluster DNS
    assert lab.state.load().dns is False
    lab.client.create(lab.res("Pod"), "default", client_pod("first", "node-1"))
    lab.client.create(lab.res("Pod"), "default", client_pod(
        "none", "node-1", dnsPolicy="None", dnsConfig={"nameservers": ["192.0.2.53"]}))
    first = running(lab, "first")
    running(lab, "none")
    assert out(lab, "first", "cat", "/etc/resolv.conf") == Path("/etc/resolv.conf").read_text()
    assert out(lab, "none", "cat", "/etc/resolv.conf") == "nameserver 192.0.2.53\n"

    def warnings() -> list[dict[str, Any]]:
        events = lab.client.list(lab.res("Event"), "default")["items"]
        return [e for e in events if e["reason"] == "MissingClusterDNS"]
    found = wait_for("the MissingClusterDNS event", warnings)
    assert [(e["type"], e["involvedObject"]["name"]) for e in found] == [("Warning", "first")]
    assert 'Falling back to "Default" policy' in found[0]["message"]
    assert first["metadata"]["uid"] in found[0]["message"]


def test_the_control_plane_alone_has_no_cluster_dns(cluster_root: Path) -> None:
    name = "c" + secrets.token_hex(3)
    env = {**os.environ, "PODNET_STATE_ROOT": str(cluster_root)}
    podnet = [sys.executable, "-m", "podnet.cli.main", "--name", name]
    try:
        r = subprocess.run([*podnet, "up", "--nodes", "0", "--port",
                            str(ephemeral_port("127.0.0.1"))],
                           capture_output=True, text=True, env=env, timeout=60)
        assert (r.returncode, r.stderr) == (0, "")
        state = ClusterState.locate(name, cluster_root)
        assert state.load().dns is True  # the CLI's default, with nothing to run it on
        with Client.from_state(state) as client:
            for kind in ("Pod", "Service"):
                res = lookup(kind)
                assert res is not None
                assert client.list(res, "kube-system")["items"] == []
    finally:
        subprocess.run([*podnet, "down"], capture_output=True, env=env, timeout=60)
