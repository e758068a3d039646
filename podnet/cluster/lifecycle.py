"""Bringing a cluster up, looking at it and tearing it down (`podnet up`, `status`, `down`).

A cluster is its state directory plus a list of components, each of which can start, stop,
clean up after itself and report its status:

    Lab        the namespaces: the LAN, the nodes, the external host (podnet.lab)
    ApiServer  the `podnet server` process
    Agents     one `podnet agent --node node-i` process per node
    ClusterDns the cluster DNS: the kube-dns Service and its pods (podnet.cluster.addons)
    ClusterIngress  the ingress: its namespace, IngressClass, LoadBalancer Service and pod

`up` starts them in that order and returns when every Node is Ready and the cluster DNS and
the ingress (on clusters that have them) too. `down` stops the agents,
then removes the lab (the processes left in its namespaces, pods' namespaces first), then stops
the server, cleans up, and removes the state directory. A cluster made with no nodes is the
control plane alone. `down` works after a crash, a stale pid file or a half-finished `up`: it
finds processes by the state directory on their command line, not only by their pid files, and
namespaces by the cluster's name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from podnet.api.resources import lookup
from podnet.client.http import ApiError, Client, ClientError
from podnet.cluster import addons
from podnet.cluster.state import (
    ClusterConfig,
    ClusterState,
    LabSettings,
    StateError,
    clear_pid_file,
    ensure,
    port_free,
    read_pid_file,
    write_atomic,
    write_pid_file,
)
from podnet.kernel.netns import KernelError
from podnet.lab import build as lab_build

SERVER_ARGV0 = "server"  # the `podnet server` subcommand, checked on /proc/<pid>/cmdline
AGENT_ARGV0 = "agent"  # the `podnet agent` subcommand
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL
LOG_TAIL_LINES = 20


PORT_WAIT = 5.0  # seconds a restarting server waits for its port


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
    stop_processes([pid], grace)


def stop_processes(pids: Sequence[int], grace: float = STOP_GRACE) -> None:
    """stop_process for several at once: all get SIGTERM, then those still there SIGKILL."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    left = _wait_gone(pids, grace)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    left = _wait_gone(left, 5.0)
    if left:
        raise ClusterError(f"processes {left} did not exit after SIGKILL")


def _wait_gone(pids: Sequence[int], timeout: float) -> list[int]:
    """Wait until the processes are gone; those still alive at the deadline."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    left = list(pids)
    while True:
        for pid in left:
            reap(pid)
        left = [pid for pid in left if pid_alive(pid)]
        if not left or time.monotonic() >= deadline:
            return left
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


def spawn(argv: Sequence[str], log: Path) -> int:
    """Start a podnet process in a new session, stdin from /dev/null, its output appended to
    `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    defaults = {signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    return os.posix_spawn(argv[0], list(argv), _server_env(), file_actions=actions,
                          setsid=True, setsigdef=defaults)


def spawn_server(state: ClusterState) -> int:
    """Start `podnet server` in a new session, output appended to logs/server.log."""
    return spawn(server_argv(state), state.server_log)


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
        # A server that was killed can leave connections in FIN-WAIT-1 (data it never got to
        # send) that hold the port for a moment, even with SO_REUSEADDR: give them a few
        # seconds before calling the port taken.
        deadline = time.monotonic() + PORT_WAIT
        while not port_free(config.bind, config.port) and time.monotonic() < deadline:
            time.sleep(0.1)
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


# -- the lab ----------------------------------------------------------------------------------


class Lab:
    """The cluster's namespaces: the LAN, the nodes and the external host (none without
    nodes). They carry the cluster's name, so they are found without any state file."""

    name = "lab"
    files: tuple[str, ...] = ()

    def start(self, state: ClusterState, wait: float) -> bool:
        plan = state.load().lab_plan(str(state.dir))
        if not plan.nodes:
            return False
        try:
            return lab_build.build(plan)
        except (KernelError, lab_build.LabError) as e:
            raise ClusterError(f"building the lab failed: {e}\n(`podnet down --name "
                               f"{state.name}` removes what was made)") from e

    def _has_lab(self, state: ClusterState) -> bool:
        """False only when cluster.json says it never had one (no nodes); when it cannot be
        read (a half-finished `up`), look for namespaces anyway."""
        try:
            return state.load().nodes > 0
        except StateError:
            return True

    def stop(self, state: ClusterState) -> None:
        if not self._has_lab(state):
            return
        try:
            lab_build.teardown(state.name, owner=str(state.dir))
        except lab_build.ForeignLabError:
            return  # another root's cluster of the same name: not ours to remove
        except (KernelError, lab_build.LabError) as e:
            raise ClusterError(f"removing the lab failed: {e}") from e

    def cleanup(self, state: ClusterState) -> None:
        return None

    def status(self, state: ClusterState) -> ComponentStatus:
        plan = state.load().lab_plan(str(state.dir))
        if not plan.nodes:
            return ComponentStatus(self.name, True, [])
        absent = set(lab_build.missing(plan))
        lan = f"{plan.lan_netns}, {plan.lan_cidr}, backend {plan.backend}"
        ext = plan.external
        lines = [("lan", lan + (" (missing)" if plan.lan_netns in absent else "")),
                 ("external", f"{ext.netns}, {ext.address}"
                  + (" (missing)" if ext.netns in absent else ""))]
        return ComponentStatus(self.name, not absent, lines)


