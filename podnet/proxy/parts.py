"""The node-side parts the proxy loop drives besides its table, put together for an agent:
UDP conntrack cleanup, healthCheckNodePort answers, and ARP for the LoadBalancer IPs this node
announces (thin: each part is its own module).

The speaker runs in a task of its own: its gratuitous ARP (arping) takes about a second, and
the table's next sync must not wait for it. It always works towards the latest set asked for.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from podnet.proxy import announce, conntrack
from podnet.proxy.healthcheck import HealthServer
from podnet.proxy.speaker import Speaker

log = logging.getLogger("podnet.proxy")
Obj = dict[str, Any]
RETRY = 1.0


class NodeSide:
    def __init__(self, ns: str, node_ip: str) -> None:
        self.ns = ns
        self.health_server = HealthServer(ns, node_ip)
        self.speaker = Speaker(ns)
        self._wanted: set[str] | None = None
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def clear_udp(self, flows: set[tuple[str, int, str | None]]) -> None:
        await conntrack.clear_udp(self.ns, sorted(flows, key=lambda f: (f[0], f[1], f[2] or "")))

    async def health(self, ports: dict[int, tuple[str, str, int]]) -> None:
        await self.health_server.sync(ports)

    async def announce(self, ips: set[str]) -> None:
        if ips == self._wanted:
            return
        self._wanted = set(ips)
        self._changed.set()
        if self._task is None:
            self._task = asyncio.create_task(self._speak())

    async def _speak(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            wanted = set(self._wanted or ())
            try:
                await self.speaker.sync(wanted)
                log.info("proxy: announcing %s", ", ".join(sorted(wanted)) or "nothing")
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("proxy: announcing %s: %s; retrying", sorted(wanted), e)
                await asyncio.sleep(RETRY)
                self._changed.set()

    def announcers(self, services: list[Obj], slices: list[Obj],
                   nodes: list[Obj]) -> dict[str, str]:
        return announce.announcers(services, slices, nodes)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.health_server.close()
