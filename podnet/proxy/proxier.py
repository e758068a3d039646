"""The proxy's sync loop: Services and EndpointSlices in, one nft transaction out per sync.

Watch handlers only index the object and mark its Service dirty; one loop waits for work,
lets a burst settle (`COALESCE`), recompiles the dirty Services from the cached objects and
applies the element diff against the Ruleset it last applied, kept in memory; the table is
never read back. The first sync, and the one after any failure, is a full sync that replaces
the table in one transaction, so nothing stale survives a restart of the agent.

Other parts of the node's table (NetworkPolicy's `pol-` objects, podnet.policy.enforcer) are
`sections`: a full sync appends each section's full body to its script, so the whole table,
theirs included, is replaced in that one transaction, and tells them whether it was applied.
Every apply to the table, the proxy's and the sections' own, holds the one `lock` they share,
so no two transactions interleave.

After the table, the node-side parts follow the same objects: the UDP conntrack entries of
endpoints a Service stopped using are cleared, healthCheckNodePorts answer for the
externalTrafficPolicy Local Services, and this node answers ARP for the LoadBalancer IPs the
shared choice (podnet.proxy.announce) gives it. Their failures are logged and retried; they
never force a full sync of the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from podnet import daemon
from podnet.proxy import model, nft, render

log = logging.getLogger("podnet.proxy")

Obj = dict[str, Any]
Key = tuple[str, str]
COALESCE = 0.01  # seconds a sync waits for more changes after the first
RETRY = 1.0


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No garbage collection while a full sync builds its hundreds of thousands of small
    objects (none of them cyclic): measured here, collections take a third of a 10,000-Service
    compile."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class NodeParts(Protocol):
    """What the loop drives besides the table (podnet.proxy.speaker, healthcheck, conntrack,
    announce); the agent supplies them, tests may leave them out."""

    async def clear_udp(self, flows: set[tuple[str, int, str | None]]) -> None: ...

    async def health(self, ports: dict[int, tuple[str, str, int]]) -> None: ...

    async def announce(self, ips: set[str]) -> None: ...

    def announcers(self, services: list[Obj], slices: list[Obj],
                   nodes: list[Obj]) -> dict[str, str]: ...


class Section(Protocol):
    """Another owner of objects in the table, carried by the proxy's full syncs."""

    def full_body(self) -> str:
        """Its current desired objects, as script lines that follow render.full's."""
        ...

    def full_applied(self, took_ms: float) -> None:
        """The full sync's transaction is in the kernel; it took `took_ms` in all (compiling
        and rendering everything, the sections' bodies, and nft)."""
        ...

    def full_failed(self) -> None: ...


