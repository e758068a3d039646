"""DNS messages <-> bytes (pure: no I/O), safe for hostile input.

  parse_query(data) -> Query          a client's query; raises WireError, never anything else
  encode_response(query, answer)      header, echoed question, sections with name compression,
                                      EDNS0 OPT, truncation (TC)
  encode_error(data_or_query, rcode)  FORMERR/NOTIMP/REFUSED/SERVFAIL/BADVERS, or None: drop
  parse_response(data) -> Response    an upstream's answer, for the forwarder and for tests

Names are text in presentation form without the final dot ("" is the root), in the case they
came in. A label byte that is not printable ASCII, or is a dot, backslash or space, is written
`\\DDD` (decimal), `\\.` or `\\\\` (RFC 1035 5.1 escapes, as dig shows them); the encoder
reads the same escapes back, so any wire name survives a round trip.

Policies (RFC 1035, 2181, 6891, and what common servers do):
  - A query is answered only if QR is clear (anything else is dropped: never answer a response,
    or two servers would bounce packets forever). Opcode other than QUERY: NOTIMP. QDCOUNT other
    than 1: FORMERR. Records in the answer and authority sections of a query are parsed (they
    must be well formed) and ignored; in the additional section, an OPT is read, others ignored.
  - Bytes after the last counted record are ignored (lenient, as most servers are).
  - Compression pointers must point strictly before the start of the labels that hold them
    (so never forward, never into themselves, never in a loop) and past the header. A query's
    question therefore holds no pointer. A name is at most 255 octets on the wire, a label 63;
    label types 0x40 and 0x80 (RFC 6891 obsoleted them) are FORMERR.
  - EDNS0: at most one OPT, in the additional section only, owner the root, options well
    framed; otherwise FORMERR. Version > 0: BADVERS (16). That error carries the parsed query
    (`WireError.query`); `encode_error(err.query, BADVERS)` puts the low 4 bits of the rcode in
    the header (0) and the upper 8 bits in the OPT's extended-rcode (1), with version 0.
    An advertised payload below 512 counts as 512 (RFC 6891 6.2.5).
  - Responses: QR, the query's opcode, RD and CD copied, RA set, AA from the answer, AD clear.
    With EDNS the OPT goes last in the additional section: payload 1232, version 0, DO echoed,
    no options. An rcode above 15 without EDNS cannot be expressed and is sent as SERVFAIL.
    TTLs are clamped to 0 .. 2**31-1.
  - Size: 512 octets without EDNS; with EDNS min(client's payload, 1232), at least 512: the
    DNS Flag Day 2020 value. Over TCP the caller passes max_size=65535.
  - Truncation (RFC 2181 9): records go in whole RRsets (same name, type and class within a
    section). The first RRset that does not fit ends the message; if it belonged to the answer
    or authority section TC is set, if it was additional data it is just left out. The header,
    question and OPT are always kept.
  - Compression (RFC 1035 4.1.4): owner names and the names inside NS, CNAME, PTR and SOA
    rdata; SRV targets are never compressed (RFC 2782). Suffixes match byte for byte, case
    included, so every name goes out exactly in the case the answer gives it.
  - encode_error from raw bytes echoes the question when it reads cleanly, and adds no OPT
    (the OPT may be what was malformed); from a parsed Query it adds one when the query had it.
  - `Answer.forward` is the server's business: it resolves upstream first and passes the
    complete answer here.
  - An answer this module cannot encode (a name too long, a bad address, rdata of the wrong
    kind for its type) raises WireError(SERVFAIL): the caller sends encode_error(query,
    SERVFAIL) instead.

parse_response decodes A, AAAA, NS, CNAME, PTR, TXT, SRV and SOA into the rdata of model.py
(TXT strings are UTF-8 with surrogateescape, so any bytes survive). Any other type is kept as a
Record with its type number and, as rdata, the hex of its raw rdata (lower case, "" if empty);
for the types whose rdata holds compressible names (RFC 3597 4: MX, RP, AFSDB, RT, PX, NAPTR,
MINFO, MB, MD, MF, MG, MR) the names are decompressed first, so the hex is position-free and
encode_response can send it back as it is. A TTL with the top bit set reads as 0 (RFC 2181 8).
With TC set, a cut or malformed tail is tolerated: the records read completely before it are
returned (the forwarder retries over TCP anyway).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from functools import lru_cache

from podnet.dns.model import (
    AAAA,
    CNAME,
    FORMERR,
    NOTIMP,
    NS,
    OPT,
    PTR,
    SERVFAIL,
    SOA,
    SRV,
    TXT,
    A,
    Answer,
    Question,
    Rdata,
    Record,
    Soa,
    Srv,
)

BADVERS = 16  # extended rcode (RFC 6891)
EDNS_PAYLOAD = 1232  # what we advertise and the most we send over UDP (DNS Flag Day 2020)
UDP_PLAIN = 512  # the classic limit without EDNS (RFC 1035)
TCP_MAX = 65535
QUERY = 0  # opcode

# Header flag bits
QR, AA, TC, RD, RA, AD, CD = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080, 0x0020, 0x0010
DO = 0x8000  # in the OPT's TTL (low 16 bits)

_HEADER = struct.Struct(">HHHHHH")
_H = struct.Struct(">H")
_HH = struct.Struct(">HH")
_HHH = struct.Struct(">HHH")
_RR = struct.Struct(">HHIH")  # type, class, ttl, rdlength
_RR_NOLEN = struct.Struct(">HHI")
_SOA_NUMS = struct.Struct(">IIIII")
_OPT_FIXED = struct.Struct(">BHHIH")  # root name, type, class=payload, ttl, rdlength

_MAX_NAME = 255
_MAX_LABEL = 63
_TTL_MAX = 0x7FFFFFFF


class WireError(Exception):
    """A message that cannot be parsed, or an answer that cannot be encoded. `rcode` is what to
    answer with (FORMERR, NOTIMP, BADVERS, SERVFAIL); `query` is the parsed query when parsing
    got that far (BADVERS), so the error response can carry the question and an OPT."""

    def __init__(self, rcode: int, msg: str, query: Query | None = None) -> None:
        super().__init__(msg)
        self.rcode = rcode
        self.msg = msg
        self.query = query


@dataclass(frozen=True, slots=True)
class Edns:
    """An OPT record's fields (RFC 6891 6.1.3)."""

    payload: int  # the requestor's UDP payload size, as sent
    version: int
    do: bool  # DNSSEC OK
    options: bytes = b""  # the OPT's rdata, raw (well framed: code, length, data...)


