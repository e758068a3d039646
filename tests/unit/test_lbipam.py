"""LoadBalancer IP allocation (podnet.api.lbipam) and the pool's place in a cluster's settings.

Address plan: LAN 172.18.0.0/24, external host .2, node-i .10+i; the default pool is
.200-.249; most tables use POOL, the three addresses .200-.202.

Allocation tables list Services oldest first unless a creation time says otherwise, and
expect, per Service, the address it gets or "!" and the message of the Event saying why not.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from podnet.api import lbipam
from podnet.api.lbipam import Event, parse_pool
from podnet.cli import main as cli
from podnet.cluster.state import (
    ClusterConfig,
    LabSettings,
    StateError,
    check_lb_pool,
    default_lb_pool,
    ensure,
)

LAN = "172.18.0.0/24"
POOL = parse_pool("172.18.0.200-172.18.0.202")
NOW = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def service(name: str, *, created: str = "", uid: str = "", type_: str = "LoadBalancer",
            ip: str | list[str] | None = None, lb_ip: str | None = None,
            cls: str | None = None, status: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Service as the API serves it. `ip`: the address(es) its status shows."""
    spec: dict[str, Any] = {"type": type_, "ports": [{"port": 80}]}
    if lb_ip is not None:
        spec["loadBalancerIP"] = lb_ip
    if cls is not None:
        spec["loadBalancerClass"] = cls
    ips = [ip] if isinstance(ip, str) else ip or []
    lb = status if status is not None else (
        {"ingress": [{"ip": i, "ipMode": "VIP"} for i in ips]} if ips else {})
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "uid": uid or f"uid-{name}",
                         "creationTimestamp": created},
            "spec": spec, "status": {"loadBalancer": lb}}


def allocate(objs: list[dict[str, Any]], pool: lbipam.Pool = POOL) -> dict[str, str | None]:
    """name -> the address it gets, "!message" when none, None when it is left alone."""
    for i, obj in enumerate(objs):  # listed oldest first unless a time is given
        obj["metadata"]["creationTimestamp"] = obj["metadata"]["creationTimestamp"] or \
            f"2024-01-01T00:00:{i:02d}Z"
    records = [r for r in map(lbipam.record, objs) if r is not None]
    out: dict[str, str | None] = {o["metadata"]["name"]: None for o in objs}
    for outcome in lbipam.allocate(pool, reversed(records)):  # order given must not matter
        out[outcome.service.name] = outcome.ip or f"!{outcome.problem}"
    return out


# -- allocation -------------------------------------------------------------------------------


