"""podnet-cni's fast path on real namespaces: the C shim (tools/podnet-cni-shim.c) exec'd by
the runtime as `podnet-cni`, handing each call to the CNI server (podnet.cni.server) that runs
the plugin in-process, in the caller's network namespace.

The Lab of test_cni.py builds the node-like namespace and pod namespaces; here its bin dir gets
the shim, and a server serves `<tmp>/node/cni.sock`. The spec behaviour and the connectivity
must be exactly those of the exec'd plugin; without a server the shim execs the Python plugin;
a malformed request gets a CNI error and the server goes on; concurrent ADDs never share an
address. Everything made is removed, also on failure.
"""

from __future__ import annotations

import array
import asyncio
import json
import os
import socket
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_cni import NODE_ADDR, Lab, check_connectivity, pod_ip, run

from podnet.cni import server as cni_server
from podnet.cni.runtime import CniError
from podnet.cni.server import CniServer, install_shim
from podnet.kernel import netns
from podnet.lab import names


class FastLab(Lab):
    """A Lab whose podnet-cni is the shim, with a CNI server for the node (started by
    `serve`)."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        try:
            self.socket = tmp / "node" / "cni.sock"
            if not install_shim(self.bin, self.socket):
                pytest.skip("no C compiler (cc) to build the podnet-cni shim")
            self.server: CniServer | None = None
        except BaseException:
            super().teardown()
            raise

    def serve(self) -> CniServer:
        self.server = CniServer(self.socket, netns=self.path(self.node))
        self.server.start()
        return self.server

    @property
    def calls(self) -> int:
        return self.server.calls if self.server is not None else 0

    def teardown(self) -> None:
        try:
            if self.server is not None:
                self.server.stop()
        finally:
            super().teardown()


@pytest.fixture
def fast(tmp_path: Path) -> Iterator[FastLab]:
    lab = FastLab(tmp_path)
    try:
        yield lab
    finally:
        lab.teardown()


def podnet_network(lab: Lab, **conf: Any) -> dict[str, Any]:
    return {"cniVersion": "1.1.0", "name": "podnet", **lab.podnet_conf(**conf)}


# -- through the server --------------------------------------------------------------------------
def test_shim_is_a_compiled_client_beside_its_launcher(fast: FastLab) -> None:
    with open(fast.bin / "podnet-cni", "rb") as f:
        assert f.read(4) == b"\x7fELF"
    assert os.readlink(fast.bin / "cni.sock") == str(fast.socket)
    assert (fast.bin / "podnet-cni.py").read_text().startswith("#!")
    fast.serve()
    assert oct(os.stat(fast.socket).st_mode & 0o7777) == "0o600"


def test_add_through_the_server_connects_pods_and_node(fast: FastLab) -> None:
    fast.serve()
    rt = fast.runtime(fast.podnet_conf(), versions=["1.0.0", "1.1.0"])
    pods = [fast.pod(), fast.pod()]
    results = [run(rt.add(f"c{i}", fast.path(ns))) for i, ns in enumerate(pods)]
    gateway = f"{fast.subnet_base}.1"
    first = results[0]
    assert first["cniVersion"] == "1.1.0"
    assert first["ips"] == [{"address": f"{fast.subnet_base}.2/32", "gateway": gateway,
                             "interface": 1}]
    assert first["routes"] == [{"dst": "0.0.0.0/0", "gw": gateway}]
    host, sandbox = first["interfaces"]
    assert (host["name"], host["mtu"]) == (names.pod_veth("c0", "eth0"), 1400)
    assert (sandbox["name"], sandbox["sandbox"]) == ("eth0", fast.path(pods[0]))
    (link,) = fast.ip_json(pods[0], "addr", "show", "dev", "eth0")
    assert link["address"] == sandbox["mac"]
    ips = [pod_ip(r) for r in results]
    assert ips == [f"{fast.subnet_base}.2", f"{fast.subnet_base}.3"]
    assert fast.pod_routes() == ips
    assert fast.leases() == [f"{ips[0]}@c0@eth0", f"{ips[1]}@c1@eth0"]
    check_connectivity(fast, pods, ips, gateway)
    run(rt.check("c0", fast.path(pods[0])))
    run(rt.status())
    for i, ns in enumerate(pods):
        run(rt.delete(f"c{i}", fast.path(ns)))
    assert fast.pod_routes() == [] and fast.leases() == []
    # VERSION (negotiation) + 2 ADD + CHECK + STATUS + 2 DEL, all answered by the server
    assert fast.calls == 7
    for ns in pods:
        netns.delete(ns)
    fast.assert_clean()


def test_spec_behaviour_through_the_server(fast: FastLab) -> None:
    fast.serve()
    rt = fast.runtime(fast.podnet_conf(delay=0), versions=["1.0.0", "1.1.0"])
    assert run(rt.version("podnet-cni")) == {"cniVersion": "1.1.0",
                                              "supportedVersions": ["0.4.0", "1.0.0", "1.1.0"]}
    pods = [fast.pod() for _ in range(3)]
    ip = pod_ip(run(rt.add("c1", fast.path(pods[0]))))
    # another container asking for the same interface in the same netns: code 100
    with pytest.raises(CniError) as e:
        run(rt.add("c2", fast.path(pods[0])))
    assert (e.value.code, e.value.msg) == (100, f"plugin podnet-cni failed (ADD): interface "
                                                f"'eth0' already exists in {fast.path(pods[0])}")
    # the shim run twice for the same attachment, bypassing the runtime's cache
    code, out = fast.exec_plugin("ADD", podnet_network(fast), "c1", pods[0])
    assert (code, out["code"]) == (1, 100)
    assert out["msg"] == (f"interface 'eth0' of container c1 already exists: its node side "
                          f"{names.pod_veth('c1', 'eth0')} is in use (ADD again without DEL?)")
    assert fast.leases() == [f"{ip}@c1@eth0"]
    # GC: c3 is attached behind the runtime's back; only the plugin's GC finds it
    run(rt.add("c2", fast.path(pods[1])))
    code, out = fast.exec_plugin("ADD", podnet_network(fast), "c3", pods[2])
    assert code == 0, out
    run(rt.gc([("c1", "eth0")]))
    assert fast.leases() == [f"{ip}@c1@eth0"]
    assert fast.cached() == ["podnet-c1-eth0"]
    assert fast.veths() == [names.pod_veth("c1", "eth0")]
    # repeated DEL, also once the netns is gone
    run(rt.delete("c1", fast.path(pods[0])))
    run(rt.delete("c1", fast.path(pods[0])))
    for ns in pods:
        netns.delete(ns)
    code, out = fast.exec_plugin("DEL", podnet_network(fast), "c1", pods[0])
    assert (code, out) == (0, None)
    assert fast.calls >= 10
    fast.assert_clean()


def test_version_negotiates_down_through_the_server(fast: FastLab) -> None:
    fast.serve()
    rt = fast.runtime(fast.podnet_conf(), version="0.4.0")
    assert run(rt.negotiated_version()) == "0.4.0"
    ns = fast.pod()
    result = run(rt.add("c1", fast.path(ns)))
    assert result["cniVersion"] == "0.4.0" and result["ips"][0]["version"] == "4"
    run(rt.check("c1", fast.path(ns)))
    run(rt.delete("c1", fast.path(ns)))
    netns.delete(ns)
    assert fast.calls == 4
    fast.assert_clean()


def test_concurrent_adds_through_the_server_never_share_an_address(fast: FastLab) -> None:
    server = fast.serve()
    rt = fast.runtime(fast.podnet_conf())
    pods = [fast.pod() for _ in range(20)]

    async def add_all() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(rt.add(f"c{i}", fast.path(ns))
                                           for i, ns in enumerate(pods))))

    ips = [pod_ip(r) for r in run(add_all())]
    assert sorted(ips) == sorted(f"{fast.subnet_base}.{i}" for i in range(2, 22))
    assert len(fast.leases()) == 20 and len(fast.veths()) == 20
    for ip in ips[::5]:
        assert fast.ping(fast.node, ip)

    async def del_all() -> None:
        await asyncio.gather(*(rt.delete(f"c{i}", fast.path(ns))
                               for i, ns in enumerate(pods)))

    run(del_all())
    assert server.commands["ADD"] == 20 and server.commands["DEL"] == 20
    assert fast.leases() == [] and fast.cached() == [] and fast.pod_routes() == []
    for ns in pods:
        netns.delete(ns)
    fast.assert_clean()


# -- without a server ----------------------------------------------------------------------------
def test_shim_falls_back_to_the_exec_plugin_without_a_server(fast: FastLab) -> None:
    rt = fast.runtime(fast.podnet_conf())
    ns = fast.pod()
    assert not fast.socket.exists()  # the symlink dangles: no server
    ip = pod_ip(run(rt.add("c1", fast.path(ns))))
    assert fast.ping(ns, NODE_ADDR) and fast.ping(fast.node, ip)
    # a stale socket (a killed agent's): connecting is refused, the shim still falls back
    fast.socket.parent.mkdir(parents=True, exist_ok=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(fast.socket))
    stale.close()
    run(rt.check("c1", fast.path(ns)))
    code, out = fast.exec_plugin("ADD", podnet_network(fast), "c1", ns)
    assert (code, out["code"]) == (1, 100)
    run(rt.delete("c1", fast.path(ns)))
    # a server started afterwards replaces the stale socket and takes the calls
    fast.serve()
    ip = pod_ip(run(rt.add("c2", fast.path(ns))))
    assert fast.ping(fast.node, ip)
    run(rt.delete("c2", fast.path(ns)))
    assert fast.calls == 2
    server = fast.server
    assert server is not None
    server.stop()
    assert not fast.socket.exists()  # stop removes its socket
    netns.delete(ns)
    fast.assert_clean()


# -- bad requests --------------------------------------------------------------------------------
def raw_call(path: Path, data: bytes, fd: int | None = None) -> tuple[int, Any]:
    """Send `data` (with `fd` as SCM_RIGHTS) and read the answer: (status, decoded stdout)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(15)
        s.connect(str(path))
        anc = [] if fd is None else [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                      array.array("i", [fd]).tobytes())]
        s.sendmsg([data], anc)
        s.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except ConnectionResetError:  # the server left part of the garbage unread
            pass
    magic, status, n = struct.unpack("=4siI", answer[:12])
    assert magic == b"PNC1" and len(answer) == 12 + n
    return status, json.loads(answer[12:]) if n else None


