"""The cluster's DNS records, indexed by lower-cased owner name (pure).

`build_index` reads Services, EndpointSlices, Pods and Namespaces once per change batch and
turns them into a `ClusterIndex`: a map from owner name to record sets, plus the names that
exist without records (empty non-terminals), so `answer.py` only looks names up. API objects
are read defensively: a missing or mistyped field leaves a record out, never raises.

What each object contributes (the Kubernetes DNS specification, schema 1.1.0; `<zone>` is
`DnsConfig.zone`):

  Service with cluster IPs   <svc>.<ns>.svc.<zone>          A / AAAA, one per cluster IP
                             _<port>._<proto>.<svc>...      SRV to <svc>.<ns>.svc.<zone>, named
                                                            ports only, the Service port
                             reverse of each cluster IP     PTR <svc>.<ns>.svc.<zone>
  headless Service           <svc>.<ns>.svc.<zone>          A / AAAA, one per ready address
                             <host>.<svc>.<ns>.svc.<zone>   A / AAAA of that endpoint
                             _<port>._<proto>.<svc>...      SRV to each <host>, N x M, the
                                                            endpoint's port
                             reverse of each ready address  PTR <host>.<svc>.<ns>.svc.<zone>
  ExternalName Service       <svc>.<ns>.svc.<zone>          CNAME <externalName>
  the nameserver Service     ns.dns.<zone>                  A / AAAA of its cluster IPs
  Namespace                  <ns>.svc.<zone>, <ns>.pod.<zone> exist (no records)

`<host>` is the endpoint's `hostname` (set by the EndpointSlice controller for pods whose
hostname + subdomain name the Service), else the endpoint's address with `.` or `:` replaced by
`-` (`10-244-1-5`, `fd00-10-244--5`), as CoreDNS names them. An endpoint is ready when its
`ready` condition is true or absent (the API says absent means ready), or the Service has
publishNotReadyAddresses (the controller already marks those ready; user-written slices may
not). A headless Service with no ready endpoint contributes nothing, so its name is NXDOMAIN.

Pod records `a-b-c-d.<ns>.pod.<zone>` are not stored: `answer.py` makes them from the name
(mode "insecure") or checks them against `pod_ips` (mode "verified").

`update_service`, `set_namespaces` and `set_pods` change an index in place, without a rebuild
(about 30-80 us per Service where a rebuild of 10,000 Services takes about 0.4 s).
Objects are the API's decoded JSON: dicts (anything else is skipped).
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from podnet.dns.model import AAAA, CNAME, PTR, SRV, TXT, A, Rdata, Srv

Obj = Mapping[str, Any]
Addr = ipaddress.IPv4Address | ipaddress.IPv6Address
Net = ipaddress.IPv4Network | ipaddress.IPv6Network
PodMode = Literal["insecure", "verified", "disabled"]

SCHEMA_VERSION = "1.1.0"
LABEL_SERVICE_NAME = "kubernetes.io/service-name"


@dataclass(frozen=True)
class DnsConfig:
    """How the cluster zone is served. The defaults are those of a kubeadm cluster's CoreDNS:
    TTL 30 (the kubernetes plugin's own default is 5; kubeadm's Corefile sets 30), pod records
    "insecure", and the SOA the plugin makes: `ns.dns.<zone>`, `hostmaster.<zone>`, refresh
    7200, retry 1800, expire 86400, minimum = the TTL, the SOA's own TTL min(TTL, 300). The
    serial is the index's (the time of the last change, passed to `build_index`)."""

    zone: str = "cluster.local"
    ttl: int = 30
    pod_records: PodMode = "insecure"
    schema_version: str = SCHEMA_VERSION
    version_ttl: int = 28800  # dns-version's TXT, as CoreDNS serves it
    refresh: int = 7200
    retry: int = 1800
    expire: int = 86400
    # The reverse zones the cluster owns: names under them are answered here (NXDOMAIN when
    # unknown); other reverse names go upstream. Each CIDR is widened to an octet (IPv4) or
    # nibble (IPv6) boundary, as in-addr.arpa / ip6.arpa delegation works.
    service_cidrs: tuple[str, ...] = ("10.96.0.0/12",)
    pod_cidrs: tuple[str, ...] = ("10.244.0.0/16",)
    # The Service whose cluster IPs are the zone's nameserver (`ns.dns.<zone>`).
    nameserver_service: tuple[str, str] = ("kube-system", "kube-dns")

    @property
    def soa_ttl(self) -> int:
        return min(self.ttl, 300)

    @property
    def mname(self) -> str:
        return f"ns.dns.{self.zone_key}"

    @property
    def rname(self) -> str:
        return f"hostmaster.{self.zone_key}"

    @property
    def zone_key(self) -> str:
        return self.zone.strip(".").lower()


