"""CNI on real network namespaces: the runtime (podnet.cni.runtime) driving podnet-cni, and
Debian's reference plugins (ptp + host-local, tuning) through the same conflist machinery.

Each test builds its own node-like namespace `podnet-t<hex>-node-1` (forwarding on, an address
of its own on lo, standing for a node's LAN address) and pod namespaces
`podnet-t<hex>-pod-<uuid4>`, and checks at the end that no veth, route, lease, cache entry or
namespace it made is left. The host's own namespace is never touched: plugins run inside the
node namespace.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podnet.cni import plugin
from podnet.cni.runtime import CniError, CniRuntime
from podnet.kernel import netns
from podnet.lab import names

REFERENCE = Path("/usr/lib/cni")
needs_reference = pytest.mark.skipif(
    not (REFERENCE / "ptp").exists(),
    reason="Debian's reference plugins are missing: apt-get install -y "
           "containernetworking-plugins")
NODE_ADDR = "172.31.0.11"  # the node's own address (standing for its LAN address), on lo
PY = [sys.executable, "-I", "-S", "-c"]
SERVER = ("import socket,sys\n"
          "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
          "s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(); print('ready', flush=True)\n"
          "c,a=s.accept(); c.sendall(a[0].encode()); c.close()\n")
CLIENT = ("import socket,sys\n"
          "s=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)\n"
          "print(s.recv(100).decode())\n")


class Lab:
    """One test's namespaces, directories and runtime; see the module docstring."""

    def __init__(self, tmp: Path) -> None:
        self.cluster = f"t{secrets.token_hex(4)}"
        self.node = names.node_netns(self.cluster, "node-1")
        self.tmp = tmp
        self.pods: list[str] = []
        self.bin = tmp / "bin"
        self.conf_dir = tmp / "net.d"
        self.cache = tmp / "cache"
        self.ipam_dir = tmp / "ipam"
        self.subnet_base = f"10.{secrets.randbelow(200) + 20}.{secrets.randbelow(250)}"
        netns.add(self.node)
        try:
            netns.sysctl(self.node, "net.ipv4.ip_forward", "1")
            netns.ip_batch(self.node, [f"addr add {NODE_ADDR}/32 dev lo"])
            plugin.install_launcher(self.bin)
        except BaseException:
            netns.delete(self.node)
            raise

    # -- set-up ----------------------------------------------------------------------------
    def pod(self) -> str:
        name = names.pod_netns(self.cluster, str(uuid.uuid4()))
        netns.add(name)
        self.pods.append(name)
        return name

    @staticmethod
    def path(ns: str) -> str:
        return str(netns.path(ns))

    def podnet_conf(self, *, prefix: int = 24, delay: float | None = None,
                    ipam: dict[str, Any] | None = None) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "type": "podnet-cni", "mtu": 1400,
            "ipam": ipam or {"type": "podnet", "ranges": [[{"subnet": self.subnet(prefix)}]],
                             "dataDir": str(self.ipam_dir)}}
        if delay is not None:
            conf["deleteDelay"] = delay
        return conf

    def ptp_conf(self) -> dict[str, Any]:
        return {"type": "ptp", "ipMasq": False, "mtu": 1400,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": self.subnet()}]],
                         "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(self.ipam_dir)}}

    def subnet(self, prefix: int = 24) -> str:
        return f"{self.subnet_base}.0/{prefix}"

    def runtime(self, *plugins: dict[str, Any], version: str = "1.1.0",
                versions: list[str] | None = None, name: str = "podnet") -> CniRuntime:
        self.conf_dir.mkdir(exist_ok=True)
        conf: dict[str, Any] = {"cniVersion": version, "name": name, "plugins": list(plugins)}
        if versions is not None:
            conf["cniVersions"] = versions
        (self.conf_dir / "10-podnet.conflist").write_text(json.dumps(conf))
        return CniRuntime(self.conf_dir, [self.bin, REFERENCE], self.cache,
                          host_netns=self.node)

    # -- looking ---------------------------------------------------------------------------
    def ip_json(self, ns: str, *args: str) -> list[dict[str, Any]]:
        out = netns.run(["ip", "-n", ns, "-j", *args]).stdout
        return json.loads(out) if out.strip() else []

    def veths(self) -> list[str]:
        return sorted(link["ifname"] for link in self.ip_json(self.node, "link", "show",
                                                              "type", "veth"))

    def pod_routes(self) -> list[str]:
        """The node's routes (it has none of its own: its address is on lo)."""
        return sorted(r["dst"] for r in self.ip_json(self.node, "-4", "route", "show"))

    def leases(self, network: str = "podnet") -> list[str]:
        d = self.ipam_dir / network
        if not d.is_dir():
            return []
        return sorted(n for n in os.listdir(d)
                      if not n.startswith(".") and n not in ("lock",)
                      and not n.startswith("last_reserved_ip"))

    def cached(self) -> list[str]:
        d = self.cache / "results"
        return sorted(os.listdir(d)) if d.is_dir() else []

    def wait_for(self, what: str, probe: Any, want: Any, timeout: float = 8.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            got = probe()
            if got == want:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: still {got!r}, want {want!r}")
            time.sleep(0.05)

    def assert_clean(self) -> None:
        """Nothing of a pod left in the node: veths (a retired one goes within the delete
        delay), routes, leases, cached results."""
        self.wait_for("veths in the node", self.veths, [])
        assert self.pod_routes() == []
        assert self.leases() == []
        assert self.cached() == []

    # -- traffic ---------------------------------------------------------------------------
    def ping(self, ns: str, ip: str) -> bool:
        return subprocess.run(["ip", "netns", "exec", ns, "ping", "-c1", "-W2", "-q", ip],
                              capture_output=True, timeout=10).returncode == 0

    def tcp_peer(self, server_ns: str, client_ns: str, target: str) -> str:
        """Connect from client_ns to target:port (a server in server_ns); the client's
        address as the server saw it."""
        port = str(20000 + secrets.randbelow(20000))
        server = subprocess.Popen(["ip", "netns", "exec", server_ns, *PY, SERVER, "0.0.0.0",
                                   port], stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            assert server.stdout.readline().strip() == "ready"
            out = subprocess.run(["ip", "netns", "exec", client_ns, *PY, CLIENT, target, port],
                                 capture_output=True, text=True, timeout=15)
            assert out.returncode == 0, out.stderr
            return out.stdout.strip()
        finally:
            server.kill()
            server.wait()

    def exec_plugin(self, command: str, conf: dict[str, Any], cid: str, pod: str,
                    ifname: str = "eth0") -> tuple[int, Any]:
        """Run podnet-cni directly (no runtime, no cache), inside the node namespace."""
        env = {**os.environ, "CNI_COMMAND": command, "CNI_CONTAINERID": cid,
               "CNI_NETNS": self.path(pod), "CNI_IFNAME": ifname,
               "CNI_PATH": f"{self.bin}:{REFERENCE}"}
        proc = subprocess.run(["nsenter", f"--net={self.path(self.node)}", "--",
                               str(self.bin / "podnet-cni")], input=json.dumps(conf),
                              env=env, capture_output=True, text=True, timeout=30)
        return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else None

    # -- tear-down -------------------------------------------------------------------------
    def teardown(self) -> None:
        for ns in [*self.pods, self.node]:
            netns.delete(ns)
        left = [n for n in netns.names() if n.startswith(names.cluster_prefix(self.cluster))]
        assert left == [], f"namespaces left behind: {left}"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.teardown()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def pod_ip(result: dict[str, Any]) -> str:
    return str(result["ips"][0]["address"]).split("/")[0]


def check_connectivity(lab: Lab, pods: list[str], ips: list[str], gateway: str) -> None:
    """Pods reach the node (its gateway address and its own address) and each other; the node
    reaches the pods; TCP shows the real source addresses both ways (no NAT)."""
    for ns, ip in zip(pods, ips, strict=True):
        assert lab.ping(ns, gateway), f"{ns} cannot ping the node side {gateway}"
        assert lab.ping(ns, NODE_ADDR), f"{ns} cannot ping the node's address"
        assert lab.ping(lab.node, ip), f"the node cannot ping {ip}"
        assert lab.tcp_peer(lab.node, ns, NODE_ADDR) == ip  # the node sees the pod's own IP
        assert lab.tcp_peer(ns, lab.node, ip) == gateway  # the node's address on the veth
    if len(pods) > 1:
        assert lab.ping(pods[0], ips[1])
        assert lab.tcp_peer(pods[1], pods[0], ips[1]) == ips[0]


# -- podnet-cni --------------------------------------------------------------------------------
def test_podnet_cni_add_connects_pods_and_node(lab: Lab) -> None:
    rt = lab.runtime(lab.podnet_conf(), versions=["1.0.0", "1.1.0"])
    pods = [lab.pod(), lab.pod()]
    args = {"K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": "web-0", "K8S_POD_UID": "u1",
            "K8S_POD_INFRA_CONTAINER_ID": "c0"}
    results = [run(rt.add(f"c{i}", lab.path(ns), "eth0", args)) for i, ns in enumerate(pods)]
    gateway = f"{lab.subnet_base}.1"
    first = results[0]
    assert first["cniVersion"] == "1.1.0"
    assert first["ips"] == [{"address": f"{lab.subnet_base}.2/32", "gateway": gateway,
                             "interface": 1}]
    assert first["routes"] == [{"dst": "0.0.0.0/0", "gw": gateway}]
    host, sandbox = first["interfaces"]
    assert (host["name"], host["mtu"]) == (names.pod_veth("c0", "eth0"), 1400)
    assert (sandbox["name"], sandbox["sandbox"], sandbox["mtu"]) == ("eth0", lab.path(pods[0]),
                                                                     1400)
    (link,) = lab.ip_json(pods[0], "addr", "show", "dev", "eth0")
    assert link["address"] == sandbox["mac"]
    assert [(a["local"], a["prefixlen"]) for a in link["addr_info"] if a["family"] == "inet"] \
        == [(f"{lab.subnet_base}.2", 32)]
    ips = [pod_ip(r) for r in results]
    assert ips == [f"{lab.subnet_base}.2", f"{lab.subnet_base}.3"]
    assert lab.pod_routes() == ips
    assert lab.leases() == [f"{ips[0]}@c0@eth0", f"{ips[1]}@c1@eth0"]
    check_connectivity(lab, pods, ips, gateway)
    run(rt.check("c0", lab.path(pods[0])))
    run(rt.status())
    for i, ns in enumerate(pods):
        run(rt.delete(f"c{i}", lab.path(ns)))
    assert lab.pod_routes() == [] and lab.leases() == []
    for ns in pods:  # as the runtime does after DEL: the kernel then drops the veth
        netns.delete(ns)
    lab.assert_clean()


def test_repeated_del_succeeds(lab: Lab) -> None:
    rt = lab.runtime(lab.podnet_conf(delay=0))
    ns = lab.pod()
    run(rt.add("c1", lab.path(ns)))
    run(rt.delete("c1", lab.path(ns)))
    assert lab.veths() == []  # deleteDelay 0: gone when DEL returns
    run(rt.delete("c1", lab.path(ns)))
    netns.delete(ns)
    run(rt.delete("c1", lab.path(ns)))  # the netns is gone too
    run(rt.delete("never-added", lab.path(ns)))
    code, out = lab.exec_plugin("DEL", {"cniVersion": "1.1.0", "name": "podnet",
                                        **lab.podnet_conf()}, "c1", ns)
    assert (code, out) == (0, None)
    lab.assert_clean()


def test_add_on_an_existing_interface_fails(lab: Lab) -> None:
    rt = lab.runtime(lab.podnet_conf())
    ns = lab.pod()
    ip = pod_ip(run(rt.add("c1", lab.path(ns))))
    # the runtime refuses a second ADD of an attachment it has
    with pytest.raises(CniError) as e:
        run(rt.add("c1", lab.path(ns)))
    assert e.value.code == 100
    assert e.value.msg == ("container c1 already has interface 'eth0' on network podnet: DEL "
                           "it first")
    # another container asking for the same interface in the same netns: the plugin refuses
    with pytest.raises(CniError) as e:
        run(rt.add("c2", lab.path(ns)))
    assert e.value.code == 100
    assert e.value.msg == (f"plugin podnet-cni failed (ADD): interface 'eth0' already exists "
                           f"in {lab.path(ns)}")
    # the plugin run twice for the same attachment, bypassing the runtime's cache
    conf = {"cniVersion": "1.1.0", "name": "podnet", **lab.podnet_conf()}
    code, out = lab.exec_plugin("ADD", conf, "c1", ns)
    assert (code, out["code"]) == (1, 100)
    assert out["msg"] == (f"interface 'eth0' of container c1 already exists: its node side "
                          f"{names.pod_veth('c1', 'eth0')} is in use (ADD again without DEL?)")
    # nothing of the refused ADDs was made, and c1 still works
    assert lab.veths() == [names.pod_veth("c1", "eth0")]
    assert lab.leases() == [f"{ip}@c1@eth0"]
    assert lab.ping(lab.node, ip)
    run(rt.check("c1", lab.path(ns)))
    run(rt.delete("c1", lab.path(ns)))
    netns.delete(ns)
    lab.assert_clean()


def test_gc_removes_attachments_not_listed(lab: Lab) -> None:
    rt = lab.runtime(lab.podnet_conf())
    pods = [lab.pod() for _ in range(4)]
    ips = [pod_ip(run(rt.add(f"c{i}", lab.path(ns)))) for i, ns in enumerate(pods[:3])]
    # c3 is attached behind the runtime's back (no cached result): only the plugin's GC
    # can find it
    conf = {"cniVersion": "1.1.0", "name": "podnet", **lab.podnet_conf()}
    code, out = lab.exec_plugin("ADD", conf, "c3", pods[3])
    assert code == 0, out
    assert len(lab.veths()) == 4 and len(lab.leases()) == 4
    run(rt.gc([("c0", "eth0")]))
    assert lab.leases() == [f"{ips[0]}@c0@eth0"]
    assert lab.cached() == ["podnet-c0-eth0"]
    lab.wait_for("veths after GC", lab.veths, [names.pod_veth("c0", "eth0")])
    assert lab.pod_routes() == [ips[0]]
    assert lab.ping(pods[0], NODE_ADDR)
    run(rt.gc([("c0", "eth0")]))  # GC again: nothing more to do
    assert lab.leases() == [f"{ips[0]}@c0@eth0"]
    run(rt.delete("c0", lab.path(pods[0])))
    for ns in pods:
        netns.delete(ns)
    lab.assert_clean()


def test_version_negotiation(lab: Lab) -> None:
    rt = lab.runtime(lab.podnet_conf(), version="1.1.0", versions=["1.0.0", "1.1.0"])
    assert run(rt.version("podnet-cni")) == {"cniVersion": "1.1.0",
                                              "supportedVersions": ["0.4.0", "1.0.0", "1.1.0"]}
    assert run(rt.negotiated_version()) == "1.1.0"
    rt = lab.runtime(lab.podnet_conf(), version="0.4.0")
    assert run(rt.negotiated_version()) == "0.4.0"
    ns = lab.pod()
    result = run(rt.add("c1", lab.path(ns)))
    assert result["cniVersion"] == "0.4.0"
    assert result["ips"][0]["version"] == "4"
    run(rt.check("c1", lab.path(ns)))
    run(rt.delete("c1", lab.path(ns)))
    netns.delete(ns)
    lab.assert_clean()


def test_concurrent_adds_never_share_an_address(lab: Lab) -> None:
    rt = lab.runtime(lab.podnet_conf())
    pods = [lab.pod() for _ in range(20)]

    async def add_all() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(rt.add(f"c{i}", lab.path(ns))
                                           for i, ns in enumerate(pods))))

    ips = [pod_ip(r) for r in run(add_all())]
    assert len(set(ips)) == 20
    assert sorted(ips) == sorted(f"{lab.subnet_base}.{i}" for i in range(2, 22))
    assert len(lab.leases()) == 20 and len(lab.veths()) == 20 and len(lab.cached()) == 20
    for ip in ips[::5]:
        assert lab.ping(lab.node, ip)

    async def del_all() -> None:
        await asyncio.gather(*(rt.delete(f"c{i}", lab.path(ns)) for i, ns in enumerate(pods)))

    run(del_all())
    assert lab.leases() == [] and lab.cached() == [] and lab.pod_routes() == []
    for ns in pods:
        netns.delete(ns)
    lab.assert_clean()


def test_exhaustion_is_a_clear_error_and_leaks_nothing(lab: Lab) -> None:
    rt = lab.runtime(lab.podnet_conf(prefix=30))
    first, second = lab.pod(), lab.pod()
    assert pod_ip(run(rt.add("c1", lab.path(first)))) == f"{lab.subnet_base}.2"
    with pytest.raises(CniError) as e:
        run(rt.add("c2", lab.path(second)))
    assert e.value.code == 11
    assert e.value.msg == (f"plugin podnet-cni failed (ADD): no free IP address in "
                           f"{lab.subnet(30)} for network podnet: all 1 addresses are leased")
    assert lab.veths() == [names.pod_veth("c1", "eth0")]
    assert lab.leases() == [f"{lab.subnet_base}.2@c1@eth0"]
    assert lab.cached() == ["podnet-c1-eth0"]
    assert lab.ip_json(second, "link", "show", "type", "veth") == []
    with pytest.raises(CniError) as e:
        run(rt.status())
    assert (e.value.code, e.value.msg) == (50, f"plugin podnet-cni failed (STATUS): no free "
                                               f"IP address in {lab.subnet(30)}: all 1 are "
                                               "leased")
    run(rt.delete("c1", lab.path(first)))
    run(rt.status())
    assert pod_ip(run(rt.add("c2", lab.path(second)))) == f"{lab.subnet_base}.2"
    run(rt.delete("c2", lab.path(second)))
    for ns in (first, second):
        netns.delete(ns)
    lab.assert_clean()


def test_check_finds_a_missing_route(lab: Lab) -> None:
    rt = lab.runtime(lab.podnet_conf())
    ns = lab.pod()
    gateway = f"{lab.subnet_base}.1"
    run(rt.add("c1", lab.path(ns)))
    run(rt.check("c1", lab.path(ns)))
    netns.ip_batch(ns, ["route del default"])
    with pytest.raises(CniError) as e:
        run(rt.check("c1", lab.path(ns)))
    assert (e.value.code, e.value.msg) == (101, f"plugin podnet-cni failed (CHECK): route "
                                                f"0.0.0.0/0 via {gateway} is missing in "
                                                f"{lab.path(ns)}")
    netns.ip_batch(ns, [f"route add default via {gateway} dev eth0"])
    run(rt.check("c1", lab.path(ns)))
    with pytest.raises(CniError) as e:
        run(rt.check("c9", lab.path(ns)))
    assert e.value.code == 3
    run(rt.delete("c1", lab.path(ns)))
    netns.delete(ns)
    lab.assert_clean()


def test_del_retires_the_veth_and_a_new_add_replaces_it(lab: Lab) -> None:
    rt = lab.runtime(lab.podnet_conf(delay=3))
    ns = lab.pod()
    host = names.pod_veth("c1", "eth0")
    run(rt.add("c1", lab.path(ns)))
    run(rt.delete("c1", lab.path(ns)))
    (link,) = lab.ip_json(lab.node, "link", "show", "dev", host)
    assert link["ifalias"] == plugin.RETIRED_ALIAS  # out of service, deleted later
    assert lab.pod_routes() == [] and lab.leases() == []
    # the same attachment again at once, in the same netns: the leftover is replaced
    ip = pod_ip(run(rt.add("c1", lab.path(ns))))
    (link,) = lab.ip_json(lab.node, "link", "show", "dev", host)
    assert "ifalias" not in link
    assert lab.ping(lab.node, ip)
    run(rt.delete("c1", lab.path(ns)))
    # another container into the same netns: the retired pod side is no obstacle either
    ip = pod_ip(run(rt.add("c2", lab.path(ns))))
    assert lab.veths() == [names.pod_veth("c2", "eth0")]
    assert lab.ping(ns, NODE_ADDR)
    run(rt.delete("c2", lab.path(ns)))
    netns.delete(ns)  # tears the retired veth down at once, long before the delay
    lab.wait_for("veths", lab.veths, [], timeout=2.5)
    lab.assert_clean()


# -- Debian's reference plugins through the same runtime ---------------------------------------
@needs_reference
def test_reference_ptp_and_host_local(lab: Lab) -> None:
    rt = lab.runtime(lab.ptp_conf(), version="1.1.0", versions=["1.0.0", "1.1.0"])
    assert run(rt.version("ptp"))["supportedVersions"][-1] == "1.0.0"
    assert run(rt.negotiated_version()) == "1.0.0"
    run(rt.status())  # 1.0.0: no STATUS is sent; the network counts as ready
    pods = [lab.pod(), lab.pod(), lab.pod()]
    args = {"K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": "web-0"}
    results = [run(rt.add(f"c{i}", lab.path(ns), "eth0", args)) for i, ns in enumerate(pods)]
    assert results[0]["cniVersion"] == "1.0.0"
    ips = [pod_ip(r) for r in results]
    gateway = results[0]["ips"][0]["gateway"]
    assert ips == [f"{lab.subnet_base}.{i}" for i in (2, 3, 4)]
    assert sorted(lab.leases(), key=lambda n: n) == ips
    check_connectivity(lab, pods[:2], ips[:2], gateway)
    run(rt.check("c0", lab.path(pods[0])))
    run(rt.delete("c0", lab.path(pods[0])))
    run(rt.delete("c0", lab.path(pods[0])))  # repeated DEL
    run(rt.gc([("c1", "eth0")]))  # the runtime DELs c2 from its cache
    assert lab.leases() == [ips[1]]
    assert lab.cached() == ["podnet-c1-eth0"]
    run(rt.delete("c1", lab.path(pods[1])))
    for ns in pods:
        netns.delete(ns)
    lab.assert_clean()


@needs_reference
def test_podnet_cni_delegating_to_host_local(lab: Lab) -> None:
    conf = lab.podnet_conf(ipam={"type": "host-local", "ranges": [[{"subnet": lab.subnet()}]],
                                 "routes": [{"dst": "0.0.0.0/0"}],
                                 "dataDir": str(lab.ipam_dir)})
    rt = lab.runtime(conf, version="1.1.0", versions=["1.0.0", "1.1.0"])
    assert run(rt.negotiated_version()) == "1.0.0"  # host-local stops at 1.0.0
    ns = lab.pod()
    result = run(rt.add("c1", lab.path(ns)))
    ip = pod_ip(result)
    assert lab.leases() == [ip]
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": f"{lab.subnet_base}.1"}]
    assert lab.ping(ns, NODE_ADDR) and lab.ping(lab.node, ip)
    run(rt.check("c1", lab.path(ns)))
    run(rt.delete("c1", lab.path(ns)))
    run(rt.delete("c1", lab.path(ns)))
    assert lab.leases() == []
    netns.delete(ns)
    lab.assert_clean()


@needs_reference
def test_chain_podnet_cni_then_reference_tuning(lab: Lab) -> None:
    tuning = {"type": "tuning", "sysctl": {"net.core.somaxconn": "512"}}
    rt = lab.runtime(lab.podnet_conf(), tuning, versions=["1.0.0", "1.1.0"])
    assert run(rt.negotiated_version()) == "1.0.0"
    ns = lab.pod()
    result = run(rt.add("c1", lab.path(ns)))  # tuning got podnet-cni's result as prevResult
    assert [i["name"] for i in result["interfaces"]] == [names.pod_veth("c1", "eth0"), "eth0"]
    out = subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-n", "net.core.somaxconn"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "512"
    run(rt.check("c1", lab.path(ns)))
    run(rt.delete("c1", lab.path(ns)))
    # a chain whose second plugin fails: the runtime undoes the first one
    bad = {"type": "tuning", "sysctl": {"net.core.no_such_knob": "1"}}
    rt = lab.runtime(lab.podnet_conf(delay=0), bad, versions=["1.0.0", "1.1.0"])
    with pytest.raises(CniError) as e:
        run(rt.add("c2", lab.path(ns)))
    assert e.value.msg.startswith("plugin tuning failed (ADD): ")
    assert lab.veths() == [] and lab.leases() == [] and lab.cached() == []
    netns.delete(ns)
    lab.assert_clean()


def test_status_reports_a_network_that_is_not_ready(lab: Lab) -> None:
    rt = CniRuntime(lab.tmp / "empty", [lab.bin], lab.cache, host_netns=lab.node)
    with pytest.raises(CniError) as e:
        run(rt.status())
    assert (e.value.code, e.value.msg) == (50, f"no network configuration: no *.conflist in "
                                               f"{lab.tmp / 'empty'}")
    rt = lab.runtime({"type": "no-such-plugin"})
    with pytest.raises(CniError) as e:
        run(rt.status())
    assert (e.value.code, e.value.msg) == (7, f"plugin 'no-such-plugin' not found in "
                                              f"{lab.bin}, {REFERENCE}")
    rt = lab.runtime(lab.podnet_conf())
    run(rt.status())


def fake_plugin(lab: Lab, name: str, answer: str) -> None:
    """A plugin that claims 1.1.0 and answers every other verb with `answer` (an error)."""
    path = lab.bin / name
    version = json.dumps({"cniVersion": "1.1.0", "supportedVersions": ["1.0.0", "1.1.0"]})
    path.write_text("#!/bin/sh\ncat >/dev/null\n"
                    f"if [ \"$CNI_COMMAND\" = VERSION ]; then echo '{version}'; exit 0; fi\n"
                    f"echo '{answer}'\nexit 1\n")
    path.chmod(0o755)


def test_status_tolerates_plugins_older_than_the_verb(lab: Lab) -> None:
    fake_plugin(lab, "old-unknown", '{"code": 4, "msg": "unknown CNI_COMMAND: STATUS"}')
    fake_plugin(lab, "old-no-id", '{"code": 3, "msg": "missing containerID"}')
    fake_plugin(lab, "not-ready", '{"code": 50, "msg": "the daemon is down"}')
    rt = lab.runtime({"type": "old-unknown"}, {"type": "old-no-id"})
    assert run(rt.negotiated_version()) == "1.1.0"
    run(rt.status())
    run(rt.gc([]))
    rt = lab.runtime({"type": "old-unknown"}, {"type": "not-ready"})
    with pytest.raises(CniError) as e:
        run(rt.status())
    assert (e.value.code, e.value.msg) == (50, "plugin not-ready failed (STATUS): the daemon "
                                               "is down")
