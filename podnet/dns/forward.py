"""Forwarding names outside the cluster zone to upstream resolvers, with a cache by TTL and
CoreDNS-style loop detection.

  Forwarder.resolve(name, qtype, ...)   UDP to one upstream, the next one on timeout or error,
                                        TCP to the same one when the answer came back truncated;
                                        None when every upstream failed (the server answers
                                        SERVFAIL). Identical questions in flight share one
                                        upstream query. Answers are cached (ForwardCache).
  Forwarder.start_probes()              the loop check: each upstream is asked
                                        `<random>.<random>.` HINFO; if that name reaches this
                                        server 3 times (probe_arrived), the queries go round in a
                                        loop through that upstream: forwarding stops for good
                                        and the error names the upstream.

The pure parts (no I/O) come first: the query encoder, the cache and its TTL rules (RFC 2308:
a negative answer lives min(SOA TTL, SOA minimum); without an SOA it is not cached), and the
parsing of upstream addresses and resolv.conf.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from podnet.dns.metrics import Metrics
from podnet.dns.model import IN, NOERROR, NXDOMAIN, OPT, SOA, Record, Soa
from podnet.dns.wire import EDNS_PAYLOAD, Response, WireError, parse_response

log = logging.getLogger("podnet.dns.forward")

HINFO = 13
PROBE_ARRIVALS = 3  # a probe seen this many times means a loop (CoreDNS: more than twice)
MAX_TTL = 3600
CACHE_SIZE = 10000
Upstream = tuple[str, int]

_HEADER = struct.Struct(">HHHHHH")
_RD, _CD = 0x0100, 0x0010


# --- pure helpers ------------------------------------------------------------------------------

def name_wire(name: str) -> bytes:
    """A presentation-form name (no final dot needed; `\\DDD` and `\\X` escapes read) in
    uncompressed wire form. ValueError if a label or the name is too long."""
    labels: list[bytes] = []
    cur = bytearray()
    i, n = 0, len(name)
    while i < n:
        c = name[i]
        if c == "\\" and i + 1 < n:
            digits = name[i + 1:i + 4]
            if len(digits) == 3 and digits.isdigit():
                cur.append(int(digits))
                i += 4
                continue
            cur += name[i + 1].encode("latin-1")
            i += 2
            continue
        if c == ".":
            if not cur:
                raise ValueError(f"empty label in {name!r}")
            labels.append(bytes(cur))
            cur = bytearray()
        else:
            cur += c.encode("latin-1")
        i += 1
    if cur:
        labels.append(bytes(cur))
    out = bytearray()
    for label in labels:
        if len(label) > 63:
            raise ValueError(f"label longer than 63 octets in {name!r}")
        out.append(len(label))
        out += label
    out.append(0)
    if len(out) > 255:
        raise ValueError(f"name longer than 255 octets: {name!r}")
    return bytes(out)


def encode_query(qid: int, name: str, qtype: int, qclass: int = IN, *, do: bool = False,
                 cd: bool = False) -> bytes:
    """A recursive query (RD set) with an EDNS0 OPT (payload 1232, DO as given)."""
    flags = _RD | (_CD if cd else 0)
    opt = struct.pack(">BHHIH", 0, OPT, EDNS_PAYLOAD, 0x8000 if do else 0, 0)
    return (_HEADER.pack(qid, flags, 1, 0, 0, 1) + name_wire(name)
            + struct.pack(">HH", qtype, qclass) + opt)


@dataclass(frozen=True)
class Resolved:
    """An upstream's answer, ready to send on: the OPT is not in `additional`."""

    rcode: int
    answer: tuple[Record, ...] = ()
    authority: tuple[Record, ...] = ()
    additional: tuple[Record, ...] = ()

    def min_ttl(self) -> int:
        records = (*self.answer, *self.authority, *self.additional)
        return min((r.ttl for r in records), default=0)


def cache_ttl(res: Resolved, max_ttl: int = MAX_TTL) -> int | None:
    """How long an upstream answer may be cached, or None: positive answers for the smallest
    TTL in the answer section; NXDOMAIN and NODATA for min(SOA TTL, SOA minimum) of the SOA in
    authority (RFC 2308 5), not at all without one; other rcodes not at all. At most
    `max_ttl`; a TTL of 0 means no caching."""
    if res.rcode == NOERROR and res.answer:
        ttl = min(r.ttl for r in res.answer)
    elif res.rcode in (NOERROR, NXDOMAIN):
        soas = [r for r in res.authority if r.rtype == SOA and isinstance(r.rdata, Soa)]
        if not soas:
            return None
        soa = soas[0]
        assert isinstance(soa.rdata, Soa)
        ttl = min(soa.ttl, soa.rdata.minimum)
    else:
        return None
    ttl = min(ttl, max_ttl)
    return ttl if ttl > 0 else None


