"""DNS wire format: parsing queries (hostile input), encoding responses, errors, upstream answers.

Messages are built by hand from RFC 1035 4.1: a 12-octet header (id, flags, four counts), then
the question (labels, type, class), then records (owner, type, class, TTL, rdlength, rdata).
Offsets that matter for compression: the question's name starts at 12 (0x0c), so a pointer to
it is c00c; in "a.example" the suffix "example" starts at 14 (c00e).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence
from typing import TypeVar

import pytest

from podnet.dns import wire
from podnet.dns.model import (
    AAAA,
    CNAME,
    FORMERR,
    NOERROR,
    NOTIMP,
    NS,
    NXDOMAIN,
    PTR,
    REFUSED,
    SERVFAIL,
    SOA,
    SRV,
    TXT,
    A,
    Answer,
    Question,
    Record,
    Soa,
    Srv,
)
from podnet.dns.wire import BADVERS, Edns, Query, WireError

MX = 15
T = TypeVar("T")


def header(qid: int = 0xABCD, flags: int = 0x0100, qd: int = 1, an: int = 0, ns: int = 0,
           ar: int = 0) -> bytes:
    return struct.pack(">HHHHHH", qid, flags, qd, an, ns, ar)


def name(text: str) -> bytes:
    if not text:
        return b"\x00"
    return b"".join(bytes((len(part),)) + part.encode() for part in text.split(".")) + b"\x00"


def question(text: str, qtype: int = A, qclass: int = 1) -> bytes:
    return name(text) + struct.pack(">HH", qtype, qclass)


def opt(payload: int = 1232, version: int = 0, do: bool = False, options: bytes = b"",
        ext_rcode: int = 0) -> bytes:
    ttl = (ext_rcode << 24) | (version << 16) | (0x8000 if do else 0)
    return b"\x00" + struct.pack(">HHIH", 41, payload, ttl, len(options)) + options


def query_bytes(text: str = "a.example", qtype: int = A, *, qid: int = 0xABCD,
                flags: int = 0x0100, edns: bytes | None = None) -> bytes:
    return (header(qid, flags, ar=0 if edns is None else 1) + question(text, qtype)
            + (edns or b""))


def query(text: str = "a.example", qtype: int = A, *, qid: int = 0xABCD, flags: int = 0x0100,
          edns: bytes | None = None) -> Query:
    return wire.parse_query(query_bytes(text, qtype, qid=qid, flags=flags, edns=edns))


def rr(owner: bytes, rtype: int, rdata: bytes, ttl: int = 300, rclass: int = 1) -> bytes:
    return owner + struct.pack(">HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def counts(msg: bytes) -> tuple[int, int, int, int]:
    return struct.unpack_from(">HHHH", msg, 4)


def flags_of(msg: bytes) -> int:
    return int(struct.unpack_from(">H", msg, 2)[0])


# ---------------------------------------------------------------------------------------------
# Parsing queries


def test_parse_dig_query_with_cookie() -> None:
    # What dig 9.18 sends for `dig example.com`: RD and AD set, EDNS 1232 with a client cookie.
    data = bytes.fromhex(
        "5e2b 0120 0001 0000 0000 0001"
        "07 6578616d706c65 03 636f6d 00 0001 0001"
        "00 0029 04d0 00000000 000c 000a 0008 0123456789abcdef")
    q = wire.parse_query(data)
    assert q == Query(0x5E2B, 0x0120, Question("example.com", A, 1),
                      Edns(1232, 0, False, bytes.fromhex("000a00080123456789abcdef")),
                      bytes.fromhex("076578616d706c6503636f6d0000010001"))
    assert (q.opcode, q.rd, q.ad, q.cd) == (0, True, True, False)


def test_parse_keeps_case_and_question_bytes() -> None:
    data = query_bytes("WeB.Default.SVC.cluster.local", AAAA)
    q = wire.parse_query(data)
    assert q.question == Question("WeB.Default.SVC.cluster.local", AAAA, 1)
    assert q.question_wire == data[12:]
    assert q.edns is None


def test_parse_root_question() -> None:
    q = wire.parse_query(header() + b"\x00" + struct.pack(">HH", NS, 1))
    assert q.question == Question("", NS, 1)
    assert q.question_wire == b"\x00\x00\x02\x00\x01"


@pytest.mark.parametrize(("label", "text"), [
    pytest.param(b"a.b", "a\\.b", id="dot-in-label"),
    pytest.param(b"a b", "a\\032b", id="space"),
    pytest.param(b"\\", "\\\\", id="backslash"),
    pytest.param(b"\x00\xff", "\\000\\255", id="binary"),
    pytest.param(b"caf\xc3\xa9", "caf\\195\\169", id="utf8-bytes"),
    pytest.param(b"_sip-x*", "_sip-x*", id="printable-as-is"),
])
def test_parse_escapes_odd_labels_and_round_trips(label: bytes, text: str) -> None:
    data = header() + bytes((len(label),)) + label + name("example") + struct.pack(">HH", A, 1)
    q = wire.parse_query(data)
    assert q.question.name == text + ".example"
    # The same name given back to the encoder becomes the same octets (it compresses fully).
    out = wire.encode_response(q, Answer(answer=(Record(q.question.name, A, 5, "192.0.2.1"),)))
    assert out[len(data):len(data) + 2] == b"\xc0\x0c"
    assert wire.parse_response(out).answer[0].name == text + ".example"


def test_parse_longest_name() -> None:
    # 255 octets on the wire: 3 labels of 63 + one of 61 (4 length octets, the final zero).
    text = ".".join(["a" * 63] * 3 + ["b" * 61])
    assert len(name(text)) == 255
    assert wire.parse_query(query_bytes(text)).question.name == text


def test_parse_ignores_trailing_bytes() -> None:
    q = wire.parse_query(query_bytes() + b"garbage")
    assert q.question == Question("a.example", A, 1)
    assert q.question_wire == question("a.example")


def test_parse_skips_other_records_and_allows_pointers_to_the_question() -> None:
    extra = rr(b"\xc0\x0c", TXT, b"\x02hi")  # owner: the question's name
    data = (header(an=1, ar=2) + question("a.example") + rr(b"\xc0\x0e", A, b"\x01\x02\x03\x04")
            + extra + opt(4096, do=True))
    q = wire.parse_query(data)
    assert q.edns == Edns(4096, 0, True, b"")


def test_parse_edns_options_framing() -> None:
    options = bytes.fromhex("000a0008 0011223344556677") + bytes.fromhex("00030000")  # + NSID
    q = query(edns=opt(512, options=options))
    assert q.edns == Edns(512, 0, False, options)


def truncate(data: bytes, n: int) -> bytes:
    return data[:n]


PTR_FORWARD = header() + b"\x01a\xc0\x20" + b"\x00" * 20 + struct.pack(">HH", A, 1)
LONG_256 = ".".join(["a" * 63] * 3 + ["b" * 62])


@pytest.mark.parametrize(("data", "rcode", "answered"), [
    pytest.param(b"", FORMERR, False, id="empty"),
    pytest.param(query_bytes()[:11], FORMERR, False, id="short-header"),
    pytest.param(query_bytes(flags=0x8100), FORMERR, False, id="qr-set"),
    pytest.param(query_bytes(flags=0x0900), NOTIMP, True, id="opcode-iquery"),
    pytest.param(query_bytes(flags=0x1100), NOTIMP, True, id="opcode-status"),
    pytest.param(query_bytes(flags=0x2000), NOTIMP, True, id="opcode-notify"),
    pytest.param(query_bytes(flags=0x2800), NOTIMP, True, id="opcode-update"),
    pytest.param(header(qd=0), FORMERR, True, id="no-question"),
    pytest.param(header(qd=2) + question("a.example") + question("b.example"), FORMERR, True,
                 id="two-questions"),
    pytest.param(header() + b"\x05ab", FORMERR, True, id="label-past-end"),
    pytest.param(header() + b"\x01a\x07example", FORMERR, True, id="no-final-zero"),
    pytest.param(header() + name("a.example") + b"\x00\x01", FORMERR, True, id="no-qclass"),
    pytest.param(header() + b"\x41" + b"a" * 70 + b"\x00\x00\x01\x00\x01", FORMERR, True,
                 id="label-64-is-type-0x40"),
    pytest.param(header() + b"\x81" + b"a" * 70 + b"\x00\x00\x01\x00\x01", FORMERR, True,
                 id="label-type-0x80"),
    pytest.param(PTR_FORWARD, FORMERR, True, id="pointer-forward"),
    pytest.param(header() + b"\x01a\xc0\x0c\x00\x01\x00\x01", FORMERR, True,
                 id="pointer-loop-to-itself"),
    pytest.param(header() + b"\xc0\x0c\x00\x01\x00\x01", FORMERR, True, id="pointer-to-self"),
    pytest.param(header() + b"\xc0\x02\x00\x01\x00\x01", FORMERR, True, id="pointer-to-header"),
    pytest.param(header() + b"\xc0", FORMERR, True, id="pointer-cut"),
    pytest.param(query_bytes(LONG_256), FORMERR, True, id="name-256-octets"),
    pytest.param(header(an=1) + question("a.example"), FORMERR, True, id="answer-count-lies"),
    pytest.param(header(ar=1) + question("a.example") + opt()[:8], FORMERR, True,
                 id="record-header-cut"),
    pytest.param(header(ar=1) + question("a.example") + b"\x00"
                 + struct.pack(">HHIH", 41, 1232, 0, 8) + b"\x00" * 3, FORMERR, True,
                 id="rdata-past-end"),
    pytest.param(header(ar=2) + question("a.example") + opt() + opt(), FORMERR, True,
                 id="two-opts"),
    pytest.param(header(an=1) + question("a.example") + opt(), FORMERR, True,
                 id="opt-in-answer"),
    pytest.param(header(ns=1) + question("a.example") + opt(), FORMERR, True,
                 id="opt-in-authority"),
    pytest.param(header(ar=1) + question("a.example") + b"\xc0\x0c" + opt()[1:], FORMERR, True,
                 id="opt-owner-not-root"),
    pytest.param(query_bytes(edns=opt(options=b"\x00\x0a\x00\x09" + b"\x00" * 8)), FORMERR,
                 True, id="opt-option-past-rdata"),
    pytest.param(query_bytes(edns=opt(options=b"\x00\x0a\x00")), FORMERR, True,
                 id="opt-option-header-cut"),
    pytest.param(header(ar=1) + question("a.example") + rr(b"\x01b\xc0\x1f", A, b"1234"),
                 FORMERR, True, id="additional-pointer-forward"),
    pytest.param(header(ar=1) + question("a.example") + rr(b"\x01b\xc0\x1b", A, b"1234"),
                 FORMERR, True, id="additional-pointer-loop"),
    pytest.param(query_bytes(edns=opt(version=1)), BADVERS, True, id="edns-version-1"),
])
def test_parse_rejects(data: bytes, rcode: int, answered: bool) -> None:
    with pytest.raises(WireError) as caught:
        wire.parse_query(data)
    assert caught.value.rcode == rcode
    reply = wire.encode_error(caught.value.query or data, caught.value.rcode)
    assert (reply is not None) == answered
    if reply is not None:
        assert reply[:2] == data[:2]
        assert flags_of(reply) & 0x8000


def test_badvers_carries_the_query_and_encodes_in_the_opt() -> None:
    data = query_bytes(qid=7, edns=opt(4096, version=2, do=True))
    with pytest.raises(WireError) as caught:
        wire.parse_query(data)
    assert caught.value.rcode == BADVERS
    assert caught.value.query is not None
    assert caught.value.query.edns == Edns(4096, 2, True, b"")
    reply = wire.encode_error(caught.value.query, BADVERS)
    # rcode 16: 0 in the header, 1 in the OPT's extended-rcode octet; our version 0, DO echoed.
    assert reply == (header(7, 0x8180, ar=1) + question("a.example")
                     + bytes.fromhex("00 0029 04d0 01008000 0000"))
    response = wire.parse_response(reply)
    assert response.rcode == BADVERS
    assert response.edns == Edns(1232, 0, True, b"")


# ---------------------------------------------------------------------------------------------
# Encoding responses: exact bytes


def test_encode_a_answer_exact() -> None:
    q = query()
    out = wire.encode_response(q, Answer(answer=(Record("a.example", A, 300, "192.0.2.1"),)))
    assert out == bytes.fromhex(
        "abcd 8580 0001 0001 0000 0000"          # QR AA RD RA, one question, one answer
        "01 61 07 6578616d706c65 00 0001 0001"   # a.example A IN
        "c00c 0001 0001 0000012c 0004 c0000201")  # -> a.example A IN 300 192.0.2.1


def test_encode_nxdomain_with_soa_compresses_into_the_question() -> None:
    q = query("nope.example")
    soa = Soa("ns.example", "hostmaster.example", 2024010101, 7200, 1800, 86400, 30)
    out = wire.encode_response(q, Answer(rcode=NXDOMAIN,
                                         authority=(Record("example", SOA, 30, soa),)))
    assert out == bytes.fromhex(
        "abcd 8583 0001 0000 0001 0000"
        "04 6e6f7065 07 6578616d706c65 00 0001 0001"
        "c011 0006 0001 0000001e 0026"          # "example" = the suffix at 17
        "02 6e73 c011"                          # ns.example
        "0a 686f73746d6173746572 c011"          # hostmaster.example
        "78a3f175 00001c20 00000708 00015180 0000001e")


def test_encode_cname_chain_and_srv_target_uncompressed() -> None:
    q = query("_http._tcp.web.ns1.svc.cluster.local", SRV)
    srv = Srv(0, 100, 80, "web.ns1.svc.cluster.local")
    out = wire.encode_response(q, Answer(
        answer=(Record(q.question.name, SRV, 30, srv),),
        additional=(Record("web.ns1.svc.cluster.local", A, 30, "10.96.0.7"),)))
    qlen = 12 + len(q.question_wire)
    target = name("web.ns1.svc.cluster.local")
    assert out[qlen:] == (b"\xc0\x0c" + struct.pack(">HHIH", SRV, 1, 30, 6 + len(target))
                          + struct.pack(">HHH", 0, 100, 80) + target
                          # the additional owner points at "web..." inside the question (23)
                          + b"\xc0\x17" + struct.pack(">HHIH", A, 1, 30, 4) + b"\x0a\x60\x00\x07")
    assert counts(out) == (1, 1, 0, 1)


def test_encode_cname_target_compressed() -> None:
    q = query("www.example")
    out = wire.encode_response(q, Answer(answer=(
        Record("www.example", CNAME, 60, "web.example"),
        Record("web.example", A, 60, "192.0.2.9"))))
    qlen = 12 + len(q.question_wire)
    assert out[qlen:] == bytes.fromhex(
        "c00c 0005 0001 0000003c 0006 03 776562 c010"   # www.example CNAME web.(example)
        f"c{qlen + 12:03x} 0001 0001 0000003c 0004 c0000209")  # web.example: the CNAME's target


def test_encode_echoes_question_case_and_compresses_case_exactly() -> None:
    q = query("WeB.ExAmple")
    out = wire.encode_response(q, Answer(answer=(
        Record("WeB.ExAmple", A, 5, "192.0.2.1"), Record("web.example", A, 5, "192.0.2.2"))))
    assert out[12:12 + len(q.question_wire)] == question("WeB.ExAmple")
    response = wire.parse_response(out)
    assert [r.name for r in response.answer] == ["WeB.ExAmple", "web.example"]
    assert response.questions == (Question("WeB.ExAmple", A, 1),)


def test_encode_flags_copied_and_set() -> None:
    q = query(flags=0x0030)  # CD and AD, no RD
    out = wire.encode_response(q, Answer(authoritative=False))
    assert flags_of(out) == 0x8090  # QR RA CD; no AA, no RD, no AD
    assert counts(out) == (1, 0, 0, 0)


@pytest.mark.parametrize("rcode", [NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED])
def test_encode_rcodes(rcode: int) -> None:
    out = wire.encode_response(query(), Answer(rcode=rcode))
    assert flags_of(out) & 0xF == rcode


def test_encode_extended_rcode_without_edns_becomes_servfail() -> None:
    out = wire.encode_response(query(), Answer(rcode=BADVERS))
    assert flags_of(out) & 0xF == SERVFAIL
    assert counts(out)[3] == 0


def test_encode_opt_when_query_had_edns() -> None:
    q = query(edns=opt(4096, do=True))
    out = wire.encode_response(q, Answer(answer=(Record("a.example", A, 5, "192.0.2.1"),),
                                         additional=(Record("a.example", TXT, 5, ("x",)),)))
    assert counts(out) == (1, 1, 0, 2)
    assert out.endswith(bytes.fromhex("00 0029 04d0 00008000 0000"))
    response = wire.parse_response(out)
    assert response.edns == Edns(1232, 0, True, b"")
    assert [r.rtype for r in response.additional] == [TXT]


# ---------------------------------------------------------------------------------------------
# Rdata of every kind


@pytest.mark.parametrize(("record", "rdata"), [
    pytest.param(Record("x", A, 1, "10.0.0.255"), "0a0000ff", id="A"),
    pytest.param(Record("x", AAAA, 1, "2001:db8::1"), "20010db8000000000000000000000001",
                 id="AAAA"),
    pytest.param(Record("x", NS, 1, "ns.x"), "026e73c00c", id="NS"),
    pytest.param(Record("x", CNAME, 1, "y.z"), "0179017a00", id="CNAME"),
    pytest.param(Record("x", PTR, 1, "web.x"), "03776562c00c", id="PTR"),
    pytest.param(Record("x", TXT, 1, ("dns-version=1.1.0",)),
                 "11" + b"dns-version=1.1.0".hex(), id="TXT"),
    pytest.param(Record("x", TXT, 1, ("a", "", "bc")), "0161000262 63".replace(" ", ""),
                 id="TXT-several"),
    pytest.param(Record("x", TXT, 1, ()), "00", id="TXT-none"),
    pytest.param(Record("x", TXT, 1, ("é",)), "02c3a9", id="TXT-utf8"),
    pytest.param(Record("x", SRV, 1, Srv(10, 20, 53, "x")), "000a00140035 017800", id="SRV"),
    pytest.param(Record("x", SOA, 1, Soa("x", "h.x", 1, 2, 3, 4, 5)),
                 "c00c 0168c00c 00000001 00000002 00000003 00000004 00000005", id="SOA"),
    pytest.param(Record("x", 99, 1, "00ff10"), "00ff10", id="unknown-hex"),
    pytest.param(Record("x", 99, 1, ""), "", id="unknown-empty"),
])
def test_encode_rdata(record: Record, rdata: str) -> None:
    q = query("x")
    out = wire.encode_response(q, Answer(answer=(record,)))
    start = 12 + len(q.question_wire) + 2 + 10
    expected = bytes.fromhex(rdata)
    assert out[start - 2:start] == struct.pack(">H", len(expected))
    assert out[start:] == expected
    back = wire.parse_response(out).answer
    if record.rtype == TXT and record.rdata == ():
        assert back == (Record("x", TXT, 1, ("",)),)
    else:
        assert back == (record,)


def test_txt_longer_than_255_is_split() -> None:
    text = "x" * 300
    out = wire.encode_response(query("x"), Answer(answer=(Record("x", TXT, 1, (text,)),)))
    back = wire.parse_response(out).answer[0]
    assert back.rdata == ("x" * 255, "x" * 45)
    assert out.endswith(b"\xff" + b"x" * 255 + b"\x2d" + b"x" * 45)


def test_ttl_clamped() -> None:
    out = wire.encode_response(query(), Answer(answer=(
        Record("a.example", A, -5, "192.0.2.1"), Record("b.example", A, 2**40, "192.0.2.1"))))
    assert [r.ttl for r in wire.parse_response(out).answer] == [0, 0x7FFFFFFF]


@pytest.mark.parametrize("record", [
    pytest.param(Record("a.example", A, 1, "300.1.1.1"), id="bad-ipv4"),
    pytest.param(Record("a.example", A, 1, "::1"), id="ipv6-in-A"),
    pytest.param(Record("a.example", AAAA, 1, "10.0.0.1"), id="ipv4-in-AAAA"),
    pytest.param(Record("a.example", A, 1, Srv(1, 1, 1, "x")), id="srv-in-A"),
    pytest.param(Record("a.example", SRV, 1, "x"), id="text-in-SRV"),
    pytest.param(Record("a" * 64 + ".example", A, 1, "10.0.0.1"), id="label-64"),
    pytest.param(Record("a..example", A, 1, "10.0.0.1"), id="empty-label"),
    pytest.param(Record(LONG_256, A, 1, "10.0.0.1"), id="name-256"),
    pytest.param(Record("a.example", CNAME, 1, LONG_256), id="target-256"),
    pytest.param(Record("a.example", 99, 1, "xyz"), id="bad-hex"),
    pytest.param(Record("a.example", 41, 1, ""), id="opt-as-record"),
    pytest.param(Record("a\\999.example", A, 1, "10.0.0.1"), id="bad-escape"),
    pytest.param(Record("a.example\\", A, 1, "10.0.0.1"), id="dangling-backslash"),
    pytest.param(Record("a.example", SRV, 1, Srv(70000, 1, 1, "x")), id="srv-priority-range"),
    pytest.param(Record("a.example", TXT, 1, ("\ud800",)), id="lone-surrogate"),
    pytest.param(Record("a.example", A, 1, "10.0.0.1", rclass=70000), id="class-range"),
])
def test_encode_refuses_what_it_cannot_send(record: Record) -> None:
    with pytest.raises(WireError) as caught:
        wire.encode_response(query(), Answer(answer=(record,)))
    assert caught.value.rcode == SERVFAIL


def test_names_with_final_dot_and_root() -> None:
    out = wire.encode_response(query(), Answer(answer=(
        Record("a.example.", NS, 1, "."), Record("", NS, 1, "ns.example"))))
    assert [(r.name, r.rdata) for r in wire.parse_response(out).answer] == [
        ("a.example", ""), ("", "ns.example")]


# ---------------------------------------------------------------------------------------------
# Size and truncation


def a_records(owner: str, n: int, prefix: str = "10.0.0") -> tuple[Record, ...]:
    return tuple(Record(owner, A, 30, f"{prefix}.{i}") for i in range(n))


@pytest.mark.parametrize(("edns", "limit"), [
    pytest.param(None, 512, id="no-edns"),
    pytest.param(opt(4096), 1232, id="large-capped"),
    pytest.param(opt(1000), 1000, id="client-smaller"),
    pytest.param(opt(100), 512, id="below-512-counts-as-512"),
])
def test_udp_limit(edns: bytes | None, limit: int) -> None:
    assert wire.udp_limit(query(edns=edns)) == limit


def test_truncation_drops_whole_rrset_and_sets_tc() -> None:
    # a.example A: 12 + 15 question; each A 16 octets: 30 fit in 512 (507), 31 do not (523).
    q = query()
    fits = wire.encode_response(q, Answer(answer=a_records("a.example", 30)))
    assert (len(fits), counts(fits), flags_of(fits) & 0x0200) == (507, (1, 30, 0, 0), 0)
    over = wire.encode_response(q, Answer(answer=a_records("a.example", 31)))
    assert counts(over) == (1, 0, 0, 0)
    assert flags_of(over) & 0x0200
    assert over == header(flags=0x8780) + question("a.example")  # QR AA TC RD RA
    tcp = wire.encode_response(q, Answer(answer=a_records("a.example", 31)), max_size=65535)
    assert counts(tcp) == (1, 31, 0, 0)
    assert not flags_of(tcp) & 0x0200


def test_truncation_keeps_rrsets_that_fit() -> None:
    q = query()
    first = (Record("a.example", CNAME, 30, "b.example"),)
    out = wire.encode_response(q, Answer(answer=first + a_records("b.example", 40)))
    assert counts(out) == (1, 1, 0, 0)
    assert flags_of(out) & 0x0200
    assert wire.parse_response(out).answer == first


def test_truncation_groups_interleaved_rrsets() -> None:
    q = query()
    mixed = (Record("a.example", A, 30, "10.0.0.1"), Record("a.example", AAAA, 30, "::1"),
             Record("A.EXAMPLE", A, 30, "10.0.0.2"))
    out = wire.encode_response(q, Answer(answer=mixed), max_size=12 + 15 + 16 + 25)
    assert [r.rdata for r in wire.parse_response(out).answer] == ["10.0.0.1", "10.0.0.2"]
    assert flags_of(out) & 0x0200
    full = wire.encode_response(q, Answer(answer=mixed))
    assert [r.rdata for r in wire.parse_response(full).answer] == ["10.0.0.1", "10.0.0.2", "::1"]


def test_authority_overflow_sets_tc_additional_overflow_does_not() -> None:
    q = query()
    soa = Record("example", SOA, 30, Soa("ns.example", "h.example", 1, 2, 3, 4, 5))
    answer = a_records("a.example", 29)  # 12 + 15 + 29 * 16 = 491
    out = wire.encode_response(q, Answer(answer=answer, authority=(soa,)))
    assert counts(out) == (1, 29, 0, 0)
    assert flags_of(out) & 0x0200
    out = wire.encode_response(q, Answer(answer=answer,
                                         additional=a_records("b.example", 3)))
    assert counts(out) == (1, 29, 0, 0)
    assert not flags_of(out) & 0x0200


def test_truncation_keeps_opt_and_respects_client_size() -> None:
    q = query(edns=opt(1000, do=True))
    out = wire.encode_response(q, Answer(answer=a_records("a.example", 100)))
    assert counts(out) == (1, 0, 0, 1)
    assert flags_of(out) & 0x0200
    assert out.endswith(bytes.fromhex("00 0029 04d0 00008000 0000"))
    fits = wire.encode_response(q, Answer(answer=a_records("a.example", 60)))
    assert len(fits) == 12 + 15 + 60 * 16 + 11 <= 1000
    assert counts(fits) == (1, 60, 0, 1)


def many(n: int) -> Answer:
    return Answer(answer=tuple(Record("a.example", A, 30, f"10.{i // 256}.{i % 256}.1")
                               for i in range(n)))


def test_tcp_size() -> None:
    q = query()
    out = wire.encode_response(q, many(4000), max_size=wire.TCP_MAX)
    assert counts(out) == (1, 4000, 0, 0)
    assert len(out) == 12 + 15 + 4000 * 16
    out = wire.encode_response(q, many(4100), max_size=wire.TCP_MAX)  # 65,627 octets
    assert counts(out) == (1, 0, 0, 0)
    assert flags_of(out) & 0x0200


def test_no_pointers_past_16k() -> None:
    # Pointers hold 14 bits: names written beyond offset 16383 are not compression targets.
    q = query()
    records = tuple(Record(f"h{i}.b.example", A, 30, f"10.{j}.{i // 256}.{i % 256}")
                    for i in range(1200) for j in (1, 2))  # the second owner points back
    out = wire.encode_response(q, Answer(answer=records), max_size=wire.TCP_MAX)
    assert len(out) > 0x4000
    assert wire.parse_response(out).answer == records


# ---------------------------------------------------------------------------------------------
# Error responses


def test_encode_error_from_bytes_echoes_question() -> None:
    data = query_bytes("Q.example", qid=0x1111, flags=0x0100) + b"\x00"
    assert wire.encode_error(data, REFUSED) == header(0x1111, 0x8185) + question("Q.example")


def test_encode_error_notimp_echoes_opcode() -> None:
    data = query_bytes(flags=0x2000)  # NOTIFY
    assert wire.encode_error(data, NOTIMP) == header(0xABCD, 0xA084) + question("a.example")


def test_encode_error_unreadable_question_has_none() -> None:
    assert wire.encode_error(header() + b"\x05ab", FORMERR) == header(flags=0x8181, qd=0)
    assert wire.encode_error(header(qd=2) + question("a.x") + question("b.x"), FORMERR) == \
        header(flags=0x8181, qd=0)


def test_encode_error_drops() -> None:
    assert wire.encode_error(b"\x12" * 11, FORMERR) is None
    assert wire.encode_error(query_bytes(flags=0x8000), FORMERR) is None


def test_encode_error_from_query_keeps_edns() -> None:
    q = query(qid=2, edns=opt(4096))
    assert wire.encode_error(q, SERVFAIL) == (header(2, 0x8182, ar=1) + question("a.example")
                                              + bytes.fromhex("00 0029 04d0 00000000 0000"))


# ---------------------------------------------------------------------------------------------
# Parsing upstream responses


def upstream(*records: bytes, an: int | None = None, flags: int = 0x8180, ar: int = 0,
             tail: bytes = b"") -> bytes:
    n = len(records) if an is None else an
    return header(0x4242, flags, an=n, ar=ar) + question("a.example", MX) + b"".join(records) \
        + tail


def test_response_unknown_type_as_hex_and_mx_decompressed() -> None:
    data = upstream(rr(b"\xc0\x0c", MX, b"\x00\x0a\x04mail\xc0\x0e"),
                    rr(b"\xc0\x0c", 65, b"\x00\x01\x00\x00\x01\x00\x03\x02h2"),
                    rr(b"\xc0\x0c", 99, b""))
    response = wire.parse_response(data)
    assert response.answer == (
        Record("a.example", MX, 300, "000a" + name("mail.example").hex()),
        Record("a.example", 65, 300, "00010000010003026832"),
        Record("a.example", 99, 300, ""))
    # Back out: the MX rdata is position-free, so it re-encodes as is.
    out = wire.encode_response(query("a.example", MX), Answer(answer=response.answer))
    assert wire.parse_response(out).answer == response.answer


def test_response_fields() -> None:
    data = upstream(rr(b"\xc0\x0c", A, b"\x01\x02\x03\x04", ttl=0x80000001),
                    rr(b"\xc0\x0c", AAAA, bytes(15) + b"\x01"),
                    flags=0x8583, ar=1, tail=opt(4096, ext_rcode=0))
    response = wire.parse_response(data)
    assert (response.id, response.rcode, response.aa, response.ra, response.tc) == \
        (0x4242, NXDOMAIN, True, True, False)
    assert response.questions == (Question("a.example", MX, 1),)
    assert response.answer == (Record("a.example", A, 0, "1.2.3.4"),
                               Record("a.example", AAAA, 300, "::1"))
    assert response.edns == Edns(4096, 0, False, b"")
    assert response.additional == ()


@pytest.mark.parametrize("data", [
    pytest.param(b"\x00" * 11, id="short"),
    pytest.param(upstream(flags=0x0100), id="qr-clear"),
    pytest.param(upstream(rr(b"\xc0\x0c", A, b"\x01\x02\x03")), id="A-3-octets"),
    pytest.param(upstream(rr(b"\xc0\x0c", AAAA, b"\x01")), id="AAAA-1-octet"),
    pytest.param(upstream(rr(b"\xc0\x0c", CNAME, name("b.example") + b"x")), id="cname-slack"),
    pytest.param(upstream(rr(b"\xc0\x0c", SOA, name("b") + name("c") + b"\x00" * 19)),
                 id="soa-short"),
    pytest.param(upstream(rr(b"\xc0\x0c", SRV, b"\x00\x00")), id="srv-short"),
    pytest.param(upstream(rr(b"\xc0\x0c", TXT, b"")), id="txt-empty"),
    pytest.param(upstream(rr(b"\xc0\x0c", TXT, b"\x05ab")), id="txt-past-rdata"),
    pytest.param(upstream(rr(b"\xc0\x0c", MX, b"\x00")), id="mx-short"),
    pytest.param(upstream(rr(b"\xc0\x0c", MX, b"\x00\x01\x00\x00")), id="mx-slack"),
    pytest.param(upstream(rr(b"\xc0\x0c", A, b"\x01\x02\x03\x04"), an=2), id="count-lies"),
    pytest.param(upstream(opt(), an=1), id="opt-in-answer"),
    pytest.param(upstream(ar=2, tail=opt() + opt()), id="two-opts"),
    pytest.param(upstream(rr(b"\xc0\x40", A, b"1234")), id="pointer-forward"),
])
def test_response_rejects(data: bytes) -> None:
    with pytest.raises(WireError) as caught:
        wire.parse_response(data)
    assert caught.value.rcode == FORMERR


def test_truncated_response_returns_what_was_complete() -> None:
    data = upstream(rr(b"\xc0\x0c", A, b"\x01\x02\x03\x04"), an=3, flags=0x8380)
    data += rr(b"\xc0\x0c", A, b"\x05\x06\x07\x08")[:-2]
    response = wire.parse_response(data)
    assert response.tc
    assert response.answer == (Record("a.example", A, 300, "1.2.3.4"),)


def test_response_extended_rcode() -> None:
    response = wire.parse_response(upstream(ar=1, tail=opt(ext_rcode=1)))
    assert response.rcode == BADVERS


# ---------------------------------------------------------------------------------------------
# Fuzz: random and mutated messages never raise anything but WireError


SEEDS = [
    query_bytes(),
    query_bytes("WeB.Default.svc.cluster.local", SRV, edns=opt(4096, do=True,
                                                               options=b"\x00\x0a\x00\x02ab")),
    header(an=1, ar=2) + question("a.example") + rr(b"\xc0\x0e", A, b"1234")
    + rr(b"\x01b\xc0\x0c", TXT, b"\x02hi") + opt(),
    header() + b"\x00\x00\x02\x00\x01",
]


def response_seeds() -> list[bytes]:
    out = []
    for seed in SEEDS[:2]:
        q = wire.parse_query(seed)
        out.append(wire.encode_response(q, Answer(
            answer=(Record(q.question.name, CNAME, 5, "web.example"),
                    Record("web.example", A, 5, "10.0.0.1"),
                    Record("web.example", AAAA, 5, "fd00::1"),
                    Record("web.example", TXT, 5, ("hello", "world")),
                    Record("web.example", SRV, 5, Srv(1, 2, 3, "t.example"))),
            authority=(Record("example", SOA, 5, Soa("ns.example", "h.example", 1, 2, 3, 4, 5)),
                       Record("example", NS, 5, "ns.example")),
            additional=(Record("ns.example", PTR, 5, "p.example"),)), max_size=4096))
    out.append(upstream(rr(b"\xc0\x0c", MX, b"\x00\x0a\x04mail\xc0\x0e"),
                        rr(b"\xc0\x0c", 35, b"\x00\x01\x00\x02\x01s\x01t\x00\xc0\x0c")))
    return out


class Noise:
    """Seeded randomness, cheap: random.Random.randrange would be most of the fuzz's time."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.random = rng.random
        self.pool = rng.randbytes(1 << 20)

    def below(self, n: int) -> int:
        return int(self.random() * n)

    def bytes(self, n: int) -> bytes:
        at = self.below(len(self.pool) - n)
        return self.pool[at:at + n]

    def choice(self, items: Sequence[T]) -> T:
        return items[self.below(len(items))]


