"""REST semantics over the store: what create, get, list, update, patch, delete and watch mean
for Kubernetes objects (kube-apiserver's generic registry, for podnet's kinds).

The pure core decides (defaults, validation, strategy, allocation, patch, selectors); this module
reads and writes the store in single transactions so that an object and what it holds (a
Service's cluster IP and node ports) change together or not at all.
"""

from __future__ import annotations

import base64
import collections
import copy
import datetime as dt
import logging
import random
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from podnet.api import allocation, schema, strategy
from podnet.api.defaults import apply_defaults
from podnet.api.errors import FieldError
from podnet.api.patch import (
    PatchError,
    json_merge_patch,
    json_patch,
    strategic_merge_patch,
)
from podnet.api.resources import RESOURCES, Resource, by_kind
from podnet.api.selectors import (
    FieldSelector,
    LabelSelector,
    SelectorError,
    convert_field_selector,
    field_set,
    parse_field_selector,
    parse_label_selector,
)
from podnet.api.validation import validate, validate_status
from podnet.server import errors
from podnet.store import Compacted, Compare, Delete, Event, KeyValue, Put, Store, WatchClosed

log = logging.getLogger("podnet.server")

Obj = dict[str, Any]

NAMESPACES = next(r for r in RESOURCES if r.kind == "Namespace")
SERVICES = next(r for r in RESOURCES if r.kind == "Service")
PODS = next(r for r in RESOURCES if r.kind == "Pod")
IP_PREFIX = "/registry/ranges/serviceips/"
PORT_PREFIX = "/registry/ranges/servicenodeports/"
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now_rfc3339(clock: Callable[[], dt.datetime]) -> str:
    return clock().strftime("%Y-%m-%dT%H:%M:%SZ")


def decode(kv: KeyValue) -> Obj:
    obj: Obj = orjson.loads(kv.value)
    obj["metadata"]["resourceVersion"] = str(kv.mod_revision)
    return obj


def encode(obj: Obj) -> bytes:
    meta = obj.get("metadata", {})
    rv = meta.pop("resourceVersion", None)
    try:
        return orjson.dumps(obj)
    finally:
        if rv is not None:
            meta["resourceVersion"] = rv


@dataclass
class Selectors:
    label: LabelSelector | None = None
    field: FieldSelector | None = None

    @staticmethod
    def parse(res: Resource, label: str | None, fields: str | None) -> Selectors:
        try:
            ls = parse_label_selector(label) if label else None
            fs = parse_field_selector(fields) if fields else None
            if fs is not None:
                fs = convert_field_selector(res.api_version, res.kind, fs)
        except SelectorError as e:
            raise errors.bad_request(str(e)) from e
        return Selectors(ls, fs)

    def matches(self, obj: Obj) -> bool:
        if self.label is not None:
            labels = (obj.get("metadata") or {}).get("labels") or {}
            if not self.label.matches(labels):
                return False
        if self.field is not None:
            return self.field.matches(field_set(obj["apiVersion"], obj["kind"], obj))
        return True

    def name(self) -> str | None:
        """metadata.name=X in the field selector, to read one key instead of a range."""
        if self.field is None:
            return None
        return self.field.requires_exact_match("metadata.name")


@dataclass
class Result:
    obj: Obj
    warnings: list[str] = field(default_factory=list)
    created: bool = False


