"""podnet-cni: the CNI plugin that gives each pod its own veth and a routed /32 (spec 1.1).

Run as an executable by a CNI runtime: the command and attachment come in CNI_* variables,
the network configuration on stdin; the result (or an error object) goes to stdout and the exit
status is 0 on success, 1 on error.

The scheme (ptp's, per pod routing as Calico does it, chosen over Calico's 169.254.1.1 +
proxy_arp because it needs no sysctl per interface and no route to a link-local address in the
node's namespace):

    pod netns                                  node netns
      <ifname>  <podIP>/32                       pn<hash>  <gateway>/32   (same on every veth)
      <gateway>/32 dev <ifname> scope link       <podIP>/32 dev pn<hash> scope link
      default via <gateway> dev <ifname>         (forwarding: the node's business)

The gateway is the range's gateway (the podCIDR's first address by default). The pod resolves
it by ARP on its veth, and the node answers because the address is its own; the node reaches
the pod over the /32 route with the gateway as source. Nothing is bridged and nothing is NATed:
each pod's traffic crosses its own node-side interface (pn<hash> = podnet.lab.names.pod_veth
of the container ID and ifname), where later policy can hook in.

IPAM: "ipam": {"type": "podnet", ...} is the built-in IPAM (ipam.py, in this process); any
other type is a delegated plugin run from CNI_PATH as the spec says (e.g. host-local), with the
same environment and configuration.

Verbs:
  ADD     fails with ERR_INTERFACE_EXISTS (100) when the interface is already in the netns
          (the spec requires an error; it names no code), before anything is leased; with
          ERR_TRY_AGAIN_LATER (11) when IPAM has no free address; with ERR_UNKNOWN_CONTAINER
          (3) when the netns does not exist. Any failure after the lease undoes what was made
          and frees the lease. A kernel refusal is ERR_INTERNAL (999) naming the operation.
  DEL     idempotent, also when the netns is gone. It frees the lease, removes the node's
          routes over the veth and marks the veth as retired (alias), then leaves the kernel's
          deletion of the veth to a detached shell after `deleteDelay` seconds (default 1; 0
          deletes at once). Deleting a veth takes the kernel ~20 ms of RCU waits under the rtnl
          lock; deleting the pod's netns, which the runtime does right after DEL, tears the
          veth down in a batch for free, and the shell then finds nothing to do. ADD of the
          same attachment removes a retired leftover at once; GC removes any.
  CHECK   the interface, its MAC, address and the routes of prevResult, the node's veth and
          route, and the lease (or the delegated IPAM's CHECK).
  STATUS  ERR_NOT_AVAILABLE (50) when IPAM has no free address or its directory is unusable.
  GC      frees leases and removes pn* veths not in cni.dev/valid-attachments.
  VERSION 0.4.0, 1.0.0 and 1.1.0.

Start-up time is most of the cost of a call, so this module and what it imports avoid the
heavier parts of the standard library (json, re, typing, enum, subprocess, ipaddress): JSON
goes through the C accelerator module _json directly, kernel changes through netlink.py, and a
delegated IPAM plugin is started with posix_spawn. `install_launcher` writes an executable that
starts Python with -I -S, which skips site-packages processing (the biggest start-up cost).
"""

from __future__ import annotations

import os
import sys

from podnet.cni import spec
from podnet.cni.spec import (
    ERR_CHECK_FAILED,
    ERR_DECODE,
    ERR_INCOMPATIBLE_VERSION,
    ERR_INTERFACE_EXISTS,
    ERR_INTERNAL,
    ERR_INVALID_CONFIG,
    ERR_INVALID_ENV,
    ERR_IO,
    ERR_NOT_AVAILABLE,
    ERR_UNKNOWN_CONTAINER,
    LATEST,
    PLUGIN_VERSIONS,
    CniError,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from podnet.cni.ipam import IpamConfig
    from podnet.cni.netlink import Link, Netlink

    Obj = dict[str, Any]

RETIRED_ALIAS = "podnet-cni: deleted"
DEFAULT_DELETE_DELAY = 1.0
COMMANDS = ("ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION")

# -- JSON through _json (the json package imports re, which costs milliseconds) ----------------
_scanner: Any = None  # _json's C scanner; False where there is none
_encoder: Any = None


class _DecodeContext:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, Any] = {}

    @staticmethod
    def parse_constant(name: str) -> Any:
        raise ValueError(f"invalid JSON constant {name}")


