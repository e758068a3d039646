"""Deleting a namespace deletes what is in it, then the namespace itself.

A namespace being deleted has a deletionTimestamp and phase Terminating; while its spec holds the
`kubernetes` finalizer it stays. This loop deletes every namespaced object in it, and once none
is left (objects with finalizers or graceful pods may take a while), clears the finalizer, which
removes the namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from podnet.api.resources import RESOURCES
from podnet.server import errors
from podnet.server.registry import NAMESPACES, Registry, Selectors

log = logging.getLogger("podnet.namespaces")

RETRY = 1.0


class NamespaceController:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.pending: set[str] = set()
        self.wake = asyncio.Event()

    async def run(self) -> None:
        watcher = asyncio.create_task(self._watch())
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), RETRY)
                self.wake.clear()
                for name in sorted(self.pending):
                    try:
                        if await self.empty(name):
                            self.pending.discard(name)
                    except Exception:
                        log.exception("emptying namespace %s", name)
        finally:
            watcher.cancel()

    async def _watch(self) -> None:
        while True:
            try:
                async for kind, obj in self.registry.watch(NAMESPACES, None, Selectors(), ""):
                    if kind in ("ADDED", "MODIFIED") and obj["metadata"].get("deletionTimestamp"):
                        self.pending.add(obj["metadata"]["name"])
                        self.wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("namespace watch failed; restarting")
                await asyncio.sleep(RETRY)

    async def empty(self, ns: str) -> bool:
        """Delete what is left in `ns`; finalize it when nothing is. True when it is gone."""
        left = 0
        for res in RESOURCES:
            if not res.namespaced:
                continue
            objs, _, _ = await self.registry.list_objects(res, ns, Selectors())
            for obj in objs:
                left += 1
                if obj["metadata"].get("deletionTimestamp"):
                    continue
                with contextlib.suppress(errors.ApiError):
                    await self.registry.delete(res, ns, obj["metadata"]["name"])
        if left:
            return False
        try:
            await self.registry.finalize_namespace(ns, [])
        except errors.ApiError as e:
            if e.code != 404:
                raise
        log.info("namespace %s deleted", ns)
        return True