RecordSets = dict[int, list[Rdata]]
_Item = tuple[str, int, Rdata]  # owner, type, rdata


@dataclass
class _Contribution:
    """What one Service put into the index, so it can be taken out again."""

    records: list[_Item] = field(default_factory=list)
    names: set[str] = field(default_factory=set)  # owners and the empty non-terminals above


@dataclass
class ClusterIndex:
    """Everything `answer()` needs. `records` maps a lower-cased owner name (no final dot) to
    its record sets; `refs` counts, for every name that exists, how many contributions make
    it exist (owners, their ancestors inside the zone, namespaces), so a name exists exactly
    when `refs[name] > 0`. `pod_ips` maps namespace -> pod IPs (canonical text), for
    "verified" pod records. `reverse_zones` are the owned reverse zones' networks."""

    config: DnsConfig
    serial: int
    records: dict[str, RecordSets]
    refs: Counter[str]
    namespaces: set[str]
    pod_ips: dict[str, set[str]]
    reverse_zones: tuple[Net, ...]
    by_service: dict[tuple[str, str], _Contribution] = field(default_factory=dict)

    def exists(self, name: str) -> bool:
        return self.refs.get(name, 0) > 0


# --- reading objects ----------------------------------------------------------------------------

def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _ns_name(obj: Obj) -> tuple[str, str]:
    meta = _dict(obj.get("metadata"))
    return _str(meta.get("namespace")).lower(), _str(meta.get("name")).lower()


def parse_ip(text: Any) -> Addr | None:
    """An address in canonical form (IPv4-mapped IPv6 taken as IPv4); None if it is not one."""
    if not isinstance(text, str) or not text:
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}\Z")


class _IP(NamedTuple):
    """An address as the index needs it: canonical text, record type, reverse name."""

    text: str
    rtype: int
    reverse: str


def _ip(text: Any) -> _IP | None:
    """`text` as an _IP; a fast path for IPv4 in canonical form, ipaddress for the rest."""
    if not isinstance(text, str):
        return None
    if _IPV4.match(text):
        parts = text.split(".")
        return _IP(text, A, f"{parts[3]}.{parts[2]}.{parts[1]}.{parts[0]}.in-addr.arpa")
    ip = parse_ip(text)
    if ip is None:
        return None
    return _IP(str(ip), A if ip.version == 4 else AAAA, ip.reverse_pointer)


def _reverse_ancestors(reverse: str) -> list[str]:
    """The names between a reverse name and in-addr.arpa / ip6.arpa, both excluded."""
    out = []
    rest = reverse
    for _ in range(reverse.count(".") - 2):
        rest = rest[rest.index(".") + 1:]
        out.append(rest)
    return out


def _cluster_ips(spec: Mapping[str, Any]) -> list[_IP]:
    texts = [t for t in _list(spec.get("clusterIPs")) if isinstance(t, str)]
    if not texts:
        texts = [_str(spec.get("clusterIP"))]
    out: list[_IP] = []
    for t in texts:
        ip = _ip(t)
        if ip is not None and ip not in out:
            out.append(ip)
    return out


def service_kind(service: Obj) -> Literal["ExternalName", "headless", "ClusterIP"]:
    spec = _dict(service.get("spec"))
    if spec.get("type") == "ExternalName":
        return "ExternalName"
    return "ClusterIP" if _cluster_ips(spec) else "headless"


def endpoint_hostname(hostname: Any, ip_text: str) -> str:
    """The DNS label of an endpoint: its hostname, else its address with '-' for '.'/':'."""
    if isinstance(hostname, str) and hostname:
        return hostname.lower()
    return ip_text.replace(".", "-").replace(":", "-")


# --- one Service ------------------------------------------------------------------------------

def _ready_endpoints(slices: Iterable[Obj], publish: bool) -> list[tuple[str, _IP, list[Obj]]]:
    """(hostname label, address, the slice's ports) for each ready endpoint address."""
    out = []
    for s in slices:
        if s.get("addressType") not in ("IPv4", "IPv6"):
            continue
        ports: list[Obj] = [p for p in _list(s.get("ports")) if isinstance(p, dict)]
        for ep in _list(s.get("endpoints")):
            if not isinstance(ep, dict):
                continue
            ready = _dict(ep.get("conditions")).get("ready")
            if not (publish or ready is None or ready is True):
                continue
            for text in _list(ep.get("addresses")):
                ip = _ip(text)
                if ip is not None:
                    out.append((endpoint_hostname(ep.get("hostname"), ip.text), ip, ports))
    return out


