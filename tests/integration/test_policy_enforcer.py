"""NetworkPolicy enforced by the node agents, with real packets: a default-deny ingress and
its removal, a pod isolated before its first container starts, the table surviving an agent
killed with SIGKILL, and the policy-sync.json status file.

Address plan (the lab's defaults): LAN 172.18.0.0/24 (node-i at .10+i), pods in 10.244.0.0/16
(a /24 per node). Echo pods answer TCP on 8080. A denied connection is rejected with ICMP
admin-prohibited, which the client's kernel reports as EHOSTUNREACH, at once.

"Enforced" is what every node's `<node dir>/policy-sync.json` says: the kernel holds the state
compiled from objects up to its resourceVersion, so a test waits until that reaches the
resourceVersion its last write returned.
"""

from __future__ import annotations

import functools
import io
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from labkit import PORT, echo_pod, nft_table, run_in, wait_for

from podnet.cluster import lifecycle
from podnet.lab import names
from podnet.runtime import log_path

pytestmark = pytest.mark.integration

MakeLab = Callable[..., Any]  # the make_lab fixture

DENIED = "EHOSTUNREACH"  # ICMP admin-prohibited, as connect() reports it
NODES = ("node-1", "node-2")
# A container's first and only action: connect, print what happened.
CONNECT_FIRST = """
import errno, socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
    print("CONNECTED", flush=True)
except TimeoutError:
    print("TIMEOUT", flush=True)
except OSError as e:
    print(errno.errorcode.get(e.errno or 0, str(e.errno)), flush=True)
"""


# -- objects -----------------------------------------------------------------------------------

def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels}}


def policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name}, "spec": spec}


DENY_INGRESS = {"podSelector": {}, "policyTypes": ["Ingress"]}
DENY_EGRESS = {"podSelector": {}, "policyTypes": ["Egress"]}