def loads(text: str) -> Any:
    global _scanner
    if _scanner is None:
        try:
            import _json

            _scanner = _json.make_scanner(_DecodeContext)  # type: ignore[arg-type]
        except (ImportError, AttributeError, TypeError):  # not CPython
            _scanner = False
    if _scanner is False:
        import json

        return json.loads(text)
    ws = " \t\n\r"
    i = 0
    while i < len(text) and text[i] in ws:
        i += 1
    try:
        obj, end = _scanner(text, i)
    except StopIteration:
        raise ValueError(f"expecting a value at character {i}") from None
    while end < len(text) and text[end] in ws:
        end += 1
    if end != len(text):
        raise ValueError(f"extra data at character {end}")
    return obj


def _not_json(obj: object) -> Any:
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def dumps(obj: object) -> str:
    global _encoder
    if _encoder is None:
        try:
            import _json

            _encoder = _json.make_encoder(None, _not_json, _json.encode_basestring_ascii, None,
                                          ":", ",", False, False, False)
        except (ImportError, AttributeError, TypeError):
            import json

            def _dump(o: object, _level: int) -> list[str]:
                return [json.dumps(o)]

            _encoder = _dump
    return "".join(_encoder(obj, 0))


# -- names -------------------------------------------------------------------------------------
def _sha256_hex(data: bytes) -> str:
    try:
        from _sha256 import sha256  # Python 3.11
    except ImportError:
        from hashlib import sha256
    digest: str = sha256(data).hexdigest()
    return digest


def host_veth_name(container_id: str, ifname: str) -> str:
    """podnet.lab.names.pod_veth, without importing it (it imports re): the unit tests check
    that both agree."""
    return "pn" + _sha256_hex(f"{container_id}/{ifname}".encode())[:11]


def is_host_veth(name: str) -> bool:
    return len(name) == 13 and name.startswith("pn") and all(
        c in "0123456789abcdef" for c in name[2:])


# -- the call ----------------------------------------------------------------------------------
class Call:
    """One invocation: environment, configuration and what is derived from them."""

    def __init__(self, command: str, env: Mapping[str, str], conf: Obj, raw: bytes) -> None:
        self.command = command
        self.env = env
        self.conf = conf
        self.raw = raw
        version = conf.get("cniVersion")
        if version is None:
            raise CniError(ERR_INCOMPATIBLE_VERSION, "cniVersion: required",
                           f"plugin supports {list(PLUGIN_VERSIONS)}")
        if version not in PLUGIN_VERSIONS:
            raise CniError(ERR_INCOMPATIBLE_VERSION, "incompatible CNI versions",
                           f"config is {version!r}, plugin supports {list(PLUGIN_VERSIONS)}")
        self.version: str = version
        if command in ("STATUS", "GC") and not spec.version_at_least(version, "1.1.0"):
            raise CniError(ERR_INCOMPATIBLE_VERSION, f"{command} needs cniVersion 1.1.0 or "
                           f"later; the configuration says {version}")
        self.name = spec.validate_network_name(conf.get("name"))
        self.container_id = self.ifname = self.netns = ""
        if command in ("ADD", "DEL", "CHECK"):
            self.container_id = env.get("CNI_CONTAINERID", "")
            spec.validate_container_id(self.container_id)
            self.ifname = env.get("CNI_IFNAME", "")
            spec.validate_ifname(self.ifname)
            self.netns = env.get("CNI_NETNS", "")
            if command != "DEL" and not self.netns:
                raise CniError(ERR_INVALID_ENV, f"CNI_NETNS: required for {command}")
            spec.parse_cni_args(env.get("CNI_ARGS", ""))
        mtu = conf.get("mtu", 0)
        if not isinstance(mtu, int) or isinstance(mtu, bool) or not (
                mtu == 0 or 68 <= mtu <= 65535):
            raise CniError(ERR_INVALID_CONFIG, f"mtu: want an integer from 68 to 65535, got "
                           f"{mtu!r}")
        self.mtu: int = mtu
        delay = conf.get("deleteDelay", DEFAULT_DELETE_DELAY)
        if not isinstance(delay, (int, float)) or isinstance(delay, bool) or not (
                0 <= delay <= 60):
            raise CniError(ERR_INVALID_CONFIG, f"deleteDelay: want seconds from 0 to 60, got "
                           f"{delay!r}")
        self.delete_delay = float(delay)
        ipam = conf.get("ipam")
        if not isinstance(ipam, dict) or not isinstance(ipam.get("type"), str):
            raise CniError(ERR_INVALID_CONFIG, "ipam.type: required: \"podnet\" for the "
                           "built-in IPAM, or the name of an IPAM plugin in CNI_PATH")
        self.ipam_type: str = spec.validate_plugin_type(ipam["type"], "ipam.type")
        self.ipam: IpamConfig | None = None
        if self.ipam_type == "podnet":
            from podnet.cni import ipam as ipam_mod

            self.ipam = ipam_mod.parse_config(ipam, self.name)
        dns = conf.get("dns")
        self.dns: Obj | None = dns if isinstance(dns, dict) else None
        prev = conf.get("prevResult")
        if prev is not None and not isinstance(prev, dict):
            raise CniError(ERR_INVALID_CONFIG, "prevResult: must be an object")
        self.prev: Obj | None = prev

    def store(self) -> Any:
        from podnet.cni.ipam import LeaseStore

        assert self.ipam is not None
        return LeaseStore(self.ipam.data_dir, self.name)