def _srv_owner(port: Mapping[str, Any], base: str) -> tuple[str, str, int] | None:
    """(SRV owner, its `_<proto>` parent, port number) of a named port."""
    name = port.get("name")
    number = port.get("port")
    if not name or not isinstance(name, str) or not isinstance(number, int) or \
            isinstance(number, bool):
        return None
    proto = f"_{_str(port.get('protocol') or 'TCP').lower()}.{base}"
    return f"_{name.lower()}.{proto}", proto, number


def service_contribution(service: Obj, slices: Iterable[Obj], config: DnsConfig,
                         key: tuple[str, str] | None = None) -> _Contribution:
    """The records one Service makes (see the module docstring), and the names it makes
    exist. `key` is the Service's (namespace, name), lower-cased, when already known."""
    zone = config.zone_key
    ns, name = key or _ns_name(service)
    spec = _dict(service.get("spec"))
    out = _Contribution()
    if not ns or not name:
        return out
    records, names = out.records, out.names
    base = f"{name}.{ns}.svc.{zone}"
    names.add(f"{ns}.svc.{zone}")
    ips = [] if spec.get("type") == "ExternalName" else _cluster_ips(spec)
    if spec.get("type") == "ExternalName":
        target = _str(spec.get("externalName")).strip().rstrip(".")
        if target:
            records.append((base, CNAME, target))
            names.add(base)
    elif ips:
        names.add(base)
        for ip in ips:
            records.append((base, ip.rtype, ip.text))
            records.append((ip.reverse, PTR, base))
            names.add(ip.reverse)
            names.update(_reverse_ancestors(ip.reverse))
        seen: set[str] = set()
        for port in _list(spec.get("ports")):
            srv = _srv_owner(_dict(port), base)
            if srv is not None and srv[0] not in seen:
                seen.add(srv[0])
                records.append((srv[0], SRV, Srv(0, 0, srv[2], base)))
                names.add(srv[0])
                names.add(srv[1])
        if (ns, name) == config.nameserver_service:
            records.extend((f"ns.dns.{zone}", ip.rtype, ip.text) for ip in ips)
    else:
        publish = spec.get("publishNotReadyAddresses") is True
        items: set[_Item] = set()
        for host, ip, ports in _ready_endpoints(slices, publish):
            target = f"{host}.{base}"
            items.add((base, ip.rtype, ip.text))
            items.add((target, ip.rtype, ip.text))
            items.add((ip.reverse, PTR, target))
            names.add(base)
            names.add(target)
            names.add(ip.reverse)
            names.update(_reverse_ancestors(ip.reverse))
            for port in ports:
                srv = _srv_owner(port, base)
                if srv is not None:
                    items.add((srv[0], SRV, Srv(0, 0, srv[2], target)))
                    names.add(srv[0])
                    names.add(srv[1])
        records.extend(sorted(items, key=_item_order))
    return out


def _item_order(item: _Item) -> tuple[str, int, str]:
    owner, rtype, rdata = item
    return owner, rtype, f"{rdata.target} {rdata.port}" if isinstance(rdata, Srv) else str(rdata)


# --- the whole index ----------------------------------------------------------------------------

def _reverse_zones(config: DnsConfig) -> tuple[Net, ...]:
    out: list[Net] = []
    for text in (*config.service_cidrs, *config.pod_cidrs):
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            continue
        if net not in out:
            out.append(net)
    return tuple(out)


def _add(index: ClusterIndex, part: _Contribution, sign: int) -> None:
    records = index.records
    if sign > 0:
        for owner, rtype, rdata in part.records:
            sets = records.get(owner)
            if sets is None:
                records[owner] = {rtype: [rdata]}
            elif rtype in sets:
                sets[rtype].append(rdata)
            else:
                sets[rtype] = [rdata]
        index.refs.update(part.names)
        return
    for owner, rtype, rdata in part.records:
        sets = records.get(owner)
        if sets is None or rtype not in sets:
            continue
        rdatas = sets[rtype]
        if rdata in rdatas:
            rdatas.remove(rdata)
        if not rdatas:
            del sets[rtype]
            if not sets:
                del records[owner]
    refs = index.refs
    for n in part.names:
        refs[n] -= 1
        if refs[n] <= 0:
            del refs[n]


