"""Clearing stale UDP conntrack entries in a node's namespace (shell).

UDP has no connection to end: while a client keeps sending, its conntrack entry (and the DNAT
it recorded) lives on, so the client stays stuck on an endpoint that is gone, or keeps being
refused by a Service that now has endpoints. kube-proxy deletes such entries when endpoints
change; so does the proxy, through clear_udp(), one `conntrack -D` per flow:

    conntrack -D -p udp --orig-dst <service ip> --orig-port-dst <port> [--reply-src <endpoint>]

The entry's original destination is the address the client sent to (ClusterIP, node IP,
LoadBalancer IP); after DNAT its reply source is the endpoint it was sent to.
`conntrack` (conntrack-tools) exits 1 both when it deleted nothing and on some failures; only
the first prints "0 flow entries have been deleted", which is not an error here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from collections.abc import Iterable

from podnet.kernel import netns
from podnet.kernel.netns import KernelError

log = logging.getLogger("podnet.proxy")

# (destination ip, destination port, endpoint ip or None for any)
Flow = tuple[str, int, str | None]

PARALLEL = 4  # conntrack processes at a time
TIMEOUT = 30.0
_DELETED = re.compile(r"(\d+) flow entries have been deleted")


class ConntrackError(KernelError):
    """Some entries could not be cleared; the message lists the flows and why."""


def _ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"not an IP address: {text!r}") from None


def check_flow(flow: Flow) -> Flow:
    """The flow with its addresses in canonical form; ValueError for anything else (the
    values become a command's arguments: an address must never pass for an option)."""
    ip, port, endpoint = flow
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"not a port: {port!r}")
    ip = _ip(ip)
    if endpoint is not None:
        endpoint = _ip(endpoint)
        if (":" in endpoint) != (":" in ip):
            raise ValueError(f"{ip} and {endpoint} are not of one family")
    return ip, port, endpoint


def delete_argv(flow: Flow) -> list[str]:
    ip, port, endpoint = flow
    argv = ["conntrack", "-D", "-f", "ipv6" if ":" in ip else "ipv4", "-p", "udp",
            "--orig-dst", ip, "--orig-port-dst", str(port)]
    if endpoint is not None:
        argv += ["--reply-src", endpoint]
    return argv


def describe(flow: Flow) -> str:
    ip, port, endpoint = flow
    where = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
    return where if endpoint is None else f"{where} via {endpoint}"


async def _delete(ns: str, flow: Flow, slots: asyncio.Semaphore) -> int | str:
    """How many entries of `flow` were deleted, or why it failed."""
    async with slots:
        try:
            rc, out, err = await netns.arun(netns.exec_argv(ns, delete_argv(flow)), check=False,
                                            timeout=TIMEOUT)
        except (KernelError, OSError) as e:
            return str(e)
    counted = _DELETED.search(err)
    if rc == 0 and counted:
        return int(counted.group(1))
    if rc == 1 and counted and counted.group(1) == "0":
        return 0
    return f"exit {rc}: {(err or out).strip()}"


async def clear_udp(ns: str, flows: Iterable[Flow]) -> None:
    """Delete the UDP conntrack entries in namespace `ns` sent to each flow's ip:port (and,
    when the flow names one, answered by its endpoint). ValueError for a malformed flow (before
    anything is deleted); ConntrackError, after trying every flow, when some failed."""
    wanted = sorted({check_flow(f) for f in flows}, key=lambda f: (f[0], f[1], f[2] or ""))
    if not wanted:
        return
    slots = asyncio.Semaphore(PARALLEL)
    results = await asyncio.gather(*(_delete(ns, f, slots) for f in wanted))
    failed = {}
    for flow, result in zip(wanted, results, strict=True):
        if isinstance(result, str):
            failed[describe(flow)] = result
        elif result:
            log.info("%s: cleared %d UDP conntrack entries to %s", ns, result, describe(flow))
        else:
            log.debug("%s: no UDP conntrack entries to %s", ns, describe(flow))
    if failed:
        log.error("%s: clearing UDP conntrack entries failed: %s", ns, failed)
        raise ConntrackError(f"{ns}: cannot clear UDP conntrack entries: {failed}")
