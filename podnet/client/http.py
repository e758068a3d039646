"""A small synchronous client of the podnet API, on http.client and ssl only (fast to start).

    client = Client.from_kubeconfig(path)          # or Client.from_state(state)
    client.get(SERVICES, "default", "web")         # -> the object as a dict
    client.list(PODS, label_selector="app=web")    # -> the List as a dict
    for ev in client.watch(PODS, "default", rv):   # -> WatchEvent(type, object)
        ...

Errors from the server (status >= 400) raise ApiError carrying the Kubernetes Status; a
server that cannot be reached raises TransportError. Both are ClientError.
"""

from __future__ import annotations

import base64
import http.client
import os
import socket
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote, urlencode, urlsplit

import orjson

from podnet.api.resources import Resource

if TYPE_CHECKING:
    from podnet.cluster.state import ClusterState

JSON = "application/json"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}

# The reason Kubernetes gives each status code when the body is not a Status.
_REASONS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
    405: "MethodNotAllowed", 406: "NotAcceptable", 409: "Conflict", 410: "Expired",
    413: "RequestEntityTooLarge", 415: "UnsupportedMediaType", 422: "Invalid",
    429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout",
}

Params = Mapping[str, str | int | bool | None]


class ClientError(Exception):
    """Anything that went wrong talking to the API."""


class TransportError(ClientError):
    """The server could not be reached, or the connection broke."""


