"""The shell under the proxy: run an nft script inside a node's namespace, and route the
service CIDR there (thin; no decisions here).

Scripts go to `nft -f -` through `ip netns exec`, one transaction per call (starting nft costs
about 4 ms here; the transaction itself is most of an apply).
"""

from __future__ import annotations

from podnet.kernel import netns

# Routes the proxy adds carry their own protocol number: the agent's route sync owns protocol
# 44 and removes what it did not ask for.
ROUTE_PROTO = 45


async def apply(ns: str, script: str, *, timeout: float = 60.0) -> None:
    """Run `script` as one nft transaction in namespace `ns`; KernelError when nft refuses it
    (nothing of it is then applied)."""
    if script:
        await netns.arun(netns.exec_argv(ns, ["nft", "-f", "-"]), input=script,
                         timeout=timeout)


async def ensure_service_route(ns: str, service_cidr: str, dev: str = "eth0") -> None:
    """Route the service CIDR out of the node's LAN interface. A socket on the node needs a
    route to a ClusterIP before the nat output hook can rewrite it, and packets from pods to
    the service CIDR must reach the forward hook (to be DNATed, rejected or dropped there)
    rather than be answered "network unreachable"; nothing addressed to a service IP leaves
    the node, the table sees to that."""
    await netns.arun(["ip", "-n", ns, "route", "replace", service_cidr, "dev", dev,
                      "proto", str(ROUTE_PROTO)])