@pytest.mark.parametrize(("services", "expected"), [
    pytest.param([service("a"), service("b"), service("c")],
                 {"a": "172.18.0.200", "b": "172.18.0.201", "c": "172.18.0.202"},
                 id="lowest-free-oldest-first"),
    pytest.param([service("a", created="2024-01-02T00:00:00Z"),
                  service("b", created="2024-01-01T00:00:00Z")],
                 {"b": "172.18.0.200", "a": "172.18.0.201"}, id="by-creation-time"),
    pytest.param([service("a", created="2024-01-01T00:00:00Z", uid="2"),
                  service("b", created="2024-01-01T00:00:00Z", uid="1")],
                 {"b": "172.18.0.200", "a": "172.18.0.201"}, id="same-time-by-uid"),
    pytest.param([service("a", ip="172.18.0.202"), service("b"), service("c")],
                 {"a": "172.18.0.202", "b": "172.18.0.200", "c": "172.18.0.201"},
                 id="status-is-kept"),
    pytest.param([service("a"), service("b", ip="172.18.0.200")],
                 {"a": "172.18.0.201", "b": "172.18.0.200"},
                 id="status-is-kept-even-by-a-younger-service"),
    pytest.param([service("a", ip="172.18.0.201"), service("b", ip="172.18.0.201")],
                 {"a": "172.18.0.201", "b": "172.18.0.200"}, id="conflict-older-keeps"),
    pytest.param([service("a", created="2024-01-01T00:00:00Z", uid="2", ip="172.18.0.201"),
                  service("b", created="2024-01-01T00:00:00Z", uid="1", ip="172.18.0.201")],
                 {"b": "172.18.0.201", "a": "172.18.0.200"}, id="conflict-same-time-by-uid"),
    pytest.param([service("a", ip="10.0.0.1"), service("b")],
                 {"a": "172.18.0.200", "b": "172.18.0.201"}, id="status-outside-pool-replaced"),
    pytest.param([service("a", ip=["10.0.0.1", "172.18.0.202", "172.18.0.201"])],
                 {"a": "172.18.0.202"}, id="first-address-of-the-pool-in-status"),
    pytest.param([service("a", lb_ip="172.18.0.202"), service("b")],
                 {"a": "172.18.0.202", "b": "172.18.0.200"}, id="loadBalancerIP-honoured"),
    pytest.param([service("a"), service("b", lb_ip="172.18.0.200")],
                 {"a": "172.18.0.201", "b": "172.18.0.200"},
                 id="loadBalancerIP-before-the-lowest-free"),
    pytest.param([service("a", lb_ip="172.18.0.201", ip="172.18.0.201")],
                 {"a": "172.18.0.201"}, id="loadBalancerIP-already-held"),
    pytest.param([service("a", lb_ip="172.18.0.202", ip="172.18.0.200"), service("b")],
                 {"a": "172.18.0.202", "b": "172.18.0.200"}, id="loadBalancerIP-changed-moves"),
    pytest.param([service("a", lb_ip="10.1.2.3"), service("b")],
                 {"a": "!failed to allocate IP 10.1.2.3 (spec.loadBalancerIP): it is not in "
                       "the pool 172.18.0.200-172.18.0.202",
                  "b": "172.18.0.200"}, id="loadBalancerIP-outside-pool"),
    pytest.param([service("a", lb_ip="10.1.2.3", ip="172.18.0.200")],
                 {"a": "!failed to allocate IP 10.1.2.3 (spec.loadBalancerIP): it is not in "
                       "the pool 172.18.0.200-172.18.0.202"},
                 id="loadBalancerIP-outside-pool-loses-its-address"),
    pytest.param([service("a", lb_ip="fd00::1")],
                 {"a": "!failed to allocate IP fd00::1 (spec.loadBalancerIP): it is not in "
                       "the pool 172.18.0.200-172.18.0.202"}, id="loadBalancerIP-ipv6"),
    pytest.param([service("a", ip="172.18.0.201"), service("b", lb_ip="172.18.0.201")],
                 {"a": "172.18.0.201",
                  "b": "!failed to allocate IP 172.18.0.201 (spec.loadBalancerIP): it is already "
                       "in use by default/a"}, id="loadBalancerIP-held-by-another"),
    pytest.param([service("a", lb_ip="172.18.0.201"), service("b", lb_ip="172.18.0.201")],
                 {"a": "172.18.0.201",
                  "b": "!failed to allocate IP 172.18.0.201 (spec.loadBalancerIP): it is already "
                       "in use by default/a"}, id="loadBalancerIP-asked-twice-older-wins"),
    pytest.param([service("a"), service("b"), service("c"), service("d")],
                 {"a": "172.18.0.200", "b": "172.18.0.201", "c": "172.18.0.202",
                  "d": "!no available IPs in pool 172.18.0.200-172.18.0.202"}, id="exhausted"),
    pytest.param([service("a"), service("b", ip="172.18.0.200"), service("c", ip="172.18.0.201"),
                  service("d", ip="172.18.0.202")],
                 {"a": "!no available IPs in pool 172.18.0.200-172.18.0.202",
                  "b": "172.18.0.200", "c": "172.18.0.201", "d": "172.18.0.202"},
                 id="exhausted-older-without-address-waits"),
    pytest.param([service("a", ip="172.18.0.200", type_="ClusterIP"), service("b")],
                 {"a": "!", "b": "172.18.0.200"}, id="type-changed-releases"),
    pytest.param([service("a", type_="NodePort"), service("b", type_="ClusterIP")],
                 {"a": None, "b": None}, id="not-load-balancers-ignored"),
    pytest.param([service("a", cls="example.com/other"), service("b")],
                 {"a": None, "b": "172.18.0.200"}, id="other-class-ignored"),
    pytest.param([service("a", cls="example.com/other", ip="172.18.0.200"), service("b")],
                 {"a": None, "b": "172.18.0.201"}, id="other-class-address-left-to-it"),
    pytest.param([service("a", cls="example.com/other", ip="172.18.0.200"),
                  service("b", lb_ip="172.18.0.200")],
                 {"a": None, "b": "!failed to allocate IP 172.18.0.200 (spec.loadBalancerIP): "
                                  "it is already in use by default/a"},
                 id="other-class-address-not-asked-for"),
    pytest.param([service("a", cls="example.com/other", ip="172.18.0.200"),
                  service("b", ip="172.18.0.200")],
                 {"a": None, "b": "172.18.0.200"}, id="ours-keeps-what-another-class-shows"),
])
def test_allocate(services: list[dict[str, Any]], expected: dict[str, str | None]) -> None:
    assert allocate(services) == expected


