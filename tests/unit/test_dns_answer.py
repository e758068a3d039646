"""The cluster DNS's answer rules (podnet.dns.answer over podnet.dns.index), as tables of
question -> expected answer in zone-file syntax (tests/unit/dns_zone.py).

The fixture cluster (zone cluster.local, TTL 30, SOA serial 7):

  Services CIDR 10.96.0.0/12 + fd00:10:96::/112, pods 10.244.0.0/16 + fd00:10:244::/56.

  namespace    Service        kind           addresses / endpoints                    ports
  kube-system  kube-dns       ClusterIP      10.96.0.10 (the zone's nameserver)       dns/UDP 53,
                                                                                      dns-tcp/TCP 53
  default      web            ClusterIP      10.96.0.20                               http/TCP 80
  default      plain          ClusterIP      10.96.0.21                               (unnamed) 8080
  default      dual           ClusterIP      10.96.0.40, fd00:10:96::28               http/TCP 80
  default      v6only         ClusterIP      fd00:10:96::29                           http/TCP 80
  default      db             headless       db-0 10.244.1.10 + fd00:10:244:1::a      pg/TCP 5432,
                                             db-1 10.244.2.11                         metrics 9187,
                                             (no hostname) 10.244.3.13                (unnamed) 9000
                                             db-2 10.244.1.12 NOT READY
  default      pub            headless,      p-0 10.244.1.20 not ready (published)    sip/UDP 5060
                              publishNotReadyAddresses
  default      dark           headless       only a not-ready endpoint
  default      noslice        headless       no EndpointSlice
  default      ext            ExternalName   www.example.com
  default      alias          ExternalName   web.default.svc.cluster.local
  default      alias2         ExternalName   alias.default.svc.cluster.local.
  default      gone           ExternalName   nothere.default.svc.cluster.local
  default      loop1 / loop2  ExternalName   each other
  shop         cart           ClusterIP      10.96.5.5                                http/TCP 8080
  (namespace quiet has no Services)
  pod default/web-abc 10.244.1.50 (for "verified" pod records)
"""

# Zone-file records are kept on one line each, as dig prints them.
# ruff: noqa: E501

from __future__ import annotations

from typing import Any

import pytest
from dns_zone import case, render

from podnet.dns import model
from podnet.dns.answer import answer
from podnet.dns.index import DnsConfig, build_index, set_namespaces, set_pods, update_service
from podnet.dns.model import Answer, Question

SERIAL = 7
CONFIG = DnsConfig(service_cidrs=("10.96.0.0/12", "fd00:10:96::/112"),
                   pod_cidrs=("10.244.0.0/16", "fd00:10:244::/56"))
SOA = ("cluster.local. 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. "
       f"{SERIAL} 7200 1800 86400 30")


def soa(owner: str) -> str:
    return SOA.replace("cluster.local. 30", f"{owner} 30", 1)


NEG = f";; AUTHORITY\n{SOA}"
REV96 = f";; AUTHORITY\n{soa('96.10.in-addr.arpa.')}"
REV244 = f";; AUTHORITY\n{soa('244.10.in-addr.arpa.')}"


# --- the fixture cluster --------------------------------------------------------------------------