class Registry:
    def __init__(self, store: Store, ranges: allocation.Ranges, *,
                 clock: Callable[[], dt.datetime] | None = None,
                 rng: random.Random | None = None) -> None:
        self.store = store
        self.ranges = ranges
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.rng = rng or random.SystemRandom()
        self.taken_ips: set[str] = set()
        self.taken_ports: set[int] = set()
        self._decode_cache: collections.OrderedDict[tuple[str, int], Obj] = \
            collections.OrderedDict()

    async def start(self) -> None:
        """Load what Services hold, and create what every cluster has from the start."""
        for kv in (await self.store.range(IP_PREFIX)).kvs:
            self.taken_ips.add(kv.key[len(IP_PREFIX):])
        for kv in (await self.store.range(PORT_PREFIX)).kvs:
            self.taken_ports.add(int(kv.key[len(PORT_PREFIX):]))
        for ns in SYSTEM_NAMESPACES:
            if await self.store.get(NAMESPACES.key(None, ns)) is None:
                await self.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                                     "metadata": {"name": ns}})

    async def ensure_kubernetes_service(self, port: int) -> None:
        if await self.store.get(SERVICES.key("default", "kubernetes")) is not None:
            return
        await self.create(SERVICES, "default", {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": self.ranges.first_ip(1),
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                "targetPort": port}]}})

    # -- reading ---------------------------------------------------------------------------------

    async def get(self, res: Resource, ns: str | None, name: str) -> Obj:
        kv = await self.store.get(res.key(ns, name))
        if kv is None:
            raise errors.not_found(res, name)
        return decode(kv)

    async def list_objects(self, res: Resource, ns: str | None, sel: Selectors, *, limit: int = 0,
                   continue_token: str = "", resource_version: str = "",
                   match: str = "") -> tuple[list[Obj], str, str]:
        """Objects, the list's resourceVersion, and a continue token when limited."""
        revision = 0
        start_after = ""
        if continue_token:
            try:
                tok = orjson.loads(base64.urlsafe_b64decode(continue_token.encode()))
                revision, start_after = int(tok["rv"]), str(tok["start"])
            except (ValueError, KeyError, TypeError) as e:
                raise errors.bad_request(f"invalid continue token: {e}") from e
        elif resource_version and match == "Exact":
            revision = _parse_rv(resource_version)
        elif resource_version not in ("", "0") and match in ("", "NotOlderThan"):
            want = _parse_rv(resource_version)
            if want > self.store.revision:
                raise errors.ApiError(504, "Timeout", "Too large resource version: "
                                      f"{want}, current: {self.store.revision}")
        name = sel.name()
        prefix = res.key_prefix(ns)
        out: list[Obj] = []
        try:
            if name is not None and (ns is not None or not res.namespaced):
                kv = await self.store.get(res.key(ns, name), revision)
                at = revision or self.store.revision
                kvs, more = ([kv] if kv else []), False
            else:
                # Read pages until `limit` objects pass the selectors (as the API server does,
                # a page may hold fewer objects than the limit, never more).
                rr = await self.store.range(prefix, revision=revision, limit=limit,
                                            start_after=start_after)
                at, kvs, more = rr.revision, rr.kvs, rr.more
        except Compacted as e:
            raise errors.gone(
                f"The provided continue parameter is too old to display a consistent list "
                f"result. You can start a new list without the continue parameter. ({e})"
                if continue_token else f"too old resource version: {revision} ({e.compacted})"
            ) from e
        for kv in kvs:
            obj = decode(kv)
            if sel.matches(obj):
                out.append(obj)
        token = ""
        if more and kvs:
            token = base64.urlsafe_b64encode(orjson.dumps(
                {"rv": at, "start": kvs[-1].key})).decode()
        return out, str(at), token

    # -- writing ---------------------------------------------------------------------------------

    def _decode_body(self, res: Resource, body: Obj, ns: str | None, field_validation: str,
                     subresource: str = "") -> tuple[Obj, list[str]]:
        """Check apiVersion/kind/namespace and unknown fields. Returns the object to use and
        the warnings to send back."""
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        api_version = body.setdefault("apiVersion", res.api_version)
        kind = body.setdefault("kind", res.kind)
        if (api_version, kind) != (res.api_version, res.kind):
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({res.api_version})" if api_version != res.api_version else
                f"the kind in the data ({kind}) does not match the expected kind ({res.kind})")
        meta = body.get("metadata")
        if meta is None:
            meta = body["metadata"] = {}
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata: expected an object")
        if res.namespaced:
            if meta.get("namespace") not in (None, "", ns):
                raise errors.bad_request("the namespace of the provided object does not match "
                                         "the namespace sent on the request")
            meta["namespace"] = ns
        report = schema.check(res.api_version, res.kind, body)
        if report.type_errors:
            raise errors.bad_request(
                f"{res.kind} in version \"{res.version}\" cannot be handled as a {res.kind}: "
                f"{report.decode_error()} ({'; '.join(report.type_errors)})")
        warnings: list[str] = []
        if report.unknown:
            if field_validation == "Strict":
                raise errors.bad_request(report.strict_error() or "strict decoding error")
            body = schema.prune(res.api_version, res.kind, body)
            if field_validation != "Ignore":
                warnings = [f'unknown field "{p}"' for p in report.unknown]
        return body, warnings

    async def _check_namespace(self, res: Resource, ns: str | None, name: str) -> None:
        if not res.namespaced:
            return
        kv = await self.store.get(NAMESPACES.key(None, str(ns)))
        if kv is None:
            raise errors.not_found(NAMESPACES, str(ns))
        if orjson.loads(kv.value)["metadata"].get("deletionTimestamp"):
            raise errors.forbidden(res, name, f"unable to create new content in namespace {ns} "
                                   "because it is being terminated")

    async def create(self, res: Resource, ns: str | None, body: Obj, *, dry_run: bool = False,
                     field_validation: str = "Warn") -> Result:
        obj, warnings = self._decode_body(res, body, ns, field_validation)
        meta = obj["metadata"]
        if not meta.get("name") and isinstance(meta.get("generateName"), str) and \
                meta["generateName"]:
            meta["name"] = meta["generateName"] + "".join(
                self.rng.choice(_GENERATE_ALPHABET) for _ in range(5))
        strategy.prepare_for_create(obj)
        apply_defaults(obj)
        name = str(meta.get("name") or "")
        plan = None
        errs = []
        if res is SERVICES:
            # As kube-apiserver does, allocate first, then validate the complete object.
            plan = allocation.allocate(obj, None, self.taken_ips, self.taken_ports, self.ranges,
                                       self.rng)
            errs = plan.errors
        errs = _merge(errs, validate(obj, None, node_port_range=None))
        if errs:
            raise errors.invalid(res, name, errs)
        await self._check_namespace(res, ns, name)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339(self.clock)
        key = res.key(ns, name)
        compares = [Compare(key, 0)]
        ops: list[Put | Delete] = []
        if plan is not None:
            owner = f"{ns}/{name}".encode()
            for ip in plan.ips:
                compares.append(Compare(IP_PREFIX + ip, 0))
                ops.append(Put(IP_PREFIX + ip, owner))
            for port in plan.ports:
                compares.append(Compare(f"{PORT_PREFIX}{port}", 0))
                ops.append(Put(f"{PORT_PREFIX}{port}", owner))
        if dry_run:
            if await self.store.get(key) is not None:
                raise errors.already_exists(res, name)
            return Result(obj, warnings, created=True)
        ops.insert(0, Put(key, encode(obj)))
        r = await self.store.txn(compares, ops)
        if not r.succeeded:
            if r.current.get(key) is not None:
                raise errors.already_exists(res, name)
            raise errors.conflict(res, name, "an address or port it asked for was taken at the "
                                  "same time; retry")
        if plan:
            self.taken_ips |= plan.ips
            self.taken_ports |= plan.ports
        meta["resourceVersion"] = str(r.revision)
        return Result(obj, warnings, created=True)

    async def update(self, res: Resource, ns: str | None, name: str, body: Obj, *,
                     subresource: str = "", dry_run: bool = False,
                     field_validation: str = "Warn") -> Result:
        obj, warnings = self._decode_body(res, body, ns, field_validation, subresource)
        meta = obj["metadata"]
        if meta.get("name") not in (None, "", name):
            raise errors.bad_request(f"the name of the object ({meta.get('name')}) does not "
                                     f"match the name on the URL ({name})")
        meta["name"] = name
        kv = await self.store.get(res.key(ns, name))
        if kv is None:
            if res.kind in ("Event", "EndpointSlice") and not subresource:
                return await self.create(res, ns, obj, dry_run=dry_run,
                                         field_validation=field_validation)
            raise errors.not_found(res, name)
        rv = meta.get("resourceVersion")
        if rv not in (None, "") and rv != str(kv.mod_revision):
            raise errors.conflict(res, name)
        result = await self._write_update(res, ns, name, decode(kv), kv, obj, subresource,
                                          dry_run)
        result.warnings[:0] = warnings
        return result

    async def _write_update(self, res: Resource, ns: str | None, name: str, old: Obj,
                            kv: KeyValue, new: Obj, subresource: str,
                            dry_run: bool) -> Result:
        obj = strategy.prepare_for_update(new, old, subresource)
        plan = None
        errs = []
        if subresource != "status":
            apply_defaults(obj)
            if res is SERVICES:
                plan = allocation.allocate(obj, old, self.taken_ips, self.taken_ports,
                                           self.ranges, self.rng)
                errs = plan.errors
        errs = _merge(errs, validate_status(obj, old) if subresource == "status"
                      else validate(obj, old, node_port_range=None))
        if errs:
            raise errors.invalid(res, name, errs)
        key = res.key(ns, name)
        compares = [Compare(key, kv.mod_revision)]
        ops: list[Put | Delete] = []
        if plan is not None:
            ops.extend(self._allocation_ops(compares, ns, name, old, plan))
        meta = obj["metadata"]
        finished = bool(meta.get("deletionTimestamp")) and not meta.get("finalizers") and \
            not (res.kind == "Namespace" and strategy.namespace_finalizers(obj))
        obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if not finished and obj == old:
            return Result(old)  # nothing changed: no write, same resourceVersion
        if dry_run:
            return Result(obj)
        if finished:
            return await self._remove(res, ns, name, old, kv, compares=compares)
        ops.insert(0, Put(key, encode(obj)))
        r = await self.store.txn(compares, ops)
        if not r.succeeded:
            raise errors.conflict(res, name)
        if plan:
            old_ips, old_ports = allocation.held(old)
            self.taken_ips = (self.taken_ips - old_ips) | plan.ips
            self.taken_ports = (self.taken_ports - old_ports) | plan.ports
        obj["metadata"]["resourceVersion"] = str(r.revision)
        return Result(obj)

    def _allocation_ops(self, compares: list[Compare], ns: str | None, name: str,
                        old: Obj | None, plan: allocation.Plan) -> list[Put | Delete]:
        old_ips, old_ports = allocation.held(old)
        owner = f"{ns}/{name}".encode()
        ops: list[Put | Delete] = []
        for ip in plan.ips - old_ips:
            compares.append(Compare(IP_PREFIX + ip, 0))
            ops.append(Put(IP_PREFIX + ip, owner))
        for ip in old_ips - plan.ips:
            ops.append(Delete(IP_PREFIX + ip))
        for port in plan.ports - old_ports:
            compares.append(Compare(f"{PORT_PREFIX}{port}", 0))
            ops.append(Put(f"{PORT_PREFIX}{port}", owner))
        for port in old_ports - plan.ports:
            ops.append(Delete(f"{PORT_PREFIX}{port}"))
        return ops

    async def patch(self, res: Resource, ns: str | None, name: str, patch_body: bytes,
                    content_type: str, *, subresource: str = "", dry_run: bool = False,
                    field_validation: str = "Warn") -> Result:
        ctype = content_type.split(";")[0].strip()
        if ctype not in ("application/json-patch+json", "application/merge-patch+json",
                         "application/strategic-merge-patch+json"):
            if ctype == "application/apply-patch+yaml":
                raise errors.ApiError(415, "UnsupportedMediaType",
                                      "server-side apply is not supported by podnet; use "
                                      "client-side apply (kubectl apply without --server-side)")
            raise errors.unsupported_media_type(content_type)
        try:
            patch = orjson.loads(patch_body)
        except orjson.JSONDecodeError as e:
            raise errors.bad_request(f"error decoding patch: {e}") from e
        for _attempt in range(16):
            kv = await self.store.get(res.key(ns, name))
            if kv is None:
                raise errors.not_found(res, name)
            current = decode(kv)
            try:
                if ctype == "application/json-patch+json":
                    patched = json_patch(current, patch)
                elif ctype == "application/merge-patch+json":
                    patched = json_merge_patch(current, patch)
                else:
                    if not isinstance(patch, dict):
                        raise PatchError("a strategic merge patch must be a JSON object")
                    patched = strategic_merge_patch(current, patch, res.api_version, res.kind)
            except PatchError as e:
                if e.status == 422:
                    raise errors.ApiError(422, "Invalid", str(e)) from e
                raise errors.bad_request(str(e)) from e
            if not isinstance(patched, dict):
                raise errors.bad_request("the patch must leave a JSON object")
            obj, warnings = self._decode_body(res, patched, ns, field_validation, subresource)
            meta = obj["metadata"]
            if meta.get("name") != name:
                raise errors.bad_request("a patch may not change metadata.name")
            rv = meta.get("resourceVersion")
            explicit_rv = isinstance(patch, dict) and "resourceVersion" in (
                patch.get("metadata") or {})
            if rv not in (None, "") and rv != str(kv.mod_revision):
                raise errors.conflict(res, name)
            try:
                result = await self._write_update(res, ns, name, current, kv, obj, subresource,
                                                  dry_run)
            except errors.ApiError as e:
                if e.code == 409 and e.reason == "Conflict" and not explicit_rv:
                    continue  # someone wrote in between: patch the new version
                raise
            result.warnings[:0] = warnings
            return result
        raise errors.conflict(res, name, "too many concurrent writes; retry")

    async def delete(self, res: Resource, ns: str | None, name: str, options: Obj | None = None,
                     *, dry_run: bool = False) -> Result:
        options = options or {}
        for _attempt in range(16):
            kv = await self.store.get(res.key(ns, name))
            if kv is None:
                raise errors.not_found(res, name)
            obj = decode(kv)
            meta = obj["metadata"]
            pre = options.get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != meta.get("uid"):
                raise errors.conflict(res, name, f"Precondition failed: UID in precondition: "
                                      f"{pre['uid']}, UID in object meta: {meta.get('uid')}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != str(kv.mod_revision):
                raise errors.conflict(res, name, "Precondition failed: ResourceVersion in "
                                      f"precondition: {pre['resourceVersion']}, ResourceVersion "
                                      f"in meta: {kv.mod_revision}")
            grace_req = options.get("gracePeriodSeconds")
            grace = strategy.graceful_delete_period(
                obj, grace_req if isinstance(grace_req, int) else None)
            pending = bool(meta.get("finalizers")) or (
                res.kind == "Namespace" and strategy.namespace_finalizers(obj))
            if dry_run:
                return Result(obj)
            if not pending and grace == 0:
                try:
                    return await self._remove(res, ns, name, obj, kv)
                except errors.ApiError as e:
                    if e.code == 409:
                        continue
                    raise
            # Graceful: mark it; whoever holds a finalizer (or the pod's node) finishes it.
            if meta.get("deletionTimestamp"):
                old_grace = meta.get("deletionGracePeriodSeconds")
                if not isinstance(old_grace, int) or grace >= old_grace:
                    return Result(obj)
            stamp = self.clock() + dt.timedelta(seconds=grace)
            meta["deletionTimestamp"] = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
            meta["deletionGracePeriodSeconds"] = grace
            if res.kind == "Namespace":
                obj.setdefault("status", {})["phase"] = "Terminating"
            r = await self.store.txn([Compare(kv.key, kv.mod_revision)],
                                     [Put(kv.key, encode(obj))])
            if not r.succeeded:
                continue
            meta["resourceVersion"] = str(r.revision)
            return Result(obj)
        raise errors.conflict(res, name, "too many concurrent writes; retry")

    async def _remove(self, res: Resource, ns: str | None, name: str, obj: Obj, kv: KeyValue,
                      compares: list[Compare] | None = None) -> Result:
        ops: list[Put | Delete] = [Delete(kv.key)]
        ips: set[str] = set()
        ports: set[int] = set()
        if res is SERVICES:
            ips, ports = allocation.held(obj)
            ops += [Delete(IP_PREFIX + ip) for ip in ips]
            ops += [Delete(f"{PORT_PREFIX}{p}") for p in ports]
        r = await self.store.txn(compares or [Compare(kv.key, kv.mod_revision)], ops)
        if not r.succeeded:
            raise errors.conflict(res, name)
        self.taken_ips -= ips
        self.taken_ports -= ports
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(r.revision)
        return Result(obj)

    async def bind(self, ns: str, name: str, binding: Obj) -> Result:
        """The pods/binding subresource: set spec.nodeName once, as the scheduler does."""
        target = (binding.get("target") or {}) if isinstance(binding, dict) else {}
        node = target.get("name")
        if not isinstance(node, str) or not node:
            raise errors.invalid(PODS, name, [FieldError("FieldValueRequired", "target.name",
                                                         detail="")])
        if target.get("kind", "Node") != "Node":
            raise errors.invalid(PODS, name, [FieldError(
                "FieldValueNotSupported", "target.kind", target.get("kind"),
                'supported values: "Node"')])
        for _attempt in range(16):
            kv = await self.store.get(PODS.key(ns, name))
            if kv is None:
                raise errors.not_found(PODS, name)
            pod = decode(kv)
            if pod["metadata"].get("deletionTimestamp"):
                raise errors.conflict(PODS, name, "the pod is being deleted")
            current = (pod.get("spec") or {}).get("nodeName")
            if current:
                raise errors.conflict(PODS, name,
                                      f"pod {name} is already assigned to node \"{current}\"")
            pod.setdefault("spec", {})["nodeName"] = node
            conditions = [c for c in (pod.setdefault("status", {}).get("conditions") or [])
                          if c.get("type") != "PodScheduled"]
            conditions.append({"type": "PodScheduled", "status": "True",
                               "lastTransitionTime": now_rfc3339(self.clock)})
            pod["status"]["conditions"] = conditions
            r = await self.store.txn([Compare(kv.key, kv.mod_revision)],
                                     [Put(kv.key, encode(pod))])
            if r.succeeded:
                pod["metadata"]["resourceVersion"] = str(r.revision)
                return Result(pod, created=True)
        raise errors.conflict(PODS, name)

    async def finalize_namespace(self, name: str, finalizers: list[str]) -> Result:
        """The namespaces/finalize subresource: set spec.finalizers."""
        for _attempt in range(16):
            kv = await self.store.get(NAMESPACES.key(None, name))
            if kv is None:
                raise errors.not_found(NAMESPACES, name)
            obj = decode(kv)
            obj.setdefault("spec", {})["finalizers"] = finalizers
            if obj["metadata"].get("deletionTimestamp") and not finalizers and \
                    not obj["metadata"].get("finalizers"):
                try:
                    return await self._remove(NAMESPACES, None, name, obj, kv)
                except errors.ApiError:
                    continue
            r = await self.store.txn([Compare(kv.key, kv.mod_revision)],
                                     [Put(kv.key, encode(obj))])
            if r.succeeded:
                obj["metadata"]["resourceVersion"] = str(r.revision)
                return Result(obj)
        raise errors.conflict(NAMESPACES, name)

    # -- watching --------------------------------------------------------------------------------

    async def watch(self, res: Resource, ns: str | None, sel: Selectors,
                    resource_version: str) -> AsyncIterator[tuple[str, Obj]]:
        """(type, object) pairs: ADDED/MODIFIED/DELETED; starts with the current objects as
        ADDED when resource_version is "" or "0". A compacted start raises Gone.

        ("PROGRESS", {"resourceVersion": rv}) pairs say every change up to rv has been
        yielded; the HTTP layer turns them into bookmarks."""
        prefix = res.key_prefix(ns)
        initial: list[Obj] = []
        if resource_version in ("", "0"):
            objs, at, _ = await self.list_objects(res, ns, sel)
            initial = objs
            start = int(at) + 1
        else:
            start = _parse_rv(resource_version) + 1
        try:
            w = self.store.watch(prefix, start)
        except Compacted as e:
            raise errors.gone(f"too old resource version: {start - 1} ({e.compacted})") from e
        try:
            for obj in initial:
                yield "ADDED", obj
            if resource_version in ("", "0"):
                yield "PROGRESS", {"resourceVersion": str(start - 1)}
            async for batch in w:
                if not batch:
                    yield "PROGRESS", {"resourceVersion": str(self.store.revision)}
                for ev in batch:
                    out = self._filter(ev, sel)
                    if out is not None:
                        yield out
        except WatchClosed as e:
            log.info("watch on %s ended: %s", prefix, e)
        finally:
            w.close()

    def _decoded(self, kv: KeyValue) -> Obj:
        """Decode a watched value once for all watchers (they only read it)."""
        k = (kv.key, kv.mod_revision)
        obj = self._decode_cache.get(k)
        if obj is None:
            obj = decode(kv)
            self._decode_cache[k] = obj
            if len(self._decode_cache) > 4096:
                self._decode_cache.popitem(last=False)
        return obj

    def _filter(self, ev: Event, sel: Selectors) -> tuple[str, Obj] | None:
        decode = self._decoded
        obj = decode(ev.kv)
        if sel.label is None and sel.field is None:
            if ev.type == "DELETE":
                return "DELETED", obj
            return ("MODIFIED" if ev.prev is not None else "ADDED"), obj
        now = ev.type == "PUT" and sel.matches(obj)
        before = ev.prev is not None and sel.matches(decode(ev.prev))
        if ev.type == "DELETE":
            return ("DELETED", obj) if before else None
        if now and before:
            return "MODIFIED", obj
        if now:
            return "ADDED", obj
        if before:
            return "DELETED", obj
        return None


def _merge(first: list[FieldError], second: list[FieldError]) -> list[FieldError]:
    """Both lists, without the errors the second repeats for a field the first covers."""
    paths = {e.path for e in first}
    return first + [e for e in second if e.path not in paths]


def _parse_rv(rv: str) -> int:
    try:
        n = int(rv)
    except ValueError as e:
        raise errors.bad_request(f'invalid resource version "{rv}"') from e
    if n < 0:
        raise errors.bad_request(f'invalid resource version "{rv}"')
    return n


def resource_for(obj: Obj) -> Resource | None:
    return by_kind(str(obj.get("apiVersion")), str(obj.get("kind")))