def _aged(records: tuple[Record, ...], elapsed: int) -> tuple[Record, ...]:
    if elapsed <= 0:
        return records
    return tuple(Record(r.name, r.rtype, max(0, r.ttl - elapsed), r.rdata, r.rclass)
                 for r in records)


CacheKey = tuple[str, int, int, bool, bool]  # lower-cased name, type, class, DO, CD


class ForwardCache:
    """Upstream answers by question, until their TTL runs out; the oldest entry goes when
    full. TTLs come out counted down by the time spent in the cache. `now` is passed in."""

    def __init__(self, size: int = CACHE_SIZE, max_ttl: int = MAX_TTL) -> None:
        self.size = size
        self.max_ttl = max_ttl
        self.entries: OrderedDict[CacheKey, tuple[float, float, Resolved]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: CacheKey, now: float) -> Resolved | None:
        entry = self.entries.get(key)
        if entry is None:
            return None
        expires, stored, res = entry
        if now >= expires:
            del self.entries[key]
            return None
        elapsed = int(now - stored)
        return Resolved(res.rcode, _aged(res.answer, elapsed), _aged(res.authority, elapsed),
                        _aged(res.additional, elapsed))

    def put(self, key: CacheKey, res: Resolved, now: float) -> bool:
        ttl = cache_ttl(res, self.max_ttl)
        if ttl is None:
            return False
        self.entries.pop(key, None)
        while len(self.entries) >= self.size:
            self.entries.popitem(last=False)
        self.entries[key] = (now + ttl, now, res)
        return True

    def clear(self) -> None:
        self.entries.clear()


def parse_upstream(text: str, default_port: int = 53) -> Upstream:
    """`IP`, `IP:PORT`, `[IPv6]:PORT` or a bare IPv6 address -> (ip, port). ValueError else."""
    text = text.strip()
    host, port = text, default_port
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"bad upstream {text!r}")
        if rest:
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        port = int(p)
    host = host.split("%", 1)[0]
    ipaddress.ip_address(host)
    if not 0 < port < 65536:
        raise ValueError(f"bad port in {text!r}")
    return host, port


def resolv_conf_nameservers(text: str) -> list[str]:
    """The `nameserver` addresses of a resolv.conf, in order, skipping unparseable ones."""
    out: list[str] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            addr = parts[1].split("%", 1)[0]
            try:
                ipaddress.ip_address(addr)
            except ValueError:
                continue
            out.append(addr)
    return out


def upstream_text(up: Upstream) -> str:
    host, port = up
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --- I/O -------------------------------------------------------------------------------------

class _OneShot(asyncio.DatagramProtocol):
    def __init__(self, fut: asyncio.Future[bytes], qid: int) -> None:
        self.fut = fut
        self.qid = qid

    def datagram_received(self, data: bytes, addr: object) -> None:
        if len(data) >= 2 and data[0] << 8 | data[1] == self.qid and not self.fut.done():
            self.fut.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.fut.done():
            self.fut.set_exception(exc)


