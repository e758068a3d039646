"""A pod's sandbox: its namespaces and the pause process that holds them (shell).

See podnet.runtime for the process model. This module starts and kills pause processes, writes
the pod's resolv.conf, hosts and mount table, removes the pod's network namespace, and reads
what a CNI result means for the pod (its IPs). It knows nothing of API objects beyond that.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from podnet.kernel import netns
from podnet.runtime import HOSTS_FILE, MOUNTS_FILE, NETNS_DIR, RESOLV_FILE, alive, proc_start_time

PAUSE_PID_FILE = "pause.pid"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _which(name: str) -> str:
    return shutil.which(name, path=SYSTEM_PATH) or name


UNSHARE = _which("unshare")
NSENTER = _which("nsenter")
SH = _which("sh")

# $1 hostname, $2 fstab, $3 "lo" when the namespace is new. Runs inside the new namespaces;
# everything but `ip` and `mount` is a shell builtin. "ok" on stdout means ready; anything else
# on stdout/stderr before the pipe closes is the error.
PAUSE_SCRIPT = (
    'echo $$ >"${2%/*}/' + PAUSE_PID_FILE + '" && printf %s "$1" >/proc/sys/kernel/hostname && '
    '{ [ "$3" != lo ] || ip link set lo up; } && mount -a -T "$2" && echo ok && '
    "exec sleep infinity </dev/null >/dev/null 2>&1"
)


class SandboxError(Exception):
    """The sandbox could not be set up; the message says why."""


# -- files --------------------------------------------------------------------------------------

def _fstab_path(path: Path) -> str:
    """A path as an fstab field: whitespace and backslashes octal-escaped."""
    out = str(path)
    for ch, esc in (("\\", "\\134"), (" ", "\\040"), ("\t", "\\011"), ("\n", "\\012")):
        out = out.replace(ch, esc)
    return out


def write_pod_files(pod_dir: Path, resolv_conf: str, hosts: str) -> None:
    """resolv.conf, hosts, and the pause's mount table that binds them over /etc."""
    pod_dir.mkdir(parents=True, exist_ok=True)
    (pod_dir / RESOLV_FILE).write_text(resolv_conf)
    (pod_dir / HOSTS_FILE).write_text(hosts)
    (pod_dir / MOUNTS_FILE).write_text(
        f"{_fstab_path(pod_dir / RESOLV_FILE)} /etc/resolv.conf none bind 0 0\n"
        f"{_fstab_path(pod_dir / HOSTS_FILE)} /etc/hosts none bind 0 0\n")


def rewrite_in_place(path: Path, text: str) -> None:
    """Rewrite a bind-mounted file keeping its inode (a rename would leave the mount on the
    old one)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


# -- the pause process --------------------------------------------------------------------------

def _read_until_eof(fd: int, timeout: float) -> asyncio.Future[bytes]:
    """Collect what a pipe delivers until its writers close it."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[bytes] = loop.create_future()
    chunks: list[bytes] = []

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            chunks.append(data)
            return
        loop.remove_reader(fd)
        if not fut.done():
            fut.set_result(b"".join(chunks))

    def expire() -> None:
        loop.remove_reader(fd)
        if not fut.done():
            fut.set_exception(SandboxError(f"the pause process did not get ready in {timeout:g}s: "
                                           + b"".join(chunks).decode(errors="replace")))

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)
    handle = loop.call_later(timeout, expire)
    fut.add_done_callback(lambda _: handle.cancel())
    return fut


def pause_argv(netns_path: Path, *, new_netns: bool, hostname: str, pod_dir: Path) -> list[str]:
    fstab = str(pod_dir / MOUNTS_FILE)
    script = [SH, "-c", PAUSE_SCRIPT, "pause", hostname, fstab, "lo" if new_netns else "-"]
    namespaces = ["--uts", "--mount", "--propagation", "private", "--"]
    if new_netns:
        return [UNSHARE, f"--net={netns_path}", *namespaces, *script]
    return [NSENTER, f"--net={netns_path}", "--", UNSHARE, *namespaces, *script]


