"""Bringing a cluster up, looking at it and tearing it down (`podnet up`, `status`, `down`).

A cluster is its state directory plus a list of components, each of which can start, stop,
clean up after itself and report its status. Today there is one, the API server; the node
namespaces, the pod network and the services data plane plug in as further components later.
`up` starts them in order, `down` stops them in reverse order, cleans up, and removes the state
directory. `down` works after a crash, a stale pid file or a half-finished `up`: it finds the
server by the state directory on its command line, not only by the pid file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO

from podnet.api.resources import lookup
from podnet.client.http import Client, ClientError
from podnet.cluster.state import ClusterState, StateError, ensure, port_free

SERVER_ARGV0 = "server"  # the `podnet server` subcommand, checked on /proc/<pid>/cmdline
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL
LOG_TAIL_LINES = 20


class ClusterError(Exception):
    """A cluster could not be brought up, inspected or torn down."""


@dataclass
class ComponentStatus:
    name: str
    healthy: bool
    lines: list[tuple[str, str]] = field(default_factory=list)  # (label, value) to print


class Component(Protocol):
    """A part of a cluster with a life of its own (a process, kernel objects, ...)."""

    name: str
    files: tuple[str, ...]  # entries of the state directory it owns

    def start(self, state: ClusterState, wait: float) -> bool:
        """Start it (True) or find it already running (False)."""
        ...

    def stop(self, state: ClusterState) -> None:
        """Stop it; must work whatever state it is in, including gone already."""
        ...

    def cleanup(self, state: ClusterState) -> None:
        """Remove what it left behind outside the state directory."""
        ...

    def status(self, state: ClusterState) -> ComponentStatus: ...


# -- processes --------------------------------------------------------------------------------


def cmdline(pid: int) -> list[str]:
    """A process's argv, or [] when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def pid_alive(pid: int) -> bool:
    """True when the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()
    return bool(state) and state[0] not in ("Z", "X")


def reap(pid: int) -> int | None:
    """Collect our own exited child (when it is one); returns its exit code if it exited."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status) if done else None


def is_server_of(pid: int, state: ClusterState) -> bool:
    """True when `pid` is the API server of this cluster (judged by its command line)."""
    args = cmdline(pid)
    return SERVER_ARGV0 in args and (str(state.dir) in args
                                     or f"--state-dir={state.dir}" in args)