def test_releasing_frees_the_address_for_the_next() -> None:
    a, b, c = service("a"), service("b"), service("c")
    first = allocate([a, b, c])
    assert first == {"a": "172.18.0.200", "b": "172.18.0.201", "c": "172.18.0.202"}
    # a is deleted, the others show what they got, a new Service comes
    b, c = service("b", ip="172.18.0.201"), service("c", ip="172.18.0.202")
    assert allocate([b, c, service("d")]) == {
        "b": "172.18.0.201", "c": "172.18.0.202", "d": "172.18.0.200"}


def test_a_larger_pool_of_several_ranges() -> None:
    pool = parse_pool("172.18.0.230/31,172.18.0.210")
    assert allocate([service(n) for n in "abcd"], pool) == {
        "a": "172.18.0.210", "b": "172.18.0.230", "c": "172.18.0.231",
        "d": "!no available IPs in pool 172.18.0.210,172.18.0.230-172.18.0.231"}


def test_outcomes_free_addresses_first_then_hand_them_out() -> None:
    objs = [service("a", ip="172.18.0.201"), service("b", ip="172.18.0.201"),
            service("c", ip="172.18.0.200", type_="ClusterIP"), service("d")]
    for i, o in enumerate(objs):
        o["metadata"]["creationTimestamp"] = f"2024-01-01T00:00:0{i}Z"
    records = [r for r in map(lbipam.record, objs) if r is not None]
    outcomes = lbipam.allocate(POOL, records)
    assert [(o.service.name, o.ip) for o in outcomes] == [
        ("c", None), ("a", "172.18.0.201"), ("b", "172.18.0.200"), ("d", "172.18.0.202")]


# -- what is written ----------------------------------------------------------------------------


def outcome(obj: dict[str, Any], pool: lbipam.Pool = POOL) -> lbipam.Outcome:
    record = lbipam.record(obj)
    assert record is not None
    return lbipam.allocate(pool, [record])[0]


@pytest.mark.parametrize(("obj", "load_balancer", "changed", "event"), [
    pytest.param(service("a"), {"ingress": [{"ip": "172.18.0.200", "ipMode": "VIP"}]}, True,
                 Event("Normal", "IPAllocated",
                       "assigned IP 172.18.0.200 from pool 172.18.0.200-172.18.0.202"),
                 id="new"),
    pytest.param(service("a", ip="172.18.0.200"),
                 {"ingress": [{"ip": "172.18.0.200", "ipMode": "VIP"}]}, False, None,
                 id="already-written"),
    pytest.param(service("a", status={"ingress": [{"ip": "172.18.0.200", "ipMode": "Proxy"}]}),
                 {"ingress": [{"ip": "172.18.0.200", "ipMode": "VIP"}]}, True, None,
                 id="rewritten-without-a-new-address"),
    pytest.param(service("a", lb_ip="10.0.0.1"), {}, False,
                 Event("Warning", "AllocationFailed",
                       "failed to allocate IP 10.0.0.1 (spec.loadBalancerIP): it is not in "
                       "the pool 172.18.0.200-172.18.0.202"), id="failed"),
    pytest.param(service("a", lb_ip="10.0.0.1", ip="172.18.0.200"), {}, True,
                 Event("Warning", "AllocationFailed",
                       "failed to allocate IP 10.0.0.1 (spec.loadBalancerIP): it is not in "
                       "the pool 172.18.0.200-172.18.0.202"), id="failed-and-cleared"),
    pytest.param(service("a", type_="ClusterIP", ip="172.18.0.200"), {}, True, None,
                 id="released"),
    pytest.param(service("a", type_="ClusterIP", status={"ingress": [{"hostname": "x.y"}]}),
                 {}, True, None, id="released-hostname"),
])
def test_what_is_written(obj: dict[str, Any], load_balancer: dict[str, Any], changed: bool,
                         event: Event | None) -> None:
    o = outcome(obj)
    assert (o.load_balancer, o.changed, o.event) == (load_balancer, changed, event)


