"""Building and tearing down a cluster's lab (the shell around podnet.lab.topology).

build(plan) is idempotent: run on nothing it builds the lab, run on a lab that an interrupted
build left half made it completes it, and run on a complete lab it changes nothing (it only
re-applies idempotent settings). teardown(cluster) needs nothing but the cluster's name: it finds
the cluster's namespaces among `ip netns list` by podnet.lab.names.owns_netns, kills the
processes inside them, and deletes them, pods' first. Nothing here touches the host's own
namespace, or a namespace whose name is not the cluster's.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from podnet.kernel import netns
from podnet.lab import names, topology
from podnet.lab.topology import LabPlan, Machine, Observed

KILL_TIMEOUT = 10.0  # seconds to wait for killed processes to leave the namespaces


class LabError(Exception):
    """The lab could not be built or removed; the message says what is left."""


class ForeignLabError(LabError):
    """The namespaces of this cluster name were built for another state directory."""


# -- looking -----------------------------------------------------------------------------------


def present(cluster: str) -> list[str]:
    """The cluster's namespaces that exist now, in teardown order."""
    return topology.teardown_order(cluster, netns.names())


def missing(lab: LabPlan) -> list[str]:
    """The lab's namespaces that do not exist (empty when it is all there)."""
    have = set(netns.names())
    return [ns for ns in lab.netns_names if ns not in have]


def _links(ns: str) -> list[dict[str, object]]:
    proc = netns.run(["ip", "-n", ns, "-j", "link", "show"], check=False)
    if proc.returncode != 0:
        return []
    links = json.loads(proc.stdout or "[]")
    return [link for link in links if isinstance(link, dict)]


def _link_names(ns: str) -> set[str]:
    return {str(link.get("ifname")) for link in _links(ns)}


def owner_of(cluster: str) -> str | None:
    """The state directory that built the cluster's lab (its bridge's alias); None when there
    is no bridge to tell, "" when the bridge has no alias."""
    if not netns.exists(names.lan_netns(cluster)):
        return None
    for link in _links(names.lan_netns(cluster)):
        if link.get("ifname") == topology.BRIDGE:
            return str(link.get("ifalias") or "")
    return None


def check_owner(cluster: str, owner: str) -> None:
    """ForeignLabError when the cluster's lab exists and another state directory built it."""
    found = owner_of(cluster)
    if owner and found and found != owner:
        raise ForeignLabError(
            f"the namespaces of cluster {cluster!r} belong to the cluster of the same name in "
            f"{found}, not {owner}; cluster names must be unique on a machine")


def observe(lab: LabPlan, existing: Iterable[str]) -> Observed:
    """What is there of the lab in the namespaces that already `existing`ed before the build
    (a namespace the build just made holds nothing yet, so it is not looked at)."""
    before = set(existing)
    lan_links = frozenset(_link_names(lab.lan_netns)) if lab.lan_netns in before else frozenset()
    with_eth0 = frozenset(m.name for m in lab.machines
                          if m.netns in before and topology.MACHINE_IF in _link_names(m.netns))
    return Observed(lan_links, with_eth0)


# -- building ---------------------------------------------------------------------------------


def _check_owned(lab: LabPlan) -> None:
    foreign = [ns for ns in lab.netns_names if not names.owns_netns(lab.cluster, ns)]
    if foreign:
        raise LabError(f"refusing to build namespaces that are not cluster "
                       f"{lab.cluster!r}'s: {', '.join(foreign)}")


def _is_namespace(ns: str) -> bool:
    """False for a /run/netns entry that is a plain file: an `ip netns add` that was killed
    between creating the file and mounting the namespace on it."""
    return os.path.ismount(netns.path(ns))


def _configure(machine: Machine) -> None:
    netns.ip_batch(machine.netns, topology.machine_commands(machine))
    netns.run(netns.exec_argv(machine.netns, topology.sysctl_args(machine)))