def mutate(noise: Noise, data: bytes) -> bytes:
    buf = bytearray(data)
    below = noise.below
    for _ in range(1 + below(3)):
        choice = below(7)
        if choice == 0 and buf:
            buf[below(len(buf))] = below(256)
        elif choice == 1 and buf:
            buf[below(len(buf))] ^= 1 << below(8)
        elif choice == 2:
            del buf[below(len(buf) + 1):]
        elif choice == 3:
            at = below(len(buf) + 1)
            buf[at:at] = noise.bytes(1 + below(5))
        elif choice == 4 and len(buf) > 12:
            at = 12 + below(len(buf) - 12)
            buf[at:at + 2] = bytes((0xC0 | below(4), below(256)))
        elif choice == 5 and len(buf) >= 12:
            at = noise.choice((4, 6, 8, 10))
            buf[at:at + 2] = struct.pack(">H", noise.choice((0, 1, 2, 3, 255, 65535)))
        elif choice == 6 and len(buf) > 12:
            buf[12 + below(len(buf) - 12)] = noise.choice((0, 63, 64, 0x80, 0xC0, 0xFF))
    return bytes(buf)


def test_fuzz_queries() -> None:
    noise = Noise(20260526)
    answer = Answer(answer=(Record("x.example", A, 5, "10.0.0.1"),))
    parsed = 0
    for i in range(100_000):
        if i % 2:
            data = noise.bytes(noise.below(64))
            if i % 8 == 1 and len(data) >= 6:  # make it look like a query: RD, one question
                data = data[:2] + b"\x01\x00\x00\x01" + data[6:]
        else:
            data = mutate(noise, noise.choice(SEEDS))
        try:
            q = wire._parse_query(data)
        except WireError as exc:
            reply = wire.encode_error(exc.query or data, exc.rcode)
            assert reply is None or reply[:2] == data[:2]
            continue
        parsed += 1
        out = wire.encode_response(q, answer)
        assert len(out) <= 512 or q.edns is not None
        assert wire.parse_response(out).questions == (q.question,)
    assert parsed > 10_000  # the mutations leave plenty of valid queries to encode


def test_fuzz_responses() -> None:
    noise = Noise(7)
    seeds = response_seeds()
    q = wire.parse_query(SEEDS[0])
    parsed = 0
    for i in range(30_000):
        if i % 3 == 0:
            data = b"\x00\x00\x81\x80" + noise.bytes(noise.below(80))
        else:
            data = mutate(noise, noise.choice(seeds))
        try:
            response = wire._parse_response(data)
        except WireError:
            continue
        parsed += 1
        if parsed % 4:
            continue
        # What was read can be sent on (the forwarder does that), or is refused cleanly.
        records = response.answer + response.authority + response.additional
        try:
            wire.encode_response(q, Answer(answer=records), max_size=wire.TCP_MAX)
        except WireError as exc:
            assert exc.rcode == SERVFAIL
    assert parsed > 4_000


def test_unexpected_exceptions_become_wire_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(data: bytes) -> Query:
        raise IndexError("a bug")

    monkeypatch.setattr(wire, "_parse_query", boom)
    monkeypatch.setattr(wire, "_parse_response", boom)
    for parse in (wire.parse_query, wire.parse_response):
        with pytest.raises(WireError) as caught:
            parse(b"")
        assert caught.value.rcode == FORMERR