@pytest.mark.parametrize(("obj", "role"), [
    pytest.param(service("a"), lbipam.OURS, id="ours"),
    pytest.param(service("a", ip="172.18.0.200", cls="x.io/lb"), lbipam.FOREIGN, id="foreign"),
    pytest.param(service("a", type_="ClusterIP", ip="172.18.0.200"), lbipam.OTHER,
                 id="other-with-status"),
    pytest.param(service("a", cls="x.io/lb"), None, id="foreign-without-address"),
    pytest.param(service("a", type_="ClusterIP"), None, id="other-without-status"),
    pytest.param({"metadata": {"name": "a", "namespace": "default"}, "spec": {}}, None,
                 id="bare"),
])
def test_record(obj: dict[str, Any], role: str | None) -> None:
    record = lbipam.record(obj)
    assert (record.role if record else None) == role


def test_record_fields() -> None:
    obj = service("a", lb_ip="172.18.0.201", ip=["172.18.0.200"], created="2024-05-06T07:08:09Z")
    obj["status"]["loadBalancer"]["ingress"].append({"hostname": "lb.example.com"})
    assert lbipam.record(obj) == lbipam.LbService(
        namespace="default", name="a", uid="uid-a", created="2024-05-06T07:08:09Z",
        role=lbipam.OURS, requested="172.18.0.201", ingress=("172.18.0.200",),
        load_balancer=obj["status"]["loadBalancer"])


# -- pools --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "canonical", "size"), [
    pytest.param("172.18.0.200/29", "172.18.0.200-172.18.0.207", 8, id="cidr"),
    pytest.param("172.18.0.200-172.18.0.249", "172.18.0.200-172.18.0.249", 50, id="range"),
    pytest.param("172.18.0.7", "172.18.0.7", 1, id="address"),
    pytest.param("172.18.0.7/32", "172.18.0.7", 1, id="slash-32"),
    pytest.param(" 172.18.0.220 , 172.18.0.200 - 172.18.0.201 ",
                 "172.18.0.200-172.18.0.201,172.18.0.220", 3, id="spaces-sorted"),
    pytest.param("172.18.0.200-172.18.0.205,172.18.0.203-172.18.0.210",
                 "172.18.0.200-172.18.0.210", 11, id="overlapping-merged"),
    pytest.param("172.18.0.200/30,172.18.0.204/30", "172.18.0.200-172.18.0.207", 8,
                 id="adjacent-merged"),
])
def test_parse_pool(text: str, canonical: str, size: int) -> None:
    pool = parse_pool(text)
    assert (str(pool), len(pool)) == (canonical, size)
    assert parse_pool(str(pool)) == pool


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("", "the pool is empty", id="empty"),
    pytest.param("172.18.0.1,,172.18.0.2", "the pool has an empty entry", id="empty-entry"),
    pytest.param("lots", "lots is not a CIDR, a range A-B or an address", id="garbage"),
    pytest.param("172.18.0.9-", "172.18.0.9- is not a CIDR, a range A-B or an address",
                 id="half-range"),
    pytest.param("172.18.0.9-172.18.0.3", "the range 172.18.0.9-172.18.0.3 ends before it starts",
                 id="backwards"),
    pytest.param("172.18.0.0/33", "172.18.0.0/33 is not a valid CIDR", id="bad-prefix"),
    pytest.param("172.18.0.1/24", "172.18.0.1/24 has host bits set (the network is "
                 "172.18.0.0/24)", id="host-bits"),
    pytest.param("fd00::/120", "fd00::/120 is not IPv4 (the LAN is IPv4)", id="ipv6-cidr"),
    pytest.param("fd00::1-fd00::9", "fd00::1-fd00::9 is not IPv4 (the LAN is IPv4)",
                 id="ipv6-range"),
    pytest.param("172.18.0.300", "172.18.0.300 is not a CIDR, a range A-B or an address",
                 id="bad-octet"),
])
def test_parse_pool_errors(text: str, message: str) -> None:
    with pytest.raises(lbipam.PoolError) as e:
        parse_pool(text)
    assert str(e.value) == message


