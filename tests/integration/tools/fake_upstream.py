"""A fake upstream resolver for the cluster DNS tests, built on podnet.dns.wire. It runs inside
a test's own network namespace: nothing is ever sent outside the machine.

    python fake_upstream.py --listen 10.53.0.2 [--listen ...] [--silent 10.53.0.3] \\
        [--port 53] [--log FILE]

It answers UDP and TCP from the table below (authoritative for example.com and example.org),
NXDOMAIN with the zone's SOA for other names in those zones, NXDOMAIN with the root's SOA for
anything else. Over UDP, answers that do not fit come back truncated (TC), as a real server's
would. `--silent` addresses receive and never answer (a dead upstream, for timeouts). Every
query received is logged as one line `proto name type` to --log, flushed at once.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
from typing import Any

from podnet.dns import model
from podnet.dns.model import Answer, Question, Record, Soa
from podnet.dns.wire import (
    TCP_MAX,
    WireError,
    encode_error,
    encode_response,
    parse_query,
)

TTL = 300
ZONES = {
    "example.com": Soa("ns.example.com", "admin.example.com", 1, 7200, 900, 86400, 30),
    "example.org": Soa("ns.example.org", "admin.example.org", 1, 7200, 900, 86400, 30),
    "": Soa("a.root-servers.net", "nstld.verisign-grs.com", 1, 1800, 900, 604800, 60),
}
SOA_TTL = 60


def _table() -> dict[tuple[str, int], list[tuple[int, Any]]]:
    t: dict[tuple[str, int], list[tuple[int, Any]]] = {
        ("www.example.com", model.A): [(TTL, "192.0.2.10")],
        ("www.example.com", model.AAAA): [(TTL, "2001:db8::10")],
        ("www.example.org", model.A): [(TTL, "192.0.2.20")],
        ("short.example.com", model.A): [(2, "192.0.2.30")],
        ("alias.example.com", model.CNAME): [(TTL, "www.example.com")],
        ("big.example.com", model.A): [(TTL, f"192.0.2.{i}") for i in range(1, 121)],
        ("txt.example.com", model.TXT): [(TTL, ("fake upstream",))],
    }
    return t


TABLE = _table()


def zone_of(name: str) -> str:
    for zone in ZONES:
        if zone and (name == zone or name.endswith("." + zone)):
            return zone
    return ""


def resolve(q: Question) -> Answer:
    key = q.name.lower()
    records: list[Record] = []
    name = q.name
    # one CNAME hop, as a recursive resolver would give the chain
    cname = TABLE.get((key, model.CNAME))
    if cname and q.qtype != model.CNAME:
        target = str(cname[0][1])
        records.append(Record(name, model.CNAME, cname[0][0], target))
        key = name = target
    found = TABLE.get((key, q.qtype))
    if found:
        records += [Record(name, q.qtype, ttl, rdata) for ttl, rdata in found]
        return Answer(answer=tuple(records))
    zone = zone_of(key)
    soa = Record(zone, model.SOA, SOA_TTL, ZONES[zone])
    exists = any(k == key for k, _ in TABLE) or key == zone
    rcode = model.NOERROR if exists else model.NXDOMAIN
    return Answer(rcode=rcode, answer=tuple(records), authority=(soa,))


class Server:
    def __init__(self, log_path: str | None) -> None:
        self.log = open(log_path, "a", buffering=1) if log_path else None  # noqa: SIM115

    def respond(self, data: bytes, proto: str) -> bytes | None:
        try:
            query = parse_query(data)
        except WireError as e:
            return encode_error(e.query if e.query is not None else data, e.rcode)
        q = query.question
        if self.log is not None:
            self.log.write(f"{proto} {q.name} {q.qtype}\n")
        return encode_response(query, resolve(q), max_size=TCP_MAX if proto == "tcp" else None)


class Udp(asyncio.DatagramProtocol):
    def __init__(self, server: Server, silent: bool) -> None:
        self.server = server
        self.silent = silent
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.silent:
            return
        out = self.server.respond(data, "udp")
        if out is not None:
            self.transport.sendto(out, addr)


async def tcp_client(server: Server, silent: bool, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            size = int.from_bytes(await reader.readexactly(2), "big")
            data = await reader.readexactly(size)
            if silent:
                continue
            out = server.respond(data, "tcp")
            if out is not None:
                writer.write(len(out).to_bytes(2, "big") + out)
                await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(args: argparse.Namespace) -> None:
    server = Server(args.log)
    loop = asyncio.get_running_loop()
    for addr, silent in [(a, False) for a in args.listen] + [(a, True) for a in args.silent]:
        await loop.create_datagram_endpoint(functools.partial(Udp, server, silent),
                                            local_addr=(addr, args.port))
        await asyncio.start_server(functools.partial(tcp_client, server, silent),
                                   addr, args.port, reuse_address=True)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--listen", action="append", default=[])
    p.add_argument("--silent", action="append", default=[])
    p.add_argument("--port", type=int, default=53)
    p.add_argument("--log", default=None)
    try:
        asyncio.run(main(p.parse_args()))
    except KeyboardInterrupt:
        sys.exit(0)
