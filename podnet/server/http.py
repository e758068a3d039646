"""The Kubernetes REST API over HTTP (aiohttp): paths, verbs, content negotiation, watch
streams, discovery and authentication. Semantics live in podnet.server.registry.

Paths served (GROUP/VERSION is `api/v1` for the core group, `apis/G/V` otherwise):
  /GROUP/VERSION/PLURAL                         list all (namespaced kinds: in every namespace)
  /GROUP/VERSION/PLURAL/NAME[/status]           cluster-scoped object
  /GROUP/VERSION/namespaces/NS/PLURAL[/NAME[/status]]
  /GROUP/VERSION/watch/...                      the legacy watch paths
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import yaml
from aiohttp import web

from podnet import __version__
from podnet.api import schema, tables
from podnet.api.resources import RESOURCES, Resource, by_path, groups
from podnet.server import errors
from podnet.server.registry import Registry, Selectors

log = logging.getLogger("podnet.server")

K8S_MINOR = "37"  # the Kubernetes API level podnet's kinds and behaviour follow
JSON = "application/json"
BOOKMARK_EVERY = 10.0  # seconds between watch bookmarks
MAX_WATCH = 1800.0  # seconds; clients reconnect, as with kube-apiserver's default
PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version"})
MAX_BODY = 3 * 1024 * 1024


def _dump(obj: Any) -> bytes:
    return orjson.dumps(obj)


def json_response(obj: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    resp = web.Response(body=_dump(obj), status=status, content_type=JSON)
    for w in warnings or []:
        resp.headers.add("Warning", '299 - "' + w.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return resp


def error_response(e: errors.ApiError) -> web.Response:
    return json_response(e.status(), e.code)


# -- content negotiation ---------------------------------------------------------------------------

def wants(request: web.Request) -> str:
    """"table", "metadata" or "json", from the Accept header (first acceptable wins)."""
    accept = request.headers.get("Accept", "")
    if not accept:
        return "json"
    saw_json = False
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        params = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
        if media not in (JSON, "application/*", "*/*"):
            continue
        as_ = params.get("as")
        if as_ == "Table" and params.get("g") == "meta.k8s.io" and params.get("v") in (
                "v1", "v1beta1"):
            return "table"
        if as_ in ("PartialObjectMetadata", "PartialObjectMetadataList") and \
                params.get("g") == "meta.k8s.io":
            return "metadata"
        if as_ is None:
            saw_json = True
            return "json"
    if saw_json:
        return "json"
    raise errors.ApiError(406, "NotAcceptable",
                          f"only the following media types are accepted: {JSON}")


def _partial(obj: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata", {})}


# -- discovery -------------------------------------------------------------------------------------

_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def resource_list(group: str, version: str) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    for r in RESOURCES:
        if (r.group, r.version) != (group, version):
            continue
        entry: dict[str, Any] = {"name": r.plural, "singularName": r.singular,
                                 "namespaced": r.namespaced, "kind": r.kind, "verbs": _VERBS}
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        out.append(entry)
        for sub in r.subresources:
            out.append({"name": f"{r.plural}/{sub}", "singularName": "",
                        "namespaced": r.namespaced, "kind": r.kind,
                        "verbs": ["get", "patch", "update"]})
        if r.kind == "Pod":
            out.append({"name": "pods/binding", "singularName": "", "namespaced": True,
                        "kind": "Binding", "verbs": ["create"]})
        if r.kind == "Namespace":
            out.append({"name": "namespaces/finalize", "singularName": "", "namespaced": False,
                        "kind": "Namespace", "verbs": ["update"]})
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}


def api_group_list() -> dict[str, Any]:
    out = []
    for group, versions in groups().items():
        if not group:
            continue
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        out.append({"name": group, "versions": gvs, "preferredVersion": gvs[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": out}


# -- the application ---------------------------------------------------------------------------

class Api:
    def __init__(self, registry: Registry, token: str, *, server_address: str,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.registry = registry
        self.token = token.encode()
        self.server_address = server_address
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.ready = False
        self._lines: collections.OrderedDict[tuple[str, str, str], bytes] = \
            collections.OrderedDict()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                          ) -> web.StreamResponse:
        started = time.monotonic()
        try:
            if request.path not in PUBLIC_PATHS and not self._authorized(request):
                raise errors.unauthorized()
            resp = await handler(request)
        except errors.ApiError as e:
            resp = error_response(e)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as e:
            log.exception("internal error on %s %s", request.method, request.path_qs)
            resp = error_response(errors.ApiError(500, "InternalError", f"internal error: {e}"))
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s -> %s (%.1f ms)", request.method, request.path_qs, resp.status,
                      (time.monotonic() - started) * 1000)
        return resp

    def _authorized(self, request: web.Request) -> bool:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return False
        return hmac.compare_digest(auth[7:].strip().encode(), self.token)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        parts = [p for p in path.split("/") if p]
        if path in ("/healthz", "/livez"):
            return web.Response(text="ok")
        if path == "/readyz":
            return web.Response(text="ok") if self.ready else web.Response(
                text="not ready", status=503)
        if path == "/version":
            return json_response({
                "major": "1", "minor": K8S_MINOR, "gitVersion": f"v1.{K8S_MINOR}.0+podnet"
                f"-{__version__}", "gitCommit": "", "gitTreeState": "clean",
                "buildDate": "", "goVersion": "", "compiler": "podnet",
                "platform": "linux/amd64"})
        if request.method != "GET" and parts[:1] != ["api"] and parts[:1] != ["apis"]:
            raise errors.method_not_allowed(f"{request.method} is not allowed on {path}")
        if path == "/api":
            return json_response({"kind": "APIVersions", "versions": ["v1"],
                                  "serverAddressByClientCIDRs": [
                                      {"clientCIDR": "0.0.0.0/0",
                                       "serverAddress": self.server_address}]})
        if path == "/apis":
            return json_response(api_group_list())
        if parts[:2] == ["openapi", "v3"]:
            return self._openapi(parts[2:])
        if parts[:1] == ["api"] and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        elif parts[:1] == ["apis"] and len(parts) == 2 and parts[1] in groups():
            versions = groups()[parts[1]]
            gvs = [{"groupVersion": f"{parts[1]}/{v}", "version": v} for v in versions]
            return json_response({"kind": "APIGroup", "apiVersion": "v1", "name": parts[1],
                                  "versions": gvs, "preferredVersion": gvs[0]})
        else:
            raise errors.no_such_resource()
        if version not in groups().get(group, []):
            raise errors.no_such_resource()
        if not rest:
            if request.method != "GET":
                raise errors.method_not_allowed(f"{request.method} is not allowed on {path}")
            return json_response(resource_list(group, version))
        return await self._resource(request, group, version, rest)

    def _openapi(self, rest: list[str]) -> web.Response:
        if not rest:
            return json_response(schema.openapi_v3_index())
        if rest[0] == "api" and len(rest) == 2:
            group, version = "", rest[1]
        elif rest[0] == "apis" and len(rest) == 3:
            group, version = rest[1], rest[2]
        else:
            raise errors.no_such_resource()
        if version not in groups().get(group, []):
            raise errors.no_such_resource()
        return json_response(schema.openapi_v3(group, version))

    # -- resources ---------------------------------------------------------------------------

    async def _resource(self, request: web.Request, group: str, version: str,
                        rest: list[str]) -> web.StreamResponse:
        watch_path = False
        if rest[0] == "watch":
            watch_path, rest = True, rest[1:]
        ns: str | None = None
        # /namespaces/NS/PLURAL... unless it is the Namespace object itself (/namespaces/NAME
        # or /namespaces/NAME/status|finalize).
        if len(rest) >= 3 and rest[0] == "namespaces" and (
                group != "" or rest[2] not in ("status", "finalize")):
            ns, rest = rest[1], rest[2:]
        res = by_path(group, version, rest[0])
        if res is None:
            raise errors.no_such_resource()
        if ns is not None and not res.namespaced:
            raise errors.no_such_resource()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else ""
        if len(rest) > 3 or (sub and sub not in res.subresources and not (
                res.kind == "Namespace" and sub == "finalize") and not (
                res.kind == "Pod" and sub == "binding")):
            raise errors.no_such_resource()
        if res.namespaced and name is not None and ns is None:
            raise errors.no_such_resource()
        q = request.query
        method = request.method
        if watch_path or (method == "GET" and q.get("watch") in ("true", "1")):
            if name is not None:
                return await self._watch(request, res, ns, name_filter=name)
            return await self._watch(request, res, ns)
        dry_run = q.get("dryRun") == "All"
        if "dryRun" in q and q.get("dryRun") not in ("All", ""):
            raise errors.bad_request(f'unsupported dryRun value "{q.get("dryRun")}"; '
                                     'supported: "All"')
        fv = q.get("fieldValidation") or "Warn"
        if fv not in ("Strict", "Warn", "Ignore"):
            raise errors.bad_request(f'fieldValidation must be one of "Ignore", "Warn" or '
                                     f'"Strict", not "{fv}"')
        reg = self.registry
        if name is None:
            if method == "GET":
                return await self._list(request, res, ns)
            if method == "POST":
                if ns is None and res.namespaced:
                    raise errors.method_not_allowed("POST needs a namespace for "
                                                    f"{res.plural}")
                result = await reg.create(res, ns, await self._body(request), dry_run=dry_run,
                                          field_validation=fv)
                return json_response(result.obj, 201, result.warnings)
            if method == "DELETE":
                return await self._delete_collection(request, res, ns, dry_run)
            raise errors.method_not_allowed(f"{method} is not allowed on a collection")
        if sub == "binding":
            if method != "POST" or ns is None:
                raise errors.method_not_allowed(f"{method} is not allowed on pods/binding")
            await reg.bind(ns, name, await self._body(request))
            return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {},
                                  "status": "Success", "code": 201}, 201)
        if method == "GET":
            obj = await reg.get(res, ns, name)
            return self._render_one(request, res, obj)
        if method == "PUT":
            if res.kind == "Namespace" and sub == "finalize":
                body = await self._body(request)
                fins = (body.get("spec") or {}).get("finalizers") or []
                result = await reg.finalize_namespace(name, list(fins))
                return json_response(result.obj)
            result = await reg.update(res, ns, name, await self._body(request), subresource=sub,
                                      dry_run=dry_run, field_validation=fv)
            return json_response(result.obj, 201 if result.created else 200, result.warnings)
        if method == "PATCH":
            result = await reg.patch(res, ns, name, await request.read(),
                                     request.headers.get("Content-Type", ""), subresource=sub,
                                     dry_run=dry_run, field_validation=fv)
            return json_response(result.obj, 200, result.warnings)
        if method == "DELETE":
            options = await self._delete_options(request)
            result = await reg.delete(res, ns, name, options, dry_run=dry_run)
            return json_response(result.obj)
        raise errors.method_not_allowed(f"{method} is not allowed on {request.path}")

    async def _body(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        ctype = request.headers.get("Content-Type", JSON).split(";")[0].strip()
        try:
            if ctype in ("application/yaml", "application/x-yaml"):
                body = yaml.safe_load(raw)
            elif ctype in (JSON, ""):
                body = orjson.loads(raw)
            else:
                raise errors.ApiError(415, "UnsupportedMediaType",
                                      f'the body of the request was in an unknown format - '
                                      f'accepted media types include: application/json, '
                                      f'application/yaml (got "{ctype}")')
        except (orjson.JSONDecodeError, yaml.YAMLError) as e:
            raise errors.bad_request(f"error decoding the request body: {e}") from e
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        return body

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if request.can_read_body:
            raw = await request.read()
            if raw.strip():
                try:
                    options = orjson.loads(raw)
                except orjson.JSONDecodeError as e:
                    raise errors.bad_request(f"error decoding DeleteOptions: {e}") from e
                if not isinstance(options, dict):
                    raise errors.bad_request("DeleteOptions must be a JSON object")
        q = request.query
        if "gracePeriodSeconds" in q:
            try:
                options["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
            except ValueError as e:
                raise errors.bad_request("gracePeriodSeconds must be an integer") from e
        if "propagationPolicy" in q:
            options["propagationPolicy"] = q["propagationPolicy"]
        pp = options.get("propagationPolicy")
        if pp not in (None, "Orphan", "Background", "Foreground"):
            raise errors.bad_request(f'propagationPolicy: Unsupported value: "{pp}": supported '
                                     'values: "Foreground", "Background", "Orphan"')
        return options

    def _selectors(self, request: web.Request, res: Resource) -> Selectors:
        q = request.query
        return Selectors.parse(res, q.get("labelSelector"), q.get("fieldSelector"))

    async def _list(self, request: web.Request, res: Resource,
                    ns: str | None) -> web.Response:
        q = request.query
        try:
            limit = int(q.get("limit") or 0)
        except ValueError as e:
            raise errors.bad_request("limit must be an integer") from e
        objs, rv, token = await self.registry.list_objects(
            res, ns, self._selectors(request, res), limit=max(limit, 0),
            continue_token=q.get("continue", ""), resource_version=q.get("resourceVersion", ""),
            match=q.get("resourceVersionMatch", ""))
        mode = wants(request)
        if mode == "table":
            return json_response(tables.table(
                res.api_version, res.kind, objs, self.clock(),
                include_object=q.get("includeObject", "Metadata"), resource_version=rv,
                continue_token=token))
        meta: dict[str, Any] = {"resourceVersion": rv}
        if token:
            meta["continue"] = token
        if mode == "metadata":
            return json_response({"kind": "PartialObjectMetadataList",
                                  "apiVersion": "meta.k8s.io/v1", "metadata": meta,
                                  "items": [_partial(o) for o in objs]})
        return json_response({"kind": f"{res.kind}List", "apiVersion": res.api_version,
                              "metadata": meta, "items": objs})

    def _render_one(self, request: web.Request, res: Resource,
                    obj: dict[str, Any]) -> web.Response:
        mode = wants(request)
        if mode == "table":
            return json_response(tables.table(
                res.api_version, res.kind, [obj], self.clock(),
                include_object=request.query.get("includeObject", "Metadata"),
                resource_version=obj["metadata"].get("resourceVersion", "")))
        if mode == "metadata":
            return json_response(_partial(obj))
        return json_response(obj)

    async def _delete_collection(self, request: web.Request, res: Resource, ns: str | None,
                                 dry_run: bool) -> web.Response:
        options = await self._delete_options(request)
        objs, _, _ = await self.registry.list_objects(res, ns, self._selectors(request, res))
        deleted = []
        for obj in objs:
            meta = obj["metadata"]
            try:
                result = await self.registry.delete(res, meta.get("namespace"), meta["name"],
                                                    options, dry_run=dry_run)
            except errors.ApiError as e:
                if e.code == 404:
                    continue
                raise
            deleted.append(result.obj)
        return json_response({"kind": f"{res.kind}List", "apiVersion": res.api_version,
                              "metadata": {}, "items": deleted})

    async def _watch(self, request: web.Request, res: Resource, ns: str | None,
                     name_filter: str | None = None) -> web.StreamResponse:
        q = request.query
        fields = q.get("fieldSelector")
        if name_filter is not None:
            fields = f"metadata.name={name_filter}" + (f",{fields}" if fields else "")
        sel = Selectors.parse(res, q.get("labelSelector"), fields)
        mode = wants(request)
        try:
            timeout = min(float(q.get("timeoutSeconds") or MAX_WATCH), MAX_WATCH)
        except ValueError as e:
            raise errors.bad_request("timeoutSeconds must be a number") from e
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        send_initial = q.get("sendInitialEvents") in ("true", "1")
        rv = q.get("resourceVersion", "")
        if send_initial and rv in ("",):
            rv = "0"
        events = self.registry.watch(res, ns, sel, rv)
        resp = web.StreamResponse(status=200)
        resp.content_type = JSON
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        deadline = time.monotonic() + timeout
        next_bookmark = time.monotonic() + BOOKMARK_EVERY
        first_table = True
        initial_pending = send_initial
        try:
            async with contextlib.aclosing(events):  # type: ignore[type-var]
                async for kind, obj in events:
                    now = time.monotonic()
                    if kind == "PROGRESS":
                        if initial_pending:
                            initial_pending = False
                            await resp.write(_dump(self._bookmark(res, obj, initial_end=True))
                                             + b"\n")
                        elif bookmarks and now >= next_bookmark:
                            next_bookmark = now + BOOKMARK_EVERY
                            await resp.write(_dump(self._bookmark(res, obj)) + b"\n")
                    else:
                        if mode == "table":
                            obj = tables.table(
                                res.api_version, res.kind, [obj], self.clock(),
                                include_object=q.get("includeObject", "Metadata"),
                                resource_version=obj["metadata"].get("resourceVersion", ""),
                                with_columns=first_table)
                            first_table = False
                            line = _dump({"type": kind, "object": obj}) + b"\n"
                        elif mode == "metadata":
                            line = _dump({"type": kind, "object": _partial(obj)}) + b"\n"
                        else:
                            line = self._event_line(kind, obj)
                        await resp.write(line)
                    if now >= deadline:
                        break
                    transport = request.transport
                    if transport is None or transport.is_closing():
                        break
        except errors.ApiError as e:
            await resp.write(_dump({"type": "ERROR", "object": e.status()}) + b"\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        with contextlib.suppress(ConnectionResetError):
            await resp.write_eof()
        return resp

    def _event_line(self, kind: str, obj: dict[str, Any]) -> bytes:
        """A watch event's JSON line, encoded once for all the watchers that get it."""
        meta = obj["metadata"]
        key = (kind, meta.get("uid", ""), meta.get("resourceVersion", ""))
        line = self._lines.get(key)
        if line is None:
            line = _dump({"type": kind, "object": obj}) + b"\n"
            self._lines[key] = line
            if len(self._lines) > 4096:
                self._lines.popitem(last=False)
        return line

    def _bookmark(self, res: Resource, rv: dict[str, Any],
                  initial_end: bool = False) -> dict[str, Any]:
        meta: dict[str, Any] = {"resourceVersion": rv["resourceVersion"]}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"type": "BOOKMARK", "object": {"kind": res.kind, "apiVersion": res.api_version,
                                               "metadata": meta}}