@pytest.mark.parametrize(("ip", "inside"), [
    ("172.18.0.200", True), ("172.18.0.202", True), ("172.18.0.199", False),
    ("172.18.0.203", False), ("fd00::1", False), ("nonsense", False), ("", False),
])
def test_pool_contains(ip: str, inside: bool) -> None:
    assert (ip in POOL) is inside


def test_pool_addresses_in_order() -> None:
    assert list(parse_pool("10.0.0.9,10.0.0.254-10.0.1.1").addresses()) == [
        "10.0.0.9", "10.0.0.254", "10.0.0.255", "10.0.1.0", "10.0.1.1"]


@pytest.mark.parametrize(("lan", "pool"), [
    pytest.param("172.18.0.0/24", "172.18.0.200-172.18.0.249", id="default-lan"),
    pytest.param("10.20.0.0/16", "10.20.0.200-10.20.0.249", id="larger-lan"),
])
def test_default_pool(lan: str, pool: str) -> None:
    assert default_lb_pool(lan) == pool


# -- the pool in a cluster's settings -----------------------------------------------------------


@pytest.mark.parametrize(("text", "nodes", "canonical"), [
    pytest.param("172.18.0.200/29", 2, "172.18.0.200-172.18.0.207", id="cidr"),
    pytest.param("172.18.0.13-172.18.0.20", 2, "172.18.0.13-172.18.0.20", id="above-the-nodes"),
    pytest.param("172.18.0.3-172.18.0.10", 2, "172.18.0.3-172.18.0.10", id="between"),
    pytest.param("172.18.0.11", 0, "172.18.0.11", id="no-nodes"),
])
def test_check_lb_pool(text: str, nodes: int, canonical: str) -> None:
    assert check_lb_pool(text, LAN, nodes) == canonical


@pytest.mark.parametrize(("text", "nodes", "message"), [
    pytest.param("172.19.0.0/29", 2, "172.19.0.0-172.19.0.7 is not inside the LAN "
                 "172.18.0.0/24", id="outside-the-lan"),
    pytest.param("172.18.0.250-172.18.1.3", 2, "172.18.0.250-172.18.1.3 is not inside the LAN "
                 "172.18.0.0/24", id="partly-outside"),
    pytest.param("172.18.0.12-172.18.0.20", 3, "it holds 172.18.0.12, node-2's address; it "
                 "holds 172.18.0.13, node-3's address", id="nodes"),
    pytest.param("172.18.0.2", 0, "it holds 172.18.0.2, the external host's address",
                 id="external"),
    pytest.param("172.18.0.0/30", 0, "it holds 172.18.0.0, the LAN's network address; it holds "
                 "172.18.0.2, the external host's address", id="network-address"),
    pytest.param("172.18.0.255", 0, "it holds 172.18.0.255, the LAN's broadcast address",
                 id="broadcast"),
    pytest.param("fd00::/120", 0, "fd00::/120 is not IPv4 (the LAN is IPv4)", id="ipv6"),
])
def test_check_lb_pool_errors_name_the_value(text: str, nodes: int, message: str) -> None:
    with pytest.raises(StateError) as e:
        check_lb_pool(text, LAN, nodes)
    assert str(e.value) == f"invalid LoadBalancer pool {text!r}: {message}"


