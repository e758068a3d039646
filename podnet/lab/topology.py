"""The lab's topology as data (pure): which namespaces a cluster's machines are, how they are
wired and addressed, and the `ip -batch` commands that build them.

    podnet-<cluster>-lan        br0, a bridge with one port per machine (the LAN side of its veth)
    podnet-<cluster>-external   eth0 = <LAN>+2            a host outside the cluster
    podnet-<cluster>-node-<i>   eth0 = <LAN>+(10+i)       node i (1-based), forwards packets

Each machine's `eth0` is one end of a veth pair; the other end lives in the lan namespace, is
named after the machine (`node-1`, `external`) and is a port of br0. The bridge has no address
and there is no gateway: the LAN is a plain switch, and only what podnet creates is on it.
LAN offset 1 stays free (a gateway, should one ever be needed); offsets 200-249 are the
LoadBalancer pool of later issues, so node addresses must stay below it.

Sysctls are set explicitly rather than inherited: a new namespace copies the host's IPv4
settings (net.core.devconf_inherit_init_net=0), so a host with strict reverse-path filtering
would otherwise drop the asymmetric pod traffic of a flat network.

Namespace names carry the cluster's name but not its state directory, so two state roots with
a cluster of the same name would share them. The bridge's alias records the owner (the state
directory), so `up` and `down` can refuse to touch another root's lab of the same name.

Everything here is computed from (cluster name, node count, LAN CIDR, backend, owner); the shell
that runs the commands is podnet.lab.build. The backend (host-gw or vxlan) does not change the lab:
every node shares the one LAN either way. It is recorded so the agents know how to route.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from podnet.lab import names

BACKENDS = ("host-gw", "vxlan")
DEFAULT_BACKEND = "host-gw"
DEFAULT_LAN_CIDR = "172.18.0.0/24"
DEFAULT_NODES = 2
BRIDGE = "br0"
MACHINE_IF = "eth0"  # a machine's LAN interface, inside its own namespace
EXTERNAL = "external"
EXTERNAL_OFFSET = 2
NODE_OFFSET = 10  # node-i is LAN offset 10 + i
LB_POOL_OFFSETS = (200, 249)  # later: LoadBalancer addresses, kept off the machines
MAX_NODES = LB_POOL_OFFSETS[0] - NODE_OFFSET - 1  # 189: node-189 is offset 199
MAX_LAN_PREFIX = 24  # the LAN must hold offsets 0..255
MAX_OWNER = 255  # an interface alias holds up to 255 bytes

ROLE_NODE = "node"
ROLE_EXTERNAL = "external"

# (key, value) pairs set in every machine namespace; eth0's own rp_filter too, because eth0
# exists before the sysctls are written and took the inherited default.
_COMMON_SYSCTLS: tuple[tuple[str, str], ...] = (
    ("net.ipv4.conf.all.rp_filter", "0"),
    ("net.ipv4.conf.default.rp_filter", "0"),
    (f"net.ipv4.conf.{MACHINE_IF}.rp_filter", "0"),
)
_NODE_SYSCTLS: tuple[tuple[str, str], ...] = (("net.ipv4.ip_forward", "1"), *_COMMON_SYSCTLS)


class TopologyError(ValueError):
    """The lab cannot be built as asked (bad node count, LAN CIDR or backend)."""


@dataclass(frozen=True)
class Machine:
    """One machine on the LAN: a node or the external host."""

    name: str  # node-1, external: also the name of the LAN-side veth in the lan namespace
    role: str  # ROLE_NODE or ROLE_EXTERNAL
    netns: str
    address: str  # its LAN IP, e.g. 172.18.0.11
    prefixlen: int
    sysctls: tuple[tuple[str, str], ...]

    @property
    def interface_address(self) -> str:
        """The address with the LAN's prefix length, as `ip addr` takes it."""
        return f"{self.address}/{self.prefixlen}"


@dataclass(frozen=True)
class LabPlan:
    """A cluster's whole lab."""

    cluster: str
    lan_cidr: str
    backend: str
    lan_netns: str
    machines: tuple[Machine, ...]  # external first, then node-1 .. node-N
    owner: str = ""  # the state directory that built it: the bridge's alias

    @property
    def nodes(self) -> tuple[Machine, ...]:
        return tuple(m for m in self.machines if m.role == ROLE_NODE)

    @property
    def external(self) -> Machine:
        return next(m for m in self.machines if m.role == ROLE_EXTERNAL)

    @property
    def netns_names(self) -> tuple[str, ...]:
        """Every namespace of the lab, in build order: the LAN, then the machines."""
        return (self.lan_netns, *(m.netns for m in self.machines))

    def machine(self, name: str) -> Machine:
        for m in self.machines:
            if m.name == name:
                return m
        raise KeyError(name)


