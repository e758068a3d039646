"""The policy renderer's scripts against the real nft and real packets.

1. A seeded random walk over NodeRules (built directly, not compiled from policies): every
   incremental script is accepted, and the table it leaves holds exactly what the full body of
   the same NodeRules writes into a fresh table.
2. Packets: a node namespace and three pod namespaces joined the CNI's way (a routed veth
   `pn<x>` per pod, the pod's IP as a /32, default route via the node's gateway address), one
   table with the full body of a handwritten NodeRules, then TCP connects and UDP echoes from
   pod to pod checked against what the rules say.

Address plan (part 2): gateway 10.244.7.1 on every veth in the node namespace; pods
a = 10.244.7.2, b = 10.244.7.3, c = 10.244.7.4. Everything the test creates is named
`podnet-test-pol-<pid>...` and is deleted afterwards, also on failure.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from podnet.policy.model import Grant, IpRange, PortRange
from podnet.policy.render import ALL_IPS, Box, NodeRules, PodSets, flatten, full_body, incremental
from podnet.proxy.render import Table

pytestmark = pytest.mark.integration

PREFIX = f"podnet-test-pol-{os.getpid()}"


def ip(text: str) -> int:
    a, b, c, d = (int(x) for x in text.split("."))
    return a << 24 | b << 16 | c << 8 | d


def nft(ns: str, script: str) -> None:
    out = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script, text=True,
                         capture_output=True)
    assert out.returncode == 0, f"{out.stderr}\n--- script ---\n{script}"


def content(ns: str, table: str) -> dict[str, Any]:
    """Sets' and maps' elements and chains' rules (and base chains' hooks), as the kernel
    holds them."""
    out = subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "list", "table", "ip", table],
                         capture_output=True, text=True, check=True)
    got: dict[str, Any] = {}
    rules: dict[str, list[str]] = {}
    for item in json.loads(out.stdout)["nftables"]:
        for kind in ("set", "map"):
            if kind in item:
                got[f"{kind} {item[kind]['name']}"] = (
                    item[kind]["type"], item[kind].get("flags"),
                    sorted(json.dumps(e, sort_keys=True) for e in item[kind].get("elem", [])))
        if "chain" in item:
            c = item["chain"]
            got[f"hook {c['name']}"] = [c.get(k) for k in ("type", "hook", "prio", "policy")]
            rules.setdefault(c["name"], [])
        if "rule" in item:
            rules.setdefault(item["rule"]["chain"], []).append(
                json.dumps(item["rule"]["expr"], sort_keys=True))
    got.update({f"chain {k}": v for k, v in rules.items()})
    return got


def empty_table(table: Table) -> str:
    return f"table {table.ref}\ndelete table {table.ref}\ntable {table.ref} {{}}\n"


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"{PREFIX}-walk"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


# --- 1. incremental == full --------------------------------------------------------------------

POD_IPS = [ip(f"10.244.1.{i}") for i in range(2, 10)]
PEERS = [IpRange(p, p) for p in POD_IPS] + [
    IpRange(ip("10.244.2.0"), ip("10.244.2.255")), IpRange(ip("10.0.0.0"), ip("10.255.255.255")),
    IpRange(ip("192.0.2.16"), ip("192.0.2.31")), IpRange(ip("10.244.1.4"), ip("10.244.1.7"))]
PORTS = [PortRange("TCP", 80, 80), PortRange("TCP", 80, 81), PortRange("TCP", 81, 90),
         PortRange("UDP", 53, 53), PortRange("UDP", 0, 65535), PortRange("SCTP", 7, 7),
         PortRange("TCP", 1, 65535)]


def random_sets(rng: random.Random, pod_ip: int) -> PodSets:
    grants = []
    for i in range(rng.randrange(0, 5)):
        peers = None if rng.random() < 0.15 else tuple(rng.sample(PEERS, rng.randrange(0, 4)))
        ports = None if rng.random() < 0.3 else tuple(rng.sample(PORTS, rng.randrange(1, 4)))
        grants.append(Grant("x/p", i, peers, ports))
    return PodSets(pod_ip, *flatten(grants))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_scripts_reach_what_the_full_body_writes(netns, seed):
    rng = random.Random(seed)
    live = Table("podnet-pol-live", "10.96.0.0/12", "10.244.0.0/16")
    fresh = Table("podnet-pol-fresh", "10.96.0.0/12", "10.244.0.0/16")
    rules = NodeRules({}, {})
    nft(netns, empty_table(live) + full_body(live, rules))
    for step in range(50):
        ingress, egress = dict(rules.ingress), dict(rules.egress)
        if rng.random() < 0.05:
            ingress, egress = {}, {}
        for _ in range(rng.randrange(1, 4)):
            side = rng.choice([ingress, egress])
            pod_ip = rng.choice(POD_IPS)
            if pod_ip in side and rng.random() < 0.35:
                del side[pod_ip]
            else:
                side[pod_ip] = random_sets(rng, pod_ip)
        new = NodeRules(dict(sorted(ingress.items())), dict(sorted(egress.items())))
        script = incremental(live, rules, new)
        assert (script == "") == (new == rules)
        if script:
            nft(netns, script)
        rules = new
        nft(netns, empty_table(fresh) + full_body(fresh, rules))
        assert content(netns, live.name) == content(netns, fresh.name), f"step {step}"
    # and everything goes
    nft(netns, incremental(live, rules, NodeRules({}, {})))
    nft(netns, empty_table(fresh) + full_body(fresh, NodeRules({}, {})))
    assert content(netns, live.name) == content(netns, fresh.name)


# --- 2. real packets -------------------------------------------------------------------------

GATEWAY = "10.244.7.1"
PODS = {"a": "10.244.7.2", "b": "10.244.7.3", "c": "10.244.7.4"}
NODE = "node"
A, B, C = (ip(PODS[p]) for p in "abc")
SPOOF_PORT = 5353


def one(addr: int) -> IpRange:
    return IpRange(addr, addr)


# a: ingress isolated: b may reach TCP 80-81 and UDP 81.
# b: egress isolated: c on everything; a on TCP 80-82 and UDP 80-81.
# c: ingress isolated: a on everything, b on UDP 80 and UDP 5353; egress: nothing at all.
RULES = NodeRules(
    ingress={A: PodSets(A, (), (Box(one(B), "TCP", 80, 81), Box(one(B), "UDP", 81, 81))),
             C: PodSets(C, (one(A),), (Box(one(B), "UDP", 80, 80),
                                       Box(one(B), "UDP", SPOOF_PORT, SPOOF_PORT)))},
    egress={B: PodSets(B, (one(C),), (Box(one(A), "TCP", 80, 82), Box(one(A), "UDP", 80, 81))),
            C: PodSets(C, (), ())})

OK, DENIED = "ok", "EHOSTUNREACH"
# (from, protocol, to, port, expected); "node" is the node's own address (pol-input).
PROBES = [
    pytest.param("b", "tcp", "a", 80, OK, id="port-range-start"),
    pytest.param("b", "tcp", "a", 81, OK, id="port-range-end"),
    pytest.param("b", "tcp", "a", 82, DENIED, id="beyond-the-ingress-range"),
    pytest.param("b", "tcp", "a", 83, DENIED, id="beyond-the-egress-range"),
    pytest.param("b", "udp", "a", 80, DENIED, id="udp-port-not-granted-at-ingress"),
    pytest.param("b", "udp", "a", 81, OK, id="udp-granted-both-sides"),
    pytest.param("a", "tcp", "c", 80, OK, id="any-set-tcp-80-replies-pass"),
    pytest.param("a", "tcp", "c", 83, OK, id="any-set-tcp-83"),
    pytest.param("a", "udp", "c", 81, OK, id="any-set-udp-replies-pass"),
    pytest.param("c", "tcp", "a", 80, DENIED, id="reverse-direction-denied"),
    pytest.param("c", "udp", "b", 80, DENIED, id="egress-deny-all"),
    pytest.param("a", "tcp", "b", 83, OK, id="neither-side-isolated"),
    pytest.param("b", "tcp", "c", 80, DENIED, id="egress-any-but-ingress-denies"),
    pytest.param("b", "udp", "c", 80, OK, id="egress-any-and-ingress-port"),
    pytest.param("c", "tcp", "c", 80, OK, id="self-via-own-ip-deny-all-egress"),
    pytest.param("b", "tcp", "b", 83, OK, id="self-via-own-ip-isolated-egress"),
    pytest.param("a", "tcp", NODE, 80, OK, id="to-the-node-not-isolated"),
    pytest.param("c", "tcp", NODE, 80, DENIED, id="to-the-node-egress-denied"),
]

SERVER = """
import selectors, socket, sys
sel = selectors.DefaultSelector()
for spec in sys.argv[1:]:
    proto, port = spec.split("/")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(port)))
    if proto == "tcp":
        s.listen(16)
    sel.register(s, selectors.EVENT_READ, proto)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        s = key.fileobj
        if key.data == "udp":
            data, peer = s.recvfrom(512)
            s.sendto(data, peer)
            continue
        conn, _ = s.accept()
        conn.settimeout(2)
        try:
            conn.sendall(conn.recv(512))
        except OSError:
            pass
        conn.close()