@dataclass(frozen=True, slots=True)
class Query:
    id: int
    flags: int  # the header's second 16-bit word, as received
    question: Question
    edns: Edns | None
    question_wire: bytes  # the question section as received: name, type, class

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF

    @property
    def rd(self) -> bool:
        return bool(self.flags & RD)

    @property
    def cd(self) -> bool:
        return bool(self.flags & CD)

    @property
    def ad(self) -> bool:
        return bool(self.flags & AD)


@dataclass(frozen=True, slots=True)
class Response:
    id: int
    flags: int  # the header's second word, as received (the low 4 bits are the header rcode)
    rcode: int  # the full rcode: header bits plus the OPT's extended bits
    questions: tuple[Question, ...]
    answer: tuple[Record, ...]
    authority: tuple[Record, ...]
    additional: tuple[Record, ...]  # without the OPT, which is in `edns`
    edns: Edns | None

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF

    @property
    def aa(self) -> bool:
        return bool(self.flags & AA)

    @property
    def tc(self) -> bool:
        return bool(self.flags & TC)

    @property
    def rd(self) -> bool:
        return bool(self.flags & RD)

    @property
    def ra(self) -> bool:
        return bool(self.flags & RA)

    @property
    def ad(self) -> bool:
        return bool(self.flags & AD)

    @property
    def cd(self) -> bool:
        return bool(self.flags & CD)


# ---------------------------------------------------------------------------------------------
# Names: wire -> text