def build(lab: LabPlan) -> bool:
    """Make the lab exist as planned; True when anything had to be created."""
    _check_owned(lab)
    check_owner(lab.cluster, lab.owner)
    existing = set(netns.names())
    for ns in lab.netns_names:
        if ns in existing and not _is_namespace(ns):
            netns.delete(ns)
            existing.discard(ns)
    new = [ns for ns in lab.netns_names if ns not in existing]
    netns.ip_batch(None, topology.netns_add_commands(new))
    seen = observe(lab, existing)
    for ns, ifname in topology.stale_links(lab, seen):
        # Synchronous (unlike a namespace's), so the name is free for the new pair; a link
        # the kernel is removing on its own already may be gone: not an error.
        netns.run(["ip", "-n", ns, "link", "del", ifname], check=False)
    netns.ip_batch(lab.lan_netns, topology.lan_commands(lab, seen))
    for machine in lab.machines:
        _configure(machine)
    return bool(new) or not all(seen.wired(m) for m in lab.machines)


# -- processes inside namespaces ----------------------------------------------------------------


def _ns_id(path: str | Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def pids_in(namespaces: Iterable[str]) -> dict[str, list[int]]:
    """The processes inside each named namespace (what `ip netns pids NS` prints, for many
    namespaces in one pass over /proc). Exited processes (zombies) are in no namespace."""
    wanted = {}
    for ns in namespaces:
        ident = _ns_id(netns.path(ns))
        if ident is not None:
            wanted[ident] = ns
    found: dict[str, list[int]] = {ns: [] for ns in wanted.values()}
    if not wanted:
        return found
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        owner = wanted.get(_ns_id(f"/proc/{entry.name}/ns/net") or (0, 0))
        if owner is not None:
            found[owner].append(int(entry.name))
    for pids in found.values():
        pids.sort()
    return found


def _kill_if_inside(pid: int, ns_ids: set[tuple[int, int]]) -> None:
    """SIGKILL `pid` if it is (still) inside one of the namespaces. The pidfd pins the process:
    the check and the signal are about the same one even if the pid is reused meanwhile."""
    try:
        fd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        return
    try:
        if _ns_id(f"/proc/{pid}/ns/net") in ns_ids:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
    finally:
        os.close(fd)


def kill_processes_in(namespaces: Sequence[str], timeout: float = KILL_TIMEOUT) -> list[int]:
    """SIGKILL every process inside the namespaces, and wait until none is left (also those
    forked meanwhile); returns the pids killed. The namespaces are podnet's, so whatever runs
    in them is too."""
    ns_ids = {i for i in (_ns_id(netns.path(ns)) for ns in namespaces) if i is not None}
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        inside = sorted(p for pids in pids_in(namespaces).values() for p in pids)
        if not inside:
            return sorted(killed)
        if time.monotonic() >= deadline:
            raise LabError(f"processes still inside the namespaces after SIGKILL: {inside}")
        for pid in inside:
            if pid != os.getpid():
                _kill_if_inside(pid, ns_ids)
                killed.add(pid)
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


# -- teardown ---------------------------------------------------------------------------------


def delete_namespaces(ordered: Sequence[str]) -> None:
    """Delete the namespaces in order, in one `ip` process; then check they are gone."""
    if not ordered:
        return
    # -force: go on past a namespace removed meanwhile; what failed is retried below.
    netns.run(["ip", "-force", "-batch", "-"],
              input="".join(f"netns del {ns}\n" for ns in ordered), check=False)
    for ns in ordered:
        if netns.exists(ns):
            netns.delete(ns)


def teardown(cluster: str, timeout: float = KILL_TIMEOUT, owner: str = "") -> list[str]:
    """Remove every namespace of `cluster` and every process inside them, whatever state an
    earlier build or crash left; returns the namespaces removed (in the order removed). With an
    `owner`, a lab that another state directory built is left alone (ForeignLabError)."""
    check_owner(cluster, owner)
    ordered = present(cluster)
    if not ordered:
        return []
    kill_processes_in(ordered, timeout)
    delete_namespaces(ordered)
    left = present(cluster)
    if left:
        raise LabError(f"namespaces of cluster {cluster!r} left after teardown: {left}")
    return ordered