# -- delegated plugins -------------------------------------------------------------------------
def find_plugin(plugin_type: str, cni_path: str) -> str:
    for d in cni_path.split(":"):
        if d:
            path = os.path.join(d, plugin_type)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
    raise CniError(ERR_INVALID_CONFIG, f"ipam.type: plugin {plugin_type!r} not found in "
                   f"CNI_PATH ({cni_path or 'empty'})")


def spawn(path: str, env: Mapping[str, str], data: bytes) -> tuple[int, bytes]:
    """Run `path` with `data` on stdin; (exit status, stdout). stderr is shared with ours."""
    rin, win = os.pipe()
    rout, wout = os.pipe()
    try:
        pid = os.posix_spawn(path, [path], dict(env), file_actions=[
            (os.POSIX_SPAWN_DUP2, rin, 0), (os.POSIX_SPAWN_DUP2, wout, 1)])
    except OSError as e:
        for fd in (rin, win, rout, wout):
            os.close(fd)
        raise CniError(ERR_IO, f"cannot run {path}: {e.strerror}") from None
    os.close(rin)
    os.close(wout)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(win, view):]
    except BrokenPipeError:
        pass
    finally:
        os.close(win)
    chunks = []
    while chunk := os.read(rout, 65536):
        chunks.append(chunk)
    os.close(rout)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks)


def delegate(call: Call, command: str) -> Any:
    """Run the IPAM plugin with our configuration and environment, CNI_COMMAND=command."""
    path = find_plugin(call.ipam_type, call.env.get("CNI_PATH", ""))
    env = dict(call.env)
    env["CNI_COMMAND"] = command
    rc, out = spawn(path, env, call.raw)
    text = out.decode(errors="replace").strip()
    obj = None
    if text:
        try:
            obj = loads(text)
        except ValueError as e:
            if rc == 0:
                raise CniError(ERR_DECODE, f"IPAM plugin {call.ipam_type}: cannot decode its "
                               f"output: {e}") from None
    if rc != 0:
        raise spec.error_from_output(obj, plugin=call.ipam_type, stderr=text)
    return obj


# -- IPAM either way ---------------------------------------------------------------------------
class Addressing:
    """What IPAM hands out: the pod's IPv4 address, the gateway, routes and DNS."""

    __slots__ = ("dns", "gateway", "ip", "routes")

    def __init__(self, ip: str, gateway: str, routes: list[tuple[str, int, str]],
                 dns: Obj | None) -> None:
        self.ip, self.gateway, self.routes, self.dns = ip, gateway, routes, dns