"""

CLIENT = """
import errno, socket, sys, time
proto, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
s.settimeout(3)
if len(sys.argv) > 4:
    s.bind((sys.argv[4], 0))
start = time.monotonic()
try:
    s.connect((host, port))
    s.send(b"ping")
    result = "ok" if s.recv(512) == b"ping" else "bad answer"
except socket.timeout:
    result = "timeout"
except OSError as e:
    result = errno.errorcode.get(e.errno, str(e))
print(result, round(time.monotonic() - start, 3))
"""

# waits for one datagram and prints its source address, or "none"
RECEIVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.settimeout(float(sys.argv[2]))
print("ready", flush=True)
try:
    print(s.recvfrom(512)[1][0])
except socket.timeout:
    print("none")
"""


def ns_of(name: str) -> str:
    return f"{PREFIX}-{name}"


def run(*args: str) -> None:
    out = subprocess.run(list(args), capture_output=True, text=True)
    assert out.returncode == 0, f"{' '.join(args)}: {out.stderr}"


def start(ns: str, code: str, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-I", "-c", code, *args],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


class Lab:
    """The namespaces, veths and servers of part 2."""

    def __init__(self) -> None:
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen[str]] = []

    def build(self) -> None:
        node = ns_of(NODE)
        for name in (NODE, *PODS):
            run("ip", "netns", "add", ns_of(name))
            self.namespaces.append(ns_of(name))
        # rp_filter off: the spoofing check is pol-rpf's alone. icmp_ratelimit 0: the kernel
        # lets only 6 destination-unreachables in a burst reach one host, then one a second,
        # which turns the 7th quick denial into a 1 s SYN retransmit (measured here).
        for key, value in (("net.ipv4.ip_forward", "1"), ("net.ipv4.conf.all.rp_filter", "0"),
                           ("net.ipv4.conf.default.rp_filter", "0"),
                           ("net.ipv4.icmp_ratelimit", "0")):
            run("ip", "netns", "exec", node, "sysctl", "-qw", f"{key}={value}")
        for name, addr in PODS.items():
            veth, pod = f"pn{name}", ns_of(name)
            run("ip", "-n", node, "link", "add", veth, "type", "veth", "peer", "name", "eth0",
                "netns", pod)
            run("ip", "-n", node, "addr", "add", f"{GATEWAY}/32", "dev", veth)
            run("ip", "-n", node, "link", "set", veth, "up")
            run("ip", "-n", node, "route", "add", f"{addr}/32", "dev", veth)
            run("ip", "-n", pod, "link", "set", "lo", "up")
            run("ip", "-n", pod, "link", "set", "eth0", "up")
            run("ip", "-n", pod, "addr", "add", f"{addr}/32", "dev", "eth0")
            run("ip", "-n", pod, "route", "add", f"{GATEWAY}/32", "dev", "eth0")
            run("ip", "-n", pod, "route", "add", "default", "via", GATEWAY, "dev", "eth0")
        for name in PODS:
            self.procs.append(start(ns_of(name), SERVER, "tcp/80", "tcp/81", "tcp/82", "tcp/83",
                                    "udp/80", "udp/81"))
        self.procs.append(start(node, SERVER, "tcp/80"))

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], check=False)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    built = Lab()
    try:
        built.build()
        yield built
    finally:
        built.close()


