"""A Ruleset -> nft scripts (pure): the whole table, or only the changes between two Rulesets.

The table (family ip, one per node namespace, named `podnet-<cluster>`):

  sets   cluster-ips    ClusterIPs allocated in the service CIDR
         no-endpoints   vip . proto . port of Service ports with no endpoint to use
         svc-n<N>       vip . proto . port of Service ports with N endpoints (one set per N)
         hairpin        ip . ip for endpoints on this node (a pod reaching itself)
  map    eps            vip . proto . port . bucket -> endpoint ip . port (every endpoint)
  sets   np-no-endpoints  proto . port of node ports with no endpoint to use
         np-n<N>          proto . port of node ports with N endpoints (one set per N in use)
  map    np-eps           proto . port . bucket -> endpoint ip . port (node ports' endpoints)

  chains services         two rules per N in use:
                            vip.proto.port in svc-n<N> -> dnat to eps[vip.proto.port.(random mod N)]
                            to a local address (`fib daddr type local`) and proto.port in
                            np-n<N> -> mark, dnat to np-eps[proto.port.(random mod N)]
         nat-prerouting   mark traffic from outside the pod network, then jump services
         nat-output       the same for the node's own traffic
         mark-hairpin     after DNAT: source == new destination -> mark
         nat-postrouting  marked -> clear the mark, masquerade
         check            (filter: input, forward, output) what is still addressed to a service
                          IP was not DNATed: no endpoints or a port the Service lacks -> reject;
                          an unallocated IP of the service CIDR -> drop; a local address on a
                          node port in np-no-endpoints -> reject

Everything a Service change touches is an element; the `services` chain is rewritten (flushed
and refilled in the same transaction) only when an endpoint count comes into or out of use.
Scripts are meant for `nft -f -`, one transaction each.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from podnet.proxy.model import (
    NODE_PORT,
    Delta,
    Elements,
    Endpoint,
    EndpointKey,
    NodeInfo,
    Ruleset,
    ServicePort,
)

MASQ_MARK = 0x4000  # the bit kube-proxy uses too
CHUNK = 1000  # elements per `add element` line

SERVICE_PORT_TYPE = "ipv4_addr . inet_proto . inet_service"
# The map's key and value types, given as expressions. Written with `th dport`, nft 1.0.6 can
# no longer add a rule using the map once the map comes from the kernel ("conflicting
# protocols specified: ip vs. th" when it rebuilds the typeof); `tcp dport` has the same type
# (inet_service), the map still serves UDP and SCTP, and rules can be added at any time.
EPS_TYPEOF = ("ip daddr . meta l4proto . tcp dport . numgen random mod 1 : "
              "ip daddr . tcp dport")
NODE_PORT_TYPE = "inet_proto . inet_service"
NP_EPS_TYPEOF = "meta l4proto . tcp dport . numgen random mod 1 : ip daddr . tcp dport"
LOCAL = "fib daddr type local"


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


def dispatch_set(n: int) -> str:
    return f"svc-n{n}"


def dispatch_rule(n: int) -> str:
    return (f"ip daddr . meta l4proto . th dport @{dispatch_set(n)} "
            f"dnat ip to ip daddr . meta l4proto . th dport . numgen random mod {n} map @eps")


def node_port_set(n: int) -> str:
    return f"np-n{n}"


def node_port_rule(n: int) -> str:
    return (f"{LOCAL} meta l4proto . th dport @{node_port_set(n)} "
            f"meta mark set meta mark | {MASQ_MARK:#x} "
            f"dnat ip to meta l4proto . th dport . numgen random mod {n} map @np-eps")


def services_rules(counts: Iterable[int]) -> list[str]:
    """The `services` chain: per endpoint count N in use, the ClusterIP and node-port rules."""
    return [r for n in counts for r in (dispatch_rule(n), node_port_rule(n))]


def _count_sets(n: int) -> list[tuple[str, str]]:
    return [(dispatch_set(n), SERVICE_PORT_TYPE), (node_port_set(n), NODE_PORT_TYPE)]


# --- elements ----------------------------------------------------------------------------------

def port_element(p: ServicePort) -> str:
    """`vip . proto . port`, or `proto . port` for a node port."""
    return f"{p[1]} . {p[2]}" if p[0] == NODE_PORT else f"{p[0]} . {p[1]} . {p[2]}"


def endpoint_key_element(key: EndpointKey) -> str:
    return f"{port_element(key[:3])} . {key[3]}"


def endpoint_element(key: EndpointKey, value: Endpoint) -> str:
    return f"{endpoint_key_element(key)} : {value[0]} . {value[1]}"


def hairpin_element(ip: str) -> str:
    return f"{ip} . {ip}"


def _element_lines(verb: str, table: Table, obj: str, elements: Iterable[str]) -> list[str]:
    items = sorted(elements)
    return [f"{verb} element {table.ref} {obj} {{ {', '.join(items[i:i + CHUNK])} }}"
            for i in range(0, len(items), CHUNK)]


def _by_object(elements: Elements, *, keys_only: bool = False) -> dict[str, set[str]]:
    """Elements as nft writes them, by set or map name (empty ones left out)."""
    out: dict[str, set[str]] = {"cluster-ips": set(elements.cluster_ips),
                                "hairpin": {hairpin_element(ip) for ip in elements.hairpin}}

    def put(obj: str, node_obj: str, items: Iterable[tuple[ServicePort, str]]) -> None:
        for port, element in items:
            out.setdefault(node_obj if port[0] == NODE_PORT else obj, set()).add(element)

    put("no-endpoints", "np-no-endpoints", ((p, port_element(p)) for p in elements.no_endpoints))
    put("eps", "np-eps", ((k[:3], endpoint_key_element(k) if keys_only
                           else endpoint_element(k, v)) for k, v in elements.endpoints.items()))
    for n, ports in elements.dispatch.items():
        put(dispatch_set(n), node_port_set(n), ((p, port_element(p)) for p in ports))
    return {k: v for k, v in out.items() if v}


# --- the whole table ---------------------------------------------------------------------------

def _set_decl(name: str, type_: str) -> str:
    return f"\tset {name} {{\n\t\ttype {type_}\n\t}}"


def _chain(name: str, hook: str | None, rules: list[str]) -> str:
    lines = [f"\tchain {name} {{"]
    if hook:
        lines.append(f"\t\t{hook}")
    lines += [f"\t\t{r}" for r in rules]
    lines.append("\t}")
    return "\n".join(lines)


def fixed_chains(table: Table, counts: Iterable[int]) -> list[str]:
    mark = f"meta mark set meta mark | {MASQ_MARK:#x}"
    off_cluster = f"ip daddr @cluster-ips ip saddr != {table.cluster_cidr} {mark}"
    return [
        _chain("services", None, services_rules(counts)),
        _chain("nat-prerouting", "type nat hook prerouting priority dstnat; policy accept;",
               [off_cluster, "jump services"]),
        _chain("nat-output", "type nat hook output priority -100; policy accept;",
               [off_cluster, "jump services"]),
        _chain("mark-hairpin", "type filter hook prerouting priority -90; policy accept;",
               [f"ct status dnat ip saddr . ip daddr @hairpin {mark}"]),
        _chain("nat-postrouting", "type nat hook postrouting priority srcnat; policy accept;",
               [f"meta mark & {MASQ_MARK:#x} == 0 return",
                f"meta mark set meta mark ^ {MASQ_MARK:#x}",
                "masquerade fully-random"]),
        _chain("reject-unserved", None, ["meta l4proto tcp reject with tcp reset", "reject"]),
        _chain("check", None, [
            f"{LOCAL} meta l4proto . th dport @np-no-endpoints goto reject-unserved",
            "ip daddr . meta l4proto . th dport @no-endpoints goto reject-unserved",
            "ip daddr @cluster-ips goto reject-unserved",
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
    decls = [_set_decl("cluster-ips", "ipv4_addr"),
             _set_decl("no-endpoints", SERVICE_PORT_TYPE),
             _set_decl("hairpin", "ipv4_addr . ipv4_addr"),
             _set_decl("np-no-endpoints", NODE_PORT_TYPE)]
    decls += [_set_decl(name, type_) for n in rules.counts() for name, type_ in _count_sets(n)]
    decls.append(f"\tmap eps {{\n\t\ttypeof {EPS_TYPEOF}\n\t}}")
    decls.append(f"\tmap np-eps {{\n\t\ttypeof {NP_EPS_TYPEOF}\n\t}}")
    lines = [f"table {table.ref}", f"delete table {table.ref}",
             f"table {table.ref} {{", *decls, *fixed_chains(table, rules.counts()), "}"]
    for obj, elements in sorted(_by_object(rules.elements()).items()):
        lines += _element_lines("add", table, obj, elements)
    return "\n".join(lines) + "\n"


def delete(table: Table) -> str:
    """A script that removes the table if it is there."""
    return f"table {table.ref}\ndelete table {table.ref}\n"


# --- changes -----------------------------------------------------------------------------------

def incremental(table: Table, delta: Delta) -> str:
    """A script that applies `delta` to a table: new dispatch sets first, element removals,
    element additions, then (only when the endpoint counts in use changed) the `services`
    chain refilled and the sets of counts no longer in use deleted. "" when there is nothing
    to do."""
    if not delta:
        return ""
    lines = [f"add set {table.ref} {name} {{ type {type_}; }}"
             for n in delta.counts_added for name, type_ in _count_sets(n)]
    gone = {name for n in delta.counts_removed for name, _ in _count_sets(n)}
    for obj, elements in sorted(_by_object(delta.remove, keys_only=True).items()):
        if obj not in gone:  # the whole set goes below
            lines += _element_lines("delete", table, obj, elements)
    for obj, elements in sorted(_by_object(delta.add).items()):
        lines += _element_lines("add", table, obj, elements)
    if delta.counts_added or delta.counts_removed:
        lines.append(f"flush chain {table.ref} services")
        lines += [f"add rule {table.ref} services {r}" for r in services_rules(delta.counts)]
        lines += [f"delete set {table.ref} {name}"
                  for n in delta.counts_removed for name, _ in _count_sets(n)]
    return "\n".join(lines) + "\n"
