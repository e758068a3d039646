"""Routes to other nodes' pod CIDRs: desired state and the commands that reach it."""

from __future__ import annotations

from podnet.agent.node import ready_condition
from podnet.agent.routes import Peer, commands, desired

PEERS = [Peer("node-2", "172.18.0.12", "10.244.1.0/24", "aa:bb:cc:00:00:02"),
         Peer("node-3", "172.18.0.13", "10.244.2.0/24", None)]


def test_host_gw_routes_via_peer_lan_ips():
    want = desired("host-gw", PEERS)
    assert want.routes == {"10.244.1.0/24": "via 172.18.0.12 dev eth0",
                           "10.244.2.0/24": "via 172.18.0.13 dev eth0"}
    assert want.neighbours == {} and want.fdb == {}


def test_vxlan_routes_need_the_peers_vtep_mac():
    want = desired("vxlan", PEERS)
    # node-3 has not published its MAC yet: no route to it until it has.
    assert want.routes == {"10.244.1.0/24": "via 10.244.1.0 dev vxlan0 onlink"}
    assert want.neighbours == {"10.244.1.0": "aa:bb:cc:00:00:02"}
    assert want.fdb == {"aa:bb:cc:00:00:02": "172.18.0.12"}


def test_commands_add_what_is_missing_and_remove_only_our_stale_routes():
    want = desired("vxlan", PEERS)
    ip_cmds, br_cmds = commands(want, {"10.244.1.0/24", "10.244.9.0/24"},
                                {"10.244.9.0": "aa:bb:cc:00:00:09"},
                                {"aa:bb:cc:00:00:09": "172.18.0.19"})
    assert ip_cmds == [
        "route replace 10.244.1.0/24 via 10.244.1.0 dev vxlan0 onlink proto 44",
        "route del 10.244.9.0/24 proto 44",
        "neigh replace 10.244.1.0 lladdr aa:bb:cc:00:00:02 dev vxlan0 nud permanent",
        "neigh del 10.244.9.0 dev vxlan0",
    ]
    assert br_cmds == [
        "fdb replace aa:bb:cc:00:00:02 dev vxlan0 dst 172.18.0.12 self permanent",
        "fdb del aa:bb:cc:00:00:09 dev vxlan0 self",
    ]


def test_ready_condition_keeps_its_transition_time_while_unchanged():
    first = ready_condition(True, "KubeletReady", "ok", "2026-01-01T00:00:00Z", None)
    later = ready_condition(True, "KubeletReady", "ok", "2026-01-01T00:00:10Z", first)
    assert later[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert later[0]["lastHeartbeatTime"] == "2026-01-01T00:00:10Z"
    flipped = ready_condition(False, "NetworkNotReady", "x", "2026-01-01T00:00:20Z", later)
    assert flipped[0]["lastTransitionTime"] == "2026-01-01T00:00:20Z"
    assert flipped[0]["status"] == "False"