async def start_pause(netns_path: Path, *, new_netns: bool, hostname: str, pod_dir: Path,
                      timeout: float = 10.0) -> tuple[int, int]:
    """Start the pause process; returns (pid, start time) once its namespaces are set up. With
    `new_netns` it creates the network namespace at `netns_path` (which must not exist)."""
    if new_netns:
        NETNS_DIR.mkdir(parents=True, exist_ok=True)
        os.close(os.open(netns_path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444))
    r, w = os.pipe()
    try:
        pid = os.posix_spawn(
            UNSHARE if new_netns else NSENTER,
            pause_argv(netns_path, new_netns=new_netns, hostname=hostname, pod_dir=pod_dir),
            {"PATH": SYSTEM_PATH},
            file_actions=[(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                          (os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_DUP2, w, 2)],
            setsid=True)
    except OSError as e:
        os.close(r)
        raise SandboxError(f"cannot start the pause process: {e}") from e
    finally:
        os.close(w)
    start = proc_start_time(pid)
    try:
        out = await _read_until_eof(r, timeout)
    except BaseException:
        kill_pause(pid, start)
        reap_later(pid)
        raise
    finally:
        os.close(r)
    if out.strip() != b"ok" or start is None:
        kill_pause(pid, start)
        reap_later(pid)
        raise SandboxError("the pause process failed: "
                           + (out.decode(errors="replace").strip() or "no output"))
    return pid, start


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def kill_pause(pid: int | None, start: int | None) -> None:
    """SIGKILL the pause process if it is still the one we started."""
    if pid and alive(pid, start):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stray_pause(pod_dir: Path) -> tuple[int, int] | None:
    """A pause process of this pod that the state file does not know of (the agent died
    while starting it): found by the pid it wrote, checked against its command line."""
    try:
        pid = int((pod_dir / PAUSE_PID_FILE).read_text().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().split(b"\0")
    except (OSError, ValueError):
        return None
    start = proc_start_time(pid)
    if str(pod_dir / MOUNTS_FILE).encode() in cmdline and start is not None:
        return pid, start
    return None


# -- watching processes -------------------------------------------------------------------------

def _noop() -> None:
    pass


class ExitWatch:
    """Calls back once when a process exits, through a pidfd (which works for processes that
    are not our children, such as those adopted after an agent restart), and reaps it when it
    is our child."""

    def __init__(self, pid: int, on_exit: Callable[[], None]) -> None:
        self.loop = asyncio.get_running_loop()
        self.pid = pid
        self.on_exit = on_exit
        self.active = True
        self.fd: int | None = None
        try:
            self.fd = os.pidfd_open(pid)
        except ProcessLookupError:
            self.loop.call_soon(self._fire)
            return
        self.loop.add_reader(self.fd, self._fire)

    def _fire(self) -> None:
        if not self.active:
            return
        self.close()
        _reap(self.pid)
        callback, self.on_exit = self.on_exit, _noop
        callback()

    def silence(self) -> None:
        """Keep watching (to reap the process) but call nobody."""
        self.on_exit = _noop

    def close(self) -> None:
        """Stop watching altogether."""
        self.active = False
        if self.fd is not None:
            self.loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = None


def reap_later(pid: int) -> None:
    """Reap a child of ours once it has exited, without waiting for it."""
    ExitWatch(pid, _noop)


# -- the network namespace ----------------------------------------------------------------------

async def delete_netns(name: str) -> None:
    """Remove a pod's network namespace (its bind mount at /run/netns/<name>)."""
    path = NETNS_DIR / name
    if not os.path.lexists(path):
        return
    rc, _, err = await netns.arun(["ip", "netns", "del", name], check=False)
    if rc != 0 and os.path.lexists(path):
        raise netns.KernelError(f"ip netns del {name}: {err.strip()}")


# -- CNI ----------------------------------------------------------------------------------------

def cni_args(namespace: str, name: str, uid: str) -> dict[str, str]:
    """CNI_ARGS as containerd passes them (IgnoreUnknown, so plugins that do not know the
    K8S_* keys accept them)."""
    return {"IgnoreUnknown": "1", "K8S_POD_NAMESPACE": namespace, "K8S_POD_NAME": name,
            "K8S_POD_INFRA_CONTAINER_ID": uid, "K8S_POD_UID": uid}


def pod_ips(result: Mapping[str, Any], node_ip: str = "") -> list[str]:
    """The pod's IPs from a CNI result, as kubelet orders them: the first address of the node's
    family, then the first of the other family."""
    addrs: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for entry in result.get("ips") or []:
        if not isinstance(entry, Mapping):
            continue
        try:
            addrs.append(ipaddress.ip_interface(str(entry.get("address", ""))).ip)
        except ValueError:
            continue
    primary = 6 if node_ip and ":" in node_ip else 4
    out = [str(a) for a in addrs if a.version == primary][:1]
    out += [str(a) for a in addrs if a.version != primary][:1]
    return out