def find_servers(state: ClusterState) -> list[int]:
    """Every live process serving this cluster's state directory."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            pid = int(entry.name)
            if pid != os.getpid() and is_server_of(pid, state) and pid_alive(pid):
                out.append(pid)
    return sorted(out)


def stop_process(pid: int, grace: float = STOP_GRACE) -> None:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL; reap it if it is our child."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if _wait_gone(pid, grace):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not _wait_gone(pid, 5.0):
        raise ClusterError(f"process {pid} did not exit after SIGKILL")


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        reap(pid)
        if not pid_alive(pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# -- the API server ---------------------------------------------------------------------------


def server_argv(state: ClusterState) -> list[str]:
    return [sys.executable, "-m", "podnet.cli.main", SERVER_ARGV0, "--state-dir", str(state.dir)]


def _server_env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])  # so the child imports this very podnet
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def spawn_server(state: ClusterState) -> int:
    """Start `podnet server` in a new session, output appended to logs/server.log."""
    state.logs_dir.mkdir(parents=True, exist_ok=True)
    argv = server_argv(state)
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(state.server_log),
         os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    defaults = {signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    return os.posix_spawn(argv[0], argv, _server_env(), file_actions=actions, setsid=True,
                          setsigdef=defaults)


def _client(state: ClusterState, timeout: float = 2.0) -> Client:
    return Client.from_state(state, timeout=timeout)


class ApiServer:
    """The `podnet server` process of the cluster."""

    name = "apiserver"
    files: tuple[str, ...] = (
        "cluster.json", "pki", "token", "kubeconfig", "store.db", "store.db-wal",
        "store.db-shm", "store.db-journal", "logs", "run",
    )

    def running_pid(self, state: ClusterState) -> int | None:
        pid = state.read_pid()
        if pid is not None and pid_alive(pid) and is_server_of(pid, state):
            return pid
        found = find_servers(state)
        return found[0] if found else None

    def start(self, state: ClusterState, wait: float) -> bool:
        config = state.load()
        pid = self.running_pid(state)
        if pid is not None:
            state.write_pid(pid)
            self._wait_ready(state, pid, wait, started=False)
            return False
        state.clear_pid()
        if not port_free(config.bind, config.port):
            raise ClusterError(
                f"port {config.port} on {config.bind} is taken by another process; "
                f"stop it, or remove the cluster with `podnet down --name {state.name}`")
        pid = spawn_server(state)
        state.write_pid(pid)
        self._wait_ready(state, pid, wait, started=True)
        return True

    def _wait_ready(self, state: ClusterState, pid: int, wait: float, started: bool) -> None:
        deadline = time.monotonic() + wait
        delay = 0.02
        with _client(state) as client:
            while not client.ready():
                code = reap(pid)
                if not pid_alive(pid):
                    state.clear_pid()
                    how = f" (exit status {code})" if code is not None else ""
                    raise ClusterError(
                        f"the API server exited during start-up{how}; the end of "
                        f"{state.server_log}:\n{log_tail(state.server_log)}")
                if time.monotonic() >= deadline:
                    if started:
                        stop_process(pid)
                        state.clear_pid()
                    raise ClusterError(
                        f"the API server did not become ready within {wait:g}s; the end of "
                        f"{state.server_log}:\n{log_tail(state.server_log)}")
                time.sleep(delay)
                delay = min(delay * 1.5, 0.25)

    def stop(self, state: ClusterState) -> None:
        pids = set(find_servers(state))
        pid = state.read_pid()
        if pid is not None and pid_alive(pid) and is_server_of(pid, state):
            pids.add(pid)
        for p in sorted(pids):
            stop_process(p)
        if pid is not None:
            reap(pid)
        state.clear_pid()

    def cleanup(self, state: ClusterState) -> None:
        return None

    def status(self, state: ClusterState) -> ComponentStatus:
        pid = self.running_pid(state)
        if pid is None:
            return ComponentStatus(self.name, False, [("apiserver", "not running")])
        with _client(state) as client:
            ready = client.ready()
            lines = [("apiserver", f"running (pid {pid}), {'ready' if ready else 'not ready'}")]
            if ready:
                lines += _object_counts(client)
        return ComponentStatus(self.name, ready, lines)


def _object_counts(client: Client) -> list[tuple[str, str]]:
    out = []
    for plural in ("namespaces", "pods", "services"):
        res = lookup(plural)
        assert res is not None
        try:
            count = str(len(client.list(res).get("items") or []))
        except ClientError as e:
            count = f"unknown ({e})"
        out.append((plural, count))
    return out


COMPONENTS: list[Component] = [ApiServer()]


# -- the commands -----------------------------------------------------------------------------


def _print_lines(lines: Sequence[tuple[str, str]], out: TextIO) -> None:
    width = max((len(k) for k, _ in lines), default=0) + 2
    for k, v in lines:
        print(f"{k + ':':<{width}}{v}", file=out)


def up(name: str | None = None, root: str | os.PathLike[str] | None = None, *,
       wait: float = 30.0, port: int | None = None, out: TextIO | None = None) -> ClusterState:
    """Create the cluster's state if needed and start its components; a no-op (that says so)
    when it is running already. `port` chooses the API port of a new cluster."""
    out = out or sys.stdout
    state = ClusterState.locate(name, root)
    try:
        state.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except PermissionError as e:
        raise StateError(f"{state.dir}: permission denied (podnet needs root, or set "
                         "PODNET_STATE_ROOT to a directory you own)") from e
    with state.lock():
        ensure(state.name, state.dir.parent, port=port)
        started = [c.start(state, wait) for c in COMPONENTS]
    url = state.load().server_url
    if any(started):
        print(f'cluster "{state.name}" is up at {url}', file=out)
    else:
        print(f'cluster "{state.name}" is already running at {url}', file=out)
    print(f"kubeconfig: {state.kubeconfig}", file=out)
    return state


def _looks_like_state_dir(state: ClusterState) -> bool:
    """Guard against removing a directory that is not a cluster's (a bad root or name)."""
    if state.exists():
        return True
    known = {".lock"}.union(*(c.files for c in COMPONENTS))
    return all(e.name in known or e.name.startswith(".") for e in state.dir.iterdir())


def down(name: str | None = None, root: str | os.PathLike[str] | None = None, *,
         out: TextIO | None = None) -> bool:
    """Stop every component, clean up and remove the state directory. False when there was
    no such cluster (not an error: the cluster is down either way)."""
    out = out or sys.stdout
    state = ClusterState.locate(name, root)
    if not state.dir.is_dir():
        print(f'cluster "{state.name}" does not exist', file=out)
        return False
    if not _looks_like_state_dir(state):
        raise ClusterError(f"refusing to remove {state.dir}: it is not a podnet state directory")
    with state.lock():
        for c in reversed(COMPONENTS):
            c.stop(state)
        for c in reversed(COMPONENTS):
            c.cleanup(state)
        shutil.rmtree(state.dir)
    print(f'cluster "{state.name}" deleted', file=out)
    return True


def status(name: str | None = None, root: str | os.PathLike[str] | None = None, *,
           out: TextIO | None = None) -> bool:
    """Print what the cluster is and how its components are; True when all are healthy."""
    out = out or sys.stdout
    state = ClusterState.locate(name, root)
    config = state.load()
    lines = [("cluster", state.name), ("state", str(state.dir)), ("api", config.server_url),
             ("kubeconfig", str(state.kubeconfig))]
    healthy = True
    for c in COMPONENTS:
        st = c.status(state)
        healthy = healthy and st.healthy
        lines += st.lines
    _print_lines(lines, out)
    return healthy