def test_server_answers_malformed_requests_with_cni_errors(fast: FastLab) -> None:
    server = fast.serve()
    assert raw_call(fast.socket, b"GET / HTTP/1.1\r\n\r\n") == (1, {
        "cniVersion": "1.1.0", "code": 6,
        "msg": "podnet-cni server: not a podnet-cni request (magic b'GET ')"})
    assert raw_call(fast.socket, b"PNC1") == (1, {
        "cniVersion": "1.1.0", "code": 6, "msg": "podnet-cni server: truncated request header"})
    assert raw_call(fast.socket, struct.pack("=4sII", b"PNC1", 10, 5) + b"abc") == (1, {
        "cniVersion": "1.1.0", "code": 6,
        "msg": "podnet-cni server: request cut short (3 of 15 bytes)"})
    assert raw_call(fast.socket, struct.pack("=4sII", b"PNC1", 1 << 30, 0)) == (1, {
        "cniVersion": "1.1.0", "code": 6,
        "msg": f"podnet-cni server: request too large (environment {1 << 30} bytes, stdin 0 "
               "bytes)"})
    assert raw_call(fast.socket, struct.pack("=4sII", b"PNC1", 9, 0) + b"noequals\0") == (1, {
        "cniVersion": "1.1.0", "code": 6,
        "msg": "podnet-cni server: malformed environment entry b'noequals'"})
    version = cni_server.encode_request({"CNI_COMMAND": "VERSION"}, b'{"cniVersion":"1.0.0"}')
    # no namespace fd: refused, never run in a namespace the server guesses
    assert raw_call(fast.socket, version) == (1, {
        "cniVersion": "1.1.0", "code": 4,
        "msg": "podnet-cni server: the request carries 0 file descriptors; want one, of the "
               "caller's network namespace"})
    # an fd that is not a network namespace
    with open(fast.tmp / "not-a-netns", "w") as f:
        assert raw_call(fast.socket, version, f.fileno()) == (1, {
            "cniVersion": "1.1.0", "code": 4,
            "msg": "podnet-cni server: cannot enter the caller's network namespace: "
                   "Invalid argument"})
    # a client that connects and leaves
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(fast.socket))
    # a JSON error inside a well-formed request is the plugin's own error, as when exec'd
    fd = os.open(fast.path(fast.node), os.O_RDONLY | os.O_CLOEXEC)
    try:
        bad = cni_server.encode_request({"CNI_COMMAND": "ADD"}, b"{not json")
        status, out = raw_call(fast.socket, bad, fd)
        assert (status, out["code"]) == (1, 6)
        assert out["msg"].startswith("cannot decode the network configuration on stdin: ")
        assert raw_call(fast.socket, version, fd) == (0, {
            "cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0", "1.1.0"]})
    finally:
        os.close(fd)
    assert server.calls == 2
    # and the server still serves the runtime
    rt = fast.runtime(fast.podnet_conf())
    ns = fast.pod()
    ip = pod_ip(run(rt.add("c1", fast.path(ns))))
    assert fast.ping(fast.node, ip)
    run(rt.delete("c1", fast.path(ns)))
    assert server.calls == 5
    netns.delete(ns)
    fast.assert_clean()


def test_shim_reports_a_server_that_dies_mid_call(fast: FastLab) -> None:
    """A server that accepts and closes without answering: a CNI error, not a replay."""
    fast.socket.parent.mkdir(parents=True, exist_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(fast.socket))
        listener.listen()
        proc = subprocess.Popen([str(fast.bin / "podnet-cni")], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE,
                                env={"CNI_COMMAND": "VERSION", "PATH": "/usr/bin:/bin"})
        assert proc.stdin is not None
        proc.stdin.write(b'{"cniVersion":"1.1.0"}')
        proc.stdin.close()
        conn, _ = listener.accept()
        with conn:  # take the whole request, then hang up without an answer
            head = conn.recv(12, socket.MSG_WAITALL)
            _, env_len, stdin_len = struct.unpack("=4sII", head)
            assert len(conn.recv(env_len + stdin_len, socket.MSG_WAITALL)) == env_len + stdin_len
        assert proc.stdout is not None
        out = proc.stdout.read()
        proc.stdout.close()
        proc.wait(timeout=10)
    assert proc.returncode == 1
    assert json.loads(out) == {"cniVersion": "1.1.0", "code": 11,
                               "msg": "podnet-cni: the CNI server gave no answer"}
    os.unlink(fast.socket)
