"""The proxy's sync loop: Services and EndpointSlices in, one nft transaction out per sync.

Watch handlers only index the object and mark its Service dirty; one loop waits for work,
lets a burst settle (`COALESCE`), recompiles the dirty Services from the cached objects and
applies the element diff against the Ruleset it last applied, kept in memory; the table is
never read back. The first sync, and the one after any failure, is a full sync that replaces
the table in one transaction, so nothing stale survives a restart of the agent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from podnet.proxy import model, nft, render

log = logging.getLogger("podnet.proxy")

Obj = dict[str, Any]
Key = tuple[str, str]
COALESCE = 0.01  # seconds a sync waits for more changes after the first
RETRY = 1.0


class Proxier:
    def __init__(self, ns: str, table: render.Table, node: model.NodeInfo) -> None:
        self.ns = ns
        self.table = table
        self.node = node
        self.services: dict[Key, Obj] = {}
        self.slices: dict[Key, dict[str, Obj]] = {}
        self.slice_owner: dict[str, Key] = {}  # slice uid -> the Service it was filed under
        self.dirty: set[Key] = set()
        self.full_needed = True
        self.wake = asyncio.Event()
        self.ruleset = model.Ruleset()
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

    def _compile(self, key: Key) -> model.ServiceRules | None:
        svc = self.services.get(key)
        if svc is None:
            return None
        return model.compile_service(svc, self.slices.get(key, {}).values(), self.node)

    async def sync(self) -> None:
        started = time.monotonic()
        dirty, self.dirty = self.dirty, set()
        if self.full_needed:
            ruleset = model.Ruleset.of(
                (k, model.compile_service(svc, self.slices.get(k, {}).values(), self.node))
                for k, svc in self.services.items())
            await nft.apply(self.ns, render.full(self.table, ruleset))
            self.ruleset, self.full_needed = ruleset, False
            what = f"full sync, {len(ruleset.services)} services"
        else:
            ruleset = self.ruleset.copy()
            delta = ruleset.update({k: self._compile(k) for k in dirty})
            script = render.incremental(self.table, delta)
            if not script:
                return
            try:
                await nft.apply(self.ns, script)
            except Exception:
                self.dirty |= dirty
                raise
            self.ruleset = ruleset
            what = f"{len(dirty)} services changed"
        self.syncs += 1
        self.last_sync = time.monotonic()
        log.info("proxy: %s in %.1f ms", what, (self.last_sync - started) * 1000)