# Bytes written as themselves in a label: printable ASCII except '.', '\\' and space.
_PLAIN = bytes(b for b in range(0x21, 0x7F) if b not in (0x2E, 0x5C))
_PLAIN_AND_DOT = _PLAIN + b"."


def _label_text(label: bytes) -> str:
    if not label.translate(None, _PLAIN):
        return label.decode("ascii")
    out = []
    for b in label:
        if b == 0x2E:
            out.append("\\.")
        elif b == 0x5C:
            out.append("\\\\")
        elif 0x21 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03d}")
    return "".join(out)


def _labels_text(labels: list[bytes]) -> str:
    joined = b".".join(labels)
    if not joined.translate(None, _PLAIN_AND_DOT) and joined.count(b".") == len(labels) - 1:
        return joined.decode("ascii")
    return ".".join(_label_text(label) for label in labels)


def _read_name(data: bytes, pos: int) -> tuple[str, int]:
    """The name at `pos` and the offset just past it (past its first pointer, if any)."""
    labels: list[bytes] = []
    size = 1  # the final zero octet
    end = -1
    segment = pos  # where the labels being read began: pointers must go before it
    n = len(data)
    while True:
        if pos >= n:
            raise WireError(FORMERR, "name runs past the end of the message")
        length = data[pos]
        if length == 0:
            pos += 1
            break
        if length <= _MAX_LABEL:
            stop = pos + 1 + length
            if stop > n:
                raise WireError(FORMERR, "label runs past the end of the message")
            size += length + 1
            if size > _MAX_NAME:
                raise WireError(FORMERR, "name longer than 255 octets")
            labels.append(data[pos + 1:stop])
            pos = stop
        elif length >= 0xC0:
            if pos + 1 >= n:
                raise WireError(FORMERR, "compression pointer cut short")
            target = ((length & 0x3F) << 8) | data[pos + 1]
            if end < 0:
                end = pos + 2
            if target >= segment:
                raise WireError(FORMERR, "compression pointer forward or in a loop")
            if target < _HEADER.size:
                raise WireError(FORMERR, "compression pointer into the header")
            pos = segment = target
        else:
            raise WireError(FORMERR, f"unsupported label type 0x{length & 0xC0:02x}")
    if end < 0:
        end = pos
    if not labels:
        return "", end
    return _labels_text(labels), end


def _read_qname(data: bytes, pos: int) -> tuple[str, int]:
    """A query's question name: like _read_name, faster, for a name that has no pointer (a
    pointer in the question can only be wrong; _read_name says how)."""
    start = pos
    n = len(data)
    bounds = []
    while True:
        if pos >= n:
            raise WireError(FORMERR, "name runs past the end of the message")
        length = data[pos]
        if length == 0:
            break
        if length > _MAX_LABEL:
            return _read_name(data, start)
        bounds.append(pos)
        pos += length + 1
        if pos - start + 1 > _MAX_NAME:
            raise WireError(FORMERR, "name longer than 255 octets")
    if not bounds:
        return "", pos + 1
    text = bytearray(data[start + 1:pos])
    for bound in bounds[1:]:
        text[bound - start - 1] = 0x2E
    if not text.translate(None, _PLAIN_AND_DOT) and text.count(b".") == len(bounds) - 1:
        return text.decode("ascii"), pos + 1
    return _labels_text([data[b + 1:b + 1 + data[b]] for b in bounds]), pos + 1


def _read_name_wire(data: bytes, pos: int) -> tuple[bytes, int]:
    """The name at `pos` in uncompressed wire form, and the offset just past it."""
    name, end = _read_name(data, pos)
    return _name_info(name)[0], end


# ---------------------------------------------------------------------------------------------
# Names: text -> wire


