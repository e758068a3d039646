"""The cluster DNS server: UDP and TCP on one address, the cluster index kept in step with the
API, forwarding for the rest, and the health, ready and metrics endpoints.

    query bytes --> fast path: bytes after the ID -> cached response (ID patched), or
                    parse_query -> answer(question, index) -> encode_response -> cache
                                        \\-> Answer.forward: Forwarder.resolve, then encode

    Reflectors (Services, EndpointSlices, Pods, Namespaces) -> handlers mark what changed
        -> the sync loop (bursts coalesced for COALESCE seconds) applies it to the index,
           bumps the SOA serial and clears the response cache

The response cache is looked up first by the whole query after its ID and the transport: no
parsing at all. Two queries with the same bytes always get the same response, so that key is
safe; it is finer than wire.py's question + RD + CD + EDNS presence + DO + UDP limit, which is
the second key, tried after parsing (queries that differ only in an EDNS cookie or the AD bit
share an entry, and their raw bytes are added as an alias). It holds cluster answers until the
index changes, forwarded ones for at most FORWARDED_FOR seconds (so their TTLs go out almost
exactly counted down), never SERVFAIL or the errors of unparseable packets.

Nothing raises out of the receive path: a packet gets an answer (FORMERR, NOTIMP, REFUSED,
SERVFAIL per wire.py and answer.py) or is dropped (no header, QR set).

A cache hit leaves no object behind (what it allocates is freed before the next packet), so
serving from the cache never sets off the cyclic collector; once the first index is built,
everything then alive is frozen out of its reach (podnet.daemon.settle_heap), so that the
collections later changes set off stay short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from podnet import daemon
from podnet.dns.answer import answer, zone_of
from podnet.dns.forward import Forwarder
from podnet.dns.index import (
    LABEL_SERVICE_NAME,
    ClusterIndex,
    DnsConfig,
    build_index,
    set_namespaces,
    set_pods,
    update_service,
)
from podnet.dns.metrics import Metrics
from podnet.dns.model import SERVFAIL, Answer, Record
from podnet.dns.wire import (
    CD,
    RD,
    TCP_MAX,
    Query,
    WireError,
    encode_error,
    encode_response,
    parse_query,
    udp_limit,
)

log = logging.getLogger("podnet.dns")

COALESCE = 0.003  # seconds to gather a burst of API events into one index change
CACHE_SIZE = 50000  # entries per transport
MAX_CACHED_QUERY = 512  # longer queries are answered but not cached
FORWARDED_FOR = 1.0  # seconds a forwarded response stays in the response cache
TCP_IDLE = 10.0
TCP_MAX_CONNECTIONS = 1000
Obj = dict[str, Any]
Key = tuple[str, str]


def _meta(obj: Obj) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _key(obj: Obj) -> Key:
    meta = _meta(obj)
    return str(meta.get("namespace") or "").lower(), str(meta.get("name") or "").lower()


def _slice_owner(obj: Obj) -> Key | None:
    meta = _meta(obj)
    labels = meta.get("labels")
    svc = labels.get(LABEL_SERVICE_NAME) if isinstance(labels, dict) else None
    ns = meta.get("namespace")
    if isinstance(svc, str) and svc and isinstance(ns, str) and ns:
        return ns.lower(), svc.lower()
    return None


@dataclass
class ClusterObjects:
    """The API objects the index is made from, as the watch handlers keep them, and what
    changed since the sync loop last looked."""

    services: dict[Key, Obj] = field(default_factory=dict)
    slices: dict[Key, dict[str, Obj]] = field(default_factory=dict)  # service -> uid -> slice
    slice_owner: dict[str, Key] = field(default_factory=dict)  # slice uid -> service
    pods: dict[str, Obj] = field(default_factory=dict)
    namespaces: dict[str, str] = field(default_factory=dict)  # uid -> name
    dirty: set[Key] = field(default_factory=set)
    namespaces_dirty: bool = False
    pods_dirty: bool = False
    first_change: float | None = None  # monotonic time of the oldest unapplied event
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def _mark(self) -> None:
        if self.first_change is None:
            self.first_change = time.monotonic()
        self.changed.set()

    def on_service(self, kind: str, obj: Obj) -> None:
        key = _key(obj)
        uid = _meta(obj).get("uid")
        if kind == "DELETED":
            current = self.services.get(key)
            if current is None or _meta(current).get("uid") != uid:
                return
            del self.services[key]
        else:
            self.services[key] = obj
        self.dirty.add(key)
        self._mark()

    def on_slice(self, kind: str, obj: Obj) -> None:
        uid = str(_meta(obj).get("uid") or "")
        old = self.slice_owner.pop(uid, None)
        if old is not None:
            group = self.slices.get(old)
            if group is not None:
                group.pop(uid, None)
                if not group:
                    del self.slices[old]
            self.dirty.add(old)
        new = None if kind == "DELETED" else _slice_owner(obj)
        if new is not None:
            self.slices.setdefault(new, {})[uid] = obj
            self.slice_owner[uid] = new
            self.dirty.add(new)
        self._mark()

    def on_pod(self, kind: str, obj: Obj) -> None:
        uid = str(_meta(obj).get("uid") or "")
        if kind == "DELETED":
            self.pods.pop(uid, None)
        else:
            self.pods[uid] = obj
        self.pods_dirty = True
        self._mark()

    def on_namespace(self, kind: str, obj: Obj) -> None:
        meta = _meta(obj)
        uid = str(meta.get("uid") or "")
        name = meta.get("name")
        if kind == "DELETED":
            if self.namespaces.pop(uid, None) is None:
                return
        elif isinstance(name, str):
            if self.namespaces.get(uid) == name:
                return
            self.namespaces[uid] = name
        self.namespaces_dirty = True
        self._mark()


class ResponseCache:
    """Responses as bytes after the ID. Each entry is [response tail, expiry (None: until
    cleared), hits, qtype, rcode]; hits are folded into the metrics when entries go.

    Two maps share the entries: `entries` by the raw query after its ID (the fast path, no
    parsing), and `by_question` by what the response depends on (wire.py: the question's
    bytes, RD, CD, EDNS presence, DO, the UDP limit), for queries whose bytes vary in what
    does not matter (an EDNS cookie, the AD bit): they are parsed, then served from here."""

    def __init__(self, proto: str, metrics: Metrics, size: int = CACHE_SIZE) -> None:
        self.proto = proto
        self.metrics = metrics
        self.size = size
        # OrderedDicts: the oldest entry goes in O(1) (next(iter(dict)) is slow after many
        # deletions at the front of a plain dict); lookups cost the same as a dict's.
        self.entries: OrderedDict[bytes, list[Any]] = OrderedDict()
        self.by_question: OrderedDict[tuple[bytes, int, int], list[Any]] = OrderedDict()

    @staticmethod
    def question_key(query: Query) -> tuple[bytes, int, int]:
        edns = query.edns
        if edns is None:
            return query.question_wire, query.flags & (RD | CD), 0
        return query.question_wire, query.flags & (RD | CD), udp_limit(query) << 1 | edns.do

    def lookup(self, query: Query) -> list[Any] | None:
        entry = self.by_question.get(self.question_key(query))
        if entry is None or (entry[1] is not None and entry[1] <= time.monotonic()):
            return None
        return entry

    def put(self, key: bytes, query: Query, response: bytes, expiry: float | None,
            rcode: int) -> None:
        entry = [response[2:], expiry, 0, query.question.qtype, rcode]
        self.alias(key, entry)
        qkey = self.question_key(query)
        by_question = self.by_question
        if qkey not in by_question and len(by_question) >= self.size:
            by_question.popitem(last=False)
        by_question[qkey] = entry

    def alias(self, key: bytes, entry: list[Any]) -> None:
        entries = self.entries
        old = entries.pop(key, None)
        if old is not None:
            self._fold(old)
        elif len(entries) >= self.size:
            self._fold(entries.popitem(last=False)[1])
        entries[key] = entry

    def _fold(self, entry: list[Any]) -> None:
        self.metrics.fold_hits(self.proto, entry[3], entry[4], entry[2])
        entry[2] = 0

    def fold_all(self) -> None:
        for entry in self.entries.values():
            if entry[2]:
                self._fold(entry)

    def clear(self) -> None:
        self.fold_all()
        self.entries.clear()
        self.by_question.clear()


class DnsServer:
    def __init__(self, config: DnsConfig, forwarder: Forwarder | None, metrics: Metrics, *,
                 cache_size: int = CACHE_SIZE) -> None:
        self.config = config
        self.forwarder = forwarder
        self.metrics = metrics
        self.index: ClusterIndex = build_index([], [], [], [], config)
        self.ready = False
        self.objects = ClusterObjects()
        self.udp_cache = ResponseCache("udp", metrics, cache_size)
        self.tcp_cache = ResponseCache("tcp", metrics, cache_size)
        self.generation = 0  # bumped on every index change
        self.tasks: set[asyncio.Task[Any]] = set()
        self.tcp_connections = 0

    # -- the index ------------------------------------------------------------------------------

    def rebuild(self) -> None:
        """The index from all objects (at start, once everything is listed)."""
        o = self.objects
        slices = [s for group in o.slices.values() for s in group.values()]
        self.index = build_index(list(o.services.values()), slices, list(o.pods.values()),
                                 [{"metadata": {"name": n}} for n in o.namespaces.values()],
                                 self.config, serial=self._next_serial())
        o.dirty.clear()
        o.namespaces_dirty = o.pods_dirty = False
        self._changed()

    def apply(self) -> int:
        """Apply what changed since the last call; returns how many Services were updated."""
        o = self.objects
        index = self.index
        dirty, o.dirty = o.dirty, set()
        for ns, name in dirty:
            update_service(index, ns, name, o.services.get((ns, name)),
                           list(o.slices.get((ns, name), {}).values()))
        if o.namespaces_dirty:
            set_namespaces(index, o.namespaces.values())
        if o.pods_dirty:
            set_pods(index, o.pods.values())
        changed = bool(dirty) or o.namespaces_dirty or o.pods_dirty
        o.namespaces_dirty = o.pods_dirty = False
        if changed:
            index.serial = self._next_serial()
            self._changed()
        return len(dirty)

    def _next_serial(self) -> int:
        return max(self.index.serial + 1 if self.ready else 1, int(time.time()))

    def _changed(self) -> None:
        self.generation += 1
        self.udp_cache.clear()
        self.tcp_cache.clear()

    async def sync(self, synced: Iterable[asyncio.Event]) -> None:
        """Build the index once every reflector has listed, then follow the changes."""
        await asyncio.gather(*(e.wait() for e in synced))
        o = self.objects
        o.changed.clear()
        self.rebuild()
        daemon.settle_heap(collect=True)  # the listed objects and the index live on
        o.first_change = None
        self.ready = True
        self.metrics.ready = True
        self.metrics.serial = self.index.serial
        log.info("ready: %d Services, %d namespaces, serial %d", len(o.services),
                 len(o.namespaces), self.index.serial)
        while True:
            await o.changed.wait()
            await asyncio.sleep(COALESCE)
            o.changed.clear()
            first = o.first_change
            o.first_change = None
            try:
                self.apply()
            except Exception:  # a bug must not stop the zone from following the API
                log.exception("applying a change failed; rebuilding the index")
                self.rebuild()
            if first is not None:
                latency = time.monotonic() - first
                self.metrics.programmed(latency, self.index.serial)
                log.debug("index changed (serial %d) in %.1f ms", self.index.serial,
                          latency * 1000)

    # -- answering ------------------------------------------------------------------------------

    def _decide(self, query: Query) -> Answer:
        """The answer before any forwarding (SERVFAIL for the zone until ready; probes are
        counted)."""
        q = query.question
        fwd = self.forwarder
        if fwd is not None and fwd.probes and q.qtype == 13:
            key = q.name.lower()
            if key in fwd.probes and fwd.probe_arrived(key):
                return Answer(rcode=SERVFAIL, authoritative=False)
        if not self.ready and zone_of(q.name.lower().rstrip("."), self.index) is not None:
            return Answer(rcode=SERVFAIL, authoritative=False, notes=("not ready",))
        return answer(q, self.index)

    async def _complete(self, query: Query, ans: Answer) -> Answer:
        """`ans` with its Answer.forward resolved upstream."""
        target = ans.forward
        assert target is not None
        fwd = self.forwarder
        res = None
        if fwd is not None:
            res = await fwd.resolve(target, query.question.qtype, query.question.qclass,
                                    do=query.edns is not None and query.edns.do, cd=query.cd)
        if res is None:
            return Answer(rcode=SERVFAIL, answer=ans.answer, authoritative=False)
        low = target.lower()
        records = tuple(Record(target, r.rtype, r.ttl, r.rdata, r.rclass)
                        if r.name.lower() == low and r.name != target else r for r in res.answer)
        return Answer(rcode=res.rcode, answer=(*ans.answer, *records), authority=res.authority,
                      additional=res.additional, authoritative=bool(ans.answer))

    def _encode(self, query: Query, ans: Answer, max_size: int | None) -> bytes:
        try:
            return encode_response(query, ans, max_size=max_size)
        except WireError as e:
            log.warning("cannot encode the answer to %s: %s", query.question, e.msg)
            out = encode_error(query, SERVFAIL)
            assert out is not None
            return out

    def _store(self, cache: ResponseCache, data: bytes, query: Query, ans: Answer,
               wire: bytes, forwarded: bool) -> None:
        if ans.rcode == SERVFAIL or len(data) > MAX_CACHED_QUERY:
            return
        expiry = None
        if forwarded:
            ttl = min((r.ttl for r in (*ans.answer, *ans.authority, *ans.additional)),
                      default=0)
            if ttl <= 0:
                return
            expiry = time.monotonic() + min(FORWARDED_FOR, ttl)
        cache.put(data[2:], query, wire, expiry, ans.rcode)

    def _parse(self, data: bytes, proto: str) -> Query | bytes | None:
        """The query, or the error response to send, or None to drop."""
        try:
            query = parse_query(data)
        except WireError as e:
            out = (encode_error(e.query, e.rcode) if e.query is not None
                   else encode_error(data, e.rcode))
            if out is None:
                self.metrics.drop("not a query")
            else:
                self.metrics.response(proto, e.rcode)
            return out
        return query

    def handle_udp(self, data: bytes, addr: Any, transport: asyncio.DatagramTransport) -> None:
        """A UDP query that missed the fast path (never raises)."""
        try:
            started = time.perf_counter()
            parsed = self._parse(data, "udp")
            if not isinstance(parsed, Query):
                if parsed is not None:
                    transport.sendto(parsed, addr)
                return
            entry = self.udp_cache.lookup(parsed) if len(data) <= MAX_CACHED_QUERY else None
            if entry is not None:
                self.udp_cache.alias(data[2:], entry)
                entry[2] += 1
                transport.sendto(data[:2] + entry[0], addr)
                return
            self.metrics.request("udp", parsed.question.qtype)
            self.metrics.miss("response")
            ans = self._decide(parsed)
            if ans.forward is not None:
                self._spawn(self._udp_forward(data, parsed, ans, addr, transport, started))
                return
            wire = self._encode(parsed, ans, None)
            self._store(self.udp_cache, data, parsed, ans, wire, False)
            transport.sendto(wire, addr)
            self._done("udp", wire, started)
        except Exception:
            log.exception("answering a UDP query failed")
            self.metrics.drop("error")

    async def _udp_forward(self, data: bytes, query: Query, ans: Answer, addr: Any,
                           transport: asyncio.DatagramTransport, started: float) -> None:
        generation = self.generation
        full = await self._complete(query, ans)
        wire = self._encode(query, full, None)
        if generation == self.generation:
            self._store(self.udp_cache, data, query, full, wire, True)
        if not transport.is_closing():
            transport.sendto(wire, addr)
        self._done("udp", wire, started)

    def _done(self, proto: str, wire: bytes, started: float) -> None:
        self.metrics.response(proto, wire[3] & 0xF)
        self.metrics.duration(proto, time.perf_counter() - started)

    async def handle_tcp_query(self, data: bytes) -> bytes | None:
        """The response to one query read from a TCP connection, or None to send nothing."""
        entry = self.tcp_cache.entries.get(data[2:])
        if entry is not None and (entry[1] is None or entry[1] > time.monotonic()):
            entry[2] += 1
            tail: bytes = entry[0]
            return data[:2] + tail
        started = time.perf_counter()
        parsed = self._parse(data, "tcp")
        if not isinstance(parsed, Query):
            return parsed
        entry = self.tcp_cache.lookup(parsed) if len(data) <= MAX_CACHED_QUERY else None
        if entry is not None:
            self.tcp_cache.alias(data[2:], entry)
            entry[2] += 1
            cached: bytes = entry[0]
            return data[:2] + cached
        self.metrics.request("tcp", parsed.question.qtype)
        self.metrics.miss("response")
        ans = self._decide(parsed)
        forwarded = ans.forward is not None
        generation = self.generation
        if forwarded:
            ans = await self._complete(parsed, ans)
        wire = self._encode(parsed, ans, TCP_MAX)
        if generation == self.generation:
            self._store(self.tcp_cache, data, parsed, ans, wire, forwarded)
        self._done("tcp", wire, started)
        return wire

    async def tcp_client(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        if self.tcp_connections >= TCP_MAX_CONNECTIONS:
            writer.close()
            return
        self.tcp_connections += 1
        try:
            while True:
                async with asyncio.timeout(TCP_IDLE):
                    size = int.from_bytes(await reader.readexactly(2), "big")
                    data = await reader.readexactly(size)
                try:
                    out = await self.handle_tcp_query(data)
                except Exception:
                    log.exception("answering a TCP query failed")
                    self.metrics.drop("error")
                    out = None
                if out is not None:
                    writer.write(len(out).to_bytes(2, "big") + out)
                    await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self.tcp_connections -= 1
            writer.close()

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a forwarded query failed: %r", task.exception())
            self.metrics.drop("error")

    # -- HTTP: health, ready, metrics --------------------------------------------------------------

    def http_routes(self) -> dict[str, Callable[[], tuple[int, str]]]:
        def health() -> tuple[int, str]:
            return 200, "OK"

        def ready() -> tuple[int, str]:
            return (200, "OK") if self.ready else (503, "not ready: listing the cluster")

        def metrics() -> tuple[int, str]:
            self.udp_cache.fold_all()
            self.tcp_cache.fold_all()
            self.metrics.cache_entries["response"] = (len(self.udp_cache.entries)
                                                      + len(self.tcp_cache.entries))
            if self.forwarder is not None:
                self.metrics.cache_entries["forward"] = len(self.forwarder.cache)
            return 200, self.metrics.render()

        return {"/health": health, "/ready": ready, "/metrics": metrics}


class UdpProtocol(asyncio.DatagramProtocol):
    """The fast path: a cached response goes out from here, with the query's ID."""

    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.entries = server.udp_cache.entries
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def datagram_received(self, data: bytes, addr: Any) -> None:
        entry = self.entries.get(data[2:])
        if entry is not None and (entry[1] is None or entry[1] > time.monotonic()):
            entry[2] += 1
            self.transport.sendto(data[:2] + entry[0], addr)  # type: ignore[union-attr]
            return
        self.server.handle_udp(data, addr, self.transport)  # type: ignore[arg-type]

    def error_received(self, exc: Exception) -> None:
        self.server.metrics.drop("send error")


