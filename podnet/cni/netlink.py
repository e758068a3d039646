"""A small rtnetlink client, stdlib only, for the podnet-cni plugin.

Only what a per-pod veth needs: links (create a veth pair with its peer in another namespace,
get, list, set an alias, delete), IPv4/IPv6 addresses and routes (add, list, delete). Requests
go over one NETLINK_ROUTE socket; a socket belongs to the network namespace it was created in,
so `Netlink.in_netns(fd)` briefly enters another namespace (setns) to open one there.

Why not `ip`: each `ip` process costs a millisecond or more, and the plugin is itself a process
started for every CNI call; a few netlink messages cost microseconds. Start-up matters here too,
so the module imports only C-level modules (_socket, struct) and loads _ctypes (for setns on
Python < 3.12) only when a namespace switch is needed.
"""

from __future__ import annotations

import _socket
import os
from _struct import pack, unpack_from  # struct.py only re-exports these

from podnet.kernel.setns import setns

TYPE_CHECKING = False
if TYPE_CHECKING:
    pass

AF_INET = 2
AF_INET6 = 10
_AF_NETLINK = 16
_SOCK_RAW = 3
_SOCK_CLOEXEC = 0o2000000
_NETLINK_ROUTE = 0
_SOL_NETLINK = 270
_NETLINK_CAP_ACK = 10
_NETLINK_EXT_ACK = 11

# message types and flags
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
_F_REQUEST, _F_ACK = 0x1, 0x4
_F_DUMP = 0x300
_F_REPLACE, _F_EXCL, _F_CREATE = 0x100, 0x200, 0x400
_F_ACK_TLVS = 0x200
_NLMSGERR_ATTR_MSG = 1

# attributes
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK = 1, 3, 4, 5
IFLA_LINKINFO, IFLA_IFALIAS, IFLA_NET_NS_FD = 18, 20, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
_NLA_F_NESTED = 0x8000
_NLA_TYPE_MASK = 0x3FFF

IFF_UP = 0x1
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_HOST = 0, 253, 254
RTN_UNICAST = 1

ENODEV = 19
EEXIST = 17
ESRCH = 3

_IFINFO = "=BxHiII"  # family, type, index, flags, change
_IFADDR = "=BBBBI"  # family, prefixlen, flags, scope, index
_RTMSG = "=BBBBBBBBI"  # family, dst_len, src_len, tos, table, protocol, scope, type, flags


class NetlinkError(OSError):
    """A request the kernel refused: errno, its text, and the kernel's extended message."""

    def __init__(self, errno: int, what: str, kernel_msg: str = "") -> None:
        text = os.strerror(errno) + (f" ({kernel_msg})" if kernel_msg else "")
        super().__init__(errno, f"{what}: {text}")


class Link:
    __slots__ = ("alias", "flags", "index", "kind", "mac", "mtu", "name", "peer_index")

    def __init__(self, index: int, flags: int, attrs: dict[int, bytes]) -> None:
        self.index = index
        self.flags = flags
        self.name = _cstr(attrs.get(IFLA_IFNAME, b""))
        raw_mac = attrs.get(IFLA_ADDRESS, b"")
        self.mac = ":".join(f"{b:02x}" for b in raw_mac)
        self.mtu = unpack_from("=I", attrs[IFLA_MTU])[0] if IFLA_MTU in attrs else 0
        self.alias = _cstr(attrs.get(IFLA_IFALIAS, b""))
        self.peer_index = unpack_from("=i", attrs[IFLA_LINK])[0] if IFLA_LINK in attrs else 0
        info = _parse_attrs(attrs.get(IFLA_LINKINFO, b""))
        self.kind = _cstr(info.get(IFLA_INFO_KIND, b""))

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)


class Address:
    __slots__ = ("address", "family", "index", "prefixlen", "scope")

    def __init__(self, family: int, prefixlen: int, scope: int, index: int, address: str) -> None:
        self.family, self.prefixlen, self.scope = family, prefixlen, scope
        self.index, self.address = index, address


class Route:
    __slots__ = ("dst", "dst_len", "family", "gateway", "oif", "protocol", "scope", "table",
                 "type")

    def __init__(self, payload: bytes) -> None:
        (self.family, self.dst_len, _src_len, _tos, table, self.protocol, self.scope,
         self.type, _flags) = unpack_from(_RTMSG, payload)
        attrs = _parse_attrs(payload, 12)
        self.table = unpack_from("=I", attrs[RTA_TABLE])[0] if RTA_TABLE in attrs else table
        zero = "0.0.0.0" if self.family == AF_INET else "::"
        self.dst = ntop(self.family, attrs[RTA_DST]) if RTA_DST in attrs else zero
        self.gateway = ntop(self.family, attrs[RTA_GATEWAY]) if RTA_GATEWAY in attrs else ""
        self.oif = unpack_from("=I", attrs[RTA_OIF])[0] if RTA_OIF in attrs else 0


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def _attr(kind: int, data: bytes) -> bytes:
    length = 4 + len(data)
    return pack("=HH", length, kind) + data + b"\0" * (-length % 4)


