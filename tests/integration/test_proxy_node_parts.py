"""The proxy's node-side parts driven directly against a lab's node namespaces, with real
packets: Speaker (LoadBalancer IPs answered by ARP), HealthServer (healthCheckNodePort) and
clear_udp (UDP conntrack cleanup).

Address plan (the lab's defaults): LAN 172.18.0.0/24, external host .2, node-1 .11, node-2 .12.
The test's own objects stay clear of what the agents running in the lab may use: the IPs are
outside the LoadBalancer pool (.200-.249), the speaker's link is `lbt0` (the agents' is `lb0`),
the health ports are outside the NodePort range, and the conntrack test's DNAT lives in an nft
table of the test's own (`ptest<hex>`), deleted afterwards.

    LB_A, LB_B   172.18.0.150, .151   LoadBalancer IPs moved between node-1 and node-2
    VIP          172.18.0.152         DNATed by the test table on node-1 to .2 or .12 (UDP 40003)
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from podnet.kernel import netns
from podnet.lab import names
from podnet.proxy.conntrack import ConntrackError, clear_udp
from podnet.proxy.healthcheck import HealthCheckError, HealthServer
from podnet.proxy.speaker import Speaker, SpeakerError

pytestmark = pytest.mark.integration

EXTERNAL_IP, NODE1_IP, NODE2_IP = "172.18.0.2", "172.18.0.11", "172.18.0.12"
LB_A, LB_B, VIP = "172.18.0.150", "172.18.0.151", "172.18.0.152"
DEV = "lbt0"
WHOAMI_PORT = 18080
HC_WEB, HC_DB, HC_SPARE = 20401, 20402, 20403

# Run inside a namespace (`python -c TOOL mode args...`), prints one JSON line:
#   serve PORT NAME          a TCP server answering NAME to every connection (prints "ready")
#   tcp IP PORT              {"data": what the server sent} or {"error": errno name}
#   http IP PORT HEX [eof]   sends the bytes (then a FIN), reads to the end:
#                            {"status", "headers", "body"}, {"data": ""} or {"error"}
#   udp SPORT:IP:DPORT ...   one datagram per flow, from the given source port
TOOL = r'''
import errno, json, socket, sys
mode, args = sys.argv[1], sys.argv[2:]
def fail(e):
    name = "TIMEOUT" if isinstance(e, socket.timeout) else errno.errorcode.get(e.errno, str(e))
    print(json.dumps({"error": name})); sys.exit(0)
if mode == "serve":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(args[0]))); s.listen(16); print("ready", flush=True)
    while True:
        c, _ = s.accept(); c.sendall(args[1].encode()); c.close()
elif mode in ("tcp", "http"):
    try:
        s = socket.create_connection((args[0], int(args[1])), timeout=3)
        if mode == "http":
            s.sendall(bytes.fromhex(args[2]))
            if args[3:] == ["eof"]:
                s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        s.close()
    except OSError as e:
        fail(e)
    if mode == "tcp" or not data:
        print(json.dumps({"data": data.decode()})); sys.exit(0)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    print(json.dumps({"status": int(lines[0].split()[1]), "headers": headers,
                      "body": body.decode()}))
elif mode == "udp":
    for flow in args:
        sport, ip, dport = flow.split(":")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", int(sport))); s.sendto(b"x", (ip, int(dport))); s.close()
    print(json.dumps({"sent": len(args)}))
'''


# -- helpers ----------------------------------------------------------------------------------

async def sh(*argv: Any, check: bool = True) -> tuple[int, str, str]:
    return await netns.arun([str(a) for a in argv], check=check, timeout=60)


async def tool(ns: str, *args: Any) -> dict[str, Any]:
    _, out, _ = await sh(*netns.exec_argv(ns, [sys.executable, "-I", "-S", "-c", TOOL,
                                               *map(str, args)]))
    return json.loads(out)


async def wait_for(what: str, check: Callable[[], Awaitable[Any]],
                   timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def link_addresses(ns: str, dev: str) -> set[str] | None:
    """"ip/len" of the IPv4 addresses on dev; None when there is no such link."""
    rc, out, _ = await sh("ip", "-n", ns, "-j", "addr", "show", "dev", dev, check=False)
    if rc != 0:
        return None
    return {f"{a['local']}/{a['prefixlen']}" for link in json.loads(out)
            for a in link["addr_info"] if a["family"] == "inet"}


async def mac(ns: str, dev: str = "eth0") -> str:
    _, out, _ = await sh("ip", "-n", ns, "-j", "link", "show", "dev", dev)
    return str(json.loads(out)[0]["address"])


async def neighbour(ns: str, ip: str) -> str | None:
    """The MAC address `ns` has cached for ip, if any."""
    _, out, _ = await sh("ip", "-n", ns, "-j", "neigh", "show", ip)
    return next((n.get("lladdr") for n in json.loads(out or "[]")), None)


async def pings(ns: str, ip: str) -> bool:
    rc, _, _ = await sh(*netns.exec_argv(ns, ["ping", "-c", "1", "-W", "1", ip]), check=False)
    return rc == 0


async def start_whoami(ns: str, name: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        *netns.exec_argv(ns, [sys.executable, "-I", "-S", "-c", TOOL, "serve",
                              str(WHOAMI_PORT), name]),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line == b"ready\n", line
    return proc


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
    await proc.wait()


def lab_namespaces(lab: Any) -> tuple[str, str, str]:
    return (names.node_netns(lab.name, "node-1"), names.node_netns(lab.name, "node-2"),
            names.external_netns(lab.name))


# -- Speaker ----------------------------------------------------------------------------------

def test_speaker_moves_a_loadbalancer_ip_between_nodes(make_lab):
    lab = make_lab(nodes=2)
    asyncio.run(speaker_scenario(*lab_namespaces(lab)))


async def speaker_scenario(node1: str, node2: str, external: str) -> None:
    s1, s2 = Speaker(node1, dev=DEV), Speaker(node2, dev=DEV)
    restarted = Speaker(node1, dev=DEV)
    servers = []
    try:
        servers = [await start_whoami(node1, "node-1"), await start_whoami(node2, "node-2")]
        mac1, mac2 = await mac(node1), await mac(node2)
        assert not await pings(external, LB_A)

        # node-1 announces LB_A: the link holds it, and the external host reaches node-1.
        await s1.sync({LB_A})
        assert await link_addresses(node1, DEV) == {f"{LB_A}/32"}
        assert s1.ips == {LB_A}
        assert await pings(external, LB_A)
        assert await tool(external, "tcp", LB_A, WHOAMI_PORT) == {"data": "node-1"}
        assert await neighbour(external, LB_A) == mac1

        # It moves to node-2: the gratuitous ARP alone (no traffic to LB_A in between)
        # switches the external host's cache, and the next connection reaches node-2.
        await s1.sync(set())
        assert await link_addresses(node1, DEV) == set()
        await s2.sync({LB_A})
        assert await link_addresses(node2, DEV) == {f"{LB_A}/32"}
        await wait_for("the external host to learn node-2's MAC for LB_A",
                       lambda: _equals(neighbour(external, LB_A), mac2), timeout=10)
        assert await tool(external, "tcp", LB_A, WHOAMI_PORT) == {"data": "node-2"}
        assert await pings(external, LB_A)

        # Removed, it stops answering.
        await s2.sync(set())
        assert await link_addresses(node2, DEV) == set()
        await wait_for("LB_A to stop answering", lambda: _not(pings(external, LB_A)))
        assert "error" in await tool(external, "tcp", LB_A, WHOAMI_PORT)

        # A Speaker started afresh (an agent restart) finds the link's leftovers and keeps
        # exactly what it is given; an address of another prefix length is a leftover too.
        await sh("ip", "-n", node1, "addr", "add", f"{LB_A}/32", "dev", DEV)
        await sh("ip", "-n", node1, "addr", "add", f"{LB_B}/24", "dev", DEV)
        await restarted.sync({LB_B})
        assert await link_addresses(node1, DEV) == {f"{LB_B}/32"}
        assert await tool(external, "tcp", LB_B, WHOAMI_PORT) == {"data": "node-1"}
        await restarted.sync({LB_B})  # nothing to do: no error, nothing changes
        assert await link_addresses(node1, DEV) == {f"{LB_B}/32"}

        # Someone else removed the address behind its back: the sync fails loudly, and the
        # next one reads the link again and repairs it.
        await sh("ip", "-n", node1, "addr", "del", f"{LB_B}/32", "dev", DEV)
        with pytest.raises(SpeakerError, match="cannot set LoadBalancer IPs"):
            await restarted.sync({LB_A})
        await restarted.sync({LB_A})
        assert await link_addresses(node1, DEV) == {f"{LB_A}/32"}

        with pytest.raises(ValueError, match="not an IPv4 address"):
            await restarted.sync({"172.18.0.300"})
        assert await link_addresses(node1, DEV) == {f"{LB_A}/32"}

        # close() deletes the link; closing again (or a Speaker that holds nothing) is fine.
        await restarted.close()
        await s2.close()
        assert await link_addresses(node1, DEV) is None
        assert await link_addresses(node2, DEV) is None
        await restarted.close()
        await wait_for("LB_A to stop answering after close",
                       lambda: _not(pings(external, LB_A)))
    finally:
        for s in (s1, s2, restarted):
            await s.close()
        for proc in servers:
            await stop(proc)


async def _equals(value: Awaitable[Any], expected: Any) -> bool:
    return await value == expected


async def _not(value: Awaitable[Any]) -> bool:
    return not await value


def test_speaker_fails_clearly_without_its_namespace(make_lab):
    lab = make_lab(nodes=1)

    async def scenario() -> None:
        gone = Speaker(names.node_netns(lab.name, "node-9"), dev=DEV)
        with pytest.raises(SpeakerError, match="cannot prepare lbt0"):
            await gone.sync({LB_A})
        await gone.close()  # nothing there to delete

        # The gratuitous ARP fails (no such LAN device): the IP is held all the same, the
        # error says so, and the next sync tries the announcement again, until the IP goes.
        node1 = names.node_netns(lab.name, "node-1")
        mute = Speaker(node1, dev=DEV, lan_dev="nope0")
        try:
            for _ in range(2):
                with pytest.raises(SpeakerError, match=f"gratuitous ARP on nope0 failed.*{LB_A}"):
                    await mute.sync({LB_A})
                assert await link_addresses(node1, DEV) == {f"{LB_A}/32"}
            await mute.sync(set())
            assert await link_addresses(node1, DEV) == set()
        finally:
            await mute.close()
        assert await link_addresses(node1, DEV) is None

    asyncio.run(scenario())


# -- HealthServer -----------------------------------------------------------------------------

GET = b"GET /healthz HTTP/1.1\r\nHost: 172.18.0.11\r\nUser-Agent: test\r\n\r\n"


async def http(ns: str, port: int, request: bytes = GET, *more: str) -> dict[str, Any]:
    return await tool(ns, "http", NODE1_IP, port, request.hex(), *more)


async def socket_inodes(ns: str) -> dict[int, str]:
    """port -> inode of the TCP listeners on NODE1_IP in ns."""
    _, out, _ = await sh(*netns.exec_argv(ns, ["ss", "-Htlne", "src", NODE1_IP]))
    found = {}
    for line in out.splitlines():
        port = re.search(rf"{re.escape(NODE1_IP)}:(\d+)", line)
        inode = re.search(r"ino:(\d+)", line)
        if port and inode:
            found[int(port.group(1))] = inode.group(1)
    return found


async def _has_connection(server: HealthServer) -> bool:
    return bool(server._connections)


def expected(status: int, namespace: str, name: str, count: int) -> dict[str, Any]:
    body = {"service": {"namespace": namespace, "name": name}, "localEndpoints": count,
            "serviceProxyHealthy": True}
    return {"status": status, "json": body}


def summary(got: dict[str, Any]) -> dict[str, Any]:
    assert got["headers"]["Content-Type"] == "application/json", got
    assert got["headers"]["X-Content-Type-Options"] == "nosniff", got
    assert int(got["headers"]["Content-Length"]) == len(got["body"].encode()), got
    return {"status": got["status"], "json": json.loads(got["body"])}


def test_health_server_answers_200_or_503_and_follows_counts(make_lab):
    lab = make_lab(nodes=2)
    asyncio.run(health_scenario(*lab_namespaces(lab)))


async def health_scenario(node1: str, node2: str, external: str) -> None:
    hs = HealthServer(node1, NODE1_IP)
    other = HealthServer(node1, NODE1_IP)
    nowhere = HealthServer(node1 + "-missing", NODE1_IP)
    try:
        await hs.sync({HC_WEB: ("default", "web", 2), HC_DB: ("prod", "db", 0)})
        assert hs.ports == {HC_WEB, HC_DB}
        assert summary(await http(external, HC_WEB)) == expected(200, "default", "web", 2)
        assert summary(await http(external, HC_DB)) == expected(503, "prod", "db", 0)
        # The sockets are in node-1's namespace, not the host's.
        inodes = await socket_inodes(node1)
        assert set(inodes) == {HC_WEB, HC_DB}
        _, host_listeners, _ = await sh("ss", "-Htln")
        assert f":{HC_WEB} " not in host_listeners

        # Counts change in place: same sockets, new answers.
        await hs.sync({HC_WEB: ("default", "web", 0), HC_DB: ("prod", "db", 3)})
        assert summary(await http(external, HC_WEB)) == expected(503, "default", "web", 0)
        assert summary(await http(external, HC_DB)) == expected(200, "prod", "db", 3)
        assert await socket_inodes(node1) == inodes

        # HTTP details: HEAD, any path, LF line ends, HTTP/1.0; errors.
        head = await http(external, HC_DB, b"HEAD /x HTTP/1.0\r\n\r\n")
        assert head["status"] == 200 and head["body"] == "", head
        assert int(head["headers"]["Content-Length"]) == len(
            json.dumps(expected(200, "prod", "db", 3)["json"], indent=2)) + 1
        lf = await http(external, HC_DB, b"GET / HTTP/1.1\nHost: x\n\n")
        assert summary(lf) == expected(200, "prod", "db", 3)
        post = await http(external, HC_DB, b"POST / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (post["status"], post["headers"]["Allow"]) == (405, "GET, HEAD")
        for bad in (b"\r\n", b"HELLO\r\n\r\n", b"GET / HTTP/2.0\r\n\r\n",
                    b"GET  / HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\nNo colon\r\n\r\n",
                    b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
                    b"GET / HTTP/1.1\r\n" + b"X-Many: a\r\n" * 1000 + b"\r\n"):
            got = await http(external, HC_DB, bad)
            assert got["status"] == 400, (bad[:40], got)
        # A client that stops before the blank line gets no answer, at once.
        assert await http(external, HC_DB, b"GET / HTTP/1.1\r\n", "eof") == {"data": ""}
        # Still serving after all that.
        assert summary(await http(external, HC_WEB)) == expected(503, "default", "web", 0)

        # A port another socket holds fails loudly; the others are served; the next sync
        # binds it once it is free.
        await other.sync({HC_SPARE: ("default", "spare", 1)})
        with pytest.raises(HealthCheckError, match=str(HC_SPARE)):
            await hs.sync({HC_WEB: ("default", "web", 1), HC_SPARE: ("default", "spare", 1)})
        assert hs.ports == {HC_WEB}
        assert summary(await http(external, HC_WEB)) == expected(200, "default", "web", 1)
        await other.close()
        await hs.sync({HC_WEB: ("default", "web", 1), HC_SPARE: ("default", "spare", 5)})
        assert summary(await http(external, HC_SPARE)) == expected(200, "default", "spare", 5)

        # Ports no longer wanted stop listening (HC_DB went with the sync before).
        assert await http(external, HC_DB) == {"error": "ECONNREFUSED"}
        assert set(await socket_inodes(node1)) == {HC_WEB, HC_SPARE}

        # A namespace that isn't there: a clear error, nothing served.
        with pytest.raises(HealthCheckError, match="missing"):
            await nowhere.sync({HC_DB: ("default", "db", 1)})
        assert nowhere.ports == frozenset()

        # close() also ends connections being served (this one sent half a request).
        waiting = asyncio.create_task(http(external, HC_WEB, b"GET / HTTP/1.1\r\n"))
        await wait_for("the half request to arrive", lambda: _has_connection(hs))
        await hs.close()
        assert await asyncio.wait_for(waiting, 30) == {"data": ""}
        assert hs.ports == frozenset()
        assert await socket_inodes(node1) == {}
        assert await http(external, HC_WEB) == {"error": "ECONNREFUSED"}
    finally:
        for server in (hs, other, nowhere):
            await server.close()


# -- conntrack --------------------------------------------------------------------------------

UDP_FLOWS = {  # source port -> destination (ip, port) of one datagram sent from node-1
    45001: (EXTERNAL_IP, 40001), 45002: (EXTERNAL_IP, 40001), 45003: (EXTERNAL_IP, 40002),
    45004: (NODE2_IP, 40001),
    45011: (VIP, 40003), 45012: (VIP, 40003), 45013: (VIP, 40003), 45014: (VIP, 40003),
}


async def udp_entries(ns: str) -> set[tuple[int, str, int, str]]:
    """(source port, original destination, destination port, reply source) of the test's UDP
    conntrack entries in ns."""
    _, out, _ = await sh(*netns.exec_argv(ns, ["conntrack", "-L", "-p", "udp"]))
    found = set()
    for line in out.splitlines():
        fields = re.findall(r"(src|dst|sport|dport)=(\S+)", line)
        if len(fields) < 8:
            continue
        orig, reply = dict(fields[:4]), dict(fields[4:8])
        if int(orig["sport"]) in UDP_FLOWS:
            found.add((int(orig["sport"]), orig["dst"], int(orig["dport"]), reply["src"]))
    return found


async def send_udp(ns: str) -> set[tuple[int, str, int, str]]:
    """Send every test flow from ns; the entries they made (all of them, each once)."""
    await tool(ns, "udp", *(f"{sport}:{ip}:{port}" for sport, (ip, port) in UDP_FLOWS.items()))
    entries = await udp_entries(ns)
    assert {e[0] for e in entries} == set(UDP_FLOWS), entries
    return entries


def test_clear_udp_removes_exactly_the_matching_entries(make_lab):
    lab = make_lab(nodes=2)
    asyncio.run(conntrack_scenario(names.node_netns(lab.name, "node-1"),
                                   names.node_netns(lab.name, "node-9")))


async def conntrack_scenario(node1: str, missing: str) -> None:
    table = "ptest" + secrets.token_hex(4)
    # VIP:40003 alternates between the external host and node-2, as a Service with two
    # endpoints would; nothing listens, the entries exist anyway (UNREPLIED).
    script = (f"table ip {table} {{\n chain out {{\n  type nat hook output priority -150;\n"
              f"  ip daddr {VIP} udp dport 40003 dnat to numgen inc mod 2 map "
              f"{{ 0 : {EXTERNAL_IP}, 1 : {NODE2_IP} }}\n }}\n}}\n")
    await netns.arun(netns.exec_argv(node1, ["nft", "-f", "-"]), input=script)
    try:
        entries = await send_udp(node1)
        via = {sport: reply for sport, _, _, reply in entries}
        assert sorted(via[p] for p in (45011, 45012, 45013, 45014)) == sorted(
            [EXTERNAL_IP, EXTERNAL_IP, NODE2_IP, NODE2_IP])
        assert all(reply == dst for _, dst, _, reply in entries if dst != VIP)

        # By destination ip:port: both flows to the external host's 40001 go, nothing else.
        await clear_udp(node1, [(EXTERNAL_IP, 40001, None)])
        assert await udp_entries(node1) == {e for e in entries if e[0] not in (45001, 45002)}

        # By destination and endpoint: only the VIP flows node-2 answers for.
        entries = await send_udp(node1)
        await clear_udp(node1, [(VIP, 40003, NODE2_IP)])
        assert await udp_entries(node1) == {e for e in entries
                                            if not (e[1] == VIP and e[3] == NODE2_IP)}

        # Several at once, duplicates, and flows with nothing to delete: no error.
        entries = await send_udp(node1)
        await clear_udp(node1, [(VIP, 40003, None), (NODE2_IP, 40001, None),
                                (NODE2_IP, 40001, None), (VIP, 40099, None),
                                (EXTERNAL_IP, 40002, NODE2_IP)])
        assert await udp_entries(node1) == {e for e in entries
                                            if e[1] == EXTERNAL_IP}
        await clear_udp(node1, [])

        # Bad input is refused before anything runs; a missing namespace is an error.
        for bad in [("-F", 53, None), (VIP, 0, None), (VIP, 70000, None), (VIP, 53, "x"),
                    (VIP, 53, "fd00::1")]:
            with pytest.raises(ValueError):
                await clear_udp(node1, [bad])
        with pytest.raises(ConntrackError, match="40001"):
            await clear_udp(missing, [(EXTERNAL_IP, 40001, None)])
        assert {e[1] for e in await udp_entries(node1)} == {EXTERNAL_IP}
    finally:
        await netns.arun(netns.exec_argv(node1, ["nft", "delete", "table", "ip", table]),
                         check=False)
        await clear_udp(node1, {(ip, port, None) for ip, port in UDP_FLOWS.values()})
