"""podnet's built-in echo server: what a container without a `command` runs.

    python -I -S echo.py --pod P --namespace NS --node N --pod-ip IP --tcp 8080 --udp 53 ...

Each `--tcp PORT` answers HTTP/1.1 (keep-alive, pipelining) on 0.0.0.0:PORT with one line of
JSON describing the server and the request:

    {"pod": ..., "namespace": ..., "node": ..., "podIP": ..., "port": 8080,
     "client": {"ip": ..., "port": ...}, "method": "GET", "path": "/x?y", "host": ...,
     "headers": {"Host": ..., ...}}

Each `--udp PORT` sends every datagram back to its sender unchanged.

It starts in a few milliseconds and stays small (one epoll loop, no threads), because a node
runs one per pod: it imports only built-in modules (no `socket`, `selectors` or `json`, whose
imports cost more than the rest of the start-up). SIGTERM ends it with exit code 0.
"""

from __future__ import annotations

import _signal
import _socket
import select
import sys

MAX_HEAD = 64 * 1024
_JSON_ESCAPES = {i: f"\\u{i:04x}" for i in range(32)}
_JSON_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\", ord("\n"): "\\n", ord("\r"): "\\r",
                      ord("\t"): "\\t"})

_IN = select.EPOLLIN
_OUT = select.EPOLLOUT


def _js(value: object) -> str:
    """A tiny JSON encoder for str, int, and dicts of those."""
    if isinstance(value, str):
        return '"' + value.translate(_JSON_ESCAPES) + '"'
    if isinstance(value, dict):
        return "{" + ", ".join(_js(k) + ": " + _js(v) for k, v in value.items()) + "}"
    return str(int(value))  # type: ignore[call-overload]


def parse_args(argv: list[str]) -> tuple[dict[str, str], list[int], list[int]]:
    info = {"pod": "", "namespace": "", "node": "", "pod-ip": ""}
    tcp: list[int] = []
    udp: list[int] = []
    if len(argv) % 2:
        raise SystemExit("echo: every option takes a value")
    for i in range(0, len(argv), 2):
        key, value = argv[i], argv[i + 1]
        if key in ("--tcp", "--udp"):
            try:
                port = int(value)
            except ValueError:
                raise SystemExit(f"echo: {key} {value}: not a port number") from None
            if not 0 < port < 65536:
                raise SystemExit(f"echo: {key} {value}: not a port number")
            (tcp if key == "--tcp" else udp).append(port)
        elif key.startswith("--") and key[2:] in info:
            info[key[2:]] = value
        else:
            raise SystemExit(f"echo: unknown option {key}")
    return info, tcp, udp


class Conn:
    """One HTTP connection."""

    __slots__ = ("client", "closing", "inbuf", "outbuf", "port", "sock", "watching_out")

    def __init__(self, sock: _socket.socket, client: tuple[str, int], port: int) -> None:
        self.sock = sock
        self.client = client
        self.port = port
        self.inbuf = b""
        self.outbuf = b""
        self.closing = False
        self.watching_out = False