def ns(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def svc(namespace: str, name: str, cluster_ips: list[str] | None = None,
        ports: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"ports": ports or []}
    if cluster_ips is not None:
        s["clusterIP"] = cluster_ips[0] if cluster_ips else "None"
        s["clusterIPs"] = cluster_ips or ["None"]
    s.update(spec)
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": namespace, "name": name}, "spec": s}


def port(name: str, number: int, protocol: str = "TCP") -> dict[str, Any]:
    return {"name": name, "port": number, "protocol": protocol}


def ep(*addresses: str, hostname: str | None = None, ready: bool | None = True
       ) -> dict[str, Any]:
    e: dict[str, Any] = {"addresses": list(addresses)}
    if ready is not None:
        e["conditions"] = {"ready": ready, "serving": ready, "terminating": False}
    if hostname:
        e["hostname"] = hostname
    return e


def eps(namespace: str, service: str, name: str, address_type: str,
        endpoints: list[dict[str, Any]], ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"namespace": namespace, "name": name,
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": address_type, "endpoints": endpoints, "ports": ports}


NAMESPACES = [ns("default"), ns("kube-system"), ns("shop"), ns("quiet")]
HEADLESS: list[str] = []
SERVICES = [
    svc("kube-system", "kube-dns", ["10.96.0.10"],
        [port("dns", 53, "UDP"), port("dns-tcp", 53), port("metrics", 9153)]),
    svc("default", "web", ["10.96.0.20"], [port("http", 80)]),
    svc("default", "plain", ["10.96.0.21"], [port("", 8080)]),
    svc("default", "dual", ["10.96.0.40", "fd00:10:96::28"], [port("http", 80)]),
    svc("default", "v6only", ["fd00:10:96::29"], [port("http", 80)]),
    svc("default", "db", HEADLESS, [port("pg", 5432), port("metrics", 9187), port("", 9000)]),
    svc("default", "pub", HEADLESS, [port("sip", 5060, "UDP")], publishNotReadyAddresses=True),
    svc("default", "dark", HEADLESS, [port("http", 80)]),
    svc("default", "noslice", HEADLESS, [port("http", 80)]),
    svc("default", "ext", None, type="ExternalName", externalName="www.example.com"),
    svc("default", "alias", None, type="ExternalName",
        externalName="web.default.svc.cluster.local"),
    svc("default", "alias2", None, type="ExternalName",
        externalName="alias.default.svc.cluster.local."),
    svc("default", "gone", None, type="ExternalName",
        externalName="nothere.default.svc.cluster.local"),
    svc("default", "loop1", None, type="ExternalName",
        externalName="loop2.default.svc.cluster.local"),
    svc("default", "loop2", None, type="ExternalName",
        externalName="loop1.default.svc.cluster.local"),
    svc("shop", "cart", ["10.96.5.5"], [port("http", 8080)]),
]
DB_PORTS = [port("pg", 5432), port("metrics", 9187), port("", 9000)]
SLICES = [
    eps("default", "db", "db-v4", "IPv4", [
        ep("10.244.1.10", hostname="db-0"),
        ep("10.244.2.11", hostname="db-1"),
        ep("10.244.3.13", ready=None),  # no conditions: ready, as the API says
        ep("10.244.1.12", hostname="db-2", ready=False),
    ], DB_PORTS),
    eps("default", "db", "db-v6", "IPv6", [ep("fd00:10:244:1::a", hostname="db-0")], DB_PORTS),
    eps("default", "pub", "pub-1", "IPv4", [ep("10.244.1.20", hostname="p-0", ready=False)],
        [port("sip", 5060, "UDP")]),
    eps("default", "dark", "dark-1", "IPv4", [ep("10.244.1.30", ready=False)], [port("http", 80)]),
    eps("default", "db", "db-fqdn", "FQDN", [ep("db.example.com")], DB_PORTS),  # ignored
]
PODS = [{"apiVersion": "v1", "kind": "Pod",
         "metadata": {"namespace": "default", "name": "web-abc"},
         "status": {"podIP": "10.244.1.50", "podIPs": [{"ip": "10.244.1.50"}]}}]


def index(config: DnsConfig = CONFIG) -> Any:
    return build_index(SERVICES, SLICES, PODS, NAMESPACES, config, serial=SERIAL)


INDEX = index()


def check(q: Question, want: Answer, idx: Any = INDEX) -> None:
    got = answer(q, idx)
    assert render(got) == render(want)


# --- the zone: apex, version, nameserver, empty non-terminals -------------------------------------

ZONE = [
    case("cluster.local. SOA", SOA),
    case("cluster.local. NS", """
    cluster.local. 30 IN NS ns.dns.cluster.local.
    ;; ADDITIONAL
    ns.dns.cluster.local. 30 IN A 10.96.0.10
    """),
    case("cluster.local. A", NEG, id="apex-A-nodata"),
    case("cluster.local. ANY", SOA, id="apex-ANY-is-SOA"),
    case("dns-version.cluster.local. TXT", 'dns-version.cluster.local. 28800 IN TXT "1.1.0"'),
    case("dns-version.cluster.local. A", NEG, id="version-A-nodata"),
    case("ns.dns.cluster.local. A", "ns.dns.cluster.local. 30 IN A 10.96.0.10"),
    case("ns.dns.cluster.local. AAAA", NEG, id="ns-AAAA-nodata"),
    case("dns.cluster.local. A", NEG, id="dns-ent-nodata"),
    case("svc.cluster.local. A", NEG, id="svc-ent-nodata"),
    case("default.svc.cluster.local. A", NEG, id="namespace-ent-nodata"),
    case("quiet.svc.cluster.local. A", NEG, id="namespace-without-services-nodata"),
    case("nosuchns.svc.cluster.local. A", NEG, rcode="NXDOMAIN", id="unknown-namespace"),
    case("foo.cluster.local. A", NEG, rcode="NXDOMAIN", id="unknown-name"),
    case("a.b.c.default.svc.cluster.local. A", NEG, rcode="NXDOMAIN", id="too-deep"),
    case("cluster.local. SRV", NEG, id="apex-SRV-nodata"),
]


@pytest.mark.parametrize(("q", "want"), ZONE)
def test_zone(q: Question, want: Answer) -> None:
    check(q, want)


# --- ClusterIP Services ---------------------------------------------------------------------------

CLUSTER_IP = [
    case("web.default.svc.cluster.local. A", "web.default.svc.cluster.local. 30 IN A 10.96.0.20"),
    case("web.default.svc.cluster.local. AAAA", NEG, id="v4-service-AAAA-nodata"),
    case("web.default.svc.cluster.local. TXT", NEG, id="service-TXT-nodata"),
    case("web.default.svc.cluster.local. MX", NEG, id="service-MX-nodata"),
    case("web.default.svc.cluster.local. TYPE65", NEG, id="service-unknown-type-nodata"),
    case("web.default.svc.cluster.local. SRV", NEG, id="service-name-SRV-nodata"),
    case("nothere.default.svc.cluster.local. A", NEG, rcode="NXDOMAIN"),
    case("nothere.default.svc.cluster.local. TYPE65", NEG, rcode="NXDOMAIN",
         id="unknown-name-unknown-type"),
    case("web.shop.svc.cluster.local. A", NEG, rcode="NXDOMAIN", id="other-namespace"),
    case("cart.shop.svc.cluster.local. A", "cart.shop.svc.cluster.local. 30 IN A 10.96.5.5"),
    case("dual.default.svc.cluster.local. A", "dual.default.svc.cluster.local. 30 IN A 10.96.0.40"),
    case("dual.default.svc.cluster.local. AAAA",
         "dual.default.svc.cluster.local. 30 IN AAAA fd00:10:96::28"),
    case("v6only.default.svc.cluster.local. AAAA",
         "v6only.default.svc.cluster.local. 30 IN AAAA fd00:10:96::29"),
    case("v6only.default.svc.cluster.local. A", NEG, id="v6-service-A-nodata"),
    case("x.web.default.svc.cluster.local. A", NEG, rcode="NXDOMAIN",
         id="no-endpoint-names-under-clusterip"),
    # SRV: named ports only, the Service port, the target's address in additional
    case("_http._tcp.web.default.svc.cluster.local. SRV", """
    _http._tcp.web.default.svc.cluster.local. 30 IN SRV 0 100 80 web.default.svc.cluster.local.
    ;; ADDITIONAL
    web.default.svc.cluster.local. 30 IN A 10.96.0.20
    """),
    case("_dns._udp.kube-dns.kube-system.svc.cluster.local. SRV", """
    _dns._udp.kube-dns.kube-system.svc.cluster.local. 30 IN SRV 0 100 53 kube-dns.kube-system.svc.cluster.local.
    ;; ADDITIONAL
    kube-dns.kube-system.svc.cluster.local. 30 IN A 10.96.0.10
    """),
    case("_dns-tcp._tcp.kube-dns.kube-system.svc.cluster.local. SRV", """
    _dns-tcp._tcp.kube-dns.kube-system.svc.cluster.local. 30 IN SRV 0 100 53 kube-dns.kube-system.svc.cluster.local.
    ;; ADDITIONAL
    kube-dns.kube-system.svc.cluster.local. 30 IN A 10.96.0.10
    """),
    case("_http._tcp.dual.default.svc.cluster.local. SRV", """
    _http._tcp.dual.default.svc.cluster.local. 30 IN SRV 0 100 80 dual.default.svc.cluster.local.
    ;; ADDITIONAL
    dual.default.svc.cluster.local. 30 IN A 10.96.0.40
    dual.default.svc.cluster.local. 30 IN AAAA fd00:10:96::28
    """),
    case("_dns._tcp.kube-dns.kube-system.svc.cluster.local. SRV", NEG, rcode="NXDOMAIN",
         id="port-name-with-wrong-protocol"),
    case("_http._udp.web.default.svc.cluster.local. SRV", NEG, rcode="NXDOMAIN",
         id="wrong-protocol"),
    case("_tcp.web.default.svc.cluster.local. SRV", NEG, id="protocol-label-is-ent"),
    case("_http._tcp.web.default.svc.cluster.local. A", NEG, id="srv-name-A-nodata"),
    case("_tcp.plain.default.svc.cluster.local. SRV", NEG, rcode="NXDOMAIN",
         id="unnamed-port-has-no-srv"),
    case("plain.default.svc.cluster.local. A",
         "plain.default.svc.cluster.local. 30 IN A 10.96.0.21"),
]


@pytest.mark.parametrize(("q", "want"), CLUSTER_IP)
def test_cluster_ip(q: Question, want: Answer) -> None:
    check(q, want)


# --- headless Services ----------------------------------------------------------------------------

HEADLESS_CASES = [
    case("db.default.svc.cluster.local. A", """
    db.default.svc.cluster.local. 30 IN A 10.244.1.10
    db.default.svc.cluster.local. 30 IN A 10.244.2.11
    db.default.svc.cluster.local. 30 IN A 10.244.3.13
    """, id="one-A-per-ready-endpoint"),
    case("db.default.svc.cluster.local. AAAA",
         "db.default.svc.cluster.local. 30 IN AAAA fd00:10:244:1::a"),
    case("db-0.db.default.svc.cluster.local. A",
         "db-0.db.default.svc.cluster.local. 30 IN A 10.244.1.10"),
    case("db-0.db.default.svc.cluster.local. AAAA",
         "db-0.db.default.svc.cluster.local. 30 IN AAAA fd00:10:244:1::a"),
    case("db-1.db.default.svc.cluster.local. AAAA", NEG, id="hostname-AAAA-nodata"),
    case("10-244-3-13.db.default.svc.cluster.local. A",
         "10-244-3-13.db.default.svc.cluster.local. 30 IN A 10.244.3.13",
         id="no-hostname-dashed-address"),
    case("db-2.db.default.svc.cluster.local. A", NEG, rcode="NXDOMAIN", id="not-ready-excluded"),
    case("10-244-1-12.db.default.svc.cluster.local. A", NEG, rcode="NXDOMAIN",
         id="not-ready-no-generated-name"),
    # N x M SRV: 3 ready endpoints x 2 named ports, the endpoint port, targets' addresses
    case("_pg._tcp.db.default.svc.cluster.local. SRV", """
    _pg._tcp.db.default.svc.cluster.local. 30 IN SRV 0 33 5432 db-0.db.default.svc.cluster.local.
    _pg._tcp.db.default.svc.cluster.local. 30 IN SRV 0 33 5432 db-1.db.default.svc.cluster.local.
    _pg._tcp.db.default.svc.cluster.local. 30 IN SRV 0 33 5432 10-244-3-13.db.default.svc.cluster.local.
    ;; ADDITIONAL
    db-0.db.default.svc.cluster.local. 30 IN A 10.244.1.10
    db-0.db.default.svc.cluster.local. 30 IN AAAA fd00:10:244:1::a
    db-1.db.default.svc.cluster.local. 30 IN A 10.244.2.11
    10-244-3-13.db.default.svc.cluster.local. 30 IN A 10.244.3.13
    """),
    case("_metrics._tcp.db.default.svc.cluster.local. SRV", """
    _metrics._tcp.db.default.svc.cluster.local. 30 IN SRV 0 33 9187 db-0.db.default.svc.cluster.local.
    _metrics._tcp.db.default.svc.cluster.local. 30 IN SRV 0 33 9187 db-1.db.default.svc.cluster.local.
    _metrics._tcp.db.default.svc.cluster.local. 30 IN SRV 0 33 9187 10-244-3-13.db.default.svc.cluster.local.
    ;; ADDITIONAL
    db-0.db.default.svc.cluster.local. 30 IN A 10.244.1.10
    db-0.db.default.svc.cluster.local. 30 IN AAAA fd00:10:244:1::a
    db-1.db.default.svc.cluster.local. 30 IN A 10.244.2.11
    10-244-3-13.db.default.svc.cluster.local. 30 IN A 10.244.3.13
    """),
    case("pub.default.svc.cluster.local. A", "pub.default.svc.cluster.local. 30 IN A 10.244.1.20",
         id="publish-not-ready-addresses"),
    case("p-0.pub.default.svc.cluster.local. A",
         "p-0.pub.default.svc.cluster.local. 30 IN A 10.244.1.20"),
    case("_sip._udp.pub.default.svc.cluster.local. SRV", """
    _sip._udp.pub.default.svc.cluster.local. 30 IN SRV 0 100 5060 p-0.pub.default.svc.cluster.local.
    ;; ADDITIONAL
    p-0.pub.default.svc.cluster.local. 30 IN A 10.244.1.20
    """),
    case("dark.default.svc.cluster.local. A", NEG, rcode="NXDOMAIN",
         id="no-ready-endpoints-nxdomain"),
    case("dark.default.svc.cluster.local. AAAA", NEG, rcode="NXDOMAIN",
         id="no-ready-endpoints-nxdomain-aaaa"),
    case("_http._tcp.dark.default.svc.cluster.local. SRV", NEG, rcode="NXDOMAIN",
         id="no-ready-endpoints-no-srv"),
    case("noslice.default.svc.cluster.local. A", NEG, rcode="NXDOMAIN", id="no-slices-nxdomain"),
]


@pytest.mark.parametrize(("q", "want"), HEADLESS_CASES)
def test_headless(q: Question, want: Answer) -> None:
    check(q, want)


# --- reverse zones --------------------------------------------------------------------------------

V6_28 = "8.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa."
V6_A = "a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.4.4.2.0.0.1.0.0.0.0.d.f.ip6.arpa."
REVERSE = [
    case("20.0.96.10.in-addr.arpa. PTR",
         "20.0.96.10.in-addr.arpa. 30 IN PTR web.default.svc.cluster.local."),
    case("10.0.96.10.in-addr.arpa. PTR",
         "10.0.96.10.in-addr.arpa. 30 IN PTR kube-dns.kube-system.svc.cluster.local."),
    case("5.5.96.10.in-addr.arpa. PTR", "5.5.96.10.in-addr.arpa. 30 IN PTR cart.shop.svc.cluster.local."),
    case(f"{V6_28} PTR", f"{V6_28} 30 IN PTR dual.default.svc.cluster.local.", id="ip6-arpa"),
    case("10.1.244.10.in-addr.arpa. PTR",
         "10.1.244.10.in-addr.arpa. 30 IN PTR db-0.db.default.svc.cluster.local.",
         id="headless-endpoint-hostname"),
    case("13.3.244.10.in-addr.arpa. PTR",
         "13.3.244.10.in-addr.arpa. 30 IN PTR 10-244-3-13.db.default.svc.cluster.local.",
         id="headless-endpoint-generated-name"),
    case(f"{V6_A} PTR", f"{V6_A} 30 IN PTR db-0.db.default.svc.cluster.local.",
         id="headless-endpoint-ip6"),
    case("12.1.244.10.in-addr.arpa. PTR", REV244, rcode="NXDOMAIN", id="not-ready-no-ptr"),
    case("50.1.244.10.in-addr.arpa. PTR", REV244, rcode="NXDOMAIN", id="pod-ip-not-an-endpoint"),
    case("99.9.96.10.in-addr.arpa. PTR", REV96, rcode="NXDOMAIN", id="free-service-ip"),
    case("0.96.10.in-addr.arpa. PTR", REV96, id="reverse-ent-nodata"),
    case("b.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.4.4.2.0.0.1.0.0.0.0.d.f.ip6.arpa. PTR",
         f";; AUTHORITY\n{soa('0.0.4.4.2.0.0.1.0.0.0.0.d.f.ip6.arpa.')}", rcode="NXDOMAIN",
         id="ip6-pod-zone-is-the-56-nxdomain"),
    case("1.0.0.0.4.4.2.0.0.1.0.0.0.0.d.f.ip6.arpa. PTR",
         f";; AUTHORITY\n{soa('0.0.4.4.2.0.0.1.0.0.0.0.d.f.ip6.arpa.')}", id="ip6-ent-nodata"),
    case("20.0.96.10.in-addr.arpa. A", REV96, id="reverse-A-nodata"),
    case("96.10.in-addr.arpa. SOA", soa("96.10.in-addr.arpa."), id="reverse-apex-soa"),
    case("96.10.in-addr.arpa. NS", """
    96.10.in-addr.arpa. 30 IN NS ns.dns.cluster.local.
    ;; ADDITIONAL
    ns.dns.cluster.local. 30 IN A 10.96.0.10
    """, id="reverse-apex-ns"),
    case("1.0.97.10.in-addr.arpa. PTR",
         f";; AUTHORITY\n{soa('97.10.in-addr.arpa.')}", rcode="NXDOMAIN",
         id="the-12-is-served-as-16-zones"),
    case("x.20.0.96.10.in-addr.arpa. PTR", REV96, rcode="NXDOMAIN", id="junk-under-owned-zone"),
    case("1.0.112.10.in-addr.arpa. PTR", forward="1.0.112.10.in-addr.arpa.", aa=False,
         id="outside-service-cidr-forwarded"),
    case("10.in-addr.arpa. SOA", forward="10.in-addr.arpa.", aa=False,
         id="parent-of-owned-zone-forwarded"),
    case("1.1.168.192.in-addr.arpa. PTR", forward="1.1.168.192.in-addr.arpa.", aa=False),
    case("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. PTR",
         forward="1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
         aa=False, id="other-ip6-forwarded"),
]


@pytest.mark.parametrize(("q", "want"), REVERSE)
def test_reverse(q: Question, want: Answer) -> None:
    check(q, want)


# --- ExternalName ---------------------------------------------------------------------------------

EXTERNAL = [
    case("ext.default.svc.cluster.local. A",
         "ext.default.svc.cluster.local. 30 IN CNAME www.example.com.",
         forward="www.example.com.", id="target-outside-forwarded"),
    case("ext.default.svc.cluster.local. AAAA",
         "ext.default.svc.cluster.local. 30 IN CNAME www.example.com.",
         forward="www.example.com.", id="target-outside-forwarded-aaaa"),
    case("ext.default.svc.cluster.local. CNAME",
         "ext.default.svc.cluster.local. 30 IN CNAME www.example.com.", id="cname-not-chased"),
    case("alias.default.svc.cluster.local. A", """
    alias.default.svc.cluster.local. 30 IN CNAME web.default.svc.cluster.local.
    web.default.svc.cluster.local. 30 IN A 10.96.0.20
    """, id="target-inside-resolved"),
    case("alias.default.svc.cluster.local. AAAA", """
    alias.default.svc.cluster.local. 30 IN CNAME web.default.svc.cluster.local.
    """ + NEG, id="target-inside-nodata"),
    case("alias2.default.svc.cluster.local. A", """
    alias2.default.svc.cluster.local. 30 IN CNAME alias.default.svc.cluster.local.
    alias.default.svc.cluster.local. 30 IN CNAME web.default.svc.cluster.local.
    web.default.svc.cluster.local. 30 IN A 10.96.0.20
    """, id="chain-of-two"),
    case("gone.default.svc.cluster.local. A", """
    gone.default.svc.cluster.local. 30 IN CNAME nothere.default.svc.cluster.local.
    """ + NEG, rcode="NXDOMAIN", id="target-inside-nxdomain"),
    case("loop1.default.svc.cluster.local. A", """
    loop1.default.svc.cluster.local. 30 IN CNAME loop2.default.svc.cluster.local.
    loop2.default.svc.cluster.local. 30 IN CNAME loop1.default.svc.cluster.local.
    """, id="loop-stops"),
    case("ext.default.svc.cluster.local. ANY",
         "ext.default.svc.cluster.local. 30 IN CNAME www.example.com.", id="any-gives-cname"),
]


@pytest.mark.parametrize(("q", "want"), EXTERNAL)
def test_external_name(q: Question, want: Answer) -> None:
    check(q, want)


def test_cname_chain_order() -> None:
    got = answer(Question("alias2.default.svc.cluster.local", model.A), INDEX)
    assert [(r.name, r.rtype) for r in got.answer] == [
        ("alias2.default.svc.cluster.local", model.CNAME),
        ("alias.default.svc.cluster.local", model.CNAME),
        ("web.default.svc.cluster.local", model.A)]


# --- pod records ----------------------------------------------------------------------------------

PODS_INSECURE = [
    case("10-244-1-50.default.pod.cluster.local. A",
         "10-244-1-50.default.pod.cluster.local. 30 IN A 10.244.1.50"),
    case("1-2-3-4.default.pod.cluster.local. A", "1-2-3-4.default.pod.cluster.local. 30 IN A 1.2.3.4",
         id="insecure-any-address"),
    case("fd00-10-244-1--32.shop.pod.cluster.local. AAAA",
         "fd00-10-244-1--32.shop.pod.cluster.local. 30 IN AAAA fd00:10:244:1::32", id="ipv6"),
    case("10-244-1-50.default.pod.cluster.local. AAAA", NEG, id="v4-pod-AAAA-nodata"),
    case("10-244-1-50.nosuchns.pod.cluster.local. A", NEG, rcode="NXDOMAIN",
         id="namespace-must-exist"),
    case("256-1-1-1.default.pod.cluster.local. A", NEG, rcode="NXDOMAIN", id="not-an-address"),
    case("01-2-3-4.default.pod.cluster.local. A", NEG, rcode="NXDOMAIN", id="leading-zero"),
    case("web.default.pod.cluster.local. A", NEG, rcode="NXDOMAIN", id="a-name"),
    case("x.1-2-3-4.default.pod.cluster.local. A", NEG, rcode="NXDOMAIN", id="below-a-pod"),
    case("default.pod.cluster.local. A", NEG, id="pod-namespace-ent"),
    case("pod.cluster.local. A", NEG, id="pod-ent"),
]


@pytest.mark.parametrize(("q", "want"), PODS_INSECURE)
def test_pod_records_insecure(q: Question, want: Answer) -> None:
    check(q, want)


VERIFIED = index(DnsConfig(pod_records="verified", service_cidrs=CONFIG.service_cidrs,
                           pod_cidrs=CONFIG.pod_cidrs))
DISABLED = index(DnsConfig(pod_records="disabled", service_cidrs=CONFIG.service_cidrs,
                           pod_cidrs=CONFIG.pod_cidrs))


@pytest.mark.parametrize(("q", "want"), [
    case("10-244-1-50.default.pod.cluster.local. A",
         "10-244-1-50.default.pod.cluster.local. 30 IN A 10.244.1.50", id="pod-exists"),
    case("1-2-3-4.default.pod.cluster.local. A", NEG, rcode="NXDOMAIN", id="no-such-pod"),
    case("10-244-1-50.shop.pod.cluster.local. A", NEG, rcode="NXDOMAIN", id="other-namespace"),
    case("default.pod.cluster.local. A", NEG, id="namespace-ent"),
])
def test_pod_records_verified(q: Question, want: Answer) -> None:
    check(q, want, VERIFIED)


@pytest.mark.parametrize(("q", "want"), [
    case("10-244-1-50.default.pod.cluster.local. A", NEG, rcode="NXDOMAIN", id="pod-name"),
    case("default.pod.cluster.local. A", NEG, rcode="NXDOMAIN", id="namespace"),
    case("pod.cluster.local. A", NEG, rcode="NXDOMAIN", id="pod-label"),
    case("web.default.svc.cluster.local. A", "web.default.svc.cluster.local. 30 IN A 10.96.0.20",
         id="services-unaffected"),
])
def test_pod_records_disabled(q: Question, want: Answer) -> None:
    check(q, want, DISABLED)


# --- case, types, classes, forwarding -------------------------------------------------------------

MISC = [
    case("WEB.Default.SVC.Cluster.LOCAL. A", "WEB.Default.SVC.Cluster.LOCAL. 30 IN A 10.96.0.20",
         id="case-echoed"),
    case("NoThere.default.svc.Cluster.Local. A", f";; AUTHORITY\n{soa('Cluster.Local.')}",
         rcode="NXDOMAIN", id="case-echoed-in-soa-owner"),
    case("_HTTP._Tcp.web.default.svc.cluster.local. SRV", """
    _HTTP._Tcp.web.default.svc.cluster.local. 30 IN SRV 0 100 80 web.default.svc.cluster.local.
    ;; ADDITIONAL
    web.default.svc.cluster.local. 30 IN A 10.96.0.20
    """, id="case-echoed-srv"),
    case("ALIAS.default.svc.cluster.local. A", """
    ALIAS.default.svc.cluster.local. 30 IN CNAME web.default.svc.cluster.local.
    web.default.svc.cluster.local. 30 IN A 10.96.0.20
    """, id="case-echoed-cname-owner-only"),
    case("DB-0.DB.default.svc.cluster.local. A",
         "DB-0.DB.default.svc.cluster.local. 30 IN A 10.244.1.10", id="case-insensitive-hostname"),
    case("web.default.svc.cluster.local. ANY", "web.default.svc.cluster.local. 30 IN A 10.96.0.20",
         id="any-one-rrset"),
    case("dual.default.svc.cluster.local. ANY",
         "dual.default.svc.cluster.local. 30 IN A 10.96.0.40", id="any-prefers-A"),
    case("default.svc.cluster.local. ANY", NEG, id="any-at-ent-nodata"),
    case("nothere.default.svc.cluster.local. ANY", NEG, rcode="NXDOMAIN", id="any-nxdomain"),
    case("cluster.local. AXFR", rcode="REFUSED", aa=False),
    case("cluster.local. IXFR", rcode="REFUSED", aa=False),
    case("96.10.in-addr.arpa. AXFR", rcode="REFUSED", aa=False, id="reverse-axfr"),
    case("example.com. AXFR", rcode="REFUSED", aa=False, id="axfr-not-forwarded"),
    case("web.default.svc.cluster.local. MAILB", rcode="NOTIMP", aa=False),
    case("web.default.svc.cluster.local. OPT", rcode="FORMERR", aa=False),
    case("web.default.svc.cluster.local. CH A", rcode="REFUSED", aa=False, id="class-CH"),
    case("version.bind. CH TXT", rcode="REFUSED", aa=False, id="class-CH-outside"),
    case("example.com. A", forward="example.com.", aa=False),
    case("Example.COM. AAAA", forward="Example.COM.", aa=False, id="forward-keeps-case"),
    case("local. SOA", forward="local.", aa=False, id="parent-of-zone"),
    case("cluster.local.example.com. A", forward="cluster.local.example.com.", aa=False,
         id="zone-as-prefix"),
    case("xcluster.local. A", forward="xcluster.local.", aa=False, id="zone-as-label-suffix"),
]


@pytest.mark.parametrize(("q", "want"), MISC)
def test_misc(q: Question, want: Answer) -> None:
    check(q, want)


def test_question_with_final_dot() -> None:
    got = answer(Question("web.default.svc.cluster.local.", model.A), INDEX)
    assert [(r.name, r.rdata) for r in got.answer] == [("web.default.svc.cluster.local",
                                                          "10.96.0.20")]


def test_root_is_forwarded() -> None:
    assert answer(Question("", model.NS), INDEX) == Answer(forward="", authoritative=False)


# --- configuration --------------------------------------------------------------------------------

def test_other_zone_and_ttl() -> None:
    idx = build_index(SERVICES, SLICES, PODS, NAMESPACES, DnsConfig(zone="corp.internal", ttl=5),
                      serial=99)
    check(Question("web.default.svc.corp.internal", model.A),
          case("x. A", "web.default.svc.corp.internal. 5 IN A 10.96.0.20").values[1], idx)
    check(Question("nothere.corp.internal", model.A),
          case("x. A", ";; AUTHORITY\ncorp.internal. 5 IN SOA ns.dns.corp.internal. "
               "hostmaster.corp.internal. 99 7200 1800 86400 5", rcode="NXDOMAIN").values[1], idx)
    assert answer(Question("web.default.svc.cluster.local", model.A), idx).forward == \
        "web.default.svc.cluster.local"


def test_soa_ttl_capped_at_300() -> None:
    idx = build_index([], [], [], [], DnsConfig(ttl=3600))
    got = answer(Question("cluster.local", model.SOA), idx)
    rdata = got.answer[0].rdata
    assert got.answer[0].ttl == 300 and isinstance(rdata, model.Soa) and rdata.minimum == 3600
    neg = answer(Question("x.cluster.local", model.A), idx)
    assert neg.authority[0].ttl == 300  # min(SOA TTL, minimum), RFC 2308


def test_no_nameserver_service() -> None:
    idx = build_index([], [], [], [], CONFIG, serial=SERIAL)
    check(Question("cluster.local", model.NS),
          case("x. A", "cluster.local. 30 IN NS ns.dns.cluster.local.").values[1], idx)
    check(Question("ns.dns.cluster.local", model.A), case("x. A", NEG).values[1], idx)


# --- reading objects defensively, updating in place -----------------------------------------------

def test_malformed_objects_are_skipped() -> None:
    services: list[Any] = [
        None, "x", {}, {"metadata": None}, {"metadata": {"name": "a"}},
        {"metadata": {"namespace": "default", "name": "b"}, "spec": None},
        {"metadata": {"namespace": "default", "name": "c"},
         "spec": {"clusterIP": "not-an-ip", "ports": [None, {"name": "x", "port": "80"}]}},
        {"metadata": {"namespace": "default", "name": "d"},
         "spec": {"clusterIPs": ["10.96.0.99"], "ports": [{"name": "http", "port": True}]}},
    ]
    slices: list[Any] = [
        None, {"metadata": {"namespace": "default", "labels": {"kubernetes.io/service-name": "c"}},
               "addressType": "IPv4", "endpoints": [None, {"addresses": ["bad", 7, None]}],
               "ports": None},
    ]
    pods: list[Any] = [None, {"status": {"podIPs": None}}]
    namespaces: list[Any] = [None, {"metadata": {"name": "default"}}]
    idx = build_index(services, slices, pods, namespaces, CONFIG)
    assert answer(Question("d.default.svc.cluster.local", model.A), idx).answer[0].rdata == \
        "10.96.0.99"
    assert answer(Question("_http._tcp.d.default.svc.cluster.local", model.SRV), idx).rcode == \
        model.NXDOMAIN
    assert answer(Question("c.default.svc.cluster.local", model.A), idx).rcode == model.NXDOMAIN


def _snapshot(idx: Any) -> tuple[Any, ...]:
    records = {k: {t: sorted(map(repr, v)) for t, v in sets.items()}
               for k, sets in idx.records.items()}
    return records, dict(idx.refs), sorted(idx.namespaces)


def test_update_service_equals_rebuild() -> None:
    idx = index()
    web2 = svc("default", "web", ["10.96.0.22"], [port("https", 443)])
    db_slice = eps("default", "db", "db-v4", "IPv4", [ep("10.244.9.9", hostname="db-9")],
                   [port("pg", 5432)])
    update_service(idx, "default", "web", web2)
    update_service(idx, "default", "db", SERVICES[5], [db_slice])
    update_service(idx, "default", "ext", None)
    update_service(idx, "default", "new", svc("default", "new", ["10.96.0.77"]))
    services = [s for s in SERVICES if s["metadata"]["name"] not in ("web", "ext")]
    services += [web2, svc("default", "new", ["10.96.0.77"])]
    slices = [s for s in SLICES if s["metadata"]["name"] not in ("db-v4", "db-v6", "db-fqdn")]
    rebuilt = build_index(services, [*slices, db_slice], PODS, NAMESPACES, CONFIG, serial=SERIAL)
    assert _snapshot(idx) == _snapshot(rebuilt)
    check(Question("web.default.svc.cluster.local", model.A),
          case("x. A", "web.default.svc.cluster.local. 30 IN A 10.96.0.22").values[1], idx)
    check(Question("20.0.96.10.in-addr.arpa", model.PTR), case("x. A", REV96,
                                                              rcode="NXDOMAIN").values[1], idx)
    check(Question("ext.default.svc.cluster.local", model.A),
          case("x. A", NEG, rcode="NXDOMAIN").values[1], idx)


def test_deleting_everything_leaves_the_static_names() -> None:
    idx = index()
    for s in SERVICES:
        update_service(idx, s["metadata"]["namespace"], s["metadata"]["name"], None)
    empty = build_index([], [], PODS, NAMESPACES, CONFIG, serial=SERIAL)
    assert _snapshot(idx) == _snapshot(empty)


def test_set_namespaces_and_pods() -> None:
    idx = index(DnsConfig(pod_records="verified", service_cidrs=CONFIG.service_cidrs,
                          pod_cidrs=CONFIG.pod_cidrs))
    set_namespaces(idx, ["default", "kube-system", "shop", "new"])
    assert answer(Question("new.svc.cluster.local", model.A), idx).rcode == model.NOERROR
    assert answer(Question("quiet.svc.cluster.local", model.A), idx).rcode == model.NXDOMAIN
    assert answer(Question("quiet.pod.cluster.local", model.A), idx).rcode == model.NXDOMAIN
    assert answer(Question("default.svc.cluster.local", model.A), idx).rcode == model.NOERROR
    pod = {"metadata": {"namespace": "new", "name": "p"}, "status": {"podIPs": [
        {"ip": "10.244.7.7"}, {"ip": "fd00:10:244:7::7"}]}}
    set_pods(idx, [pod])
    check(Question("fd00-10-244-7--7.new.pod.cluster.local", model.AAAA),
          case("x. A", "fd00-10-244-7--7.new.pod.cluster.local. 30 IN AAAA fd00:10:244:7::7"
               ).values[1], idx)
    assert answer(Question("10-244-1-50.default.pod.cluster.local", model.A), idx).rcode == \
        model.NXDOMAIN