def _split_escaped(name: str) -> list[bytes]:
    labels: list[bytes] = []
    cur = bytearray()
    i, n = 0, len(name)
    while i < n:
        c = name[i]
        if c == "\\":
            digits = name[i + 1:i + 4]
            if len(digits) == 3 and digits.isascii() and digits.isdigit():
                value = int(digits)
                if value > 255:
                    raise ValueError(f"bad escape in {name!r}")
                cur.append(value)
                i += 4
                continue
            if i + 1 >= n:
                raise ValueError(f"dangling backslash in {name!r}")
            cur += name[i + 1].encode()
            i += 2
            continue
        if c == ".":
            labels.append(bytes(cur))
            cur = bytearray()
        else:
            cur += c.encode()
        i += 1
    labels.append(bytes(cur))
    return labels


# (uncompressed wire form with the final zero, the compression keys: one per label, the wire
# form of the name from that label on, without the final zero; it starts with the label itself)
_NameInfo = tuple[bytes, tuple[bytes, ...]]


# Names come from answers (a hot, bounded set) but also from queries, which anyone can fill
# with random names of many short labels: those cost the most memory per entry (a key per
# label), so only names of at most _CACHED_NAME characters and _CACHED_DOTS dots are cached.
# Worst case (measured with tracemalloc), the cache holds about 10 MB.
_CACHED_NAME = 128
_CACHED_DOTS = 12
_NAME_CACHE = 4096


_NAMES: dict[str, _NameInfo] = {}  # emptied when full: cheaper than LRU bookkeeping


def _name_info(name: str) -> _NameInfo:
    """A name's wire form and its compression keys; ValueError if it cannot be sent."""
    info = _NAMES.get(name)
    if info is None:
        info = _build_name_info(name)
        if len(name) <= _CACHED_NAME and name.count(".") <= _CACHED_DOTS:
            if len(_NAMES) >= _NAME_CACHE:
                _NAMES.clear()
            _NAMES[name] = info
    return info


def _build_name_info(name: str) -> _NameInfo:
    if name in ("", "."):
        return b"\x00", ()
    if "\\" in name:
        raw = _split_escaped(name)
    else:
        raw = name.encode("utf-8", "surrogateescape").split(b".")
    if len(raw) > 1 and not raw[-1]:
        raw.pop()  # a final dot
    parts = []
    for label in raw:
        if not label or len(label) > _MAX_LABEL:
            raise ValueError(f"bad label length in {name!r}")
        parts.append(bytes((len(label),)) + label)
    wire = b"".join(parts)
    if len(wire) + 1 > _MAX_NAME:
        raise ValueError(f"name longer than 255 octets: {name!r}")
    keys = []
    offset = 0
    for part in parts:
        keys.append(wire[offset:])
        offset += len(part)
    return wire + b"\x00", tuple(keys)


# Compression pointers by offset: c000 .. ffff.
_POINTERS = tuple(_H.pack(0xC000 | offset) for offset in range(0x4000))


def _put_name(buf: bytearray, name: str, comp: dict[bytes, bytes]) -> None:
    for key in (_NAMES.get(name) or _name_info(name))[1]:
        pointer = comp.get(key)
        if pointer is not None:
            buf += pointer
            return
        offset = len(buf)
        if offset < 0x4000:
            comp[key] = _POINTERS[offset]
        buf += key[:key[0] + 1]
    buf.append(0)


# ---------------------------------------------------------------------------------------------
# Queries


def parse_query(data: bytes) -> Query:
    """A client's query. Raises WireError (only) when it is malformed; see the module policies."""
    try:
        return _parse_query(data)
    except WireError:
        raise
    except Exception as exc:  # a bug here must not take the server down: treat as malformed
        raise WireError(FORMERR, f"unparseable query: {exc!r}") from exc