# --- the HTTP endpoints ----------------------------------------------------------------------

async def _http_client(routes: dict[str, Callable[[], tuple[int, str]]],
                       reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        async with asyncio.timeout(5):
            line = await reader.readline()
            while (await reader.readline()).strip():
                pass
        parts = line.decode("latin-1").split()
        path = parts[1].split("?", 1)[0] if len(parts) >= 2 else ""
        route = routes.get(path)
        status, body = route() if route is not None else (404, "not found")
        if len(parts) >= 1 and parts[0] not in ("GET", "HEAD"):
            status, body = 405, "method not allowed"
        raw = body.encode()
        reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed",
                  503: "Service Unavailable"}.get(status, "")
        ctype = ("text/plain; version=0.0.4; charset=utf-8" if path == "/metrics"
                 else "text/plain; charset=utf-8")
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(raw)}\r\nConnection: close\r\n\r\n").encode()
        writer.write(head + (b"" if parts and parts[0] == "HEAD" else raw))
        await writer.drain()
    except (TimeoutError, ConnectionError, OSError, ValueError):
        pass
    except Exception:
        log.exception("HTTP endpoint failed")
    finally:
        writer.close()


async def serve_http(host: str, port: int,
                     routes: dict[str, Callable[[], tuple[int, str]]]) -> asyncio.Server:
    return await asyncio.start_server(lambda r, w: _http_client(routes, r, w), host, port,
                                      reuse_address=True)


# --- listeners ---------------------------------------------------------------------------------

def udp_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


async def listen(server: DnsServer, host: str, port: int) -> list[Any]:
    """UDP and TCP listeners; returns what to close."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: UdpProtocol(server),
                                                       sock=udp_socket(host, port))
    tcp = await asyncio.start_server(server.tcp_client, host, port, reuse_address=True,
                                     backlog=1024)
    return [transport, tcp]
