"""Node IPAM: every Node gets a podCIDR, a /24 of the cluster CIDR by default, as
kube-controller-manager's range allocator gives them (spec.podCIDR and spec.podCIDRs)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson

from podnet.api.resources import RESOURCES
from podnet.api.scheduling import next_pod_cidr
from podnet.server import errors
from podnet.server.controllers.cache import Cache
from podnet.server.registry import Registry

log = logging.getLogger("podnet.nodeipam")
NODES = next(r for r in RESOURCES if r.kind == "Node")


class NodeIpamController:
    def __init__(self, registry: Registry, cluster_cidr: str, mask: int = 24) -> None:
        self.registry = registry
        self.cluster_cidr = cluster_cidr
        self.mask = mask
        self.wake = asyncio.Event()
        self.cache = Cache(registry, NODES, lambda _kind, _obj: self.wake.set())

    async def run(self) -> None:
        watcher = asyncio.create_task(self.cache.run())
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                try:
                    await self.assign()
                except Exception:
                    log.exception("assigning podCIDRs")
        finally:
            watcher.cancel()

    async def assign(self) -> None:
        nodes = list(self.cache.objects.values())
        taken = [c for n in nodes for c in ((n.get("spec") or {}).get("podCIDRs") or [])]
        for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
            spec: dict[str, Any] = node.get("spec") or {}
            if spec.get("podCIDR") or node["metadata"].get("deletionTimestamp"):
                continue
            cidr = next_pod_cidr(self.cluster_cidr, self.mask, taken)
            name = node["metadata"]["name"]
            if cidr is None:
                log.error("no podCIDR left in %s for node %s", self.cluster_cidr, name)
                return
            patch = {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}}
            with contextlib.suppress(errors.ApiError):
                await self.registry.patch(NODES, None, name, orjson.dumps(patch),
                                          "application/merge-patch+json")
                taken.append(cidr)
                log.info("node %s gets podCIDR %s", name, cidr)