# -- the node agents --------------------------------------------------------------------------


def agent_argv(state: ClusterState, node: str) -> list[str]:
    """The command of node `node`'s agent. Whatever runs as an agent must keep `agent`,
    `--state-dir DIR` and `--node NODE` on its command line: that is how it is found."""
    return [sys.executable, "-m", "podnet.cli.main", AGENT_ARGV0, "--state-dir", str(state.dir),
            "--node", node]


def _option(args: Sequence[str], flag: str) -> str | None:
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a[len(flag) + 1:]
    return None


def agent_of(args: Sequence[str]) -> tuple[str, str] | None:
    """(state dir, node) when a command line is a node agent's, else None."""
    if AGENT_ARGV0 not in args:
        return None
    state_dir, node = _option(args, "--state-dir"), _option(args, "--node")
    if state_dir is None or node is None:
        return None
    return state_dir, node


def is_agent_of(pid: int, state: ClusterState, node: str) -> bool:
    """True when `pid` is the agent of `node` in this cluster (judged by its command line)."""
    return agent_of(cmdline(pid)) == (str(state.dir), node)


def find_agents(state: ClusterState) -> dict[str, list[int]]:
    """Every live agent process of this cluster, by node."""
    out: dict[str, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        found = agent_of(cmdline(pid))
        if found is not None and found[0] == str(state.dir) and pid_alive(pid):
            out.setdefault(found[1], []).append(pid)
    return {node: sorted(pids) for node, pids in sorted(out.items())}


def spawn_agent(state: ClusterState, node: str) -> int:
    """Start node `node`'s agent in a new session; output appended to nodes/<node>/agent.log."""
    return spawn(agent_argv(state, node), state.agent_log(node))


def node_ready(node: dict[str, Any]) -> bool:
    """Whether a Node object has condition Ready=True."""
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
               for c in conditions)


def ready_nodes(client: Client) -> set[str]:
    """Names of the Nodes that are Ready."""
    res = lookup("nodes")
    assert res is not None
    return {str((n.get("metadata") or {}).get("name")) for n in client.list(res).get("items") or []
            if node_ready(n)}


