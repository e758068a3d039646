"""The DNS server's receive path and index following, without sockets: queries go into
DnsServer.handle_udp / UdpProtocol.datagram_received and the responses land in a fake
transport; API events go into the handlers and `apply()`."""

from __future__ import annotations

import struct
from typing import Any

from podnet.dns import wire
from podnet.dns.forward import encode_query
from podnet.dns.index import DnsConfig
from podnet.dns.metrics import Metrics
from podnet.dns.model import NOERROR, NXDOMAIN, SERVFAIL, A
from podnet.dns.server import DnsServer, UdpProtocol

WEB = "web.default.svc.cluster.local"


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def sendto(self, data: bytes, addr: Any) -> None:
        self.sent.append((data, addr))

    def is_closing(self) -> bool:
        return False


def service(name: str, ip: str, uid: str = "u-web") -> dict[str, Any]:
    return {"metadata": {"namespace": "default", "name": name, "uid": uid},
            "spec": {"clusterIP": ip, "clusterIPs": [ip], "ports": [{"port": 80}]}}


def namespace(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": f"ns-{name}"}}


def ready_server() -> tuple[DnsServer, UdpProtocol, FakeTransport]:
    server = DnsServer(DnsConfig(), None, Metrics())
    server.objects.on_namespace("ADDED", namespace("default"))
    server.objects.on_service("ADDED", service("web", "10.96.0.20"))
    server.rebuild()
    server.ready = True
    proto = UdpProtocol(server)
    transport = FakeTransport()
    proto.connection_made(transport)  # type: ignore[arg-type]
    return server, proto, transport


def ask(proto: UdpProtocol, transport: FakeTransport, packet: bytes) -> wire.Response | None:
    before = len(transport.sent)
    proto.datagram_received(packet, ("10.0.0.9", 5353))
    if len(transport.sent) == before:
        return None
    data, addr = transport.sent[-1]
    assert addr == ("10.0.0.9", 5353)
    return wire.parse_response(data)


def addresses(resp: wire.Response | None) -> list[str]:
    assert resp is not None
    return [str(r.rdata) for r in resp.answer if r.rtype == A]


def test_the_zone_is_servfail_until_the_cluster_is_listed() -> None:
    server = DnsServer(DnsConfig(), None, Metrics())
    proto, transport = UdpProtocol(server), FakeTransport()
    proto.connection_made(transport)  # type: ignore[arg-type]
    resp = ask(proto, transport, encode_query(1, WEB, A))
    assert resp is not None and resp.rcode == SERVFAIL
    assert server.udp_cache.entries == {}  # never cached


def test_answers_come_from_the_cache_with_the_id_patched_until_the_index_changes() -> None:
    server, proto, transport = ready_server()
    first = ask(proto, transport, encode_query(1, WEB, A))
    assert addresses(first) == ["10.96.0.20"]
    assert len(server.udp_cache.entries) == 1
    again = ask(proto, transport, encode_query(2, WEB, A))
    assert again is not None and again.id == 2 and addresses(again) == ["10.96.0.20"]
    assert server.udp_cache.entries[encode_query(2, WEB, A)[2:]][2] == 1  # one hit
    # The Service changes: the cache is cleared, the next answer is the new one.
    server.objects.on_service("MODIFIED", service("web", "10.96.0.21"))
    server.apply()
    assert server.udp_cache.entries == {}
    assert addresses(ask(proto, transport, encode_query(3, WEB, A))) == ["10.96.0.21"]
    server.objects.on_service("DELETED", service("web", "10.96.0.21"))
    server.apply()
    resp = ask(proto, transport, encode_query(4, WEB, A))
    assert resp is not None and resp.rcode == NXDOMAIN
    server.udp_cache.fold_all()
    assert server.metrics.cache_hits["response"] == 1
    assert server.metrics.requests[("udp", "A")] == 4


def test_queries_differing_only_in_an_edns_option_share_one_cache_entry() -> None:
    server, proto, transport = ready_server()
    plain = encode_query(7, WEB, A)
    cookie = struct.pack(">HH8s", 10, 8, b"cookie01")

    def with_option(packet: bytes, option: bytes) -> bytes:
        # the OPT is the last 11 octets; its rdlength is the last 2
        return packet[:-2] + struct.pack(">H", len(option)) + option

    assert addresses(ask(proto, transport, plain)) == ["10.96.0.20"]
    resp = ask(proto, transport, with_option(plain, cookie))
    assert resp is not None and resp.id == 7 and addresses(resp) == ["10.96.0.20"]
    assert server.metrics.cache_misses["response"] == 1
    assert len(server.udp_cache.by_question) == 1 and len(server.udp_cache.entries) == 2


def test_rd_and_do_are_part_of_the_key() -> None:
    server, proto, transport = ready_server()
    with_rd = encode_query(1, WEB, A)
    without_rd = with_rd[:2] + b"\x00\x00" + with_rd[4:]
    a = ask(proto, transport, with_rd)
    b = ask(proto, transport, without_rd)
    assert a is not None and b is not None and a.rd and not b.rd
    c = ask(proto, transport, encode_query(1, WEB, A, do=True))
    assert c is not None and c.edns is not None and c.edns.do
    assert server.metrics.cache_misses["response"] == 3


def test_bad_packets_get_formerr_or_notimp_or_are_dropped() -> None:
    server, proto, transport = ready_server()
    assert ask(proto, transport, b"\x00\x01\x00") is None  # no header
    good = encode_query(9, WEB, A)
    assert ask(proto, transport, good[:2] + b"\x80\x00" + good[4:]) is None  # a response
    resp = ask(proto, transport, good[:-5])  # the OPT cut short
    assert resp is not None and (resp.id, resp.rcode) == (9, 1)
    resp = ask(proto, transport, good[:2] + b"\x28\x00" + good[4:])  # opcode UPDATE
    assert resp is not None and resp.rcode == 4
    bad_version = good[:-5] + b"\x01" + good[-4:]  # EDNS version 1
    resp = ask(proto, transport, bad_version)
    assert resp is not None and resp.rcode == 16  # BADVERS, in the OPT
    assert server.metrics.dropped == {"not a query": 2}
    assert server.udp_cache.entries.keys() == set()


def test_a_slice_moving_to_another_service_updates_both() -> None:
    server, proto, transport = ready_server()
    objs = server.objects
    for name in ("a", "b"):
        objs.on_service("ADDED", {"metadata": {"namespace": "default", "name": name,
                                               "uid": f"u-{name}"},
                                  "spec": {"clusterIP": "None"}})

    def slice_for(svc: str) -> dict[str, Any]:
        return {"metadata": {"namespace": "default", "name": "s", "uid": "s1",
                             "labels": {"kubernetes.io/service-name": svc}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": True}}]}

    objs.on_slice("ADDED", slice_for("a"))
    server.apply()
    assert addresses(ask(proto, transport, encode_query(1, "a.default.svc.cluster.local", A))) \
        == ["10.244.0.5"]
    objs.on_slice("MODIFIED", slice_for("b"))
    assert objs.dirty == {("default", "a"), ("default", "b")}
    server.apply()
    resp = ask(proto, transport, encode_query(2, "a.default.svc.cluster.local", A))
    assert resp is not None and resp.rcode == NXDOMAIN
    assert addresses(ask(proto, transport, encode_query(3, "b.default.svc.cluster.local", A))) \
        == ["10.244.0.5"]
    serial = server.index.serial
    objs.on_slice("DELETED", slice_for("b"))
    server.apply()
    assert server.index.serial > serial
    resp = ask(proto, transport, encode_query(4, "b.default.svc.cluster.local", A))
    assert resp is not None and resp.rcode == NXDOMAIN


def test_a_stale_delete_does_not_remove_a_recreated_service() -> None:
    server, proto, transport = ready_server()
    server.objects.on_service("ADDED", service("web", "10.96.0.30", uid="u-new"))
    server.objects.on_service("DELETED", service("web", "10.96.0.20", uid="u-web"))
    server.apply()
    resp = ask(proto, transport, encode_query(1, WEB, A))
    assert resp is not None and resp.rcode == NOERROR and addresses(resp) == ["10.96.0.30"]