def ipam_add(call: Call) -> Addressing:
    if call.ipam is not None:
        ip, rng = call.store().allocate(call.ipam, call.container_id, call.ifname)
        gw = spec.int_to_ip4(rng.gateway)
        routes = [(spec.int_to_ip4(dst), plen, spec.int_to_ip4(rgw) if rgw else gw)
                  for dst, plen, rgw in call.ipam.routes]
        return Addressing(spec.int_to_ip4(ip), gw, routes, None)
    try:
        res = delegate(call, "ADD")
    except CniError:
        ipam_del(call, quiet=True)  # the spec: a failed delegated ADD is followed by its DEL
        raise
    ips = res.get("ips") if isinstance(res, dict) else None
    for ipc in ips if isinstance(ips, list) else []:
        address = ipc.get("address") if isinstance(ipc, dict) else None
        if isinstance(address, str) and ":" not in address:
            ip, plen = spec.parse_cidr4(address, "ipam result: address")
            gateway = ipc.get("gateway")
            if not isinstance(gateway, str):
                gateway = spec.int_to_ip4((ip & spec.mask4(plen)) + 1)
            routes = []
            for r in res.get("routes") or []:
                dst = r.get("dst", "") if isinstance(r, dict) else ""
                if isinstance(dst, str) and ":" not in dst:
                    d, dl = spec.parse_cidr4(dst, "ipam result: routes[].dst")
                    routes.append((spec.int_to_ip4(d & spec.mask4(dl)), dl,
                                   str(r.get("gw") or gateway)))
            dns = res.get("dns")
            return Addressing(spec.int_to_ip4(ip), gateway, routes,
                              dns if isinstance(dns, dict) and dns else None)
    ipam_del(call, quiet=True)
    raise CniError(ERR_INVALID_CONFIG, f"ipam: plugin {call.ipam_type} returned no IPv4 "
                   "address (podnet-cni is IPv4-only)")


def ipam_del(call: Call, *, quiet: bool = False) -> None:
    try:
        if call.ipam is not None:
            call.store().release(call.container_id, call.ifname)
        else:
            delegate(call, "DEL")
    except (CniError, OSError):
        if not quiet:
            raise