def _parse_query(data: bytes) -> Query:
    if len(data) < _HEADER.size:
        raise WireError(FORMERR, "shorter than a header")
    qid, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    if flags & QR:
        raise WireError(FORMERR, "QR set: a response, not a query")
    if (flags >> 11) & 0xF != QUERY:
        raise WireError(NOTIMP, f"opcode {(flags >> 11) & 0xF} not implemented")
    if qdcount != 1:
        raise WireError(FORMERR, f"{qdcount} questions")
    name, pos = _read_qname(data, _HEADER.size)
    if pos + 4 > len(data):
        raise WireError(FORMERR, "question cut short")
    qtype, qclass = _HH.unpack_from(data, pos)
    pos += 4
    question = Question(name, qtype, qclass)
    question_wire = data[_HEADER.size:pos]
    for _ in range(ancount + nscount):
        pos, rtype, _rclass, _ttl, _rdstart, _rdend, _owner_root = _skip_record(data, pos)
        if rtype == OPT:
            raise WireError(FORMERR, "OPT outside the additional section")
    edns: Edns | None = None
    for _ in range(arcount):
        pos, rtype, rclass, ttl, rdstart, rdend, owner_root = _skip_record(data, pos)
        if rtype != OPT:
            continue
        if edns is not None:
            raise WireError(FORMERR, "more than one OPT")
        if not owner_root:
            raise WireError(FORMERR, "OPT owner is not the root")
        options = data[rdstart:rdend]
        _check_options(options)
        edns = Edns(rclass, (ttl >> 16) & 0xFF, bool(ttl & DO), options)
    query = Query(qid, flags, question, edns, question_wire)
    if edns is not None and edns.version > 0:
        raise WireError(BADVERS, f"EDNS version {edns.version}", query)
    return query


def _skip_record(data: bytes, pos: int) -> tuple[int, int, int, int, int, int, bool]:
    """Walks over a record: (next offset, type, class, ttl, rdata start, rdata end, owner is
    the root)."""
    owner_root = pos < len(data) and data[pos] == 0
    _name, pos = _read_name(data, pos)
    if pos + 10 > len(data):
        raise WireError(FORMERR, "record header cut short")
    rtype, rclass, ttl, rdlength = _RR.unpack_from(data, pos)
    start = pos + 10
    end = start + rdlength
    if end > len(data):
        raise WireError(FORMERR, "rdata runs past the end of the message")
    return end, rtype, rclass, ttl, start, end, owner_root


def _check_options(options: bytes) -> None:
    pos, n = 0, len(options)
    while pos < n:
        if pos + 4 > n:
            raise WireError(FORMERR, "EDNS option header cut short")
        _code, length = _HH.unpack_from(options, pos)
        pos += 4 + length
        if pos > n:
            raise WireError(FORMERR, "EDNS option runs past the OPT")


# ---------------------------------------------------------------------------------------------
# Responses


def udp_limit(query: Query) -> int:
    """The largest UDP response for this query: 512 without EDNS, else the client's payload
    size capped at 1232 and at least 512."""
    if query.edns is None:
        return UDP_PLAIN
    return max(UDP_PLAIN, min(query.edns.payload, EDNS_PAYLOAD))


def _flags(query: Query, rcode: int, aa: bool) -> int:
    flags = QR | RA | (query.flags & (0x7800 | RD | CD)) | (rcode & 0xF)
    return flags | AA if aa else flags


def _opt(query: Query, rcode: int) -> bytes:
    assert query.edns is not None
    ttl = ((rcode >> 4) & 0xFF) << 24 | (DO if query.edns.do else 0)
    return _OPT_FIXED.pack(0, OPT, EDNS_PAYLOAD, ttl, 0)


def encode_response(query: Query, answer: Answer, *, max_size: int | None = None) -> bytes:
    """The response to `query` carrying `answer`, at most `max_size` octets (default: the UDP
    limit for this query, see udp_limit) unless the header, question and OPT alone exceed it.
    Raises WireError(SERVFAIL) if the answer cannot be encoded."""
    try:
        return _encode_response(query, answer, udp_limit(query) if max_size is None else max_size)
    except WireError:
        raise
    except (ValueError, TypeError, struct.error, UnicodeError, AttributeError) as exc:
        raise WireError(SERVFAIL, f"cannot encode the answer: {exc}") from exc