class ApiError(ClientError):
    """The server answered with an error status; `body` is its (Status) body, parsed if JSON."""

    def __init__(self, status: int, reason: str, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body

    @classmethod
    def from_body(cls, status: int, raw: bytes, http_reason: str = "") -> ApiError:
        try:
            body: Any = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = raw.decode(errors="replace")
        if isinstance(body, dict) and body.get("kind") == "Status":
            return cls(status, str(body.get("reason") or _REASONS.get(status, "")),
                       str(body.get("message") or http_reason), body)
        text = body.strip() if isinstance(body, str) and body.strip() else http_reason
        return cls(status, _REASONS.get(status, ""), text or f"status {status}", body)

    @classmethod
    def from_status(cls, status_obj: Mapping[str, Any]) -> ApiError:
        code = int(status_obj.get("code") or 500)
        return cls(code, str(status_obj.get("reason") or _REASONS.get(code, "")),
                   str(status_obj.get("message") or ""), dict(status_obj))

    def kubectl_message(self) -> str:
        """The line kubectl prints for this error."""
        if self.reason == "Unauthorized":
            return f"error: You must be logged in to the server ({self.message})"
        if self.reason:
            return f"Error from server ({self.reason}): {self.message}"
        return f"Error from server: {self.message}"


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes = b""
    _parsed: Any = field(default=None, repr=False)

    def json(self) -> Any:
        if self._parsed is None and self.body:
            self._parsed = orjson.loads(self.body)
        return self._parsed


class WatchEvent(NamedTuple):
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    object: dict[str, Any]


def resource_path(res: Resource, ns: str | None = None, name: str | None = None,
                  subresource: str | None = None) -> str:
    """The REST path of a collection, an object or an object's subresource."""
    base = f"/apis/{res.group}/{res.version}" if res.group else f"/api/{res.version}"
    if res.namespaced and ns:
        base += f"/namespaces/{quote(ns, safe='')}"
    path = f"{base}/{res.plural}"
    if name is not None:
        path += f"/{quote(name, safe='')}"
        if subresource:
            path += f"/{subresource}"
    return path


def _encode(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return orjson.dumps(body)


def _query(params: Params | None) -> str:
    if not params:
        return ""
    items = [(k, str(v).lower() if isinstance(v, bool) else str(v))
             for k, v in params.items() if v is not None]
    return "?" + urlencode(items) if items else ""


class Client:
    """One API server, one keep-alive connection (watches open their own)."""

    def __init__(
        self,
        server: str,
        *,
        token: str | None = None,
        ca_data: bytes | None = None,
        ca_file: str | None = None,
        insecure: bool = False,
        timeout: float = 30.0,
    ) -> None:
        url = urlsplit(server)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"bad server URL {server!r}")
        self.server = server.rstrip("/")
        self.scheme = url.scheme
        self.host = url.hostname
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.base_path = url.path.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.ssl_context: ssl.SSLContext | None = None
        if url.scheme == "https":
            ctx = ssl.create_default_context(
                cafile=ca_file, cadata=ca_data.decode() if ca_data else None)
            if insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self.ssl_context = ctx
        self._conn: http.client.HTTPConnection | None = None

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str], context: str | None = None,
                        timeout: float = 30.0) -> Client:
        """A client for the current (or given) context of a kubeconfig with a bearer token."""
        import yaml  # only here: most CLI commands build their client from the state dir

        p = Path(path)
        doc = yaml.safe_load(p.read_text()) or {}
        ctx_name = context or doc.get("current-context")

        def pick(section: str, name: Any) -> dict[str, Any]:
            for item in doc.get(section) or []:
                if item.get("name") == name:
                    return dict(item.get(section[:-1]) or {})
            raise ValueError(f"{p}: no {section[:-1]} named {name!r}")

        ctx = pick("contexts", ctx_name)
        cluster = pick("clusters", ctx.get("cluster"))
        user = pick("users", ctx.get("user")) if ctx.get("user") else {}
        token = user.get("token")
        if not token and user.get("tokenFile"):
            token = (p.parent / user["tokenFile"]).read_text().strip()
        ca_data = None
        if cluster.get("certificate-authority-data"):
            ca_data = base64.b64decode(cluster["certificate-authority-data"])
        ca_file = None
        if cluster.get("certificate-authority"):
            ca_file = str(p.parent / cluster["certificate-authority"])
        return cls(cluster["server"], token=token, ca_data=ca_data, ca_file=ca_file,
                   insecure=bool(cluster.get("insecure-skip-tls-verify")), timeout=timeout)

    @classmethod
    def from_state(cls, state: ClusterState, timeout: float = 30.0) -> Client:
        """A client for a cluster's state directory: its URL, CA and admin token."""
        config = state.load()
        return cls(config.server_url, token=state.read_token(), ca_file=str(state.ca_crt),
                   timeout=timeout)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- raw requests ------------------------------------------------------------------------

    def _connect(self, timeout: float | None) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=self.ssl_context)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def _headers(self, accept: str, content_type: str | None) -> dict[str, str]:
        h = {"Accept": accept, "User-Agent": "podnet-client"}
        if content_type:
            h["Content-Type"] = content_type
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        return h

    def _transport_error(self, e: Exception) -> TransportError:
        if isinstance(e, ConnectionRefusedError):
            msg = (f"The connection to the server {self.host}:{self.port} was refused - "
                   "did you specify the right host or port?")
        elif isinstance(e, ssl.SSLCertVerificationError):
            msg = f"Unable to connect to the server: tls: {e.verify_message or e}"
        elif isinstance(e, socket.timeout | TimeoutError):
            msg = f"Unable to connect to the server: timed out ({self.host}:{self.port})"
        else:
            msg = f"Unable to connect to the server: {e}"
        return TransportError(msg)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: Any = None,
        content_type: str = JSON,
        accept: str = JSON,
        timeout: float | None = None,
    ) -> Response:
        """Send one request; return the response, or raise ApiError when status >= 400."""
        url = self.base_path + path + _query(params)
        data = _encode(body)
        headers = self._headers(accept, content_type if body is not None else None)
        for attempt in (1, 2):
            reused = self._conn is not None
            if self._conn is None:
                self._conn = self._connect(self.timeout)
            conn = self._conn
            if timeout is not None:
                conn.timeout = timeout
                if conn.sock is not None:
                    conn.sock.settimeout(timeout)
            try:
                conn.request(method, url, body=data if body is not None else None,
                             headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                self.close()
                if reused and attempt == 1:
                    continue  # the server closed an idle keep-alive connection: retry once
                raise self._transport_error(e) from e
            except (OSError, http.client.HTTPException) as e:
                self.close()
                raise self._transport_error(e) from e
            finally:
                if timeout is not None and self._conn is not None:
                    self._conn.timeout = self.timeout
                    if self._conn.sock is not None:
                        self._conn.sock.settimeout(self.timeout)
            if resp.will_close:
                self.close()
            out = Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw)
            if resp.status >= 400:
                raise ApiError.from_body(resp.status, raw, resp.reason)
            return out
        raise AssertionError("unreachable")

    # -- resources ---------------------------------------------------------------------------

    def list(self, res: Resource, ns: str | None = None, *,
             label_selector: str | None = None, field_selector: str | None = None,
             params: Params | None = None) -> dict[str, Any]:
        q = {"labelSelector": label_selector, "fieldSelector": field_selector, **(params or {})}
        out: dict[str, Any] = self.request("GET", resource_path(res, ns), params=q).json()
        return out

    def get(self, res: Resource, ns: str | None, name: str) -> dict[str, Any]:
        out: dict[str, Any] = self.request("GET", resource_path(res, ns, name)).json()
        return out

    def create(self, res: Resource, ns: str | None, body: Mapping[str, Any], *,
               params: Params | None = None) -> dict[str, Any]:
        out: dict[str, Any] = self.request(
            "POST", resource_path(res, ns), body=dict(body), params=params).json()
        return out

    def replace(self, res: Resource, ns: str | None, name: str, body: Mapping[str, Any], *,
                subresource: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = self.request(
            "PUT", resource_path(res, ns, name, subresource), body=dict(body)).json()
        return out

    def patch(self, res: Resource, ns: str | None, name: str, patch: Any,
              patch_type: str = "merge", *, subresource: str | None = None,
              params: Params | None = None) -> dict[str, Any]:
        """`patch_type`: merge, json, strategic, apply, or a content type."""
        ctype = PATCH_TYPES.get(patch_type, patch_type)
        out: dict[str, Any] = self.request(
            "PATCH", resource_path(res, ns, name, subresource), body=patch,
            content_type=ctype, params=params).json()
        return out

    def delete(self, res: Resource, ns: str | None, name: str, *,
               body: Mapping[str, Any] | None = None,
               params: Params | None = None) -> dict[str, Any]:
        """Delete an object; returns what the server answers (the object or a Status)."""
        out: dict[str, Any] = self.request(
            "DELETE", resource_path(res, ns, name),
            body=dict(body) if body is not None else None, params=params).json()
        return out

    def table(self, res: Resource, ns: str | None = None, name: str | None = None, *,
              label_selector: str | None = None, field_selector: str | None = None,
              ) -> dict[str, Any]:
        """The server-side Table of a collection (or of one object). A server that cannot
        make Tables may answer with the plain object or List: check `kind`."""
        q = {"labelSelector": label_selector, "fieldSelector": field_selector}
        out: dict[str, Any] = self.request(
            "GET", resource_path(res, ns, name), params=q if name is None else None,
            accept=f"{TABLE},{JSON}").json()
        return out

    def watch(self, res: Resource, ns: str | None = None,
              resource_version: str | None = None, *,
              label_selector: str | None = None, field_selector: str | None = None,
              timeout_seconds: int | None = None, allow_bookmarks: bool = False,
              read_timeout: float | None = None) -> Iterator[WatchEvent]:
        """Events of a collection from `resource_version` on, until the server ends the
        stream. An ERROR event (e.g. 410 Gone: the version is too old) raises ApiError."""
        q: dict[str, str | int | bool | None] = {
            "watch": True, "resourceVersion": resource_version,
            "labelSelector": label_selector, "fieldSelector": field_selector,
            "timeoutSeconds": timeout_seconds,
            "allowWatchBookmarks": True if allow_bookmarks else None,
        }
        conn = self._connect(read_timeout)
        try:
            try:
                conn.request("GET", self.base_path + resource_path(res, ns) + _query(q),
                             headers=self._headers(JSON, None))
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                raise self._transport_error(e) from e
            if resp.status >= 400:
                raise ApiError.from_body(resp.status, resp.read(), resp.reason)
            yield from _events(resp)
        finally:
            conn.close()

    # -- health ------------------------------------------------------------------------------

    def ready(self, path: str = "/readyz", timeout: float = 2.0) -> bool:
        """True when the server answers `path` with 200."""
        try:
            return self.request("GET", path, accept="text/plain, */*",
                                timeout=timeout).status == 200
        except ClientError:
            return False


def _events(resp: http.client.HTTPResponse) -> Iterator[WatchEvent]:
    while True:
        try:
            line = resp.readline()
        except (OSError, http.client.HTTPException) as e:
            raise TransportError(f"watch stream broken: {e}") from e
        if not line:
            return
        line = line.strip()
        if not line:
            continue
        ev = orjson.loads(line)
        obj = ev.get("object") or {}
        if ev.get("type") == "ERROR":
            raise ApiError.from_status(obj)
        yield WatchEvent(str(ev.get("type")), obj)