def _nest(kind: int, data: bytes) -> bytes:
    return _attr(kind | _NLA_F_NESTED, data)


def _u32(kind: int, value: int) -> bytes:
    return _attr(kind, pack("=I", value))


def _name(kind: int, name: str) -> bytes:
    return _attr(kind, name.encode() + b"\0")


def _parse_attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while offset + 4 <= len(data):
        length, kind = unpack_from("=HH", data, offset)
        if length < 4:
            break
        out[kind & _NLA_TYPE_MASK] = data[offset + 4: offset + length]
        offset += (length + 3) & ~3
    return out


def pton(family: int, text: str) -> bytes:
    return _socket.inet_pton(family, text)


def ntop(family: int, raw: bytes) -> str:
    return _socket.inet_ntop(family, raw)


def family_of(address: str) -> int:
    return AF_INET6 if ":" in address else AF_INET


# -- namespaces --------------------------------------------------------------------------------

# -- the client --------------------------------------------------------------------------------
class Netlink:
    """One NETLINK_ROUTE socket, in the namespace current when it was made."""

    def __init__(self) -> None:
        sock = _socket.socket(_AF_NETLINK, _SOCK_RAW | _SOCK_CLOEXEC, _NETLINK_ROUTE)
        for opt in (_NETLINK_CAP_ACK, _NETLINK_EXT_ACK):
            try:
                sock.setsockopt(_SOL_NETLINK, opt, 1)
            except OSError:
                pass
        sock.bind((0, 0))
        self.sock = sock
        self.seq = 0

    @classmethod
    def in_netns(cls, fd: int) -> Netlink:
        """A socket in the namespace open at `fd`; the thread comes back to its own after."""
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(fd)
            try:
                return cls()
            finally:
                setns(own)
        finally:
            os.close(own)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, mtype: int, flags: int, body: bytes, *, what: str,
                dump: bool = False) -> list[tuple[int, bytes]]:
        """Send one request; return the messages of the answer (type, payload) until the ACK
        or the end of the dump. A refusal raises NetlinkError."""
        self.seq += 1
        seq = self.seq
        flags |= _F_REQUEST | (_F_DUMP if dump else _F_ACK)
        self.sock.send(pack("=IHHII", 16 + len(body), mtype, flags, seq, 0) + body)
        out: list[tuple[int, bytes]] = []
        while True:
            data = self.sock.recv(1 << 18)
            offset = 0
            while offset + 16 <= len(data):
                length, kind, mflags, mseq, _pid = unpack_from("=IHHII", data, offset)
                if length < 16:
                    raise NetlinkError(71, what, "malformed netlink message")  # EPROTO
                payload = data[offset + 16: offset + length]
                offset += (length + 3) & ~3
                if mseq != seq:
                    continue
                if kind == _NLMSG_ERROR:
                    err = -unpack_from("=i", payload)[0]
                    if err == 0:
                        return out
                    msg = ""
                    if mflags & _F_ACK_TLVS:
                        tlv = _parse_attrs(payload, 20)
                        msg = _cstr(tlv.get(_NLMSGERR_ATTR_MSG, b""))
                    raise NetlinkError(err, what, msg)
                if kind == _NLMSG_DONE:
                    return out
                out.append((kind, payload))

    # -- links ---------------------------------------------------------------------------------
    def get_link(self, name: str) -> Link | None:
        return self._one_link(pack(_IFINFO, 0, 0, 0, 0, 0) + _name(IFLA_IFNAME, name),
                              f"get link {name}")

    def link_by_index(self, index: int) -> Link | None:
        return self._one_link(pack(_IFINFO, 0, 0, index, 0, 0), f"get link {index}")

    def _one_link(self, request: bytes, what: str) -> Link | None:
        """The link a GETLINK request names, or None when there is no such link."""
        try:
            msgs = self.request(RTM_GETLINK, 0, request, what=what)
        except NetlinkError as e:
            if e.errno == ENODEV:
                return None
            raise
        for kind, payload in msgs:
            if kind == RTM_NEWLINK:
                return _link(payload)
        return None

    def links(self) -> list[Link]:
        msgs = self.request(RTM_GETLINK, 0, pack(_IFINFO, 0, 0, 0, 0, 0), what="list links",
                            dump=True)
        return [_link(p) for k, p in msgs if k == RTM_NEWLINK]

    def add_veth(self, name: str, peer: str, peer_netns_fd: int, *, mtu: int = 0) -> None:
        """Create veth `name` here and its peer `peer` in the namespace open at
        `peer_netns_fd`, both down (the kernel refuses to bring a veth up before its peer is
        attached). Fails with EEXIST when either name is taken."""
        mtu_attr = _u32(IFLA_MTU, mtu) if mtu else b""
        peer_msg = (pack(_IFINFO, 0, 0, 0, 0, 0) + _name(IFLA_IFNAME, peer) + mtu_attr
                    + _u32(IFLA_NET_NS_FD, peer_netns_fd))
        info = _attr(IFLA_INFO_KIND, b"veth") + _nest(
            IFLA_INFO_DATA, _nest(VETH_INFO_PEER, peer_msg))
        body = (pack(_IFINFO, 0, 0, 0, 0, 0) + _name(IFLA_IFNAME, name) + mtu_attr
                + _nest(IFLA_LINKINFO, info))
        self.request(RTM_NEWLINK, _F_CREATE | _F_EXCL, body,
                     what=f"create veth {name} (peer {peer})")

    def set_up(self, index: int) -> None:
        self.request(RTM_NEWLINK, 0, pack(_IFINFO, 0, 0, index, IFF_UP, IFF_UP),
                     what=f"set link {index} up")

    def set_alias(self, index: int, alias: str) -> None:
        self.request(RTM_NEWLINK, 0, pack(_IFINFO, 0, 0, index, 0, 0)
                     + _attr(IFLA_IFALIAS, alias.encode()), what=f"set alias of link {index}")

    def del_link(self, index: int) -> bool:
        """Delete a link by index; False when it is already gone."""
        try:
            self.request(RTM_DELLINK, 0, pack(_IFINFO, 0, 0, index, 0, 0),
                         what=f"delete link {index}")
        except NetlinkError as e:
            if e.errno == ENODEV:
                return False
            raise
        return True

    # -- addresses -----------------------------------------------------------------------------
    def add_address(self, index: int, address: str, prefixlen: int,
                    scope: int = RT_SCOPE_UNIVERSE) -> None:
        family = family_of(address)
        raw = pton(family, address)
        body = (pack(_IFADDR, family, prefixlen, 0, scope, index) + _attr(IFA_LOCAL, raw)
                + _attr(IFA_ADDRESS, raw))
        self.request(RTM_NEWADDR, _F_CREATE | _F_REPLACE, body,
                     what=f"add address {address}/{prefixlen} to link {index}")

    def addresses(self, family: int = AF_INET) -> list[Address]:
        msgs = self.request(RTM_GETADDR, 0, pack(_IFADDR, family, 0, 0, 0, 0),
                            what="list addresses", dump=True)
        out = []
        for kind, p in msgs:
            if kind != RTM_NEWADDR:
                continue
            fam, plen, _flags, scope, index = unpack_from(_IFADDR, p)
            attrs = _parse_attrs(p, 8)
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if raw:
                out.append(Address(fam, plen, scope, index, ntop(fam, raw)))
        return out

    # -- routes --------------------------------------------------------------------------------
    def _route_body(self, dst: str, dst_len: int, gateway: str, oif: int, scope: int,
                    table: int) -> bytes:
        family = family_of(dst)
        body = pack(_RTMSG, family, dst_len, 0, 0, table if table < 256 else 0, RTPROT_BOOT,
                    scope, RTN_UNICAST, 0)
        if dst_len:
            body += _attr(RTA_DST, pton(family, dst))
        if gateway:
            body += _attr(RTA_GATEWAY, pton(family, gateway))
        if oif:
            body += _u32(RTA_OIF, oif)
        return body + _u32(RTA_TABLE, table)

    def add_route(self, dst: str, dst_len: int, *, gateway: str = "", oif: int = 0,
                  scope: int = RT_SCOPE_UNIVERSE, table: int = RT_TABLE_MAIN,
                  replace: bool = True) -> None:
        flags = _F_CREATE | (_F_REPLACE if replace else _F_EXCL)
        via = f" via {gateway}" if gateway else ""
        self.request(RTM_NEWROUTE, flags,
                     self._route_body(dst, dst_len, gateway, oif, scope, table),
                     what=f"add route {dst}/{dst_len}{via} dev {oif}")

    def del_route(self, route: Route) -> bool:
        try:
            self.request(RTM_DELROUTE, 0, self._route_body(
                route.dst, route.dst_len, route.gateway, route.oif, route.scope, route.table),
                what=f"delete route {route.dst}/{route.dst_len}")
        except NetlinkError as e:
            if e.errno == ESRCH:
                return False
            raise
        return True

    def routes(self, family: int = AF_INET, table: int = RT_TABLE_MAIN) -> list[Route]:
        msgs = self.request(RTM_GETROUTE, 0, pack(_RTMSG, family, 0, 0, 0, 0, 0, 0, 0, 0),
                            what="list routes", dump=True)
        out = [Route(p) for k, p in msgs if k == RTM_NEWROUTE]
        return [r for r in out if r.table == table]


def _link(payload: bytes) -> Link:
    _family, _type, index, flags, _change = unpack_from(_IFINFO, payload)
    return Link(index, flags, _parse_attrs(payload, 16))
