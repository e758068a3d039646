"""The types the cluster DNS's pure core shares (no I/O): a question, resource records, and an
answer in sections. Names are absolute, written without the final dot, in the case they are
to be sent (a query's name is echoed in its own case); comparisons lower-case them."""

from __future__ import annotations

from dataclasses import dataclass, field

# Types and classes (RFC 1035, 3596, 2782, 6891)
A, NS, CNAME, SOA, PTR, TXT, AAAA, SRV, OPT, AXFR, IXFR, ANY = (1, 2, 5, 6, 12, 16, 28, 33, 41,
                                                              252, 251, 255)
IN = 1
# Response codes
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5


@dataclass(frozen=True)
class Question:
    name: str  # as received (case kept), no final dot; "" is the root
    qtype: int
    qclass: int = IN


@dataclass(frozen=True)
class Soa:
    mname: str
    rname: str
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int


@dataclass(frozen=True)
class Srv:
    priority: int
    weight: int
    port: int
    target: str


# rdata by type: A/AAAA -> the address as text; NS/CNAME/PTR -> a name; TXT -> a tuple of
# strings; SRV -> Srv; SOA -> Soa.
Rdata = str | tuple[str, ...] | Srv | Soa


@dataclass(frozen=True)
class Record:
    name: str
    rtype: int
    ttl: int
    rdata: Rdata
    rclass: int = IN


@dataclass(frozen=True)
class Answer:
    """What to send for one question. `forward` (with `answer` possibly holding a CNAME
    chain that leaves the zone) asks the server to resolve `forward` upstream and append what
    it gets; an answer for a name outside the cluster zone is `Answer(forward=name)` alone."""

    rcode: int = NOERROR
    answer: tuple[Record, ...] = ()
    authority: tuple[Record, ...] = ()
    additional: tuple[Record, ...] = ()
    authoritative: bool = True
    forward: str | None = None
    notes: tuple[str, ...] = field(default=(), compare=False)  # why, for logs and tests