def _slices_by_service(endpoint_slices: Iterable[Obj]) -> dict[tuple[str, str], list[Obj]]:
    out: dict[tuple[str, str], list[Obj]] = {}
    for s in endpoint_slices:
        if not isinstance(s, dict):
            continue
        meta = _dict(s.get("metadata"))
        svc = _str(_dict(meta.get("labels")).get(LABEL_SERVICE_NAME)).lower()
        ns = _str(meta.get("namespace")).lower()
        if svc and ns:
            out.setdefault((ns, svc), []).append(s)
    return out


def _pod_ips(pods: Iterable[Obj]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for pod in pods:
        if not isinstance(pod, dict):
            continue
        ns, _ = _ns_name(pod)
        status = _dict(pod.get("status"))
        texts = [_dict(e).get("ip") for e in _list(status.get("podIPs"))]
        texts.append(status.get("podIP"))
        for t in texts:
            ip = parse_ip(t)
            if ip is not None and ns:
                out.setdefault(ns, set()).add(str(ip))
    return out


def build_index(services: Iterable[Obj], endpoint_slices: Iterable[Obj], pods: Iterable[Obj],
                namespaces: Iterable[Obj], config: DnsConfig | None = None, *,
                serial: int = 1) -> ClusterIndex:
    """The index of the cluster zone for these objects. `serial` is the SOA serial (the
    server passes the time of the last change, as CoreDNS does). Pods are read only for
    "verified" pod records."""
    config = config or DnsConfig()
    zone = config.zone_key
    index = ClusterIndex(config=config, serial=serial, records={}, refs=Counter(),
                         namespaces=set(), pod_ips={}, reverse_zones=_reverse_zones(config))
    index.records[f"dns-version.{zone}"] = {TXT: [(config.schema_version,)]}
    for n in (zone, f"dns-version.{zone}", f"ns.dns.{zone}", f"dns.{zone}", f"svc.{zone}"):
        index.refs[n] += 1
    if config.pod_records != "disabled":
        index.refs[f"pod.{zone}"] += 1
    for obj in namespaces:
        if isinstance(obj, dict):
            _, ns = _ns_name(obj)
            if ns:
                _add_namespace(index, ns)
    slices = _slices_by_service(endpoint_slices)
    for svc in services:
        if not isinstance(svc, dict):
            continue
        key = _ns_name(svc)
        part = service_contribution(svc, slices.get(key, ()), config, key)
        old = index.by_service.pop(key, None)
        if old is not None:  # the same Service listed twice: the last one wins
            _add(index, old, -1)
        index.by_service[key] = part
        _add(index, part, +1)
    if config.pod_records == "verified":
        index.pod_ips = _pod_ips(pods)
    return index


def _add_namespace(index: ClusterIndex, ns: str) -> None:
    if ns in index.namespaces:
        return
    zone = index.config.zone_key
    index.namespaces.add(ns)
    index.refs[f"{ns}.svc.{zone}"] += 1
    if index.config.pod_records != "disabled":
        index.refs[f"{ns}.pod.{zone}"] += 1


def update_service(index: ClusterIndex, namespace: str, name: str, service: Obj | None,
                   slices: Iterable[Obj] = ()) -> None:
    """Replace the records of Service `namespace/name` in place: `service` is its new
    version (None when deleted), `slices` all of its EndpointSlices. The result equals a
    rebuild from the same objects, except that `serial` is left to the caller."""
    key = (namespace.lower(), name.lower())
    old = index.by_service.pop(key, None)
    if old is not None:
        _add(index, old, -1)
    if service is not None:
        part = service_contribution(service, slices, index.config)
        index.by_service[key] = part
        _add(index, part, +1)


def set_namespaces(index: ClusterIndex, namespaces: Iterable[str]) -> None:
    """Replace the set of namespaces in place (a Namespace was added or deleted)."""
    zone = index.config.zone_key
    wanted = {n.lower() for n in namespaces}
    for ns in index.namespaces - wanted:
        for n in (f"{ns}.svc.{zone}", f"{ns}.pod.{zone}"):
            if n in index.refs:
                index.refs[n] -= 1
                if index.refs[n] <= 0:
                    del index.refs[n]
        index.namespaces.discard(ns)
    for ns in wanted - index.namespaces:
        _add_namespace(index, ns)


def set_pods(index: ClusterIndex, pods: Iterable[Obj]) -> None:
    """Replace the pod addresses in place (only "verified" pod records read them)."""
    if index.config.pod_records == "verified":
        index.pod_ips = _pod_ips(pods)
