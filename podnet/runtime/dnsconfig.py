"""A pod's /etc/resolv.conf, /etc/hosts and hostname, as kubelet and containerd write them (pure).

resolv.conf. kubelet builds a DNS config (nameservers, searches, options) from the pod's
`dnsPolicy`, the node's resolv.conf and the pod's `dnsConfig`; the runtime writes it out:
`search ...`, one `nameserver` line each, `options ...` (containerd's order). When the config is
empty the runtime copies the node's file instead.

  ClusterFirst            nameserver = the cluster DNS; search = `<ns>.svc.<domain>`,
                          `svc.<domain>`, `<domain>`, then the node's searches; options ndots:5.
                          A hostNetwork pod falls back to Default. No cluster DNS configured:
                          Default, with a MissingClusterDNS warning.
  ClusterFirstWithHostNet the same, also for hostNetwork pods.
  Default                 the node's nameservers, searches and options.
  None                    nothing but the pod's dnsConfig.

`dnsConfig` is appended: nameservers and searches without duplicates, options merged by name
(the pod's value wins). Kubelet keeps options in a Go map, so its order is random; here the
first appearance fixes an option's place. Then kubelet's limits: 3 nameservers, 32 search
domains, none longer than 253 characters, 2048 characters for the search line (cut from the
end); exceeding one gives a DNSConfigForming warning.

/etc/hosts. The managed header, the localhost and IPv6 lines, one line per pod IP with the
hostname (and `<hostname>.<subdomain>.<ns>.svc.<domain>` first when spec.subdomain is set),
then spec.hostAliases. A hostNetwork pod gets the node's own hosts file under its own header.

Hostname. spec.hostname or the pod's name, cut to 63 characters; with setHostnameAsFQDN and a
subdomain, the FQDN (at most 64 characters).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_NAMESERVERS = 3
MAX_SEARCH_PATHS = 32
MAX_SEARCH_LIST_CHARS = 2048
MAX_SEARCH_PATH_LENGTH = 253  # a DNS-1123 subdomain
DEFAULT_OPTIONS = ("ndots:5",)
HOSTNAME_MAX = 63
FQDN_MAX = 64

MANAGED_HOSTS_HEADER = "# Kubernetes-managed hosts file.\n"
MANAGED_HOSTS_HEADER_HOST_NETWORK = "# Kubernetes-managed hosts file (host network).\n"
_LOCALHOST_LINES = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
)

Pod = Mapping[str, Any]


@dataclass(frozen=True)
class DnsConfig:
    """What a runtime is asked to put in resolv.conf."""

    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return not (self.nameservers or self.searches or self.options)


@dataclass(frozen=True)
class DnsWarning:
    """A warning event kubelet would record on the pod (type Warning)."""

    reason: str
    message: str


@dataclass(frozen=True)
class ResolvConf:
    text: str
    config: DnsConfig
    warnings: tuple[DnsWarning, ...] = ()


# -- parsing the node's resolv.conf -------------------------------------------------------------

def _option_name(option: str) -> str:
    return option.split(":", 1)[0]


def merge_options(existing: Sequence[str], new: Sequence[str]) -> tuple[str, ...]:
    """Options keyed by name: a later one replaces an earlier one, in the earlier one's place."""
    merged: dict[str, str] = {}
    for option in (*existing, *new):
        merged[_option_name(option)] = option
    return tuple(merged.values())


def parse_resolv_conf(text: str) -> DnsConfig:
    """kubelet's reading of a resolv.conf: nameservers accumulate, the last `search` line
    wins (trailing dots dropped, "." ignored), `options` lines merge by option name."""
    nameservers: list[str] = []
    searches: list[str] = []
    options: tuple[str, ...] = ()
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith("#"):
            continue
        fields = stripped.split()
        if not fields:
            continue
        key, values = fields[0], fields[1:]
        if key == "nameserver" and values:
            nameservers.append(values[0])
        elif key == "search":
            searches = [s.removesuffix(".") for s in values if s != "."]
        elif key == "options":
            options = merge_options(options, values)
    return DnsConfig(tuple(nameservers), tuple(searches), options)


# -- kubelet's DNS config for a pod -------------------------------------------------------------

