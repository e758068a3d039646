"""The LoadBalancer IP controller: gives LoadBalancer Services an address from the LAN pool and
writes it to status.loadBalancer.ingress, as MetalLB's controller does (the rules are in
podnet.api.lbipam).

    Services ──► cache ──► records (lbipam.record: only the Services that matter)
                               │ a change to a record wakes the loop (bursts gather for BATCH)
                               ▼
                  lbipam.allocate(pool, records) ──► status writes (services/status, with the
                                                     resourceVersion read) and Events

The Services' own statuses are the only state: every sync recomputes the whole allocation from
them, so a restarted server finds the same addresses. A status this controller wrote is taken
into its records at once (from the write's answer), so it never works from a view older than
its own writes; a write that meets a newer version (409) is redone from the newer one.

Events: IPAllocated (Normal) when a Service gets an address, AllocationFailed (Warning) when it
gets none, once per Service and message (kept in memory: after a restart a Service that still
gets no address is told once more).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from podnet.api import lbipam
from podnet.api.resources import RESOURCES
from podnet.server import errors
from podnet.server.controllers.cache import Cache
from podnet.server.registry import SERVICES, Registry, now_rfc3339

log = logging.getLogger("podnet.loadbalancer")

EVENTS = next(r for r in RESOURCES if r.kind == "Event")
COMPONENT = "lb-ipam-controller"  # the events' source

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)

BATCH = 0.005  # seconds to let a burst of changes gather before syncing
RETRY = 0.5  # seconds before a sync that failed to write is done again


class LoadBalancerController:
    def __init__(self, registry: Registry, pool: lbipam.Pool, *, batch: float = BATCH) -> None:
        self.registry = registry
        self.pool = pool
        self.batch = batch
        self.wake = asyncio.Event()
        self.services = Cache(registry, SERVICES, self._ingest)
        self.records: dict[Key, lbipam.LbService] = {}
        self._objects: dict[Key, Obj] = {}  # the Service each record was taken from
        self._rv: dict[Key, int] = {}  # the newest resourceVersion seen of each Service
        self._warned: dict[str, str] = {}  # uid -> the last AllocationFailed message sent
        self._retry = False

    # -- events -----------------------------------------------------------------------------

    def _ingest(self, kind: str, obj: Obj) -> None:
        """Take a Service (from the cache, or the answer to our own write) into the records;
        wake the loop when its record changed."""
        key = Cache.key(obj)
        if kind == "DELETED":
            self._rv.pop(key, None)
            self._objects.pop(key, None)
            self._warned.pop(str(obj["metadata"].get("uid")), None)
            if self.records.pop(key, None) is not None:
                self.wake.set()
            return
        rv = int(obj["metadata"].get("resourceVersion") or 0)
        if rv < self._rv.get(key, 0):
            return  # older than a version of ours already taken in
        self._rv[key] = rv
        new = lbipam.record(obj)
        old = self.records.get(key)
        if new is None:
            self._objects.pop(key, None)
            if old is not None:
                del self.records[key]
                self.wake.set()
            return
        self.records[key] = new
        self._objects[key] = obj
        if new != old:
            self.wake.set()

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        cache = asyncio.create_task(self.services.run())
        try:
            await self.services.synced.wait()
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), RETRY if self._retry else None)
                self.wake.clear()
                if self.batch:
                    await asyncio.sleep(self.batch)
                self._retry = False
                try:
                    await self.sync()
                except Exception:
                    log.exception("allocating LoadBalancer IPs")
                    self._retry = True
        finally:
            cache.cancel()

    async def sync(self) -> None:
        """Write every status that differs from the allocation, and the Events it calls for."""
        for outcome in lbipam.allocate(self.pool, list(self.records.values())):
            if outcome.changed and not await self._write(outcome):
                continue
            svc = outcome.service
            event = outcome.event
            if event is None:
                if outcome.ip is not None:
                    self._warned.pop(svc.uid, None)
                continue
            if event.type == lbipam.EVENT_WARNING:
                if self._warned.get(svc.uid) == event.message:
                    continue
                self._warned[svc.uid] = event.message
                log.info("service %s: %s", svc, event.message)
            else:
                self._warned.pop(svc.uid, None)
            await self._record(svc, event)

    async def _write(self, outcome: lbipam.Outcome) -> bool:
        """Write the outcome's status.loadBalancer, if the Service is still as it was read."""
        svc = outcome.service
        obj = self._objects.get(svc.key)
        if obj is None or self.records.get(svc.key) != svc:
            return False  # changed while this sync wrote others: the next sync sees to it
        meta = obj["metadata"]
        # Only what a status update reads; the registry fills in the rest from the stored
        # Service, and refuses (409) when it is no longer the version read.
        body = {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": svc.name, "namespace": svc.namespace,
                             "resourceVersion": meta.get("resourceVersion")},
                "status": {**(obj.get("status") or {}), "loadBalancer": outcome.load_balancer}}
        try:
            result = await self.registry.update(SERVICES, svc.namespace, svc.name, body,
                                                subresource="status")
        except errors.ApiError as e:
            if e.code != 404:  # 404: gone already, and its address with it
                log.info("status of service %s: %s", svc, e.message)
                self._retry = True
            return False
        self._ingest("MODIFIED", result.obj)
        if outcome.ip is not None:
            log.info("service %s: LoadBalancer IP %s", svc, outcome.ip)
        else:
            log.info("service %s: LoadBalancer IP released", svc)
        return True

    async def _record(self, svc: lbipam.LbService, event: lbipam.Event) -> None:
        stamp = now_rfc3339(self.registry.clock)
        body = {"apiVersion": "v1", "kind": "Event",
                # Named as Kubernetes' recorders name them: the object and a unique suffix.
                "metadata": {"name": f"{svc.name}.{time.time_ns():x}",
                             "namespace": svc.namespace},
                "involvedObject": {"apiVersion": "v1", "kind": "Service", "name": svc.name,
                                   "namespace": svc.namespace, "uid": svc.uid},
                "type": event.type, "reason": event.reason, "message": event.message,
                "source": {"component": COMPONENT}, "reportingComponent": COMPONENT,
                "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1}
        try:
            await self.registry.create(EVENTS, svc.namespace, body)
        except errors.ApiError as e:  # e.g. 403: its namespace is being deleted
            log.info("event %s on service %s: %s", event.reason, svc, e.message)
