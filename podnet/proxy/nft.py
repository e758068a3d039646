"""The shell under the proxy: run an nft script inside a node's namespace, and route the
service CIDR there (thin; no decisions here).

Scripts run in-process through libnftables (podnet.kernel.libnft: a thread inside the node's
namespace holds one nft context for the process's life), one transaction per call. Starting
`ip netns exec … nft -f -` instead costs 6-15 ms a call here, more than most transactions.
When the library cannot be loaded, or PODNET_NFT=process is set, scripts go to that nft
process as before; the choice is made once and logged.
"""

from __future__ import annotations

import logging
import os

from podnet.kernel import libnft, netns

log = logging.getLogger("podnet.proxy")

# Routes the proxy adds carry their own protocol number: the agent's route sync owns protocol
# 44 and removes what it did not ask for.
ROUTE_PROTO = 45
ENV = "PODNET_NFT"  # "process": always run the nft binary (for comparison or a library bug)

_in_process: bool | None = None


def in_process() -> bool:
    """Whether scripts go through libnftables (decided on the first call, logged once)."""
    global _in_process
    if _in_process is None:
        if os.environ.get(ENV) == "process":
            _in_process = False
            log.info("%s=process: nft scripts run as `nft -f -` processes", ENV)
        else:
            error = libnft.load_error()
            _in_process = error is None
            if error is not None:
                log.warning("libnftables cannot be used (%s): nft scripts run as `nft -f -` "
                            "processes, one per apply", error)
    return _in_process


async def apply(ns: str, script: str, *, timeout: float = 60.0) -> None:
    """Run `script` as one nft transaction in namespace `ns`; KernelError when nft refuses it
    (nothing of it is then applied)."""
    if not script:
        return
    if in_process():
        await libnft.arun(ns, script, timeout=timeout)
    else:
        await apply_process(ns, script, timeout=timeout)


def library_ms(ns: str) -> float:
    """The time the last in-process apply in `ns` spent inside libnftables (0.0 when scripts
    run as processes)."""
    return libnft.library_ms(ns) if in_process() else 0.0


async def apply_process(ns: str, script: str, *, timeout: float = 60.0) -> None:
    """apply() through an nft process (`ip netns exec ns nft -f -`)."""
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