# -- the verbs ---------------------------------------------------------------------------------
def open_netns(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise CniError(ERR_UNKNOWN_CONTAINER, f"CNI_NETNS: network namespace {path} does not "
                       "exist") from None
    except OSError as e:
        raise CniError(ERR_INVALID_ENV, f"CNI_NETNS: cannot open {path}: {e.strerror}") from None


def _kernel(e: OSError) -> CniError:
    return CniError(ERR_INTERNAL, str(e))


def claim_names(node: Netlink, pod: Netlink, host: str, call: Call) -> None:
    """Fail if the attachment's interfaces exist; remove a retired leftover of a DEL."""
    link = node.get_link(host)
    if link is not None:
        if link.alias != RETIRED_ALIAS:
            raise CniError(ERR_INTERFACE_EXISTS, f"interface {call.ifname!r} of container "
                           f"{call.container_id} already exists: its node side {host} is in "
                           "use (ADD again without DEL?)")
        node.del_link(link.index)
    inside = pod.get_link(call.ifname)
    if inside is not None:
        # the pod side of a veth that a DEL retired (of another attachment) is as good as gone
        peer = node.link_by_index(inside.peer_index) if inside.peer_index else None
        if (peer is None or peer.alias != RETIRED_ALIAS or peer.peer_index != inside.index
                or not node.del_link(peer.index) or pod.get_link(call.ifname) is not None):
            raise CniError(ERR_INTERFACE_EXISTS, f"interface {call.ifname!r} already exists "
                           f"in {call.netns}")


def plumb(node: Netlink, pod: Netlink, netns_fd: int, host: str, call: Call,
          addr: Addressing) -> tuple[Link, Link]:
    from podnet.cni.netlink import EEXIST, RT_SCOPE_LINK, NetlinkError

    try:
        node.add_veth(host, call.ifname, netns_fd, mtu=call.mtu)
    except NetlinkError as e:
        if e.errno == EEXIST:
            raise CniError(ERR_INTERFACE_EXISTS, f"interface {call.ifname!r} or {host} "
                           f"already exists: {e}") from None
        raise
    hl, pl = node.get_link(host), pod.get_link(call.ifname)
    if hl is None or pl is None:
        raise CniError(ERR_INTERNAL, f"veth {host}/{call.ifname} vanished after creation")
    node.set_up(hl.index)
    pod.set_up(pl.index)
    pod.add_address(pl.index, addr.ip, 32)
    pod.add_route(addr.gateway, 32, oif=pl.index, scope=RT_SCOPE_LINK)
    for dst, plen, gw in addr.routes:
        pod.add_route(dst, plen, gateway=gw, oif=pl.index)
    node.add_address(hl.index, addr.gateway, 32)
    node.add_route(addr.ip, 32, oif=hl.index, scope=RT_SCOPE_LINK)
    return hl, pl


def build_result(call: Call, host: Link, pod: Link, addr: Addressing) -> Obj:
    prev = call.prev or {}
    interfaces = [dict(i) for i in prev.get("interfaces") or []]
    base = len(interfaces)
    ours: list[Obj] = [{"name": host.name, "mac": host.mac},
                       {"name": pod.name, "mac": pod.mac, "sandbox": call.netns}]
    if call.mtu and spec.version_at_least(call.version, "1.1.0"):
        for itf in ours:
            itf["mtu"] = call.mtu
    ip: Obj = {"address": f"{addr.ip}/32", "gateway": addr.gateway, "interface": base + 1}
    if not spec.version_at_least(call.version, "1.0.0"):
        ip["version"] = "4"
    routes = [{"dst": f"{dst}/{plen}", "gw": gw} for dst, plen, gw in addr.routes]
    dns = prev.get("dns") or addr.dns or call.dns or {}
    return {"cniVersion": call.version, "interfaces": interfaces + ours,
            "ips": [*(prev.get("ips") or []), ip],
            "routes": [*(prev.get("routes") or []), *routes], "dns": dns}


def cmd_add(call: Call) -> Obj:
    from podnet.cni.netlink import Netlink

    netns_fd = open_netns(call.netns)
    host = host_veth_name(call.container_id, call.ifname)
    try:
        with Netlink() as node, Netlink.in_netns(netns_fd) as pod:
            claim_names(node, pod, host, call)
            addr = ipam_add(call)
            try:
                hl, pl = plumb(node, pod, netns_fd, host, call, addr)
            except BaseException:
                link = node.get_link(host)
                if link is not None:
                    node.del_link(link.index)
                ipam_del(call, quiet=True)
                raise
            return build_result(call, hl, pl, addr)
    except OSError as e:
        raise _kernel(e) from None
    finally:
        os.close(netns_fd)


def retire(node: Netlink, link: Link, delay: float) -> None:
    """Take a veth out of service now (routes, marker) and delete it later or now."""
    for route in node.routes():
        if route.oif == link.index:
            node.del_route(route)
    node.set_alias(link.index, RETIRED_ALIAS)
    if delay <= 0:
        node.del_link(link.index)
    else:
        delete_later(link.name, link.index, delay)


def delete_later(name: str, index: int, delay: float) -> None:
    """Have a detached `sh` delete the retired veth after `delay` seconds, unless it is gone
    by then (the pod's netns was deleted: the usual case). While it waits it costs a shell and
    a `sleep` (a Python process would hold megabytes); Python (reap) starts only when the
    retired veth is still there, and deletes it by index, so a new veth of the same name is
    never touched."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (f"import sys; sys.path.insert(0, {root!r}); "
            "from podnet.cni.plugin import reap; reap(int(sys.argv[1]))")
    # The outer shell starts the waiting one in the background and exits at once; it is
    # reaped here, so the waiting shell is orphaned (adopted by init) instead of becoming a
    # zombie of a long-lived caller such as the agent's CNI server.
    script = (f'(sleep {delay:g}; ip -o link show dev "$1" 2>/dev/null | grep -qF "$2" && '
              f'exec "$3" -IS -c "$4" "$5") &')
    try:
        pid = os.posix_spawn("/bin/sh", ["sh", "-c", script, "sh", name, RETIRED_ALIAS,
                                         sys.executable, code, str(index)],
                             {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, setsid=True,
                             file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDWR, 0),
                                           (os.POSIX_SPAWN_DUP2, 0, 1),
                                           (os.POSIX_SPAWN_DUP2, 0, 2)])
        os.waitpid(pid, 0)
    except OSError:  # no shell: delete now
        from podnet.cni.netlink import Netlink

        with Netlink() as nl:
            nl.del_link(index)


def reap(index: int) -> None:
    """Delete link `index` if it is still a retired veth (run by delete_later's shell)."""
    from podnet.cni.netlink import Netlink

    with Netlink() as nl:
        link = nl.link_by_index(index)
        if link is not None and link.alias == RETIRED_ALIAS:
            nl.del_link(index)


def cmd_del(call: Call) -> None:
    from podnet.cni.netlink import Netlink

    try:
        ipam_del(call)
        with Netlink() as node:
            link = node.get_link(host_veth_name(call.container_id, call.ifname))
            if link is not None:
                retire(node, link, call.delete_delay)
    except OSError as e:
        raise _kernel(e) from None


def _check_failed(msg: str) -> CniError:
    return CniError(ERR_CHECK_FAILED, msg)


def cmd_check(call: Call) -> None:
    from podnet.cni.netlink import AF_INET, Netlink

    prev = call.prev
    if prev is None:
        raise CniError(ERR_INVALID_CONFIG, "prevResult: required for CHECK")
    interfaces = prev.get("interfaces") or []
    mine = [i for i, itf in enumerate(interfaces)
            if itf.get("name") == call.ifname and itf.get("sandbox") == call.netns]
    if not mine:
        raise _check_failed(f"prevResult has no interface {call.ifname!r} in {call.netns}")
    index, expected = mine[0], interfaces[mine[0]]
    ips = [ipc for ipc in prev.get("ips") or []
           if ipc.get("interface") == index and ":" not in ipc.get("address", ":")]
    netns_fd = open_netns(call.netns)
    host = host_veth_name(call.container_id, call.ifname)
    try:
        with Netlink() as node, Netlink.in_netns(netns_fd) as pod:
            pl = pod.get_link(call.ifname)
            if pl is None:
                raise _check_failed(f"interface {call.ifname!r} is missing in {call.netns}")
            if not pl.up:
                raise _check_failed(f"interface {call.ifname!r} in {call.netns} is down")
            if expected.get("mac") and expected["mac"].lower() != pl.mac:
                raise _check_failed(f"interface {call.ifname!r} has MAC {pl.mac}, prevResult "
                                    f"says {expected['mac']}")
            have = {(a.address, a.prefixlen) for a in pod.addresses(AF_INET)
                    if a.index == pl.index}
            for ipc in ips:
                ip, _, plen = ipc["address"].partition("/")
                if (ip, int(plen)) not in have:
                    raise _check_failed(f"address {ipc['address']} is missing on "
                                        f"{call.ifname!r} in {call.netns}")
            routes = {(r.dst, r.dst_len, r.gateway) for r in pod.routes(AF_INET)}
            for r in prev.get("routes") or []:
                dst, _, dlen = str(r.get("dst", "")).partition("/")
                if ":" in dst or not dlen:
                    continue
                if not any(d == dst and dl == int(dlen) and (not r.get("gw") or g == r["gw"])
                           for d, dl, g in routes):
                    via = f" via {r['gw']}" if r.get("gw") else ""
                    raise _check_failed(f"route {r['dst']}{via} is missing in {call.netns}")
            hl = node.get_link(host)
            if hl is None or hl.alias == RETIRED_ALIAS:
                raise _check_failed(f"the node side {host} of {call.ifname!r} is missing")
            node_routes = {(r.dst, r.dst_len) for r in node.routes(AF_INET)
                           if r.oif == hl.index}
            for ipc in ips:
                ip = ipc["address"].partition("/")[0]
                if (ip, 32) not in node_routes:
                    raise _check_failed(f"the node's route {ip}/32 dev {host} is missing")
    except OSError as e:
        raise _kernel(e) from None
    finally:
        os.close(netns_fd)
    if call.ipam is not None:
        lease = call.store().find(call.container_id, call.ifname)
        leased = lease.ip if lease is not None else None
        for ipc in ips:
            if ipc["address"].partition("/")[0] != leased:
                raise _check_failed(f"IPAM holds no lease of {ipc['address']} for "
                                    f"{call.container_id}/{call.ifname}")
    else:
        delegate(call, "CHECK")


def cmd_status(call: Call) -> None:
    if call.ipam is None:
        delegate(call, "STATUS")
        return
    store = call.store()
    try:
        store.check_usable()
    except OSError as e:
        raise CniError(ERR_NOT_AVAILABLE, f"IPAM directory {store.dir} is not usable: "
                       f"{e.strerror}") from None
    used, total = store.usage(call.ipam)
    if used >= total:
        raise CniError(ERR_NOT_AVAILABLE, f"no free IP address in {call.ipam.describe()}: "
                       f"all {total} are leased")


def cmd_gc(call: Call) -> None:
    from podnet.cni.netlink import Netlink

    valid = spec.parse_gc_attachments(call.conf)
    if valid is None:
        raise CniError(ERR_INVALID_CONFIG, f"{spec.VALID_ATTACHMENTS}: required for GC")
    if call.ipam is not None:
        call.store().gc(valid)
    else:
        delegate(call, "GC")
    keep = {host_veth_name(cid, ifname) for cid, ifname in valid}
    try:
        with Netlink() as node:
            for link in node.links():
                if is_host_veth(link.name) and link.name not in keep:
                    node.del_link(link.index)
    except OSError as e:
        raise _kernel(e) from None


VERBS: dict[str, Callable[[Call], Obj | None]] = {
    "ADD": cmd_add, "DEL": cmd_del, "CHECK": cmd_check, "STATUS": cmd_status, "GC": cmd_gc}


# -- entry point -------------------------------------------------------------------------------
def run(command: str, env: Mapping[str, str], raw: bytes) -> tuple[int, str]:
    """One call: (exit status, what to print on stdout)."""
    version = LATEST
    try:
        if command == "VERSION":
            if raw.strip():
                obj = loads(raw.decode(errors="replace"))
                if isinstance(obj, dict) and isinstance(obj.get("cniVersion"), str):
                    version = obj["cniVersion"]
            return 0, dumps(spec.version_result(version))
        if command not in VERBS:
            raise CniError(ERR_INVALID_ENV, f"CNI_COMMAND: unknown command {command!r}: want "
                           f"one of {', '.join(COMMANDS)}")
        try:
            conf = loads(raw.decode())
        except (ValueError, UnicodeDecodeError) as e:
            raise CniError(ERR_DECODE, f"cannot decode the network configuration on stdin: "
                           f"{e}") from None
        if not isinstance(conf, dict):
            raise CniError(ERR_DECODE, "the network configuration on stdin must be a JSON "
                           "object")
        if isinstance(conf.get("cniVersion"), str):
            version = conf["cniVersion"]
        result = VERBS[command](Call(command, env, conf, raw))
        return 0, dumps(result) if result is not None else ""
    except CniError as e:
        return 1, dumps(e.to_dict(version))
    except Exception as e:  # a bug: still answer with an error object, as the spec wants
        return 1, dumps(CniError(ERR_INTERNAL, f"{type(e).__name__}: {e}").to_dict(version))


def _read_stdin() -> bytes:
    chunks = []
    try:
        while chunk := os.read(0, 65536):
            chunks.append(chunk)
    except OSError:
        pass
    return b"".join(chunks)


def handle(env: Mapping[str, str], stdin: bytes) -> tuple[bytes, int]:
    """One call as an exec'd plugin would answer it: (the bytes it prints on stdout, its exit
    status). Touches no process-wide state (os.environ, sys.std*), so the CNI server
    (podnet.cni.server) runs it on behalf of the podnet-cni shim, in the caller's netns."""
    status, out = run(env.get("CNI_COMMAND", ""), env, stdin)
    return ((out + "\n").encode() if out else b""), status


def main() -> int:
    data, status = handle(os.environ, _read_stdin())
    while data:
        data = data[os.write(1, data):]
    return status


def install_launcher(directory: str | os.PathLike[str], name: str = "podnet-cni") -> str:
    """Write an executable `name` into `directory` that runs this plugin with `python -I -S`
    (no site-packages processing, no environment influence), importing podnet from this source
    tree. Returns its path. Put that directory first in the runtime's bin_dirs."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    text = (f"#!{sys.executable} -IS\n"
            "# podnet-cni launcher, written by podnet.cni.plugin.install_launcher\n"
            f"import sys\nsys.path.insert(0, {root!r})\n"
            "from podnet.cni.plugin import main\nsys.exit(main())\n")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(os.fspath(directory), name)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)
    return path


if __name__ == "__main__":
    sys.exit(main())
