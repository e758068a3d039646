"""`up --nodes N` and `down` with the Agents component's process handling, on a real lab and a
real server. The agents are stand-ins (a few lines that register a Ready Node, fail, or never
get Ready), so this tests the lifecycle, not the node agent."""

from __future__ import annotations

import io
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from podnet.client.http import Client
from podnet.cluster import lifecycle
from podnet.cluster.lifecycle import ClusterError
from podnet.cluster.state import ClusterState, LabSettings, ensure, ephemeral_port
from podnet.kernel import netns
from podnet.lab import build, names

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

# argv: MODE agent --state-dir DIR --node NODE. MODE "ready" registers a Ready Node, "fail:N"
# makes node N exit with status 3, "never" registers nothing.
STAND_IN = r"""
import sys, time
from podnet.api.resources import lookup
from podnet.client.http import ApiError, Client
from podnet.cluster.state import ClusterState

mode, args = sys.argv[1], sys.argv[2:]
state = ClusterState.from_dir(args[args.index("--state-dir") + 1])
node = args[args.index("--node") + 1]
print(f"stand-in agent for {node}", flush=True)
if mode == f"fail:{node}":
    print(f"stand-in agent for {node} fails", flush=True)
    sys.exit(3)
if mode != "never":
    with Client.from_state(state) as client:
        try:
            client.create(lookup("nodes"), None, {
                "apiVersion": "v1", "kind": "Node", "metadata": {"name": node},
                "status": {"conditions": [{"type": "Ready", "status": "True",
                                           "reason": "StandIn"}]}})
        except ApiError as e:
            if e.status != 409:
                raise
while True:
    time.sleep(60)
"""


def stand_in(mode: str) -> Callable[[ClusterState, str], list[str]]:
    def argv(state: ClusterState, node: str) -> list[str]:
        return [sys.executable, "-c", STAND_IN, mode, "agent", "--state-dir", str(state.dir),
                "--node", node]
    return argv


