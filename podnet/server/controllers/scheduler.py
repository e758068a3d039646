"""A minimal scheduler: binds pods that have no spec.nodeName to a fitting node through the
pods/binding subresource, as kube-scheduler does (rules in podnet.api.scheduling). A pod that fits
nowhere gets PodScheduled=False, reason Unschedulable, and is retried when nodes change."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from typing import Any

import orjson

from podnet.api.resources import RESOURCES
from podnet.api.scheduling import pick_node
from podnet.server import errors
from podnet.server.controllers.cache import Cache
from podnet.server.registry import PODS, Registry

log = logging.getLogger("podnet.scheduler")
NODES = next(r for r in RESOURCES if r.kind == "Node")
SCHEDULER_NAME = "default-scheduler"
RETRY = 5.0  # seconds between tries for pods that fit nowhere


class Scheduler:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.wake = asyncio.Event()
        self.nodes = Cache(registry, NODES, self._node_changed)
        self.pods = Cache(registry, PODS, self._pod_changed)

    def _node_changed(self, _kind: str, _obj: dict[str, Any]) -> None:
        self.wake.set()

    def _pod_changed(self, _kind: str, obj: dict[str, Any]) -> None:
        if not (obj.get("spec") or {}).get("nodeName"):
            self.wake.set()

    async def run(self) -> None:
        tasks = [asyncio.create_task(self.nodes.run()), asyncio.create_task(self.pods.run())]
        try:
            await self.nodes.synced.wait()
            await self.pods.synced.wait()
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), RETRY)
                self.wake.clear()
                try:
                    await self.schedule_pending()
                except Exception:
                    log.exception("scheduling")
        finally:
            for t in tasks:
                t.cancel()

    async def schedule_pending(self) -> None:
        counts: dict[str, int] = {}
        pending = []
        for pod in self.pods.objects.values():
            spec = pod.get("spec") or {}
            node = spec.get("nodeName")
            if node:
                if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                    counts[node] = counts.get(node, 0) + 1
            elif not pod["metadata"].get("deletionTimestamp") and \
                    spec.get("schedulerName", SCHEDULER_NAME) == SCHEDULER_NAME:
                pending.append(pod)
        nodes = list(self.nodes.objects.values())
        for pod in sorted(pending, key=lambda p: p["metadata"].get("creationTimestamp", "")):
            ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
            node, why = pick_node(pod, nodes, counts)
            try:
                if node is None:
                    await self._unschedulable(pod, why)
                    continue
                await self.registry.bind(ns, name, {"target": {"kind": "Node", "name": node}})
                counts[node] = counts.get(node, 0) + 1
                log.info("bound %s/%s to %s", ns, name, node)
            except errors.ApiError as e:
                log.info("binding %s/%s: %s", ns, name, e.message)

    async def _unschedulable(self, pod: dict[str, Any], why: str) -> None:
        conditions = (pod.get("status") or {}).get("conditions") or []
        for c in conditions:
            if c.get("type") == "PodScheduled" and c.get("message") == why:
                return
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        new = [c for c in conditions if c.get("type") != "PodScheduled"]
        new.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": why, "lastTransitionTime": now})
        await self.registry.patch(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"],
                                  orjson.dumps({"status": {"conditions": new}}),
                                  "application/merge-patch+json", subresource="status")