def _encode_response(query: Query, answer: Answer, max_size: int) -> bytes:
    rcode = answer.rcode
    if rcode > 0xF and query.edns is None:
        rcode = SERVFAIL
    buf = bytearray(_HEADER.size)
    buf += query.question_wire
    comp: dict[bytes, bytes] = {}
    offset = _HEADER.size
    for key in _name_info(query.question.name)[1]:
        comp[key] = _POINTERS[offset]
        offset += key[0] + 1
    opt = _opt(query, rcode) if query.edns is not None else b""
    limit = max_size - len(opt)
    counts = [0, 0, 0]
    truncated = full = False
    for index, section in enumerate((answer.answer, answer.authority, answer.additional)):
        for rrset in _rrsets(section):
            mark = len(buf)
            for record in rrset:
                _put_record(buf, record, comp)
            if len(buf) > limit:
                # Nothing is written after this but the OPT (the root, no pointer), so the
                # compression entries into the removed bytes are never used.
                del buf[mark:]
                truncated = index < 2
                full = True
                break
            counts[index] += len(rrset)
        if full:
            break
    flags = _flags(query, rcode, answer.authoritative)
    if truncated:
        flags |= TC
    buf += opt
    _HEADER.pack_into(buf, 0, query.id, flags, 1, counts[0], counts[1],
                      counts[2] + (1 if opt else 0))
    return bytes(buf)


def _rrsets(records: tuple[Record, ...]) -> list[list[Record]]:
    if len(records) <= 1:
        return [list(records)] if records else []
    groups: dict[tuple[str, int, int], list[Record]] = {}
    for record in records:
        key = (record.name.lower(), record.rtype, record.rclass)
        group = groups.get(key)
        if group is None:
            groups[key] = [record]
        else:
            group.append(record)
    return list(groups.values())


def _put_record(buf: bytearray, record: Record, comp: dict[bytes, bytes]) -> None:
    _put_name(buf, record.name, comp)
    rtype = record.rtype
    ttl = record.ttl
    if ttl < 0:
        ttl = 0
    elif ttl > _TTL_MAX:
        ttl = _TTL_MAX
    rdata = record.rdata
    if rtype == A and isinstance(rdata, str):
        buf += _RR.pack(rtype, record.rclass, ttl, 4)
        buf += _ipv4(rdata)
    elif rtype == AAAA and isinstance(rdata, str):
        buf += _RR.pack(rtype, record.rclass, ttl, 16)
        buf += _ipv6(rdata)
    elif rtype in _NAME_RDATA and isinstance(rdata, str):
        buf += _RR_NOLEN.pack(rtype, record.rclass, ttl)
        at = len(buf)
        buf += b"\x00\x00"
        _put_name(buf, rdata, comp)
        _H.pack_into(buf, at, len(buf) - at - 2)
    elif rtype == SOA and isinstance(rdata, Soa):
        buf += _RR_NOLEN.pack(rtype, record.rclass, ttl)
        at = len(buf)
        buf += b"\x00\x00"
        _put_name(buf, rdata.mname, comp)
        _put_name(buf, rdata.rname, comp)
        buf += _SOA_NUMS.pack(rdata.serial, rdata.refresh, rdata.retry, rdata.expire,
                              rdata.minimum)
        _H.pack_into(buf, at, len(buf) - at - 2)
    elif rtype == SRV and isinstance(rdata, Srv):
        target = _name_info(rdata.target)[0]
        buf += _RR.pack(rtype, record.rclass, ttl, 6 + len(target))
        buf += _HHH.pack(rdata.priority, rdata.weight, rdata.port)
        buf += target
    elif rtype == TXT and isinstance(rdata, (tuple, str)):
        raw = _txt(rdata)
        buf += _RR.pack(rtype, record.rclass, ttl, len(raw))
        buf += raw
    elif rtype not in _MODEL_TYPES and rtype != OPT and isinstance(rdata, str):
        raw = bytes.fromhex(rdata)
        buf += _RR.pack(rtype, record.rclass, ttl, len(raw))
        buf += raw
    else:
        raise WireError(SERVFAIL, f"rdata {rdata!r} does not fit type {rtype}")