def _spec(pod: Pod) -> Mapping[str, Any]:
    spec = pod.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _namespace(pod: Pod) -> str:
    meta = pod.get("metadata")
    ns = meta.get("namespace") if isinstance(meta, Mapping) else None
    return ns if isinstance(ns, str) and ns else "default"


def _name(pod: Pod) -> str:
    meta = pod.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    return name if isinstance(name, str) else ""


def _uid(pod: Pod) -> str:
    meta = pod.get("metadata")
    uid = meta.get("uid") if isinstance(meta, Mapping) else None
    return uid if isinstance(uid, str) else ""


def _unique(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _str_list(value: object) -> list[str]:
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, str)]


def dns_policy(pod: Pod) -> str:
    """The effective policy: "cluster", "host" or "none" (ClusterFirst on hostNetwork is host)."""
    spec = _spec(pod)
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "None":
        return "none"
    if policy == "ClusterFirstWithHostNet":
        return "cluster"
    if policy == "Default" or (policy == "ClusterFirst" and spec.get("hostNetwork") is True):
        return "host"
    return "cluster"  # ClusterFirst, and (as kubelet) anything unknown


def cluster_searches(namespace: str, cluster_domain: str) -> tuple[str, ...]:
    if not cluster_domain:
        return ()
    return (f"{namespace}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain)


def _pod_dns_options(dns_config: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    raw = dns_config.get("options")
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            continue
        value = item.get("value")
        out.append(f"{item['name']}:{value}" if isinstance(value, str) and value
                   else str(item["name"]))
    return out


def _fit_search(searches: Sequence[str]) -> tuple[tuple[str, ...], bool]:
    exceeded = len(searches) > MAX_SEARCH_PATHS
    kept = list(searches[:MAX_SEARCH_PATHS])
    short = [s for s in kept if len(s) <= MAX_SEARCH_PATH_LENGTH]
    exceeded = exceeded or len(short) != len(kept)
    line_len = len(" ".join(short))
    while short and line_len > MAX_SEARCH_LIST_CHARS:
        line_len -= len(short.pop()) + 1
        exceeded = True
    return tuple(short), exceeded


def _fit_limits(config: DnsConfig) -> tuple[DnsConfig, list[DnsWarning]]:
    warnings: list[DnsWarning] = []
    servers = config.nameservers
    if len(servers) > MAX_NAMESERVERS:
        servers = servers[:MAX_NAMESERVERS]
        warnings.append(DnsWarning(
            "DNSConfigForming",
            "Nameserver limits were exceeded, some nameservers have been omitted, the applied "
            f"nameserver line is: {' '.join(servers)}"))
    searches, exceeded = _fit_search(config.searches)
    if exceeded:
        warnings.append(DnsWarning(
            "DNSConfigForming",
            "Search Line limits were exceeded, some search paths have been omitted, the applied "
            f"search line is: {' '.join(searches)}"))
    return DnsConfig(servers, searches, config.options), warnings


def pod_dns_config(pod: Pod, *, host: DnsConfig | None, cluster_dns: Sequence[str],
                   cluster_domain: str) -> tuple[DnsConfig, list[DnsWarning]]:
    """kubelet's GetPodDNS. `host` is the node's parsed resolv.conf, or None when kubelet has
    no resolv.conf (its --resolv-conf="")."""
    warnings: list[DnsWarning] = []
    base = host if host is not None else DnsConfig()
    policy = dns_policy(pod)
    if policy == "cluster" and not cluster_dns:
        warnings.append(DnsWarning(
            "MissingClusterDNS",
            f'pod: "{_name(pod)}_{_namespace(pod)}({_uid(pod)})". kubelet does not have '
            'ClusterDNS IP configured and cannot create Pod using "ClusterFirst" policy. '
            'Falling back to "Default" policy.'))
        policy = "host"
    if policy == "none":
        config = DnsConfig()
    elif policy == "cluster":
        config = DnsConfig(
            tuple(cluster_dns),
            _unique([*cluster_searches(_namespace(pod), cluster_domain), *base.searches])
            if cluster_domain else base.searches,
            DEFAULT_OPTIONS)
    elif host is None:
        config = DnsConfig(("127.0.0.1",), (".",), base.options)
    else:
        config = base
    dns_config = _spec(pod).get("dnsConfig")
    if isinstance(dns_config, Mapping):
        config = DnsConfig(
            _unique([*config.nameservers, *_str_list(dns_config.get("nameservers"))]),
            _unique([*config.searches, *_str_list(dns_config.get("searches"))]),
            merge_options(config.options, _pod_dns_options(dns_config)))
    config, limit_warnings = _fit_limits(config)
    return config, warnings + limit_warnings


def render_resolv_conf(config: DnsConfig) -> str:
    """containerd's rendering: search, then nameservers, then options."""
    out = ""
    if config.searches:
        out += f"search {' '.join(config.searches)}\n"
    for server in config.nameservers:
        out += f"nameserver {server}\n"
    if config.options:
        out += f"options {' '.join(config.options)}\n"
    return out


def resolv_conf(pod: Pod, *, host_resolv_conf: str | None, cluster_dns: Sequence[str],
                cluster_domain: str) -> ResolvConf:
    """The pod's resolv.conf. `host_resolv_conf` is the text of the node's file (None: none)."""
    host = parse_resolv_conf(host_resolv_conf) if host_resolv_conf is not None else None
    config, warnings = pod_dns_config(pod, host=host, cluster_dns=cluster_dns,
                                      cluster_domain=cluster_domain)
    text = render_resolv_conf(config)
    if not text:  # an empty config: the runtime copies the node's file
        text = host_resolv_conf or ""
    return ResolvConf(text, config, tuple(warnings))


# -- hostname and /etc/hosts --------------------------------------------------------------------

def pod_hostname(pod: Pod, cluster_domain: str) -> tuple[str, str]:
    """(hostname, domain): spec.hostname or the pod's name, cut to 63 characters without a
    trailing '-' or '.'; the domain is `<subdomain>.<ns>.svc.<cluster domain>` or ""."""
    spec = _spec(pod)
    hostname = spec.get("hostname")
    name = hostname if isinstance(hostname, str) and hostname else _name(pod)
    if len(name) > HOSTNAME_MAX:
        name = name[:HOSTNAME_MAX].rstrip("-.")
    subdomain = spec.get("subdomain")
    domain = (f"{subdomain}.{_namespace(pod)}.svc.{cluster_domain}"
              if isinstance(subdomain, str) and subdomain else "")
    return name, domain


def uts_hostname(pod: Pod, cluster_domain: str) -> str:
    """The hostname the pod's UTS namespace carries. Raises ValueError for an FQDN that is
    too long, as kubelet refuses to start such a pod."""
    hostname, domain = pod_hostname(pod, cluster_domain)
    if _spec(pod).get("setHostnameAsFQDN") is True and domain:
        fqdn = f"{hostname}.{domain}"
        if len(fqdn) > FQDN_MAX:
            raise ValueError(
                f"failed to construct FQDN from pod hostname and cluster domain, FQDN {fqdn} is "
                f"too long ({FQDN_MAX} characters is the max, {len(fqdn)} characters requested)")
        return fqdn
    return hostname


def _host_aliases(pod: Pod) -> str:
    raw = _spec(pod).get("hostAliases")
    aliases = [a for a in raw if isinstance(a, Mapping)] if isinstance(raw, list) else []
    if not aliases:
        return ""
    out = "\n# Entries added by HostAliases.\n"
    for alias in aliases:
        out += f"{alias.get('ip', '')}\t{chr(9).join(_str_list(alias.get('hostnames')))}\n"
    return out


def hosts_file(pod: Pod, pod_ips: Sequence[str], *, cluster_domain: str,
               node_hosts: str | None = None) -> str:
    """The pod's /etc/hosts. For a hostNetwork pod pass the node's hosts file as node_hosts."""
    if _spec(pod).get("hostNetwork") is True:
        return MANAGED_HOSTS_HEADER_HOST_NETWORK + (node_hosts or "") + _host_aliases(pod)
    hostname, domain = pod_hostname(pod, cluster_domain)
    out = MANAGED_HOSTS_HEADER + _LOCALHOST_LINES
    for ip in pod_ips:
        out += (f"{ip}\t{hostname}.{domain}\t{hostname}\n" if domain else f"{ip}\t{hostname}\n")
    return out + _host_aliases(pod)
