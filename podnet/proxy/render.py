"""A Ruleset -> nft scripts (pure): the whole table, or only the changes a Delta describes.

The table (family ip, one per node namespace, named `podnet-<cluster>`). A key is
`ip . proto . port`: a ClusterIP, LoadBalancer IP, external IP or the node's IP with a port.

  sets   cluster-ips    ClusterIPs allocated in the service CIDR
         no-endpoints   keys of Service ports with no endpoint to use (rejected)
         no-local       keys with no endpoint on this node where the policy is Local (dropped)
         masq-keys      external keys with externalTrafficPolicy Cluster (always masqueraded)
         local-keys     external keys with externalTrafficPolicy Local
         svc-n<N>       keys dispatched over N endpoints (one set per N in use)
         local-n<N>     externalTrafficPolicy Local keys with N endpoints on this node
         hairpin        ip . ip for endpoints on this node (a pod reaching itself)
         fw-keys        LoadBalancer keys with loadBalancerSourceRanges
         fw-allow       key . source range allowed (intervals)
  maps   eps-<proto>    key . bucket -> endpoint ip . port (one map per protocol, tcp, udp,
                        sctp: a map typed with `tcp dport` does not DNAT UDP packets)
         local-eps-<proto>  the same, this node's endpoints only
         affinity       key -> goto the key's own chain (sessionAffinity ClientIP)

  chains services         the `affinity` jump, then per svc-n<N> one rule per protocol:
                            key in svc-n<N> -> dnat to eps-<proto>[key . (random mod N)]
         external-local   one rule per local-n<N>, the same over local-eps; then any other
                          local key is accepted unchanged (the filter drops it)
         nat-prerouting   mark off-cluster traffic to a ClusterIP and keys in masq-keys; traffic
                          from outside the pod network goes to external-local; jump services
         nat-output       the same for the node's own traffic (local keys masqueraded, never
                          the local view)
         firewall         (filter, before DNAT) a key in fw-keys from a source not allowed
                          by fw-allow -> drop
         mark-hairpin     after DNAT: source == new destination -> mark
         nat-postrouting  marked -> clear the mark, masquerade
         check            (filter: input, forward, output) what is still addressed to a key
                          was not DNATed: no-endpoints -> reject, no-local -> drop; another port of
                          a ClusterIP -> reject; an unallocated IP of the service CIDR -> drop
         aff-<id>         per affinity key: a remembered client goes to its endpoint, others
                          pick one at random (goto aff-<id>-<ep>)
         aff-<id>-<ep>    remember the client in the timed set aff-<id>-<ep>, dnat

Everything a Service change touches is an element, an affinity chain, or (when an endpoint
count comes into or out of use) the `services` or `external-local` chain, flushed and refilled
in the same transaction. Scripts are meant for `nft -f -`, one transaction each.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from podnet.proxy.model import (
    AFFINITY,
    CHAIN,
    CLUSTER_IPS,
    DROP,
    EPS,
    FW_ALLOW,
    FW_KEYS,
    HAIRPIN,
    LOCAL_EPS,
    LOCAL_KEYS,
    MASQ,
    NO_ENDPOINTS,
    TIMED_SET,
    AffinityChain,
    AffinityEndpoint,
    Delta,
    NodeInfo,
    Ruleset,
    dispatch_count,
)

MASQ_MARK = 0x4000  # the bit kube-proxy uses too
CHUNK = 1000  # elements per `add element` line

KEY_TYPE = "ipv4_addr . inet_proto . inet_service"
PROTOS = ("tcp", "udp", "sctp")
# The endpoint maps' key and value types, given as expressions, one map per protocol.
# Written with `th dport`, nft 1.0.6 can no longer add a rule using the map once the map
# comes from the kernel ("conflicting protocols specified: ip vs. th" when it rebuilds the
# typeof); and a map typed with `tcp dport` matches UDP keys but its DNAT does not happen
# (measured here: the packet goes on untranslated).
def eps_typeof(proto: str) -> str:
    return (f"ip daddr . meta l4proto . {proto} dport . numgen random mod 1 : "
            f"ip daddr . {proto} dport")


KEY = "ip daddr . meta l4proto . th dport"
MARK = f"meta mark set meta mark | {MASQ_MARK:#x}"

# Declarations of the fixed sets and maps, in the order the table lists them.
FIXED_OBJECTS: tuple[tuple[str, str], ...] = (
    (CLUSTER_IPS, "type ipv4_addr"),
    (NO_ENDPOINTS, f"type {KEY_TYPE}"),
    (DROP, f"type {KEY_TYPE}"),
    (MASQ, f"type {KEY_TYPE}"),
    (LOCAL_KEYS, f"type {KEY_TYPE}"),
    (HAIRPIN, "type ipv4_addr . ipv4_addr"),
    (FW_KEYS, f"type {KEY_TYPE}"),
    (FW_ALLOW, f"type {KEY_TYPE} . ipv4_addr\n\t\tflags interval"),
)
FIXED_MAPS: tuple[tuple[str, str], ...] = (
    *((f"{EPS}-{p}", f"typeof {eps_typeof(p)}") for p in PROTOS),
    *((f"{LOCAL_EPS}-{p}", f"typeof {eps_typeof(p)}") for p in PROTOS),
    (AFFINITY, f"type {KEY_TYPE} : verdict"),
)


@dataclass(frozen=True)
class Table:
    """Names and address ranges fixed for the life of a proxy."""

    name: str
    service_cidr: str
    cluster_cidr: str

    @staticmethod
    def for_node(cluster: str, node: NodeInfo) -> Table:
        return Table(f"podnet-{cluster}", node.service_cidr, node.cluster_cidr)

    @property
    def ref(self) -> str:
        return f"ip {self.name}"


# --- rules -------------------------------------------------------------------------------------

def dispatch_rules(obj: str) -> list[str]:
    """One rule per protocol for a dispatch set (the protocol match gives the map lookup its
    context)."""
    kind, n = dispatch_count(obj) or ("svc", 0)
    eps = LOCAL_EPS if kind == "local" else EPS
    return [f"meta l4proto {p} {KEY} @{obj} dnat ip to ip daddr . meta l4proto . {p} dport . "
            f"numgen random mod {n} map @{eps}-{p}" for p in PROTOS]


def services_rules(dispatch: Iterable[str]) -> list[str]:
    """The `services` chain: affinity keys to their chains, then the svc-n<N> rules."""
    return [f"{KEY} vmap @{AFFINITY}",
            *(r for o in dispatch if (dispatch_count(o) or ("",))[0] == "svc"
              for r in dispatch_rules(o))]


def external_local_rules(dispatch: Iterable[str]) -> list[str]:
    return [*(r for o in dispatch if (dispatch_count(o) or ("",))[0] == "local"
              for r in dispatch_rules(o)),
            f"{KEY} @{LOCAL_KEYS} accept"]


def table_object(obj: str, key: tuple[Any, ...]) -> str:
    """The set or map of the table an entry lives in (endpoint maps are per protocol)."""
    return f"{obj}-{key[1]}" if obj in (EPS, LOCAL_EPS) else obj


def chain_rules(value: Any) -> list[str]:
    """The rules of an affinity chain."""
    if isinstance(value, AffinityChain):
        rules = [f"ip saddr @{s} meta l4proto {value.proto} dnat ip to {ip}:{port}"
                 for s, ip, port in value.endpoints]
        targets = ", ".join(f"{i} : goto {s}" for i, (s, _, _) in enumerate(value.endpoints))
        rules.append(f"numgen random mod {len(value.endpoints)} vmap {{ {targets} }}")
        return rules
    if isinstance(value, AffinityEndpoint):
        return [f"update @{value.set_name} {{ ip saddr }}",
                f"meta l4proto {value.proto} dnat ip to {value.ip}:{value.port}"]
    raise TypeError(f"not a chain definition: {value!r}")


# --- elements ----------------------------------------------------------------------------------

def key_element(obj: str, key: tuple[Any, ...]) -> str:
    return " . ".join(str(k) for k in key)


def element(obj: str, key: tuple[Any, ...], value: Any) -> str:
    text = key_element(obj, key)
    if obj in (EPS, LOCAL_EPS):
        return f"{text} : {value[0]} . {value[1]}"
    if obj == AFFINITY:
        return f"{text} : goto {value}"
    return text


def _element_lines(verb: str, table: Table, obj: str, elements: Iterable[str]) -> list[str]:
    items = sorted(elements)
    return [f"{verb} element {table.ref} {obj} {{ {', '.join(items[i:i + CHUNK])} }}"
            for i in range(0, len(items), CHUNK)]


def _timed_set(name: str, timeout: int) -> str:
    return f"type ipv4_addr\n\t\tflags dynamic,timeout\n\t\ttimeout {timeout}s"


# --- the whole table ---------------------------------------------------------------------------

def _decl(kind: str, name: str, body: str) -> str:
    return f"\t{kind} {name} {{\n\t\t{body}\n\t}}"


def _chain(name: str, hook: str | None, rules: list[str]) -> str:
    lines = [f"\tchain {name} {{"]
    if hook:
        lines.append(f"\t\t{hook}")
    lines += [f"\t\t{r}" for r in rules]
    lines.append("\t}")
    return "\n".join(lines)


def fixed_chains(table: Table, dispatch: Iterable[str]) -> list[str]:
    dispatch = list(dispatch)
    off_cluster = f"ip daddr @{CLUSTER_IPS} ip saddr != {table.cluster_cidr} {MARK}"
    always = f"{KEY} @{MASQ} {MARK}"
    return [
        _chain("services", None, services_rules(dispatch)),
        _chain("external-local", None, external_local_rules(dispatch)),
        _chain("firewall", None, [f"{KEY} @{FW_KEYS} {KEY} . ip saddr != @{FW_ALLOW} drop"]),
        _chain("filter-prerouting", "type filter hook prerouting priority dstnat - 10; "
               "policy accept;", ["jump firewall"]),
        _chain("filter-output-fw", "type filter hook output priority -110; "
               "policy accept;", ["jump firewall"]),
        _chain("nat-prerouting", "type nat hook prerouting priority dstnat; policy accept;",
               [off_cluster, always, f"ip saddr != {table.cluster_cidr} jump external-local",
                "jump services"]),
        _chain("nat-output", "type nat hook output priority -100; policy accept;",
               [off_cluster, always, f"{KEY} @{LOCAL_KEYS} {MARK}", "jump services"]),
        _chain("mark-hairpin", "type filter hook prerouting priority -90; policy accept;",
               [f"ct status dnat ip saddr . ip daddr @{HAIRPIN} {MARK}"]),
        _chain("nat-postrouting", "type nat hook postrouting priority srcnat; policy accept;",
               [f"meta mark & {MASQ_MARK:#x} == 0 return",
                f"meta mark set meta mark ^ {MASQ_MARK:#x}",
                "masquerade fully-random"]),
        _chain("reject-unserved", None, ["meta l4proto tcp reject with tcp reset", "reject"]),
        _chain("check", None, [
            f"{KEY} @{NO_ENDPOINTS} goto reject-unserved",
            f"{KEY} @{DROP} drop",
            f"ip daddr @{CLUSTER_IPS} goto reject-unserved",
            f"ip daddr {table.service_cidr} drop"]),
        _chain("filter-input", "type filter hook input priority -10; policy accept;",
               ["jump check"]),
        _chain("filter-forward", "type filter hook forward priority -10; policy accept;",
               ["jump check"]),
        _chain("filter-output", "type filter hook output priority -10; policy accept;",
               ["jump check"]),
    ]


def full(table: Table, rules: Ruleset) -> str:
    """A script that replaces the table with one holding `rules`, in one transaction (the
    first two lines make sure there is a table to delete)."""
    objs = rules.by_object()
    dispatch = rules.dispatch_objs()
    decls = [_decl("set", name, body) for name, body in FIXED_OBJECTS]
    decls += [_decl("set", o, f"type {KEY_TYPE}") for o in dispatch]
    decls += [_decl("set", key[0], _timed_set(key[0], value[0]))
              for key, value in sorted(objs.get(TIMED_SET, {}).items())]
    decls += [_decl("map", name, body) for name, body in FIXED_MAPS]
    # endpoint chains first: the affinity chains jump to them
    chains = sorted(objs.get(CHAIN, {}).items(),
                    key=lambda kv: (isinstance(kv[1], AffinityChain), kv[0]))
    decls += [_chain(key[0], None, chain_rules(value)) for key, value in chains]
    lines = [f"table {table.ref}", f"delete table {table.ref}",
             f"table {table.ref} {{", *decls, *fixed_chains(table, dispatch), "}"]
    grouped: dict[str, list[str]] = {}
    for obj, entries in objs.items():
        if obj not in (CHAIN, TIMED_SET):
            for k, v in entries.items():
                grouped.setdefault(table_object(obj, k), []).append(element(obj, k, v))
    for name, elements in sorted(grouped.items()):
        lines += _element_lines("add", table, name, elements)
    return "\n".join(lines) + "\n"


def delete(table: Table) -> str:
    """A script that removes the table if it is there."""
    return f"table {table.ref}\ndelete table {table.ref}\n"


# --- changes -----------------------------------------------------------------------------------

def incremental(table: Table, delta: Delta) -> str:
    """A script that applies `delta`, in an order nft accepts in one transaction: new dispatch
    sets, timed sets and chains; element removals; affinity chains rewritten; element
    additions; the dispatch chains refilled when the sets in use changed; then the chains and
    sets no longer used deleted (nothing refers to them by then). "" when nothing changes."""
    if not delta:
        return ""
    ref = table.ref
    lines = [f"add set {ref} {o} {{ type {KEY_TYPE}; }}" for o in sorted(delta.objs_added)]
    new_chains = sorted((k, v) for o, k, v in delta.add if o == CHAIN)
    lines += [f"add set {ref} {k[0]} {{ type ipv4_addr; flags dynamic,timeout; "
              f"timeout {v[0]}s; }}" for o, k, v in sorted(delta.add) if o == TIMED_SET]
    lines += [f"add chain {ref} {k[0]}" for k, _ in new_chains]
    removed: dict[str, list[str]] = {}
    for obj, key in delta.remove:
        if obj not in (CHAIN, TIMED_SET) and obj not in delta.objs_removed:
            removed.setdefault(table_object(obj, key), []).append(key_element(obj, key))
    for obj, elements in sorted(removed.items()):
        lines += _element_lines("delete", table, obj, elements)
    # endpoint chains before the affinity chains that jump to them
    for key, value in sorted(new_chains + [(k, v) for _, k, v in delta.rewrite],
                             key=lambda kv: (isinstance(kv[1], AffinityChain), kv[0])):
        lines.append(f"flush chain {ref} {key[0]}")
        lines += [f"add rule {ref} {key[0]} {r}" for r in chain_rules(value)]
    added: dict[str, list[str]] = {}
    for obj, key, value in delta.add:
        if obj not in (CHAIN, TIMED_SET):
            added.setdefault(table_object(obj, key), []).append(element(obj, key, value))
    for obj, elements in sorted(added.items()):
        lines += _element_lines("add", table, obj, elements)
    if delta.dispatch_changed:
        for chain, rules in (("services", services_rules(delta.dispatch)),
                             ("external-local", external_local_rules(delta.dispatch))):
            lines.append(f"flush chain {ref} {chain}")
            lines += [f"add rule {ref} {chain} {r}" for r in rules]
    gone_chains = sorted(k for o, k in delta.remove if o == CHAIN)
    # affinity chains (which jump to endpoint chains) go first
    lines += [f"flush chain {ref} {k[0]}" for k in gone_chains]
    lines += [f"delete chain {ref} {k[0]}" for k in gone_chains]
    lines += [f"delete set {ref} {k[0]}" for o, k in sorted(delta.remove) if o == TIMED_SET]
    lines += [f"delete set {ref} {o}" for o in sorted(delta.objs_removed)]
    return "\n".join(lines) + "\n"
