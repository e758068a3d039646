"""healthCheckNodePort servers (shell): for a Service with externalTrafficPolicy Local, an
external load balancer asks every node `GET http://<node-ip>:<healthCheckNodePort>/` and sends
traffic only to nodes answering 200, those with a ready endpoint of the Service. As kube-proxy:

    200 (some local endpoints) or 503 (none), Content-Type: application/json,
    {"service": {"namespace": NS, "name": NAME}, "localEndpoints": N, "serviceProxyHealthy": true}

The agent runs in the host's namespace; the listening sockets must be in the node's. A short
thread enters the node's namespace with setns(2), creates and binds the sockets there and ends
(a socket keeps the namespace it was made in); the event loop then serves them, one asyncio
server per port. Counts change in memory; a port is bound once, while it is wanted.

HTTP is kept small: one request per connection (answered with `Connection: close`), the request
line and headers (CRLF or LF line ends) within MAX_HEAD bytes and READ_TIMEOUT seconds, else
400 (or nothing, on a timeout). GET and HEAD are answered on any path; other methods get 405.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import socket
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from podnet.kernel import netns
from podnet.kernel.netns import KernelError
from podnet.kernel.setns import setns

log = logging.getLogger("podnet.proxy")

MAX_HEAD = 8192  # bytes of request line + headers
READ_TIMEOUT = 10.0
BACKLOG = 128
LINGER = 1.0  # seconds, and bytes, read and dropped after answering (see linger())
LINGER_BYTES = 65536

# healthCheckNodePort -> (namespace, name, local ready endpoints)
HealthServices = Mapping[int, tuple[str, str, int]]

_REQUEST_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP/1\.[01]")
_HEADER = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[ \t]*[^\r\n]*")
_REASONS = {200: "OK", 400: "Bad Request", 405: "Method Not Allowed",
            503: "Service Unavailable"}


class HealthCheckError(KernelError):
    """Some healthCheckNodePorts could not be bound; the message lists them. The others are
    served, and the next sync tries the failed ones again."""


def body(namespace: str, name: str, count: int) -> bytes:
    return json.dumps({"service": {"namespace": namespace, "name": name},
                       "localEndpoints": count, "serviceProxyHealthy": True},
                      indent=2).encode() + b"\n"


def response(status: int, payload: bytes, *, head: bool = False,
             extra: tuple[tuple[str, str], ...] = ()) -> bytes:
    headers = [f"HTTP/1.1 {status} {_REASONS[status]}",
               "Content-Type: application/json" if status in (200, 503)
               else "Content-Type: text/plain; charset=utf-8",
               "X-Content-Type-Options: nosniff",
               f"Content-Length: {len(payload)}",
               "Connection: close",
               *(f"{k}: {v}" for k, v in extra)]
    return "\r\n".join(headers).encode() + b"\r\n\r\n" + (b"" if head else payload)


async def read_head(reader: asyncio.StreamReader) -> list[bytes]:
    """The request line and header lines, without line ends, up to the blank line (CRLF or
    LF line ends). ValueError past MAX_HEAD bytes; IncompleteReadError when the client stops
    sending first."""
    lines: list[bytes] = []
    size = 0
    while True:
        line = await reader.readline()  # ValueError beyond the reader's limit (MAX_HEAD)
        size += len(line)
        if size > MAX_HEAD:
            raise ValueError("request head too large")
        if not line.endswith(b"\n"):
            raise asyncio.IncompleteReadError(line, None)
        line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        if not line:
            return lines
        lines.append(line)


async def linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """After answering: send FIN, then read what the client still sends, for a little while,
    before closing. Closing with unread data would send a reset, which may destroy the answer
    before the client read it (a request that was too large, or had a body)."""
    if writer.can_write_eof():
        writer.write_eof()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(LINGER):
            left = LINGER_BYTES
            while left > 0 and (chunk := await reader.read(min(left, 4096))):
                left -= len(chunk)


def parse_head(lines: list[bytes]) -> bytes | None:
    """The method of a request whose line and headers are well formed, else None."""
    if not lines:
        return None
    match = _REQUEST_LINE.fullmatch(lines[0])
    if match is None or not all(_HEADER.fullmatch(line) for line in lines[1:]):
        return None
    return match.group(1)


def _bind_in_netns(ns: str, address: str, ports: list[int]) -> dict[int, socket.socket | str]:
    """Run in a thread of its own, which it leaves in namespace `ns`: a listening socket for
    each port, or why there is none."""
    fd = os.open(netns.path(ns), os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(fd)
    finally:
        os.close(fd)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    out: dict[int, socket.socket | str] = {}
    for port in ports:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.listen(BACKLOG)
            sock.setblocking(False)
        except OSError as e:
            sock.close()
            out[port] = e.strerror or str(e)
        else:
            out[port] = sock
    return out


class HealthServer:
    """The healthCheckNodePort listeners of one node, on `address` in namespace `ns`."""

    def __init__(self, ns: str, address: str) -> None:
        self.ns = ns
        self.address = address
        self._services: dict[int, tuple[str, str, int]] = {}
        self._servers: dict[int, asyncio.Server] = {}
        self._connections: set[asyncio.Task[Any]] = set()
        self._lock = asyncio.Lock()

    @property
    def ports(self) -> frozenset[int]:
        """The ports listened on now."""
        return frozenset(self._servers)

    async def sync(self, services: HealthServices) -> None:
        """Serve exactly the ports of `services` with their current counts. HealthCheckError
        when some ports could not be bound (the rest are served)."""
        async with self._lock:
            self._services = dict(services)
            for port in sorted(set(self._servers) - set(services)):
                self._servers.pop(port).close()
                log.info("%s: health check port %s:%d closed", self.ns, self.address, port)
            new = sorted(set(services) - set(self._servers))
            if not new:
                return
            made = await self._bind(new)
            failed = {}
            for port, sock in made.items():
                if isinstance(sock, str):
                    failed[port] = sock
                    continue
                try:
                    self._servers[port] = await asyncio.start_server(
                        self._handler(port), sock=sock, limit=MAX_HEAD)
                except OSError as e:
                    sock.close()
                    failed[port] = e.strerror or str(e)
                    continue
                log.info("%s: health check port %s:%d (%s/%s) listening", self.ns,
                         self.address, port, *services[port][:2])
            if failed:
                log.error("%s: cannot listen on health check ports of %s: %s", self.ns,
                          self.address, failed)
                raise HealthCheckError(f"{self.ns}: cannot listen on {self.address}: {failed}")

    async def close(self) -> None:
        """Stop every listener and drop the connections being served."""
        async with self._lock:
            for server in self._servers.values():
                server.close()
            self._servers.clear()
            self._services.clear()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)

    async def _bind(self, ports: list[int]) -> dict[int, socket.socket | str]:
        # A fresh thread each time: it stays in the namespace and dies with the executor, so
        # no pooled thread is ever left in a namespace other than the host's.
        with ThreadPoolExecutor(1, thread_name_prefix="podnet-healthcheck-bind") as pool:
            try:
                return await asyncio.get_running_loop().run_in_executor(
                    pool, _bind_in_netns, self.ns, self.address, ports)
            except OSError as e:
                return {port: f"namespace {self.ns}: {e.strerror or e}" for port in ports}

    # -- HTTP --------------------------------------------------------------------------------

    def _handler(self, port: int) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                              Awaitable[None]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._connections.add(task)
            try:
                await self._serve(port, reader, writer)
            except (OSError, asyncio.IncompleteReadError, TimeoutError):
                pass  # the client went away, or said nothing in time: just close
            finally:
                if task is not None:
                    self._connections.discard(task)
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
        return handle

    async def _serve(self, port: int, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(read_head(reader), READ_TIMEOUT)
        except ValueError:
            out = response(400, b"request head too large\n")
        else:
            out = self._answer(port, head)
        if out:
            writer.write(out)
            await writer.drain()
            await linger(reader, writer)

    def _answer(self, port: int, head: list[bytes]) -> bytes:
        method = parse_head(head)
        service = self._services.get(port)
        if method is None:
            return response(400, b"malformed request\n")
        if method not in (b"GET", b"HEAD"):
            return response(405, b"method not allowed\n", extra=(("Allow", "GET, HEAD"),))
        if service is None:
            return b""  # the port is being closed
        namespace, name, count = service
        return response(200 if count > 0 else 503, body(namespace, name, count),
                        head=method == b"HEAD")