class Agents:
    """One `podnet agent` process per node: started after the server, in the host network
    namespace; `up` waits until every Node they register is Ready."""

    name = "agents"
    files: tuple[str, ...] = ("nodes",)

    def _nodes(self, state: ClusterState) -> list[str]:
        return [m.name for m in state.load().lab_plan().nodes]

    def running_pid(self, state: ClusterState, node: str,
                    found: dict[str, list[int]] | None = None) -> int | None:
        """The node's agent: the pid file's when it checks out, else one found by /proc."""
        pid = read_pid_file(state.agent_pid(node))
        if pid is not None and pid_alive(pid) and is_agent_of(pid, state, node):
            return pid
        pids = (find_agents(state) if found is None else found).get(node) or []
        return pids[0] if pids else None

    def start(self, state: ClusterState, wait: float) -> bool:
        nodes = self._nodes(state)
        if not nodes:
            return False
        found = find_agents(state)
        started: list[str] = []
        pids = {}
        for node in nodes:
            pid = self.running_pid(state, node, found)
            if pid is None:
                pid = spawn_agent(state, node)
                started.append(node)
            write_pid_file(state.agent_pid(node), pid)
            pids[node] = pid
        self._wait_ready(state, pids, wait)
        return bool(started)

    def _wait_ready(self, state: ClusterState, pids: dict[str, int], wait: float) -> None:
        deadline = time.monotonic() + wait
        delay = 0.02
        with _client(state) as client:
            while True:
                try:
                    ready = ready_nodes(client)
                except ClientError:
                    ready = set()
                waiting = [n for n in pids if n not in ready]
                if not waiting:
                    return
                for node in waiting:
                    code = reap(pids[node])
                    if not pid_alive(pids[node]):
                        clear_pid_file(state.agent_pid(node))
                        how = f" (exit status {code})" if code is not None else ""
                        raise ClusterError(
                            f"the agent of {node} exited before its Node was Ready{how}; the "
                            f"end of {state.agent_log(node)}:\n"
                            f"{log_tail(state.agent_log(node))}")
                if time.monotonic() >= deadline:
                    raise ClusterError(
                        f"{_nodes_phrase(waiting)} not Ready within {wait:g}s (the agents are "
                        f"still running; `podnet status` shows them, `podnet down` removes the "
                        f"cluster)" + "".join(
                            f"\nthe end of {state.agent_log(n)}:\n{log_tail(state.agent_log(n))}"
                            for n in waiting))
                time.sleep(delay)
                delay = min(delay * 1.5, 0.25)

    def stop(self, state: ClusterState) -> None:
        """Every agent of this cluster, found by its pid file or by /proc, all at once."""
        pids = {p for ps in find_agents(state).values() for p in ps}
        node_dirs = sorted(state.nodes_dir.iterdir()) if state.nodes_dir.is_dir() else []
        for d in node_dirs:
            pid = read_pid_file(state.agent_pid(d.name))
            if pid is not None and pid_alive(pid) and is_agent_of(pid, state, d.name):
                pids.add(pid)
        stop_processes(sorted(pids))
        for d in node_dirs:
            clear_pid_file(state.agent_pid(d.name))

    def cleanup(self, state: ClusterState) -> None:
        return None

    def status(self, state: ClusterState) -> ComponentStatus:
        plan = state.load().lab_plan()
        if not plan.nodes:
            return ComponentStatus(self.name, True, [])
        try:
            with _client(state) as client:
                ready: set[str] | None = ready_nodes(client)
        except ClientError:
            ready = None
        present = set(lab_build.present(state.name))
        found = find_agents(state)
        healthy = True
        lines = []
        for m in plan.nodes:
            pid = self.running_pid(state, m.name, found)
            agent = f"agent running (pid {pid})" if pid is not None else "agent not running"
            ready_word = ("Ready unknown" if ready is None else
                          "Ready" if m.name in ready else "NotReady")
            netns = m.netns if m.netns in present else f"{m.netns} (missing)"
            healthy = healthy and pid is not None and ready_word == "Ready" \
                and m.netns in present
            lines.append((m.name, f"{netns}, {m.address}, {agent}, {ready_word}"))
        return ComponentStatus(self.name, healthy, lines)


def _nodes_phrase(nodes: Sequence[str]) -> str:
    return f"node {nodes[0]} is" if len(nodes) == 1 else f"nodes {', '.join(nodes)} are"


# -- the cluster DNS --------------------------------------------------------------------------