def test_a_new_cluster_records_a_chosen_pool(tmp_path: Path) -> None:
    s = ensure("c1", tmp_path, now=NOW,
               lab=LabSettings(nodes=2, lb_pool="172.18.0.100/30, 172.18.0.110"))
    assert json.loads(s.cluster_json.read_text())["lb_pool"] == \
        "172.18.0.100-172.18.0.103,172.18.0.110"
    assert s.load().load_balancer_pool == "172.18.0.100-172.18.0.103,172.18.0.110"


def test_a_new_cluster_without_a_pool_has_the_lans_default(tmp_path: Path) -> None:
    s = ensure("c1", tmp_path, now=NOW, lab=LabSettings(nodes=2, lan_cidr="10.9.0.0/24"))
    assert "lb_pool" not in json.loads(s.cluster_json.read_text())
    assert s.load().load_balancer_pool == "10.9.0.200-10.9.0.249"
    assert ClusterConfig.from_dict({"name": "old", "port": 1}).load_balancer_pool == \
        "172.18.0.200-172.18.0.249"


def test_an_existing_cluster_refuses_another_pool(tmp_path: Path) -> None:
    ensure("c1", tmp_path, now=NOW, lab=LabSettings(nodes=2, lb_pool="172.18.0.100/30"))
    same = "172.18.0.100-172.18.0.101,172.18.0.102/31"  # written otherwise, the same addresses
    assert ensure("c1", tmp_path, now=NOW, lab=LabSettings(lb_pool=same)).exists()
    with pytest.raises(StateError) as e:
        ensure("c1", tmp_path, now=NOW, lab=LabSettings(lb_pool="172.18.0.104/29"))
    assert str(e.value) == ('cluster "c1" exists with LoadBalancer pool '
                            '172.18.0.100-172.18.0.103; remove it (podnet down) to change that')
    with pytest.raises(StateError) as e:
        ensure("c1", tmp_path, now=NOW, lab=LabSettings(lb_pool="x"))
    assert str(e.value) == ("invalid LoadBalancer pool 'x': x is not a CIDR, a range A-B or an "
                            "address")


def test_an_existing_default_pool_refuses_another(tmp_path: Path) -> None:
    ensure("c1", tmp_path, now=NOW, lab=LabSettings(nodes=2))
    assert ensure("c1", tmp_path, now=NOW,
                  lab=LabSettings(lb_pool="172.18.0.200-172.18.0.249")).exists()
    with pytest.raises(StateError) as e:
        ensure("c1", tmp_path, now=NOW, lab=LabSettings(lb_pool="172.18.0.200/29"))
    assert str(e.value) == ('cluster "c1" exists with LoadBalancer pool '
                            '172.18.0.200-172.18.0.249; remove it (podnet down) to change that')


def test_a_bad_pool_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(StateError) as e:
        ensure("c1", tmp_path, now=NOW, lab=LabSettings(nodes=2, lb_pool="172.18.0.10/29"))
    assert str(e.value) == ("invalid LoadBalancer pool '172.18.0.10/29': 172.18.0.10/29 has "
                            "host bits set (the network is 172.18.0.8/29)")
    assert not (tmp_path / "c1" / "cluster.json").exists()
    with pytest.raises(StateError) as e:
        ensure("c1", tmp_path, now=NOW, lab=LabSettings(nodes=2, lb_pool="172.18.0.8/29"))
    assert str(e.value) == ("invalid LoadBalancer pool '172.18.0.8/29': it holds 172.18.0.11, "
                            "node-1's address; it holds 172.18.0.12, node-2's address")
    assert not (tmp_path / "c1" / "cluster.json").exists()


def test_up_option() -> None:
    args = cli.build_parser().parse_args(["up", "--lb-pool", "172.18.0.100/30,172.18.0.120"])
    assert args.lb_pool == "172.18.0.100/30,172.18.0.120"
    assert cli.build_parser().parse_args(["up"]).lb_pool is None