_NAME_RDATA = frozenset((NS, CNAME, PTR))
_MODEL_TYPES = frozenset((A, AAAA, NS, CNAME, PTR, SOA, SRV, TXT))


@lru_cache(maxsize=16384)
def _ipv4(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


@lru_cache(maxsize=16384)
def _ipv6(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def _txt(strings: tuple[str, ...] | str) -> bytes:
    if isinstance(strings, str):
        strings = (strings,)
    out = bytearray()
    for text in strings or ("",):
        raw = text.encode("utf-8", "surrogateescape")
        if not raw:
            out.append(0)
        for i in range(0, len(raw), 255):
            chunk = raw[i:i + 255]
            out.append(len(chunk))
            out += chunk
    if len(out) > 0xFFFF:
        raise ValueError("TXT rdata longer than 65535 octets")
    return bytes(out)


def encode_error(data_or_query: bytes | Query, rcode: int) -> bytes | None:
    """An error response (no records): to a parsed Query (with its OPT when it had EDNS), or to
    raw bytes parsed as far as they go: the question is echoed when it is readable, else the
    response has none. None when there is no header or QR is set: drop the packet."""
    if isinstance(data_or_query, Query):
        try:
            return _encode_response(data_or_query, Answer(rcode=rcode, authoritative=False),
                                    TCP_MAX)
        except Exception:  # a question we parsed always re-encodes; be safe regardless
            return None
    data = bytes(data_or_query)
    if len(data) < _HEADER.size:
        return None
    qid, flags, qdcount = _HHH.unpack_from(data)
    if flags & QR:
        return None
    question = b""
    if qdcount == 1:
        try:
            _name, pos = _read_name(data, _HEADER.size)
            if pos + 4 <= len(data):
                question = data[_HEADER.size:pos + 4]
        except WireError:
            pass
    if rcode > 0xF:
        rcode = SERVFAIL
    out = QR | RA | (flags & (0x7800 | RD | CD)) | (rcode & 0xF)
    return _HEADER.pack(qid, out, 1 if question else 0, 0, 0, 0) + question


# ---------------------------------------------------------------------------------------------
# Responses from upstream


def parse_response(data: bytes) -> Response:
    """An upstream's response. Raises WireError(FORMERR) (only) when it is malformed or is not a
    response (QR clear); the forwarder answers its client SERVFAIL then."""
    try:
        return _parse_response(data)
    except WireError:
        raise
    except Exception as exc:
        raise WireError(FORMERR, f"unparseable response: {exc!r}") from exc


def _parse_response(data: bytes) -> Response:
    if len(data) < _HEADER.size:
        raise WireError(FORMERR, "shorter than a header")
    qid, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    if not flags & QR:
        raise WireError(FORMERR, "QR clear: a query, not a response")
    truncated = bool(flags & TC)
    pos = _HEADER.size
    questions: list[Question] = []
    sections: list[list[Record]] = [[], [], []]
    edns: Edns | None = None
    ext_rcode = 0
    try:
        for _ in range(qdcount):
            name, pos = _read_name(data, pos)
            if pos + 4 > len(data):
                raise WireError(FORMERR, "question cut short")
            qtype, qclass = _HH.unpack_from(data, pos)
            pos += 4
            questions.append(Question(name, qtype, qclass))
        for index, count in enumerate((ancount, nscount, arcount)):
            for _ in range(count):
                owner, pos2 = _read_name(data, pos)
                if pos2 + 10 > len(data):
                    raise WireError(FORMERR, "record header cut short")
                rtype, rclass, ttl, rdlength = _RR.unpack_from(data, pos2)
                start = pos2 + 10
                end = start + rdlength
                if end > len(data):
                    raise WireError(FORMERR, "rdata runs past the end of the message")
                pos = end
                if rtype == OPT:
                    if index != 2 or edns is not None or owner:
                        raise WireError(FORMERR, "misplaced, repeated or owned OPT")
                    options = data[start:end]
                    _check_options(options)
                    edns = Edns(rclass, (ttl >> 16) & 0xFF, bool(ttl & DO), options)
                    ext_rcode = ttl >> 24
                    continue
                if ttl > _TTL_MAX:
                    ttl = 0
                rdata = _read_rdata(data, rtype, start, end)
                sections[index].append(Record(owner, rtype, ttl, rdata, rclass))
    except WireError:
        if not truncated:
            raise
    return Response(qid, flags, (ext_rcode << 4) | (flags & 0xF), tuple(questions),
                    tuple(sections[0]), tuple(sections[1]), tuple(sections[2]), edns)


def _read_rdata(data: bytes, rtype: int, start: int, end: int) -> Rdata:
    length = end - start
    if rtype == A:
        if length != 4:
            raise WireError(FORMERR, "A rdata is not 4 octets")
        return f"{data[start]}.{data[start + 1]}.{data[start + 2]}.{data[start + 3]}"
    if rtype == AAAA:
        if length != 16:
            raise WireError(FORMERR, "AAAA rdata is not 16 octets")
        return str(ipaddress.IPv6Address(data[start:end]))
    if rtype in _NAME_RDATA:
        name, pos = _read_name(data, start)
        _expect_end(pos, end)
        return name
    if rtype == SOA:
        mname, pos = _read_name(data, start)
        rname, pos = _read_name(data, pos)
        _expect_end(pos + _SOA_NUMS.size, end)
        return Soa(mname, rname, *_SOA_NUMS.unpack_from(data, pos))
    if rtype == SRV:
        if length < 7:
            raise WireError(FORMERR, "SRV rdata too short")
        priority, weight, port = _HHH.unpack_from(data, start)
        target, pos = _read_name(data, start + 6)
        _expect_end(pos, end)
        return Srv(priority, weight, port, target)
    if rtype == TXT:
        return _read_txt(data[start:end])
    layout = _NAME_LAYOUTS.get(rtype)
    if layout is None:
        return data[start:end].hex()
    return _decompress(data, layout, start, end).hex()


def _expect_end(pos: int, end: int) -> None:
    if pos != end:
        raise WireError(FORMERR, "rdata length does not match its contents")


def _read_txt(raw: bytes) -> tuple[str, ...]:
    if not raw:
        raise WireError(FORMERR, "empty TXT rdata")
    strings = []
    pos, n = 0, len(raw)
    while pos < n:
        stop = pos + 1 + raw[pos]
        if stop > n:
            raise WireError(FORMERR, "TXT string runs past its rdata")
        strings.append(raw[pos + 1:stop].decode("utf-8", "surrogateescape"))
        pos = stop
    return tuple(strings)


# The rdata of types with compressible names (RFC 1035, RFC 3597 4) other than those model.py
# knows: a fixed number of octets, "n" a name, "s" a character-string, "r" the rest.
_NAME_LAYOUTS: dict[int, tuple[int | str, ...]] = {
    3: ("n",), 4: ("n",), 7: ("n",), 8: ("n",), 9: ("n",),  # MD MF MB MG MR
    14: ("n", "n"),  # MINFO
    15: (2, "n"),  # MX
    17: ("n", "n"),  # RP
    18: (2, "n"),  # AFSDB
    21: (2, "n"),  # RT
    26: (2, "n", "n"),  # PX
    35: (2, 2, "s", "s", "s", "n"),  # NAPTR
}


def _decompress(data: bytes, layout: tuple[int | str, ...], start: int, end: int) -> bytes:
    out = bytearray()
    pos = start
    for item in layout:
        if item == "n":
            wire, pos = _read_name_wire(data, pos)
            out += wire
        elif item == "s":
            if pos >= end:
                raise WireError(FORMERR, "character-string past its rdata")
            stop = pos + 1 + data[pos]
            out += data[pos:stop]
            pos = stop
        else:
            assert isinstance(item, int)
            out += data[pos:pos + item]
            pos += item
        if pos > end:
            raise WireError(FORMERR, "rdata shorter than its type needs")
    _expect_end(pos, end)
    return bytes(out)