HOST_RESOLV_CONF = Path("/etc/resolv.conf")  # the nodes': the agents run in the host's mounts


def dns_server_available() -> bool:
    """Whether this podnet has the DNS server the pods run."""
    import importlib.util

    return importlib.util.find_spec(addons.DNS_SERVER_MODULE) is not None


def dns_upstreams(config: ClusterConfig, resolv_conf: Path = HOST_RESOLV_CONF
                  ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(upstreams, skipped): the cluster's own, or else the usable nameservers of the nodes'
    resolv.conf (and the loopback ones left out)."""
    if config.dns_upstreams:
        return config.dns_upstreams, ()
    try:
        text = resolv_conf.read_text()
    except OSError:
        return (), ()
    return addons.upstreams_from_resolv_conf(text)


def dns_settings(state: ClusterState, config: ClusterConfig,
                 upstreams: tuple[str, ...]) -> addons.DnsSettings:
    return addons.DnsSettings(
        python=sys.executable, pythonpath=str(Path(__file__).resolve().parents[2]),
        api_socket=str(state.api_socket), token_file=str(state.token_path),
        service_cidr=config.service_cidr, cluster_cidr=config.cluster_cidr,
        upstreams=upstreams, pod_records=config.dns_pod_records)


def _res(plural: str) -> Any:
    res = lookup(plural)
    assert res is not None
    return res


def _create_missing(client: Client, plural: str, obj: dict[str, Any],
                    namespace: str | None = addons.DNS_NAMESPACE) -> bool:
    """Create `obj` unless it exists (a concurrent create counts as existing); True when
    created."""
    try:
        client.create(_res(plural), namespace, obj)
    except ApiError as e:
        if e.status == 409:
            return False
        raise
    return True


def dns_pods(client: Client) -> dict[str, dict[str, Any]]:
    """The cluster DNS's pods, by name."""
    items = client.list(_res("pods"), addons.DNS_NAMESPACE,
                        label_selector=addons.label_selector()).get("items") or []
    return {str(p["metadata"]["name"]): p for p in items}


def _pod_problem(pod: dict[str, Any]) -> str | None:
    """Why a DNS pod will not get Ready by waiting: its server exits (restarted at least once
    and not running now)."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if int(cs.get("restartCount") or 0) and "running" not in (cs.get("state") or {}):
            last = (cs.get("lastState") or {}).get("terminated") or {}
            return f"its server exited (exit code {last.get('exitCode', '?')})"
    return None


def dns_log_tail(state: ClusterState, pod: dict[str, Any]) -> str:
    from podnet import runtime

    node, uid = (pod.get("spec") or {}).get("nodeName"), pod["metadata"].get("uid")
    if not node or not uid:
        return ""
    return log_tail(runtime.log_path(state.node_dir(str(node)), str(uid), addons.DNS_CONTAINER))


class ClusterDns:
    """The kube-dns Service and the DNS pods (podnet.cluster.addons), created when missing once
    the nodes are Ready, on clusters made with the cluster DNS (ClusterConfig.dns) and nodes.
    They live in the API and in the lab, so `down` removes them with those."""

    name = "dns"
    files: tuple[str, ...] = ()

    def _nodes(self, config: ClusterConfig) -> list[str]:
        return [m.name for m in config.lab_plan().nodes]

    def wanted(self, state: ClusterState) -> addons.DnsObjects | None:
        """The objects this cluster should have; None when it has no nodes or this podnet
        has no DNS server."""
        config = state.load()
        nodes = self._nodes(config)
        if not config.dns or not nodes or not dns_server_available():
            return None
        return addons.dns_objects(dns_settings(state, config, dns_upstreams(config)[0]), nodes)

    def start(self, state: ClusterState, wait: float) -> bool:
        wanted = self.wanted(state)
        if wanted is None:
            return False
        with _client(state, timeout=10.0) as client:
            try:
                client.get(_res("services"), addons.DNS_NAMESPACE, addons.DNS_SERVICE)
                created = False
            except ApiError as e:
                if e.status != 404:
                    raise
                created = _create_missing(client, "services", wanted.service)
            have = dns_pods(client)
            for pod in wanted.pods:
                if pod["metadata"]["name"] not in have:
                    created = _create_missing(client, "pods", pod) or created
        return created

    def wait_ready(self, state: ClusterState, wait: float) -> list[str]:
        """Wait until every DNS pod is Ready; their names. ClusterError when one's server
        keeps exiting or they are not Ready within `wait` seconds, with the end of its log."""
        wanted = self.wanted(state)
        if wanted is None:
            return []
        names = [str(p["metadata"]["name"]) for p in wanted.pods]
        deadline = time.monotonic() + wait
        delay = 0.05
        with _client(state, timeout=10.0) as client:
            while True:
                have = dns_pods(client)
                waiting = [n for n in names if not addons.pod_ready(have.get(n) or {})]
                if not waiting:
                    return names
                for n in waiting:
                    problem = _pod_problem(have.get(n) or {})
                    if problem is not None:
                        raise ClusterError(self._failure(state, have[n], problem))
                if time.monotonic() >= deadline:
                    pod = have.get(waiting[0]) or {}
                    raise ClusterError(self._failure(
                        state, pod, f"it is not Ready within {wait:g}s"))
                time.sleep(delay)
                delay = min(delay * 1.5, 0.25)

    def _failure(self, state: ClusterState, pod: dict[str, Any], problem: str) -> str:
        name = (pod.get("metadata") or {}).get("name", "?")
        tail = dns_log_tail(state, pod) if pod.get("metadata") else ""
        return (f"the cluster DNS pod {addons.DNS_NAMESPACE}/{name}: {problem}"
                + (f"; the end of its log:\n{tail}" if tail else ""))

    def stop(self, state: ClusterState) -> None:
        return None  # its pods' processes go with the lab, its objects with the store

    def cleanup(self, state: ClusterState) -> None:
        return None

    def status(self, state: ClusterState) -> ComponentStatus:
        wanted = self.wanted(state)
        if wanted is None:
            return ComponentStatus(self.name, True, [])
        config = state.load()
        try:
            with _client(state) as client:
                have = dns_pods(client)
        except ClientError:
            return ComponentStatus(self.name, False, [("dns", "unknown (no API)")])
        pods = [f"{n} on {(p.get('spec') or {}).get('nodeName') or '?'} "
                f"{'Ready' if addons.pod_ready(p) else 'NotReady'}"
                for n, p in sorted(have.items())]
        upstreams = dns_upstreams(config)[0]
        lines = [("dns", f"{config.cluster_dns} (kube-system/kube-dns), "
                         + (", ".join(pods) if pods else "no pods")),
                 ("dns upstreams", " ".join(upstreams) if upstreams else "none")]
        healthy = all(addons.pod_ready(have.get(str(p["metadata"]["name"])) or {})
                      for p in wanted.pods)
        return ComponentStatus(self.name, healthy, lines)


# -- the ingress ------------------------------------------------------------------------------


INGRESS_DIR = "ingress"  # in the state directory: the setting, and the ingress pod's files
INGRESS_SETTING = "addon.json"  # {"enabled": true|false}, written when the cluster is made
HAPROXY = "haproxy"
HAPROXY_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")  # a pod's PATH has them


def haproxy_available() -> bool:
    """Whether HAProxy, which the ingress pod runs, is installed."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *HAPROXY_DIRS])
    return shutil.which(HAPROXY, path=path) is not None


def ingress_settings(state: ClusterState) -> addons.IngressSettings:
    return addons.IngressSettings(
        python=sys.executable, pythonpath=str(Path(__file__).resolve().parents[2]),
        api_socket=str(state.api_socket), token_file=str(state.token_path),
        state_dir=str(state.dir / INGRESS_DIR / addons.INGRESS_NAME))


def ingress_pod(client: Client) -> dict[str, Any] | None:
    """The ingress pod, or None."""
    try:
        return client.get(_res("pods"), addons.INGRESS_NAMESPACE, addons.INGRESS_NAME)
    except ApiError as e:
        if e.status == 404:
            return None
        raise


class ClusterIngress:
    """The ingress (podnet.cluster.addons): namespace ingress-podnet, the `podnet`
    IngressClass, the LoadBalancer Service and the controller's pod on node-1, created when
    missing once the nodes are Ready, on clusters made with it. Whether a cluster has it is
    kept in <state>/ingress/addon.json (absent: no, as clusters made before it); the pod's
    files (HAProxy's configuration, maps, certificates, socket) are in
    <state>/ingress/podnet-ingress. Its objects live in the API and its processes in the lab,
    so `down` removes them with those."""

    name = "ingress"
    files: tuple[str, ...] = (INGRESS_DIR,)

    def _setting(self, state: ClusterState) -> Path:
        return state.dir / INGRESS_DIR / INGRESS_SETTING

    def enabled(self, state: ClusterState) -> bool:
        try:
            return json.loads(self._setting(state).read_text()).get("enabled") is True
        except (OSError, ValueError, AttributeError):
            return False

    def configure(self, state: ClusterState, ingress: bool | None, new: bool) -> None:
        """Record a new cluster's choice (None: no ingress); an existing cluster keeps its
        own, and StateError says so when `ingress` asks for the other."""
        if new:
            path = self._setting(state)
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_atomic(path, json.dumps({"enabled": bool(ingress)}).encode() + b"\n",
                         0o644)
            return
        have = self.enabled(state)
        if ingress is not None and ingress != have:
            raise StateError(f'cluster "{state.name}" exists with the ingress '
                             f'{"on" if have else "off"}; remove it (podnet down) to change '
                             "that")

    def _nodes(self, state: ClusterState) -> list[str]:
        return [m.name for m in state.load().lab_plan().nodes]

    def wanted(self, state: ClusterState) -> addons.IngressObjects | None:
        """The objects this cluster should have; None when it has no ingress or no nodes,
        or HAProxy is not installed."""
        nodes = self._nodes(state)
        if not self.enabled(state) or not nodes or not haproxy_available():
            return None
        return addons.ingress_objects(ingress_settings(state), nodes)

    def start(self, state: ClusterState, wait: float) -> bool:
        wanted = self.wanted(state)
        if wanted is None:
            return False
        created = False
        with _client(state, timeout=10.0) as client:
            for plural, obj, ns in (("namespaces", wanted.namespace, None),
                                    ("ingressclasses", wanted.ingress_class, None),
                                    ("services", wanted.service, addons.INGRESS_NAMESPACE),
                                    ("pods", wanted.pod, addons.INGRESS_NAMESPACE)):
                if obj is not None:
                    created = _create_missing(client, plural, obj, ns) or created
        return created

    def wait_ready(self, state: ClusterState, wait: float) -> None:
        """Wait until the ingress pod is Ready. ClusterError when its controller keeps
        exiting or it is not Ready within `wait` seconds, with the end of its log."""
        if self.wanted(state) is None:
            return
        deadline = time.monotonic() + wait
        delay = 0.05
        with _client(state, timeout=10.0) as client:
            while True:
                pod = ingress_pod(client) or {}
                if addons.pod_ready(pod):
                    return
                problem = _pod_problem(pod)
                if problem is None and time.monotonic() >= deadline:
                    problem = f"it is not Ready within {wait:g}s"
                if problem is not None:
                    tail = self.log_tail(state, pod)
                    raise ClusterError(
                        f"the ingress pod {addons.INGRESS_NAMESPACE}/{addons.INGRESS_NAME}: "
                        f"{problem}" + (f"; the end of its log:\n{tail}" if tail else ""))
                time.sleep(delay)
                delay = min(delay * 1.5, 0.25)

    def log_tail(self, state: ClusterState, pod: dict[str, Any]) -> str:
        from podnet import runtime

        node = (pod.get("spec") or {}).get("nodeName")
        uid = (pod.get("metadata") or {}).get("uid")
        if not node or not uid:
            return ""
        return log_tail(runtime.log_path(state.node_dir(str(node)), str(uid),
                                         addons.INGRESS_CONTAINER))

    def address(self, client: Client) -> str | None:
        """The ingress Service's LoadBalancer address, once it has one."""
        try:
            svc = client.get(_res("services"), addons.INGRESS_NAMESPACE, addons.INGRESS_NAME)
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        return addons.ingress_address(svc)

    def stop(self, state: ClusterState) -> None:
        return None  # its pod's processes go with the lab, its objects with the store

    def cleanup(self, state: ClusterState) -> None:
        return None

    def status(self, state: ClusterState) -> ComponentStatus:
        try:
            if not self.enabled(state) or not self._nodes(state):
                return ComponentStatus(self.name, True, [])
        except StateError:
            return ComponentStatus(self.name, True, [])
        if not haproxy_available():
            return ComponentStatus(self.name, False, [
                ("ingress", "not running: HAProxy is not installed (scripts/install.sh "
                            "installs it)")])
        try:
            with _client(state) as client:
                pod = ingress_pod(client)
                address = self.address(client)
        except ClientError:
            return ComponentStatus(self.name, False, [("ingress", "unknown (no API)")])
        where = (f"{addons.INGRESS_NAME} on {(pod.get('spec') or {}).get('nodeName') or '?'} "
                 f"{'Ready' if addons.pod_ready(pod) else 'NotReady'}" if pod else "no pod")
        line = (f"{address or 'no address yet'} ({addons.ingress_publish_service()}, class "
                f"{addons.INGRESS_CLASS}), {where}")
        return ComponentStatus(self.name, bool(pod and addons.pod_ready(pod) and address),
                               [("ingress", line)])


LAB = Lab()
API_SERVER = ApiServer()
AGENTS = Agents()
CLUSTER_DNS = ClusterDns()
CLUSTER_INGRESS = ClusterIngress()
COMPONENTS: list[Component] = [LAB, API_SERVER, AGENTS, CLUSTER_DNS,
                               CLUSTER_INGRESS]  # the order `up` starts them
# The order `down` stops them in; the cluster DNS and the ingress have nothing to stop of
# their own.
TEARDOWN: list[Component] = [AGENTS, LAB, API_SERVER]


# -- the commands -----------------------------------------------------------------------------


def _print_lines(lines: Sequence[tuple[str, str]], out: TextIO) -> None:
    width = max((len(k) for k, _ in lines), default=0) + 2
    for k, v in lines:
        print(f"{k + ':':<{width}}{v}", file=out)


def up(name: str | None = None, root: str | os.PathLike[str] | None = None, *,
       wait: float = 30.0, port: int | None = None, nodes: int | None = None,
       backend: str | None = None, lan_cidr: str | None = None, cni: str | None = None,
       node_cidr_mask: int | None = None, lb_pool: str | None = None,
       dns: bool | None = None, dns_upstreams: Sequence[str] | None = None,
       dns_pod_records: str | None = None, ingress: bool | None = None,
       out: TextIO | None = None) -> ClusterState:
    """Create the cluster's state if needed and start its components; a no-op (that says so)
    when it is running already. `port`, `nodes`, `backend`, `lan_cidr`, `cni`, `lb_pool` (the
    LoadBalancer addresses: CIDRs and A-B ranges, comma-separated), `dns` (run the cluster
    DNS), `dns_upstreams` (its resolvers for names outside the cluster: IP[:PORT]) and
    `dns_pod_records` ("insecure" or "disabled") and `ingress` (run the ingress) choose those
    of a new cluster (None: as the cluster has them; a new one gets no nodes: the control plane
    alone, LAN offsets 200-249 as its LoadBalancer pool, no cluster DNS and no ingress; the CLI
    asks for nodes, the DNS and the ingress).
    Returns when every Node is Ready, and the cluster DNS and the ingress too when the cluster
    has them."""
    out = out or sys.stdout
    state = ClusterState.locate(name, root)
    try:
        state.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except PermissionError as e:
        raise StateError(f"{state.dir}: permission denied (podnet needs root, or set "
                         "PODNET_STATE_ROOT to a directory you own)") from e
    with state.lock():
        new = not state.exists()
        ensure(state.name, state.dir.parent, port=port,
               lab=LabSettings(nodes, backend, lan_cidr, cni, node_cidr_mask, lb_pool, dns,
                               None if dns_upstreams is None else tuple(dns_upstreams),
                               dns_pod_records))
        CLUSTER_INGRESS.configure(state, ingress, new)
        started = [c.start(state, wait) for c in COMPONENTS]
        CLUSTER_DNS.wait_ready(state, wait)
        CLUSTER_INGRESS.wait_ready(state, wait)
    config = state.load()
    _dns_warnings(config)
    _ingress_warnings(state)
    url = config.server_url
    if any(started):
        print(f'cluster "{state.name}" is up at {url}', file=out)
    else:
        print(f'cluster "{state.name}" is already running at {url}', file=out)
    if config.nodes:
        plan = config.lab_plan()
        print(f"nodes: {', '.join(m.name for m in plan.nodes)} Ready (backend "
              f"{plan.backend}, LAN {plan.lan_cidr})", file=out)
    if CLUSTER_INGRESS.wanted(state) is not None:
        with _client(state) as client:
            address = CLUSTER_INGRESS.address(client)
        print(f"ingress: {address or 'no address yet'} (class {addons.INGRESS_CLASS})",
              file=out)
    print(f"kubeconfig: {state.kubeconfig}", file=out)
    return state


def _ingress_warnings(state: ClusterState) -> None:
    """What the user must know about the ingress, on stderr."""
    if state.load().nodes and CLUSTER_INGRESS.enabled(state) and not haproxy_available():
        print("warning: HAProxy is not installed (apt-get install haproxy; scripts/install.sh "
              "does): the cluster has no ingress", file=sys.stderr)


def _dns_warnings(config: ClusterConfig) -> None:
    """What the user must know about the cluster DNS, on stderr (stdout stays as it was)."""
    if not config.nodes or not config.dns:
        return
    if not dns_server_available():
        print("warning: this podnet has no DNS server (podnet.dns.main): the cluster has no "
              "DNS", file=sys.stderr)
        return
    upstreams, skipped = dns_upstreams(config)
    if not upstreams:
        why = (f"the nodes' {HOST_RESOLV_CONF} has only loopback nameservers "
               f"({', '.join(skipped)})" if skipped else
               f"the nodes' {HOST_RESOLV_CONF} has no nameserver")
        print(f"warning: the cluster DNS has no upstream resolver ({why}): names outside "
              f"{addons.CLUSTER_DOMAIN} will not resolve in pods; a new cluster takes "
              "`--dns-upstream IP[:PORT]`", file=sys.stderr)


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
        if _remove_orphans(state):
            print(f'cluster "{state.name}" deleted (its state directory was gone already)',
                  file=out)
            return True
        print(f'cluster "{state.name}" does not exist', file=out)
        return False
    if not _looks_like_state_dir(state):
        raise ClusterError(f"refusing to remove {state.dir}: it is not a podnet state directory")
    with state.lock():
        for c in TEARDOWN:
            c.stop(state)
        for c in TEARDOWN:
            c.cleanup(state)
        shutil.rmtree(state.dir)
    print(f'cluster "{state.name}" deleted', file=out)
    return True


def _remove_orphans(state: ClusterState) -> bool:
    """Agents, namespaces and servers of a cluster whose state directory is gone (removed by
    hand); True when there were any."""
    agents = [p for ps in find_agents(state).values() for p in ps]
    servers = find_servers(state)
    stop_processes(agents)
    try:
        removed = lab_build.teardown(state.name, owner=str(state.dir))
    except lab_build.ForeignLabError:
        removed = []
    except (KernelError, lab_build.LabError) as e:
        raise ClusterError(f"removing the lab failed: {e}") from e
    stop_processes(servers)
    return bool(agents or removed or servers)


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
