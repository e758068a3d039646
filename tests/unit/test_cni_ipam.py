"""podnet-cni's built-in IPAM (podnet.cni.ipam): configuration, allocation order, leases on
disk (in a temporary directory), exhaustion, GC, and concurrent allocation from separate
processes. No kernel, no network."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest

from podnet.cni import ipam, plugin, spec
from podnet.cni.ipam import IpamConfig, LeaseStore
from podnet.cni.spec import CniError


def cfg(tmp: Path | None = None, **ipam_conf: Any) -> IpamConfig:
    obj: dict[str, Any] = {"type": "podnet", **ipam_conf}
    if tmp is not None:
        obj["dataDir"] = str(tmp)
    return ipam.parse_config(obj, "podnet")


def ips(config: IpamConfig, last: int | None = None) -> list[str]:
    return [spec.int_to_ip4(ip) for ip, _ in ipam.candidates(config.ranges, last)]


# -- configuration -----------------------------------------------------------------------------
def test_defaults() -> None:
    c = cfg(subnet="10.244.1.0/24")
    (r,) = c.ranges
    assert (r.subnet, spec.int_to_ip4(r.gateway)) == ("10.244.1.0/24", "10.244.1.1")
    assert (spec.int_to_ip4(r.start), spec.int_to_ip4(r.end)) == ("10.244.1.1", "10.244.1.254")
    assert c.size() == 253
    assert c.routes == [(0, 0, 0)]
    assert c.data_dir == "/var/lib/cni/podnet"
    assert c.describe() == "10.244.1.0/24"


def test_host_local_shape() -> None:
    c = cfg(ranges=[[{"subnet": "10.244.1.0/29", "rangeStart": "10.244.1.3",
                      "rangeEnd": "10.244.1.5", "gateway": "10.244.1.6"},
                     {"subnet": "10.244.2.0/30"}]],
            routes=[{"dst": "10.96.0.0/12"}, {"dst": "0.0.0.0/0", "gw": "10.244.1.6"}],
            dataDir="/srv/ipam")
    assert [r.subnet for r in c.ranges] == ["10.244.1.0/29", "10.244.2.0/30"]
    assert c.size() == 3 + 1
    assert c.describe() == "10.244.1.0/29 (10.244.1.3-10.244.1.5), 10.244.2.0/30"
    assert c.routes == [(spec.ip4_to_int("10.96.0.0"), 12, 0),
                        (0, 0, spec.ip4_to_int("10.244.1.6"))]
    assert ips(c) == ["10.244.1.3", "10.244.1.4", "10.244.1.5", "10.244.2.2"]


@pytest.mark.parametrize(("conf", "code", "msg"), [
    pytest.param({}, 7, "ipam.ranges: required (or ipam.subnet), e.g. "
                 "[[{\"subnet\": \"10.244.1.0/24\"}]]", id="nothing"),
    pytest.param({"subnet": "10.244.1.5/24"}, 7, "ipam.subnet: 10.244.1.5/24 has host bits "
                 "set; want 10.244.1.0/24", id="host-bits"),
    pytest.param({"subnet": "10.244.1.0/31"}, 7, "ipam.subnet: 10.244.1.0/31 is too small: "
                 "want a /30 or larger (a gateway and at least one address)", id="too-small"),
    pytest.param({"subnet": "10.244.1.0/24", "gateway": "10.244.2.1"}, 7, "ipam.gateway: "
                 "10.244.2.1 is not a host address of 10.244.1.0/24", id="gateway-outside"),
    pytest.param({"subnet": "10.244.1.0/24", "rangeStart": "10.244.1.9",
                  "rangeEnd": "10.244.1.8"}, 7, "ipam.rangeStart: 10.244.1.9 is after "
                 "rangeEnd 10.244.1.8", id="reversed"),
    pytest.param({"subnet": "10.244.1.0/24", "rangeStart": "10.244.1.1",
                  "rangeEnd": "10.244.1.1"}, 7, "ipam: the range holds no address besides the "
                 "gateway", id="only-gateway"),
    pytest.param({"subnet": "10.244.1.0/24", "exclude": ["10.244.1.7"]}, 2,
                 "unsupported field ipam.exclude: ['10.244.1.7'] (podnet IPAM knows dataDir, "
                 "gateway, rangeEnd, rangeStart, ranges, routes, subnet, type)", id="unknown"),
    pytest.param({"ranges": [[{"subnet": "10.244.1.0/24", "foo": 1}]]}, 2,
                 "unsupported field ipam.ranges[0][0].foo: 1 (podnet IPAM knows gateway, "
                 "rangeEnd, rangeStart, subnet)", id="unknown-in-range"),
    pytest.param({"ranges": [[{"subnet": "10.244.1.0/24"}], [{"subnet": "10.244.2.0/24"}]]},
                 2, "unsupported field ipam.ranges: [[{'subnet': '10.244.1.0/24'}], "
                 "[{'subnet': '10.244.2.0/24'}]] (podnet IPAM serves one IPv4 range set)",
                 id="two-sets"),
    pytest.param({"ranges": [[{"subnet": "10.244.1.0/24"}]], "subnet": "10.244.1.0/24"}, 7,
                 "ipam: give either ranges or subnet, not both", id="both"),
    pytest.param({"ranges": [[{"subnet": "10.244.0.0/16"}, {"subnet": "10.244.1.0/24"}]]}, 7,
                 "ipam.ranges: 10.244.0.0/16 and 10.244.1.0/24 overlap", id="overlap"),
    pytest.param({"ranges": []}, 7, "ipam.ranges: must be a list of range sets, each a "
                 "non-empty list of ranges", id="empty-ranges"),
    pytest.param({"subnet": "10.244.1.0/24", "routes": [{"gw": "10.0.0.1"}]}, 7,
                 "ipam.routes[0]: want {\"dst\": CIDR, \"gw\": IP}", id="route-no-dst"),
    pytest.param({"subnet": "10.244.1.0/24", "dataDir": "ipam"}, 7, "ipam.dataDir: want an "
                 "absolute path, got 'ipam'", id="relative-dir"),
    pytest.param({"subnet": "fd00::/64"}, 7, "ipam.subnet: invalid IPv4 CIDR 'fd00::/64'",
                 id="ipv6"),
])
def test_config_rejects(conf: dict[str, Any], code: int, msg: str) -> None:
    with pytest.raises(CniError) as e:
        cfg(**conf)
    assert (e.value.code, e.value.msg) == (code, msg)


@pytest.mark.parametrize(("last", "want"), [
    pytest.param(None, ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"],
                 id="from-start"),
    pytest.param("10.0.0.4", ["10.0.0.5", "10.0.0.6", "10.0.0.2", "10.0.0.3", "10.0.0.4"],
                 id="round-robin"),
    pytest.param("10.0.0.6", ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"],
                 id="wrap-at-end"),
    pytest.param("10.9.9.9", ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"],
                 id="last-outside"),
])
def test_candidates(last: str | None, want: list[str]) -> None:
    c = cfg(subnet="10.0.0.0/29")
    assert ips(c, spec.ip4_to_int(last) if last else None) == want


def test_candidates_across_ranges() -> None:
    c = cfg(ranges=[[{"subnet": "10.0.0.0/30"}, {"subnet": "10.0.1.0/30"},
                     {"subnet": "10.0.2.0/29", "rangeEnd": "10.0.2.3"}]])
    assert ips(c, spec.ip4_to_int("10.0.1.2")) == ["10.0.2.2", "10.0.2.3", "10.0.0.2",
                                                   "10.0.1.2"]


# -- the store ---------------------------------------------------------------------------------
def lease_files(tmp: Path) -> list[str]:
    d = tmp / "podnet"
    return sorted(n for n in os.listdir(d) if not n.startswith(".")) if d.exists() else []


def test_allocate_release(tmp_path: Path) -> None:
    c = cfg(tmp_path, subnet="10.244.1.0/29")
    store = LeaseStore(str(tmp_path), "podnet")
    got = [spec.int_to_ip4(store.allocate(c, f"c{i}", "eth0")[0]) for i in range(3)]
    assert got == ["10.244.1.2", "10.244.1.3", "10.244.1.4"]
    assert lease_files(tmp_path) == ["10.244.1.2@c0@eth0", "10.244.1.3@c1@eth0",
                                     "10.244.1.4@c2@eth0"]
    # the same attachment keeps its lease; another interface of it gets its own
    assert spec.int_to_ip4(store.allocate(c, "c1", "eth0")[0]) == "10.244.1.3"
    assert spec.int_to_ip4(store.allocate(c, "c1", "net1")[0]) == "10.244.1.5"
    found = store.find("c1", "net1")
    assert found is not None and found.ip == "10.244.1.5"
    assert [lease.ip for lease in store.release("c1", "eth0")] == ["10.244.1.3"]
    assert store.release("c1", "eth0") == []  # DEL twice
    assert store.find("c1", "eth0") is None
    # round-robin: the freed .3 is not handed out again before the others
    assert spec.int_to_ip4(store.allocate(c, "c9", "eth0")[0]) == "10.244.1.6"
    assert spec.int_to_ip4(store.allocate(c, "c10", "eth0")[0]) == "10.244.1.3"
    assert store.usage(c) == (5, 5)


def test_exhaustion(tmp_path: Path) -> None:
    c = cfg(tmp_path, subnet="10.244.9.0/30")
    store = LeaseStore(str(tmp_path), "podnet")
    ip, rng = store.allocate(c, "a", "eth0")
    assert (spec.int_to_ip4(ip), spec.int_to_ip4(rng.gateway)) == ("10.244.9.2", "10.244.9.1")
    with pytest.raises(CniError) as e:
        store.allocate(c, "b", "eth0")
    assert e.value.code == spec.ERR_TRY_AGAIN_LATER
    assert e.value.msg == ("no free IP address in 10.244.9.0/30 for network podnet: all 1 "
                           "addresses are leased")
    assert e.value.details == (f"1 leases in {tmp_path}/podnet; an address is free again when "
                               "a container is deleted")
    assert lease_files(tmp_path) == ["10.244.9.2@a@eth0"]  # nothing half-made
    store.release("a", "eth0")
    assert spec.int_to_ip4(store.allocate(c, "b", "eth0")[0]) == "10.244.9.2"


def test_gc(tmp_path: Path) -> None:
    c = cfg(tmp_path, subnet="10.244.1.0/24")
    store = LeaseStore(str(tmp_path), "podnet")
    for cid in ("a", "b", "c"):
        store.allocate(c, cid, "eth0")
    gone = store.gc({("b", "eth0"), ("zzz", "eth0")})
    assert sorted(lease.container_id for lease in gone) == ["a", "c"]
    assert lease_files(tmp_path) == ["10.244.1.3@b@eth0"]
    assert LeaseStore(str(tmp_path), "other").gc(set()) == []


def test_stale_lease_outside_the_ranges_is_replaced(tmp_path: Path) -> None:
    store = LeaseStore(str(tmp_path), "podnet")
    store.allocate(cfg(tmp_path, subnet="10.1.0.0/24"), "a", "eth0")
    ip, _ = store.allocate(cfg(tmp_path, subnet="10.2.0.0/24"), "a", "eth0")
    assert spec.int_to_ip4(ip) == "10.2.0.2"
    assert lease_files(tmp_path) == ["10.2.0.2@a@eth0"]


def test_foreign_files_are_ignored(tmp_path: Path) -> None:
    d = tmp_path / "podnet"
    d.mkdir()
    (d / "README").write_text("x")
    (d / "not-an-ip@x@eth0").write_text("")
    store = LeaseStore(str(tmp_path), "podnet")
    assert store.leases() == []
    assert store.usage(cfg(tmp_path, subnet="10.0.0.0/30")) == (0, 1)


def _allocate_in_child(args: tuple[str, int]) -> str:
    data_dir, i = args
    c = ipam.parse_config({"type": "podnet", "subnet": "10.244.7.0/24", "dataDir": data_dir},
                          "podnet")
    ip, _ = LeaseStore(data_dir, "podnet").allocate(c, f"container-{i}", "eth0")
    return spec.int_to_ip4(ip)


def test_concurrent_allocations_never_collide(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(20) as pool:
        got = pool.map(_allocate_in_child, [(str(tmp_path), i) for i in range(60)])
    assert len(set(got)) == 60
    assert sorted(got, key=spec.ip4_to_int) == [f"10.244.7.{i}" for i in range(2, 62)]
    assert len(lease_files(tmp_path)) == 60


# -- the plugin's STATUS over the store --------------------------------------------------------
def status(tmp: Path, subnet: str) -> tuple[int, Any]:
    conf = {"cniVersion": "1.1.0", "name": "podnet", "type": "podnet-cni",
            "ipam": {"type": "podnet", "subnet": subnet, "dataDir": str(tmp)}}
    code, out = plugin.run("STATUS", {"CNI_PATH": ""}, json.dumps(conf).encode())
    return code, json.loads(out) if out else None


def test_status(tmp_path: Path) -> None:
    assert status(tmp_path, "10.244.9.0/30") == (0, None)
    LeaseStore(str(tmp_path), "podnet").allocate(cfg(tmp_path, subnet="10.244.9.0/30"), "a",
                                                 "eth0")
    assert status(tmp_path, "10.244.9.0/30") == (1, {
        "cniVersion": "1.1.0", "code": 50,
        "msg": "no free IP address in 10.244.9.0/30: all 1 are leased"})


def test_status_unusable_dir(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    code, out = status(tmp_path / "file", "10.244.9.0/24")
    assert (code, out["code"]) == (1, 50)
    assert out["msg"] == f"IPAM directory {tmp_path}/file/podnet is not usable: Not a directory"