class UpstreamError(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass
class _Probe:
    upstream: Upstream
    arrivals: int = 0
    answered: bool = False


class Forwarder:
    def __init__(self, upstreams: list[Upstream], metrics: Metrics, *, timeout: float = 1.5,
                 cache_size: int = CACHE_SIZE, max_ttl: int = MAX_TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.upstreams = list(upstreams)
        self.metrics = metrics
        self.timeout = timeout
        self.cache = ForwardCache(cache_size, max_ttl)
        self.clock = clock
        self.enabled = bool(upstreams)
        self.loop_upstream: Upstream | None = None
        self.probes: dict[str, _Probe] = {}
        self._inflight: dict[CacheKey, asyncio.Future[Resolved | None]] = {}
        self._next = 0
        self._tasks: set[asyncio.Task[None]] = set()

    # -- resolving ------------------------------------------------------------------------------

    async def resolve(self, name: str, qtype: int, qclass: int = IN, *, do: bool = False,
                      cd: bool = False) -> Resolved | None:
        """The upstreams' answer for a question (cached, shared while in flight), or None."""
        if not self.enabled:
            return None
        key: CacheKey = (name.lower(), qtype, qclass, do, cd)
        probe = self.probes.get(key[0]) if qtype == HINFO else None
        if probe is not None:  # a probe goes round a loop: never cached, never shared
            return await self._exchange(key, [probe.upstream])
        cached = self.cache.get(key, self.clock())
        if cached is not None:
            self.metrics.hit("forward")
            return cached
        self.metrics.miss("forward")
        fut = self._inflight.get(key)
        if fut is not None:
            return await asyncio.shield(fut)
        fut = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            order = self.upstreams[self._next:] + self.upstreams[:self._next]
            res = await self._exchange(key, order)
            if res is not None:
                self.cache.put(key, res, self.clock())
                self.metrics.cache_entries["forward"] = len(self.cache)
            fut.set_result(res)
            return res
        except BaseException:
            fut.set_result(None)
            raise
        finally:
            del self._inflight[key]

    async def _exchange(self, key: CacheKey, order: list[Upstream]) -> Resolved | None:
        last: Resolved | None = None
        for up in order:
            if not self.enabled:
                return None
            try:
                res = await self._ask(up, key)
            except UpstreamError as e:
                self.metrics.forward_failed(upstream_text(up), e.reason)
                log.debug("upstream %s: %s for %s", upstream_text(up), e, key[0])
                self._rotate(up)
                continue
            if res.rcode in (NOERROR, NXDOMAIN):
                return res
            self.metrics.forward_failed(upstream_text(up), "rcode")
            last = res
        return last if last is not None and last.rcode not in (1, 2, 5) else None

    def _rotate(self, failed: Upstream) -> None:
        """Start with the next upstream after one that failed."""
        if failed in self.upstreams and len(self.upstreams) > 1:
            self._next = (self.upstreams.index(failed) + 1) % len(self.upstreams)

    async def _ask(self, up: Upstream, key: CacheKey) -> Resolved:
        name, qtype, qclass, do, cd = key
        qid = secrets.randbits(16)
        try:
            packet = encode_query(qid, name, qtype, qclass, do=do, cd=cd)
        except ValueError as e:
            raise UpstreamError("name", str(e)) from e
        self.metrics.forwarded(upstream_text(up))
        data = await self._udp(up, packet, qid)
        resp = self._check(data, qid, key)
        if resp.tc:
            data = await self._tcp(up, packet)
            resp = self._check(data, qid, key)
        extra = tuple(r for r in resp.additional if r.rtype != OPT)
        return Resolved(resp.rcode, resp.answer, resp.authority, extra)

    @staticmethod
    def _check(data: bytes, qid: int, key: CacheKey) -> Response:
        try:
            resp = parse_response(data)
        except WireError as e:
            raise UpstreamError("malformed", e.msg) from e
        if resp.id != qid:
            raise UpstreamError("malformed", "id mismatch")
        q = resp.questions[0] if len(resp.questions) == 1 else None
        if q is None or q.name.lower() != key[0] or q.qtype != key[1] or q.qclass != key[2]:
            raise UpstreamError("malformed", "question mismatch")
        return resp

    async def _udp(self, up: Upstream, packet: bytes, qid: int) -> bytes:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bytes] = loop.create_future()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _OneShot(fut, qid), remote_addr=up)
        except OSError as e:
            raise UpstreamError("error", str(e)) from e
        try:
            transport.sendto(packet)
            return await asyncio.wait_for(fut, self.timeout)
        except TimeoutError as e:
            raise UpstreamError("timeout") from e
        except OSError as e:
            raise UpstreamError("error", str(e)) from e
        finally:
            transport.close()

    async def _tcp(self, up: Upstream, packet: bytes) -> bytes:
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(self.timeout * 2):
                reader, writer = await asyncio.open_connection(*up)
                writer.write(len(packet).to_bytes(2, "big") + packet)
                size = int.from_bytes(await reader.readexactly(2), "big")
                return await reader.readexactly(size)
        except TimeoutError as e:
            raise UpstreamError("timeout", "tcp") from e
        except (OSError, asyncio.IncompleteReadError) as e:
            raise UpstreamError("error", f"tcp: {e}") from e
        finally:
            if writer is not None:
                writer.close()

    # -- loop detection -------------------------------------------------------------------------

    def start_probes(self, attempts: int = 10, every: float = 2.0) -> None:
        """Send each upstream its probe (again, until it answers or `attempts` ran out)."""
        for up in self.upstreams:
            name = f"{secrets.randbelow(10**9)}.{secrets.randbelow(10**9)}"
            self.probes[name] = _Probe(up)
            task = asyncio.get_running_loop().create_task(self._probe(name, attempts, every))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _probe(self, name: str, attempts: int, every: float) -> None:
        probe = self.probes[name]
        for _ in range(attempts):
            if not self.enabled:
                return
            res = await self._exchange((name, HINFO, IN, False, False), [probe.upstream])
            if res is not None:
                probe.answered = True
                return
            await asyncio.sleep(every)

    def probe_arrived(self, key: str) -> bool:
        """Count a query for a probe name reaching this server; True when that makes a loop
        (forwarding is then stopped)."""
        probe = self.probes.get(key)
        if probe is None:
            return False
        probe.arrivals += 1
        if probe.arrivals >= PROBE_ARRIVALS and self.enabled:
            self.enabled = False
            self.loop_upstream = probe.upstream
            self.metrics.loop_detected = True
            log.error("forwarding loop detected: the probe %s. HINFO sent to upstream %s came "
                      "back to this server %d times; forwarding stopped, names outside the "
                      "cluster zone now get SERVFAIL. Point --upstream at a resolver that does "
                      "not forward back here.", key, upstream_text(probe.upstream),
                      probe.arrivals)
            return True
        return not self.enabled

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