def podnet(root: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PODNET_STATE_ROOT": str(root)}
    return subprocess.run([sys.executable, "-m", "podnet.cli.main", *args], input=input,
                          text=True, capture_output=True, env=env, cwd=REPO, timeout=60)


def agent_pids(state: ClusterState) -> dict[str, int | None]:
    return {node: lifecycle.AGENTS.running_pid(state, node) for node in ("node-1", "node-2")}


@pytest.fixture
def names_to_remove(cluster_root: Path) -> Iterator[list[str]]:
    """Cluster names a test brings up; each is taken down afterwards, even on failure, and
    must leave no process or namespace behind."""
    made: list[str] = []
    try:
        yield made
    finally:
        for name in made:
            state = ClusterState.locate(name, cluster_root)
            lifecycle.down(name, cluster_root, out=io.StringIO())
            assert lifecycle.find_agents(state) == {}
            assert lifecycle.find_servers(state) == []
            assert build.present(name) == []


def new_name(made: list[str]) -> str:
    made.append("u" + secrets.token_hex(4))
    return made[-1]


def test_up_with_nodes_then_down(cluster_root: Path, names_to_remove: list[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "agent_argv", stand_in("ready"))
    name = new_name(names_to_remove)
    out = io.StringIO()
    state = lifecycle.up(name, cluster_root, port=ephemeral_port("127.0.0.1"), nodes=2, out=out)
    port = state.load().port
    assert out.getvalue() == (
        f'cluster "{name}" is up at https://127.0.0.1:{port}\n'
        "nodes: node-1, node-2 Ready (backend host-gw, LAN 172.18.0.0/24)\n"
        f"kubeconfig: {state.kubeconfig}\n")

    with Client.from_state(state) as client:
        assert lifecycle.ready_nodes(client) == {"node-1", "node-2"}
    pids = agent_pids(state)
    for node, pid in pids.items():
        assert pid is not None and state.agent_pid(node).read_text() == f"{pid}\n"
        assert state.agent_log(node).read_text() == f"stand-in agent for {node}\n"
    assert sorted(build.present(name)) == sorted(state.load().lab_plan().netns_names)

    out = io.StringIO()
    assert lifecycle.status(name, cluster_root, out=out) is True
    lines = out.getvalue().splitlines()
    assert f"lan:        podnet-{name}-lan, 172.18.0.0/24, backend host-gw" in lines
    assert f"external:   podnet-{name}-external, 172.18.0.2" in lines
    assert (f"node-1:     podnet-{name}-node-1, 172.18.0.11, agent running "
            f"(pid {pids['node-1']}), Ready") in lines

    # `podnet exec` into the lab's machines: output, input and exit status pass through.
    r = podnet(cluster_root, "exec", "--name", name, "node/node-1", "--",
               "ip", "-br", "-4", "addr", "show", "dev", "eth0")
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout.split()[2] == "172.18.0.11/24"
    r = podnet(cluster_root, "--name", name, "exec", "external", "--",
               "sh", "-c", "cat; ping -c1 -W1 172.18.0.12 >/dev/null && exit 7",
               input="hello\n")
    assert (r.returncode, r.stdout) == (7, "hello\n")
    r = podnet(cluster_root, "--name", name, "exec", "node/node-9", "--", "true")
    assert (r.returncode, r.stderr) == (
        1, f'error: the node "node-9" of cluster "{name}" does not exist (namespace '
           f'podnet-{name}-node-9)\n')

    # An agent killed with -9 is started again by `up`; the other one is kept.
    os.kill(pids["node-1"] or 0, signal.SIGKILL)
    while lifecycle.pid_alive(pids["node-1"] or 0):
        time.sleep(0.02)
    out = io.StringIO()
    lifecycle.up(name, cluster_root, out=out)
    assert out.getvalue().startswith(f'cluster "{name}" is up at ')
    again = agent_pids(state)
    assert again["node-1"] not in (None, pids["node-1"])
    assert again["node-2"] == pids["node-2"]
    out = io.StringIO()
    lifecycle.up(name, cluster_root, out=out)
    assert out.getvalue().startswith(f'cluster "{name}" is already running at ')

    # `down` stops the agents, kills what runs in the lab (a stand-in for a pod's process),
    # removes the namespaces, stops the server and removes the state.
    sleeper = subprocess.Popen(netns.exec_argv(names.node_netns(name, "node-2"),
                                               ["sleep", "1000"]), start_new_session=True)
    try:
        server = state.read_pid()
        out = io.StringIO()
        assert lifecycle.down(name, cluster_root, out=out) is True
        assert out.getvalue() == f'cluster "{name}" deleted\n'
        assert sleeper.wait(timeout=5) == -signal.SIGKILL
        for pid in (*again.values(), server):
            assert not lifecycle.pid_alive(pid or 0)
        assert build.present(name) == []
        assert not state.dir.exists()
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()


def test_an_agent_that_exits_fails_up_with_its_log(cluster_root: Path,
                                                   names_to_remove: list[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "agent_argv", stand_in("fail:node-1"))
    name = new_name(names_to_remove)
    with pytest.raises(ClusterError) as e:
        lifecycle.up(name, cluster_root, port=ephemeral_port("127.0.0.1"), nodes=2,
                     out=io.StringIO())
    state = ClusterState.locate(name, cluster_root)
    assert str(e.value) == (
        "the agent of node-1 exited before its Node was Ready (exit status 3); the end of "
        f"{state.agent_log('node-1')}:\n"
        "stand-in agent for node-1\nstand-in agent for node-1 fails")
    assert not state.agent_pid("node-1").exists()


def test_nodes_that_never_get_ready_time_out_naming_them(cluster_root: Path,
                                                         names_to_remove: list[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "agent_argv", stand_in("never"))
    name = new_name(names_to_remove)
    with pytest.raises(ClusterError) as e:
        lifecycle.up(name, cluster_root, port=ephemeral_port("127.0.0.1"), nodes=2, wait=5.0,
                     out=io.StringIO())
    state = ClusterState.locate(name, cluster_root)
    assert str(e.value) == (
        "nodes node-1, node-2 are not Ready within 5s (the agents are still running; `podnet "
        "status` shows them, `podnet down` removes the cluster)\n"
        f"the end of {state.agent_log('node-1')}:\nstand-in agent for node-1\n"
        f"the end of {state.agent_log('node-2')}:\nstand-in agent for node-2")
    out = io.StringIO()
    assert lifecycle.status(name, cluster_root, out=out) is False
    assert re.search(r"^node-2: +podnet-\S+-node-2, 172\.18\.0\.12, agent running \(pid \d+\), "
                     r"NotReady$", out.getvalue(), re.M)
    assert set(lifecycle.find_agents(state)) == {"node-1", "node-2"}  # down stops them


def test_down_signals_no_process_that_is_not_an_agent(cluster_root: Path) -> None:
    name = "h" + secrets.token_hex(4)
    state = ensure(name, cluster_root, lab=LabSettings(nodes=2))
    bystander = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    try:
        state.agent_pid("node-1").parent.mkdir(parents=True)
        state.agent_pid("node-1").write_text(f"{bystander.pid}\n")
        assert lifecycle.down(name, cluster_root, out=io.StringIO()) is True
        assert bystander.poll() is None
        assert not state.dir.exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_down_without_a_state_directory_removes_what_is_left(
        cluster_root: Path, names_to_remove: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "agent_argv", stand_in("ready"))
    name = new_name(names_to_remove)
    state = lifecycle.up(name, cluster_root, port=ephemeral_port("127.0.0.1"), nodes=1,
                         out=io.StringIO())
    agents = lifecycle.find_agents(state)
    subprocess.run(["rm", "-rf", str(state.dir)], check=True)  # someone removed it by hand
    r = podnet(cluster_root, "down", "--name", name)
    assert (r.returncode, r.stdout) == (
        0, f'cluster "{name}" deleted (its state directory was gone already)\n')
    assert not lifecycle.pid_alive(agents["node-1"][0])
    assert build.present(name) == []
    assert lifecycle.find_servers(state) == []
