"""podnet-cni's built-in IPAM ("ipam": {"type": "podnet", ...}): IPv4 leases on disk.

Configuration (host-local's shape, so a conflist can switch between the two):

    "ipam": {"type": "podnet",
             "ranges": [[{"subnet": "10.244.1.0/24", "rangeStart": ..., "rangeEnd": ...,
                          "gateway": ...}]],       # or "subnet" & co. directly in "ipam"
             "routes": [{"dst": "0.0.0.0/0"}],    # default: a default route via the gateway
             "dataDir": "/var/lib/cni/podnet"}     # leases go in <dataDir>/<network name>/

Defaults per range: the gateway is the subnet's first address; the range spans the subnet
without its network and broadcast addresses, and never hands out the gateway. One range set
(IPv4), with one or more ranges in it.

The store is one empty file per lease, named `<ip>@<containerID>@<ifname>`, so a single
directory listing gives every lease and every owner (container IDs never contain '@'). Leases
are created with O_EXCL and the directory is fsynced, so a lease survives a crash the moment
ADD returns. Every allocation holds an exclusive flock on `<dir>/.lock`, so concurrent ADDs
(separate processes) never pick the same address. Allocation goes round-robin from the last
address handed out (kept in `<dir>/.last`, a hint only), as host-local does, so a freed address
is not reused at once. An attachment (containerID, ifname) holds at most one lease: a second
allocation for it returns the lease it has.
"""

from __future__ import annotations

import fcntl
import os

