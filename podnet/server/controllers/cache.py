"""An informer, cut down: a watch-fed map of one kind's objects, with a callback on change.

Controllers in the server read through the registry directly (no HTTP), but the same way
external clients do: list, then watch from the list's resourceVersion, relisting on 410.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from podnet.api.resources import Resource
from podnet.server import errors
from podnet.server.registry import Registry, Selectors

log = logging.getLogger("podnet.controllers")

Obj = dict[str, Any]


class Cache:
    def __init__(self, registry: Registry, res: Resource,
                 on_change: Callable[[str, Obj], None]) -> None:
        self.registry = registry
        self.res = res
        self.on_change = on_change
        self.objects: dict[tuple[str, str], Obj] = {}
        self.synced = asyncio.Event()

    @staticmethod
    def key(obj: Obj) -> tuple[str, str]:
        meta = obj["metadata"]
        return meta.get("namespace") or "", meta["name"]

    async def run(self) -> None:
        while True:
            try:
                objs, rv, _ = await self.registry.list_objects(self.res, None, Selectors())
                fresh = {self.key(o): o for o in objs}
                for k in set(self.objects) - set(fresh):
                    self.on_change("DELETED", self.objects[k])
                self.objects = fresh
                for o in objs:
                    self.on_change("ADDED", o)
                self.synced.set()
                async for kind, obj in self.registry.watch(self.res, None, Selectors(), rv):
                    if kind == "PROGRESS":
                        continue
                    if kind == "DELETED":
                        self.objects.pop(self.key(obj), None)
                    else:
                        self.objects[self.key(obj)] = obj
                    self.on_change(kind, obj)
            except asyncio.CancelledError:
                raise
            except errors.ApiError as e:
                log.info("%s watch ended (%s); relisting", self.res.plural, e.message)
            except Exception:
                log.exception("%s watch failed; relisting", self.res.plural)
                await asyncio.sleep(1)