class Proxier:
    def __init__(self, ns: str, table: render.Table, node: model.NodeInfo,
                 parts: NodeParts | None = None, *, sections: Sequence[Section] = (),
                 lock: asyncio.Lock | None = None) -> None:
        self.ns = ns
        self.table = table
        self.node = node
        self.parts = parts
        self.sections = tuple(sections)
        self.lock = lock or asyncio.Lock()
        self.services: dict[Key, Obj] = {}
        self.slices: dict[Key, dict[str, Obj]] = {}
        self.slice_owner: dict[str, Key] = {}  # slice uid -> the Service it was filed under
        self.nodes: dict[str, Obj] = {}
        self.dirty: set[Key] = set()
        self.full_needed = True
        self.parts_dirty = True
        self.wake = asyncio.Event()
        self.ruleset = model.Ruleset()
        self.health: dict[Key, dict[int, tuple[str, str, int]]] = {}
        self.balanced: set[Key] = set()  # LoadBalancer Services (announcements)
        self.flows: set[tuple[str, int, str | None]] = set()  # UDP conntrack to clear
        self.syncs = 0
        self.last_sync: float = 0.0

    # -- watch handlers: index and mark, nothing else ----------------------------------------

    def on_service(self, kind: str, svc: Obj) -> None:
        key = model.service_key(svc)
        if kind == "DELETED":
            self.services.pop(key, None)
        else:
            self.services[key] = svc
        self._mark(key)

    def on_slice(self, kind: str, endpoint_slice: Obj) -> None:
        uid = str(endpoint_slice.get("metadata", {}).get("uid") or "")
        old = self.slice_owner.pop(uid, None)
        if old is not None:
            self.slices.get(old, {}).pop(uid, None)
            self._mark(old)
        key = model.slice_service(endpoint_slice)
        if kind != "DELETED" and key is not None:
            self.slices.setdefault(key, {})[uid] = endpoint_slice
            self.slice_owner[uid] = key
            self._mark(key)

    def on_node(self, kind: str, node: Obj) -> None:
        name = str(node.get("metadata", {}).get("name") or "")
        if kind == "DELETED":
            self.nodes.pop(name, None)
        else:
            self.nodes[name] = node
        self.parts_dirty = True
        self.wake.set()

    def _mark(self, key: Key) -> None:
        self.dirty.add(key)
        self.wake.set()

    def request_full_sync(self) -> None:
        self.full_needed = True
        self.wake.set()

    # -- the loop ----------------------------------------------------------------------------

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Sync forever. With `ready`, the first sync waits for it (the caches are listed)."""
        await nft.ensure_service_route(self.ns, self.node.service_cidr)
        if ready is not None:
            await ready.wait()
        self.wake.set()
        while True:
            await self.wake.wait()
            await asyncio.sleep(COALESCE)
            self.wake.clear()
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("proxy sync failed; the next one replaces the whole table")
                self.full_needed = True
                await asyncio.sleep(RETRY)
                self.wake.set()
                continue
            try:
                await self.sync_parts()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("proxy: node-side sync failed; retrying")
                self.parts_dirty = True
                await asyncio.sleep(RETRY)
                self.wake.set()

    def _compile(self, key: Key) -> model.ServiceRules | None:
        svc = self.services.get(key)
        if svc is None:
            return None
        return model.compile_service(svc, self.slices.get(key, {}).values(), self.node)

    async def sync(self) -> None:
        started = time.monotonic()
        dirty, self.dirty = self.dirty, set()
        flows: set[tuple[str, int, str | None]] = set()
        if self.full_needed:
            ruleset = await self._full_sync()
            self.ruleset, self.full_needed = ruleset, False
            dirty = set(self.services) | set(self.health) | self.balanced
            what = f"full sync, {len(ruleset.services)} services"
        else:
            # The Ruleset is updated in place (copying 10,000 Services' entries would cost
            # more than the rest of the change): when nft refuses the script, the next sync
            # is a full one, which compiles everything afresh from the caches.
            compiled = {k: self._compile(k) for k in dirty}
            for k, new in compiled.items():
                flows |= model.stale_udp(self.ruleset.services.get(k, model.EMPTY),
                                         new or model.EMPTY)
            delta = self.ruleset.update(compiled)
            script = render.incremental(self.table, delta)
            if script:
                async with self.lock:
                    await nft.apply(self.ns, script)
            what = f"{len(dirty)} services changed"
        self._note_parts(dirty, flows)
        self.syncs += 1
        daemon.settle_heap()
        self.last_sync = time.monotonic()
        log.info("proxy: %s in %.1f ms", what, (self.last_sync - started) * 1000)

    async def _full_sync(self) -> model.Ruleset:
        """Replace the whole table, the sections' objects included, in one transaction. The
        script is built under the lock too: a section renders what it wants now, and nothing
        of its own may be applied between that and this transaction."""
        async with self.lock:
            started = time.monotonic()
            try:
                with gc_paused():
                    ruleset = model.Ruleset.of(
                        (k, model.compile_service(svc, self.slices.get(k, {}).values(),
                                                  self.node))
                        for k, svc in self.services.items())
                    script = render.full(self.table, ruleset)
                    script += "".join(s.full_body() for s in self.sections)
                await nft.apply(self.ns, script)
            except BaseException:
                for s in self.sections:
                    s.full_failed()
                raise
            took_ms = (time.monotonic() - started) * 1000
            for s in self.sections:
                s.full_applied(took_ms)
        return ruleset

    # -- what the node does besides the table ------------------------------------------------

    def _note_parts(self, dirty: set[Key], flows: set[tuple[str, int, str | None]]) -> None:
        """Record what the node-side parts must follow for the Services that changed."""
        for key in dirty:
            svc = self.services.get(key)
            spec = (svc or {}).get("spec") or {}
            ports = model.health_check_ports([svc], self.slices.get(key, {}).values(),
                                             self.node) if svc else {}
            if ports and self.health.get(key) != ports:
                self.health[key] = ports
                self.parts_dirty = True
            elif not ports and self.health.pop(key, None) is not None:
                self.parts_dirty = True
            if spec.get("type") == "LoadBalancer":
                self.balanced.add(key)
                self.parts_dirty = True
            elif key in self.balanced:
                self.balanced.discard(key)
                self.parts_dirty = True
        self.flows |= flows
        if self.flows:
            self.parts_dirty = True

    async def sync_parts(self) -> None:
        if self.parts is None or not self.parts_dirty:
            return
        self.parts_dirty = False
        flows, self.flows = self.flows, set()
        if flows:
            try:
                await self.parts.clear_udp(flows)
            except Exception:
                self.flows |= flows
                raise
        await self.parts.health({p: v for ports in self.health.values()
                                 for p, v in ports.items()})
        balanced = [self.services[k] for k in sorted(self.balanced) if k in self.services]
        slices = [s for k in self.balanced for s in self.slices.get(k, {}).values()]
        chosen = self.parts.announcers(balanced, slices, list(self.nodes.values()))
        await self.parts.announce({ip for ip, node in chosen.items() if node == self.node.name})
