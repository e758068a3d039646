"""The EndpointSlice controller: keeps every Service that has a selector described by
EndpointSlices of the pods it selects, as kube-controller-manager's endpointslice controller
does (the rules are in podnet.api.endpointslices).

It watches Services, Pods, EndpointSlices and Nodes (for zones) through caches and marks
Services dirty:

- a Service change dirties that Service;
- a pod change that matters to endpoints (labels, IPs, readiness, deletion, ...) dirties the
  Services of its namespace whose selector matches its old or its new labels;
- a change to a managed slice that this controller did not write itself dirties its Service,
  so edits by others are undone;
- a Node that appears, goes, or changes zone dirties the Services of the pods on it.

A loop syncs the dirty Services, a burst of changes at a time, and writes through the
registry. When a Service is deleted it deletes the Service's slices, since podnet has no
garbage collector for ownerReferences.

After writing a slice the controller remembers the resourceVersion it wrote, and does not sync
that Service again until the slice cache has caught up with it, so it never works from a view
older than its own writes (which could create a slice twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Hashable
from typing import Any

from podnet.api import endpointslices as es
from podnet.api.resources import RESOURCES
from podnet.server import errors
from podnet.server.controllers.cache import Cache
from podnet.server.registry import PODS, SERVICES, Registry

log = logging.getLogger("podnet.endpointslices")

SLICES = next(r for r in RESOURCES if r.kind == "EndpointSlice")
NODES = next(r for r in RESOURCES if r.kind == "Node")

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)
Pair = tuple[str, str, str]  # (namespace, label, value)

BATCH = 0.005  # seconds to let a burst of changes gather before syncing
RETRY = 0.5  # seconds before a Service whose sync failed is tried again
EXPECT_TIMEOUT = 5.0  # seconds to wait for the cache to show our own writes before going on


class EndpointSliceController:
    def __init__(self, registry: Registry, *, batch: float = BATCH,
                 max_endpoints: int = es.MAX_ENDPOINTS_PER_SLICE) -> None:
        self.registry = registry
        self.batch = batch
        self.max_endpoints = max_endpoints
        self.dirty: set[Key] = set()
        self.wake = asyncio.Event()
        self.services = Cache(registry, SERVICES, self._service_changed)
        self.pods = Cache(registry, PODS, self._pod_changed)
        self.slices = Cache(registry, SLICES, self._slice_changed)
        self.nodes = Cache(registry, NODES, self._node_changed)
        # Indexes kept up to date from the caches' callbacks.
        self._selectors: dict[str, dict[str, dict[str, str]]] = {}  # ns -> service -> selector
        self._pods: dict[str, dict[str, Obj]] = {}  # ns -> pod name -> pod
        # (ns, label, value) -> the Services whose selector has that pair / the pods that have
        # that label: so a pod change looks at few Services and a sync at few pods.
        self._services_by_pair: dict[Pair, set[str]] = {}
        self._pods_by_pair: dict[Pair, set[str]] = {}
        self._pod_inputs: dict[Key, Hashable] = {}
        self._slices: dict[Key, dict[str, Obj]] = {}  # service -> slice name -> slice
        self._slice_owner: dict[Key, Key] = {}  # slice -> service
        self._nodes: dict[str, Obj] = {}
        # Our own writes not yet seen in the slice cache: service -> slice -> (rv or 0 for a
        # deletion, when written).
        self._expected: dict[Key, dict[str, tuple[int, float]]] = {}
        self._waiting: set[Key] = set()
        self._retry: dict[Key, float] = {}

    # -- events -----------------------------------------------------------------------------

    def _mark(self, key: Key) -> None:
        self.dirty.add(key)
        self.wake.set()

    def _service_changed(self, kind: str, obj: Obj) -> None:
        ns, name = Cache.key(obj)
        selectors = self._selectors.setdefault(ns, {})
        old = selectors.pop(name, None)
        if old is not None:
            _unindex(self._services_by_pair, ns, old, name)
        sel = es.selector(obj)
        if kind != "DELETED" and sel is not None and es.manages(obj):
            selectors[name] = sel
            _index(self._services_by_pair, ns, sel, name)
        self._mark((ns, name))

    def _pod_changed(self, kind: str, obj: Obj) -> None:
        key = Cache.key(obj)
        ns, name = key
        pods = self._pods.setdefault(ns, {})
        old = pods.pop(name, None)
        if old is not None:
            _unindex(self._pods_by_pair, ns, _labels(old), name)
        if kind == "DELETED":
            self._pod_inputs.pop(key, None)
        else:
            pods[name] = obj
            _index(self._pods_by_pair, ns, _labels(obj), name)
            inputs = es.endpoint_inputs(obj)
            if old is not None and self._pod_inputs.get(key) == inputs:
                return
            self._pod_inputs[key] = inputs
        for pod in (old, obj if kind != "DELETED" else None):
            if pod is not None:
                self._mark_services_of(ns, pod)

    def _mark_services_of(self, ns: str, pod: Obj) -> None:
        labels = _labels(pod)
        selectors = self._selectors.get(ns, {})
        candidates: set[str] = set()
        for k, v in labels.items():
            candidates |= self._services_by_pair.get((ns, k, v), set())
        for service in candidates:
            if es.selector_matches(selectors[service], labels):
                self._mark((ns, service))

    def _candidate_pods(self, ns: str, sel: dict[str, str]) -> list[Obj]:
        """The pods that have at least the rarest pair of the selector."""
        sets = [self._pods_by_pair.get((ns, k, v), set()) for k, v in sel.items()]
        pods = self._pods.get(ns, {})
        return [pods[n] for n in min(sets, key=len)] if sets else []

    def _slice_changed(self, kind: str, obj: Obj) -> None:
        key = Cache.key(obj)
        ns, name = key
        old_service = self._slice_owner.pop(key, None)
        if old_service is not None:
            self._slices.get(old_service, {}).pop(name, None)
        service_name = es.slice_service_name(obj)
        new_service = (ns, service_name) if service_name and kind != "DELETED" else None
        if new_service is not None:
            self._slices.setdefault(new_service, {})[name] = obj
            self._slice_owner[key] = new_service
        for service in {s for s in (old_service, new_service) if s is not None}:
            if not self._own_write(service, name, kind, obj):
                self._mark(service)

    def _own_write(self, service: Key, name: str, kind: str, obj: Obj) -> bool:
        """Whether this event shows a write of ours (then it needs no sync)."""
        expected = self._expected.get(service, {})
        if name not in expected:
            return False
        want = expected[name][0]
        rv = int(obj["metadata"].get("resourceVersion") or 0)
        if kind == "DELETED":
            self._settle(service, name)
            return want == 0
        if want and rv >= want:
            self._settle(service, name)
            return True
        return False  # an older version, still on its way

    def _settle(self, service: Key, name: str) -> None:
        expected = self._expected.get(service, {})
        expected.pop(name, None)
        if not expected:
            self._expected.pop(service, None)
            if service in self._waiting:
                self._waiting.discard(service)
                self._mark(service)

    def _node_changed(self, kind: str, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        old = self._nodes.get(name)
        if kind == "DELETED":
            self._nodes.pop(name, None)
        else:
            self._nodes[name] = obj
        if kind != "DELETED" and old is not None and \
                _labels(old).get(es.LABEL_ZONE) == _labels(obj).get(es.LABEL_ZONE):
            return
        for ns, pods in self._pods.items():
            for pod in pods.values():
                if (pod.get("spec") or {}).get("nodeName") == name:
                    self._mark_services_of(ns, pod)

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        caches = (self.services, self.pods, self.slices, self.nodes)
        tasks = [asyncio.create_task(c.run()) for c in caches]
        loop = asyncio.get_running_loop()
        try:
            for c in caches:
                await c.synced.wait()
            while True:
                timeout = RETRY
                if self._retry:
                    timeout = max(0.0, min(self._retry.values()) - loop.time())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout)
                self.wake.clear()
                if self.batch:
                    await asyncio.sleep(self.batch)
                now = loop.time()
                for key, when in list(self._retry.items()):
                    if when <= now:
                        del self._retry[key]
                        self.dirty.add(key)
                for key in list(self._waiting):
                    if not self._stale(key, now):
                        self._waiting.discard(key)
                        self.dirty.add(key)
                await self.sync_dirty()
        finally:
            for t in tasks:
                t.cancel()

    async def sync_dirty(self) -> None:
        keys, self.dirty = self.dirty, set()
        for key in sorted(keys):
            try:
                await self.sync(key)
            except errors.ApiError as e:
                log.info("syncing the slices of service %s/%s: %s", key[0], key[1], e.message)
                if e.code not in (403, 404):  # 403/404: its namespace is going or gone
                    self._retry[key] = asyncio.get_running_loop().time() + RETRY
            except Exception:
                log.exception("syncing the slices of service %s/%s", *key)
                self._retry[key] = asyncio.get_running_loop().time() + RETRY

    def _stale(self, key: Key, now: float) -> bool:
        """Whether the slice cache has not yet shown all our writes for this Service (writes
        not seen for EXPECT_TIMEOUT are given up on)."""
        expected = self._expected.get(key)
        if not expected:
            return False
        if all(now - when > EXPECT_TIMEOUT for _rv, when in expected.values()):
            log.info("slice cache did not show writes for service %s/%s; going on", *key)
            self._expected.pop(key, None)
            return False
        return True

    async def sync(self, key: Key) -> None:
        """Bring the slices of one Service up to date."""
        ns, name = key
        if self._stale(key, asyncio.get_running_loop().time()):
            self._waiting.add(key)
            return
        service = self.services.objects.get(key)
        slices = list(self._slices.get(key, {}).values())
        if service is None or not es.manages(service):
            for s in es.stale_slices(ns, name, service, slices):
                await self._delete(key, s)
            return
        pods = self._candidate_pods(ns, es.selector(service) or {})
        changes = es.desired_slices(service, pods, slices, self._nodes, self.max_endpoints)
        if changes.skipped:
            log.debug("service %s/%s: left out pods on unknown nodes: %s", ns, name,
                      ", ".join(changes.skipped))
        for s in changes.create:
            r = await self.registry.create(SLICES, ns, s)
            self._expect(key, r.obj)
            log.debug("created EndpointSlice %s/%s", ns, r.obj["metadata"]["name"])
        for s in changes.update:
            r = await self.registry.update(SLICES, ns, s["metadata"]["name"], s)
            self._expect(key, r.obj)
            log.debug("updated EndpointSlice %s/%s", ns, r.obj["metadata"]["name"])
        for s in changes.delete:
            await self._delete(key, s)

    async def _delete(self, key: Key, endpoint_slice: Obj) -> None:
        ns, name = Cache.key(endpoint_slice)
        try:
            await self.registry.delete(SLICES, ns, name)
        except errors.ApiError as e:
            if e.code != 404:
                raise
            return
        if name in self._slices.get(key, {}):  # else the cache has seen it go already
            self._expected.setdefault(key, {})[name] = (0, asyncio.get_running_loop().time())
        log.debug("deleted EndpointSlice %s/%s", ns, name)

    def _expect(self, key: Key, written: Obj) -> None:
        meta = written["metadata"]
        rv = int(meta.get("resourceVersion") or 0)
        seen = self._slices.get(key, {}).get(meta["name"])
        if seen is not None and int(seen["metadata"].get("resourceVersion") or 0) >= rv:
            return  # nothing was written, or the cache has it already
        self._expected.setdefault(key, {})[meta["name"]] = (
            rv, asyncio.get_running_loop().time())


def _labels(obj: Obj) -> dict[str, str]:
    labels = (obj.get("metadata") or {}).get("labels")
    return labels if isinstance(labels, dict) else {}


def _index(index: dict[Pair, set[str]], ns: str, pairs: dict[str, str], name: str) -> None:
    for k, v in pairs.items():
        index.setdefault((ns, k, v), set()).add(name)


def _unindex(index: dict[Pair, set[str]], ns: str, pairs: dict[str, str], name: str) -> None:
    for k, v in pairs.items():
        names = index.get((ns, k, v))
        if names is not None:
            names.discard(name)
            if not names:
                del index[(ns, k, v)]
