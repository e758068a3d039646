"""The pod runtime of a node agent: sandboxes, containers, restarts, logs and exec.

The agent hands pods to `podnet.runtime.pods.PodManager`; this package runs them as kubelet and
a container runtime would, with host programs instead of images.

Process model
-------------
A pod's sandbox is one process, the *pause*, started (posix_spawn, a session of its own) as

    unshare --net=/run/netns/podnet-<cluster>-pod-<uid> --uts --mount --propagation private \\
        sh -c 'echo $$ > pause.pid; printf <hostname> > /proc/sys/kernel/hostname;
               ip link set lo up; mount -a -T <pod dir>/mounts; echo ok; exec sleep infinity'

One process chain creates the pod's network namespace (bound at /run/netns/<name>: what
`ip netns add` makes, so `ip netns` and `podnet down` see it), a UTS namespace carrying the pod's
hostname, and a private mount namespace in which the pod's own `resolv.conf` and `hosts` are
bind-mounted over /etc/resolv.conf and /etc/hosts; then it sleeps, holding them. "ok" on its
stdout (a pipe) tells the agent it is ready. That is five short execs, against seven with
`podnet.kernel.netns.add` + `nsenter`; the pause is 1.4 MB RSS (0.3 MB PSS). The agent then
calls CNI ADD on the namespace and writes the pod's IP into the hosts file in place (the bind
mount holds the inode). Deleting a namespace that other pods' mount namespaces still hold a
copy of is fine: unlinking a mount point detaches it in every namespace. A hostNetwork pod's
pause joins the node's namespace instead (nsenter) and gets no CNI call; it has the node's
name as hostname and the node's IP.

Each container run is a POSIX sh *shim* (1.7 MB RSS, 0.4 MB PSS), in a session of its own:

    sh -c <shim> podnet-shim <pod dir> <name> <pause pid> <workdir> <command...>

The shim starts `setsid nsenter -t <pause pid> --net --uts --mount --wd=<dir> -- <command>`
in the background, with stdout and stderr appended to `<name>.log`, writes the container's
process group to `<name>.pid`, waits for it, kills whatever is left in that group, and writes
the exit status (128+N for signal N) to `<name>.exit`, whose mtime is the finish time. So the
exit code survives the agent being killed: a restarted agent finds the shim (it is no longer
the agent's child) through a pidfd (os.pidfd_open), then reads the file. Stopping a container
is its preStop hook (podnet.runtime.hooks), then SIGTERM to its process group, then SIGKILL
when the grace period is over. A container without
`command` runs podnet's echo server (`echo.py`, compiled once into `<node state>/echo.pyc` so
that each start skips compiling it) on its declared ports.

State on disk
-------------
`<node state>/pods/<uid>/`:

    state.json      the pod (metadata and spec), its sandbox (netns, pause pid and start time,
                    CNI result, IPs), per container: runs, restart count, back-off, shim pid
    resolv.conf     the pod's DNS configuration (podnet.runtime.dnsconfig)
    hosts           the pod's /etc/hosts
    mounts          the pause's fstab: the two bind mounts
    pause.pid       written by the pause itself (found even if the agent died before
                    recording it)
    <name>.log      a container's stdout and stderr, appended across restarts
    <name>.pid      its process group (written by the shim)
    <name>.exit     its exit status (written by the shim when it ends)

Processes are identified by pid and start time (/proc/<pid>/stat), so a recycled pid is never
mistaken for a pod's. Everything the runtime needs after a restart is here; the agent's memory
is a cache.

This module holds the layout and the lookups the CLI needs (`log_path`, `exec_argv`,
`pod_ip`); it imports nothing heavy, so the CLI stays quick to start.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"
RESOLV_FILE = "resolv.conf"
HOSTS_FILE = "hosts"
MOUNTS_FILE = "mounts"
NETNS_DIR = Path("/run/netns")


class PodNotFound(LookupError):
    """The pod has no sandbox on this node (not here, not started yet, or gone)."""


def pods_dir(node_state_dir: Path) -> Path:
    return Path(node_state_dir) / "pods"


def pod_dir(node_state_dir: Path, uid: str) -> Path:
    return pods_dir(node_state_dir) / uid


def log_path(node_state_dir: Path, uid: str, container: str) -> Path:
    """Where a container's stdout and stderr go (all its runs, appended)."""
    return pod_dir(node_state_dir, uid) / f"{container}.log"


def proc_start_time(pid: int) -> int | None:
    """A process's start time in clock ticks since boot, or None when it does not exist."""
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields is not None else None
    except (IndexError, ValueError):
        return None


def _stat_fields(pid: int) -> list[bytes] | None:
    """/proc/<pid>/stat after the command name (field 3 on), or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rfind(b")") + 2:].split()


def alive(pid: int | None, start: int | None) -> bool:
    """Whether the process `pid` that started at `start` still exists (not a zombie)."""
    if not pid or start is None:
        return False
    fields = _stat_fields(pid)
    return (fields is not None and len(fields) > 19 and fields[0] != b"Z"
            and fields[19] == str(start).encode())


def read_state(node_state_dir: Path, uid: str) -> dict[str, Any]:
    try:
        data = json.loads((pod_dir(node_state_dir, uid) / STATE_FILE).read_bytes())
    except (OSError, ValueError):
        raise PodNotFound(uid) from None
    if not isinstance(data, dict):
        raise PodNotFound(uid)
    return data


def _sandbox(node_state_dir: Path, uid: str) -> dict[str, Any]:
    sandbox = read_state(node_state_dir, uid).get("sandbox")
    if not isinstance(sandbox, dict) or not sandbox.get("ready"):
        raise PodNotFound(uid)
    return sandbox


def pod_ip(node_state_dir: Path, uid: str) -> str | None:
    """The pod's (first) IP, or None when its sandbox has none yet."""
    try:
        ips = _sandbox(node_state_dir, uid).get("ips") or []
    except PodNotFound:
        return None
    return str(ips[0]) if ips else None


def exec_argv(node_state_dir: Path, uid: str, container: str | None = None) -> list[str]:
    """The prefix that runs a command in the pod's network, UTS and mount namespaces:
    `exec_argv(d, uid) + ["sh", "-c", "hostname"]`. With `container`, in its working directory.
    Raises PodNotFound when the pod's pause process is not running."""
    state = read_state(node_state_dir, uid)
    sandbox = state.get("sandbox")
    if not isinstance(sandbox, dict) or not sandbox.get("ready"):
        raise PodNotFound(uid)
    pid, start = sandbox.get("pausePid"), sandbox.get("pauseStart")
    if not isinstance(pid, int) or not alive(pid, start if isinstance(start, int) else None):
        raise PodNotFound(uid)
    workdir = "/"
    if container is not None:
        spec = (state.get("pod") or {}).get("spec") or {}
        for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
            if isinstance(c, dict) and c.get("name") == container:
                workdir = str(c.get("workingDir") or "/")
    return ["nsenter", "-t", str(pid), "--net", "--uts", "--mount", f"--wd={workdir}", "--"]


def known_pod_uids(node_state_dir: Path) -> list[str]:
    """The pods that have a directory on this node."""
    try:
        return sorted(e for e in os.listdir(pods_dir(node_state_dir))
                      if (pods_dir(node_state_dir) / e).is_dir())
    except FileNotFoundError:
        return []


__all__ = ["PodNotFound", "alive", "exec_argv", "known_pod_uids", "log_path", "pod_dir",
           "pod_ip", "proc_start_time", "read_state"]
