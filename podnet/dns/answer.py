"""The rules of the Kubernetes DNS specification (schema 1.1.0): a question and the cluster
index in, an answer out (pure).

Which zone a name belongs to decides everything:

  outside the cluster zone and the owned reverse zones -> Answer(forward=name), not authoritative
  inside one of them                                   -> answered here, authoritative:
      the name has records of the type                 -> NOERROR with them
      the name is an ExternalName Service (a CNAME)    -> the CNAME; a target inside our zones is
                                                          followed here (a chain), a target
                                                          outside is left to the server
                                                          (Answer.forward = target)
      the name exists, but not with that type          -> NODATA: NOERROR, no answer
      (an empty non-terminal such as svc.<zone> or
       <ns>.svc.<zone> for an existing namespace
       exists)
      the name does not exist                          -> NXDOMAIN
  each negative answer carries the zone's SOA in authority, with TTL min(SOA TTL, SOA minimum)
  (RFC 2308).

Choices where the specification leaves room, CoreDNS's unless said otherwise:
  - qclass other than IN: REFUSED (the server has no data in other classes).
  - AXFR, IXFR: REFUSED, for any name (not forwarded either). MAILA, MAILB (obsolete meta
    types): NOTIMP. OPT as a question: FORMERR.
  - ANY (RFC 8482): one record set, the first of CNAME, A, AAAA, SRV, PTR, TXT, SOA the name
    has; NODATA or NXDOMAIN as for any type when it has none. (CoreDNS gives NODATA.)
  - SRV priority 0, weight 100/n (at least 1) for the n records of the set; the A/AAAA of each
    target in additional.
  - NS at a zone apex: `ns.dns.<zone>`, with the nameserver Service's addresses in additional.
  - The owner name of records that answer the question is the question's name in its own case;
    so is the zone part of the SOA's owner when the question lies in that zone.
  - A CNAME chain stops after 8 links or on a loop; the rcode is that of the last name
    (RFC 6604).
  - Pod records: "insecure" answers `a-b-c-d.<ns>.pod.<zone>` (and `fd00--1`-style IPv6) for any
    address that parses, in an existing namespace; "verified" only for a pod of that namespace
    with that IP; "disabled" makes `pod.<zone>` and everything under it NXDOMAIN.
"""

from __future__ import annotations

import ipaddress

