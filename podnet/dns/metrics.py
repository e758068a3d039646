"""The cluster DNS server's Prometheus metrics (pure: no I/O; the server serves `render()`).

Counters are plain dicts keyed by label values, so the hot path pays one dict update; the
fast path (responses cached as wire bytes) does not even do that: each cache entry counts its
own hits and `Metrics.fold_hits` adds them here when the cache is cleared or scraped.

  podnet_dns_requests_total{proto,type}            queries received (parsed, or from the cache)
  podnet_dns_responses_total{proto,rcode}          responses sent
  podnet_dns_dropped_total{reason}                 packets not answered
  podnet_dns_cache_hits_total{cache}, _misses_total{cache}   cache="response" (wire bytes),
                                                   cache="forward" (upstream answers by TTL)
  podnet_dns_cache_entries{cache}
  podnet_dns_forward_requests_total{upstream}      queries sent upstream
  podnet_dns_forward_failures_total{upstream,reason}
  podnet_dns_forward_loop_detected                 1 once a forwarding loop was found
  podnet_dns_healthy                               0 when forwarding was stopped by a loop
  podnet_dns_request_duration_seconds{proto}       histogram, for queries answered off the
                                                   fast path (cache hits take a few us)
  podnet_dns_index_updates_total                   index changes applied
  podnet_dns_programming_latency_seconds           the last change: first event -> applied
  podnet_dns_programming_latency_seconds_max       the largest since start
  podnet_dns_index_serial, podnet_dns_ready
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

from podnet.dns import model

BUCKETS = (0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
           5.0)

_TYPE_NAMES = {v: k for k, v in {
    "A": model.A, "NS": model.NS, "CNAME": model.CNAME, "SOA": model.SOA, "PTR": model.PTR,
    "TXT": model.TXT, "AAAA": model.AAAA, "SRV": model.SRV, "OPT": model.OPT,
    "AXFR": model.AXFR, "IXFR": model.IXFR, "ANY": model.ANY, "MX": 15, "HINFO": 13,
    "NAPTR": 35, "DS": 43, "RRSIG": 46, "DNSKEY": 48, "HTTPS": 65, "SVCB": 64, "CAA": 257,
}.items()}
_RCODE_NAMES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP",
                5: "REFUSED", 16: "BADVERS"}


def type_name(qtype: int) -> str:
    """A query type as metrics label: the mnemonic for common types, else "other" (a label
    per number would let a client create unbounded series)."""
    return _TYPE_NAMES.get(qtype, "other")


def rcode_name(rcode: int) -> str:
    return _RCODE_NAMES.get(rcode, "other")


@dataclass
class Histogram:
    buckets: tuple[float, ...] = BUCKETS
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.buckets) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1


@dataclass
class Metrics:
    requests: dict[tuple[str, str], int] = field(default_factory=dict)  # (proto, type)
    responses: dict[tuple[str, str], int] = field(default_factory=dict)  # (proto, rcode)
    dropped: dict[str, int] = field(default_factory=dict)
    cache_hits: dict[str, int] = field(default_factory=dict)
    cache_misses: dict[str, int] = field(default_factory=dict)
    cache_entries: dict[str, int] = field(default_factory=dict)
    forward_requests: dict[str, int] = field(default_factory=dict)
    forward_failures: dict[tuple[str, str], int] = field(default_factory=dict)
    durations: dict[str, Histogram] = field(default_factory=dict)
    loop_detected: bool = False
    index_updates: int = 0
    programming_latency: float = 0.0
    programming_latency_max: float = 0.0
    serial: int = 0
    ready: bool = False

    def request(self, proto: str, qtype: int) -> None:
        key = (proto, type_name(qtype))
        self.requests[key] = self.requests.get(key, 0) + 1

    def response(self, proto: str, rcode: int) -> None:
        key = (proto, rcode_name(rcode))
        self.responses[key] = self.responses.get(key, 0) + 1

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def hit(self, cache: str, n: int = 1) -> None:
        self.cache_hits[cache] = self.cache_hits.get(cache, 0) + n

    def miss(self, cache: str) -> None:
        self.cache_misses[cache] = self.cache_misses.get(cache, 0) + 1

    def fold_hits(self, proto: str, qtype: int, rcode: int, hits: int) -> None:
        """`hits` answers of one fast-path cache entry: requests, responses and cache hits."""
        if hits <= 0:
            return
        key = (proto, type_name(qtype))
        self.requests[key] = self.requests.get(key, 0) + hits
        rkey = (proto, rcode_name(rcode))
        self.responses[rkey] = self.responses.get(rkey, 0) + hits
        self.hit("response", hits)

    def forwarded(self, upstream: str) -> None:
        self.forward_requests[upstream] = self.forward_requests.get(upstream, 0) + 1

    def forward_failed(self, upstream: str, reason: str) -> None:
        key = (upstream, reason)
        self.forward_failures[key] = self.forward_failures.get(key, 0) + 1

    def duration(self, proto: str, seconds: float) -> None:
        h = self.durations.get(proto)
        if h is None:
            h = self.durations[proto] = Histogram()
        h.observe(seconds)

    def programmed(self, latency: float, serial: int) -> None:
        self.index_updates += 1
        self.programming_latency = latency
        self.programming_latency_max = max(self.programming_latency_max, latency)
        self.serial = serial

    def render(self) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        out: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")

        def series(name: str, labels: dict[str, str], value: float) -> None:
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            out.append(f"{name}{{{text}}} {_num(value)}" if text else f"{name} {_num(value)}")

        family("podnet_dns_requests_total", "counter", "DNS queries received.")
        for (proto, qtype), n in sorted(self.requests.items()):
            series("podnet_dns_requests_total", {"proto": proto, "type": qtype}, n)
        family("podnet_dns_responses_total", "counter", "DNS responses sent, by rcode.")
        for (proto, rcode), n in sorted(self.responses.items()):
            series("podnet_dns_responses_total", {"proto": proto, "rcode": rcode}, n)
        family("podnet_dns_dropped_total", "counter", "Packets dropped without an answer.")
        for reason, n in sorted(self.dropped.items()):
            series("podnet_dns_dropped_total", {"reason": reason}, n)
        family("podnet_dns_cache_hits_total", "counter", "Cache hits.")
        family("podnet_dns_cache_misses_total", "counter", "Cache misses.")
        family("podnet_dns_cache_entries", "gauge", "Entries in each cache.")
        for cache in ("response", "forward"):
            series("podnet_dns_cache_hits_total", {"cache": cache}, self.cache_hits.get(cache, 0))
            series("podnet_dns_cache_misses_total", {"cache": cache},
                   self.cache_misses.get(cache, 0))
            series("podnet_dns_cache_entries", {"cache": cache}, self.cache_entries.get(cache, 0))
        family("podnet_dns_forward_requests_total", "counter", "Queries sent to upstreams.")
        for upstream, n in sorted(self.forward_requests.items()):
            series("podnet_dns_forward_requests_total", {"upstream": upstream}, n)
        family("podnet_dns_forward_failures_total", "counter",
               "Upstream queries that failed (timeout, error, bad response).")
        for (upstream, reason), n in sorted(self.forward_failures.items()):
            series("podnet_dns_forward_failures_total",
                   {"upstream": upstream, "reason": reason}, n)
        family("podnet_dns_forward_loop_detected", "gauge",
               "1 when a forwarding loop was detected (forwarding is then stopped).")
        series("podnet_dns_forward_loop_detected", {}, int(self.loop_detected))
        family("podnet_dns_healthy", "gauge", "0 when forwarding was stopped by a loop.")
        series("podnet_dns_healthy", {}, int(not self.loop_detected))
        name = "podnet_dns_request_duration_seconds"
        family(name, "histogram", "Time to answer a query off the response cache.")
        for proto, h in sorted(self.durations.items()):
            cumulative = 0
            for bound, n in zip((*h.buckets, float("inf")), h.counts, strict=True):
                cumulative += n
                le = "+Inf" if bound == float("inf") else _num(bound)
                series(f"{name}_bucket", {"proto": proto, "le": le}, cumulative)
            series(f"{name}_sum", {"proto": proto}, h.total)
            series(f"{name}_count", {"proto": proto}, h.count)
        family("podnet_dns_index_updates_total", "counter", "Cluster index changes applied.")
        series("podnet_dns_index_updates_total", {}, self.index_updates)
        family("podnet_dns_programming_latency_seconds", "gauge",
               "The last index change: first API event to the change being served.")
        series("podnet_dns_programming_latency_seconds", {}, self.programming_latency)
        family("podnet_dns_programming_latency_seconds_max", "gauge",
               "The largest programming latency since start.")
        series("podnet_dns_programming_latency_seconds_max", {}, self.programming_latency_max)
        family("podnet_dns_index_serial", "gauge", "The zone's SOA serial.")
        series("podnet_dns_index_serial", {}, self.serial)
        family("podnet_dns_ready", "gauge", "1 once Services, EndpointSlices, Pods and "
               "Namespaces are listed.")
        series("podnet_dns_ready", {}, int(self.ready))
        return "\n".join(out) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))
