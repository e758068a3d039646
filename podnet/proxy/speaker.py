"""Answering ARP for the LoadBalancer IPs this node announces (shell): MetalLB's layer-2 mode
done by the kernel.

The IPs sit as /32 addresses on a link of their own in the node's namespace (`lb0`), so the
kernel answers ARP for them on eth0 (arp_ignore 0: any local address, on any interface) and
the proxy's prerouting DNAT sees them as local destinations. Which IPs: podnet.proxy.announce.

    external host ── ARP who-has 172.18.0.200 ──► eth0 of the node ─ kernel: local (lb0)? reply
                 ◄── gratuitous ARP (arping -U) ── when the IP arrives here, so the LAN's
                                                   caches switch to this node at once

`lb0` is a dummy link, or an ifb link where the kernel has no dummy driver (this machine's);
both are plain devices that only hold addresses. The addresses carry `scope host`: the node
never picks an IP that may move away as the source of its own traffic (ARP and the DNAT don't
look at the scope).

A Speaker keeps the link's addresses in memory after reading them once (the first sync finds
leftovers of an earlier run), and reads them again after any failure.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from collections.abc import Iterable

from podnet.kernel import netns
from podnet.kernel.netns import KernelError

log = logging.getLogger("podnet.proxy")

LINK_KINDS = ("dummy", "ifb")  # the first one the kernel knows is used
ARPING_TIMEOUT = 10.0


class SpeakerError(KernelError):
    """The node's LoadBalancer IPs could not be set, or not announced; the message says which."""


def _ipv4(ip: str) -> str:
    try:
        return str(ipaddress.IPv4Address(ip))
    except ValueError:
        raise ValueError(f"not an IPv4 address: {ip!r}") from None


class Speaker:
    """Holds exactly the IPs given to sync() on `dev` in namespace `ns`, announcing each new
    one with a gratuitous ARP on `lan_dev`."""

    def __init__(self, ns: str, dev: str = "lb0", lan_dev: str = "eth0") -> None:
        self.ns = ns
        self.dev = dev
        self.lan_dev = lan_dev
        self._held: set[str] | None = None  # "ip/len" on dev; None: unknown, read it first
        self._unannounced: set[str] = set()  # held IPs whose gratuitous ARP failed
        self._lock = asyncio.Lock()

    @property
    def ips(self) -> frozenset[str]:
        """The IPs the link holds as far as this Speaker knows (empty before the first sync)."""
        return frozenset(c.split("/")[0] for c in self._held or ())

    async def sync(self, ips: Iterable[str]) -> None:
        """Make `dev` hold exactly `ips` (/32 each) and announce the new ones. SpeakerError
        when the addresses could not be set (the next sync reads the link again) or an
        announcement failed (the next sync sends it again); ValueError for a non-IPv4 IP."""
        wanted = {f"{_ipv4(ip)}/32" for ip in ips}
        async with self._lock:
            held = await self._ensure_link() if self._held is None else self._held
            gone, new = sorted(held - wanted), sorted(wanted - held)
            commands = [f"addr del {c} dev {self.dev}" for c in gone]
            commands += [f"addr add {c} dev {self.dev} scope host" for c in new]
            try:
                await netns.aip_batch(self.ns, commands)
            except KernelError as e:
                self._held = None
                log.error("%s: setting LoadBalancer IPs on %s failed (read again next sync): %s",
                          self.ns, self.dev, e)
                raise SpeakerError(f"{self.ns}: cannot set LoadBalancer IPs on {self.dev} "
                                   f"(-{gone} +{new}): {e}") from e
            self._held = wanted
            if gone or new:
                log.info("%s: LoadBalancer IPs on %s: removed %s, added %s", self.ns, self.dev,
                         [c.split("/")[0] for c in gone] or "none",
                         [c.split("/")[0] for c in new] or "none")
            self._unannounced &= {c.split("/")[0] for c in wanted}
            await self._announce(sorted(self._unannounced | {c.split("/")[0] for c in new}))

    async def close(self) -> None:
        """Delete the link and its addresses (nothing to do when the namespace is gone)."""
        async with self._lock:
            self._held, self._unannounced = None, set()
            if not netns.exists(self.ns):
                return
            rc, _, err = await netns.arun(["ip", "-n", self.ns, "link", "del", self.dev],
                                          check=False)
            if rc != 0 and "Cannot find device" not in err:
                log.error("%s: deleting %s failed: %s", self.ns, self.dev, err.strip())
                raise SpeakerError(f"{self.ns}: cannot delete {self.dev}: {err.strip()}")
            if rc == 0:
                log.info("%s: deleted %s and its LoadBalancer IPs", self.ns, self.dev)

    # -- the link --------------------------------------------------------------------------

    async def _ensure_link(self) -> set[str]:
        """The IPv4 addresses ("ip/len") on dev, made (and set up) if it is missing."""
        try:
            held = await self._read()
            if held is None:
                await self._create()
                held = set()
            else:
                await netns.arun(["ip", "-n", self.ns, "link", "set", self.dev, "up"])
        except KernelError as e:
            log.error("%s: cannot prepare %s: %s", self.ns, self.dev, e)
            raise SpeakerError(f"{self.ns}: cannot prepare {self.dev}: {e}") from e
        if held:
            log.info("%s: %s already holds %s", self.ns, self.dev, sorted(held))
        return held

    async def _read(self) -> set[str] | None:
        rc, out, err = await netns.arun(["ip", "-n", self.ns, "-j", "addr", "show", "dev",
                                         self.dev], check=False)
        if rc != 0:
            if "does not exist" in err or "Cannot find device" in err:
                return None
            raise KernelError(f"ip addr show dev {self.dev}: exit {rc}: {err.strip()}")
        return {f"{a['local']}/{a['prefixlen']}" for link in json.loads(out or "[]")
                for a in link.get("addr_info", []) if a.get("family") == "inet"}

    async def _create(self) -> None:
        refused = []
        for kind in LINK_KINDS:
            rc, _, err = await netns.arun(["ip", "-n", self.ns, "link", "add", self.dev, "type",
                                           kind], check=False)
            if rc == 0:
                await netns.arun(["ip", "-n", self.ns, "link", "set", self.dev, "up"])
                log.info("%s: created %s (%s)", self.ns, self.dev, kind)
                return
            refused.append(f"{kind}: {err.strip()}")
            if "Unknown device type" not in err:
                break
        raise KernelError(f"cannot create {self.dev}: {'; '.join(refused)}")

    # -- gratuitous ARP --------------------------------------------------------------------

    async def _announce(self, ips: list[str]) -> None:
        """One `arping -U` per IP, all at once (each lingers about a second after sending)."""
        if not ips:
            return
        results = await asyncio.gather(*(self._arping(ip) for ip in ips))
        failed = {ip: err for ip, err in zip(ips, results, strict=True) if err is not None}
        self._unannounced = set(failed)
        if failed:
            log.error("%s: gratuitous ARP failed (sent again next sync): %s", self.ns, failed)
            raise SpeakerError(f"{self.ns}: gratuitous ARP on {self.lan_dev} failed: {failed}")

    async def _arping(self, ip: str) -> str | None:
        argv = netns.exec_argv(self.ns, ["arping", "-U", "-c", "1", "-I", self.lan_dev, ip])
        try:
            rc, out, err = await netns.arun(argv, check=False, timeout=ARPING_TIMEOUT)
        except (KernelError, OSError) as e:
            return str(e)
        return None if rc == 0 else f"exit {rc}: {(err or out).strip()}"