from podnet.dns.index import ClusterIndex, Net, RecordSets, parse_ip
from podnet.dns.model import (
    AAAA,
    ANY,
    AXFR,
    CNAME,
    FORMERR,
    IN,
    IXFR,
    NOERROR,
    NOTIMP,
    NS,
    NXDOMAIN,
    OPT,
    PTR,
    REFUSED,
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

MAILB, MAILA = 253, 254
MAX_CHAIN = 8
_ANY_ORDER = (CNAME, A, AAAA, SRV, PTR, TXT, SOA)


def answer(q: Question, index: ClusterIndex) -> Answer:
    """The answer to one question (see the module docstring for the rules)."""
    name = q.name[:-1] if q.name.endswith(".") else q.name
    if q.qclass != IN:
        return Answer(rcode=REFUSED, authoritative=False, notes=("class not served",))
    if q.qtype in (AXFR, IXFR):  # in any zone: transfers are neither served nor forwarded
        return Answer(rcode=REFUSED, authoritative=False, notes=("zone transfers are refused",))
    if q.qtype in (MAILA, MAILB):
        return Answer(rcode=NOTIMP, authoritative=False)
    if q.qtype == OPT:
        return Answer(rcode=FORMERR, authoritative=False)
    key = name.lower()
    apex = zone_of(key, index)
    if apex is None:
        return Answer(forward=name, authoritative=False, notes=("outside the cluster zones",))
    return _resolve(name, key, apex, q.qtype, index)


# --- zones -------------------------------------------------------------------------------------

def zone_of(key: str, index: ClusterIndex) -> str | None:
    """The apex (lower case) of the zone served here that holds `key`, or None."""
    zone = index.config.zone_key
    if key == zone or key.endswith("." + zone):
        return zone
    if key.endswith(".in-addr.arpa") or key == "in-addr.arpa":
        return _reverse_apex(key, 4, index.reverse_zones)
    if key.endswith(".ip6.arpa") or key == "ip6.arpa":
        return _reverse_apex(key, 6, index.reverse_zones)
    return None


def _reverse_apex(key: str, version: int, zones: tuple[Net, ...]) -> str | None:
    """The owned reverse zone holding `key`: each CIDR is served as the zones of its prefix
    rounded up to an octet (nibble) boundary, e.g. 10.96.0.0/12 as 96.10 ... 111.10.in-addr.arpa."""
    labels = key.split(".")[:-2]
    labels.reverse()  # most significant first
    step, width, base = (8, 4, 10) if version == 4 else (4, 32, 16)
    digits: list[int] = []
    for label in labels[:width]:
        if not label or len(label) > (3 if version == 4 else 1) or not label.isascii():
            break
        try:
            value = int(label, base)
        except ValueError:
            break
        if value >= 1 << step or (version == 4 and str(value) != label):
            break
        digits.append(value)
    for net in zones:
        if net.version != version:
            continue
        count = -(-net.prefixlen // step)
        if len(digits) < count:
            continue
        value = 0
        for d in digits[:count]:
            value = (value << step) | d
        bits = width * step
        address = value << (bits - count * step)
        network: Net = (ipaddress.IPv4Network((address, count * step)) if version == 4
                        else ipaddress.IPv6Network((address, count * step)))
        if network.subnet_of(net):  # type: ignore[arg-type]
            suffix = "in-addr.arpa" if version == 4 else "ip6.arpa"
            head = [format(d, "d" if version == 4 else "x") for d in reversed(digits[:count])]
            return ".".join([*head, suffix])
    return None


def _in_case(name: str, key_suffix: str) -> str:
    """The part of `name` that spells `key_suffix`, in `name`'s own case."""
    return name[len(name) - len(key_suffix):] if key_suffix else ""


def _soa_record(apex: str, index: ClusterIndex) -> Record:
    c = index.config
    rdata = Soa(c.mname, c.rname, index.serial, c.refresh, c.retry, c.expire, c.ttl)
    return Record(apex, SOA, c.soa_ttl, rdata)


def _negative(rcode: int, name: str, apex: str, index: ClusterIndex,
              chain: tuple[Record, ...] = ()) -> Answer:
    soa = _soa_record(_in_case(name, apex), index)
    ttl = min(soa.ttl, index.config.ttl)
    return Answer(rcode=rcode, answer=chain, authority=(Record(soa.name, SOA, ttl, soa.rdata),),
                  notes=("NXDOMAIN" if rcode == NXDOMAIN else "NODATA",))


# --- lookups -----------------------------------------------------------------------------------

def _record_sets(key: str, apex: str, index: ClusterIndex) -> RecordSets | None:
    """The record sets at `key` (empty for a name that exists without records); None when the
    name does not exist."""
    c = index.config
    if key == apex:
        sets: RecordSets = {SOA: [], NS: [c.mname]}
        return sets
    found = index.records.get(key)
    if found is not None:
        return found
    if index.exists(key):
        return {}
    if apex == c.zone_key and key.endswith(f".pod.{apex}"):
        return _pod_record(key[:-len(apex) - 5], index)
    return None


def _pod_record(head: str, index: ClusterIndex) -> RecordSets | None:
    """`a-b-c-d.<ns>` (the name without `.pod.<zone>`) -> the pod's address record."""
    mode = index.config.pod_records
    if mode == "disabled":
        return None
    label, _, ns = head.partition(".")
    if not ns or "." in ns or ns not in index.namespaces:
        return None
    if label.count("-") == 3 and "--" not in label:
        ip = parse_ip(label.replace("-", "."))
        if ip is not None and ip.version != 4:
            ip = None
    else:
        ip = parse_ip(label.replace("-", ":"))
        if ip is not None and ip.version != 6:
            ip = None
    if ip is None:
        return None
    if mode == "verified" and str(ip) not in index.pod_ips.get(ns, ()):
        return None
    return {A if ip.version == 4 else AAAA: [str(ip)]}


def _resolve(name: str, key: str, apex: str, qtype: int, index: ClusterIndex) -> Answer:
    chain: list[Record] = []
    seen = {key}
    ttl = index.config.ttl
    while True:
        sets = _record_sets(key, apex, index)
        if sets is None:
            return _negative(NXDOMAIN, name, apex, index, tuple(chain))
        if qtype == ANY:
            qtype_here = next((t for t in _ANY_ORDER if sets.get(t) or (t == SOA and t in sets)),
                              None)
            if qtype_here is None:
                return _negative(NOERROR, name, apex, index, tuple(chain))
            return _positive(name, key, apex, qtype_here, sets, index, chain)
        targets = sets.get(CNAME)
        if not targets or qtype == CNAME:
            if sets.get(qtype) or (qtype == SOA and SOA in sets):
                return _positive(name, key, apex, qtype, sets, index, chain)
            return _negative(NOERROR, name, apex, index, tuple(chain))
        target = str(targets[0])
        chain.append(Record(name, CNAME, ttl, target))
        name, key = target, target.lower()
        next_apex = zone_of(key, index)
        if next_apex is None:
            return Answer(answer=tuple(chain), forward=target,
                          notes=("CNAME leaves the cluster zones",))
        if key in seen or len(chain) >= MAX_CHAIN:
            return Answer(answer=tuple(chain), notes=("CNAME loop or chain too long",))
        seen.add(key)
        apex = next_apex


def _positive(name: str, key: str, apex: str, qtype: int, sets: RecordSets,
              index: ClusterIndex, chain: list[Record]) -> Answer:
    c = index.config
    if qtype == SOA:
        records: list[Record] = [_soa_record(name, index)]
        return Answer(answer=(*chain, *records))
    ttl = c.version_ttl if qtype == TXT and key == f"dns-version.{c.zone_key}" else c.ttl
    rdatas = sets[qtype]
    additional: list[Record] = []
    if qtype == SRV:
        weight = max(1, 100 // len(rdatas))
        records = []
        for r in rdatas:
            assert isinstance(r, Srv)
            records.append(Record(name, SRV, ttl, Srv(0, weight, r.port, r.target)))
        additional = _addresses([r.target for r in rdatas if isinstance(r, Srv)], index)
    else:
        records = [Record(name, qtype, ttl, r) for r in rdatas]
        if qtype == NS:
            additional = _addresses([c.mname], index)
    return Answer(answer=(*chain, *records), additional=tuple(additional))


def _addresses(targets: list[str], index: ClusterIndex) -> list[Record]:
    out: list[Record] = []
    seen: set[str] = set()
    ttl = index.config.ttl
    for t in targets:
        if t in seen:
            continue
        seen.add(t)
        sets = index.records.get(t.lower(), {})
        for rtype in (A, AAAA):
            out.extend(Record(t, rtype, ttl, r) for r in sets.get(rtype, ()))
    return out
