"""The forwarder's pure parts: the query encoder, the TTL rules of its cache (RFC 2308 for
negative answers), upstream addresses and resolv.conf; and the metrics' text format."""

from __future__ import annotations

import pytest

from podnet.dns import wire
from podnet.dns.forward import (
    HINFO,
    ForwardCache,
    Resolved,
    cache_ttl,
    encode_query,
    name_wire,
    parse_upstream,
    resolv_conf_nameservers,
)
from podnet.dns.metrics import Metrics, rcode_name, type_name
from podnet.dns.model import AAAA, CNAME, NOERROR, NXDOMAIN, SERVFAIL, SOA, A, Record, Soa

SOA_RDATA = Soa("ns.example.com", "admin.example.com", 1, 7200, 900, 86400, 30)


def a(name: str, ttl: int, ip: str = "192.0.2.1") -> Record:
    return Record(name, A, ttl, ip)


def soa(ttl: int, minimum: int) -> Record:
    return Record("example.com", SOA, ttl, Soa("ns.example.com", "admin.example.com", 1, 7200,
                                               900, 86400, minimum))


# --- the query encoder ---------------------------------------------------------------------

def test_encode_query_reads_back_as_the_same_query() -> None:
    q = wire.parse_query(encode_query(0xBEEF, "WWW.Example.com", AAAA, do=True, cd=True))
    assert (q.id, q.question.name, q.question.qtype, q.question.qclass) == (
        0xBEEF, "WWW.Example.com", AAAA, 1)
    assert q.rd and q.cd and not q.ad
    assert q.edns is not None and (q.edns.payload, q.edns.version, q.edns.do) == (1232, 0, True)


@pytest.mark.parametrize(("name", "wire_form"), [
    pytest.param("", b"\x00", id="root"),
    pytest.param("a.b", b"\x01a\x01b\x00", id="plain"),
    pytest.param("a.b.", b"\x01a\x01b\x00", id="final dot"),
    pytest.param("a\\.b.c", b"\x03a.b\x01c\x00", id="escaped dot"),
    pytest.param("\\000x.c", b"\x02\x00x\x01c\x00", id="decimal escape"),
])
def test_name_wire(name: str, wire_form: bytes) -> None:
    assert name_wire(name) == wire_form


@pytest.mark.parametrize("name", [
    pytest.param("a" * 64 + ".com", id="label of 64"),
    pytest.param(".".join(["a" * 63] * 4), id="name of 257 octets"),
    pytest.param("a..b", id="empty label"),
])
def test_name_wire_refuses(name: str) -> None:
    with pytest.raises(ValueError):
        name_wire(name)


# --- cache TTLs -------------------------------------------------------------------------

@pytest.mark.parametrize(("res", "ttl"), [
    pytest.param(Resolved(NOERROR, (a("x", 300), a("x", 60, "192.0.2.2"))), 60,
                 id="positive: the smallest TTL of the answer"),
    pytest.param(Resolved(NOERROR, (Record("x", CNAME, 20, "y"), a("y", 300))), 20,
                 id="a CNAME chain: its smallest TTL"),
    pytest.param(Resolved(NOERROR, (a("x", 7200),)), 3600, id="capped at one hour"),
    pytest.param(Resolved(NXDOMAIN, (), (soa(60, 30),)), 30, id="NXDOMAIN: the SOA minimum"),
    pytest.param(Resolved(NXDOMAIN, (), (soa(10, 30),)), 10, id="NXDOMAIN: the SOA's own TTL"),
    pytest.param(Resolved(NOERROR, (), (soa(60, 30),)), 30, id="NODATA: as NXDOMAIN"),
    pytest.param(Resolved(NXDOMAIN), None, id="negative without an SOA: not cached"),
    pytest.param(Resolved(SERVFAIL), None, id="SERVFAIL: not cached"),
    pytest.param(Resolved(NOERROR, (a("x", 0),)), None, id="TTL 0: not cached"),
])
def test_cache_ttl(res: Resolved, ttl: int | None) -> None:
    assert cache_ttl(res) == ttl


def test_the_cache_counts_ttls_down_and_forgets_at_expiry() -> None:
    cache = ForwardCache(size=10)
    key = ("x", A, 1, False, False)
    assert cache.put(key, Resolved(NOERROR, (a("x", 60),)), now=100.0)
    assert cache.get(key, now=100.5) == Resolved(NOERROR, (a("x", 60),))
    assert cache.get(key, now=125.0) == Resolved(NOERROR, (a("x", 35),))
    assert cache.get(key, now=160.0) is None
    assert len(cache) == 0


