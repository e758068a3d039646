"""An asyncio API client (aiohttp) for the long-running API clients: node agents, later DNS and
ingress. It shares the sync client's paths and errors, and adds a reflector: list, then watch
from the list's resourceVersion, resuming after drops and relisting after 410 Gone.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import orjson

from podnet.api.resources import Resource
from podnet.client.http import ApiError, TransportError, _query, resource_path
from podnet.cluster.state import ClusterState

log = logging.getLogger("podnet.client")

JSON = "application/json"
Obj = dict[str, Any]


class AsyncClient:
    def __init__(self, server: str, *, token: str, ca_file: str | None = None,
                 timeout: float = 30.0) -> None:
        """`server` is the API's URL, or `unix:///path/api.sock` for the server's unix socket
        (what processes in pods use: their network namespace cannot reach the host's
        loopback)."""
        self.unix_socket = server[len("unix://"):] if server.startswith("unix://") else None
        self.server = "http://localhost" if self.unix_socket else server.rstrip("/")
        self.token = token
        self.ssl: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) \
            if server.startswith("https") else False
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_state(cls, state: ClusterState) -> AsyncClient:
        return cls(state.load().server_url, token=state.read_token(), ca_file=str(state.ca_crt))

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {self.token}"},
                connector=(aiohttp.UnixConnector(self.unix_socket, limit=64)
                           if self.unix_socket else aiohttp.TCPConnector(ssl=self.ssl, limit=64)),
                json_serialize=lambda o: orjson.dumps(o).decode())
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                      body: Any = None, content_type: str = JSON) -> Any:
        data = None if body is None else (body if isinstance(body, bytes)
                                           else orjson.dumps(body))
        headers = {"Accept": JSON}
        if data is not None:
            headers["Content-Type"] = content_type
        try:
            async with self.session.request(
                    method, self.server + path + _query(dict(params or {})), data=data,
                    headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise ApiError.from_body(resp.status, raw, resp.reason or "")
                return orjson.loads(raw) if raw else None
        except (aiohttp.ClientError, TimeoutError) as e:
            raise TransportError(f"{method} {path}: {e}") from e

    # -- verbs -----------------------------------------------------------------------------------

    async def get(self, res: Resource, ns: str | None, name: str) -> Obj:
        out: Obj = await self.request("GET", resource_path(res, ns, name))
        return out

    async def list(self, res: Resource, ns: str | None = None, *,
                   label_selector: str | None = None,
                   field_selector: str | None = None) -> Obj:
        out: Obj = await self.request("GET", resource_path(res, ns), params={
            "labelSelector": label_selector, "fieldSelector": field_selector})
        return out

    async def create(self, res: Resource, ns: str | None, body: Obj) -> Obj:
        out: Obj = await self.request("POST", resource_path(res, ns), body=body)
        return out

    async def patch(self, res: Resource, ns: str | None, name: str, patch: Any, *,
                    subresource: str | None = None,
                    content_type: str = "application/merge-patch+json") -> Obj:
        out: Obj = await self.request("PATCH", resource_path(res, ns, name, subresource),
                                      body=patch, content_type=content_type)
        return out

    async def delete(self, res: Resource, ns: str | None, name: str,
                     options: Obj | None = None) -> Obj | None:
        out: Obj | None = await self.request("DELETE", resource_path(res, ns, name),
                                             body=options)
        return out

    async def watch(self, res: Resource, ns: str | None, resource_version: str, *,
                    label_selector: str | None = None, field_selector: str | None = None,
                    timeout_seconds: int = 300) -> AsyncIterator[tuple[str, Obj]]:
        """(type, object) events until the server ends the stream; ERROR events raise."""
        params: dict[str, str | int | bool | None] = {
            "watch": "true", "resourceVersion": resource_version,
                  "allowWatchBookmarks": "true", "timeoutSeconds": timeout_seconds,
                  "labelSelector": label_selector, "fieldSelector": field_selector}
        try:
            async with self.session.get(
                    self.server + resource_path(res, ns) + _query(params),
                    headers={"Accept": JSON},
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout,
                                                  sock_read=timeout_seconds + 30)) as resp:
                if resp.status >= 400:
                    raise ApiError.from_body(resp.status, await resp.read(), resp.reason or "")
                async for line in resp.content:
                    if not line.strip():
                        continue
                    ev = orjson.loads(line)
                    if ev.get("type") == "ERROR":
                        raise ApiError.from_status(ev.get("object") or {})
                    yield ev["type"], ev["object"]
        except (aiohttp.ClientError, TimeoutError) as e:
            raise TransportError(f"watch {res.plural}: {e}") from e


Handler = Callable[[str, Obj], Awaitable[None] | None]


class Reflector:
    """Keeps `objects` (uid -> object) in step with the API for one list/watch, and calls
    `handler(type, obj)` for each change: ADDED, MODIFIED, DELETED (also for objects that
    vanished while the watch was down, found by the relist)."""

    def __init__(self, client: AsyncClient, res: Resource, ns: str | None, handler: Handler, *,
                 label_selector: str | None = None, field_selector: str | None = None) -> None:
        self.client = client
        self.res = res
        self.ns = ns
        self.handler = handler
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.objects: dict[str, Obj] = {}
        self.synced = asyncio.Event()

    async def _emit(self, kind: str, obj: Obj) -> None:
        out = self.handler(kind, obj)
        if out is not None:
            await out

    async def run(self) -> None:
        rv = ""
        while True:
            try:
                if not rv:
                    listed = await self.client.list(self.res, self.ns,
                                                    label_selector=self.label_selector,
                                                    field_selector=self.field_selector)
                    rv = listed["metadata"]["resourceVersion"]
                    fresh = {o["metadata"]["uid"]: o for o in listed["items"]}
                    for uid in set(self.objects) - set(fresh):
                        await self._emit("DELETED", self.objects.pop(uid))
                    for uid, obj in fresh.items():
                        kind = "MODIFIED" if uid in self.objects else "ADDED"
                        self.objects[uid] = obj
                        await self._emit(kind, obj)
                    self.synced.set()
                async for kind, obj in self.client.watch(
                        self.res, self.ns, rv, label_selector=self.label_selector,
                        field_selector=self.field_selector):
                    rv = obj["metadata"].get("resourceVersion") or rv
                    if kind == "BOOKMARK":
                        continue
                    uid = obj["metadata"]["uid"]
                    if kind == "DELETED":
                        self.objects.pop(uid, None)
                    else:
                        self.objects[uid] = obj
                    await self._emit(kind, obj)
            except asyncio.CancelledError:
                raise
            except ApiError as e:
                if e.status == 410:
                    log.info("%s: resourceVersion %s is gone; relisting", self.res.plural, rv)
                    rv = ""
                else:
                    log.warning("%s watch: %s", self.res.plural, e.message)
                    await asyncio.sleep(1)
            except TransportError as e:
                log.warning("%s watch: %s; retrying", self.res.plural, e)
                await asyncio.sleep(1)