def probe(src: str, proto: str, dst: str, port: int, bind: str = "") -> tuple[str, float]:
    host = GATEWAY if dst == NODE else PODS[dst]
    out = subprocess.run(["ip", "netns", "exec", ns_of(src), sys.executable, "-I", "-c", CLIENT,
                          proto, host, str(port), *([bind] if bind else [])],
                         capture_output=True, text=True, check=True)
    result, elapsed = out.stdout.rsplit(maxsplit=1)
    return result, float(elapsed)


def spoofed_datagram_arrives(bind: str) -> str:
    """From pod a, with source `bind`, one datagram to pod c; what c saw ("none" or a source)."""
    receiver = start(ns_of("c"), RECEIVER, str(SPOOF_PORT), "1.5")
    try:
        send = ("import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                "s.bind((sys.argv[1], 0)); s.sendto(b'x', (sys.argv[2], int(sys.argv[3])))")
        run("ip", "netns", "exec", ns_of("a"), sys.executable, "-I", "-c", send, bind,
            PODS["c"], str(SPOOF_PORT))
        out, _ = receiver.communicate(timeout=5)
    finally:
        receiver.kill()
        receiver.wait()
    return out.strip()


@pytest.fixture(scope="module")
def enforced(lab: Lab) -> Iterator[Lab]:
    """The lab with the table: first checks that, without it, everything passes (so what the
    probes see below is the table's doing), spoofing included."""
    for p in PROBES:
        src, proto, dst, port, _ = p.values
        assert probe(src, proto, dst, port)[0] == OK, p.id
    run("ip", "-n", ns_of("a"), "addr", "add", f"{PODS['b']}/32", "dev", "eth0")
    try:
        assert spoofed_datagram_arrives(PODS["b"]) == PODS["b"]
    finally:
        run("ip", "-n", ns_of("a"), "addr", "del", f"{PODS['b']}/32", "dev", "eth0")
    table = Table(f"{PREFIX}-t", "10.96.0.0/12", "10.244.0.0/16")
    nft(ns_of(NODE), empty_table(table) + full_body(table, RULES))
    yield lab


@pytest.mark.parametrize(("src", "proto", "dst", "port", "want"), PROBES)
def test_packets_follow_the_rules(enforced, src, proto, dst, port, want):
    result, elapsed = probe(src, proto, dst, port)
    assert result == want
    assert elapsed < 1.0  # a denial is immediate (ICMP admin-prohibited), never a timeout


def test_a_pod_cannot_speak_for_another(enforced):
    # b itself may send to c's UDP 5353, so only the source check can stop a's spoof
    receiver = start(ns_of("c"), RECEIVER, str(SPOOF_PORT), "1.5")
    try:
        run("ip", "netns", "exec", ns_of("b"), sys.executable, "-I", "-c",
            "import socket, sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
            ".sendto(b'x', (sys.argv[1], int(sys.argv[2])))", PODS["c"], str(SPOOF_PORT))
        assert receiver.communicate(timeout=5)[0].strip() == PODS["b"]
    finally:
        receiver.kill()
        receiver.wait()
    run("ip", "-n", ns_of("a"), "addr", "add", f"{PODS['b']}/32", "dev", "eth0")
    try:
        assert spoofed_datagram_arrives(PODS["b"]) == "none"
    finally:
        run("ip", "-n", ns_of("a"), "addr", "del", f"{PODS['b']}/32", "dev", "eth0")


def test_lifting_isolation_opens_everything(enforced):
    table = Table(f"{PREFIX}-t", "10.96.0.0/12", "10.244.0.0/16")
    nft(ns_of(NODE), incremental(table, RULES, NodeRules({}, {})))
    try:
        for p in PROBES:
            src, proto, dst, port, _ = p.values
            assert probe(src, proto, dst, port)[0] == OK, p.id
    finally:
        nft(ns_of(NODE), incremental(table, NodeRules({}, {}), RULES))
    assert probe("c", "tcp", "a", 80)[0] == DENIED


def test_every_address_in_an_any_set(enforced):
    """0.0.0.0-255.255.255.255 in the egress any set: c may go everywhere again."""
    table = Table(f"{PREFIX}-t", "10.96.0.0/12", "10.244.0.0/16")
    opened = NodeRules(RULES.ingress, {**RULES.egress, C: PodSets(C, (ALL_IPS,), ())})
    nft(ns_of(NODE), incremental(table, RULES, opened))
    try:
        assert probe("c", "udp", "b", 80)[0] == OK
        assert probe("c", "tcp", "a", 80)[0] == DENIED  # a's ingress still says no
    finally:
        nft(ns_of(NODE), incremental(table, opened, RULES))