def problems(nodes: int, lan_cidr: str, backend: str, owner: str = "") -> list[str]:
    """Why a lab cannot be built with these settings: empty when it can."""
    errs = []
    if len(owner.encode()) > MAX_OWNER or any(c == '"' or c == "\\" or not c.isprintable()
                                               for c in owner):
        errs.append(f"owner {owner!r} cannot be an interface alias (at most {MAX_OWNER} "
                    "printable bytes, no quotes or backslashes)")
    if not 0 <= nodes <= MAX_NODES:
        errs.append(f"nodes must be between 0 and {MAX_NODES}, not {nodes}")
    if backend not in BACKENDS:
        errs.append(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    try:
        net = ipaddress.ip_network(lan_cidr, strict=True)
    except ValueError as e:
        errs.append(f"lan_cidr {lan_cidr!r} is not a network: {e}")
    else:
        if net.version != 4:
            errs.append(f"lan_cidr must be an IPv4 network, not {lan_cidr}")
        elif net.prefixlen > MAX_LAN_PREFIX:
            errs.append(f"lan_cidr must be a /{MAX_LAN_PREFIX} or larger, not {lan_cidr}")
    return errs


def lan_address(lan_cidr: str, offset: int) -> str:
    """The address `offset` places into the LAN."""
    net = ipaddress.IPv4Network(lan_cidr)
    return str(net.network_address + offset)


def node_address(lan_cidr: str, index: int) -> str:
    """node-<index>'s LAN IP (1-based index)."""
    return lan_address(lan_cidr, NODE_OFFSET + index)


def external_address(lan_cidr: str) -> str:
    return lan_address(lan_cidr, EXTERNAL_OFFSET)


def plan(cluster: str, nodes: int, lan_cidr: str = DEFAULT_LAN_CIDR,
         backend: str = DEFAULT_BACKEND, owner: str = "") -> LabPlan:
    """The lab of `cluster` with `nodes` nodes; TopologyError when the settings are bad."""
    errs = problems(nodes, lan_cidr, backend, owner)
    if errs:
        raise TopologyError("; ".join(errs))
    prefixlen = ipaddress.IPv4Network(lan_cidr).prefixlen
    external = Machine(EXTERNAL, ROLE_EXTERNAL, names.external_netns(cluster),
                       external_address(lan_cidr), prefixlen, _COMMON_SYSCTLS)
    node_machines = tuple(
        Machine(names.node_name(i), ROLE_NODE, names.node_netns(cluster, names.node_name(i)),
                node_address(lan_cidr, i), prefixlen, _NODE_SYSCTLS)
        for i in range(1, nodes + 1))
    return LabPlan(cluster, lan_cidr, backend, names.lan_netns(cluster),
                   (external, *node_machines), owner)


# -- commands ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Observed:
    """What a build found of a lab already there (nothing, for a fresh build).

    lan_links: interface names in the lan namespace; with_eth0: machines whose namespace
    has an eth0. A machine is wired when both ends of its veth pair are there.
    """

    lan_links: frozenset[str] = frozenset()
    with_eth0: frozenset[str] = frozenset()

    def wired(self, machine: Machine) -> bool:
        return machine.name in self.lan_links and machine.name in self.with_eth0


NOTHING = Observed()


def netns_add_commands(missing: Iterable[str]) -> list[str]:
    """`ip -batch` lines (run on the host) that create the namespaces in `missing`."""
    return [f"netns add {ns}" for ns in missing]


def stale_links(lab: LabPlan, seen: Observed) -> list[tuple[str, str]]:
    """(namespace, interface) halves of veth pairs that lost their other end (an interrupted
    build); they are deleted before their pair is made again."""
    out = []
    for m in lab.machines:
        if seen.wired(m):
            continue
        if m.name in seen.lan_links:
            out.append((lab.lan_netns, m.name))
        if m.name in seen.with_eth0:
            out.append((m.netns, MACHINE_IF))
    return out


def lan_commands(lab: LabPlan, seen: Observed = NOTHING) -> list[str]:
    """`ip -batch` lines run in the lan namespace: the bridge, and each machine's veth pair
    (made here, its eth0 end sent straight into the machine's namespace). Only what is missing
    is created; the rest of the lines are idempotent."""
    cmds = ["link set lo up"]
    if BRIDGE not in seen.lan_links:
        cmds.append(f"link add {BRIDGE} type bridge")
    if lab.owner:
        cmds.append(f'link set {BRIDGE} alias "{lab.owner}"')
    cmds.append(f"link set {BRIDGE} up")
    for m in lab.machines:
        if not seen.wired(m):
            cmds.append(f"link add {m.name} type veth peer name {MACHINE_IF} netns {m.netns}")
        cmds.append(f"link set {m.name} master {BRIDGE} up")
    return cmds


def machine_commands(machine: Machine) -> list[str]:
    """`ip -batch` lines run in a machine's namespace once its eth0 is there; idempotent
    (`addr replace`, so addresses added later, such as LoadBalancer IPs, are kept)."""
    return [
        "link set lo up",
        f"addr replace {machine.interface_address} dev {MACHINE_IF}",
        f"link set {MACHINE_IF} up",
    ]


def sysctl_args(machine: Machine) -> list[str]:
    """The arguments of one `sysctl` run inside the machine's namespace."""
    return ["sysctl", "-q", "-w", *(f"{k}={v}" for k, v in machine.sysctls)]


# -- teardown ---------------------------------------------------------------------------------


def teardown_order(cluster: str, present: Iterable[str]) -> list[str]:
    """The namespaces of `cluster` among `present`, in the order to delete them: pods first,
    then nodes (by number), the external host, and the LAN last. Other names are left out."""
    pods, nodes, rest = [], [], []
    pod_prefix = names.cluster_prefix(cluster) + "pod-"
    node_prefix = names.cluster_prefix(cluster) + "node-"
    for ns in present:
        if not names.owns_netns(cluster, ns):
            continue
        if ns.startswith(pod_prefix):
            pods.append(ns)
        elif ns.startswith(node_prefix):
            nodes.append(ns)
        else:
            rest.append(ns)
    nodes.sort(key=lambda ns: int(ns[len(node_prefix):]))
    rest.sort(key=lambda ns: ns == names.lan_netns(cluster))  # external, then lan
    return sorted(pods) + nodes + rest