class Server:
    def __init__(self, info: dict[str, str]) -> None:
        self.info = info
        self.poll = select.epoll()
        self.listeners: dict[int, tuple[_socket.socket, int]] = {}
        self.datagrams: dict[int, _socket.socket] = {}
        self.conns: dict[int, Conn] = {}

    # -- set-up ---------------------------------------------------------------------------------

    def listen_tcp(self, port: int) -> None:
        sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", port))
        sock.listen(512)
        sock.setblocking(False)
        self.listeners[sock.fileno()] = (sock, port)
        self.poll.register(sock.fileno(), _IN)

    def listen_udp(self, port: int) -> None:
        sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
        sock.bind(("0.0.0.0", port))
        sock.setblocking(False)
        self.datagrams[sock.fileno()] = sock
        self.poll.register(sock.fileno(), _IN)

    # -- the loop -------------------------------------------------------------------------------

    def serve(self) -> None:
        while True:
            for fd, events in self.poll.poll():
                if fd in self.conns:
                    self.on_conn(self.conns[fd], events)
                elif fd in self.listeners:
                    self.accept(*self.listeners[fd])
                elif fd in self.datagrams:
                    self.echo(self.datagrams[fd])

    def accept(self, listener: _socket.socket, port: int) -> None:
        while True:
            try:
                fd, client = listener._accept()  # type: ignore[attr-defined]
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. EMFILE: leave the rest in the backlog for now
                return
            sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM, 0, fd)
            sock.setblocking(False)
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            self.conns[fd] = Conn(sock, client, port)
            self.poll.register(fd, _IN)

    def echo(self, sock: _socket.socket) -> None:
        while True:
            try:
                data, peer = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            try:
                sock.sendto(data, peer)
            except OSError:
                pass

    def close(self, conn: Conn) -> None:
        fd = conn.sock.fileno()
        self.conns.pop(fd, None)
        try:
            self.poll.unregister(fd)
        except OSError:
            pass
        conn.sock.close()

    def on_conn(self, conn: Conn, events: int) -> None:
        if events & _IN and not conn.closing:
            try:
                data = conn.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                self.close(conn)
                return
            if data == b"":
                self.close(conn)
                return
            if data:
                conn.inbuf += data
                self.handle_requests(conn)
        elif events & (select.EPOLLHUP | select.EPOLLERR) and not events & _OUT:
            self.close(conn)
            return
        self.flush(conn)

    def flush(self, conn: Conn) -> None:
        while conn.outbuf:
            try:
                sent = conn.sock.send(conn.outbuf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.close(conn)
                return
            conn.outbuf = conn.outbuf[sent:]
        if not conn.outbuf and conn.closing:
            self.close(conn)
            return
        want_out = bool(conn.outbuf)
        if want_out != conn.watching_out:
            conn.watching_out = want_out
            self.poll.modify(conn.sock.fileno(), _IN | _OUT if want_out else _IN)

    # -- HTTP -----------------------------------------------------------------------------------

    def handle_requests(self, conn: Conn) -> None:
        while not conn.closing:
            end = conn.inbuf.find(b"\r\n\r\n")
            if end < 0:
                if len(conn.inbuf) > MAX_HEAD:
                    self.respond(conn, 431, "Request Header Fields Too Large", b"", close=True)
                return
            head = conn.inbuf[:end].decode("latin-1")
            lines = head.split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                self.respond(conn, 400, "Bad Request", b"", close=True)
                return
            method, path, version = parts
            headers: dict[str, str] = {}
            lowered: dict[str, str] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if not sep or not name or name != name.strip():
                    self.respond(conn, 400, "Bad Request", b"", close=True)
                    return
                headers[name] = value.strip()
                lowered[name.lower()] = value.strip()
            length = 0
            if "content-length" in lowered:
                try:
                    length = int(lowered["content-length"])
                except ValueError:
                    self.respond(conn, 400, "Bad Request", b"", close=True)
                    return
            if len(conn.inbuf) < end + 4 + length:
                return  # wait for the body
            conn.inbuf = conn.inbuf[end + 4 + length:]
            token = lowered.get("connection", "").lower()
            close = token == "close" or (version == "HTTP/1.0" and token != "keep-alive")
            if "transfer-encoding" in lowered:  # a chunked body we do not parse
                close, conn.inbuf = True, b""
            body = self.describe(conn, method, path, lowered.get("host", ""), headers)
            extra = "Connection: keep-alive\r\n" if version == "HTTP/1.0" and not close else ""
            self.respond(conn, 200, "OK", body, close=close, head_only=method == "HEAD",
                         extra=extra)

    def describe(self, conn: Conn, method: str, path: str, host: str,
                 headers: dict[str, str]) -> bytes:
        info = self.info
        doc: dict[str, object] = {
            "pod": info["pod"], "namespace": info["namespace"], "node": info["node"],
            "podIP": info["pod-ip"], "port": conn.port,
            "client": {"ip": conn.client[0], "port": conn.client[1]},
            "method": method, "path": path, "host": host, "headers": headers}
        return (_js(doc) + "\n").encode()

    def respond(self, conn: Conn, code: int, reason: str, body: bytes, *, close: bool,
                head_only: bool = False, extra: str = "") -> None:
        head = (f"HTTP/1.1 {code} {reason}\r\n"
                + ("Content-Type: application/json\r\n" if body else "")
                + f"Content-Length: {len(body)}\r\n" + extra
                + ("Connection: close\r\n" if close else "") + "\r\n")
        conn.outbuf += head.encode() + (b"" if head_only else body)
        if close:
            conn.closing = True


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main(argv: list[str]) -> int:
    info, tcp, udp = parse_args(argv)
    _signal.signal(_signal.SIGTERM, _terminate)
    server = Server(info)
    for proto, ports, listen in (("tcp", tcp, server.listen_tcp), ("udp", udp, server.listen_udp)):
        for port in ports:
            try:
                listen(port)
            except OSError as e:
                sys.stderr.write(f"echo: cannot listen on {proto} port {port}: {e}\n")
                return 1
    where = ", ".join([f"tcp {p}" for p in tcp] + [f"udp {p}" for p in udp]) or "no ports"
    sys.stdout.write(f"echo: {info['namespace']}/{info['pod']} on {info['pod-ip']}: "
                     f"listening on {where}\n")
    sys.stdout.flush()
    try:
        server.serve()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