from podnet.cni.spec import (
    ERR_INVALID_CONFIG,
    ERR_TRY_AGAIN_LATER,
    ERR_UNSUPPORTED_FIELD,
    CniError,
    int_to_ip4,
    ip4_to_int,
    mask4,
    parse_cidr4,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any

DEFAULT_DATA_DIR = "/var/lib/cni/podnet"
BUILTIN_TYPE = "podnet"
_TOP_KEYS = frozenset({"type", "subnet", "rangeStart", "rangeEnd", "gateway", "ranges",
                       "routes", "dataDir"})
_RANGE_KEYS = frozenset({"subnet", "rangeStart", "rangeEnd", "gateway"})


class Range:
    """One IPv4 range: addresses start..end of subnet network/prefix (ints), and its
    gateway."""

    __slots__ = ("end", "gateway", "network", "prefix", "start")

    def __init__(self, network: int, prefix: int, start: int, end: int, gateway: int) -> None:
        self.network, self.prefix = network, prefix
        self.start, self.end, self.gateway = start, end, gateway

    @property
    def subnet(self) -> str:
        return f"{int_to_ip4(self.network)}/{self.prefix}"

    def __contains__(self, ip: int) -> bool:
        return self.start <= ip <= self.end

    def size(self) -> int:
        """How many addresses the range can hand out (the gateway is never one of them)."""
        return self.end - self.start + 1 - (1 if self.gateway in self else 0)


class IpamConfig:
    __slots__ = ("data_dir", "network", "ranges", "routes")

    def __init__(self, network: str, ranges: list[Range], routes: list[tuple[int, int, int]],
                 data_dir: str) -> None:
        self.network = network
        self.ranges = ranges
        self.routes = routes  # (dst, prefix, gateway or 0 = the range's gateway)
        self.data_dir = data_dir

    def describe(self) -> str:
        return ", ".join(r.subnet if (r.start, r.end) == _default_span(r.network, r.prefix)
                         else f"{r.subnet} ({int_to_ip4(r.start)}-{int_to_ip4(r.end)})"
                         for r in self.ranges)

    def size(self) -> int:
        return sum(r.size() for r in self.ranges)

    def range_of(self, ip: int) -> Range | None:
        for r in self.ranges:
            if ip in r:
                return r
        return None


def _default_span(network: int, prefix: int) -> tuple[int, int]:
    return network + 1, network + (1 << (32 - prefix)) - 2


def _unsupported(obj: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    for key in obj:
        if key not in allowed:
            raise CniError(ERR_UNSUPPORTED_FIELD, f"unsupported field {where}{key}: "
                           f"{obj[key]!r} (podnet IPAM knows {', '.join(sorted(allowed))})")


def _parse_range(obj: object, where: str) -> Range:
    if not isinstance(obj, dict):
        raise CniError(ERR_INVALID_CONFIG, f"{where}: must be an object")
    _unsupported(obj, _RANGE_KEYS if where != "ipam" else _TOP_KEYS, f"{where}.")
    if "subnet" not in obj:
        raise CniError(ERR_INVALID_CONFIG, f"{where}.subnet: required, e.g. \"10.244.1.0/24\"")
    addr, prefix = parse_cidr4(obj["subnet"], f"{where}.subnet")
    network = addr & mask4(prefix)
    if addr != network:
        raise CniError(ERR_INVALID_CONFIG, f"{where}.subnet: {obj['subnet']} has host bits "
                       f"set; want {int_to_ip4(network)}/{prefix}")
    if prefix > 30:
        raise CniError(ERR_INVALID_CONFIG, f"{where}.subnet: {obj['subnet']} is too small: "
                       "want a /30 or larger (a gateway and at least one address)")
    lo, hi = _default_span(network, prefix)
    gateway = ip4_to_int(obj["gateway"], f"{where}.gateway") if "gateway" in obj else lo
    start = ip4_to_int(obj["rangeStart"], f"{where}.rangeStart") if "rangeStart" in obj else lo
    end = ip4_to_int(obj["rangeEnd"], f"{where}.rangeEnd") if "rangeEnd" in obj else hi
    for key, value in (("gateway", gateway), ("rangeStart", start), ("rangeEnd", end)):
        if not lo <= value <= hi:
            raise CniError(ERR_INVALID_CONFIG, f"{where}.{key}: {int_to_ip4(value)} is not a "
                           f"host address of {obj['subnet']}")
    if start > end:
        raise CniError(ERR_INVALID_CONFIG, f"{where}.rangeStart: {int_to_ip4(start)} is after "
                       f"rangeEnd {int_to_ip4(end)}")
    rng = Range(network, prefix, start, end, gateway)
    if rng.size() < 1:
        raise CniError(ERR_INVALID_CONFIG, f"{where}: the range holds no address besides the "
                       "gateway")
    return rng


def _parse_routes(obj: object) -> list[tuple[int, int, int]]:
    if obj is None:
        return [(0, 0, 0)]
    if not isinstance(obj, list):
        raise CniError(ERR_INVALID_CONFIG, "ipam.routes: must be a list of {\"dst\": CIDR}")
    out = []
    for i, r in enumerate(obj):
        where = f"ipam.routes[{i}]"
        if not isinstance(r, dict) or "dst" not in r:
            raise CniError(ERR_INVALID_CONFIG, f"{where}: want {{\"dst\": CIDR, \"gw\": IP}}")
        _unsupported(r, frozenset({"dst", "gw"}), f"{where}.")
        dst, prefix = parse_cidr4(r["dst"], f"{where}.dst")
        gw = ip4_to_int(r["gw"], f"{where}.gw") if "gw" in r else 0
        out.append((dst & mask4(prefix), prefix, gw))
    return out


def parse_config(ipam: object, network: str) -> IpamConfig:
    """Validate the "ipam" object of a podnet-cni configuration (pure)."""
    if not isinstance(ipam, dict):
        raise CniError(ERR_INVALID_CONFIG, "ipam: must be an object")
    _unsupported(ipam, _TOP_KEYS, "ipam.")
    if "ranges" in ipam:
        if any(k in ipam for k in _RANGE_KEYS):
            raise CniError(ERR_INVALID_CONFIG, "ipam: give either ranges or subnet, not both")
        sets = ipam["ranges"]
        if not isinstance(sets, list) or not sets or not all(
                isinstance(s, list) and s for s in sets):
            raise CniError(ERR_INVALID_CONFIG, "ipam.ranges: must be a list of range sets, "
                           "each a non-empty list of ranges")
        if len(sets) > 1:
            raise CniError(ERR_UNSUPPORTED_FIELD, f"unsupported field ipam.ranges: {sets!r} "
                           "(podnet IPAM serves one IPv4 range set)")
        ranges = [_parse_range(r, f"ipam.ranges[0][{j}]") for j, r in enumerate(sets[0])]
    elif "subnet" in ipam:
        ranges = [_parse_range(ipam, "ipam")]
    else:
        raise CniError(ERR_INVALID_CONFIG, "ipam.ranges: required (or ipam.subnet), e.g. "
                       "[[{\"subnet\": \"10.244.1.0/24\"}]]")
    for i, a in enumerate(ranges):
        for b in ranges[i + 1:]:
            if a.start <= b.end and b.start <= a.end:
                raise CniError(ERR_INVALID_CONFIG, f"ipam.ranges: {a.subnet} and {b.subnet} "
                               "overlap")
    data_dir = ipam.get("dataDir", DEFAULT_DATA_DIR)
    if not isinstance(data_dir, str) or not data_dir.startswith("/"):
        raise CniError(ERR_INVALID_CONFIG, f"ipam.dataDir: want an absolute path, got "
                       f"{data_dir!r}")
    return IpamConfig(network, ranges, _parse_routes(ipam.get("routes")), data_dir)


def candidates(ranges: list[Range], last: int | None) -> Iterator[tuple[int, Range]]:
    """Every address of the ranges once, round-robin: from just after `last` (when it is in a
    range) to the end, then from the start. The gateway is skipped."""
    first_range, first = 0, ranges[0].start
    if last is not None:
        for i, r in enumerate(ranges):
            if last in r:
                first_range, first = i, last + 1
                break
    n = len(ranges)
    for k in range(n + 1):
        r = ranges[(first_range + k) % n]
        lo, hi = (first, r.end) if k == 0 else (r.start, first - 1) if k == n else (r.start,
                                                                                      r.end)
        for ip in range(lo, hi + 1):
            if ip != r.gateway:
                yield ip, r


# -- the store ---------------------------------------------------------------------------------
class Lease:
    __slots__ = ("container_id", "ifname", "ip")

    def __init__(self, ip: str, container_id: str, ifname: str) -> None:
        self.ip, self.container_id, self.ifname = ip, container_id, ifname

    @property
    def key(self) -> tuple[str, str]:
        return self.container_id, self.ifname

    @property
    def filename(self) -> str:
        return f"{self.ip}@{self.container_id}@{self.ifname}"

    @classmethod
    def from_filename(cls, name: str) -> Lease | None:
        parts = name.split("@", 2)
        if len(parts) != 3 or name.startswith("."):
            return None
        try:
            ip4_to_int(parts[0])
        except CniError:
            return None
        return cls(parts[0], parts[1], parts[2])


class LeaseStore:
    """The leases of one network: <data_dir>/<network>/."""

    def __init__(self, data_dir: str, network: str) -> None:
        self.dir = os.path.join(data_dir, network)

    def _open_dir(self) -> int:
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        return os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def _lock(self) -> int:
        fd = os.open(os.path.join(self.dir, ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                     0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def leases(self) -> list[Lease]:
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        return [lease for lease in map(Lease.from_filename, names) if lease is not None]

    def find(self, container_id: str, ifname: str) -> Lease | None:
        for lease in self.leases():
            if lease.key == (container_id, ifname):
                return lease
        return None

    def _last(self) -> int | None:
        try:
            with open(os.path.join(self.dir, ".last")) as f:
                return ip4_to_int(f.read().strip())
        except (OSError, CniError):
            return None

    def allocate(self, cfg: IpamConfig, container_id: str, ifname: str) -> tuple[int, Range]:
        """Lease an address to (container_id, ifname); its existing lease if it has one.
        Raises ERR_TRY_AGAIN_LATER when every address is taken."""
        dfd = self._open_dir()
        lock = self._lock()
        try:
            taken = set()
            stale = []
            for lease in self.leases():
                ip = ip4_to_int(lease.ip)
                rng = cfg.range_of(ip)
                if lease.key == (container_id, ifname):
                    if rng is not None:
                        return ip, rng
                    stale.append(lease)  # from a range the configuration no longer has
                taken.add(ip)
            self._remove(stale)
            for ip, rng in candidates(cfg.ranges, self._last()):
                if ip in taken:
                    continue
                name = Lease(int_to_ip4(ip), container_id, ifname).filename
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600,
                             dir_fd=dfd)
                os.close(fd)
                os.fsync(dfd)
                self._write_last(ip)
                return ip, rng
            used = sum(1 for ip in taken if cfg.range_of(ip) is not None)
            raise CniError(ERR_TRY_AGAIN_LATER,
                           f"no free IP address in {cfg.describe()} for network "
                           f"{cfg.network}: all {cfg.size()} addresses are leased",
                           f"{used} leases in {self.dir}; an address is free again when a "
                           "container is deleted")
        finally:
            os.close(lock)
            os.close(dfd)

    def _write_last(self, ip: int) -> None:
        path = os.path.join(self.dir, ".last")
        with open(path + ".tmp", "w") as f:
            f.write(int_to_ip4(ip))
        os.replace(path + ".tmp", path)

    def _remove(self, doomed: Iterable[Lease]) -> list[Lease]:
        gone = []
        for lease in doomed:
            try:
                os.unlink(os.path.join(self.dir, lease.filename))
                gone.append(lease)
            except FileNotFoundError:
                pass
        if gone:
            dfd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        return gone

    def release(self, container_id: str, ifname: str) -> list[Lease]:
        """Free the leases of (container_id, ifname); none is fine (DEL is idempotent)."""
        return self._remove(lease for lease in self.leases()
                            if lease.key == (container_id, ifname))

    def gc(self, valid: set[tuple[str, str]]) -> list[Lease]:
        """Free every lease whose attachment is not in `valid`."""
        if not os.path.isdir(self.dir):
            return []
        lock = self._lock()
        try:
            return self._remove(lease for lease in self.leases() if lease.key not in valid)
        finally:
            os.close(lock)

    def usage(self, cfg: IpamConfig) -> tuple[int, int]:
        """(leased addresses inside the configured ranges, how many the ranges hold)."""
        used = sum(1 for lease in self.leases()
                   if cfg.range_of(ip4_to_int(lease.ip)) is not None)
        return used, cfg.size()

    def check_usable(self) -> None:
        """Raise OSError when the directory cannot be created or locked."""
        os.close(self._open_dir())
        os.close(self._lock())