def rv(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


# -- reading the lab ---------------------------------------------------------------------------

def sync_status(lab: Any, node: str) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(
            (lab.state.dir / "nodes" / node / "policy-sync.json").read_text())
        return data
    except (OSError, ValueError):
        return None


def enforced(lab: Any, revision: int, nodes: tuple[str, ...] = NODES) -> None:
    """Wait until every node enforces the state of the objects up to `revision`."""
    def done() -> bool:
        return all((s := sync_status(lab, n)) is not None and s["resourceVersion"] >= revision
                   for n in nodes)
    wait_for(f"policy enforced up to resourceVersion {revision} on {nodes}", done, timeout=30)


def pods_in(lab: Any, ns: str, wanted: list[str]) -> dict[str, dict[str, Any]]:
    def ready() -> dict[str, dict[str, Any]] | None:
        pods = {p["metadata"]["name"]: p for p in lab.client.list(lab.res("Pod"), ns)["items"]}
        ok = all(pods.get(n, {}).get("status", {}).get("podIP") for n in wanted)
        return pods if ok else None
    found: dict[str, dict[str, Any]] = wait_for(f"{wanted} with IPs in {ns}", ready)
    return found


def pod_ns(lab: Any, pod: dict[str, Any]) -> str:
    return names.pod_netns(lab.name, pod["metadata"]["uid"])


def node_ns(lab: Any, node: str) -> str:
    return names.node_netns(lab.name, node)


def connect(netns: str, ip: str, port: int = PORT) -> str | None:
    """None when the connection was made, else the error; a denial must come at once."""
    got = run_in(netns, "connect", ip, port)
    if got["error"] == DENIED:
        assert got["seconds"] < 0.5, got  # rejected, not dropped
    return got["error"]  # type: ignore[no-any-return]


def serving(netns: str, ip: str) -> bool:
    return connect(netns, ip) is None


def pol_objects(lab: Any, node: str) -> list[tuple[str, str]]:
    """(kind, name) of every policy object in a node's table, duplicates kept."""
    return sorted((kind, item[kind]["name"]) for item in nft_table(lab, node)["nftables"]
                  for kind in ("chain", "set", "map")
                  if kind in item and item[kind]["name"].startswith("pol-"))


def pol_elements(lab: Any, node: str, name: str) -> list[Any]:
    return [e for item in nft_table(lab, node)["nftables"] for kind in ("set", "map")
            if kind in item and item[kind]["name"] == name for e in item[kind].get("elem", [])]


def per_pod_chains(lab: Any, node: str) -> list[str]:
    return [n for kind, n in pol_objects(lab, node)
            if kind == "chain" and n.startswith(("pol-in-", "pol-eg-"))]


def hex8(ip: str) -> str:
    return "".join(f"{int(o):02x}" for o in ip.split("."))


# -- tests -------------------------------------------------------------------------------------

def test_default_deny_ingress_refuses_pods_but_not_the_own_node_and_goes_away(
        make_lab: MakeLab) -> None:
    lab = make_lab(nodes=2)
    lab.client.create(lab.res("Namespace"), None, namespace("np"))
    lab.client.create(lab.res("Pod"), "np", echo_pod("server", "node-1", {"app": "server"}))
    lab.client.create(lab.res("Pod"), "np", echo_pod("neighbour", "node-1", {"app": "n"}))
    lab.client.create(lab.res("Pod"), "default", echo_pod("client", "node-2", {"app": "c"}))
    np_pods = pods_in(lab, "np", ["server", "neighbour"])
    client = pods_in(lab, "default", ["client"])["client"]
    server_ip = np_pods["server"]["status"]["podIP"]
    sources = {"client on node-2": pod_ns(lab, client),
               "neighbour in np on node-1": pod_ns(lab, np_pods["neighbour"]),
               "node-2": node_ns(lab, "node-2")}
    for what, netns in sources.items():
        wait_for(f"{what} to reach the server", functools.partial(serving, netns, server_ip))

    created = lab.client.create(lab.res("NetworkPolicy"), "np", policy("deny", DENY_INGRESS))
    enforced(lab, rv(created))
    for what, netns in sources.items():
        assert connect(netns, server_ip) == DENIED, what
    # the server's own node (kubelet's probes), and the server itself, still get through
    assert connect(node_ns(lab, "node-1"), server_ip) is None
    assert connect(pod_ns(lab, np_pods["server"]), server_ip) is None
    # replies of allowed connections: the server reaches out and is answered
    assert connect(pod_ns(lab, np_pods["server"]), client["status"]["podIP"]) is None
    # both np pods are isolated on node-1; node-2 isolates nothing
    assert sorted(per_pod_chains(lab, "node-1")) == sorted(
        f"pol-in-{hex8(p['status']['podIP'])}" for p in np_pods.values())
    assert per_pod_chains(lab, "node-2") == []

    enforced(lab, rv(lab.client.delete(lab.res("NetworkPolicy"), "np", "deny")))
    for what, netns in sources.items():
        assert connect(netns, server_ip) is None, what
    assert per_pod_chains(lab, "node-1") == []
    assert pol_elements(lab, "node-1", "pol-ingress") == []


def test_a_new_pod_is_isolated_before_its_first_container_starts(make_lab: MakeLab) -> None:
    lab = make_lab(nodes=2)
    lab.client.create(lab.res("Namespace"), None, namespace("locked"))
    lab.client.create(lab.res("Pod"), "default", echo_pod("target", "node-2", {"app": "t"}))
    target = pods_in(lab, "default", ["target"])["target"]
    ip = target["status"]["podIP"]
    wait_for("target serving", lambda: serving(node_ns(lab, "node-2"), ip))
    created = lab.client.create(lab.res("NetworkPolicy"), "locked",
                                policy("deny-egress", DENY_EGRESS))
    enforced(lab, rv(created))

    def first_connect(name: str, ns: str, node: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                "spec": {"nodeName": node, "restartPolicy": "Never", "containers": [
                    {"name": "probe", "image": "python",
                     "command": [sys.executable, "-I", "-S", "-c", CONNECT_FIRST, ip,
                                 str(PORT)]}]}}

    # one pod per node in the locked namespace, and a control pod that no policy isolates
    runs = [("locked", "early-1", "node-1"), ("locked", "early-2", "node-2"),
            ("default", "control", "node-1")]
    for ns, name, node in runs:
        lab.client.create(lab.res("Pod"), ns, first_connect(name, ns, node))

    def output(ns: str, name: str, node: str) -> str | None:
        pod = lab.client.get(lab.res("Pod"), ns, name)
        if pod.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
            return None
        path = log_path(lab.state.dir / "nodes" / node, pod["metadata"]["uid"], "probe")
        return path.read_text().strip() or None

    got = {name: wait_for(f"{name}'s output", functools.partial(output, ns, name, node))
           for ns, name, node in runs}
    assert got == {"early-1": DENIED, "early-2": DENIED, "control": "CONNECTED"}


def test_the_table_survives_an_agent_killed_and_the_restart_adds_no_duplicates(
        make_lab: MakeLab) -> None:
    lab = make_lab(nodes=2)
    lab.client.create(lab.res("Namespace"), None, namespace("np"))
    lab.client.create(lab.res("Pod"), "np", echo_pod("server", "node-1", {"app": "server"}))
    for name in ("friend", "stranger"):
        lab.client.create(lab.res("Pod"), "default", echo_pod(name, "node-2", {"role": name}))
    server = pods_in(lab, "np", ["server"])["server"]
    others = pods_in(lab, "default", ["friend", "stranger"])
    server_ip = server["status"]["podIP"]
    friend, stranger = pod_ns(lab, others["friend"]), pod_ns(lab, others["stranger"])
    wait_for("the server serving", lambda: serving(friend, server_ip))
    created = lab.client.create(lab.res("NetworkPolicy"), "np", policy("deny", DENY_INGRESS))
    enforced(lab, rv(created))
    assert connect(friend, server_ip) == DENIED
    before = pol_objects(lab, "node-1")
    assert len(before) == len(set(before))
    assert ("chain", f"pol-in-{hex8(server_ip)}") in before

    pid = int(Path(lab.state.agent_pid("node-1")).read_text())
    os.kill(pid, signal.SIGKILL)
    wait_for("the agent gone", lambda: not lifecycle.pid_alive(pid), timeout=10)
    # no agent on node-1: the kernel goes on enforcing what it holds
    assert connect(friend, server_ip) == DENIED
    allow = lab.client.create(lab.res("NetworkPolicy"), "np", policy("allow-friend", {
        "podSelector": {"matchLabels": {"app": "server"}},
        "ingress": [{"from": [{"namespaceSelector": {}, "podSelector": {
            "matchLabels": {"role": "friend"}}}]}]}))
    lifecycle.up(lab.name, lab.root, out=io.StringIO())  # restarts the agent
    enforced(lab, rv(allow))
    assert connect(friend, server_ip) is None
    assert connect(stranger, server_ip) == DENIED
    after = pol_objects(lab, "node-1")
    assert after == before  # the same objects, each once
    assert len(pol_elements(lab, "node-1", "pol-ingress")) == 1


def test_policy_sync_status_follows_changes(make_lab: MakeLab) -> None:
    lab = make_lab(nodes=1)
    for name in ("a", "b"):
        lab.client.create(lab.res("Pod"), "default", echo_pod(name, "node-1", {"app": name}))
    pods_in(lab, "default", ["a", "b"])
    first = wait_for("policy-sync.json", lambda: sync_status(lab, "node-1"))
    assert set(first) >= {"resourceVersion", "pods", "policies", "isolated", "took_ms"}

    def counts() -> tuple[int, int, dict[str, int]]:
        s = sync_status(lab, "node-1")
        assert s is not None
        assert s["took_ms"] >= 0
        return s["pods"], s["policies"], s["isolated"]

    # every pod with an IP takes part (the cluster DNS's too); isolated counts are node-1's
    with_ip = [p for p in lab.client.list(lab.res("Pod"), None)["items"]
               if p.get("status", {}).get("podIP")]
    pods = len(with_ip)
    enforced(lab, max(rv(p) for p in with_ip), ("node-1",))
    assert counts() == (pods, 0, {"ingress": 0, "egress": 0})
    ingress_a = lab.client.create(lab.res("NetworkPolicy"), "default", policy("in-a", {
        "podSelector": {"matchLabels": {"app": "a"}}}))
    enforced(lab, rv(ingress_a), ("node-1",))
    assert counts() == (pods, 1, {"ingress": 1, "egress": 0})
    egress_all = lab.client.create(lab.res("NetworkPolicy"), "default",
                                   policy("out", DENY_EGRESS))
    enforced(lab, rv(egress_all), ("node-1",))
    assert counts() == (pods, 2, {"ingress": 1, "egress": 2})
    # a label change moves b under in-a
    relabelled = lab.client.patch(lab.res("Pod"), "default", "b",
                                  {"metadata": {"labels": {"app": "a"}}})
    enforced(lab, rv(relabelled), ("node-1",))
    assert counts() == (pods, 2, {"ingress": 2, "egress": 2})
    for name in ("in-a", "out"):
        deleted = lab.client.delete(lab.res("NetworkPolicy"), "default", name)
    enforced(lab, rv(deleted), ("node-1",))
    assert counts() == (pods, 0, {"ingress": 0, "egress": 0})
    assert per_pod_chains(lab, "node-1") == []


def test_a_change_above_the_threshold_goes_through_the_proxys_full_sync(
        make_lab: MakeLab, monkeypatch: pytest.MonkeyPatch) -> None:
    """With PODNET_POLICY_FULL_ABOVE=0 every policy change is applied by the proxy's full sync
    (the whole table in one transaction) instead of element diffs: the same verdicts, no
    duplicate objects, and the Services' objects still there."""
    monkeypatch.setenv("PODNET_POLICY_FULL_ABOVE", "0")  # the agents inherit it
    lab = make_lab(nodes=2)
    lab.client.create(lab.res("Namespace"), None, namespace("np"))
    lab.client.create(lab.res("Pod"), "np", echo_pod("server", "node-1", {"app": "server"}))
    lab.client.create(lab.res("Pod"), "default", echo_pod("client", "node-2", {"app": "c"}))
    server = pods_in(lab, "np", ["server"])["server"]
    client = pods_in(lab, "default", ["client"])["client"]
    server_ip = server["status"]["podIP"]
    wait_for("the client to reach the server",
             functools.partial(serving, pod_ns(lab, client), server_ip))
    log = lab.state.agent_log("node-1")
    offset = log.stat().st_size

    enforced(lab, rv(lab.client.create(lab.res("NetworkPolicy"), "np",
                                       policy("deny", DENY_INGRESS))))
    assert connect(pod_ns(lab, client), server_ip) == DENIED
    text = log.read_bytes()[offset:].decode(errors="replace")
    assert "goes into the proxy's full sync instead" in text, text[-2000:]
    assert "proxy: full sync" in text, text[-2000:]
    objects = pol_objects(lab, "node-1")
    assert len(objects) == len(set(objects)), objects  # no duplicates
    assert per_pod_chains(lab, "node-1") == [f"pol-in-{hex8(server_ip)}"]
    # the proxy's own objects came back with the table in the same transaction
    assert {"services", "check", "nat-prerouting"} <= {
        item["chain"]["name"] for item in nft_table(lab, "node-1")["nftables"]
        if "chain" in item}

    enforced(lab, rv(lab.client.delete(lab.res("NetworkPolicy"), "np", "deny")))
    assert connect(pod_ns(lab, client), server_ip) is None
    assert per_pod_chains(lab, "node-1") == []
