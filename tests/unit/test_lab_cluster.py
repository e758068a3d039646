"""The lab's place in a cluster, without the kernel: lab settings in cluster.json, how agents
are recognised, Node readiness, and `podnet up --nodes` / `podnet exec` on the command line."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from podnet.cli import main as cli
from podnet.cluster import lifecycle
from podnet.cluster.state import ClusterConfig, ClusterState, LabSettings, StateError, ensure

NOW = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


# -- cluster.json -----------------------------------------------------------------------------


def test_a_new_cluster_records_its_lab(tmp_path: Path) -> None:
    s = ensure("c1", tmp_path, now=NOW, lab=LabSettings(3, "vxlan", "10.20.0.0/24", "ptp"))
    data = json.loads(s.cluster_json.read_text())
    assert (data["nodes"], data["backend"], data["lan_cidr"], data["cni"]) == (
        3, "vxlan", "10.20.0.0/24", "ptp")
    lab = s.load().lab_plan(str(s.dir))
    assert [m.address for m in lab.nodes] == ["10.20.0.11", "10.20.0.12", "10.20.0.13"]
    assert (lab.backend, lab.owner) == ("vxlan", str(tmp_path / "c1"))


def test_without_lab_settings_a_new_cluster_has_no_nodes(tmp_path: Path) -> None:
    config = ensure("c1", tmp_path, now=NOW).load()
    assert (config.nodes, config.backend, config.lan_cidr, config.cni) == (
        0, "host-gw", "172.18.0.0/24", "podnet")


def test_an_existing_cluster_keeps_its_lab_and_refuses_changes(tmp_path: Path) -> None:
    ensure("c1", tmp_path, now=NOW, lab=LabSettings(nodes=2))
    s = ensure("c1", tmp_path, now=NOW)  # nothing asked: kept
    assert s.load().nodes == 2
    assert ensure("c1", tmp_path, now=NOW, lab=LabSettings(2, "host-gw")).load().nodes == 2
    with pytest.raises(StateError) as e:
        ensure("c1", tmp_path, now=NOW, lab=LabSettings(3, "vxlan", "10.0.0.0/24", "ptp"))
    assert str(e.value) == ('cluster "c1" exists with 2 nodes, backend host-gw, LAN '
                            '172.18.0.0/24, CNI podnet; remove it (podnet down) to change that')


def test_bad_lab_settings_create_nothing(tmp_path: Path) -> None:
    with pytest.raises(StateError) as e:
        ensure("c1", tmp_path, now=NOW, lab=LabSettings(500, "vxlan", cni="calico"))
    assert str(e.value) == ("nodes must be between 0 and 189, not 500; cni must be one of "
                            "podnet, ptp, not 'calico'")
    assert not (tmp_path / "c1" / "cluster.json").exists()


def test_cluster_json_without_lab_keys_means_no_nodes() -> None:
    config = ClusterConfig.from_dict({"name": "old", "port": 6443})
    assert (config.nodes, config.backend, config.lan_cidr) == (0, "host-gw", "172.18.0.0/24")


def test_a_bad_lab_in_cluster_json_is_a_state_error() -> None:
    config = ClusterConfig.from_dict({"name": "x", "port": 1, "nodes": 2, "backend": "nope"})
    with pytest.raises(StateError, match=r"^bad cluster\.json: backend must be one of"):
        config.lab_plan()


def test_node_paths(tmp_path: Path) -> None:
    s = ClusterState("c", tmp_path / "c")
    assert (s.nodes_dir, s.agent_log("node-2"), s.agent_pid("node-2")) == (
        tmp_path / "c/nodes", tmp_path / "c/nodes/node-2/agent.log",
        tmp_path / "c/nodes/node-2/agent.pid")


# -- agents -----------------------------------------------------------------------------------


def test_agent_argv_is_recognised_as_that_agent(tmp_path: Path) -> None:
    s = ClusterState("c", tmp_path / "c")
    argv = lifecycle.agent_argv(s, "node-3")
    assert argv[1:] == ["-m", "podnet.cli.main", "agent", "--state-dir", str(s.dir),
                        "--node", "node-3"]
    assert lifecycle.agent_of(argv) == (str(s.dir), "node-3")


@pytest.mark.parametrize(("args", "found"), [
    pytest.param(["python", "-m", "podnet.cli.main", "agent", "--state-dir=/s/c", "--node=n1"],
                 ("/s/c", "n1"), id="equals-form"),
    pytest.param(["python", "-m", "podnet.cli.main", "server", "--state-dir", "/s/c"], None,
                 id="the-server"),
    pytest.param(["python", "-m", "podnet.cli.main", "agent", "--state-dir", "/s/c"], None,
                 id="no-node"),
    pytest.param(["sleep", "agent", "--node", "n1"], None, id="no-state-dir"),
    pytest.param([], None, id="gone"),
])
def test_agent_of(args: list[str], found: tuple[str, str] | None) -> None:
    assert lifecycle.agent_of(args) == found


@pytest.mark.parametrize(("node", "ready"), [
    pytest.param({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}, True,
                 id="ready"),
    pytest.param({"status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                            {"type": "Ready", "status": "False"}]}}, False,
                 id="not-ready"),
    pytest.param({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}, False,
                 id="unknown"),
    pytest.param({"metadata": {"name": "n"}}, False, id="no-status"),
])
def test_node_ready(node: dict[str, object], ready: bool) -> None:
    assert lifecycle.node_ready(node) is ready


def test_teardown_stops_agents_then_the_lab_then_the_server() -> None:
    assert [c.name for c in lifecycle.COMPONENTS] == ["lab", "apiserver", "agents", "dns",
                                                        "ingress"]
    assert [c.name for c in lifecycle.TEARDOWN] == ["agents", "lab", "apiserver"]


# -- the command line ---------------------------------------------------------------------------


def test_up_options() -> None:
    args = cli.build_parser().parse_args(["up", "--nodes", "3", "--backend", "vxlan",
                                          "--lan-cidr", "10.1.0.0/24", "--cni", "ptp"])
    assert (args.nodes, args.backend, args.lan_cidr, args.cni) == (
        3, "vxlan", "10.1.0.0/24", "ptp")
    args = cli.build_parser().parse_args(["up"])
    assert (args.nodes, args.backend, args.lan_cidr, args.cni) == (None, None, None, None)


@pytest.mark.parametrize(("argv", "head", "command"), [
    pytest.param(["exec", "node/node-1", "--", "ip", "-br", "addr"], ["exec", "node/node-1"],
                 ["ip", "-br", "addr"], id="node"),
    pytest.param(["--name", "x", "exec", "external", "--", "sh", "-c", "a -- b"],
                 ["--name", "x", "exec", "external"], ["sh", "-c", "a -- b"], id="dashes-after"),
    pytest.param(["exec", "external", "--"], ["exec", "external"], [], id="empty"),
    pytest.param(["get", "pods"], ["get", "pods"], None, id="not-exec"),
    pytest.param(["get", "pods", "--", "exec"], ["get", "pods", "--", "exec"], None,
                 id="exec-after-dashes"),
])
def test_split_exec(argv: list[str], head: list[str], command: list[str] | None) -> None:
    assert cli._split_exec(argv) == (head, command)


@pytest.mark.parametrize(("target", "netns"), [
    pytest.param("node/node-2", "podnet-dev-node-2", id="node"),
    pytest.param("nodes/node-12", "podnet-dev-node-12", id="plural"),
    pytest.param("external", "podnet-dev-external", id="external"),
    pytest.param("web", None, id="a-pod"),
    pytest.param("pod/web", None, id="a-pod-by-kind"),
])
def test_machine_netns(target: str, netns: str | None) -> None:
    assert cli.machine_netns("dev", target) == netns


@pytest.mark.parametrize("target", ["node/lan", "node/external", "node/node-0", "node/../x",
                                    "node/", "node/node-1/x"])
def test_machine_netns_refuses_what_is_not_a_node(target: str) -> None:
    with pytest.raises(cli.CommandError) as e:
        cli.machine_netns("dev", target)
    assert str(e.value) == (f'Error from server (NotFound): nodes "{target.split("/", 1)[1]}" '
                            "not found")


def test_exec_needs_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["exec", "external"]) == 1
    assert capsys.readouterr().err == (
        "error: you must specify at least one command for the container (podnet exec TARGET "
        "-- COMMAND [args...])\n")