def test_the_cache_is_bounded_and_drops_the_oldest() -> None:
    cache = ForwardCache(size=2)
    keys = [(f"n{i}", A, 1, False, False) for i in range(3)]
    for k in keys:
        cache.put(k, Resolved(NOERROR, (a(k[0], 60),)), now=0.0)
    assert [cache.get(k, now=1.0) is not None for k in keys] == [False, True, True]


def test_the_cache_keeps_no_uncacheable_answer() -> None:
    cache = ForwardCache()
    assert not cache.put(("x", A, 1, False, False), Resolved(SERVFAIL), now=0.0)
    assert len(cache) == 0


# --- upstreams ---------------------------------------------------------------------

@pytest.mark.parametrize(("text", "want"), [
    pytest.param("10.0.0.1", ("10.0.0.1", 53), id="IPv4"),
    pytest.param("10.0.0.1:5353", ("10.0.0.1", 5353), id="IPv4 and port"),
    pytest.param("fd00::1", ("fd00::1", 53), id="IPv6"),
    pytest.param("[fd00::1]:5353", ("fd00::1", 5353), id="IPv6 and port"),
    pytest.param("fe80::1%eth0", ("fe80::1", 53), id="scope dropped"),
])
def test_parse_upstream(text: str, want: tuple[str, int]) -> None:
    assert parse_upstream(text) == want


@pytest.mark.parametrize("text", ["dns.example", "10.0.0.1:0", "10.0.0.1:x", "[fd00::1",
                                  "1.2.3.4:70000"])
def test_parse_upstream_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_upstream(text)


def test_resolv_conf_nameservers() -> None:
    text = ("# generated\nsearch example.com\nnameserver 10.0.0.2\nnameserver fd00::53\n"
            "nameserver not-an-ip\noptions ndots:5\n  nameserver 10.0.0.3 # trailing\n")
    assert resolv_conf_nameservers(text) == ["10.0.0.2", "fd00::53", "10.0.0.3"]


def test_the_probe_type_is_hinfo() -> None:
    assert HINFO == 13 and type_name(HINFO) == "HINFO"


# --- metrics ---------------------------------------------------------------------

def test_metrics_render_in_the_prometheus_text_format() -> None:
    m = Metrics()
    m.request("udp", A)
    m.request("udp", 4242)
    m.fold_hits("udp", A, NXDOMAIN, 5)
    m.response("tcp", 16)
    m.drop("not a query")
    m.forwarded("10.0.0.2:53")
    m.forward_failed("10.0.0.2:53", "timeout")
    m.duration("udp", 0.0003)
    m.duration("udp", 7.0)
    m.programmed(0.004, 42)
    text = m.render()
    lines = set(text.splitlines())
    for want in [
        'podnet_dns_requests_total{proto="udp",type="A"} 6',
        'podnet_dns_requests_total{proto="udp",type="other"} 1',
        'podnet_dns_responses_total{proto="udp",rcode="NXDOMAIN"} 5',
        'podnet_dns_responses_total{proto="tcp",rcode="BADVERS"} 1',
        'podnet_dns_dropped_total{reason="not a query"} 1',
        'podnet_dns_cache_hits_total{cache="response"} 5',
        'podnet_dns_forward_requests_total{upstream="10.0.0.2:53"} 1',
        'podnet_dns_forward_failures_total{upstream="10.0.0.2:53",reason="timeout"} 1',
        'podnet_dns_request_duration_seconds_bucket{proto="udp",le="0.00025"} 0',
        'podnet_dns_request_duration_seconds_bucket{proto="udp",le="0.0005"} 1',
        'podnet_dns_request_duration_seconds_bucket{proto="udp",le="5"} 1',
        'podnet_dns_request_duration_seconds_bucket{proto="udp",le="+Inf"} 2',
        'podnet_dns_request_duration_seconds_count{proto="udp"} 2',
        "podnet_dns_index_updates_total 1",
        "podnet_dns_programming_latency_seconds 0.004",
        "podnet_dns_index_serial 42",
        "podnet_dns_forward_loop_detected 0",
        "podnet_dns_healthy 1",
        "# TYPE podnet_dns_request_duration_seconds histogram",
    ]:
        assert want in lines, want
    assert text.endswith("\n")
    # every sample line belongs to a family announced before it
    declared: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            declared.add(line.split()[2])
        elif not line.startswith("#"):
            name = line.split("{")[0].split()[0]
            base = name.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count")
            assert name in declared or base in declared, line


def test_label_values_stay_bounded() -> None:
    assert [type_name(t) for t in (1, 28, 33, 65, 999)] == ["A", "AAAA", "SRV", "HTTPS",
                                                            "other"]
    assert [rcode_name(r) for r in (0, 3, 16, 9)] == ["NOERROR", "NXDOMAIN", "BADVERS", "other"]
